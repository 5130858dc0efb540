"""Imports of OASST trees, Fine-Grained RLHF, HelpSteer2, UltraFeedback and the generic
CSV/Parquet schema: ratings and rankings as well as pairwise labels, all-or-nothing."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter

import pytest

from annotate.imports import services as imports
from annotate.imports.parsers import finegrained, flat
from annotate.models import Comparison, ImportJob, Judgment, LabelSource, Prompt, Ranking, Rating, Response

from tests.helpers import db_snapshot

pytestmark = pytest.mark.django_db


def _import(project, fmt, path):
    return imports.import_file(project=project, format=fmt, path=path)


def _ok(project, fmt, path):
    job = _import(project, fmt, path)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    return job


def _rejected(project, fmt, path, *, line, field_part="", message_part="", unit="line"):
    before = db_snapshot()
    job = _import(project, fmt, path)
    assert job.status == ImportJob.Status.FAILED
    assert job.error_line == line, job.error
    if line is not None:
        assert f"{unit} {line}" in job.error
    assert field_part in job.error_field, job.error
    assert message_part in job.error, job.error
    assert db_snapshot() == before
    return job


def _jsonl(path, rows, *, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


@pytest.fixture
def seeded(project, tmp_path):
    """A project that already holds data, so 'nothing written' means something."""
    good = _jsonl(tmp_path / "seed.jsonl", [{"id": "seed", "prompt": "Hi?", "responses": ["Hello!", "Go away."],
                                            "labels": [{"annotator": "zed", "a": 0, "b": 1, "choice": "A"}]}])
    _ok(project, "jsonl", good)
    return project


# --- Open-Assistant --------------------------------------------------------------------


def _oasst_walk(message, path=()):
    """(parent message, path of messages from the root to it) for every message."""
    path = (*path, message)
    yield message, path
    for reply in message.get("replies") or []:
        yield from _oasst_walk(reply, path)


@pytest.mark.shared_data
def test_oasst_ranked_siblings_become_one_ranking_per_group(project, shared_data):
    path = shared_data / "oasst" / "en_100_tree.jsonl"
    trees = [json.loads(line) for line in path.open(encoding="utf-8")]
    job = _ok(project, "oasst", path)

    rankings = Ranking.objects.filter(prompt__project=project).select_related("prompt", "annotator")
    assert rankings.count() == 212
    assert job.counts["rankings_created"] == 212
    assert Prompt.objects.filter(project=project).count() == 212
    assert {r.annotator.username for r in rankings} == {"oasst.aggregated"}
    assert not rankings[0].annotator.is_active
    assert {(r.source, r.import_job_id) for r in rankings} == {(LabelSource.IMPORTED, job.pk)}

    by_prompt = {r.prompt.external_id: r for r in rankings}
    ext_of = dict(Response.objects.filter(prompt__project=project).values_list("pk", "external_id"))
    groups_seen = unranked_seen = 0
    for tree in trees:
        for message, msg_path in _oasst_walk(tree["prompt"]):
            ranked = [r for r in message["replies"] if r["role"] == "assistant" and r.get("rank") is not None]
            if not ranked:
                continue
            groups_seen += 1
            ranking = by_prompt[message["message_id"]]
            # The prompt is the path from the root to the parent message, roles mapped.
            assert ranking.prompt.conversation == [
                {"role": "user" if m["role"] == "prompter" else "assistant", "content": m["text"]} for m in msg_path
            ]
            assert ranking.prompt.metadata["message_tree_id"] == tree["message_tree_id"]
            # Groups follow the ranks, best (rank 0) first, and hold exactly the ranked replies.
            expected = [[r["message_id"]] for r in sorted(ranked, key=lambda r: r["rank"])]
            assert [[ext_of[pk] for pk in group] for group in ranking.groups] == expected
            # Every assistant sibling is a response, the unranked ones too.
            responses = {r.external_id: r for r in ranking.prompt.responses.all()}
            assert set(responses) == {r["message_id"] for r in message["replies"] if r["role"] == "assistant"}
            for reply in message["replies"]:
                resp = responses[reply["message_id"]]
                assert resp.text == reply["text"]
                assert resp.metadata["rank"] == reply.get("rank")
                assert resp.metadata["lang"] == reply["lang"]
                assert resp.metadata["review_count"] == reply["review_count"]
                assert resp.metadata["synthetic"] == reply["synthetic"]
                unranked_seen += reply.get("rank") is None
    assert groups_seen == 212 and unranked_seen == 1
    # A deep conversation keeps its turns in order and ends with the user.
    deepest = max(by_prompt.values(), key=lambda r: len(r.prompt.conversation)).prompt
    assert len(deepest.conversation) >= 3 and deepest.conversation[-1]["role"] == "user"
    assert deepest.metadata["message_ids"][-1] == deepest.external_id


@pytest.mark.shared_data
def test_oasst_reimport_adds_nothing(project, shared_data):
    path = shared_data / "oasst" / "en_100_tree.jsonl"
    _ok(project, "oasst", path)
    before = db_snapshot()
    job = _ok(project, "oasst", path)
    assert (job.counts["rankings_created"], job.counts["rankings_updated"]) == (0, 212)
    assert job.counts["prompts_created"] == 0 and job.counts["responses_created"] == 0
    after = db_snapshot()
    for rows in (before, after):  # a re-import rewrites the same values; only the timestamp moves
        for row in rows["annotate.Ranking"]:
            row.pop("updated_at")
    assert after == before


def _oasst_lines_with_a_group(shared_data, size):
    """The file's lines and (index, root) of the first tree whose root has `size` ranked replies."""
    lines = (shared_data / "oasst" / "en_100_tree.jsonl").read_text(encoding="utf-8").splitlines()
    for i, text in enumerate(lines):
        root = json.loads(text)["prompt"]
        if sum(r.get("rank") is not None for r in root["replies"]) == size and len(root["replies"]) == size:
            return lines, i, json.loads(text)
    raise AssertionError(f"no tree with {size} ranked root replies")


