"""Counters the pages read instead of recounting (issue 19): each member's live
tasks (the cap's figure, kept under the lease lock) and per-annotator and per-kind
tallies. The served counts are filled here; the tallies by
``manage.py counters_reconcile`` (run it once after upgrading; beat also runs it)."""

import django.db.models.deletion
import django.db.models.functions
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def fill_served_counts(apps, schema_editor):
    Membership = apps.get_model("annotate", "Membership")
    Assignment = apps.get_model("annotate", "Assignment")
    live = (Assignment.objects.filter(project_id=models.OuterRef("project_id"), annotator_id=models.OuterRef("user_id"),
                                      state__in=["active", "submitted"])
            .values("annotator_id").annotate(n=models.Count("id")).values("n"))
    Membership.objects.update(served_count=models.functions.Coalesce(models.Subquery(live), 0))


class Migration(migrations.Migration):

    dependencies = [
        ('annotate', '0009_comparison_extra_labels'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='membership',
            name='served_count',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.CreateModel(
            name='AnnotatorCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('pairwise', 'Pairwise'), ('rating', 'Rating'), ('ranking', 'Ranking'), ('spans', 'Spans')], max_length=16)),
                ('labels', models.IntegerField(default=0)),
                ('imported', models.IntegerField(default=0)),
                ('skipped', models.IntegerField(default=0)),
                ('expired', models.IntegerField(default=0)),
                ('day', models.DateField(null=True)),
                ('today', models.IntegerField(default=0)),
                ('time_ms', models.BigIntegerField(default=0)),
                ('timed', models.IntegerField(default=0)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('annotator', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'annotator', 'kind'), name='annotatorcount_unique')],
            },
        ),
        migrations.CreateModel(
            name='UnitCount',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('pairwise', 'Pairwise'), ('rating', 'Rating'), ('ranking', 'Ranking'), ('spans', 'Spans')], max_length=16)),
                ('units', models.IntegerField(default=0)),
                ('changed_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('project', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='annotate.project')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('project', 'kind'), name='unitcount_unique')],
            },
        ),
        migrations.RunPython(fill_served_counts, migrations.RunPython.noop),
    ]
