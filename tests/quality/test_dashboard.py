"""The quality dashboard: researchers only, a stored report made by a worker job,
and pausing or resuming annotators from the annotator table."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotate import services
from annotate.models import Comparison, Judgment, Membership, Role
from quality.models import QualityReport
from quality.services import project_agreement
from tests.conftest import make_user
from tests.factories import annotators, fill
from tests.helpers import chart_specs

pytestmark = pytest.mark.django_db


def _labelled(project, n_annotators=3):
    fill(project, prompts=8, responses=2)
    crew = annotators(project, n_annotators)
    for k, c in enumerate(Comparison.objects.filter(project=project).order_by("id")):
        for i, user in enumerate(crew):
            choice = "A" if (k + (i == 2 and k % 3 == 0)) % 2 == 0 else "B"
            Judgment.objects.create(comparison=c, annotator=user, choice=choice, strength=-1 if choice == "A" else 2,
                                    source="human", shown_left_id=c.response_a_id, time_on_task_ms=4000 + 100 * i)
    return crew


def _client(user) -> Client:
    web = Client()
    web.force_login(user)
    return web


def test_only_the_projects_researchers_open_the_dashboard(project, owner, annotator, outsider):
    url = reverse("quality-dashboard", args=[project.slug])
    refused = _client(annotator).get(url)  # a member is told why; an outsider sees a missing page
    assert refused.status_code == 403 and "researchers may open this page" in refused.content.decode()
    assert _client(outsider).get(url).status_code == 404
    assert _client(outsider).get(url).content == _client(outsider).get("/p/no-such-project/quality/").content
    html = _client(owner).get(url).content.decode()
    assert "No report yet" in html and "Compute the report" in html
    assert _client(annotator).post(reverse("quality-refresh", args=[project.slug])).status_code == 403
    assert not QualityReport.objects.exists()


def test_a_worker_makes_the_report_and_the_page_shows_it(project, owner, celery_eager,
                                                          django_capture_on_commit_callbacks):
    crew = _labelled(project)
    web = _client(owner)
    with django_capture_on_commit_callbacks(execute=True):
        r = web.post(reverse("quality-refresh", args=[project.slug]))
    assert r.status_code == 302
    report = QualityReport.objects.get()
    assert report.status == "succeeded" and report.created_by == owner and report.progress == 1.0
    assert report.result["agreement"] == project_agreement(project=project)
    assert report.result["label_mix"]["judgments"] == 24 and [s["strength"] for s in report.result["label_mix"]["strengths"]] == list(range(-3, 4))
    assert {s["strength"]: s["labels"] for s in report.result["label_mix"]["strengths"]}[2] > 0
    assert [w["labels"] for w in report.result["agreement_by_week"]] == [24]
    html = web.get(reverse("quality-dashboard", args=[project.slug])).content.decode()
    raw = report.result["agreement"]["criteria"][0]["statistics"]["raw_agreement"]["value"]
    assert 'data-statistic="raw_agreement"' in html and f"{raw:.3f}" in html
    for user in crew:
        assert f'data-annotator="{user.username}"' in html
    assert 'data-specs="report-chart-specs"' in html and "uPlot.iife.min.js" in html and "preflab/charts.js" in html
    specs = chart_specs(html, "report-chart-specs")
    assert [s["kind"] for s in specs] == ["line", "bars"]
    assert specs[0]["x_ticks"] == [w["week"] for w in report.result["agreement_by_week"]]
    assert specs[1]["values"][:7] == [s["labels"] for s in report.result["label_mix"]["strengths"]]


def test_one_report_at_a_time_and_a_queued_one_is_polled(project, owner):
    _labelled(project)
    web = _client(owner)
    web.post(reverse("quality-refresh", args=[project.slug]))  # no worker runs it here
    web.post(reverse("quality-refresh", args=[project.slug]))
    assert QualityReport.objects.filter(status="queued").count() == 1
    status = web.get(reverse("quality-status", args=[project.slug]) + "?waiting=1").content.decode()
    assert 'id="report-active"' in status and "queued" in status


def test_pause_and_resume_from_the_annotator_table(project, owner, celery_eager, django_capture_on_commit_callbacks):
    crew = _labelled(project)
    web = _client(owner)
    with django_capture_on_commit_callbacks(execute=True):
        web.post(reverse("quality-refresh", args=[project.slug]))
    target = crew[2]
    web.post(reverse("quality-pause", args=[project.slug, target.pk]), {"reason": "please reread the guidelines"})
    m = Membership.objects.get(project=project, user=target)
    assert (m.paused_reason, m.paused_by) == ("please reread the guidelines", owner)
    html = web.get(reverse("quality-dashboard", args=[project.slug])).content.decode()
    row = html.split(f'data-annotator="{target.username}"')[1].split("</tr>")[0]
    assert "paused" in row and "please reread the guidelines" in row and "Resume" in row  # live, not from the report
    work = _client(target).get(reverse("work", args=[project.slug, "pairwise"])).content.decode()
    assert 'id="paused"' in work and "please reread the guidelines" in work
    web.post(reverse("quality-resume", args=[project.slug, target.pk]))
    assert Membership.objects.get(project=project, user=target).paused_at is None
    # A researcher of another project cannot pause this project's annotators.
    stranger = make_user("sam-stranger")
    other = services.project_create(name="Other", slug="other", created_by=stranger)
    assert other.memberships.filter(user=stranger, role=Role.RESEARCHER).exists()
    r = _client(stranger).post(reverse("quality-pause", args=[project.slug, target.pk]), {"reason": "x"})
    assert r.status_code == 404 and Membership.objects.get(project=project, user=target).paused_at is None


def test_noise_audit_on_the_dashboard(project, owner, annotator):
    from quality.models import NoiseAudit

    web = _client(owner)
    r = web.post(reverse("quality-audit", args=[project.slug]), follow=True)
    assert "no active reward model" in r.content.decode() and not NoiseAudit.objects.exists()
    assert _client(annotator).post(reverse("quality-audit", args=[project.slug])).status_code == 403
    NoiseAudit.objects.create(project=project, status="succeeded", summary={
        "pairs": 40, "flagged": {"likely_flipped": 6, "ambiguous_pair": 2}, "flip_z": 1.0,
        "mu_histogram": {"edges": [-1.0, 0.0, 1.0], "counts": [10, 30]}})
    html = web.get(reverse("quality-dashboard", args=[project.slug])).content.decode()
    assert '<span id="audit-flipped">6</span>' in html and '<span id="audit-ambiguous">2</span>' in html
    [hist] = chart_specs(html, "audit-chart-specs")
    assert (hist["kind"], hist["counts"], hist["edges"]) == ("histogram", [10, 30], [-1.0, 0.0, 1.0])
