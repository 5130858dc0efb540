"""Span tagging in a real browser: a text selection becomes character offsets into
the raw response text, and the stored span is shown back on "My labels"."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from annotate.models import Rating
from tests.browser.conftest import login
from tests.factories import fill, pin_rubric

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_selected_text_is_tagged_stored_as_offsets_and_shown_back(page, annotator, project):
    project.task_kinds = ["pairwise", "rating"]
    project.save()
    pin_rubric(project, criteria=[{"key": "errs", "name": "Errors", "scale": "spans",
                                   "error_types": [{"key": "factual", "name": "Factual error"}]}])
    fill(project, prompts=1, responses=1)
    login(page, annotator.username, "pw-for-tests-only")
    page.goto(f"/p/{project.slug}/work/rating/")
    pre = page.locator("pre.spantext")
    raw = pre.inner_text()  # "Answer 0 to question 0."
    start = raw.index("question")
    # select "question" the way a mouse drag does: a DOM Range over the text node
    page.evaluate(
        """([start, end]) => {
            const node = document.querySelector('pre.spantext').firstChild;
            const r = document.createRange(); r.setStart(node, start); r.setEnd(node, end);
            const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
        }""",
        [start, start + len("question")],
    )
    page.get_by_role("button", name="Factual error").click()
    expect(pre.locator("mark")).to_have_text("question")
    expect(page.locator(".spanlist li")).to_contain_text("factual: “question”")
    page.locator("#task-form button[type=submit]").click()
    expect(page.locator("#no-task")).to_be_visible()

    rating = Rating.objects.get(annotator=annotator)
    assert rating.spans == [{"response": rating.response_id, "start": start, "end": start + 8,
                             "type": "factual", "text": "question"}]
    page.goto(f"/p/{project.slug}/mine/")
    expect(page.locator("article.label pre.spantext mark")).to_have_text("question")
    assert page.console_errors == []
