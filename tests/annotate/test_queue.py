"""Queue semantics (DESIGN §2): leases, exact overlap, expiry, gold, caps, and
idempotent, validated submits."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotate import counters, queue, submit
from annotate.models import Assignment, Judgment, QueueSlot, Ranking, Rating, TaskKind

from tests.factories import annotators, fill, make_gold, pin_rubric

pytestmark = pytest.mark.django_db


def _answer(a, user, pref=1, **kw):
    return submit.judgment_submit(assignment=a, user=user, preference=pref, **kw)


def test_overlap_is_exact_and_no_annotator_gets_a_comparison_twice(project):
    project.overlap = 2
    project.save()
    fill(project, prompts=2, responses=2)  # 2 comparisons
    users = annotators(project, 3)
    got = {}
    for u in users:
        seen = []
        while (a := queue.assignment_lease(project=project, annotator=u)) is not None:
            seen.append(a.comparison_id)
            _answer(a, u)
        got[u.username] = seen
    assert sorted(got["ann0"]) == sorted(got["ann1"]) and len(got["ann0"]) == 2
    assert got["ann2"] == []  # both comparisons already have their two labels
    assert Judgment.objects.count() == 4
    assert set(QueueSlot.objects.values_list("open_slots", flat=True)) == {0}


def test_an_unfinished_lease_is_returned_again_instead_of_a_new_one(project, annotator):
    fill(project, prompts=3)
    first = queue.assignment_lease(project=project, annotator=annotator)
    again = queue.assignment_lease(project=project, annotator=annotator)
    assert again.pk == first.pk
    assert Assignment.objects.filter(annotator=annotator, state="active").count() == 1


def test_expired_lease_returns_the_task_to_the_queue(project):
    fill(project, prompts=1)  # one comparison, overlap 1
    slow, quick = annotators(project, 2)
    a = queue.assignment_lease(project=project, annotator=slow)
    assert queue.assignment_lease(project=project, annotator=quick) is None  # the only slot is leased
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    b = queue.assignment_lease(project=project, annotator=quick)
    assert b is not None and b.comparison_id == a.comparison_id
    a.refresh_from_db()
    assert a.state == Assignment.State.EXPIRED


def test_late_submit_is_refused_clearly_when_the_quota_filled_and_accepted_when_room_remains(project):
    fill(project, prompts=1)
    slow, quick = annotators(project, 2)
    a = queue.assignment_lease(project=project, annotator=slow)
    Assignment.objects.filter(pk=a.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    queue.assignments_expire(project=project)
    b = queue.assignment_lease(project=project, annotator=quick)
    _answer(b, quick)
    with pytest.raises(queue.TaskError) as err:
        _answer(a, slow, -2)
    assert err.value.code == "expired" and "not stored" in str(err.value)
    assert Judgment.objects.filter(annotator=slow).count() == 0

    # with overlap 2 there is still room, so the same late answer is kept
    project.overlap = 2
    project.save()
    queue.queue_slots_rebuild(project=project)
    j = _answer(a, slow, -2)
    assert j.annotator == slow and Judgment.objects.count() == 2
    assert QueueSlot.objects.get().open_slots == 0


def test_double_submit_leaves_one_label(project, annotator):
    fill(project, prompts=1)
    a = queue.assignment_lease(project=project, annotator=annotator)
    first = _answer(a, annotator, 3, idempotency_key="k-1")
    second = _answer(a, annotator, -3, idempotency_key="k-1")
    third = _answer(a, annotator, -1, idempotency_key="k-2")  # a retry with a fresh key
    assert first.pk == second.pk == third.pk
    assert Judgment.objects.count() == 1
    assert Judgment.objects.get().strength in (3, -3) and abs(Judgment.objects.get().strength) == 3


def test_preference_is_stored_canonically_with_the_shown_order(project, annotator):
    fill(project, prompts=6)
    for _ in range(6):
        a = queue.assignment_lease(project=project, annotator=annotator)
        j = _answer(a, annotator, -2)  # left much-ish better
        c = a.comparison
        assert j.shown_left_id == a.shown_left_id
        expected = "A" if a.shown_left_id == c.response_a_id else "B"
        assert j.choice == expected and j.strength == (-2 if expected == "A" else 2)


def test_submit_is_validated_against_the_rubric_version_shown(project, annotator):
    pin_rubric(project, criteria=[
        {"key": "correct", "name": "Correctness", "scale": "pairwise", "requires_rationale": True},
    ])
    fill(project, prompts=1)
    a = queue.assignment_lease(project=project, annotator=annotator)
    with pytest.raises(queue.TaskError) as err:
        _answer(a, annotator, 1, criteria={"made_up": "A"})
    assert set(err.value.errors) == {"criteria.correct", "criteria", "rationale"} - {"rationale"} or "criteria.correct" in err.value.errors
    with pytest.raises(queue.TaskError) as err:
        _answer(a, annotator, 1, criteria={"correct": "A"})
    assert err.value.errors == {"rationale": "this rubric asks for a rationale"}
    assert Judgment.objects.count() == 0
    j = _answer(a, annotator, 1, criteria={"correct": "A"}, rationale="left cites the source")
    assert j.rubric_version_id == project.rubric_version_id
    assert j.criteria["correct"] == ("A" if a.shown_left_id == a.comparison.response_a_id else "B")


def test_gold_tasks_appear_at_the_configured_rate_and_are_scored(project):
    project.gold_rate = 0.2
    project.overlap = 1
    project.save()
    fill(project, prompts=60, responses=2)  # 60 comparisons
    gold = make_gold(project, 10, choice="A")
    (u,) = annotators(project, 1)
    served_gold = 0
    served = 0
    while (a := queue.assignment_lease(project=project, annotator=u)) is not None and served < 40:
        is_gold = a.comparison.is_gold
        served_gold += is_gold
        served += 1
        # answer gold by picking the canonical A side half of the time
        left_is_a = a.shown_left_id == a.comparison.response_a_id
        pref = (-1 if left_is_a else 1) if served % 2 else (1 if left_is_a else -1)
        _answer(a, u, pref)
    assert served == 40
    assert 4 <= served_gold <= 13  # 20% of 40 ≈ 8
    scores = queue.gold_scores(project=project)
    assert scores[0]["answered"] == served_gold
    correct = Judgment.objects.filter(comparison__in=gold, choice="A").count()
    assert scores[0]["correct"] == correct
    assert counters.tallies_equal_recount(project=project)  # the scores are tallied as they come
    # gold comparisons sit outside the slot accounting, and the pool's counters
    # went down by the regular tasks alone
    assert not QueueSlot.objects.filter(pk__in=[c.pk for c in gold]).exists()
    regular = Assignment.objects.filter(annotator=u, comparison__is_gold=False).count()
    assert regular >= served - served_gold  # the loop's last lease is not counted in served
    assert QueueSlot.objects.filter(open_slots=0).count() == regular


def test_gold_answer_is_not_on_the_assignment_payload(project, annotator):
    from annotate.api import task_payload

    fill(project, prompts=1)
    make_gold(project, 1, choice="B")
    project.gold_rate = 1.0
    project.save()
    a = queue.assignment_lease(project=project, annotator=annotator)
    payload = task_payload(a)
    flat = repr(payload)
    assert "gold" not in flat and "is_gold" not in flat


def test_per_annotator_cap(project, annotator):
    project.max_tasks_per_annotator = 2
    project.save()
    fill(project, prompts=5)
    for _ in range(2):
        _answer(queue.assignment_lease(project=project, annotator=annotator), annotator)
    assert queue.assignment_lease(project=project, annotator=annotator) is None
    assert queue.annotator_progress(project=project, annotator=annotator)["remaining"] == 0


def test_skip_gives_the_slot_back_and_the_task_is_not_offered_again(project):
    fill(project, prompts=1)
    first, second = annotators(project, 2)
    a = queue.assignment_lease(project=project, annotator=first)
    with pytest.raises(queue.TaskError):
        submit.assignment_skip(assignment=a, user=first, reason="  ")
    submit.assignment_skip(assignment=a, user=first, reason="I cannot read Finnish")
    assert queue.assignment_lease(project=project, annotator=first) is None
    b = queue.assignment_lease(project=project, annotator=second)
    assert b.comparison_id == a.comparison_id


def test_another_annotators_assignment_cannot_be_submitted(project):
    fill(project, prompts=1)
    owner_of_task, intruder = annotators(project, 2)
    a = queue.assignment_lease(project=project, annotator=owner_of_task)
    with pytest.raises(queue.TaskError) as err:
        _answer(a, intruder)
    assert err.value.code == "forbidden"
    assert queue.assignment_for(annotator=intruder, assignment_id=a.pk) is None


def test_rating_and_ranking_tasks(project, annotator):
    project.task_kinds = ["pairwise", "rating", "ranking"]
    project.ranking_top_k = None
    project.save()
    pin_rubric(project, criteria=[
        {"key": "helpful", "name": "Helpfulness", "scale": "likert", "min": 0, "max": 4},
        {"key": "safe", "name": "Safe", "scale": "binary"},
        {"key": "harm", "name": "Harm", "scale": "severity", "na_allowed": True},
        {"key": "errors", "name": "Errors", "scale": "spans",
         "error_types": [{"key": "factual", "name": "Factual error"}]},
    ])
    fill(project, prompts=1, responses=3)
    r = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.RATING)
    with pytest.raises(queue.TaskError) as err:
        submit.rating_submit(assignment=r, user=annotator, scores={"helpful": 7, "safe": "yes", "harm": None})
    assert set(err.value.errors) == {"scores.helpful", "scores.safe"}
    rating = submit.rating_submit(
        assignment=r, user=annotator, scores={"helpful": 3, "safe": True, "harm": None},
        spans=[{"response": r.response_id, "start": 0, "end": 6, "type": "factual"}],
    )
    assert rating.scores == {"helpful": 3, "safe": True, "harm": None}
    assert rating.spans[0]["text"] == r.response.text[:6]

    k = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.RANKING)
    ids = sorted(k.prompt.responses.values_list("id", flat=True))
    with pytest.raises(queue.TaskError):
        submit.ranking_submit(assignment=k, user=annotator, groups=[[ids[0]], [ids[1]]])  # one missing
    ranking = submit.ranking_submit(assignment=k, user=annotator, groups=[[ids[2]], [ids[0], ids[1]]])
    assert ranking.groups == [[ids[2]], [ids[0], ids[1]]]
    assert Rating.objects.count() == 1 and Ranking.objects.count() == 1


def test_one_annotator_gets_every_pair_and_every_response_of_one_prompt(project, annotator):
    project.task_kinds = ["pairwise", "rating"]
    project.save()
    fill(project, prompts=1, responses=3)  # 3 pairs, 3 responses
    pairs, rated = set(), set()
    while (a := queue.assignment_lease(project=project, annotator=annotator)) is not None:
        pairs.add(a.comparison_id)
        _answer(a, annotator)
    while (a := queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.RATING)) is not None:
        rated.add(a.response_id)
        submit.rating_submit(assignment=a, user=annotator, scores={})
    assert len(pairs) == 3 and len(rated) == 3
