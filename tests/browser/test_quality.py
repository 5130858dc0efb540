"""The quality dashboard in a real browser: charts drawn from the stored report,
the annotator table, pausing with a reason, at desktop and phone widths."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from annotate.models import Membership
from quality import reports
from tests.browser.conftest import login
from tests.conftest import REPO
from tests.quality.test_dashboard import _labelled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-only"
SHOTS = REPO / "var" / "screenshots"


def _report(project, owner):
    report = reports.quality_report_run(report_id=reports.QualityReport.objects.create(project=project).pk)
    assert report.status == "succeeded", report.error


def test_dashboard_draws_charts_and_pauses_an_annotator_at_both_widths(page, project, owner):
    crew = _labelled(project)
    _report(project, owner)
    login(page, owner.username, PASSWORD)
    page.goto(f"/p/{project.slug}/quality/")
    expect(page.locator("#agreement")).to_contain_text("raw_agreement")
    expect(page.locator("#report-charts canvas")).to_have_count(2)
    if os.environ.get("PREFLAB_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1400, "height": 900})
        page.screenshot(path=SHOTS / "quality-desktop.png", full_page=True)
    row = page.locator(f'tr[data-annotator="{crew[1].username}"]')
    row.locator("input[name=reason]").fill("please reread the guidelines")
    row.get_by_role("button", name="Pause").click()
    expect(page.locator(f'tr[data-annotator="{crew[1].username}"] .status')).to_contain_text("please reread the guidelines")
    assert Membership.objects.get(project=project, user=crew[1]).paused_by == owner

    page.set_viewport_size({"width": 390, "height": 844})  # a window narrowed: the charts follow
    page.wait_for_function("document.body.scrollWidth <= document.body.clientWidth + 1", timeout=5000)
    page.goto(f"/p/{project.slug}/quality/")
    expect(page.locator("#report-charts canvas")).to_have_count(2)
    overflow = page.evaluate("document.body.scrollWidth - document.body.clientWidth")
    assert overflow <= 1, f"the page scrolls sideways by {overflow}px at 390 px"
    if os.environ.get("PREFLAB_SCREENSHOTS"):
        page.screenshot(path=SHOTS / "quality-narrow.png", full_page=True)
    assert page.console_errors == []
