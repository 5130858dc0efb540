"""The active-learning page in a real browser: the leaderboard of sources with the
projected votes to the target precision, at desktop and phone widths."""

from __future__ import annotations

import os

import numpy as np
import pytest
from playwright.sync_api import expect

from annotate.models import Comparison, Judgment
from tests.browser.conftest import login
from tests.conftest import REPO, make_user
from tests.factories import fill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-only"
SHOTS = REPO / "var" / "screenshots"


def test_leaderboard_shows_projected_votes_without_sideways_scroll(page, project, owner):
    fill(project, prompts=4, responses=3)
    coins = np.random.default_rng(0)
    raters = [make_user(f"sel-{i}") for i in range(3)]
    for c in Comparison.objects.order_by("id"):
        for rater in raters:
            Judgment.objects.create(comparison=c, annotator=rater, source="human", choice="AB"[coins.integers(2)])
    login(page, owner.username, PASSWORD)
    for width, height, name in ((1400, 900, "desktop"), (390, 844, "narrow")):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/p/{project.slug}/selection/")
        expect(page.locator("#leaderboard-projection")).to_contain_text("more at the same mix of pairs")
        overflow = page.evaluate("document.body.scrollWidth - document.body.clientWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow}px at {width} px"
        if os.environ.get("PREFLAB_SCREENSHOTS"):
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=SHOTS / f"selection-{name}.png", full_page=True)
    assert page.console_errors == []
