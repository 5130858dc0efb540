"""ε moves onto the project (annotate.Project.exploration_rate), so handing out a
task reads it from the project row it already has instead of importing
models_svc. Each project keeps the rate it had."""

from django.db import migrations


def copy_to_project(apps, schema_editor):
    RewardSettings = apps.get_model("models_svc", "RewardSettings")
    Project = apps.get_model("annotate", "Project")
    for project_id, rate in RewardSettings.objects.exclude(exploration_rate=0.0).values_list("project_id", "exploration_rate"):
        Project.objects.filter(pk=project_id).update(exploration_rate=rate)


def copy_back(apps, schema_editor):
    RewardSettings = apps.get_model("models_svc", "RewardSettings")
    Project = apps.get_model("annotate", "Project")
    for project_id, rate in Project.objects.exclude(exploration_rate=0.0).values_list("id", "exploration_rate"):
        RewardSettings.objects.update_or_create(project_id=project_id, defaults={"exploration_rate": rate})


class Migration(migrations.Migration):

    dependencies = [
        ("annotate", "0006_project_exploration_rate"),
        ("models_svc", "0002_reward_settings_preset"),
    ]

    operations = [
        migrations.RunPython(copy_to_project, copy_back),
        migrations.RemoveField(model_name="rewardsettings", name="exploration_rate"),
    ]
