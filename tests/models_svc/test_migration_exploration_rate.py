"""models_svc 0003 moves ε from the reward settings onto the project, keeping
each project's rate (and back, when unapplied)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("annotate", "0005_fewer_indexes_on_imported_rows"), ("models_svc", "0002_reward_settings_preset")]
AFTER = [("annotate", "0006_project_exploration_rate"), ("models_svc", "0003_exploration_rate_on_project")]


@pytest.mark.django_db(transaction=True)
def test_exploration_rate_moves_onto_the_project_and_back():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Project, RewardSettings = old.get_model("annotate", "Project"), old.get_model("models_svc", "RewardSettings")
    tuned = Project.objects.create(name="Tuned", slug="tuned")
    plain = Project.objects.create(name="Plain", slug="plain")
    RewardSettings.objects.create(project=tuned, exploration_rate=0.15)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    rates = dict(new.get_model("annotate", "Project").objects.values_list("slug", "exploration_rate"))
    assert rates == {"tuned": 0.15, "plain": 0.0}

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    back = dict(old.get_model("models_svc", "RewardSettings").objects.values_list("project__slug", "exploration_rate"))
    assert back == {"tuned": 0.15}
    assert plain.pk  # untouched: no settings row was made for it

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
