"""The volatile queue state of pairwise comparisons (priority, open slots) moves to
its own narrow table, QueueSlot, so that leases update it HOT (issue #19)."""

import django.db.models.deletion
from django.db import migrations, models

# Room on every page for new row versions (HOT needs the new version on the same
# page), and vacuum after 2 % of the rows changed instead of the default 20 %.
STORAGE = ("ALTER TABLE annotate_queueslot SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, "
           "autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05)")


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("INSERT INTO annotate_queueslot (comparison_id, project_id, priority, open_slots) "
                       "SELECT id, project_id, priority, open_slots FROM annotate_comparison WHERE NOT is_gold")


def unfill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("UPDATE annotate_comparison SET priority = s.priority, open_slots = s.open_slots "
                       "FROM annotate_queueslot s WHERE s.comparison_id = annotate_comparison.id")


def storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(STORAGE)


def storage_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE annotate_queueslot RESET (fillfactor, autovacuum_vacuum_scale_factor, "
                              "autovacuum_analyze_scale_factor, autovacuum_vacuum_insert_scale_factor)")


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0010_counters'),
    ]

    operations = [
        migrations.CreateModel(
            name='QueueSlot',
            fields=[
                ('comparison', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='slot', serialize=False, to='annotate.comparison')),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
                ('priority', models.FloatField(default=0.0, help_text='Higher is handed out first (written by active learning).')),
                ('open_slots', models.IntegerField(default=0)),
                ('is_open', models.GeneratedField(db_persist=True, expression=models.Q(('open_slots__gt', 0)), output_field=models.BooleanField())),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('open_slots__gte', 0)), name='queueslot_open_slots_nonnegative')],
            },
        ),
        # before the rows arrive, so they are written with the room the fillfactor leaves
        migrations.RunPython(storage, storage_reset),
        migrations.RunPython(fill, unfill),
        migrations.AddIndex(
            model_name='queueslot',
            index=models.Index(condition=models.Q(('is_open', True)), fields=['project', '-priority', 'comparison'], name='queueslot_open_idx'),
        ),
        migrations.AddIndex(
            model_name='comparison',
            index=models.Index(fields=['project', 'id'], name='comparison_project_idx'),
        ),
        migrations.RemoveConstraint(
            model_name='comparison',
            name='comparison_open_slots_nonnegative',
        ),
        migrations.RemoveIndex(
            model_name='comparison',
            name='comparison_queue_idx',
        ),
        migrations.RemoveIndex(
            model_name='comparison',
            name='comparison_open_idx',
        ),
        migrations.RemoveField(
            model_name='comparison',
            name='open_slots',
        ),
        migrations.RemoveField(
            model_name='comparison',
            name='priority',
        ),
    ]
