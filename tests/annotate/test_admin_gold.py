"""Marking a labelled comparison gold (or taking gold away) in the admin moves its
people's labels between the tallies' ``labels`` and ``gold`` columns, as the raw
rows say (issue #19 point 3: the tallies must equal a recount after every writer)."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from annotate import counters, queue, submit
from annotate.models import Assignment, Comparison, TaskKind
from tests.factories import fill

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
    _admin_save(pair, superuser, is_gold=False, gold_choice="")
    assert counters.tallies_equal_recount(project=project)
