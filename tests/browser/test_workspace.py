"""The researcher's workspace in a real browser: a project made, filled, staffed and
labelled without the Django admin; every page at 390 px without sideways scroll;
a long (CNN/DM) article and both summaries on one 1400×900 screen.

PREFLAB_SCREENSHOT_DIR=docs saves the screenshots the README shows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from annotate import services
from annotate.models import Comparison, Judgment, Membership, Project, Ranking, Rating, Role
from dataio.exports import services as exports
from dataio.exports.spec import ExportSpec
from rubrics import services as rubric_services
from tests.browser.conftest import login
from tests.conftest import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-only"
NARROW = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 900}
SHOTS = os.environ.get("PREFLAB_SCREENSHOT_DIR")


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def _both_widths(page, name: str) -> None:
    """The page fits at 390 px (and is saved at both widths); back to the desktop."""
    for size, suffix in ((DESKTOP, "desktop"), (NARROW, "narrow")):
        page.set_viewport_size(size)
        _shot(page, f"{name}-{suffix}")
        assert _fits(page), f"{name} at {size['width']} px"
    page.set_viewport_size(DESKTOP)


def _cnndm(shared_data) -> Path:
    return shared_data / "summarize-from-feedback" / "batch0_cnndm.json"


def _fits(page) -> bool:
    return page.evaluate("document.body.scrollWidth <= document.body.clientWidth + 1")


# The innermost elements that stick out on the right: named in a failure, to find the culprit.
_OVERFLOWING = """() => [...document.body.querySelectorAll('*')].filter(el => {
  const r = el.getBoundingClientRect();
  return r.right > document.body.clientWidth + 1 && r.width > 0
    && ![...el.children].some(c => c.getBoundingClientRect().right > document.body.clientWidth + 1);
}).slice(0, 5).map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + '.' + [...el.classList].join('.'))"""


def test_researcher_creates_fills_and_staffs_a_project_that_an_annotator_labels(page, owner, project, shared_data,
                                                                                 celery_eager):
    """``owner`` runs ``project`` already, so they may create another one."""
    login(page, owner.username, PASSWORD)
    page.click("#new-project")
    page.fill("#id_name", "CNN/DM summaries")
    page.fill("#id_slug", "cnndm")
    page.check("input[name=task_kinds][value=pairwise]")
    page.fill("#id_guidelines", "Prefer the summary that is **faithful** to the article.")
    expect(page.locator("#guidelines-preview strong")).to_have_text("faithful")  # the live preview
    page.fill("#id_overlap", "2")
    page.fill("#id_license", "cc-by-4.0")
    _both_widths(page, "project-new")
    page.click("#project-form button[type=submit]")
    expect(page.locator("main h1")).to_have_text("CNN/DM summaries")
    created = Project.objects.get(slug="cnndm")
    assert (created.overlap, created.license) == (2, "cc-by-4.0")
    assert Membership.objects.get(project=created, user=owner).role == Role.RESEARCHER
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.locator("#id_overlap")).to_have_value("2")
    _both_widths(page, "project-settings")
    page.go_back()

    page.get_by_role("link", name="Import data", exact=True).click()
    page.select_option("#id_format", "summarize")
    page.set_input_files("#id_file", str(_cnndm(shared_data)))
    page.click("main form button[type=submit]")
    expect(page.locator("main")).to_contain_text("succeeded", timeout=60_000)

    page.get_by_role("link", name="Members", exact=True).click()
    page.fill("#create-member #id_username", "casey")
    page.check("#create-member input[name=how][value=password]")
    page.click("#create-member button[type=submit]")
    password = page.locator("#one-time-password").inner_text()
    expect(page.locator("#members")).to_contain_text("casey")
    _both_widths(page, "members")
    page.click("header button:text('Log out')")

    login(page, "casey", password)
    page.click("#projects tr[data-project=cnndm] a:text('Start pairwise')")
    expect(page.locator("#task-form .response")).to_have_count(2)
    assignment = page.locator("#task-form").get_attribute("data-assignment")
    page.locator("#preference label.opt").nth(2).click()  # "A slightly better"
    page.click("#task-form button[type=submit]")
    expect(page.locator("#task-form")).not_to_have_attribute("data-assignment", assignment)
    label = Judgment.objects.get(annotator__username="casey")
    assert label.comparison.project == created and label.assignment_id == int(assignment)
    page.click("header button:text('Log out')")

    # The researcher exports and reads the dataset card in the browser.
    login(page, owner.username, PASSWORD)
    page.goto("/p/cnndm/")
    expect(page.locator("#stat-judgments")).to_have_text("438judgments")  # 437 imported + casey's
    page.get_by_role("link", name="Export data", exact=True).click()
    page.select_option("#id_aggregate", "majority")
    page.click("main form button[type=submit]")
    page.locator("#export-jobs a:text('card')").click(timeout=60_000)
    expect(page.locator("article.dataset-card h1")).to_contain_text("CNN/DM summaries")
    expect(page.locator("article.dataset-card table").first).to_contain_text("cc-by-4.0")
    expect(page.get_by_role("link", name="Download the data")).to_be_visible()
    _both_widths(page, "export-card")
    assert page.console_errors == []


def _full_project(owner, annotator, shared_data) -> Project:
    version = rubric_services.rubric_version_publish(
        version=rubric_services.rubric_create_from_template(template="helpsteer2", slug="hs2", name="HelpSteer2"))
    project = services.project_create(name="CNN/DM", slug="cnndm", created_by=owner, rubric_version=version,
                                      task_kinds=["pairwise", "rating", "ranking"], overlap=2)
    services.membership_set(project=project, user=annotator, role=Role.ANNOTATOR)
    rubric_services.rubric_version_new_draft(version=version, changelog="a draft to edit")
    call_command("import_data", project.slug, str(_cnndm(shared_data)), "--format", "summarize")
    return project


def test_every_page_fits_390px(page, owner, annotator, shared_data):
    project = _full_project(owner, annotator, shared_data)
    make_user("kim")
    # a label of every kind, so My labels shows long articles and summaries too
    comparison = Comparison.objects.filter(project=project).select_related("prompt").first()
    Judgment.objects.create(comparison=comparison, annotator=annotator, choice="A", strength=-1, rationale="x" * 300)
    Rating.objects.create(response=comparison.response_a, annotator=annotator, scores={"helpfulness": 3})
    Ranking.objects.create(prompt=comparison.prompt, annotator=annotator,
                           groups=[[comparison.response_b_id], [comparison.response_a_id]])
    # a finished export, so the card page (markdown tables as wide as the raw format's) is checked too
    export = exports.export_job_run(job_id=exports.export_job_create(project=project, spec=ExportSpec(format="raw")).pk)
    p = f"/p/{project.slug}"
    researcher_pages = [
        "/", "/projects/new/", f"{p}/", f"{p}/settings/", f"{p}/members/", f"{p}/import/", f"{p}/exports/",
        f"{p}/exports/{export.pk}/",
        f"{p}/progress/", f"{p}/quality/", f"{p}/quality/review/", f"{p}/models/", f"{p}/selection/", f"{p}/derived/",
        "/rubrics/", "/rubrics/hs2/", "/rubrics/hs2/v/2/edit/", "/rubrics/hs2/diff/?a=1&b=2",
        "/account/password/",
    ]
    annotator_pages = ["/", f"{p}/", f"{p}/work/pairwise/", f"{p}/work/rating/", f"{p}/work/ranking/", f"{p}/mine/",
                       "/account/password/"]
    page.set_viewport_size(NARROW)
    wide = []
    for user, urls in ((owner, researcher_pages), (annotator, annotator_pages)):
        login(page, user.username, PASSWORD)
        for url in urls:
            assert page.goto(url).status == 200, url
            page.wait_for_load_state("networkidle")
            _shot(page, "390-" + user.username + re.sub(r"[^a-z0-9]+", "-", url).rstrip("-"))
            if not _fits(page):
                wide.append((user.username, url, page.evaluate(_OVERFLOWING)))
        page.context.clear_cookies()
    assert wide == []
    assert page.console_errors == []


def test_cnndm_article_and_both_summaries_on_one_desktop_screen(page, owner, annotator, shared_data):
    project = _full_project(owner, annotator, shared_data)
    page.set_viewport_size(DESKTOP)
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/work/pairwise/")
    article = page.locator("section.conversation")
    paragraphs = article.locator(".md p").count()
    assert paragraphs >= 10, paragraphs  # a long article, not a one-liner
    for response in page.locator("#task-form .response").all():
        box = response.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= DESKTOP["height"], box
    assert article.bounding_box()["y"] < DESKTOP["height"]
    _shot(page, "pairwise-long-prompt-desktop")
    page.click("details.prompt-panel > summary")  # folds away
    expect(article).to_be_hidden()
    assert page.console_errors == []


def test_a_chosen_rating_level_shows_its_anchor_text(page, owner, annotator, shared_data):
    project = _full_project(owner, annotator, shared_data)
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/work/rating/")
    row = page.locator("fieldset.rating-row").first
    level = row.locator("label.level").nth(1)
    anchor = level.locator(".anchor").text_content()
    assert anchor  # HelpSteer2 writes an anchor for every level
    # Before any choice the levels' anchors are on screen as a key, not only digits.
    expect(row.locator(".anchor-key")).to_be_visible()
    expect(row.locator(".anchor-key")).to_contain_text(anchor)
    expect(row.locator(".anchor-line")).to_have_text("")
    level.locator("input").check()
    expect(row.locator(".anchor-line")).to_have_text(anchor)
    assert page.console_errors == []


def test_api_documentation_page_is_served_without_a_cdn(page, owner):
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    login(page, owner.username, PASSWORD)
    page.goto("/api/v1/docs/")
    expect(page.locator("body")).to_contain_text("PrefLab API", timeout=20_000)
    expect(page.locator("body")).to_contain_text("/api/v1/projects/{slug}/members/")
    base = page.url.split("/api/")[0]
    assert [u for u in requests if not u.startswith((base, "blob:", "data:"))] == []
    assert page.console_errors == []


def test_an_annotator_sees_no_researcher_links_and_a_403_page_that_says_who_may_open_one(page, annotator, project):
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/")
    expect(page.locator("#my-counts")).to_be_visible()
    for name in ("Settings", "Members", "Label quality", "Import data", "Export data"):
        expect(page.get_by_role("link", name=name)).to_have_count(0)
    response = page.goto(f"/p/{project.slug}/settings/")
    assert response.status == 403
    expect(page.locator("#forbidden")).to_contain_text("Only this project's researchers may open this page.")
    _both_widths(page, "forbidden")
    page.get_by_role("link", name="Back to your projects").click()
    expect(page.locator("#projects")).to_contain_text(project.name)
    # the browser logs the 403 we asked for; anything else is a bug
    assert [e for e in page.console_errors if "status of 403" not in e] == []
