"""Criterion.principle: the one-sentence form of a criterion, kept with its version.
Criteria written before it existed get the compiled sentence."""

from django.db import migrations, models


def compile_existing(apps, schema_editor):
    from rubrics.principles import compile_principle

    Criterion = apps.get_model("rubrics", "Criterion")
    for c in Criterion.objects.filter(principle=""):
        spec = {"key": c.key, "name": c.name, "description": c.description, "scale": c.scale,
                "polarity": c.polarity, "kind": c.kind, "threshold": c.threshold, **c.config}
        c.principle = compile_principle(spec)
        c.save(update_fields=["principle"])


class Migration(migrations.Migration):
    dependencies = [("rubrics", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="criterion",
            name="principle",
            field=models.TextField(blank=True, help_text="One-sentence principle for LLM judges and exports."),
        ),
        migrations.RunPython(compile_existing, migrations.RunPython.noop),
    ]
