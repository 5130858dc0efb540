"""The review / adjudication queue (issue #16 point 4): flagged comparisons collected
from the noise audit, low agreement and annotators' flags, ordered by evidence;
a researcher's decisions (final label, more labels, ambiguous) and what they change
downstream (exports, training, agreement, progress); researchers only."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from annotate import queue, submit
from annotate.models import Comparison, ExportJob, Judgment, LabelSource, QueueSlot
from annotate.presenters import annotator_pseudonym
from annotate.stats import project_progress
from dataio.exports.services import export_write
from dataio.exports.spec import ExportSpec
from dataio.forms import ExportForm
from models_svc.services.training_data import labels_snapshot, training_judgments
from quality import review
from quality.models import NoiseAudit, PairScore, ReviewItem
from quality.services import project_agreement
from tests.factories import annotators, fill

pytestmark = pytest.mark.django_db
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _client(user) -> Client:
    web = Client()
    web.force_login(user)
    return web


def _judge(comparison, user, choice, **extra):
    strength = {"A": -2, "B": 2, "tie": 0}.get(choice)
    return Judgment.objects.create(comparison=comparison, annotator=user, choice=choice, strength=strength,
                                   source="human", shown_left_id=comparison.response_b_id, time_on_task_ms=5200,
                                   **extra)


@pytest.fixture
def flagged(project):
    return flag_five(project)


def flag_five(project) -> dict:
    """Five comparisons, each flagged (or not) for one reason; comments give the votes
    and the audit's μ, σ of r(A) − r(B)."""
    fill(project, prompts=5, responses=2)
    crew = annotators(project, 3)
    c = list(Comparison.objects.filter(project=project).order_by("id"))
    for user in crew:
        _judge(c[0], user, "A")  # c0: A A A; μ −2, σ 0.5 → every label 4 spreads against the model
    _judge(c[1], crew[0], "A")  # c1: A B → share ½: low agreement
    _judge(c[1], crew[1], "B")
    _judge(c[2], crew[0], "A", flags=["offensive"])  # c2: A A, both flagged
    _judge(c[2], crew[1], "A", flags=["unclear prompt"])
    for user in crew:
        _judge(c[3], user, "A")  # c3: A A A; μ +2: the model agrees, nothing to review
    _judge(c[4], crew[0], "A")  # c4: one A; μ ≈ 0, σ ≈ 0: ambiguous
    audit = NoiseAudit.objects.create(project=project, status=NoiseAudit.Status.SUCCEEDED)
    for comparison, mu, sigma in ((c[0], -2.0, 0.5), (c[3], 2.0, 0.5), (c[4], 0.01, 0.01)):
        PairScore.objects.create(audit=audit, comparison=comparison, mu=mu, sigma=sigma)
    return {"project": project, "crew": crew, "c": c}


def test_refresh_collects_audit_flags_low_agreement_and_annotator_flags_ordered_by_evidence(flagged):
    project, c = flagged["project"], flagged["c"]
    counts = review.review_queue_refresh(project=project)
    assert counts == {"flagged": 4, "created": 4, "updated": 0, "kept": 0, "removed": 0}
    items = list(ReviewItem.objects.filter(project=project))  # Meta ordering: evidence, highest first
    assert [i.comparison_id for i in items] == [c[0].pk, c[2].pk, c[1].pk, c[4].pk]
    top, flags, split, ambiguous = items
    assert top.reasons == ["likely_flipped"] and top.evidence == pytest.approx(4.0)
    assert (top.mu, top.sigma) == (-2.0, 0.5)
    assert flags.reasons == ["annotator_flag"] and flags.evidence == pytest.approx(2 * review.ANNOTATOR_FLAG_WEIGHT)
    assert split.reasons == ["low_agreement"] and split.agreement == 0.5
    assert split.evidence == pytest.approx(review.LOW_AGREEMENT_WEIGHT * 0.5)
    assert ambiguous.reasons == ["ambiguous_pair"] and ambiguous.evidence == pytest.approx(review.AMBIGUOUS_WEIGHT)
    assert all(i.status == "open" for i in items)