@pytest.mark.shared_data
def test_oasst_rank_without_its_ranked_siblings_is_rejected(seeded, shared_data, tmp_path):
    lines, i, tree = _oasst_lines_with_a_group(shared_data, 2)
    tree["prompt"]["replies"][1]["rank"] = None  # its sibling's rank now orders it against nothing
    lines[i] = json.dumps(tree)
    path = tmp_path / "oasst.jsonl"
    path.write_text("\n".join(lines[: i + 5]) + "\n", encoding="utf-8")
    _rejected(seeded, "oasst", path, line=i + 1, field_part="prompt.replies[0].rank", message_part="siblings")


@pytest.mark.shared_data
def test_oasst_ranks_with_a_gap_are_rejected(seeded, shared_data, tmp_path):
    lines, i, tree = _oasst_lines_with_a_group(shared_data, 3)
    for reply in tree["prompt"]["replies"]:
        if reply["rank"] == 2:
            reply["rank"] = 3  # ranks 0, 1, 3: the sibling ranked 2 is missing
    lines[i] = json.dumps(tree)
    path = tmp_path / "oasst.jsonl"
    path.write_text("\n".join(lines[: i + 1]) + "\n", encoding="utf-8")
    _rejected(seeded, "oasst", path, line=i + 1, field_part="prompt.replies", message_part="skip 2")


def test_oasst_ties_share_a_group_and_deleted_replies_are_left_out(project, tmp_path):
    def msg(mid, role, text, rank=None, replies=(), **extra):
        return {"message_id": mid, "role": role, "text": text, "rank": rank, "lang": "en", "replies": list(replies), **extra}

    tree = {"message_tree_id": "t1", "tree_state": "ready_for_export", "prompt": msg("q", "prompter", "Name a colour.", replies=[
        msg("a1", "assistant", "Red.", 0),
        msg("a2", "assistant", "Blue.", 1),
        msg("a3", "assistant", "Green.", 1),
        msg("a4", "assistant", "Spam!", 2, deleted=True),
        msg("a5", "assistant", "Grey.", None),
    ])}
    _ok(project, "oasst", _jsonl(tmp_path / "t.jsonl", [tree]))
    ranking = Ranking.objects.get(prompt__external_id="q")
    ids = dict(Response.objects.values_list("external_id", "pk"))
    assert ranking.groups == [[ids["a1"]], [ids["a2"], ids["a3"]]]
    assert set(ids) == {"a1", "a2", "a3", "a5"}


