"""Smoke tests in a real browser: login, project visibility, escaping."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate import services
from tests.browser.conftest import login

# live_server runs in another thread, so the data must be committed: transactional.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-only"  # make_user's default in tests/conftest.py
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def test_annotator_logs_in_and_sees_only_their_projects(page, annotator, project, other_project):
    login(page, annotator.username, PASSWORD)

    expect(page.locator("header .who")).to_have_text(annotator.username)
    projects = page.locator("table.grid tbody")
    expect(projects.get_by_role("link", name=project.name, exact=True)).to_be_visible()
    expect(projects).not_to_contain_text(other_project.name)
    assert page.console_errors == []


def test_xss_payload_in_project_name_and_description_renders_inert(page, owner):
    evil = services.project_create(name=f"Evil {XSS}", slug="evil", description=f"About {XSS}", created_by=owner)
    login(page, owner.username, PASSWORD)

    # Home: the name is a link whose text is the payload, not markup.
    expect(page.get_by_role("link", name=evil.name, exact=True)).to_be_visible()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img").count() == 0

    page.goto(f"/p/{evil.slug}/")
    expect(page.locator("main h1")).to_have_text(evil.name)
    expect(page.locator("main")).to_contain_text(evil.description)
    assert page.evaluate("window.__xss") is None
    assert page.locator("main script, main img").count() == 0
    assert page.console_errors == []
