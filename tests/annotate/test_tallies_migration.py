"""Migration 0014 fills the new tally columns of existing projects from the raw rows
(issue #19 point 3): each annotator's labels by source, people's gold answers, the
system accounts' rows, and the gold pairs beside the queue's; so the project page
agrees with label_counts right after upgrading, before any reconcile."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("annotate", "0013_strategy_balpm")]
AFTER = [("annotate", "0014_tallies_every_source")]


def migrate_to(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def old_prompt(old, responses: int = 3):
    """A project with one prompt and its responses, in a migration state's models."""
    project = old.get_model("annotate", "Project").objects.create(name="M", slug="m")
    prompt = old.get_model("annotate", "Prompt").objects.create(project=project, external_id="p", conversation=[])
    return project, prompt, [old.get_model("annotate", "Response").objects.create(
        prompt=prompt, external_id=f"r{i}", text="t") for i in range(responses)]


def test_the_migration_backfills_every_source_and_the_gold_pairs():
    try:
        old = migrate_to(BEFORE)
        User = old.get_model("auth", "User")
        person, other, rule, bot = (User.objects.create(username=n) for n in ("person", "other", "rule", "bot"))
        project, prompt, (a, b, c) = old_prompt(old)
        Comparison, Judgment = old.get_model("annotate", "Comparison"), old.get_model("annotate", "Judgment")
        plain = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=b)
        gold = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=c, is_gold=True,
                                         gold_choice="A")
        Judgment.objects.create(comparison=plain, annotator=person, choice="A", source="human")
        Judgment.objects.create(comparison=gold, annotator=person, choice="A", source="human")
        Judgment.objects.create(comparison=gold, annotator=other, choice="B", source="imported")
        Judgment.objects.create(comparison=plain, annotator=other, choice="B", source="imported")
        Judgment.objects.create(comparison=plain, annotator=rule, choice="A", source="derived")
        Judgment.objects.create(comparison=gold, annotator=rule, choice="A", source="derived")
        Judgment.objects.create(comparison=plain, annotator=bot, choice="tie", source="model")
        Judgment.objects.create(comparison=gold, annotator=bot, choice="B", source="adjudicated")
        old.get_model("annotate", "Rating").objects.create(response=a, annotator=bot, scores={}, source="model")
        old.get_model("annotate", "Ranking").objects.create(prompt=prompt, annotator=person, groups=[[a.pk]])
        Count = old.get_model("annotate", "AnnotatorCount")
        # the person's row as the submits kept it, with a figure of theirs the backfill leaves alone;
        # a stale row of someone whose labels are gone
        Count.objects.create(project=project, annotator=person, kind="pairwise", labels=1, skipped=4)
        Count.objects.create(project=project, annotator=User.objects.create(username="gone"), kind="rating", labels=3)
        old.get_model("annotate", "UnitCount").objects.create(project=project, kind="pairwise", units=1)

        new = migrate_to(AFTER)
        rows = {(r["annotator__username"], r["kind"]): r for r in new.get_model("annotate", "AnnotatorCount").objects
                .values("annotator__username", "kind", "labels", "imported", "gold", "derived", "adjudicated",
                        "model", "skipped")}
        figures = ("labels", "imported", "gold", "derived", "adjudicated", "model", "skipped")
        assert {key: tuple(r[f] for f in figures) for key, r in rows.items()} == {
            ("person", "pairwise"): (1, 0, 1, 0, 0, 0, 4),
            ("person", "ranking"): (1, 0, 0, 0, 0, 0, 0),
            ("other", "pairwise"): (0, 1, 1, 0, 0, 0, 0),
            ("rule", "pairwise"): (0, 0, 0, 2, 0, 0, 0),
            ("bot", "pairwise"): (0, 0, 0, 0, 1, 1, 0),
            ("bot", "rating"): (0, 0, 0, 0, 0, 1, 0),
            ("gone", "rating"): (0, 0, 0, 0, 0, 0, 0),
        }
        units = new.get_model("annotate", "UnitCount").objects.values_list("kind", "units", "gold")
        assert sorted(units) == [("pairwise", 1, 1), ("ranking", 1, 0), ("rating", 3, 0)]
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())

    from annotate import counters
    from annotate.models import Project
    from rubrics.models import label_counts

    project = Project.objects.get(slug="m")
    assert counters.project_figures(project=project) == {
        "prompts": 1, "responses": 3, "comparisons": 2, **label_counts(projects=[project])}
