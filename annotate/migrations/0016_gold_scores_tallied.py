"""Each annotator's gold score in the tallies (issue #19 point 3): their own answers
(source human) on gold pairs and how many matched the expected answer. The progress
page's gold column, the annotators' quality page and the pause rule after a gold
answer read these instead of joining every judgment of the project. The backfill
counts them from the raw rows."""

from django.db import migrations, models
from django.db.models import Count, F, Q


def backfill(apps, schema_editor):
    AnnotatorCount = apps.get_model("annotate", "AnnotatorCount")
    Judgment = apps.get_model("annotate", "Judgment")
    rows = (Judgment.objects.filter(comparison__is_gold=True, source="human")
            .values(project_of=F("comparison__project_id"), who=F("annotator_id"))
            .annotate(answered=Count("id"), correct=Count("id", filter=Q(choice=F("comparison__gold_choice"))))
            .order_by())
    for r in rows:
        updated = AnnotatorCount.objects.filter(project_id=r["project_of"], annotator_id=r["who"],
                                                kind="pairwise").update(gold_answered=r["answered"],
                                                                        gold_correct=r["correct"])
        if not updated:  # a gold answer always had a row since 0014; kept exact regardless
            AnnotatorCount.objects.create(project_id=r["project_of"], annotator_id=r["who"], kind="pairwise",
                                          gold=r["answered"], gold_answered=r["answered"],
                                          gold_correct=r["correct"])


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0015_slot_keys_without_constraints'),
    ]

    operations = [
        migrations.AddField(
            model_name='annotatorcount',
            name='gold_answered',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='annotatorcount',
            name='gold_correct',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
