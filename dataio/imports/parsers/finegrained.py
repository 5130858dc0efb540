"""Fine-Grained RLHF QA feedback (``--format finegrained``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .base import (
    ImportRejected, LabelRecord, RatingRecord, Record, ResponseRecord, _req, _text, conversation_id, iter_json_records,
)

# The six pairwise preferences come in this order; 1 = the first of the pair is
# preferred, 2 = the second, 0 = no preference (the dataset's README).
_FG_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
_FG_CHOICE = {0: "tie", 1: "A", 2: "B"}
# Error types become span type keys in the rubric's key format.
FINEGRAINED_ERROR_TYPES = {
    "Irrelevant": "irrelevant",
    "Wrong-Grounding": "wrong_grounding",
    "Unverifiable": "unverifiable",
    "Redundant": "redundant",
    "Incoherent": "incoherent",
}
FINEGRAINED_ANNOTATOR = "finegrained-rlhf.anonymous"


def parse_finegrained(path: Path) -> Iterator[Record]:
    """Fine-Grained RLHF QA feedback (a JSON array or JSON Lines).

    The prompt is the question followed by its grounding passages (annotators judged
    the answers against them; the raw passages and the gold answer are also kept in
    the prompt's metadata). ``prediction 1..4`` are responses ``prediction-1..4``;
    the six ``preference`` values are six judgments (0 kept as a tie). The error
    spans on prediction 1 become one rating of it with no scores: its spans keep the
    file's character offsets, with the type as a key (``Wrong-Grounding`` →
    ``wrong_grounding``) and any explanation; missing information and the corrected
    prediction go into that rating's metadata. The one annotator per item is
    unnamed: ``finegrained-rlhf.anonymous``.
    """
    for line, obj in iter_json_records(path):
        question = _text(_req(obj, "question", line, str), line, "question")
        passages = _req(obj, "passages", line, list)
        blocks = [question]
        for i, passage in enumerate(passages):
            if not isinstance(passage, list) or not passage or not all(isinstance(x, str) for x in passage):
                raise ImportRejected("expected a list of strings: title, then sentences", line=line, field=f"passages[{i}]")
            blocks.append(f"Passage {i + 1}: {passage[0]}\n" + " ".join(passage[1:]))
        conversation = [{"role": "user", "content": _text("\n\n".join(blocks), line, "passages")}]
        responses = [
            ResponseRecord(
                f"prediction-{i}", _text(_req(obj, f"prediction {i}", line, str), line, f"prediction {i}"), "", {"prediction": i}
            )
            for i in range(1, 5)
        ]
        preference = _req(obj, "preference", line, list)
        if len(preference) != len(_FG_PAIRS):
            raise ImportRejected(f"expected {len(_FG_PAIRS)} values, got {len(preference)}", line=line, field="preference")
        labels = []
        for k, ((x, y), value) in enumerate(zip(_FG_PAIRS, preference)):
            if value not in _FG_CHOICE or isinstance(value, bool):
                raise ImportRejected("must be 0 (no preference), 1 or 2", line=line, field=f"preference[{k}]")
            choice = _FG_CHOICE[value]
            labels.append(
                LabelRecord(f"prediction-{x}", f"prediction-{y}", FINEGRAINED_ANNOTATOR, choice, 0 if choice == "tie" else None)
            )
        feedback = _req(obj, "feedback", line, dict)
        rating = _finegrained_rating(feedback, responses[0].text, line)
        meta = {"source": "finegrained-rlhf", "question": question, "gold": obj.get("gold"), "passages": passages}
        yield Record(line, conversation_id(conversation), conversation, meta, responses, labels, [rating])


def _finegrained_rating(feedback: dict[str, Any], text: str, line: int) -> RatingRecord:
    errors = feedback.get("errors") or []
    if not isinstance(errors, list):
        raise ImportRejected("expected a list", line=line, field="feedback.errors")
    spans = []
    for k, error in enumerate(errors):
        where = f"feedback.errors[{k}]"
        if not isinstance(error, dict):
            raise ImportRejected("expected an object", line=line, field=where)
        kind = error.get("error type")
        if kind not in FINEGRAINED_ERROR_TYPES:
            raise ImportRejected(f"must be one of {', '.join(FINEGRAINED_ERROR_TYPES)}", line=line, field=f"{where}.error type")
        start, end = error.get("start"), error.get("end")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or not 0 <= start < end <= len(text):
            raise ImportRejected(
                f"start and end must satisfy 0 ≤ start < end ≤ {len(text)} (the length of prediction 1)",
                line=line, field=f"{where}.end",
            )
        span = {"start": start, "end": end, "type": FINEGRAINED_ERROR_TYPES[kind]}
        if error.get("explanation"):
            span["explanation"] = error["explanation"]
        spans.append(span)
    missing = feedback.get("missing-info") or []
    if not isinstance(missing, list):
        raise ImportRejected("expected a list", line=line, field="feedback.missing-info")
    corrected = feedback.get("corrected-prediction")
    if corrected is not None and not isinstance(corrected, str):
        raise ImportRejected("expected a string", line=line, field="feedback.corrected-prediction")
    meta = {"missing_info": missing, "corrected_prediction": corrected}
    return RatingRecord("prediction-1", FINEGRAINED_ANNOTATOR, {}, spans=spans, metadata=meta)
