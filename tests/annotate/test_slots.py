"""Every path that changes whether a unit is in the queue keeps its slot row (and
the project's unit counts) in step (issue #19 point 4): the Django admin (marking
a comparison gold, adding and deleting units), deletion, overlap changes and
imports."""

from __future__ import annotations

import pytest

from annotate import counters, queue, services, slots, submit
from annotate.models import Comparison, Prompt, QueueSlot, RankingSlot, RatingSlot, Response, TaskKind

from tests.factories import annotators, fill

pytestmark = pytest.mark.django_db


def _comparison_form(c: Comparison, **changes) -> dict:
    return {"extra_labels": c.extra_labels, "is_gold": "on" if c.is_gold else "", "gold_choice": c.gold_choice,
            **changes}


def test_marking_a_comparison_gold_in_the_admin_takes_it_out_of_the_queue(project, superuser_client):
    fill(project, prompts=2, responses=2)
    pair = Comparison.objects.filter(project=project).first()
    units_before = counters.units_for(project=project)[TaskKind.PAIRWISE]
    response = superuser_client.post(f"/admin/annotate/comparison/{pair.pk}/change/",
                                      _comparison_form(pair, is_gold="on", gold_choice="A"))
    assert response.status_code == 302, response.content.decode()[:2000]
    pair.refresh_from_db()
    assert pair.is_gold and pair.gold_choice == "A"
    assert not QueueSlot.objects.filter(pk=pair.pk).exists()  # before: its row stayed, so it was leased as a task
    assert counters.units_for(project=project)[TaskKind.PAIRWISE] == units_before - 1
    # and the queue hands it out as gold only: not as a regular task
    ann = annotators(project, 1)[0]
    regular = queue._candidates(project, TaskKind.PAIRWISE, ann)
    assert pair.pk not in set(regular.values_list("pk", flat=True))


