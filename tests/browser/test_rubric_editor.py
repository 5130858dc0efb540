"""The rubric editor in a real browser: a researcher builds a rubric with htmx (no
page reloads), reorders it, publishes and pins it; an annotator then works under
exactly that rubric."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Membership, Role
from rubrics.models import RubricVersion
from tests.browser.conftest import login
from tests.factories import fill

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-only"


def _add_criterion(page, *, key, name, scale, anchors=None, kind=None, max_=None):
    form = page.locator("#add-form")
    # htmx binds its listeners to swapped-in content during the settle step (about
    # 20 ms after the swap): a change made before that sends no request.
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")
    if scale != "likert":
        # htmx re-renders the whole add form for the scale: wait for the new form
        # before typing, or the swap would wipe what was typed meanwhile.
        page.evaluate("document.querySelector('#add-form').dataset.stale = '1'")
        page.select_option("#add-scale", scale)
        page.wait_for_function("document.querySelector('#add-form') && !document.querySelector('#add-form').dataset.stale")
        expect(page.locator("#add-scale")).to_have_value(scale)
    if max_ is not None:
        page.fill("#add-max", str(max_))
        page.press("#add-max", "Tab")  # change → htmx re-renders the anchor inputs
        expect(page.locator(f"#add-anchor-{max_}")).to_be_visible()
        expect(page.locator(f"#add-anchor-{max_ + 1}")).to_have_count(0)
    page.fill("#add-key", key)
    page.fill("#add-name", name)
    if kind:
        page.select_option("#add-kind", kind)
    for level, text in (anchors or {}).items():
        page.fill(f"#add-anchor-{level}", text)
    form.locator("button[type=submit]").click()
    expect(page.locator(f"#criteria li[data-key={key}]")).to_be_visible()


def _keys(page, selector: str, attr: str) -> list[str]:
    return page.locator(selector).evaluate_all(f"els => els.map(e => e.getAttribute('{attr}'))")


def test_researcher_builds_publishes_and_pins_and_annotator_sees_it(page, browser, live_server, project, owner, annotator):
    Membership.objects.filter(project=project, user=owner).delete()
    Membership.objects.create(project=project, user=owner, role=Role.RESEARCHER)
    project.task_kinds = ["pairwise", "rating"]
    project.save(update_fields=["task_kinds"])
    fill(project, prompts=2, responses=2)

    login(page, owner.username, PASSWORD)
    page.goto("/rubrics/")
    page.fill("#new-name", "Browser rubric")
    page.fill("#new-slug", "browser-rubric")
    page.click("#new-rubric button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/rubrics/browser-rubric/v/1/edit/")
    page.evaluate("window.__sameDocument = 42")  # survives only if nothing reloads the page

    _add_criterion(page, key="clarity", name="Clarity", scale="likert", max_=3,
                   anchors={"0": "Unreadable", "1": "Hard going", "2": "Clear enough", "3": "Crystal clear"})
    _add_criterion(page, key="safe", name="Safe", scale="binary", kind="hard_rule",
                   anchors={"yes": "Nothing harmful", "no": "Helps with harm"})
    _add_criterion(page, key="tone", name="Tone", scale="pairwise")
    assert _keys(page, "#criteria > li", "data-key") == ["clarity", "safe", "tone"]

    # Reorder: Safe moves above Clarity.
    page.get_by_role("button", name="Move Safe up").click()
    expect(page.locator("#criteria > li").first).to_have_attribute("data-key", "safe")
    assert _keys(page, "#criteria > li", "data-key") == ["safe", "clarity", "tone"]
    # The live preview follows: the rating form lists Safe then Clarity with the anchor text.
    assert _keys(page, "#preview fieldset.rating-row", "data-criterion") == ["safe", "clarity"]
    expect(page.locator("#preview #anchor-clarity-3")).to_have_text("Crystal clear")
    assert page.evaluate("window.__sameDocument") == 42

    # An invalid edit shows its error beside the field and changes nothing.
    page.get_by_role("link", name="Edit Clarity").click()
    page.fill("#edit-key", "Not A Key")
    page.click("#edit-form-clarity button[type=submit]")
    expect(page.locator("#edit-form-clarity label[for=edit-key] .error")).to_contain_text("lowercase letters, digits and _")
    assert page.evaluate("window.__sameDocument") == 42
    page.get_by_role("link", name="Cancel").click()
    expect(page.locator("#criteria li[data-key=clarity] .crit-name")).to_have_text("Clarity")

    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click("#publish-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Published Browser rubric v1")
    assert "frozen" in asked[0]  # Publish asked first: it cannot be undone
    page.select_option("#pin-form select[name=project]", project.slug)
    page.click("#pin-form button[type=submit]")
    expect(page.locator(".messages")).to_contain_text(f"{project.name} now uses Browser rubric v1")
    version = RubricVersion.objects.get(rubric__slug="browser-rubric")
    project.refresh_from_db()
    assert version.status == "published" and project.rubric_version == version
    assert list(version.criteria.values_list("key", flat=True)) == ["safe", "clarity", "tone"]
    assert page.console_errors == []

    # The annotator, in a separate session.
    context = browser.new_context(base_url=live_server.url)
    ann = context.new_page()
    try:
        login(ann, annotator.username, PASSWORD)
        ann.goto(f"/p/{project.slug}/work/rating/")
        assert _keys(ann, "#task fieldset.rating-row", "data-criterion") == ["safe", "clarity"]
        assert _keys(ann, "#rubric-help li", "data-criterion-help") == ["safe", "clarity", "tone"]
        ann.click("#rubric-help summary")
        help_clarity = ann.locator("#rubric-help li[data-criterion-help=clarity]")
        for text in ("Unreadable", "Hard going", "Clear enough", "Crystal clear"):
            expect(help_clarity).to_contain_text(text)
        # The anchors are on screen above the scale, as a key.
        expect(ann.locator(".anchor-key[data-criterion=clarity]")).to_be_visible()
        expect(ann.locator(".anchor-key[data-criterion=clarity]")).to_contain_text("3 Crystal clear")
        expect(ann.locator("#anchor-clarity-3")).to_have_text("Crystal clear")
        expect(ann.locator("fieldset[data-criterion=safe] .anchor").first).to_have_text("Nothing harmful")
        ann.goto(f"/p/{project.slug}/work/pairwise/")
        assert _keys(ann, "#task fieldset.pairwise-row", "data-criterion") == ["tone"]
    finally:
        context.close()
