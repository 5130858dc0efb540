"""Annotating in a real browser: the keyboard flows of the work page, stored canonically.

The work page (annotate/views.work) leases a task and renders it into #task; htmx
posts the answer and swaps the next task in without reloading the page. The keys
are handled by frontend/static/preflab/annotate.js. Every answer is checked in the
database afterwards, in canonical terms (A = comparison.response_a), so a mix-up of
the shown order and the stored order cannot pass unnoticed.
"""

from __future__ import annotations

import random
import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from annotate import queue, services, slots
from annotate.models import Assignment, Comparison, Judgment, Prompt, Ranking, Rating, Response
from tests.browser.conftest import login
from tests.factories import fill, pin_rubric

# live_server runs in another thread, so the data must be committed: transactional.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests-only"  # make_user's default in tests/conftest.py
ALL_KINDS = ["pairwise", "rating", "ranking"]
XSS = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=2"> [click](javascript:window.__xss=3)'
# Typed into the rationale box: also tries to break out of the <textarea> it is re-rendered in.
XSS_RATIONALE = (
    '</textarea><script>window.__xss=4</script><img src=x onerror="window.__xss=5"> [click](javascript:window.__xss=6)'
)


def _enable_all_kinds(project) -> None:
    project.task_kinds = ALL_KINDS
    project.save(update_fields=["task_kinds"])


def _assignment_id(page) -> int:
    return int(page.locator("#task-form").get_attribute("data-assignment"))


def _wait_for_next_task(page, previous: int) -> int:
    """Wait until htmx swapped a different task into #task; returns its assignment id."""
    expect(page.locator("#task-form")).not_to_have_attribute("data-assignment", str(previous))
    return _assignment_id(page)


def _is_focused(locator) -> bool:
    return locator.evaluate("el => el === document.activeElement")


def _tab_to(page, locator, key: str = "Tab", limit: int = 30) -> None:
    """Move the focus with the keyboard alone until ``locator`` has it."""
    for _ in range(limit):
        if _is_focused(locator):
            return
        page.keyboard.press(key)
    assert _is_focused(locator), f"{key} never reached {locator}"


def _canonical(shown_left: int, comparison: Comparison, preference: int, criterion: str):
    """What the server must store for an answer given in shown terms (left = "A")."""
    same = shown_left == comparison.response_a_id
    strength = preference if same else -preference
    choice = "A" if strength < 0 else "B" if strength > 0 else "tie"
    crit = criterion if same else {"A": "B", "B": "A"}.get(criterion, criterion)
    return choice, strength, crit


class _AlternatingSides:
    """Stands in for annotate.queue's ``random``: the shown left side alternates
    (B, A, B, …) so both the kept and the swapped order are always exercised."""

    def __init__(self):
        self.calls = 0

    def choice(self, seq):
        self.calls += 1
        return seq[self.calls % 2]

    def __getattr__(self, name):
        return getattr(random, name)


