"""Imports of the published preference datasets: Anthropic HH-RLHF, OpenAI
summarize-from-feedback (TL;DR and CNN/DM), PandaLM, Open-Assistant trees, Fine-Grained
RLHF, HelpSteer2 and UltraFeedback. For each: what a real (or realistic) file stores,
that a re-import adds nothing, and the rejections particular to the format."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from annotate.models import Comparison, Judgment, LabelSource, Prompt, Ranking, Rating, Response
from dataio.imports.parsers import finegrained

from tests.dataio.imports._helpers import HS2_ROWS, assert_rejected, hs2_row, import_ok, write_jsonl
from tests.helpers import db_snapshot, head_lines

pytestmark = pytest.mark.django_db


def _json_array(path, rows):
    """Write rows as an indented JSON array; return the line each element starts on."""
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return [i + 1 for i, text in enumerate(path.read_text().splitlines()) if text == " {"]


def _import_twice(project, fmt, path):
    """Import a file twice, check that the second import stored no new row, return its job."""
    import_ok(project, fmt, path)
    models = (Prompt, Response, Comparison, Judgment, Rating, Ranking)
    before = [m.objects.count() for m in models]
    job = import_ok(project, fmt, path)
    assert [m.objects.count() for m in models] == before
    return job


# --- HH-RLHF ---------------------------------------------------------------------------


@pytest.mark.shared_data
def test_hh_rlhf_gives_one_comparison_and_one_imported_judgment_per_pair(project, shared_data):
    path = shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    job = import_ok(project, "hh-rlhf", path)

    assert Comparison.objects.filter(project=project).count() == 2312
    assert Judgment.objects.filter(comparison__project=project).count() == 2312
    per_comparison = Counter(Judgment.objects.filter(comparison__project=project).values_list("comparison", flat=True))
    assert set(per_comparison.values()) == {1}
    assert set(Judgment.objects.values_list("source", flat=True)) == {LabelSource.IMPORTED}
    assert job.counts["comparisons_created"] == 2312

    # Check every row against the raw file: the prompt is the shared dialogue, the
    # responses are only the final assistant turns, and the label points at "chosen".
    rows = [json.loads(line) for line in gzip.open(path, "rt", encoding="utf-8")]
    prompts = {p.pk: p for p in Prompt.objects.filter(project=project)}
    texts = {r.pk: r.text for r in Response.objects.filter(prompt__project=project)}
    by_pair = {}
    for j in Judgment.objects.filter(comparison__project=project).select_related("comparison"):
        c = j.comparison
        chosen_id = c.response_a_id if j.choice == "A" else c.response_b_id
        rejected_id = c.response_b_id if j.choice == "A" else c.response_a_id
        by_pair[(texts[chosen_id], texts[rejected_id])] = prompts[c.prompt_id]
    simple = 0
    for row in rows:
        c_last = row["chosen"].rsplit("\n\nAssistant: ", 1)
        r_last = row["rejected"].rsplit("\n\nAssistant: ", 1)
        if c_last[0] != r_last[0]:
            continue  # the few dialogues that differ before the last turn
        simple += 1
        prompt = by_pair[(c_last[1], r_last[1])]
        rebuilt = "".join(
            f"\n\n{'Human' if t['role'] == 'user' else 'Assistant'}: {t['content']}" for t in prompt.conversation
        )
        assert rebuilt == c_last[0]
        assert prompt.conversation[-1]["role"] == "user"
    assert simple >= 2300
    # Only the few responses that carry later turns (flagged) contain a turn marker.
    single = Response.objects.filter(prompt__project=project).exclude(metadata__hh_multi_turn=True)
    assert not any("\n\nHuman: " in r.text or "\n\nAssistant: " in r.text for r in single)
    multi = Response.objects.filter(prompt__project=project, metadata__hh_multi_turn=True).count()
    assert 0 < multi <= 10


@pytest.mark.shared_data
def test_hh_rlhf_reimport_adds_nothing(project, shared_data):
    job = _import_twice(project, "hh-rlhf", shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    assert job.counts["prompts_created"] == 0 and job.counts["judgments_created"] == 0


@pytest.mark.shared_data
def test_real_hh_file_broken_at_one_line_is_rejected_with_that_line(seeded, shared_data, tmp_path):
    broken = tmp_path / "hh-broken.jsonl"
    lines = head_lines(shared_data / "hh-rlhf" / "harmless-base-test.jsonl.gz", broken, 60)
    lines[36] = lines[36][: len(lines[36]) // 2] + b"\n"  # cut line 37 in half
    broken.write_bytes(b"".join(lines))
    assert_rejected(seeded, "hh-rlhf", broken, line=37, message_part="not valid JSON")


# --- summarize-from-feedback -----------------------------------------------------------


@pytest.mark.shared_data
def test_summarize_keeps_all_workers_labels_and_confidence(project, shared_data):
    path = shared_data / "summarize-from-feedback" / "batch13.json"
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    import_ok(project, "summarize", path)

    judgments = Judgment.objects.filter(comparison__project=project).select_related("annotator", "comparison")
    assert judgments.count() == 1097
    workers = {j.annotator.username.removeprefix("summarize.") for j in judgments}
    assert workers == {r["worker"] for r in rows}
    assert len(workers) == 27
    assert not any(j.annotator.is_active or j.annotator.has_usable_password() for j in judgments)

    # Each row's label, direction and confidence survive, whatever the canonical order.
    texts = {r.pk: r.text for r in Response.objects.filter(prompt__project=project)}
    stored = {}
    for j in judgments:
        a, b = texts[j.comparison.response_a_id], texts[j.comparison.response_b_id]
        preferred = a if j.choice == "A" else b
        stored[(j.annotator.username, frozenset((a, b)))] = (preferred, j.metadata["confidence"], j.strength)
    for r in rows:
        s0, s1 = r["summaries"][0]["text"], r["summaries"][1]["text"]
        preferred, confidence, strength = stored[(f"summarize.{r['worker']}", frozenset((s0, s1)))]
        assert preferred == (s0 if r["choice"] == 0 else s1)
        assert confidence == r["extra"]["confidence"]
        # Strength sign: negative favours canonical A.
        assert strength != 0 and abs(strength) <= 3

    # The 40 items judged by several workers are single comparisons with several labels.
    multi = Counter(judgments.values_list("comparison", flat=True))
    assert sum(1 for n in multi.values() if n > 1) == 40


@pytest.mark.shared_data
def test_summarize_cnndm_with_empty_summaries_imports(project, shared_data):
    job = import_ok(project, "summarize", shared_data / "summarize-from-feedback" / "batch0_cnndm.json")
    assert job.counts["judgments_created"] == 437
    assert Response.objects.filter(prompt__project=project, text="").exists()


@pytest.mark.shared_data
def test_real_summarize_file_missing_a_field_names_line_and_field(seeded, shared_data, tmp_path):
    src = (shared_data / "summarize-from-feedback" / "batch13.json").read_text(encoding="utf-8").splitlines()[:80]
    row = json.loads(src[52])
    del row["worker"]
    src[52] = json.dumps(row)
    path = tmp_path / "summ.json"
    path.write_text("\n".join(src) + "\n", encoding="utf-8")
    assert_rejected(seeded, "summarize", path, line=53, field_part="worker")


# --- PandaLM ---------------------------------------------------------------------------


@pytest.mark.shared_data
def test_pandalm_three_labels_per_pair_with_ties(project, shared_data):
    path = shared_data / "pandalm" / "testset-v1.json"
    rows = json.loads(path.read_text(encoding="utf-8"))
    import_ok(project, "pandalm", path)

    assert Comparison.objects.filter(project=project).count() == 999
    per = Counter(Judgment.objects.filter(comparison__project=project).values_list("comparison", flat=True))
    assert len(per) == 999 and set(per.values()) == {3}
    expected_ties = sum(1 for r in rows for k in ("annotator1", "annotator2", "annotator3") if r[k] == 0)
    ties = Judgment.objects.filter(comparison__project=project, choice="tie")
    assert ties.count() == expected_ties > 0
    assert set(ties.values_list("strength", flat=True)) == {0}
    assert set(Judgment.objects.values_list("annotator__username", flat=True)) == {
        "pandalm.annotator1", "pandalm.annotator2", "pandalm.annotator3"
    }
    # Row 0: all three annotators preferred response2.
    first = rows[0]
    r2 = Response.objects.get(prompt__project=project, external_id=f"{first['idx']}:2")
    labels = Judgment.objects.filter(comparison__response_a=r2) | Judgment.objects.filter(comparison__response_b=r2)
    for j in labels:
        assert (j.comparison.response_a_id if j.choice == "A" else j.comparison.response_b_id) == r2.pk


@pytest.mark.shared_data
def test_real_pandalm_array_with_a_bad_label_names_the_element_line(seeded, shared_data, tmp_path):
    rows = json.loads((shared_data / "pandalm" / "testset-v1.json").read_text(encoding="utf-8"))[:30]
    rows[17]["annotator2"] = 7
    path = tmp_path / "pandalm.json"
    starts = _json_array(path, rows)  # the 18th element starts at the 18th line that opens an object
    assert_rejected(seeded, "pandalm", path, line=starts[17], field_part="annotator2")


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
    job = import_ok(project, "oasst", path)

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
    import_ok(project, "oasst", path)
    before = db_snapshot()
    job = import_ok(project, "oasst", path)
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
    assert_rejected(seeded, "oasst", path, line=i + 1, field_part="prompt.replies[0].rank", message_part="siblings")


@pytest.mark.shared_data
def test_oasst_ranks_with_a_gap_are_rejected(seeded, shared_data, tmp_path):
    lines, i, tree = _oasst_lines_with_a_group(shared_data, 3)
    for reply in tree["prompt"]["replies"]:
        if reply["rank"] == 2:
            reply["rank"] = 3  # ranks 0, 1, 3: the sibling ranked 2 is missing
    lines[i] = json.dumps(tree)
    path = tmp_path / "oasst.jsonl"
    path.write_text("\n".join(lines[: i + 1]) + "\n", encoding="utf-8")
    assert_rejected(seeded, "oasst", path, line=i + 1, field_part="prompt.replies", message_part="skip 2")


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
    import_ok(project, "oasst", write_jsonl(tmp_path / "t.jsonl", [tree]))
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
    job = import_ok(project, "finegrained", path)

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
    job = _import_twice(project, "finegrained", shared_data / "finegrained-rlhf" / "dev_feedback.json")
    assert job.counts["judgments_created"] == 0 and job.counts["ratings_created"] == 0
    assert job.counts["ratings_updated"] == 500


def _finegrained_array(shared_data, tmp_path, n, change):
    rows = json.loads((shared_data / "finegrained-rlhf" / "dev_feedback.json").read_text(encoding="utf-8"))[:n]
    change(rows)
    path = tmp_path / "fg.json"
    return path, _json_array(path, rows)


@pytest.mark.shared_data
def test_finegrained_unknown_preference_names_element_and_index(seeded, shared_data, tmp_path):
    path, starts = _finegrained_array(shared_data, tmp_path, 50, lambda rows: rows[40]["preference"].__setitem__(3, 5))
    assert_rejected(seeded, "finegrained", path, line=starts[40], field_part="preference[3]")


@pytest.mark.shared_data
def test_finegrained_span_past_the_end_of_prediction_1_is_rejected(seeded, shared_data, tmp_path):
    def change(rows):
        rows[7]["feedback"]["errors"] = [{"error type": "Redundant", "explanation": "", "start": 5,
                                          "end": len(rows[7]["prediction 1"]) + 1}]
    path, starts = _finegrained_array(shared_data, tmp_path, 10, change)
    assert_rejected(seeded, "finegrained", path, line=starts[7], field_part="feedback.errors[0].end", message_part="length")


@pytest.mark.shared_data
def test_finegrained_unknown_error_type_is_rejected(seeded, shared_data, tmp_path):
    def change(rows):
        rows[2]["feedback"]["errors"] = [{"error type": "Rude", "start": 0, "end": 3}]
    path, starts = _finegrained_array(shared_data, tmp_path, 5, change)
    assert_rejected(seeded, "finegrained", path, line=starts[2], field_part="errors[0].error type")


# --- HelpSteer2 ------------------------------------------------------------------------


def test_helpsteer2_rows_become_ratings_under_shared_prompts(project, tmp_path):
    path = write_jsonl(tmp_path / "hs2.jsonl.gz", HS2_ROWS, gz=True)
    job = import_ok(project, "helpsteer2", path)
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
    again = import_ok(project, "helpsteer2", path)
    assert (again.counts["ratings_created"], again.counts["ratings_updated"]) == (0, 3)
    assert Rating.objects.count() == 3 and Response.objects.count() == 3


def test_helpsteer2_annotator_field_names_the_annotator(project, tmp_path):
    path = write_jsonl(tmp_path / "hs2.jsonl", [hs2_row("Q?", "A.", 2, 2, 2, 2, 2, annotator="w17")])
    import_ok(project, "helpsteer2", path)
    assert Rating.objects.get().annotator.username == "helpsteer2.w17"


def test_helpsteer2_score_out_of_range_is_rejected(seeded, tmp_path):
    rows = [*HS2_ROWS, hs2_row("Q?", "A.", 2, 2, 2, 2, 5)]
    assert_rejected(seeded, "helpsteer2", write_jsonl(tmp_path / "hs2.jsonl", rows), line=4, field_part="verbosity", message_part="0..4")


def test_helpsteer2_missing_attribute_is_rejected(seeded, tmp_path):
    row = hs2_row("Q?", "A.", 2, 2, 2, 2, 2)
    del row["correctness"]
    assert_rejected(seeded, "helpsteer2", write_jsonl(tmp_path / "hs2.jsonl", [HS2_ROWS[0], row]), line=2, field_part="correctness")


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
    path = write_jsonl(tmp_path / "uf.jsonl", [row])
    job = import_ok(project, "ultrafeedback", path)
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
    again = import_ok(project, "ultrafeedback", path)
    assert again.counts["ratings_created"] == 0 and Rating.objects.count() == 3


def test_ultrafeedback_rating_out_of_range_is_rejected(seeded, tmp_path):
    good = _uf_row("Q1", [_uf_completion("m1", "a", ["1", "2", "3", "4"])])
    bad = _uf_row("Q2", [_uf_completion("m1", "a", ["1", "2", "3", "4"]), _uf_completion("m2", "b", ["1", "6", "3", "4"])])
    assert_rejected(seeded, "ultrafeedback", write_jsonl(tmp_path / "uf.jsonl", [good, bad]), line=2,
              field_part="completions[1].annotations.honesty.Rating", message_part="N/A")


def test_ultrafeedback_unknown_aspect_is_rejected(seeded, tmp_path):
    comp = _uf_completion("m1", "a", ["1", "2", "3", "4"])
    comp["annotations"]["harmlessness"] = {"Rating": "5", "Rationale": "?"}
    assert_rejected(seeded, "ultrafeedback", write_jsonl(tmp_path / "uf.jsonl", [_uf_row("Q", [comp])]), line=1,
              field_part="annotations.harmlessness")
