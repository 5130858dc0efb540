"""Migration 0011 moves each non-gold comparison's priority and open slots into
QueueSlot, and moving back restores them (issue #19 point 4)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("annotate", "0010_counters")]
AFTER = [("annotate", "0011_queueslot")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_queue_state_moves_to_its_table_and_back():
    try:
        old = _migrate(BEFORE)
        project = old.get_model("annotate", "Project").objects.create(name="M", slug="m", overlap=2)
        prompt = old.get_model("annotate", "Prompt").objects.create(project=project, external_id="p", conversation=[])
        responses = [old.get_model("annotate", "Response").objects.create(prompt=prompt, external_id=f"r{i}", text="t")
                     for i in range(3)]
        Comparison = old.get_model("annotate", "Comparison")
        a, b, c = responses
        open_pair = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=b,
                                              priority=5.0, open_slots=2)
        full_pair = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=c,
                                              priority=1.0, open_slots=0)
        gold = Comparison.objects.create(project=project, prompt=prompt, response_a=b, response_b=c,
                                         open_slots=2, is_gold=True, gold_choice="A")

        new = _migrate(AFTER)
        slots = new.get_model("annotate", "QueueSlot").objects
        assert sorted(slots.values_list("comparison_id", "project_id", "priority", "open_slots", "is_open")) == [
            (open_pair.pk, project.pk, 5.0, 2, True), (full_pair.pk, project.pk, 1.0, 0, False)]
        assert not slots.filter(comparison_id=gold.pk).exists()  # gold sits outside the slot accounting

        old = _migrate(BEFORE)
        back = old.get_model("annotate", "Comparison").objects
        assert back.get(pk=open_pair.pk).priority == 5.0 and back.get(pk=open_pair.pk).open_slots == 2
        assert back.get(pk=full_pair.pk).priority == 1.0 and back.get(pk=full_pair.pk).open_slots == 0
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
