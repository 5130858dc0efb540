"""Rating and ranking queue state (open slots) moves off the wide response and
prompt rows into narrow tables like QueueSlot (0011), so that those leases too
update it HOT (issue #19 point 4). Every response and prompt gets its row, with
the count it had; moving back copies the counts onto the wide rows."""

import django.db.models.deletion
from django.db import migrations, models

TABLES = ("annotate_ratingslot", "annotate_rankingslot")
# As 0011: room on every page for new row versions, vacuum after 2 % of the rows changed.
OPTIONS = {"fillfactor": "70", "autovacuum_vacuum_scale_factor": "0.02", "autovacuum_analyze_scale_factor": "0.05",
           "autovacuum_vacuum_insert_scale_factor": "0.05"}


def storage(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} SET ({', '.join(f'{k} = {v}' for k, v in OPTIONS.items())})")


def storage_reset(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {table} RESET ({', '.join(OPTIONS)})")


def fill(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("INSERT INTO annotate_ratingslot (response_id, project_id, prompt_id, open_slots) "
                       "SELECT r.id, p.project_id, r.prompt_id, r.rating_slots FROM annotate_response r "
                       "JOIN annotate_prompt p ON p.id = r.prompt_id")
        cursor.execute("INSERT INTO annotate_rankingslot (prompt_id, project_id, open_slots) "
                       "SELECT id, project_id, ranking_slots FROM annotate_prompt")


def unfill(apps, schema_editor):
    # correlated subqueries: the one UPDATE … FROM-free form SQLite and PostgreSQL share
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("UPDATE annotate_response SET rating_slots = COALESCE((SELECT s.open_slots FROM "
                       "annotate_ratingslot s WHERE s.response_id = annotate_response.id), 0)")
        cursor.execute("UPDATE annotate_prompt SET ranking_slots = COALESCE((SELECT s.open_slots FROM "
                       "annotate_rankingslot s WHERE s.prompt_id = annotate_prompt.id), 0)")


def _slot_fields():
    return [
        ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
        ('open_slots', models.IntegerField(default=0)),
        ('is_open', models.GeneratedField(db_persist=True, expression=models.Q(('open_slots__gt', 0)), output_field=models.BooleanField())),
    ]


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0011_queueslot'),
    ]

    operations = [
        migrations.CreateModel(
            name='RatingSlot',
            fields=[
                ('response', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='rating_slot', serialize=False, to='annotate.response')),
                ('prompt', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.prompt')),
                *_slot_fields(),
            ],
            options={
                'abstract': False,
                'constraints': [models.CheckConstraint(condition=models.Q(('open_slots__gte', 0)), name='ratingslot_open_slots_nonnegative')],
            },
        ),
        migrations.CreateModel(
            name='RankingSlot',
            fields=[
                ('prompt', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='ranking_slot', serialize=False, to='annotate.prompt')),
                *_slot_fields(),
            ],
            options={
                'abstract': False,
                'constraints': [models.CheckConstraint(condition=models.Q(('open_slots__gte', 0)), name='rankingslot_open_slots_nonnegative')],
            },
        ),
        # before the rows arrive, so they are written with the room the fillfactor leaves
        migrations.RunPython(storage, storage_reset),
        migrations.RunPython(fill, unfill),
        migrations.AddIndex(
            model_name='ratingslot',
            index=models.Index(condition=models.Q(('is_open', True)), fields=['project', 'prompt', 'response'], name='ratingslot_open_idx'),
        ),
        migrations.AddIndex(
            model_name='rankingslot',
            index=models.Index(condition=models.Q(('is_open', True)), fields=['project', 'prompt'], name='rankingslot_open_idx'),
        ),
        migrations.RemoveConstraint(
            model_name='prompt',
            name='prompt_ranking_slots_nonnegative',
        ),
        migrations.RemoveConstraint(
            model_name='response',
            name='response_rating_slots_nonnegative',
        ),
        migrations.RemoveField(
            model_name='prompt',
            name='ranking_slots',
        ),
        migrations.RemoveField(
            model_name='response',
            name='rating_slots',
        ),
    ]