# --- Fine-Grained RLHF -------------------------------------------------------------------


PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))


@pytest.mark.shared_data
def test_finegrained_six_judgments_per_question_and_spans_on_prediction_1(project, shared_data):
    path = shared_data / "finegrained-rlhf" / "dev_feedback.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    job = _ok(project, "finegrained", path)

    assert Prompt.objects.filter(project=project).count() == 500
    judgments = Judgment.objects.filter(comparison__project=project).select_related("comparison__prompt")
    assert judgments.count() == 500 * 6 == job.counts["judgments_created"]
    assert Counter(judgments.values_list("comparison", flat=True)).most_common(1)[0][1] == 1
    ties = judgments.filter(choice="tie")
    assert ties.count() == sum(v == 0 for r in rows for v in r["preference"]) > 0
    assert set(ties.values_list("strength", flat=True)) == {0}

    # Every preference points where the file says, whatever the canonical order.
    ext = dict(Response.objects.filter(prompt__project=project).values_list("pk", "external_id"))
    stored = {}
    for j in judgments:
        a, b = ext[j.comparison.response_a_id], ext[j.comparison.response_b_id]
        winner = {"A": a, "B": b, "tie": None}[j.choice]
        stored[(j.comparison.prompt.metadata["question"], frozenset((a, b)))] = winner
    for row in rows:
        for (x, y), value in zip(PAIRS, row["preference"]):
            expected = {0: None, 1: f"prediction-{x}", 2: f"prediction-{y}"}[value]
            assert stored[(row["question"], frozenset((f"prediction-{x}", f"prediction-{y}")))] == expected

    # Spans: the file's offsets into prediction 1, its text, the error type as a key.
    ratings = {r.response.prompt.metadata["question"]: r for r in Rating.objects.select_related("response__prompt")}
    assert len(ratings) == 500
    n_spans = 0
    for row in rows:
        rating = ratings[row["question"]]
        text = rating.response.text
        assert rating.response.external_id == "prediction-1" and text == row["prediction 1"]
        assert rating.scores == {} and rating.source == LabelSource.IMPORTED and rating.import_job_id == job.pk
        assert rating.metadata["corrected_prediction"] == row["feedback"]["corrected-prediction"]
        assert rating.metadata["missing_info"] == row["feedback"]["missing-info"]
        assert len(rating.spans) == len(row["feedback"]["errors"])
        for span, error in zip(rating.spans, row["feedback"]["errors"]):
            assert (span["start"], span["end"]) == (error["start"], error["end"])
            assert span["text"] == text[error["start"] : error["end"]] != ""
            assert span["type"] == finegrained.FINEGRAINED_ERROR_TYPES[error["error type"]]
            assert span["response"] == rating.response_id
            n_spans += 1
    assert n_spans == 1373
    # The passages are in the prompt for annotators, and kept raw in its metadata.
    first = Prompt.objects.get(project=project, metadata__question=rows[0]["question"])
    assert first.conversation[0]["content"].startswith(rows[0]["question"] + "\n\nPassage 1: ")
    assert rows[0]["passages"][1][3] in first.conversation[0]["content"]
    assert first.metadata["passages"] == rows[0]["passages"] and first.metadata["gold"] == rows[0]["gold"]


@pytest.mark.shared_data
def test_finegrained_reimport_adds_nothing(project, shared_data):
    path = shared_data / "finegrained-rlhf" / "dev_feedback.json"
    _ok(project, "finegrained", path)
    counts = (Prompt.objects.count(), Response.objects.count(), Judgment.objects.count(), Rating.objects.count())
    job = _ok(project, "finegrained", path)
    assert (Prompt.objects.count(), Response.objects.count(), Judgment.objects.count(), Rating.objects.count()) == counts
    assert job.counts["judgments_created"] == 0 and job.counts["ratings_created"] == 0
    assert job.counts["ratings_updated"] == 500


