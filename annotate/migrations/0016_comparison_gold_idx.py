"""A partial index of each project's gold pairs (issue #19 point 3). The progress
page's gold column and the pause rule after a gold answer joined every judgment of
the project to find the gold ones (60–99 ms per progress request at 1M judgments,
also for a project without gold); now they start from the gold pairs. Building it
reads the comparison table once and holds only the gold rows."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0015_slot_keys_without_constraints'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='comparison',
            index=models.Index(condition=models.Q(('is_gold', True)), fields=['project', 'id'], name='comparison_gold_idx'),
        ),
    ]
