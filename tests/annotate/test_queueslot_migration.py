"""Migration 0011 moves each non-gold comparison's priority and open slots into
QueueSlot, 0012 the rating and ranking slots into RatingSlot and RankingSlot, and
moving back restores them (issue #19 point 4)."""

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


def test_rating_and_ranking_slots_move_to_their_tables_and_back():
    before, after = [("annotate", "0011_queueslot")], [("annotate", "0012_ratingslot_rankingslot")]
    try:
        old = _migrate(before)
        project = old.get_model("annotate", "Project").objects.create(name="M", slug="m", overlap=2)
        Prompt, Response = old.get_model("annotate", "Prompt"), old.get_model("annotate", "Response")
        ranked = Prompt.objects.create(project=project, external_id="p", conversation=[], ranking_slots=2)
        full = Prompt.objects.create(project=project, external_id="q", conversation=[], ranking_slots=0)
        open_r = Response.objects.create(prompt=ranked, external_id="r0", text="t", rating_slots=1)
        full_r = Response.objects.create(prompt=full, external_id="r1", text="t", rating_slots=0)

        new = _migrate(after)
        ratings = new.get_model("annotate", "RatingSlot").objects
        rankings = new.get_model("annotate", "RankingSlot").objects
        assert sorted(ratings.values_list("response_id", "project_id", "prompt_id", "open_slots", "is_open")) == [
            (open_r.pk, project.pk, ranked.pk, 1, True), (full_r.pk, project.pk, full.pk, 0, False)]
        assert sorted(rankings.values_list("prompt_id", "project_id", "open_slots", "is_open")) == [
            (ranked.pk, project.pk, 2, True), (full.pk, project.pk, 0, False)]
        assert "rating_slots" not in {f.name for f in new.get_model("annotate", "Response")._meta.get_fields()}
        ratings.filter(pk=open_r.pk).update(open_slots=2)  # a change after the move travels back too

        old = _migrate(before)
        assert dict(old.get_model("annotate", "Response").objects.values_list("pk", "rating_slots")) == {
            open_r.pk: 2, full_r.pk: 0}
        assert dict(old.get_model("annotate", "Prompt").objects.values_list("pk", "ranking_slots")) == {
            ranked.pk: 2, full.pk: 0}
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