def test_a_second_refresh_keeps_decided_items_and_drops_open_ones_no_longer_flagged(flagged, owner):
    project, c, crew = flagged["project"], flagged["c"], flagged["crew"]
    review.review_queue_refresh(project=project)
    split = ReviewItem.objects.get(comparison=c[1])
    review.review_item_adjudicate(item=split, user=owner, choice="B", strength=1)
    _judge(c[1], crew[2], "A")  # A B A: share ⅔, no longer low agreement (the adjudication is no vote)
    Judgment.objects.filter(comparison=c[2]).update(flags=[])  # the flags were withdrawn
    counts = review.review_queue_refresh(project=project)
    assert counts == {"flagged": 2, "created": 0, "updated": 2, "kept": 1, "removed": 1}
    assert not ReviewItem.objects.filter(comparison=c[2]).exists()
    split.refresh_from_db()
    assert (split.status, split.decided_by) == ("adjudicated", owner)
    # Flagged again later: the decision still stands.
    _judge(c[1], annotators(project, 1, prefix="late")[0], "B")
    review.review_queue_refresh(project=project)
    split.refresh_from_db()
    assert split.status == "adjudicated" and split.reasons == ["low_agreement"] and split.agreement == 0.5


def test_adjudication_is_a_label_of_its_own_with_who_and_when_and_replaces_an_earlier_one(flagged, owner):
    project, c = flagged["project"], flagged["c"]
    review.review_queue_refresh(project=project)
    item = ReviewItem.objects.get(comparison=c[1])
    def progress():
        return {k: v for k, v in project_progress(project=project).items() if k != "updated"}

    agreement, progress_before = project_agreement(project=project), progress()
    first = review.review_item_adjudicate(item=item, user=owner, choice="A", strength=-3, note="A answers the question")
    again = review.review_item_adjudicate(item=item, user=owner, choice="B", strength=2, note="on reflection, B")
    assert first.pk == again.pk
    final = Judgment.objects.get(comparison=c[1], source=LabelSource.ADJUDICATED)
    assert (final.choice, final.strength, final.rationale) == ("B", 2, "on reflection, B")
    assert final.metadata["decided_by"] == owner.username and final.metadata["decided_by_id"] == owner.pk
    assert final.metadata["review_item"] == item.pk and final.metadata["decided_at"]
    system = final.annotator
    assert system.username == review.ADJUDICATOR_USERNAME and not system.is_active and not system.has_usable_password()
    item.refresh_from_db()
    assert (item.status, item.decided_by, item.note) == ("adjudicated", owner, "on reflection, B") and item.decided_at
    # Never an annotator's label: agreement and progress count the same as before.
    assert project_agreement(project=project) == agreement
    assert progress() == progress_before


@pytest.mark.parametrize("choice, strength, field", [
    ("maybe", None, "choice"), ("A", 2, "strength"), ("B", -1, "strength"), ("tie", 1, "strength"),
    ("both_bad", 0, "strength"), ("A", "lots", "strength"),
])
def test_an_answer_whose_strength_contradicts_its_choice_is_refused_by_field(flagged, owner, choice, strength, field):
    review.review_queue_refresh(project=flagged["project"])
    item = ReviewItem.objects.first()
    with pytest.raises(review.ReviewError) as err:
        review.review_item_adjudicate(item=item, user=owner, choice=choice, strength=strength)
    assert field in err.value.errors
    assert not Judgment.objects.filter(source=LabelSource.ADJUDICATED).exists()
    assert ReviewItem.objects.get(pk=item.pk).status == "open"