def _finegrained_array(shared_data, tmp_path, n, change):
    rows = json.loads((shared_data / "finegrained-rlhf" / "dev_feedback.json").read_text(encoding="utf-8"))[:n]
    change(rows)
    path = tmp_path / "fg.json"
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    starts = [i + 1 for i, text in enumerate(path.read_text().splitlines()) if text == " {"]
    return path, starts


@pytest.mark.shared_data
def test_finegrained_unknown_preference_names_element_and_index(seeded, shared_data, tmp_path):
    path, starts = _finegrained_array(shared_data, tmp_path, 50, lambda rows: rows[40]["preference"].__setitem__(3, 5))
    _rejected(seeded, "finegrained", path, line=starts[40], field_part="preference[3]")


@pytest.mark.shared_data
def test_finegrained_span_past_the_end_of_prediction_1_is_rejected(seeded, shared_data, tmp_path):
    def change(rows):
        rows[7]["feedback"]["errors"] = [{"error type": "Redundant", "explanation": "", "start": 5,
                                          "end": len(rows[7]["prediction 1"]) + 1}]
    path, starts = _finegrained_array(shared_data, tmp_path, 10, change)
    _rejected(seeded, "finegrained", path, line=starts[7], field_part="feedback.errors[0].end", message_part="length")


@pytest.mark.shared_data
def test_finegrained_unknown_error_type_is_rejected(seeded, shared_data, tmp_path):
    def change(rows):
        rows[2]["feedback"]["errors"] = [{"error type": "Rude", "start": 0, "end": 3}]
    path, starts = _finegrained_array(shared_data, tmp_path, 5, change)
    _rejected(seeded, "finegrained", path, line=starts[2], field_part="errors[0].error type")


# --- HelpSteer2 ------------------------------------------------------------------------


def _hs2(prompt, response, h, c, co, cx, v, **extra):
    return {"prompt": prompt, "response": response, "helpfulness": h, "correctness": c, "coherence": co,
            "complexity": cx, "verbosity": v, **extra}


HS2_ROWS = [
    _hs2("What is the capital of France?", "Paris.", 4, 4, 4, 0, 1),
    _hs2("What is the capital of France?", "Lyon, probably.", 0, 0, 3, 0, 1),
    _hs2("Write a haiku about rain.\n<extra_id_1>Assistant\nSoft rain on the roof\n<extra_id_1>User\nNow one about snow.",
         "White hush on the hills", 3, 4, 4, 1, 2),
]


def test_helpsteer2_rows_become_ratings_under_shared_prompts(project, tmp_path):
    path = _jsonl(tmp_path / "hs2.jsonl.gz", HS2_ROWS, gz=True)
    job = _ok(project, "helpsteer2", path)
    assert job.counts["prompts_created"] == 2 and job.counts["ratings_created"] == 3
    ratings = {r.response.text: r for r in Rating.objects.select_related("response__prompt", "annotator")}
    france = ratings["Paris."].response.prompt
    assert france.conversation == [{"role": "user", "content": "What is the capital of France?"}]
    assert ratings["Lyon, probably."].response.prompt_id == france.pk
    assert ratings["Paris."].scores == {"helpfulness": 4, "correctness": 4, "coherence": 4, "complexity": 0, "verbosity": 1}
    assert ratings["Lyon, probably."].scores["correctness"] == 0
    assert {r.annotator.username for r in ratings.values()} == {"helpsteer2.aggregated"}
    assert {(r.source, r.import_job_id) for r in ratings.values()} == {(LabelSource.IMPORTED, job.pk)}
    # A multi-turn prompt is split at HelpSteer2's turn markers.
    assert ratings["White hush on the hills"].response.prompt.conversation == [
        {"role": "user", "content": "Write a haiku about rain."},
        {"role": "assistant", "content": "Soft rain on the roof"},
        {"role": "user", "content": "Now one about snow."},
    ]
    again = _ok(project, "helpsteer2", path)
    assert (again.counts["ratings_created"], again.counts["ratings_updated"]) == (0, 3)
    assert Rating.objects.count() == 3 and Response.objects.count() == 3


