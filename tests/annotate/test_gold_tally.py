"""Gold scores are tallied (issue #19 point 3): each annotator's own answers on gold
pairs and how many matched, kept in ``AnnotatorCount`` by the submit, recounted by
the reconcile, backfilled by migration 0016. The progress page and the pause rule
read them without touching a label table."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from annotate import counters, queue, submit
from annotate.models import AnnotatorCount, Assignment, Membership, TaskKind
from annotate.stats import project_progress
from tests.annotate.test_tallies_migration import migrate_to, old_prompt
from tests.factories import fill, make_gold


def _answer_all_gold(project, user, pick) -> list[tuple[str, str]]:
    """Lease until the queue is empty, answering gold pairs with ``pick(pair)`` (a
    canonical choice); returns (given, expected) per gold answer."""
    given = []
    while True:
        try:
            a = queue.assignment_lease(project=project, annotator=user)
        except queue.TaskError as exc:  # paused by the gold rule
            assert exc.code == "paused"
            break
        if a is None:
            break
        c = a.comparison
        choice = pick(c) if c.is_gold else "A"
        left_is_a = a.shown_left_id == c.response_a_id
        preference = {"A": -1 if left_is_a else 1, "B": 1 if left_is_a else -1, "tie": 0}[choice]
        submit.task_submit(assignment=Assignment(pk=a.pk), user=user, answer={"preference": preference})
        if c.is_gold:
            given.append((choice, c.gold_choice))
    return given


@pytest.mark.django_db
def test_gold_answers_are_tallied_as_the_raw_rows_say_and_read_without_a_label_table(project, annotator):
    fill(project, prompts=4, responses=3)
    make_gold(project, 5, choice="A")
    project.gold_rate = 0.5
    project.save()
    flip = iter(range(1000))
    given = _answer_all_gold(project, annotator, lambda c: "A" if next(flip) % 3 else "B")
    assert len(given) == 5 and 0 < sum(g == e for g, e in given) < 5
    row = AnnotatorCount.objects.get(project=project, annotator=annotator, kind=TaskKind.PAIRWISE)
    assert (row.gold, row.gold_answered, row.gold_correct) == (5, 5, sum(g == e for g, e in given))
    assert counters.tallies_equal_recount(project=project)
    with CaptureQueriesContext(connection) as sent:
        progress = project_progress(project=project)
    assert not [q["sql"] for q in sent.captured_queries if "annotate_judgment" in q["sql"]]
    [mine] = [r for r in progress["annotators"] if r["annotator__username"] == annotator.username]
    assert mine["gold"] == f"{row.gold_correct}/5"


@pytest.mark.django_db
def test_the_pause_rule_reads_the_tally_the_submit_just_bumped(project, annotator):
    fill(project, prompts=3, responses=3)
    make_gold(project, 4, choice="B")
    project.gold_rate, project.pause_below_gold_accuracy, project.pause_after_gold = 1.0, 0.5, 3
    project.save()
    _answer_all_gold(project, annotator, lambda c: "A")  # always wrong
    member = Membership.objects.get(project=project, user=annotator)
    assert member.paused_at is not None and "0 of 3" in member.paused_reason


@pytest.mark.django_db(transaction=True)
def test_migration_0016_backfills_the_gold_scores():
    before, after = [("annotate", "0015_slot_keys_without_constraints")], [("annotate", "0016_gold_scores_tallied")]
    try:
        old = migrate_to(before)
        User = old.get_model("auth", "User")
        person, other = User.objects.create(username="person"), User.objects.create(username="other")
        project, prompt, (a, b, c) = old_prompt(old)
        Comparison, Judgment = old.get_model("annotate", "Comparison"), old.get_model("annotate", "Judgment")
        plain = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=b)
        g1 = Comparison.objects.create(project=project, prompt=prompt, response_a=a, response_b=c, is_gold=True,
                                       gold_choice="A")
        g2 = Comparison.objects.create(project=project, prompt=prompt, response_a=b, response_b=c, is_gold=True,
                                       gold_choice="B")
        Judgment.objects.create(comparison=plain, annotator=person, choice="A", source="human")
        Judgment.objects.create(comparison=g1, annotator=person, choice="A", strength=-1, source="human")
        Judgment.objects.create(comparison=g2, annotator=person, choice="A", strength=-1, source="human")
        Judgment.objects.create(comparison=g1, annotator=other, choice="A", strength=-1, source="imported")
        Count = old.get_model("annotate", "AnnotatorCount")
        Count.objects.create(project=project, annotator=person, kind="pairwise", labels=1, gold=2)
        Count.objects.create(project=project, annotator=other, kind="pairwise", gold=1)

        new = migrate_to(after)
        rows = dict(((r["annotator__username"]), (r["gold_answered"], r["gold_correct"])) for r in
                    new.get_model("annotate", "AnnotatorCount").objects.values("annotator__username", "gold_answered",
                                                                              "gold_correct"))
        assert rows == {"person": (2, 1), "other": (0, 0)}  # imported answers are not scored
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