def test_the_adjudicated_export_follows_the_adjudication_and_the_others_never_contain_it(flagged, owner, tmp_path):
    project, c, crew = flagged["project"], flagged["c"], flagged["crew"]
    _judge(c[1], crew[2], "A")  # c1: A B A → the majority says A
    review.review_queue_refresh(project=project)
    review.review_item_adjudicate(item=ReviewItem.objects.get(comparison=c[0]), user=owner, choice="B", strength=3)

    def rows(name, **spec):
        result = export_write(project=project, spec=ExportSpec(format="trl", **spec), out=tmp_path / name)
        lines = [json.loads(line) for line in result.data_path.read_text().splitlines()]
        return result, {(r["prompt_id"], r.get("annotator")): r for r in lines}

    a0, b0 = c[0].response_a.external_id, c[0].response_b.external_id
    p0 = c[0].prompt.external_id
    adjudicated, by_adj = rows("adj", aggregate="adjudicated")
    assert by_adj[(p0, None)]["chosen_id"] == b0 and by_adj[(p0, None)]["rejected_id"] == a0
    assert by_adj[(p0, None)]["n_labels"] == 3 and by_adj[(p0, None)]["agreement"] == 0.0
    assert adjudicated.counts["adjudicated_items"] == 1
    majority, by_maj = rows("maj", aggregate="majority")
    assert by_maj[(p0, None)]["chosen_id"] == a0 and by_maj[(p0, None)]["n_labels"] == 3
    assert {k: v for k, v in by_adj.items() if k[0] != p0} == {k: v for k, v in by_maj.items() if k[0] != p0}
    assert majority.counts["adjudicated_excluded"] == 1
    everything, by_all = rows("all")
    assert sorted(k[1] for k in by_all if k[0] == p0) == sorted(
        annotator_pseudonym(salt=project.annotator_salt, user_id=u.pk) for u in crew)
    assert all(r["chosen_id"] == a0 for k, r in by_all.items() if k[0] == p0)
    card = (everything.path / "README.md").read_text()
    assert "adjudicated labels left out" in card
    assert "a researcher's adjudicated answer" in (adjudicated.path / "README.md").read_text()
    raw = export_write(project=project, spec=ExportSpec(format="raw"), out=tmp_path / "raw")
    assert "adjudicated" not in {json.loads(line)["source"] for line in raw.data_path.read_text().splitlines()}


def test_the_command_the_form_and_the_api_accept_the_adjudicated_aggregation(flagged, owner, tmp_path, celery_eager,
                                                                             django_capture_on_commit_callbacks):
    project = flagged["project"]
    review.review_queue_refresh(project=project)
    review.review_item_adjudicate(item=ReviewItem.objects.first(), user=owner, choice="B", strength=1)
    out = io.StringIO()
    call_command("export_data", project.slug, "--format", "trl", "--out", str(tmp_path / "cli"),
                 "--aggregate", "adjudicated", stdout=out)
    assert "adjudicated_items 1" in out.getvalue()
    form = ExportForm(data={"format": "trl", "file_format": "jsonl", "aggregate": "adjudicated"}, project=project)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["spec"].aggregate == "adjudicated"
    api = APIClient()
    api.force_authenticate(owner)
    with django_capture_on_commit_callbacks(execute=True):
        resp = api.post(f"/api/v1/projects/{project.slug}/exports/", {"format": "trl", "aggregate": "adjudicated"},
                        format="json")
    assert resp.status_code == 202, resp.content
    assert ExportJob.objects.get(pk=resp.json()["id"]).status == "succeeded"


def test_a_criterion_split_cannot_use_adjudications():
    with pytest.raises(ValueError, match="overall preference"):
        ExportSpec(format="trl", aggregate="adjudicated", criterion="helpful")


def test_training_uses_the_adjudicated_label_alone_on_its_comparison(flagged, owner):
    project, c = flagged["project"], flagged["c"]
    review.review_queue_refresh(project=project)
    before = labels_snapshot(project)
    review.review_item_adjudicate(item=ReviewItem.objects.get(comparison=c[0]), user=owner, choice="B", strength=2)
    on_c0 = training_judgments(project).filter(comparison=c[0])
    assert [(j.source, j.choice) for j in on_c0] == [("adjudicated", "B")]
    assert training_judgments(project).filter(comparison=c[3]).count() == 3  # others untouched
    # A run queued before the adjudication still reads its annotators' labels.
    assert training_judgments(project, max_id=before["max_judgment_id"]).filter(comparison=c[0]).count() == 3
    after = labels_snapshot(project)
    assert after["pairs"] == before["pairs"] - 3 + 1