def test_unmarking_gold_in_the_admin_puts_it_back_with_the_slots_its_leases_leave(project, superuser_client):
    project.overlap = 3
    project.save()
    fill(project, prompts=1, responses=2)
    pair = Comparison.objects.get(project=project)
    Comparison.objects.filter(pk=pair.pk).update(is_gold=True, gold_choice="B")
    slots.queue_slots_rebuild(project=project, kinds=[TaskKind.PAIRWISE], unit_ids=[pair.pk])
    assert not QueueSlot.objects.filter(pk=pair.pk).exists()
    ann = annotators(project, 1)[0]
    project.gold_rate = 1.0
    project.save()
    lease = queue.assignment_lease(project=project, annotator=ann)  # a gold lease, live
    assert lease.comparison_id == pair.pk
    pair.refresh_from_db()
    response = superuser_client.post(f"/admin/annotate/comparison/{pair.pk}/change/",
                                      _comparison_form(pair, is_gold="", gold_choice=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert QueueSlot.objects.get(pk=pair.pk).open_slots == 3 - 1  # overlap − the live lease
    assert counters.units_for(project=project)[TaskKind.PAIRWISE] == 1


def test_the_admin_cannot_move_a_comparison_to_other_responses(project, superuser_client):
    fill(project, prompts=1, responses=3)
    pair, other = Comparison.objects.filter(project=project).order_by("id")[:2]
    superuser_client.post(f"/admin/annotate/comparison/{pair.pk}/change/",
                           _comparison_form(pair, response_a=other.response_a_id, response_b=other.response_b_id))
    pair.refresh_from_db()
    assert (pair.response_a_id, pair.response_b_id) != (other.response_a_id, other.response_b_id)


def test_a_response_added_in_the_admin_enters_the_rating_queue(project, superuser_client):
    prompt = Prompt.objects.create(project=project, external_id="p", conversation=[{"role": "user", "content": "q"}])
    response = superuser_client.post("/admin/annotate/response/add/", {
        "prompt": prompt.pk, "external_id": "r1", "text": "an answer", "source": "m", "metadata": "{}"})
    assert response.status_code == 302, response.content.decode()[:2000]
    made = Response.objects.get(external_id="r1")
    assert RatingSlot.objects.get(pk=made.pk).open_slots == project.overlap
    assert RatingSlot.objects.get(pk=made.pk).prompt_id == prompt.pk
    assert counters.units_for(project=project)[TaskKind.RATING] == 1


def test_deleting_a_response_in_the_admin_takes_it_and_its_pairs_out_of_the_queue(project, superuser_client):
    project.task_kinds = ["pairwise", "rating"]
    project.save()
    fill(project, prompts=2, responses=3)
    ann = annotators(project, 1)[0]
    lease = queue.assignment_lease(project=project, annotator=ann, kind=TaskKind.RATING)
    gone = lease.response
    pairs = list(Comparison.objects.filter(response_a=gone).values_list("pk", flat=True)) + list(
        Comparison.objects.filter(response_b=gone).values_list("pk", flat=True))
    response = superuser_client.post(f"/admin/annotate/response/{gone.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not RatingSlot.objects.filter(pk=gone.pk).exists()
    assert not QueueSlot.objects.filter(pk__in=pairs).exists()
    assert counters.units_for(project=project) == {TaskKind.PAIRWISE: 6 - 2, TaskKind.RATING: 6 - 1,
                                                   TaskKind.RANKING: 2}
    assert counters.tallies_equal_recount(project=project)  # the lease went with it: served count follows
    assert ann.memberships.get(project=project).served_count == 0


def test_deleting_a_prompt_removes_every_slot_row_under_it(project):
    fill(project, prompts=2, responses=2)
    prompt = project.prompts.first()
    prompt.delete()
    assert set(RankingSlot.objects.values_list("pk", flat=True)) == set(project.prompts.values_list("pk", flat=True))
    assert RatingSlot.objects.count() == 2 and QueueSlot.objects.count() == 1


def test_rebuild_puts_units_written_past_the_services_into_the_queue_and_fixes_counts(project):
    project.overlap = 2
    project.save()
    fill(project, prompts=1, responses=2)
    extra = Response.objects.create(prompt=project.prompts.first(), external_id="late", text="written by hand")
    RankingSlot.objects.update(open_slots=0)  # wrong: nobody leased it
    done = slots.queue_slots_rebuild(project=project)
    assert done == {"added": 1, "removed": 0, "recounted": 2}  # the new row is counted like the wrong one
    assert RatingSlot.objects.get(pk=extra.pk).open_slots == 2
    assert set(RankingSlot.objects.values_list("open_slots", flat=True)) == {2}
    assert slots.queue_slots_rebuild(project=project) == {"added": 0, "removed": 0, "recounted": 0}


def test_a_new_overlap_recounts_rating_and_ranking_slots(project, annotator):
    project.task_kinds = ["pairwise", "rating", "ranking"]
    project.save()
    fill(project, prompts=1, responses=2)
    rated = queue.assignment_lease(project=project, annotator=annotator, kind=TaskKind.RATING)
    submit.rating_submit(assignment=rated, user=annotator, scores={}, rationale="")
    services.project_update(project=project, overlap=3)
    assert RatingSlot.objects.get(pk=rated.response_id).open_slots == 3 - 1
    assert set(RankingSlot.objects.values_list("open_slots", flat=True)) == {3}


def test_an_import_puts_its_new_units_into_every_queue(project, tmp_path):
    from dataio.imports import services as imports

    from tests.dataio.imports._helpers import write_jsonl

    def run(name, rows):
        job = imports.import_file(project=project, format="jsonl", path=write_jsonl(tmp_path / name, rows))
        assert job.status == "succeeded", job.error

    label = {"annotator": "alice", "a": 0, "b": 1, "choice": "A", "strength": 2}
    run("one.jsonl", [{"id": f"q{i}", "prompt": f"Why {i}?", "labels": [label],
                       "responses": [{"id": "a", "text": "Because."}, {"id": "b", "text": "No."}]} for i in range(2)])
    # again, with one more response on a prompt already stored: only the new units join
    run("two.jsonl", [{"id": "q0", "prompt": "Why 0?", "labels": [{**label, "b": 2}],
                       "responses": [{"id": "a", "text": "Because."}, {"id": "b", "text": "No."},
                                     {"id": "c", "text": "Maybe."}]}])
    assert QueueSlot.objects.count() == Comparison.objects.count() == 3
    assert set(QueueSlot.objects.values_list("pk", flat=True)) == set(Comparison.objects.values_list("pk", flat=True))
    assert set(RatingSlot.objects.values_list("pk", "prompt_id")) == set(Response.objects.values_list("pk", "prompt_id"))
    assert set(RankingSlot.objects.values_list("pk", flat=True)) == set(Prompt.objects.values_list("pk", flat=True))
    assert {s.open_slots for m in (QueueSlot, RatingSlot, RankingSlot) for s in m.objects.all()} == {project.overlap}
