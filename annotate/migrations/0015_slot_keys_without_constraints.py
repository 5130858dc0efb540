"""The slot tables' copies of their unit's project (and a rating slot's prompt) stop
being foreign keys in the database (issue #19): each slot row already goes with its
unit. Deleting a project's prompts ran one check per prompt on
annotate_ratingslot.prompt_id, each a scan of the whole table (no index leads with
it), and every slot row an import writes ran one check per constraint. Only
constraints are dropped: no index is added, and no row is rewritten on PostgreSQL."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0014_tallies_every_source'),
    ]

    operations = [
        migrations.AlterField(
            model_name='queueslot',
            name='project',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='annotate.project'),
        ),
        migrations.AlterField(
            model_name='rankingslot',
            name='project',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='annotate.project'),
        ),
        migrations.AlterField(
            model_name='ratingslot',
            name='project',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='annotate.project'),
        ),
        migrations.AlterField(
            model_name='ratingslot',
            name='prompt',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='annotate.prompt'),
        ),
    ]
