"""Annotator reliability: position bias, Dawid-Skene/MACE competence, majority
agreement, speed; and pausing, by hand and by the gold threshold."""

from __future__ import annotations

import random

import pytest
from django.urls import reverse

from annotate import queue, services, submit
from annotate.models import Comparison, Judgment, Membership, Role
from quality import annotators as rel
from tests.conftest import make_user
from tests.factories import annotators, fill, make_gold

pytestmark = pytest.mark.django_db


def _decisive_labels(project, user, *, left_share: float, n: int, rng: random.Random):
    """``n`` browser labels by ``user`` that choose the response shown on the left
    with probability ``left_share``, on fresh comparisons."""
    comparisons = list(Comparison.objects.filter(project=project).order_by("id"))
    for c in comparisons[:n]:
        left = rng.choice([c.response_a_id, c.response_b_id])
        picks_left = rng.random() < left_share
        chose_a = (left == c.response_a_id) == picks_left
        Judgment.objects.create(comparison=c, annotator=user, choice="A" if chose_a else "B", source="human",
                                shown_left_id=left, time_on_task_ms=rng.randint(4000, 9000))


def test_position_bias_flags_an_annotator_who_picks_the_left_response(project):
    fill(project, prompts=60, responses=2)
    lefty, fair = make_user("lefty"), make_user("fair")
    rng = random.Random(1)
    _decisive_labels(project, lefty, left_share=0.8, n=60, rng=rng)
    _decisive_labels(project, fair, left_share=0.5, n=60, rng=rng)
    rows = {r["annotator"]: r for r in rel.annotator_table(project=project)}
    assert rows["lefty"]["position"]["flagged"] and rows["lefty"]["position"]["p_value"] < 0.01
    assert rows["lefty"]["position"]["left_share"] > 0.7 and rows["lefty"]["position"]["decisive"] == 60
    assert not rows["fair"]["position"]["flagged"]


def _simulated_crowd(rng: random.Random, *, items: int = 40, careful: int = 4, accuracy: float = 0.9):
    """Label tuples as ``annotator_table`` reads them: careful annotators who give
    the hidden truth with ``accuracy`` and a spammer who answers at random."""
    truth = {i: rng.choice("AB") for i in range(items)}
    labels = []
    for w in range(careful + 1):
        for item, answer in truth.items():
            spammer = w == careful
            if spammer:
                choice = rng.choice("AB")
            else:
                choice = answer if rng.random() < accuracy else ("B" if answer == "A" else "A")
            labels.append((w, f"w{w}", item, choice, None, None, None))
    return labels


def test_dawid_skene_and_mace_rank_a_spammer_below_careful_annotators():
    labels = _simulated_crowd(random.Random(4))
    skill, knows = rel.competence(labels)
    spammer = 4
    assert skill[spammer] < min(skill[w] for w in range(4))
    assert knows[spammer] < min(knows[w] for w in range(4))
    agreement = rel.agreement_with_majority(labels)
    assert agreement[spammer][0] / agreement[spammer][1] < min(a / n for w, (a, n) in agreement.items() if w != spammer)


def test_annotator_table_has_every_measure_and_flags_the_too_fast(project, annotator):
    fill(project, prompts=20, responses=2)
    crew = annotators(project, 4)
    rng = random.Random(9)
    for c in Comparison.objects.filter(project=project):
        for k, user in enumerate(crew):
            ms = 800 if k == 3 else rng.randint(5000, 9000)  # the fourth rushes
            Judgment.objects.create(comparison=c, annotator=user, choice="A" if rng.random() < 0.85 else "B",
                                    source="human", shown_left_id=c.response_a_id, time_on_task_ms=ms)
    rows = {r["annotator"]: r for r in rel.annotator_table(project=project)}
    assert set(rows) == {u.username for u in crew} | {annotator.username}  # a member without labels too
    assert rows[annotator.username]["labels"] == 0 and rows[annotator.username]["dawid_skene_skill"] is None
    assert [rows[u.username]["too_fast"] for u in crew] == [False, False, False, True]
    first = rows[crew[0].username]
    assert first["labels"] == 20 and first["majority_compared"] == 20
    assert 0 <= first["dawid_skene_skill"] <= 1 and 0 <= first["mace_competence"] <= 1
    assert first["paused"] is False and first["role"] == Role.ANNOTATOR