def test_annotator_labels_three_pairwise_tasks_with_the_keyboard_only(page, annotator, project, monkeypatch):
    monkeypatch.setattr(queue, "random", _AlternatingSides())
    _enable_all_kinds(project)
    pin_rubric(project, criteria=[{"key": "correct", "name": "Correctness", "scale": "pairwise"}])
    fill(project, prompts=3, responses=2)
    login(page, annotator.username, PASSWORD)

    page.goto(f"/p/{project.slug}/work/pairwise/")
    work_path = urlparse(page.url).path
    expect(page.locator("#task-form")).to_have_attribute("data-kind", "pairwise")
    # Survives only if every later task arrives without a full page load.
    page.evaluate("window.__marker = 1")

    # (overall key, shown preference it means, criterion key, shown criterion answer, how to submit)
    plan = [
        ("2", -2, "a", "A", "ctrl"),   # left better; left correct
        ("6", 2, "b", "B", "escape"),  # right better; right correct
        ("4", 0, "t", "tie", "ctrl"),  # tie; tie
    ]
    seen = []
    for n, (key, preference, crit_key, crit_answer, submit) in enumerate(plan):
        form = page.locator("#task-form")
        assignment_id = _assignment_id(page)
        left = page.locator("article.response").first
        expect(left).to_have_attribute("data-side", "A")
        left_id = int(left.get_attribute("data-response"))
        rationale = f"Task {n + 1}: judged by keyboard, key {key}."

        page.keyboard.press(key)
        expect(form.locator(f"#preference input[data-key='{key}']")).to_be_checked()
        page.keyboard.press(crit_key)
        expect(form.locator(f"fieldset.pairwise-row input[value='{crit_answer}']")).to_be_checked()
        page.keyboard.press("r")
        expect(form.locator("#rationale")).to_be_focused()
        page.keyboard.type(rationale)
        expect(form.locator("#rationale")).to_have_value(rationale)  # "r" itself was not typed
        if submit == "ctrl":
            page.keyboard.press("Control+Enter")
        else:
            page.keyboard.press("Escape")
            expect(form.locator("#rationale")).not_to_be_focused()
            page.keyboard.press("Enter")

        if n < len(plan) - 1:
            _wait_for_next_task(page, assignment_id)
        else:
            expect(page.locator("#no-task")).to_be_visible()
        seen.append((assignment_id, left_id, preference, crit_answer, rationale))

    expect(page.locator("#task .progressline")).to_contain_text("total 3")
    assert urlparse(page.url).path == work_path
    assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping tasks"
    assert page.console_errors == []

    judgments = {j.assignment_id: j for j in Judgment.objects.filter(annotator=annotator).select_related("comparison")}
    assert len(judgments) == 3
    # both orders were shown: left = response_a on one task, left = response_b on another
    assert {j.shown_left_id == j.comparison.response_a_id for j in judgments.values()} == {True, False}
    assert sorted(judgments) == sorted(a for a, *_ in seen)
    for assignment_id, left_id, preference, crit_answer, rationale in seen:
        j = judgments[assignment_id]
        choice, strength, crit = _canonical(left_id, j.comparison, preference, crit_answer)
        assert j.shown_left_id == left_id
        assert left_id in (j.comparison.response_a_id, j.comparison.response_b_id)
        assert (j.choice, j.strength) == (choice, strength), f"assignment {assignment_id}"
        assert j.criteria == {"correct": crit}
        assert j.rationale == rationale
        assert j.rubric_version_id == project.rubric_version_id is not None
        assert j.time_on_task_ms is not None and j.time_on_task_ms > 0
        assert j.source == "human"
    assert set(
        Assignment.objects.filter(annotator=annotator, kind="pairwise").values_list("state", flat=True)
    ) == {Assignment.State.SUBMITTED}