def test_helpsteer2_annotator_field_names_the_annotator(project, tmp_path):
    path = _jsonl(tmp_path / "hs2.jsonl", [_hs2("Q?", "A.", 2, 2, 2, 2, 2, annotator="w17")])
    _ok(project, "helpsteer2", path)
    assert Rating.objects.get().annotator.username == "helpsteer2.w17"


def test_helpsteer2_score_out_of_range_is_rejected(seeded, tmp_path):
    rows = [*HS2_ROWS, _hs2("Q?", "A.", 2, 2, 2, 2, 5)]
    _rejected(seeded, "helpsteer2", _jsonl(tmp_path / "hs2.jsonl", rows), line=4, field_part="verbosity", message_part="0..4")


def test_helpsteer2_missing_attribute_is_rejected(seeded, tmp_path):
    row = _hs2("Q?", "A.", 2, 2, 2, 2, 2)
    del row["correctness"]
    _rejected(seeded, "helpsteer2", _jsonl(tmp_path / "hs2.jsonl", [HS2_ROWS[0], row]), line=2, field_part="correctness")


def test_a_second_rating_of_one_response_by_one_annotator_is_rejected(seeded, tmp_path):
    path = _jsonl(tmp_path / "hs2.jsonl", [HS2_ROWS[0], HS2_ROWS[1], HS2_ROWS[0]])
    _rejected(seeded, "helpsteer2", path, line=3, field_part="ratings", message_part="line 1")


# --- UltraFeedback ---------------------------------------------------------------------


def _uf_completion(model, response, ratings, **extra):
    notes = {
        "instruction_following": {"Rating": ratings[0], "Rationale": f"{model} follows the format."},
        "honesty": {"Rating": ratings[1], "Rationale": f"{model} is confident."},
        "truthfulness": {"Type": ["0"], "Rationale": "No hallucination.", "Rating": ratings[2],
                         "Rationale For Rating": f"{model} states facts."},
        "helpfulness": {"Type": ["1", "2"], "Rationale": "Clear.", "Rating": ratings[3], "Rationale For Rating": "Useful."},
    }
    return {"model": model, "response": response, "annotations": notes, "critique": f"{model}: fine.",
            "overall_score": 7.5, "fine-grained_score": 4.25, "principle": "helpfulness",
            "custom_system_prompt": "Be helpful.", **extra}


def _uf_row(instruction, completions):
    return {"source": "evol_instruct", "instruction": instruction, "models": [c["model"] for c in completions],
            "completions": completions, "correct_answers": ["None"], "incorrect_answers": ["None"]}


