"""The project page's label totals and unit counts from the maintained tallies
(issue 19 point 3): each annotator's row also counts their labels on gold units and
the derived, adjudicated and model labels it owns (the system accounts get rows),
and the pairs' unit count says how many gold pairs there are besides.

The backfill fills every project's label columns and unit counts from the raw
rows, so the page is right at once; skips, expiries and times stay the
reconcile's, as before."""

from django.db import migrations, models
from django.db.models import Count, F, Q

PEOPLE = ("human", "imported")
NAMED = ("human", "imported", "derived", "adjudicated")
COLUMNS = ("labels", "imported", "gold", "derived", "adjudicated", "model")


def _label_rows(apps):
    """(project, annotator, kind) → the six label columns, over every project."""
    kinds = (("Judgment", "pairwise", "comparison__project_id", Q(comparison__is_gold=True)),
             ("Rating", "rating", "response__prompt__project_id", None),
             ("Ranking", "ranking", "prompt__project_id", None))
    truth = {}
    for name, kind, project, gold in kinds:
        not_gold = Q() if gold is None else ~gold
        figures = {
            "n_labels": Count("id", filter=Q(source="human") & not_gold),
            "n_imported": Count("id", filter=Q(source="imported") & not_gold),
            "n_derived": Count("id", filter=Q(source="derived")),
            "n_adjudicated": Count("id", filter=Q(source="adjudicated")),
            "n_model": Count("id", filter=~Q(source__in=NAMED)),
        }
        if gold is not None:
            figures["n_gold"] = Count("id", filter=Q(source__in=PEOPLE) & gold)
        rows = (apps.get_model("annotate", name).objects.values(project_of=F(project), who=F("annotator_id"))
                .annotate(**figures).order_by())
        for r in rows:
            truth[(r["project_of"], r["who"], kind)] = {c: r.get(f"n_{c}", 0) for c in COLUMNS}
    return truth


def backfill(apps, schema_editor):
    AnnotatorCount = apps.get_model("annotate", "AnnotatorCount")
    UnitCount = apps.get_model("annotate", "UnitCount")
    truth = _label_rows(apps)
    changed = []
    for row in AnnotatorCount.objects.all().iterator(chunk_size=2000):
        want = truth.pop((row.project_id, row.annotator_id, row.kind), dict.fromkeys(COLUMNS, 0))
        if any(getattr(row, c) != n for c, n in want.items()):
            for c, n in want.items():
                setattr(row, c, n)
            changed.append(row)
    AnnotatorCount.objects.bulk_update(changed, COLUMNS, batch_size=1000)
    AnnotatorCount.objects.bulk_create(
        [AnnotatorCount(project_id=p, annotator_id=a, kind=k, **want) for (p, a, k), want in truth.items()],
        batch_size=1000)

    units = {}
    pairs = (apps.get_model("annotate", "Comparison").objects.values("project_id")
             .annotate(n=Count("id", filter=Q(is_gold=False)), gold=Count("id", filter=Q(is_gold=True))).order_by())
    for r in pairs:
        units[(r["project_id"], "pairwise")] = (r["n"], r["gold"])
    responses = (apps.get_model("annotate", "Response").objects.values(project_of=F("prompt__project_id"))
                 .annotate(n=Count("id")).order_by())
    for r in responses:
        units[(r["project_of"], "rating")] = (r["n"], 0)
    for r in apps.get_model("annotate", "Prompt").objects.values("project_id").annotate(n=Count("id")).order_by():
        units[(r["project_id"], "ranking")] = (r["n"], 0)
    for row in UnitCount.objects.all():
        n, gold = units.pop((row.project_id, row.kind), (0, 0))
        if (row.units, row.gold) != (n, gold):
            UnitCount.objects.filter(pk=row.pk).update(units=n, gold=gold)
    UnitCount.objects.bulk_create([UnitCount(project_id=p, kind=k, units=n, gold=gold)
                                   for (p, k), (n, gold) in units.items()])


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0013_strategy_balpm'),
    ]

    operations = [
        migrations.AddField(
            model_name='annotatorcount',
            name='adjudicated',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='annotatorcount',
            name='derived',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='annotatorcount',
            name='gold',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='annotatorcount',
            name='model',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='unitcount',
            name='gold',
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