def test_asking_for_more_labels_hands_the_comparison_to_a_new_annotator(flagged, owner):
    project, c, crew = flagged["project"], flagged["c"], flagged["crew"]
    QueueSlot.objects.filter(project=project).update(open_slots=0)  # every comparison has its labels
    review.review_queue_refresh(project=project)
    newcomer = annotators(project, 1, prefix="new")[0]
    assert queue.assignment_lease(project=project, annotator=newcomer) is None
    item = ReviewItem.objects.get(comparison=c[1])
    review.review_item_request_labels(item=item, user=owner, extra=1)
    assert QueueSlot.objects.get(pk=c[1].pk).open_slots == 1
    item.refresh_from_db()
    assert (item.status, item.decided_by) == ("more_labels", owner)
    assert queue.assignment_lease(project=project, annotator=crew[0]) is None  # labelled it already
    lease = queue.assignment_lease(project=project, annotator=newcomer)
    assert lease is not None and lease.comparison_id == c[1].pk
    # The extra label outlives a recount of the pair's slots (the lease skipped).
    submit.assignment_skip(assignment=lease, user=newcomer, reason="cannot read it")
    other = annotators(project, 1, prefix="later")[0]
    again = queue.assignment_lease(project=project, annotator=other)
    assert again is not None and again.comparison_id == c[1].pk
    with pytest.raises(review.ReviewError) as err:
        review.review_item_request_labels(item=item, user=owner, extra=0)
    assert "extra" in err.value.errors


def test_marking_ambiguous_withdraws_an_earlier_final_label(flagged, owner):
    review.review_queue_refresh(project=flagged["project"])
    item = ReviewItem.objects.first()
    review.review_item_adjudicate(item=item, user=owner, choice="tie", strength=0)
    review.review_item_mark_ambiguous(item=item, user=owner, note="both answers are fine")
    item.refresh_from_db()
    assert (item.status, item.note, item.decided_by) == ("ambiguous", "both answers are fine", owner)
    assert not Judgment.objects.filter(source=LabelSource.ADJUDICATED).exists()


# --- pages ----------------------------------------------------------------------------------


def _urls(slug: str, item_id: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("quality-review", args=[slug])),
        ("post", reverse("quality-review-refresh", args=[slug])),
        ("get", reverse("quality-review-item", args=[slug, item_id])),
        ("post", reverse("quality-review-adjudicate", args=[slug, item_id])),
        ("post", reverse("quality-review-more-labels", args=[slug, item_id])),
        ("post", reverse("quality-review-ambiguous", args=[slug, item_id])),
    ]


@pytest.mark.parametrize("who", ["annotator", "outsider"])
def test_annotators_get_403_and_outsiders_the_missing_project_404_on_every_review_url(flagged, request, who):
    review.review_queue_refresh(project=flagged["project"])
    item = ReviewItem.objects.first()
    web = _client(request.getfixturevalue(who))
    for (method, url), (_, missing) in zip(_urls("helpfulness", item.pk), _urls("no-such-project", item.pk)):
        data = {"choice": "B", "strength": "2", "extra": "1"}
        r = getattr(web, method)(url, data) if method == "post" else web.get(url)
        if who == "annotator":  # a member: told who may open it
            assert r.status_code == 403 and "researchers may open this page" in r.content.decode(), url
            continue
        assert r.status_code == 404, url
        gone = getattr(web, method)(missing, data) if method == "post" else web.get(missing)
        assert r.content == gone.content, url
    item.refresh_from_db()
    assert item.status == "open" and not Judgment.objects.filter(source=LabelSource.ADJUDICATED).exists()
    assert ReviewItem.objects.count() == 4


def test_another_projects_item_is_not_reachable_through_mine(flagged, owner, other_project):
    review.review_queue_refresh(project=flagged["project"])
    item = ReviewItem.objects.first()
    other_owner = get_user_model().objects.get(username="otto-owner")
    r = _client(other_owner).get(reverse("quality-review-item", args=[other_project.slug, item.pk]))
    assert r.status_code == 404


