"""The review queue in a real browser: from the quality dashboard to the queue, the
top item, a final label, and the open count falling; both pages at desktop and
phone widths without sideways scrolling."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from annotate.models import Judgment, LabelSource
from quality.models import ReviewItem
from tests.browser.conftest import login
from tests.conftest import REPO
from tests.quality.test_review import XSS, flag_five

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-only"
SHOTS = REPO / "var" / "screenshots"


def _check_widths(page, name: str) -> None:
    for width, height, label in ((1400, 900, "desktop"), (390, 844, "narrow")):
        page.set_viewport_size({"width": width, "height": height})
        overflow = page.evaluate("document.body.scrollWidth - document.body.clientWidth")
        assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {width} px"
        if os.environ.get("PREFLAB_SCREENSHOTS"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SHOTS / f"review-{name}-{label}.png", full_page=True)
    page.set_viewport_size({"width": 1400, "height": 900})


def test_researcher_adjudicates_the_top_item_and_the_open_count_falls(page, project, owner):
    data = flag_five(project)
    top = data["c"][0]
    response = top.response_b
    response.text = f"A **long** answer with a very_long_unbroken_identifier_{'x' * 120} and {XSS}"
    response.save()
    login(page, owner.username, PASSWORD)
    page.goto(f"/p/{project.slug}/quality/")
    expect(page.locator("#review-open")).to_have_text("0")
    page.get_by_role("link", name="Open the review queue").click()
    page.get_by_role("button", name="Refresh the queue").click()
    expect(page.locator("#count-open")).to_have_text("4")
    expect(page.locator("#review-items tbody tr").first).to_contain_text("likely_flipped")
    _check_widths(page, "queue")

    page.locator("#review-items tbody tr").first.get_by_role("link").click()
    expect(page.locator("#item-labels tbody tr")).to_have_count(3)
    expect(page.locator("article[data-side=B] strong")).to_have_text("long")
    assert page.locator("article[data-side=B] img").count() == 0  # the payload stays text
    _check_widths(page, "item")
    form = page.locator("#adjudicate-form")
    form.get_by_label("B is better").check()
    form.locator("select[name=strength]").select_option("3")
    form.locator("textarea[name=note]").fill("the model is right: B answers the question")
    form.get_by_role("button", name="Store the final label").click()

    expect(page.locator("#count-open")).to_have_text("3")
    expect(page.locator("#count-adjudicated")).to_have_text("1")
    final = Judgment.objects.get(comparison=top, source=LabelSource.ADJUDICATED)
    assert (final.choice, final.strength, final.metadata["decided_by"]) == ("B", 3, owner.username)
    assert ReviewItem.objects.get(comparison=top).status == "adjudicated"
    page.goto(f"/p/{project.slug}/quality/")
    expect(page.locator("#review-open")).to_have_text("3")
    assert page.console_errors == []
