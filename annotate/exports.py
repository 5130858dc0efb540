"""Datasets out (DESIGN §7): export formats, aggregation across annotators, the
dataset card, and export jobs.

An export is a folder: the data (one file, or a ``datasets`` folder written by
``Dataset.save_to_disk``) and a ``README.md`` dataset card. It is built under a
temporary name beside its final place and renamed only when complete, so a
cancelled or failed export never leaves a folder that looks finished.

Labels are streamed in primary-key order of what they label (``.iterator()``), a
chunk at a time; texts are fetched per chunk. Memory stays flat whatever the
size of the project, except for what an aggregation strictly needs: Dawid-Skene
fits on every (comparison, annotator, label) triple, kept as integers. Agreement
statistics are accumulated as comparisons pass.

A snapshot id (``p{project}-j{judgment}-r{rating}-k{ranking}``) names the highest
label ids an export reads. The same snapshot and options give the same rows, byte
for byte: ordering is deterministic and no row carries a timestamp. (A label
edited in place afterwards, e.g. by re-importing a changed file, is read as it is
now.)

Derived judgments (``source = derived``, made from ratings by a rubric rule) are
never exported as human labels: they are left out and counted, unless an export
asks for them with ``include_derived``.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import itertools
import json
import logging
import math
import re
import shutil
import uuid
import warnings
import zipfile
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from rubrics.models import RubricVersion
from rubrics.portable import build_document
from rubrics.schema import KEY_PATTERN, answer_number

from .models import ExportJob, Judgment, LabelSource, Project, Prompt, Ranking, Rating, Response

log = logging.getLogger(__name__)

FORMATS = {
    "trl": "TRL preference pairs: prompt, chosen and rejected as text (optional margin).",
    "trl-conversational": "TRL conversational preference pairs: prompt, chosen and rejected as {role, content} turns.",
    "helpsteer2": "One row per rated response with the mean and count of each criterion (HelpSteer2-style).",
    "rankings": "One row per ranking: the prompt's responses best first, ties sharing a rank.",
    "best-of-n": "One row per ranking with a single best response: chosen, and the rest rejected.",
    "raw": "Every label (judgments, ratings, rankings) with pseudonymous annotators, rubric version and shown order.",
    "generic": "The generic import schema (JSONL, CSV or Parquet): re-imports into PrefLab unchanged.",
}
FILE_FORMATS = {"jsonl": "JSON Lines", "csv": "CSV", "parquet": "Parquet", "hf": "Hugging Face datasets folder"}
AGGREGATIONS = {
    "all": "every label is its own row, with its annotator's pseudonymous id",
    "majority": "one row per comparison: the most frequent answer (a tie in the vote is left out)",
    "dawid-skene": "one row per comparison: the answer Dawid-Skene infers, weighing annotators by their estimated confusion",
}
PAIRWISE_FORMATS = ("trl", "trl-conversational")
CHOICES = ("A", "B", "tie", "both_bad")
CHUNK = 5000  # labels per database round trip (and per cancel check)
WRITE_BATCH = 2000  # rows per Parquet record batch (larger ones cost pyarrow far more memory than they save time)
TEXT_CACHE = 20_000  # prompts (or responses) kept between chunks
SNAPSHOT_RE = re.compile(r"p(\d+)-j(\d+)-r(\d+)-k(\d+)")
ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


class ExportCancelled(Exception):
    pass


# --- options and snapshots ---------------------------------------------------------


@dataclass(frozen=True)
class ExportSpec:
    """What to export. Invalid combinations raise ``ValueError`` with a sentence."""

    format: str
    file_format: str = "jsonl"
    aggregate: str = "all"
    min_agreement: float | None = None
    criterion: str | None = None
    margin: float | None = None  # scale of the margin column (|strength| × margin); None: no column
    include_derived: bool = False

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.file_format not in FILE_FORMATS:
            raise ValueError(f"unknown file format {self.file_format!r}; choose one of {', '.join(FILE_FORMATS)}")
        if self.format == "generic" and self.file_format == "hf":
            raise ValueError("the generic format is for re-import: choose jsonl, csv or parquet")
        if self.aggregate not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {self.aggregate!r}; choose one of {', '.join(AGGREGATIONS)}")
        pairwise_only = {
            "aggregation": self.aggregate != "all", "min agreement": self.min_agreement is not None,
            "criterion": self.criterion is not None, "margin": self.margin is not None,
        }
        used = [name for name, on in pairwise_only.items() if on]
        if used and self.format not in PAIRWISE_FORMATS:
            raise ValueError(f"{used[0]} applies to the pairwise formats ({', '.join(PAIRWISE_FORMATS)}) only")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise ValueError("min agreement is a share between 0 (exclusive) and 1")
        if self.criterion is not None and not re.fullmatch(KEY_PATTERN, self.criterion):
            raise ValueError("a criterion key is lower-case letters, digits and _")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin > 0):
            raise ValueError("the margin scale must be a positive number")
        if self.margin is not None and self.criterion is not None:
            raise ValueError("per-criterion choices carry no strength, so a criterion split has no margin")

    def options(self) -> dict[str, Any]:
        data = asdict(self)
        del data["format"], data["file_format"]
        return data

    @classmethod
    def from_job(cls, job: ExportJob) -> "ExportSpec":
        return cls(format=job.format, file_format=job.file_format, **job.options)

    @property
    def data_name(self) -> str:
        stem = f"{self.format}-{self.criterion}" if self.criterion else self.format
        return stem if self.file_format == "hf" else f"{stem}.{self.file_format}"


@dataclass(frozen=True)
class Snapshot:
    project_id: int
    judgment: int
    rating: int
    ranking: int

    def __str__(self) -> str:
        return f"p{self.project_id}-j{self.judgment}-r{self.rating}-k{self.ranking}"


def snapshot_take(*, project: Project) -> Snapshot:
    """The highest label ids of the project now."""

    def top(qs) -> int:
        return qs.aggregate(m=Max("id"))["m"] or 0

    return Snapshot(
        project.pk,
        top(Judgment.objects.filter(comparison__project=project)),
        top(Rating.objects.filter(response__prompt__project=project)),
        top(Ranking.objects.filter(prompt__project=project)),
    )


def snapshot_parse(*, project: Project, text: str) -> Snapshot:
    m = SNAPSHOT_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a snapshot id: {text!r} (expected p<project>-j<id>-r<id>-k<id>)")
    snap = Snapshot(*map(int, m.groups()))
    if snap.project_id != project.pk:
        raise ValueError(f"snapshot {text} belongs to another project")
    return snap


# --- text helpers ---------------------------------------------------------------------


def prompt_text(conversation: list[dict[str, str]]) -> str:
    """A single user turn as it is; anything longer as a "User: …" / "Assistant: …"
    layout ending in "Assistant:", the turn that chosen and rejected complete."""
    if len(conversation) == 1 and conversation[0]["role"] == "user":
        return conversation[0]["content"]
    turns = [f"{ROLE_NAMES.get(t['role'], t['role'])}: {t['content']}" for t in conversation]
    return "\n\n".join([*turns, "Assistant:"])


def annotator_pseudonym(*, salt: str, user_id: int) -> str:
    """Stable per project, unlinkable across projects, never the username: an HMAC of
    the user id keyed by the project's secret salt."""
    return hmac.new(salt.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:16]