def test_annotator_rates_one_response_and_ranks_with_a_tie(page, annotator, project):
    _enable_all_kinds(project)
    pin_rubric(project, criteria=[
        {"key": "quality", "name": "Quality", "scale": "likert", "min": 0, "max": 4,
         "anchors": {"0": "useless", "4": "excellent"}},
        {"key": "safe", "name": "Safe", "scale": "binary"},
    ])
    fill(project, prompts=1, responses=3)
    login(page, annotator.username, PASSWORD)
    page.mouse.move(0, 0)  # away from any .level: :hover must not show an anchor

    # --- rating ----------------------------------------------------------------
    page.goto(f"/p/{project.slug}/work/rating/")
    form = page.locator("#task-form")
    expect(form).to_have_attribute("data-kind", "rating")
    rating_assignment = _assignment_id(page)
    rated_id = int(form.locator("article.response").get_attribute("data-response"))
    useless = form.locator("#anchor-quality-0")
    key = form.locator(".anchor-key[data-criterion=quality]")
    chosen = form.locator("fieldset[data-criterion=quality] .anchor-line")

    # Every anchored level's text is on screen as a key, before any hover or focus; the
    # tooltips would only repeat it (over the next criterion), so they stay hidden.
    expect(form.locator("input[name=score_quality][value='0']")).to_be_focused()
    expect(key).to_be_visible()
    expect(key.locator("span")).to_have_text(["0 useless", "4 excellent"])
    expect(useless).to_be_hidden()
    expect(chosen).to_have_text("")

    page.keyboard.press("3")  # quality 3, then the focus moves on to "safe"
    expect(form.locator("input[name=score_quality][value='3']")).to_be_checked()
    expect(form.locator("input[name=score_safe][value='yes']")).to_be_focused()
    expect(chosen).to_have_text("")  # level 3 has no anchor
    page.keyboard.press("1")  # yes
    expect(form.locator("input[name=score_safe][value='yes']")).to_be_checked()

    # Back into the Likert group by keyboard: the arrow chooses level 4, whose anchor the line repeats.
    level3 = form.locator("input[name=score_quality][value='3']")
    _tab_to(page, level3, key="Shift+Tab")
    page.keyboard.press("ArrowRight")
    expect(form.locator("input[name=score_quality][value='4']")).to_be_focused()
    expect(chosen).to_have_text("excellent")
    page.keyboard.press("ArrowLeft")
    expect(level3).to_be_checked()
    expect(chosen).to_have_text("")

    page.keyboard.press("Enter")
    # the next rating task (another response of the same prompt) is swapped in
    expect(page.locator(f"#task-form[data-assignment='{rating_assignment}']")).to_have_count(0)
    expect(page.locator("#task .progressline")).to_contain_text("total 1")

    rating = Rating.objects.get(annotator=annotator)
    assert rating.assignment_id == rating_assignment
    assert rating.response_id == rated_id
    assert rating.scores == {"quality": 3, "safe": True}
    assert rating.rubric_version_id == project.rubric_version_id is not None
    assert rating.time_on_task_ms is not None and rating.time_on_task_ms > 0

    # --- ranking: two responses share rank 1, the third is ranked 2 --------------
    page.goto(f"/p/{project.slug}/work/ranking/")
    form = page.locator("#task-form")
    expect(form).to_have_attribute("data-kind", "ranking")
    ranking_assignment = _assignment_id(page)
    items = form.locator("li.rank-item")
    expect(items).to_have_count(3)
    ids = [int(i) for i in items.evaluate_all("els => els.map(e => e.dataset.response)")]
    assert sorted(ids) == sorted(Response.objects.filter(prompt__project=project).values_list("id", flat=True))

    # The first and the last listed tie (not neighbours, so order alone cannot explain it).
    for item, key in zip((items.nth(0), items.nth(1), items.nth(2)), ("1", "2", "1")):
        _tab_to(page, item)
        page.keyboard.press(key)
        expect(item.locator("select.rank")).to_have_value(key)
        expect(item).to_have_class(re.compile(r"\branked\b"))
    expect(items.nth(2)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()

    ranking = Ranking.objects.get(annotator=annotator)
    assert ranking.assignment_id == ranking_assignment
    assert ranking.groups == [sorted([ids[0], ids[2]]), [ids[1]]]
    assert ranking.rubric_version_id == project.rubric_version_id
    assert ranking.time_on_task_ms is not None and ranking.time_on_task_ms > 0
    assert page.console_errors == []


def test_xss_payloads_in_prompt_response_and_rationale_render_inert(page, annotator, project):
    prompt = Prompt.objects.create(
        project=project, external_id="evil", conversation=[{"role": "user", "content": f"Please answer: {XSS}"}],
    )
    Response.objects.create(prompt=prompt, external_id="r-evil", text=f"Sure. {XSS}")
    Response.objects.create(prompt=prompt, external_id="r-plain", text="A plain answer.")
    slots.queue_slots_rebuild(project=project)  # written past the import: into the queue
    services.comparisons_generate(project=project)
    login(page, annotator.username, PASSWORD)

    def assert_inert():
        assert page.evaluate("window.__xss") is None
        assert page.locator('a[href^="javascript:" i]').count() == 0
        assert page.locator("#task script, #task img").count() == 0

    page.goto(f"/p/{project.slug}/work/pairwise/")
    form = page.locator("#task-form")
    # The payload is shown as text, verbatim, in the prompt and in the response.
    expect(form.locator("section.conversation")).to_contain_text(XSS)
    expect(form.locator("article.response").filter(has_text="Sure.")).to_contain_text(XSS)
    assert_inert()
    assignment_id = _assignment_id(page)

    # 1. Submit with a rationale but without the overall choice: htmx re-renders the
    #    same task with the error, and the rationale kept in the text box.
    page.keyboard.press("r")
    page.keyboard.type(XSS_RATIONALE)
    page.keyboard.press("Control+Enter")
    expect(form.locator("#task-errors")).to_contain_text("preference")
    assert _assignment_id(page) == assignment_id
    expect(form.locator("#rationale")).to_have_value(XSS_RATIONALE)
    expect(form.locator("textarea")).to_have_count(1)
    assert_inert()

    # 2. The same without htmx (form.submit() fires no submit event): the whole work
    #    page is rendered with the error and the rationale.
    with page.expect_navigation():
        page.evaluate("document.getElementById('task-form').submit()")
    form = page.locator("#task-form")
    expect(form.locator("#task-errors")).to_contain_text("preference")
    expect(form.locator("#rationale")).to_have_value(XSS_RATIONALE)
    expect(form.locator("section.conversation")).to_contain_text(XSS)
    assert_inert()

    # 3. Answer and submit: the payload is stored verbatim as the rationale.
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    expect(page.locator("#no-task")).to_be_visible()
    assert_inert()
    judgment = Judgment.objects.get(annotator=annotator)
    assert judgment.assignment_id == assignment_id
    assert judgment.rationale == XSS_RATIONALE

    page.goto(f"/p/{project.slug}/work/pairwise/")
    expect(page.locator("#no-task")).to_be_visible()
    assert_inert()
    assert page.console_errors == []


def test_help_overlay_and_skip_by_keyboard(page, annotator, project):
    fill(project, prompts=2, responses=2)
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/work/pairwise/")
    help_overlay = page.locator("#help")
    expect(page.locator("#task-form")).to_be_visible()
    expect(help_overlay).to_be_hidden()
    first = _assignment_id(page)
    first_option = page.locator("#preference input[data-key='1']")
    expect(first_option).to_be_focused()

    page.keyboard.press("?")
    expect(help_overlay).to_be_visible()
    expect(help_overlay).to_be_focused()
    expect(help_overlay).to_contain_text("Keyboard")
    page.keyboard.press("2")  # answer keys do nothing while the help is open
    expect(page.locator("#preference input:checked")).to_have_count(0)
    page.keyboard.press("Escape")
    expect(help_overlay).to_be_hidden()
    expect(first_option).to_be_focused()  # the focus goes back to the task, not to <body>

    reason = "I cannot judge this language"
    page.keyboard.press("s")
    expect(page.locator("#skip-reason")).to_be_focused()
    page.keyboard.type(reason)
    expect(page.locator("#skip-reason")).to_have_value(reason)  # "s" itself was not typed
    page.keyboard.press("Enter")
    second = _wait_for_next_task(page, first)
    expect(page.locator("#task .notice")).to_have_text("Skipped.")

    skipped = Assignment.objects.get(pk=first)
    assert skipped.annotator_id == annotator.pk
    assert skipped.state == Assignment.State.SKIPPED
    assert skipped.skip_reason == reason
    assert skipped.finished_at is not None
    assert Assignment.objects.get(pk=second).state == Assignment.State.ACTIVE
    assert skipped.comparison_id != Assignment.objects.get(pk=second).comparison_id
    assert not Judgment.objects.filter(annotator=annotator).exists()
    assert page.console_errors == []


def test_rating_offers_every_response_of_a_prompt(page, annotator, project):
    _enable_all_kinds(project)
    pin_rubric(project, criteria=[{"key": "safe", "name": "Safe", "scale": "binary"}])
    fill(project, prompts=1, responses=3)
    login(page, annotator.username, PASSWORD)
    page.goto(f"/p/{project.slug}/work/rating/")
    for n in range(3):
        assignment_id = _assignment_id(page)
        page.keyboard.press("1")
        page.keyboard.press("Enter")
        if n < 2:
            _wait_for_next_task(page, assignment_id)
    expect(page.locator("#no-task")).to_be_visible()
    assert Rating.objects.filter(annotator=annotator).count() == 3
