"""Labels a researcher asked for beyond the overlap, kept through every recount of a pair's slots."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0008_label_source_adjudicated'),
    ]

    operations = [
        migrations.AddField(
            model_name='comparison',
            name='extra_labels',
            field=models.PositiveSmallIntegerField(db_default=0, default=0),
        ),
    ]