@dataclass
class _PromptRow:
    external_id: str
    conversation: list[dict[str, str]]
    metadata: dict[str, Any]
    text: str


@dataclass
class _ResponseRow:
    external_id: str
    text: str
    source: str
    metadata: dict[str, Any]


class _Texts:
    """Prompts with all their responses, by primary key, fetched for a chunk of
    prompts at a time (two queries). Past TEXT_CACHE entries the cache keeps only
    what the current chunk needs, so memory stays flat while rows that arrive in
    order rarely refetch anything. Metadata is read only for formats that carry it."""

    def __init__(self, *, metadata: bool) -> None:
        self.metadata = metadata
        self.prompts: dict[int, _PromptRow] = {}
        self.responses: dict[int, _ResponseRow] = {}
        self.by_prompt: dict[int, list[int]] = {}  # prompt pk → its response pks in id order

    def load(self, prompt_ids: set[int]) -> None:
        if len(self.prompts) > TEXT_CACHE or len(self.responses) > TEXT_CACHE:
            self.prompts = {k: v for k, v in self.prompts.items() if k in prompt_ids}
            self.by_prompt = {k: self.by_prompt[k] for k in self.prompts}
            self.responses = {pk: self.responses[pk] for pks in self.by_prompt.values() for pk in pks}
        missing = prompt_ids - self.prompts.keys()
        if not missing:
            return
        meta = ("metadata",) if self.metadata else ()
        for pk, ext, conv, *m in Prompt.objects.filter(pk__in=missing).values_list("pk", "external_id", "conversation", *meta):
            self.prompts[pk] = _PromptRow(ext, conv, m[0] if m else {}, prompt_text(conv))
            self.by_prompt[pk] = []
        responses = Response.objects.filter(prompt_id__in=missing).order_by("id")
        for pk, prompt_id, ext, text, source, *m in responses.values_list("pk", "prompt_id", "external_id", "text", "source", *meta):
            self.responses[pk] = _ResponseRow(ext, text, source, m[0] if m else {})
            self.by_prompt[prompt_id].append(pk)


# --- agreement -------------------------------------------------------------------------


class _Agreement:
    """Raw pairwise agreement and Krippendorff's α (nominal) over A / B / tie /
    both_bad, accumulated as comparisons stream past, in constant memory.

    ``krippendorff.alpha(value_counts=…)`` builds an (items × V × V) array, about
    200 MB at 500k comparisons. Its coincidence matrix is a sum over comparisons,
    so we add each comparison's share as it passes (Krippendorff 2011):
    o_ck += n_c (n_k − [c = k]) / (m − 1) for a comparison with m ≥ 2 labels, n_c
    of them c; then α = 1 − (n − 1) Σ_{c≠k} o_ck / Σ_{c≠k} n_c n_k with
    n_c = Σ_k o_ck and n = Σ_c n_c. tests/test_exports.py checks the result
    against ``krippendorff.alpha``.
    """

    def __init__(self) -> None:
        self.items = 0
        self.agreeing_pairs = 0  # Σ n_c (n_c − 1): ordered annotator pairs with the same answer
        self.pairs = 0  # Σ m (m − 1)
        self.o = [[0.0] * len(CHOICES) for _ in CHOICES]

    def add(self, votes: dict[str, int]) -> None:
        m = sum(votes.values())
        if m < 2:
            return
        self.items += 1
        self.pairs += m * (m - 1)
        counts = [(i, votes[c]) for i, c in enumerate(CHOICES) if c in votes]
        for i, ni in counts:
            self.agreeing_pairs += ni * (ni - 1)
            for k, nk in counts:
                self.o[i][k] += ni * (nk - (i == k)) / (m - 1)

    def summary(self) -> dict[str, Any]:
        if not self.items:
            return {"items": 0, "raw": None, "alpha": None}
        n_c = [sum(row) for row in self.o]
        n = sum(n_c)
        disagree = sum(self.o[c][k] for c in range(len(CHOICES)) for k in range(len(CHOICES)) if c != k)
        expected = sum(n_c[c] * n_c[k] for c in range(len(CHOICES)) for k in range(len(CHOICES)) if c != k)
        # α is undefined when every label is the same answer (no expected disagreement).
        alpha = None if expected == 0 else 1 - (n - 1) * disagree / expected
        return {"items": self.items, "raw": round(self.agreeing_pairs / self.pairs, 4),
                "alpha": None if alpha is None else round(alpha, 4)}


# --- the export context -----------------------------------------------------------------


@dataclass
class _Context:
    project: Project
    spec: ExportSpec
    snapshot: Snapshot
    on_progress: Callable[[float, int], bool] | None = None
    counts: Counter = field(default_factory=Counter)
    rubric_versions: Counter = field(default_factory=Counter)
    agreement: _Agreement | None = None
    total: int = 0  # labels to read (twice over for Dawid-Skene)
    consumed: int = 0
    rows: int = 0
    _pseudonyms: dict[int, str] = field(default_factory=dict)
    _querysets: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.texts = _Texts(metadata=self.spec.format == "generic")

    def pseudonym(self, user_id: int) -> str:
        if user_id not in self._pseudonyms:
            self._pseudonyms[user_id] = annotator_pseudonym(salt=self.project.annotator_salt, user_id=user_id)
        return self._pseudonyms[user_id]

    def chunks(self, rows: Iterable) -> Iterator[list]:
        """Batches of CHUNK rows; between batches, progress is reported and a cancel
        request (the callback returning False) stops the export."""
        it = iter(rows)
        while batch := list(itertools.islice(it, CHUNK)):
            yield batch
            self.consumed += len(batch)
            if self.on_progress is not None and not self.on_progress(min(self.consumed / max(self.total, 1), 0.99), self.rows):
                raise ExportCancelled()

    def _labels(self, qs, kind: str) -> Any:
        """The snapshot's labels of one kind; derived ones are counted (once) and left
        out unless asked for."""
        if kind not in self._querysets:
            qs = qs.filter(pk__lte=getattr(self.snapshot, kind))
            derived = qs.filter(source=LabelSource.DERIVED).count()
            self.counts["derived_included" if self.spec.include_derived else "derived_excluded"] += derived
            self._querysets[kind] = qs if self.spec.include_derived else qs.exclude(source=LabelSource.DERIVED)
        return self._querysets[kind]

    def judgments(self):
        return self._labels(Judgment.objects.filter(comparison__project=self.project), "judgment")

    def ratings(self):
        return self._labels(Rating.objects.filter(response__prompt__project=self.project), "rating")

    def rankings(self):
        return self._labels(Ranking.objects.filter(prompt__project=self.project), "ranking")


