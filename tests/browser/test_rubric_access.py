"""A researcher of another project on a shared rubric's page: the library view
(no edit buttons, a note saying who may change it), readable at phone width."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import login
from tests.factories import two_project_world

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("width", [1400, 390])
def test_rubric_page_of_a_stranger_fits_and_offers_no_edits(page, tmp_path, width):
    two_project_world(tmp_path)
    page.set_viewport_size({"width": width, "height": 900})
    login(page, "rob-elsewhere", "pw-for-tests-only")
    page.goto("/rubrics/shared/?v=2")
    expect(page.get_by_text("clone it to make your own")).to_be_visible()
    expect(page.get_by_role("link", name="Edit draft")).to_have_count(0)
    expect(page.locator("#versions")).not_to_contain_text("Here")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    page.screenshot(path=str(tmp_path.parent / f"rubric-stranger-{width}.png"), full_page=True)
    assert page.console_errors == []