def test_ultrafeedback_completions_become_rated_responses(project, tmp_path):
    wrapped = _uf_completion("wizardlm-7b", "Blue, by Rayleigh scattering.", ["4", "5", "5", "4"])
    # The GitHub release wraps each aspect in a one-element list.
    wrapped["annotations"] = {k: [v] for k, v in wrapped["annotations"].items()}
    row = _uf_row("Why is the sky blue?", [
        _uf_completion("gpt-4", "Rayleigh scattering.", ["5", "N/A", "5", "4"]),
        _uf_completion("llama-2-7b-chat", "Because of the ocean.", ["2", "1", "1", "1"]),
        wrapped,
    ])
    path = _jsonl(tmp_path / "uf.jsonl", [row])
    job = _ok(project, "ultrafeedback", path)
    assert job.counts["ratings_created"] == 3
    prompt = Prompt.objects.get(project=project)
    assert prompt.conversation == [{"role": "user", "content": "Why is the sky blue?"}]
    assert prompt.metadata["source"] == "ultrafeedback" and prompt.metadata["subset"] == "evol_instruct"
    ratings = {r.response.source: r for r in Rating.objects.select_related("response", "annotator")}
    assert set(ratings) == {"gpt-4", "llama-2-7b-chat", "wizardlm-7b"}
    gpt4 = ratings["gpt-4"]
    assert gpt4.scores == {"instruction_following": 5, "honesty": None, "truthfulness": 5, "helpfulness": 4}
    assert gpt4.annotator.username == "ultrafeedback.gpt-4"
    assert gpt4.rationale == "gpt-4: fine."
    assert gpt4.metadata["annotations"]["truthfulness"] == {
        "Type": ["0"], "Rationale": "No hallucination.", "Rationale For Rating": "gpt-4 states facts."
    }
    assert gpt4.metadata["annotations"]["honesty"]["Rationale"] == "gpt-4 is confident."
    assert gpt4.metadata["overall_score"] == 7.5 and gpt4.metadata["fine-grained_score"] == 4.25
    assert gpt4.response.metadata == {"principle": "helpfulness", "custom_system_prompt": "Be helpful."}
    assert ratings["wizardlm-7b"].scores == {"instruction_following": 4, "honesty": 5, "truthfulness": 5, "helpfulness": 4}
    again = _ok(project, "ultrafeedback", path)
    assert again.counts["ratings_created"] == 0 and Rating.objects.count() == 3


def test_ultrafeedback_rating_out_of_range_is_rejected(seeded, tmp_path):
    good = _uf_row("Q1", [_uf_completion("m1", "a", ["1", "2", "3", "4"])])
    bad = _uf_row("Q2", [_uf_completion("m1", "a", ["1", "2", "3", "4"]), _uf_completion("m2", "b", ["1", "6", "3", "4"])])
    _rejected(seeded, "ultrafeedback", _jsonl(tmp_path / "uf.jsonl", [good, bad]), line=2,
              field_part="completions[1].annotations.honesty.Rating", message_part="N/A")


def test_ultrafeedback_unknown_aspect_is_rejected(seeded, tmp_path):
    comp = _uf_completion("m1", "a", ["1", "2", "3", "4"])
    comp["annotations"]["harmlessness"] = {"Rating": "5", "Rationale": "?"}
    _rejected(seeded, "ultrafeedback", _jsonl(tmp_path / "uf.jsonl", [_uf_row("Q", [comp])]), line=1,
              field_part="annotations.harmlessness")


# --- generic CSV -----------------------------------------------------------------------

CSV_COLUMNS = ["prompt_id", "prompt", "response_a_id", "response_a", "response_a_source",
               "response_b_id", "response_b", "response_b_source", "annotator", "choice", "strength", "rationale", "scores"]


def _csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return path


CSV_ROWS = [
    ["p1", "What is 2+2?", "r1", "Four.\nIt is 4.", "model-x", "r2", "Five.", "model-y", "alice", "A", "2", 'Right, and "short"', ""],
    ["p1", "What is 2+2?", "r2", "Five.", "model-y", "r3", "4", "model-z", "alice", "B", "3", "", ""],
    ["p1", "What is 2+2?", "r3", "4", "model-z", "r1", "Four.\nIt is 4.", "model-x", "bob", "tie", "0", "", ""],
    ["p2", "Say hi", "h1", "Hi!", "", "h2", "Hello!", "", "", "", "", "", ""],
    ["p2", "Say hi", "h1", "Hi!", "", "", "", "", "carol", "", "", "Friendly.", '{"helpfulness": 3, "honesty": null}'],
]