# Columns: (name, kind, help). Kinds: str, int, float, json (an object in JSONL, JSON
# text in CSV and Parquet), turns (a list of {role, content}), strs (a list of
# strings), ranked (a list of {id, text, source, rank}).
Column = tuple[str, str, str]


def _judgment_stream(ctx: _Context, fields: list[str]) -> Iterator[Any]:
    """The snapshot's judgments in (comparison, annotator) order, as named rows with
    ``prompt_pk``, ``a_pk`` and ``b_pk``, their texts loaded."""
    qs = (
        ctx.judgments()
        .annotate(prompt_pk=F("comparison__prompt_id"), a_pk=F("comparison__response_a_id"), b_pk=F("comparison__response_b_id"))
        .order_by("comparison_id", "annotator_id")
        .values_list("comparison_id", "annotator_id", "rubric_version_id", "prompt_pk", "a_pk", "b_pk", *fields, named=True)
    )
    return _with_texts(ctx, qs)


def _with_texts(ctx: _Context, qs) -> Iterator[Any]:
    """Rows of ``qs`` (named, with ``prompt_pk``) a chunk at a time, each chunk's
    prompts and responses loaded before its rows are yielded. The last row of the
    previous chunk stays loaded too, so a group of rows that straddles two chunks
    keeps its texts."""
    last = None
    for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
        needed = chunk if last is None else [last, *chunk]
        ctx.texts.load({r.prompt_pk for r in needed})
        yield from chunk
        last = chunk[-1]


def _vote(ctx: _Context, row) -> str | None:
    """The answer a label gives for this export: the overall choice, or the criterion's."""
    if ctx.spec.criterion is None:
        return row.choice
    value = (row.criteria or {}).get(ctx.spec.criterion)
    return value if value in CHOICES else None


def _dawid_skene(ctx: _Context) -> dict[int, str]:
    """Comparison id → the answer Dawid-Skene infers (crowd-kit), fitted on every label."""
    import numpy as np
    import pandas as pd
    from crowdkit.aggregation import DawidSkene

    field_name = "criteria" if ctx.spec.criterion else "choice"
    qs = ctx.judgments().order_by("comparison_id", "annotator_id").values_list(
        "comparison_id", "annotator_id", field_name, named=True
    )
    tasks, workers, labels = array("q"), array("q"), array("b")
    code = {c: i for i, c in enumerate(CHOICES)}
    for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
        for row in chunk:
            vote = _vote(ctx, row)
            if vote is not None:
                tasks.append(row.comparison_id)
                workers.append(row.annotator_id)
                labels.append(code[vote])
    if not tasks:
        return {}
    data = pd.DataFrame({"task": np.frombuffer(tasks, dtype=np.int64), "worker": np.frombuffer(workers, dtype=np.int64),
                         "label": np.frombuffer(labels, dtype=np.int8)})
    with warnings.catch_warnings():
        # crowd-kit 1.4 calls pandas APIs that pandas 3.1 deprecates (inplace=, copy=): noise, not our bug.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        result = DawidSkene(n_iter=100).fit_predict(data)
    return {int(task): CHOICES[int(label)] for task, label in result.items()}


