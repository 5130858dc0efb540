"""Marking a labelled comparison gold (or taking gold away, or changing its expected
answer) in the admin moves its people's labels between the tallies' ``labels`` and
``gold`` columns and rescores their gold answers, as the raw rows say (issue #19
point 3: the tallies must equal a recount after every writer)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from annotate import counters, queue, submit
from annotate.models import AnnotatorCount
from annotate.models import Assignment, Comparison, Judgment, TaskKind
from tests.factories import fill, make_gold

pytestmark = pytest.mark.django_db


def _admin_save(comparison: Comparison, superuser, **changes) -> None:
    for name, value in changes.items():
        setattr(comparison, name, value)
    model_admin = admin.site._registry[Comparison]
    request = RequestFactory().post("/admin/")
    request.user = superuser
    model_admin.save_model(request, comparison, form=None, change=True)


def test_marking_a_labelled_pair_gold_in_the_admin_keeps_the_tallies_equal_to_a_recount(project, annotator,
                                                                                       superuser):
    fill(project, prompts=2, responses=2)
    lease = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.PAIRWISE)
    submit.task_submit(assignment=Assignment(pk=lease.pk), user=annotator, answer={"preference": -2})
    assert counters.tallies_equal_recount(project=project)
    pair = Comparison.objects.get(pk=lease.comparison_id)
    _admin_save(pair, superuser, is_gold=True, gold_choice="A")
    assert counters.tallies_equal_recount(project=project)
    right = "A" if Judgment.objects.get(comparison=pair).choice == "A" else "B"
    # a new expected answer rescores the answers already given
    for expected, correct in ((right, 1), ("tie" if right == "A" else "A", 0)):
        _admin_save(pair, superuser, gold_choice=expected)
        assert counters.tallies_equal_recount(project=project)
        assert [(g["answered"], g["correct"]) for g in queue.gold_scores(project=project)] == [(1, correct)]
    _admin_save(pair, superuser, is_gold=False, gold_choice="")
    assert counters.tallies_equal_recount(project=project)
    assert queue.gold_scores(project=project) == []
    assert AnnotatorCount.objects.get(project=project, annotator=annotator).labels == 1


def test_editing_or_deleting_labels_in_the_admin_keeps_the_tallies_equal_to_a_recount(project, annotator, superuser):
    fill(project, prompts=2, responses=2)
    make_gold(project, 1, choice="A")
    project.gold_rate = 1.0
    project.save()
    for _ in range(2):
        lease = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.PAIRWISE)
        submit.task_submit(assignment=Assignment(pk=lease.pk), user=annotator, answer={"preference": 0})
    gold_label = Judgment.objects.get(annotator=annotator, comparison__is_gold=True)
    other = Judgment.objects.get(annotator=annotator, comparison__is_gold=False)
    request = RequestFactory().post("/admin/")
    request.user = superuser
    judgments = admin.site._registry[Judgment]
    gold_label.choice, gold_label.strength = "A", -2  # an admin's correction makes the answer right
    judgments.save_model(request, gold_label, form=None, change=True)
    assert counters.tallies_equal_recount(project=project)
    assert [(g["answered"], g["correct"]) for g in queue.gold_scores(project=project)] == [(1, 1)]
    judgments.delete_model(request, other)
    assert counters.tallies_equal_recount(project=project)
    judgments.delete_queryset(request, Judgment.objects.filter(pk=gold_label.pk))
    assert counters.tallies_equal_recount(project=project)
    assert queue.gold_scores(project=project) == []