def test_csv_rows_merge_into_prompts_with_labels_and_ratings(project, tmp_path):
    path = _csv(tmp_path / "flat.csv", CSV_ROWS)
    job = _ok(project, "csv", path)
    assert job.counts["prompts_created"] == 2 and job.counts["responses_created"] == 5
    assert job.counts["judgments_created"] == 3 and job.counts["ratings_created"] == 1
    r = {x.external_id: x for x in Response.objects.filter(prompt__project=project)}
    assert r["r1"].text == "Four.\nIt is 4." and r["r1"].source == "model-x"
    j = {(x.annotator.username, x.comparison.response_a.external_id, x.comparison.response_b.external_id): x
         for x in Judgment.objects.select_related("annotator", "comparison__response_a", "comparison__response_b")}
    alice_12 = j[("ext.alice", "r1", "r2")]
    assert (alice_12.choice, alice_12.strength, alice_12.rationale) == ("A", -2, 'Right, and "short"')
    assert (j[("ext.alice", "r2", "r3")].choice, j[("ext.alice", "r2", "r3")].strength) == ("B", 3)
    assert (j[("ext.bob", "r1", "r3")].choice, j[("ext.bob", "r1", "r3")].strength) == ("tie", 0)
    # A pair row without a label brings its responses only; a response row with scores, a rating.
    assert not Comparison.objects.filter(prompt__external_id="p2").exists()
    rating = Rating.objects.get()
    assert (rating.response_id, rating.annotator.username) == (r["h1"].pk, "ext.carol")
    assert rating.scores == {"helpfulness": 3, "honesty": None} and rating.rationale == "Friendly."
    again = _ok(project, "csv", path)
    assert again.counts["judgments_created"] == 0 and again.counts["ratings_created"] == 0
    assert Judgment.objects.count() == 3 and Rating.objects.count() == 1


# Header, then a row whose quoted response spans lines 2-4, then the bad row on line 5.
CSV_HEAD = "prompt_id,prompt,response_a,response_b,annotator,choice\n"
CSV_MULTILINE = 'p1,Q,"line one\nline two\nline three",B text,ann,A\n'


def test_csv_error_names_the_physical_line_after_a_multiline_field(seeded, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEAD + CSV_MULTILINE + "p1,Q,A text,C text,ann,maybe\n", encoding="utf-8")
    _rejected(seeded, "csv", path, line=5, field_part="choice", message_part="A, B, tie")


def test_csv_unclosed_quote_is_malformed_at_the_line_it_opens(seeded, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEAD + CSV_MULTILINE + 'p2,Q2,"never closed,B,ann,A\nmore\n', encoding="utf-8")
    _rejected(seeded, "csv", path, line=5, message_part="malformed CSV")


def test_csv_row_with_too_few_fields_is_rejected(seeded, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(CSV_HEAD + CSV_MULTILINE + "\np3,Q3,A,B\n", encoding="utf-8")
    _rejected(seeded, "csv", path, line=6, field_part="annotator", message_part="4 fields")


def test_csv_unknown_column_is_rejected_at_the_header(seeded, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,response_a,response_b,annotator,choise\nQ,A,B,ann,A\n", encoding="utf-8")
    _rejected(seeded, "csv", path, line=1, field_part="choise", message_part="unknown column")


@pytest.mark.parametrize(("row", "column"), [
    (["p", "Q", "", "A", "", "", "B", "", "ann", "A", "two", "", ""], "strength"),
    (["p", "Q", "", "A", "", "", "B", "", "ann", "A", "", "", '{"x": 1}'], "scores"),
    (["p", "Q", "", "A", "", "", "", "", "ann", "A", "", "", ""], "choice"),
    (["p", "Q", "", "A", "", "", "", "", "ann", "", "", "", "{not json"], "scores"),
    (["p", "Q", "", "A", "", "", "B", "", "", "A", "", "", ""], "annotator"),
])
def test_csv_bad_cell_names_line_and_column(seeded, tmp_path, row, column):
    path = _csv(tmp_path / "bad.csv", [CSV_ROWS[3], row])
    _rejected(seeded, "csv", path, line=3, field_part=column)


# --- generic Parquet ---------------------------------------------------------------------


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _pq_row(pid, question, a, b, annotator=None, choice=None, strength=None, scores=None):
    return {"prompt_id": pid, "conversation": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}],
            "response_a": a, "response_b": b, "annotator": annotator, "choice": choice, "strength": strength,
            "scores": None if scores is None else json.dumps(scores)}