def _pairwise(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    spec = ctx.spec
    conversational = spec.format == "trl-conversational"
    kind = "turns" if conversational else "str"
    columns: list[Column] = [
        ("prompt", kind, "the conversation" + ("" if conversational else " as text (one user turn as it is; longer ones as a User:/Assistant: layout ending in 'Assistant:')")),
        ("chosen", kind, "the preferred response" + (" as one assistant turn" if conversational else "")),
        ("rejected", kind, "the other response" + (" as one assistant turn" if conversational else "")),
    ]
    if spec.margin is not None:
        columns.append(("margin", "float", f"|strength| × {spec.margin:g} (a label without a strength: 0); aggregated rows average the labels that agree"))
    columns += [
        ("prompt_id", "str", "the prompt's external id"),
        ("chosen_id", "str", "the chosen response's external id"),
        ("rejected_id", "str", "the rejected response's external id"),
    ]
    if spec.aggregate == "all":
        columns.append(("annotator", "str", "pseudonymous annotator id (stable within this project)"))
    else:
        columns += [("n_labels", "int", "labels on the comparison"), ("agreement", "float", "share of labels giving the winning answer")]
    ctx.total = ctx.judgments().count() * (2 if spec.aggregate == "dawid-skene" else 1)
    ctx.agreement = _Agreement()
    return columns, _pairwise_rows(ctx, conversational)


def _pairwise_rows(ctx: _Context, conversational: bool) -> Iterator[dict]:
    spec = ctx.spec
    inferred = _dawid_skene(ctx) if spec.aggregate == "dawid-skene" else None
    fields = ["criteria"] if spec.criterion else ["choice", "strength"]
    by_criterion = spec.criterion is not None
    unit = "labels" if spec.aggregate == "all" else "items"
    for comparison_id, group in itertools.groupby(_judgment_stream(ctx, fields), key=attrgetter("comparison_id")):
        labels = list(group)
        ctx.counts["labels"] += len(labels)
        votes = []
        tally: dict[str, int] = {}
        for r in labels:
            ctx.rubric_versions[r.rubric_version_id] += 1
            v = _vote(ctx, r) if by_criterion else r.choice
            if v is None:
                ctx.counts["excluded_criterion_missing"] += 1
                continue
            votes.append((r, v))
            tally[v] = tally.get(v, 0) + 1
        if not votes:
            continue
        ctx.counts["items"] += 1
        ctx.agreement.add(tally)
        ranked = sorted(tally.items(), key=itemgetter(1), reverse=True)
        share = ranked[0][1] / len(votes)
        if spec.min_agreement is not None and share < spec.min_agreement:
            ctx.counts[f"excluded_min_agreement_{unit}"] += len(votes) if unit == "labels" else 1
            continue
        first = labels[0]
        prompt = ctx.texts.prompts[first.prompt_pk]
        a, b = ctx.texts.responses[first.a_pk], ctx.texts.responses[first.b_pk]
        if spec.aggregate == "all":
            for r, v in votes:
                if v in ("tie", "both_bad"):
                    ctx.counts[f"excluded_{v}_labels"] += 1
                    continue
                strength = None if by_criterion else r.strength
                yield _pair_row(spec, conversational, prompt, a, b, v, [strength], {"annotator": ctx.pseudonym(r.annotator_id)})
            continue
        if inferred is not None:
            winner = inferred.get(comparison_id)
        elif len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            ctx.counts["excluded_vote_tied_items"] += 1
            continue
        else:
            winner = ranked[0][0]
        if winner in ("tie", "both_bad"):
            ctx.counts[f"excluded_{winner}_items"] += 1
            continue
        strengths = [None if by_criterion else r.strength for r, v in votes if v == winner]
        extra = {"n_labels": len(votes), "agreement": tally[winner] / len(votes)}
        yield _pair_row(spec, conversational, prompt, a, b, winner, strengths, extra)


def _pair_row(spec, conversational, prompt: _PromptRow, a: _ResponseRow, b: _ResponseRow, winner: str,
              strengths: list[int | None], extra: dict) -> dict:
    chosen, rejected = (a, b) if winner == "A" else (b, a)
    if conversational:
        row = {"prompt": prompt.conversation, "chosen": [{"role": "assistant", "content": chosen.text}],
               "rejected": [{"role": "assistant", "content": rejected.text}]}
    else:
        row = {"prompt": prompt.text, "chosen": chosen.text, "rejected": rejected.text}
    if spec.margin is not None:
        known = [abs(s) for s in strengths if s is not None]
        row["margin"] = spec.margin * (sum(known) / len(known) if known else 0.0)
    row.update(prompt_id=prompt.external_id, chosen_id=chosen.external_id, rejected_id=rejected.external_id, **extra)
    return row


def _helpsteer2(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    ratings = ctx.ratings()
    n = ratings.count()
    ctx.total = 2 * n
    keys: set[str] = set()
    for chunk in ctx.chunks(ratings.values_list("scores", flat=True).iterator(chunk_size=CHUNK)):
        for scores in chunk:
            keys.update(scores or {})
    keys_sorted = sorted(keys)
    fixed = ("prompt", "response", "prompt_id", "response_id", "source", "n_ratings")
    clash = [k for k in keys_sorted if k in fixed or k.endswith("_count") and k[:-6] in keys]
    if clash:
        raise ValueError(f"criterion key {clash[0]!r} would clash with another column of the helpsteer2 format")
    columns: list[Column] = [
        ("prompt", "str", "the conversation as text"), ("response", "str", "the rated response"),
        ("prompt_id", "str", "the prompt's external id"), ("response_id", "str", "the response's external id"),
        ("source", "str", "the model or policy that wrote the response"), ("n_ratings", "int", "ratings of the response"),
    ]
    for key in keys_sorted:
        columns += [(key, "float", f"mean {key} (Likert as numbers, yes = 1 / no = 0, severity none = 0 … severe = 3; N/A left out)"),
                    (f"{key}_count", "int", f"ratings with a {key} score")]
    return columns, _helpsteer2_rows(ctx, ratings, keys_sorted)


def _helpsteer2_rows(ctx: _Context, ratings, keys: list[str]) -> Iterator[dict]:
    qs = ratings.annotate(prompt_pk=F("response__prompt_id")).order_by("response_id", "annotator_id").values_list(
        "response_id", "prompt_pk", "scores", "rubric_version_id", named=True
    )
    for response_id, group in itertools.groupby(_with_texts(ctx, qs), key=attrgetter("response_id")):
        rows = list(group)
        ctx.counts["labels"] += len(rows)
        sums: dict[str, list[float]] = {k: [] for k in keys}
        for r in rows:
            ctx.rubric_versions[r.rubric_version_id] += 1
            for key, value in (r.scores or {}).items():
                number = answer_number(value)
                if number is not None:
                    sums[key].append(number)
        prompt, response = ctx.texts.prompts[rows[0].prompt_pk], ctx.texts.responses[response_id]
        out = {"prompt": prompt.text, "response": response.text, "prompt_id": prompt.external_id,
               "response_id": response.external_id, "source": response.source, "n_ratings": len(rows)}
        for key in keys:
            out[key] = sum(sums[key]) / len(sums[key]) if sums[key] else None
            out[f"{key}_count"] = len(sums[key])
        ctx.counts["items"] += 1
        yield out


def _ranking_stream(ctx: _Context) -> Iterator[tuple[Any, list[int]]]:
    """The snapshot's rankings in (prompt, annotator) order, each with every response
    id of its prompt (for the ones left unranked)."""
    qs = ctx.rankings().order_by("prompt_id", "annotator_id").values_list(
        "pk", "prompt_id", "annotator_id", "groups", "rubric_version_id", named=True
    )
    ctx.total = ctx.rankings().count()
    for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
        ctx.texts.load({r.prompt_id for r in chunk})
        for r in chunk:
            ctx.counts["labels"] += 1
            ctx.rubric_versions[r.rubric_version_id] += 1
            yield r, ctx.texts.by_prompt[r.prompt_id]


def _ordered(groups: list[list[int]], all_ids: list[int]) -> tuple[list[list[int]], list[int]]:
    """Ranked groups (responses that no longer exist dropped) and the unranked rest."""
    present = set(all_ids)
    ranked = [[pk for pk in g if pk in present] for g in groups]
    ranked = [g for g in ranked if g]
    seen = {pk for g in ranked for pk in g}
    return ranked, [pk for pk in all_ids if pk not in seen]


def _rankings(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    columns: list[Column] = [
        ("prompt", "str", "the conversation as text"), ("prompt_id", "str", "the prompt's external id"),
        ("responses", "ranked", "the prompt's responses best first: {id, text, source, rank}; ties share a rank; unranked ones last with rank null"),
        ("annotator", "str", "pseudonymous annotator id"),
    ]

    def rows() -> Iterator[dict]:
        for r, all_ids in _ranking_stream(ctx):
            ranked, unranked = _ordered(r.groups, all_ids)
            out = []
            for rank, group in enumerate(ranked, start=1):
                out += [_ranked(ctx, pk, rank) for pk in group]
            out += [_ranked(ctx, pk, None) for pk in unranked]
            prompt = ctx.texts.prompts[r.prompt_id]
            ctx.counts["items"] += 1
            yield {"prompt": prompt.text, "prompt_id": prompt.external_id, "responses": out, "annotator": ctx.pseudonym(r.annotator_id)}

    return columns, rows()


def _ranked(ctx: _Context, pk: int, rank: int | None) -> dict:
    resp = ctx.texts.responses[pk]
    return {"id": resp.external_id, "text": resp.text, "source": resp.source, "rank": rank}


def _best_of_n(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    columns: list[Column] = [
        ("prompt", "str", "the conversation as text"), ("chosen", "str", "the response ranked best"),
        ("rejected", "strs", "every other response of the prompt: lower ranks in order, then unranked ones"),
        ("prompt_id", "str", "the prompt's external id"), ("chosen_id", "str", "the chosen response's external id"),
        ("rejected_ids", "strs", "the rejected responses' external ids"), ("annotator", "str", "pseudonymous annotator id"),
    ]

    def rows() -> Iterator[dict]:
        for r, all_ids in _ranking_stream(ctx):
            ranked, unranked = _ordered(r.groups, all_ids)
            if not ranked or len(ranked[0]) > 1:
                ctx.counts["excluded_tied_best_labels"] += 1
                continue
            rest = [pk for g in ranked[1:] for pk in g] + unranked
            if not rest:
                ctx.counts["excluded_single_response_labels"] += 1
                continue
            prompt, best = ctx.texts.prompts[r.prompt_id], ctx.texts.responses[ranked[0][0]]
            others = [ctx.texts.responses[pk] for pk in rest]
            ctx.counts["items"] += 1
            yield {"prompt": prompt.text, "chosen": best.text, "rejected": [o.text for o in others],
                   "prompt_id": prompt.external_id, "chosen_id": best.external_id,
                   "rejected_ids": [o.external_id for o in others], "annotator": ctx.pseudonym(r.annotator_id)}

    return columns, rows()


RAW_COLUMNS: list[Column] = [
    ("kind", "str", "judgment, rating or ranking"),
    ("label_id", "int", "the label's id in this PrefLab instance"),
    ("prompt_id", "str", "the prompt's external id"),
    ("response_a_id", "str", "judgments: response A (the lower row id of the pair)"),
    ("response_b_id", "str", "judgments: response B"),
    ("response_id", "str", "ratings: the rated response"),
    ("annotator", "str", "pseudonymous annotator id (stable within this project, never the username)"),
    ("rubric", "str", "rubric slug of the version the label was made under (empty: none)"),
    ("rubric_version", "int", "that version's number"),
    ("shown_left", "str", "judgments: which response was shown on the left, A or B (empty: unknown)"),
    ("choice", "str", "judgments: A, B, tie or both_bad"),
    ("strength", "int", "judgments: −3 (A much better) … 0 (tie) … 3 (B much better); empty: unknown"),
    ("criteria", "json", "judgments: {criterion: A|B|tie|na}"),
    ("scores", "json", "ratings: {criterion: value, null for N/A}"),
    ("ranking", "json", "rankings: groups of response external ids, best first; ties share a group"),
    ("spans", "json", "tagged spans: character offsets into the response text with their type"),
    ("rationale", "str", "the annotator's rationale"),
    ("time_on_task_ms", "int", "time on task in milliseconds"),
    ("source", "str", "human, imported, model or derived"),
    ("metadata", "json", "provenance, e.g. an imported confidence"),
]


def _raw(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    judgments, ratings, rankings = ctx.judgments(), ctx.ratings(), ctx.rankings()
    ctx.total = judgments.count() + ratings.count() + rankings.count()
    versions = {pk: (slug, number) for pk, slug, number in RubricVersion.objects.values_list("pk", "rubric__slug", "number")}
    empty = {name: None for name, _, _ in RAW_COLUMNS}

    def base(kind: str, r) -> dict:
        ctx.counts["labels"] += 1
        ctx.counts[f"{kind}s"] += 1
        ctx.rubric_versions[r.rubric_version_id] += 1
        slug, number = versions.get(r.rubric_version_id, (None, None))
        return {**empty, "kind": kind, "label_id": r.pk, "annotator": ctx.pseudonym(r.annotator_id), "rubric": slug,
                "rubric_version": number, "rationale": r.rationale, "time_on_task_ms": r.time_on_task_ms,
                "source": r.source, "metadata": r.metadata}

    def rows() -> Iterator[dict]:
        common = ("pk", "annotator_id", "rubric_version_id", "rationale", "time_on_task_ms", "source", "metadata")
        qs = judgments.order_by("comparison_id", "annotator_id").values_list(
            *common, "choice", "strength", "criteria", "spans", "shown_left_id", "comparison__response_a_id",
            "comparison__response_b_id", "comparison__prompt__external_id", "comparison__response_a__external_id",
            "comparison__response_b__external_id", named=True,
        )
        for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
            for r in chunk:
                shown = {r.comparison__response_a_id: "A", r.comparison__response_b_id: "B"}.get(r.shown_left_id)
                yield {**base("judgment", r), "prompt_id": r.comparison__prompt__external_id,
                       "response_a_id": r.comparison__response_a__external_id,
                       "response_b_id": r.comparison__response_b__external_id, "shown_left": shown,
                       "choice": r.choice, "strength": r.strength, "criteria": r.criteria, "spans": r.spans}
        qs = ratings.order_by("response_id", "annotator_id").values_list(
            *common, "scores", "spans", "response__external_id", "response__prompt__external_id", named=True
        )
        for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
            for r in chunk:
                yield {**base("rating", r), "prompt_id": r.response__prompt__external_id,
                       "response_id": r.response__external_id, "scores": r.scores, "spans": r.spans}
        qs = rankings.order_by("prompt_id", "annotator_id").values_list(
            *common, "groups", "prompt_id", "prompt__external_id", named=True
        )
        for chunk in ctx.chunks(qs.iterator(chunk_size=CHUNK)):
            ctx.texts.load({r.prompt_id for r in chunk})
            for r in chunk:
                groups = [[ctx.texts.responses[pk].external_id for pk in g if pk in ctx.texts.responses] for g in r.groups]
                yield {**base("ranking", r), "prompt_id": r.prompt__external_id, "ranking": groups}

    return RAW_COLUMNS, rows()


GENERIC_FLAT_COLUMNS: list[Column] = [
    ("prompt_id", "str", "the prompt's external id"),
    ("conversation", "json", "the prompt as a JSON list of {role, content} turns"),
    ("prompt_metadata", "json", "the prompt's metadata"),
    ("response_a_id", "str", "a response's external id"), ("response_a", "str", "its text"),
    ("response_a_source", "str", "the model that wrote it"),
    ("response_b_id", "str", "pair rows: the second response"), ("response_b", "str", "its text"),
    ("response_b_source", "str", "the model that wrote it"),
    ("annotator", "str", "pseudonymous annotator id (imported as ext.<id>)"),
    ("choice", "str", "pair rows: A, B, tie or both_bad, relative to (a, b)"),
    ("strength", "int", "pair rows: 0..3, the magnitude (its sign comes from choice)"),
    ("criteria", "json", "pair rows: {criterion: A|B|tie|na}"),
    ("scores", "json", "rating rows: {criterion: value, null for N/A}"),
    ("rationale", "str", "the annotator's rationale"),
    ("time_on_task_ms", "int", "time on task in milliseconds"),
]
GENERIC_JSONL_COLUMNS: list[Column] = [
    ("id", "str", "the prompt's external id"),
    ("conversation", "json", "the prompt: a list of {role, content} turns"),
    ("metadata", "json", "the prompt's metadata"),
    ("responses", "json", "the compared pair: [{id, text, source, metadata}, …]"),
    ("labels", "json", "the pair's labels: [{annotator, a: 0, b: 1, choice, strength (0..3), criteria, rationale, time_on_task_ms, metadata}]"),
]


def _generic(ctx: _Context) -> tuple[list[Column], Iterator[dict]]:
    flat = ctx.spec.file_format != "jsonl"
    judgments = ctx.judgments()
    ratings = ctx.ratings() if flat else None
    ctx.total = judgments.count() + (ratings.count() if flat else 0)
    rankings = ctx.rankings().count()
    if rankings:
        ctx.counts["excluded_rankings_labels"] += rankings  # no generic import schema carries rankings
    if not flat:
        ctx.counts["excluded_ratings_labels"] += ctx.ratings().count()  # the generic JSONL schema has no ratings

    def label(r) -> dict:
        return {"annotator": ctx.pseudonym(r.annotator_id), "choice": r.choice,
                "strength": None if r.strength is None else abs(r.strength), "criteria": r.criteria,
                "rationale": r.rationale, "time_on_task_ms": r.time_on_task_ms}

    def rows() -> Iterator[dict]:
        fields = ["choice", "strength", "criteria", "rationale", "time_on_task_ms", "metadata"]
        for _, group in itertools.groupby(_judgment_stream(ctx, fields), key=attrgetter("comparison_id")):
            labels = list(group)
            ctx.counts["labels"] += len(labels)
            ctx.counts["items"] += 1
            for r in labels:
                ctx.rubric_versions[r.rubric_version_id] += 1
            first = labels[0]
            prompt = ctx.texts.prompts[first.prompt_pk]
            a, b = ctx.texts.responses[first.a_pk], ctx.texts.responses[first.b_pk]
            if not flat:
                yield {"id": prompt.external_id, "conversation": prompt.conversation, "metadata": prompt.metadata,
                       "responses": [_generic_response(a), _generic_response(b)],
                       "labels": [{**label(r), "a": 0, "b": 1, "metadata": r.metadata} for r in labels]}
                continue
            pair = {"prompt_id": prompt.external_id, "conversation": prompt.conversation, "prompt_metadata": prompt.metadata,
                    "response_a_id": a.external_id, "response_a": a.text, "response_a_source": a.source,
                    "response_b_id": b.external_id, "response_b": b.text, "response_b_source": b.source, "scores": None}
            for r in labels:
                yield {**pair, **label(r)}
        if not flat:
            return
        qs = ratings.annotate(prompt_pk=F("response__prompt_id")).order_by("response_id", "annotator_id").values_list(
            "response_id", "prompt_pk", "annotator_id", "rubric_version_id", "scores", "rationale", "time_on_task_ms", named=True
        )
        for r in _with_texts(ctx, qs):
            ctx.counts["labels"] += 1
            ctx.rubric_versions[r.rubric_version_id] += 1
            prompt, resp = ctx.texts.prompts[r.prompt_pk], ctx.texts.responses[r.response_id]
            yield {"prompt_id": prompt.external_id, "conversation": prompt.conversation,
                   "prompt_metadata": prompt.metadata, "response_a_id": resp.external_id, "response_a": resp.text,
                   "response_a_source": resp.source, "response_b_id": None, "response_b": None,
                   "response_b_source": None, "annotator": ctx.pseudonym(r.annotator_id), "choice": None,
                   "strength": None, "criteria": None, "scores": r.scores, "rationale": r.rationale,
                   "time_on_task_ms": r.time_on_task_ms}

    return (GENERIC_FLAT_COLUMNS if flat else GENERIC_JSONL_COLUMNS), rows()


def _generic_response(resp: _ResponseRow) -> dict:
    return {"id": resp.external_id, "text": resp.text, "source": resp.source, "metadata": resp.metadata}


PRODUCERS: dict[str, Callable[[_Context], tuple[list[Column], Iterator[dict]]]] = {
    "trl": _pairwise,
    "trl-conversational": _pairwise,
    "helpsteer2": _helpsteer2,
    "rankings": _rankings,
    "best-of-n": _best_of_n,
    "raw": _raw,
    "generic": _generic,
}


# --- file writers ----------------------------------------------------------------------------


_json = json.JSONEncoder(ensure_ascii=False).encode


class _JsonlWriter:
    def __init__(self, path: Path, columns: list[Column]) -> None:
        self.fh = open(path, "w", encoding="utf-8", newline="\n")

    def write(self, rows: list[dict]) -> None:
        self.fh.write("".join(_json(row) + "\n" for row in rows))

    def close(self) -> None:
        self.fh.close()

    abort = close  # the temporary folder is removed anyway


class _CsvWriter:
    """Nested values (objects, lists) as JSON text; empty cells for nulls."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        self.fh = open(path, "w", encoding="utf-8", newline="")
        self.names = [name for name, _, _ in columns]
        self.nested = {name for name, kind, _ in columns if kind not in ("str", "int", "float")}
        self.writer = csv.writer(self.fh, lineterminator="\n")
        self.writer.writerow(self.names)

    def write(self, rows: list[dict]) -> None:
        self.writer.writerows(
            [("" if row[n] is None else _json(row[n]) if n in self.nested else row[n]) for n in self.names] for row in rows
        )

    def close(self) -> None:
        self.fh.close()

    abort = close


def _arrow_type(kind: str):
    import pyarrow as pa

    return {
        "str": pa.string(), "int": pa.int64(), "float": pa.float64(), "json": pa.string(),
        "strs": pa.list_(pa.string()),
        "turns": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "ranked": pa.list_(pa.struct([("id", pa.string()), ("text", pa.string()), ("source", pa.string()), ("rank", pa.int64())])),
    }[kind]


class _ParquetWriter:
    """Record batches of at most WRITE_BATCH rows; objects in ``json`` columns as JSON text."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.schema = pa.schema([(name, _arrow_type(kind)) for name, kind, _ in columns])
        self.json_names = [name for name, kind, _ in columns if kind == "json"]
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows = 0

    def write(self, rows: list[dict]) -> None:
        import pyarrow as pa

        for row in rows:
            for name in self.json_names:
                if row[name] is not None:
                    row[name] = _json(row[name])
        for start in range(0, len(rows), WRITE_BATCH):
            self.writer.write_batch(pa.RecordBatch.from_pylist(rows[start : start + WRITE_BATCH], schema=self.schema))
        self.rows += len(rows)

    def close(self) -> None:
        self.writer.close()

    abort = close


class _HfWriter(_ParquetWriter):
    """A ``datasets`` folder: Parquet first (streamed), then ``Dataset.from_parquet``
    (memory-mapped Arrow) and ``save_to_disk``, so no step holds the rows in memory."""

    def __init__(self, path: Path, columns: list[Column]) -> None:
        self.folder = path
        self.folder.mkdir()
        self.parquet = path.parent / f".{path.name}.parquet"
        super().__init__(self.parquet, columns)

    def close(self) -> None:
        import datasets

        super().close()
        if not self.rows:  # datasets 5 saves an empty folder but cannot load it back
            raise ValueError("the export has no rows, and a datasets folder cannot be empty: choose jsonl, csv or parquet")
        cache = self.folder.parent / f".{self.folder.name}.cache"
        try:
            datasets.disable_progress_bars()
            dataset = datasets.Dataset.from_parquet(str(self.parquet), cache_dir=str(cache))
            dataset.save_to_disk(str(self.folder))
        finally:
            self.parquet.unlink(missing_ok=True)
            shutil.rmtree(cache, ignore_errors=True)


WRITERS = {"jsonl": _JsonlWriter, "csv": _CsvWriter, "parquet": _ParquetWriter, "hf": _HfWriter}


# --- the dataset card --------------------------------------------------------------------------

COUNT_HELP = {
    "labels": "labels read",
    "items": "comparisons (or rated responses, rankings) with at least one usable label",
    "judgments": "judgments", "ratings": "ratings", "rankings": "rankings",
    "derived_excluded": "derived labels left out (made by a rubric rule, not by a person)",
    "derived_included": "derived labels included (asked for)",
    "excluded_tie_labels": "ties left out (labels)", "excluded_tie_items": "ties left out (comparisons)",
    "excluded_both_bad_labels": "both-bad left out (labels)", "excluded_both_bad_items": "both-bad left out (comparisons)",
    "excluded_vote_tied_items": "comparisons whose vote was tied, left out",
    "excluded_min_agreement_labels": "labels on comparisons below the minimum agreement, left out",
    "excluded_min_agreement_items": "comparisons below the minimum agreement, left out",
    "excluded_criterion_missing": "labels without an A/B/tie answer for the criterion (n/a or not asked)",
    "excluded_tied_best_labels": "rankings whose best rank is shared, left out",
    "excluded_single_response_labels": "rankings with nothing to reject, left out",
    "excluded_rankings_labels": "rankings left out (no generic import schema carries them)",
    "excluded_ratings_labels": "ratings left out (the generic JSONL schema has none; use CSV or Parquet)",
}


def _card(ctx: _Context, columns: list[Column], exported_at) -> str:
    p, spec = ctx.project, ctx.spec
    licence = p.license or "unspecified"
    front = ["---", f"pretty_name: {_json(f'{p.name} ({spec.format})')}"]
    if p.license:
        front.append(f"license: {_json(p.license)}")
    front += ["tags:", "- preflab", "- human-preference", "---", ""]
    agg = f"`{spec.aggregate}`: {AGGREGATIONS[spec.aggregate]}" if spec.format in PAIRWISE_FORMATS else "`all` (every label)"
    lines = [
        *front,
        f"# {p.name}: `{spec.format}` export",
        "",
        f"Exported from the PrefLab project `{p.slug}` on {exported_at:%Y-%m-%d %H:%M} UTC.",
        "",
        "| | |", "|---|---|",
        f"| format | `{spec.format}`: {FORMATS[spec.format]} |",
        f"| file | `{spec.data_name}` ({FILE_FORMATS[spec.file_format]}) |",
        f"| snapshot | `{ctx.snapshot}` (labels with ids up to these; the same snapshot and options give the same rows) |",
        f"| aggregation | {agg} |",
    ]
    if spec.format in PAIRWISE_FORMATS:
        lines += [
            f"| answer | {'the overall preference' if spec.criterion is None else f'criterion `{spec.criterion}`'} |",
            f"| minimum agreement | {spec.min_agreement if spec.min_agreement is not None else 'none'} |",
            f"| margin | {'none' if spec.margin is None else f'absolute strength × {spec.margin:g}'} |",
        ]
    lines += [
        f"| derived labels | {'included' if spec.include_derived else 'excluded'} |",
        f"| licence | {licence} |",
        "", "## Counts", "", "| | |", "|---|---|", f"| rows written | {ctx.rows} |",
    ]
    for key, value in sorted(ctx.counts.items(), key=lambda kv: (list(COUNT_HELP).index(kv[0]) if kv[0] in COUNT_HELP else 99, kv[0])):
        lines.append(f"| {COUNT_HELP.get(key, key)} | {value} |")
    if ctx.agreement is not None:
        s = ctx.agreement.summary()
        lines += ["", "## Agreement", ""]
        if s["items"]:
            lines += [
                f"Over the {s['items']} comparisons with two or more labels (before aggregation and exclusions), "
                "on the answer this export uses (A / B / tie / both bad):", "",
                f"- raw pairwise agreement: {s['raw']} (the share of annotator pairs on a comparison that agree)",
                f"- Krippendorff's α (nominal): {'n/a (every label is the same)' if s['alpha'] is None else s['alpha']}",
            ]
        else:
            lines.append("No comparison has two or more labels: agreement cannot be measured.")
    lines += ["", "## Rubric", ""]
    versions = RubricVersion.objects.filter(pk__in=[k for k in ctx.rubric_versions if k]).select_related("rubric")
    for v in sorted(versions, key=lambda v: (v.rubric.slug, v.number)):
        doc = build_document(v)
        lines += [f"### {v.rubric.name} v{v.number} (`{v.rubric.slug}`): {ctx.rubric_versions[v.pk]} labels", ""]
        if doc["version"]["aggregation"]:
            lines += [f"Aggregation of criteria: {doc['version']['aggregation']}.", ""]
        for c in doc["criteria"]:
            lines.append(f"- **{c['key']}** ({c['name']}, {c['scale']}, {c['kind']}): {c['principle'] or c['description']}")
        lines.append("")
    if ctx.rubric_versions.get(None):
        lines += [f"{ctx.rubric_versions[None]} labels were made without a rubric version (e.g. imported).", ""]
    if not ctx.rubric_versions:
        lines += ["No labels.", ""]
    lines += ["## Columns", ""]
    as_text = spec.file_format != "jsonl"  # CSV cells and Parquet strings hold nested values as JSON text
    lines += [f"- `{name}`: {help_text}{' (JSON text)' if kind == 'json' and as_text else ''}" for name, kind, help_text in columns]
    return "\n".join(lines) + "\n"


# --- writing an export -------------------------------------------------------------------------------


@dataclass
class ExportResult:
    path: Path  # the export folder
    data_path: Path  # the data file (or datasets folder) inside it
    card_path: Path
    archive_path: Path | None  # a zip of the folder, for downloading a datasets folder
    snapshot: str
    rows: int
    counts: dict[str, int]


def export_write(
    *, project: Project, spec: ExportSpec, out: Path, snapshot: str | None = None,
    on_progress: Callable[[float, int], bool] | None = None, archive: bool = False,
) -> ExportResult:
    """Write the export folder ``out`` (data and README.md); ``snapshot`` defaults to
    now. ``on_progress(fraction, rows)`` runs between chunks; returning False cancels
    (``ExportCancelled``). ``archive`` also writes ``out.zip`` for a datasets folder.
    Nothing appears at ``out`` until the export is complete."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists; choose a new folder")
    snap = snapshot_take(project=project) if snapshot is None else snapshot_parse(project=project, text=snapshot)
    ctx = _Context(project, spec, snap, on_progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.part-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    zip_tmp = out.parent / f".{out.name}.zip.part-{uuid.uuid4().hex[:8]}"
    archive_path = out.with_name(out.name + ".zip") if archive and spec.file_format == "hf" else None
    try:
        columns, rows = PRODUCERS[spec.format](ctx)
        writer = WRITERS[spec.file_format](tmp / spec.data_name, columns)
        try:
            while batch := list(itertools.islice(rows, CHUNK)):
                writer.write(batch)
                ctx.rows += len(batch)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        (tmp / "README.md").write_text(_card(ctx, columns, timezone.now()), encoding="utf-8")
        if archive_path is not None:
            with zipfile.ZipFile(zip_tmp, "w", zipfile.ZIP_STORED) as zf:
                for f in sorted(tmp.rglob("*")):
                    if f.is_file():
                        zf.write(f, Path(out.name) / f.relative_to(tmp))
        if out.exists():
            out.rmdir()  # checked empty above
        tmp.rename(out)
        if archive_path is not None:
            zip_tmp.rename(archive_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        zip_tmp.unlink(missing_ok=True)
        raise
    return ExportResult(out, out / spec.data_name, out / "README.md", archive_path, str(snap), ctx.rows, dict(ctx.counts))


# --- export jobs ---------------------------------------------------------------------------------------


def export_job_create(*, project: Project, spec: ExportSpec, created_by=None) -> ExportJob:
    """Record a queued export at today's snapshot (the caller enqueues it)."""
    return ExportJob.objects.create(
        project=project, created_by=created_by, format=spec.format, file_format=spec.file_format,
        options=spec.options(), snapshot_id=str(snapshot_take(project=project)),
    )


def export_job_enqueue(*, job: ExportJob) -> None:
    from .tasks import run_export

    transaction.on_commit(lambda: run_export.delay(job.pk))


def export_job_cancel(*, job: ExportJob) -> bool:
    """Stop an export: a queued one at once, a running one at its next chunk."""
    updated = ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.CANCELLED, cancel_requested=True, finished_at=timezone.now()
    )
    if updated:
        return True
    return bool(ExportJob.objects.filter(pk=job.pk, status__in=ExportJob.ACTIVE_STATES).update(cancel_requested=True))


def _job_folder(job: ExportJob) -> Path:
    return Path(settings.EXPORT_DIR) / job.project.slug / f"export-{job.pk}"


def export_job_file(*, job: ExportJob, which: str) -> tuple[Path, str]:
    """A finished export's ``data`` file (the zip of a datasets folder) or its
    ``card``, with a download name; FileNotFoundError when it is gone from disk."""
    if which == "card":
        path, name = Path(job.path) / "README.md", f"{job.project.slug}-{job.format}-{job.snapshot_id}-README.md"
    else:
        path = Path(job.file_path)
        name = f"{job.project.slug}-{job.format}-{job.snapshot_id}{path.suffix}"
    if job.status != ExportJob.Status.SUCCEEDED or not path.is_file():
        raise FileNotFoundError(path)
    return path, name


def export_job_run(*, job_id: int) -> ExportJob:
    """Run a queued export to the end; claimed with a conditional UPDATE so two
    workers given the same id never both run it."""
    now = timezone.now()
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=now, heartbeat_at=now
    )
    job = ExportJob.objects.select_related("project").get(pk=job_id)
    if not claimed:
        log.info("export %s not claimed: status %s", job_id, job.status)
        return job

    def progress(fraction: float, rows: int) -> bool:
        # One query reports progress and sees a cancel request: it matches no row then.
        return bool(ExportJob.objects.filter(pk=job_id, cancel_requested=False).update(
            progress=fraction, rows_written=rows, heartbeat_at=timezone.now()
        ))

    try:
        result = export_write(
            project=job.project, spec=ExportSpec.from_job(job), out=_job_folder(job), snapshot=job.snapshot_id,
            on_progress=progress, archive=True,
        )
    except ExportCancelled:
        ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.CANCELLED, finished_at=timezone.now())
    except ValueError as exc:
        ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.FAILED, error=str(exc), finished_at=timezone.now())
    except Exception as exc:  # an unexpected failure must still leave the job in a final state
        log.exception("export %s crashed", job_id)
        ExportJob.objects.filter(pk=job_id).update(
            status=ExportJob.Status.FAILED, error=f"internal error: {exc}", finished_at=timezone.now()
        )
    else:
        done = ExportJob.objects.filter(pk=job_id, cancel_requested=False).update(
            status=ExportJob.Status.SUCCEEDED, progress=1.0, rows_written=result.rows, counts=result.counts,
            path=str(result.path), file_path=str(result.archive_path or result.data_path), heartbeat_at=timezone.now(),
            finished_at=timezone.now(),
        )
        if not done:  # cancelled after the last chunk: the files go, as for any cancel
            shutil.rmtree(result.path, ignore_errors=True)
            if result.archive_path is not None:
                result.archive_path.unlink(missing_ok=True)
            ExportJob.objects.filter(pk=job_id).update(status=ExportJob.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job


def export_jobs_sweep(*, stale_after_seconds: int = 900) -> int:
    """Fail exports whose worker stopped heart-beating (killed mid-run) and remove
    their partial files; returns how many."""
    cutoff = timezone.now() - timezone.timedelta(seconds=stale_after_seconds)
    stale = list(ExportJob.objects.filter(status=ExportJob.Status.RUNNING, heartbeat_at__lt=cutoff).select_related("project"))
    for job in stale:
        folder = _job_folder(job)
        for partial in folder.parent.glob(f".{folder.name}.*part-*"):
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)
    return ExportJob.objects.filter(pk__in=[j.pk for j in stale], status=ExportJob.Status.RUNNING).update(
        status=ExportJob.Status.FAILED, error="the worker stopped responding; no file was written", finished_at=timezone.now()
    )