def test_the_queue_page_lists_open_items_by_evidence_and_refreshes(flagged, owner):
    web = _client(owner)
    url = reverse("quality-review", args=[flagged["project"].slug])
    assert "No items with the status" in web.get(url).content.decode()
    r = web.post(reverse("quality-review-refresh", args=[flagged["project"].slug]), follow=True)
    html = r.content.decode()
    assert "4 comparisons flagged, 4 new" in html
    ids = list(ReviewItem.objects.values_list("pk", flat=True))
    positions = [html.index(f'data-item="{pk}"') for pk in ids]
    assert positions == sorted(positions)
    assert 'id="count-open">4<' in html and "likely_flipped" in html and "-2.00 ± 0.50" in html
    dashboard = web.get(reverse("quality-dashboard", args=[flagged["project"].slug])).content.decode()
    assert 'id="review-open">4<' in dashboard and url in dashboard


def test_the_item_page_shows_texts_inert_every_label_and_the_decision_forms(flagged, owner):
    project, c, crew = flagged["project"], flagged["c"], flagged["crew"]
    resp = c[2].response_b
    resp.text = f"**bold** {XSS}"
    resp.save()
    Judgment.objects.filter(comparison=c[2], annotator=crew[0]).update(rationale=f"see {XSS}")
    review.review_queue_refresh(project=project)
    item = ReviewItem.objects.get(comparison=c[2])
    web = _client(owner)
    html = web.get(reverse("quality-review-item", args=[project.slug, item.pk])).content.decode()
    assert "<script>alert" not in html and "<img" not in html
    assert "<strong>bold</strong>" in html and "&lt;script&gt;" in html
    for user in crew[:2]:
        assert annotator_pseudonym(salt=project.annotator_salt, user_id=user.pk) in html
    assert "offensive" in html and "unclear prompt" in html and "5.2 s" in html
    assert crew[0].username not in html  # pseudonyms only
    assert 'id="adjudicate-form"' in html and 'id="more-labels-form"' in html and 'id="ambiguous-form"' in html
    # A contradictory answer comes back with the field's error and stores nothing.
    r = web.post(reverse("quality-review-adjudicate", args=[project.slug, item.pk]), {"choice": "A", "strength": "3"})
    assert r.status_code == 400 and "A takes a strength of" in r.content.decode()
    assert not Judgment.objects.filter(source=LabelSource.ADJUDICATED).exists()
    r = web.post(reverse("quality-review-adjudicate", args=[project.slug, item.pk]), {"choice": "A", "strength": "-1"})
    assert r.status_code == 302 and r["Location"] == reverse("quality-review", args=[project.slug])
    html = web.get(reverse("quality-review-item", args=[project.slug, item.pk])).content.decode()
    assert f"adjudicated by {owner.username}" in html and 'id="item-status">adjudicated<' in html
    queue_html = web.get(reverse("quality-review", args=[project.slug])).content.decode()
    assert 'id="count-open">3<' in queue_html and 'id="count-adjudicated">1<' in queue_html


def test_labels_asked_for_survive_a_recount_of_the_slots(flagged, owner):
    """A recount (an overlap change, an expired or skipped lease) sets the slots to
    overlap + extra − live: the researcher's request is not lost."""
    from django.utils import timezone

    from annotate.models import Assignment

    project, c, crew = flagged["project"], flagged["c"], flagged["crew"]
    now = timezone.now()
    Assignment.objects.create(project=project, kind="pairwise", comparison=c[1], prompt_id=c[1].prompt_id,
                              annotator=crew[0], state="submitted", leased_at=now, expires_at=now)
    queue.queue_slots_rebuild(project=project)
    assert QueueSlot.objects.get(pk=c[1].pk).open_slots == project.overlap - 1
    review.review_queue_refresh(project=project)
    review.review_item_request_labels(item=ReviewItem.objects.get(comparison=c[1]), user=owner, extra=2)
    queue.queue_slots_rebuild(project=project)
    assert QueueSlot.objects.get(pk=c[1].pk).open_slots == project.overlap + 2 - 1
