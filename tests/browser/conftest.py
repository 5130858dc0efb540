"""Fixtures for real-browser tests: Playwright (sync API) driving Debian's Chromium.

Why DJANGO_ALLOW_ASYNC_UNSAFE: Playwright's sync API runs an asyncio event loop
in the test's own thread. Django's async-safety guard sees that running loop and
raises SynchronousOnlyOperation for ORM calls the test itself makes (creating
fixtures, checking rows) while the browser is open. The live server answers
requests in its own thread, so the guard protects nothing here.

We never run `playwright install`: the browser is Debian's `chromium` package
(.ci/run installs it). Without /usr/bin/chromium the tests are skipped, or fail
when PREFLAB_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.conftest import REPO, _missing_service

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
FAILURE_DIR = REPO / "var" / "browser-failures"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item so the `page` fixture's teardown
    # can tell whether the test body failed (and take a screenshot).
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _missing_service(f"{CHROMIUM} is absent: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # no-sandbox: CI runs as root in a container; no background
            # networking: nothing may reach outside the test server.
            args=["--no-sandbox", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    # Tests assert this stays empty: a JS error or a failed asset is a bug.
    page.console_errors = []

    def on_console(msg):
        # The browser's own /favicon.ico probe 404s (the app has none); no page asked for it.
        if msg.type == "error" and urlparse(msg.location.get("url", "")).path != "/favicon.ico":
            page.console_errors.append(f"console: {msg.text} ({msg.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: page.console_errors.append(f"pageerror: {exc}"))
    yield page
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        FAILURE_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=FAILURE_DIR / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', request.node.name)}.png", full_page=True)
    context.close()


def login(page, username: str, password: str) -> None:
    """Log in through the real form (registration/login.html) and wait to leave it."""
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("form[action='/login/'] button[type=submit]")
    page.wait_for_url(lambda url: urlparse(url).path != "/login/")