def test_parquet_rows_import_in_batches(project, tmp_path, monkeypatch):
    monkeypatch.setattr(flat, "PARQUET_BATCH_ROWS", 2)
    rows = [_pq_row(f"q{i}", f"Question {i}?", f"yes {i}", f"no {i}", "dee", "B", 1) for i in range(5)]
    rows.append(_pq_row("q0", "Question 0?", "yes 0", None, "dee", scores={"helpfulness": 4}))
    path = _parquet(tmp_path / "flat.parquet", rows)
    job = _ok(project, "parquet", path)
    assert job.counts["records"] == 6 and job.counts["prompts_created"] == 5
    assert job.counts["judgments_created"] == 5 and job.counts["ratings_created"] == 1
    q0 = Prompt.objects.get(project=project, external_id="q0")
    assert q0.conversation[0] == {"role": "system", "content": "Be brief."}
    j = Judgment.objects.get(comparison__prompt=q0)
    assert (j.choice, j.strength, j.annotator.username) == ("B", 1, "ext.dee")
    assert Rating.objects.get().scores == {"helpfulness": 4}


def test_parquet_error_names_the_row_across_batches(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(flat, "PARQUET_BATCH_ROWS", 2)
    rows = [_pq_row(f"q{i}", f"Question {i}?", "yes", "no", "dee", "A") for i in range(5)]
    rows[3]["choice"] = "C"
    _rejected(seeded, "parquet", _parquet(tmp_path / "bad.parquet", rows), line=4, field_part="choice", unit="row")


def test_parquet_conflicting_prompt_names_rows(seeded, tmp_path):
    rows = [_pq_row("q1", "One?", "yes", "no"), _pq_row("q1", "Another?", "yes", "no")]
    _rejected(seeded, "parquet", _parquet(tmp_path / "bad.parquet", rows), line=2, field_part="id",
              message_part="different conversation on row 1", unit="row")


def test_parquet_that_is_not_parquet_is_rejected(seeded, tmp_path):
    path = tmp_path / "x.parquet"
    path.write_text("prompt,response_a\nQ,A\n")
    _rejected(seeded, "parquet", path, line=None, message_part="Parquet")


def test_parquet_unknown_column_is_rejected(seeded, tmp_path):
    rows = [{**_pq_row("q1", "One?", "yes", "no"), "split": "train"}]
    _rejected(seeded, "parquet", _parquet(tmp_path / "bad.parquet", rows), line=None, field_part="split")


# --- all new formats ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["oasst", "finegrained", "helpsteer2", "ultrafeedback", "csv"])
@pytest.mark.parametrize("content", [b"", b"\n\n   \n"])
def test_empty_file_is_rejected(seeded, tmp_path, fmt, content):
    path = tmp_path / "empty"
    path.write_bytes(content)
    before = db_snapshot()
    job = _import(seeded, fmt, path)
    assert job.status == ImportJob.Status.FAILED and "empty" in job.error
    assert db_snapshot() == before


def test_upload_page_offers_the_new_formats(client, owner, project):
    client.force_login(owner)
    html = client.get(f"/p/{project.slug}/import/").content.decode()
    for fmt in ("oasst", "finegrained", "helpsteer2", "ultrafeedback", "csv", "parquet"):
        assert f'value="{fmt}"' in html


def test_api_parquet_upload_runs(client, owner, project, tmp_path, django_capture_on_commit_callbacks):
    from preflab.celery import app

    path = _parquet(tmp_path / "flat.parquet", [_pq_row("q1", "One?", "yes", "no", "dee", "tie", 0)])
    client.force_login(owner)
    app.conf.task_always_eager = True
    try:
        with open(path, "rb") as fh, django_capture_on_commit_callbacks(execute=True):
            resp = client.post(f"/api/v1/projects/{project.slug}/imports/", {"format": "parquet", "file": fh})
    finally:
        app.conf.task_always_eager = False
    assert resp.status_code == 202, resp.content
    job = ImportJob.objects.get(pk=resp.json()["id"])
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert Judgment.objects.get().choice == "tie"