# --- pausing ---------------------------------------------------------------------------


def _answer_gold_wrong(project, user):
    a = queue.assignment_lease(project=project, annotator=user, kind="pairwise")
    assert a.comparison.is_gold
    wrong = a.comparison.response_a_id if a.comparison.gold_choice == "B" else a.comparison.response_b_id
    preference = -2 if a.shown_left_id == wrong else 2  # in shown terms: the wrong one is better
    submit.judgment_submit(assignment=a, user=user, preference=preference)


def test_gold_threshold_pauses_a_failing_annotator_and_the_queue_stops_serving_them(project, annotator, client):
    fill(project, prompts=8, responses=2)
    make_gold(project, 6, choice="A")
    project.gold_rate, project.pause_below_gold_accuracy, project.pause_after_gold = 1.0, 0.7, 3
    project.save()
    for _ in range(2):
        _answer_gold_wrong(project, annotator)
    assert Membership.objects.get(project=project, user=annotator).paused_at is None  # too few answers yet
    _answer_gold_wrong(project, annotator)
    m = Membership.objects.get(project=project, user=annotator)
    assert m.paused_at is not None and m.paused_by is None and "0 of 3" in m.paused_reason
    with pytest.raises(queue.TaskError) as err:
        queue.assignment_lease(project=project, annotator=annotator, kind="pairwise")
    assert err.value.code == "paused"

    # The annotator is told why, on the page and in the API.
    client.force_login(annotator)
    html = client.get(reverse("work", args=[project.slug, "pairwise"])).content.decode()
    assert 'id="paused"' in html and "0 of 3" in html and 'id="task-form"' not in html
    r = client.post(reverse("api-task-next", args=[project.slug]), {"kind": "pairwise"}, content_type="application/json")
    assert r.status_code == 403 and r.json()["code"] == "paused" and "0 of 3" in r.json()["errors"]["reason"]

    services.membership_resume(project=project, user=annotator)
    assert queue.assignment_lease(project=project, annotator=annotator, kind="pairwise") is not None


def test_a_careful_annotator_is_not_paused_and_no_threshold_pauses_nobody(project, annotator):
    fill(project, prompts=6, responses=2)
    make_gold(project, 4, choice="A")
    project.gold_rate, project.pause_after_gold = 1.0, 2
    project.save()
    for _ in range(3):
        _answer_gold_wrong(project, annotator)  # no threshold set: wrong answers pause nobody
    assert Membership.objects.get(project=project, user=annotator).paused_at is None
    careful = make_user("carla")
    Membership.objects.create(project=project, user=careful, role=Role.ANNOTATOR)
    project.pause_below_gold_accuracy = 0.7
    project.save()
    for _ in range(3):
        a = queue.assignment_lease(project=project, annotator=careful, kind="pairwise")
        right = a.comparison.response_a_id  # gold says A
        submit.judgment_submit(assignment=a, user=careful, preference=-2 if a.shown_left_id == right else 2)
    assert Membership.objects.get(project=project, user=careful).paused_at is None


def test_a_researcher_pause_names_them_and_keeps_the_first_reason(project, owner, annotator):
    services.membership_pause(project=project, user=annotator, reason="checking your rationales", by=owner)
    services.membership_pause(project=project, user=annotator, reason="second reason")
    m = Membership.objects.get(project=project, user=annotator)
    assert (m.paused_reason, m.paused_by) == ("checking your rationales", owner)
    row = next(r for r in rel.annotator_table(project=project) if r["annotator"] == annotator.username)
    assert row["paused"] and row["paused_by"] == owner.username
