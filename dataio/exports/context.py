"""What an export reads, shared by every format: the snapshot's labels (derived
ones counted and left out unless asked for; adjudicated ones only for the
``adjudicated`` aggregation), read a chunk at a time with progress
and cancel checks between chunks; the prompts' and responses' texts, cached across
chunks; and the annotators' pseudonyms."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from annotate.models import Judgment, LabelSource, Project, Prompt, Ranking, Rating, Response
from annotate.presenters import annotator_pseudonym

from .spec import ExportSpec, Snapshot

# Both bound an export's memory (issue #19: 150 MB at a million labels): labels
# arrive in the order of what they label, so a chunk needs only its own texts.
CHUNK = 2000  # labels per database round trip (and per cancel check, and per Parquet row group)
TEXT_CACHE = 5000  # prompts (or responses) kept between chunks
JSON_MEMO = 4096  # distinct JSON texts kept decoded (Context.json_value)
ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


class ExportCancelled(Exception):
    pass


# Columns: (name, kind, help). Kinds: str, int, float, json (an object in JSONL, JSON
# text in CSV and Parquet), turns (a list of {role, content}), strs (a list of
# strings), ranked (a list of {id, text, source, rank}).
Column = tuple[str, str, str]


# --- text helpers ---------------------------------------------------------------------


def prompt_text(conversation: list[dict[str, str]]) -> str:
    """A single user turn as it is; anything longer as a "User: …" / "Assistant: …"
    layout ending in "Assistant:", the turn that chosen and rejected complete."""
    if len(conversation) == 1 and conversation[0]["role"] == "user":
        return conversation[0]["content"]
    turns = [f"{ROLE_NAMES.get(t['role'], t['role'])}: {t['content']}" for t in conversation]
    return "\n\n".join([*turns, "Assistant:"])


@dataclass
class PromptRow:
    external_id: str
    conversation: list[dict[str, str]]
    metadata: dict[str, Any]
    text: str


@dataclass
class ResponseRow:
    external_id: str
    text: str
    source: str
    metadata: dict[str, Any]


class Texts:
    """Prompts with all their responses, by primary key, fetched for a chunk of
    prompts at a time (two queries). Past TEXT_CACHE entries the cache keeps only
    what the current chunk needs, so memory stays flat while rows that arrive in
    order rarely refetch anything. Metadata is read only for formats that carry it."""

    def __init__(self, *, metadata: bool) -> None:
        self.metadata = metadata
        self.prompts: dict[int, PromptRow] = {}
        self.responses: dict[int, ResponseRow] = {}
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
            self.prompts[pk] = PromptRow(ext, conv, m[0] if m else {}, prompt_text(conv))
            self.by_prompt[pk] = []
        responses = Response.objects.filter(prompt_id__in=missing).order_by("id")
        for pk, prompt_id, ext, text, source, *m in responses.values_list("pk", "prompt_id", "external_id", "text", "source", *meta):
            self.responses[pk] = ResponseRow(ext, text, source, m[0] if m else {})
            self.by_prompt[prompt_id].append(pk)


# --- the export context -----------------------------------------------------------------


@dataclass
class Context:
    project: Project
    spec: ExportSpec
    snapshot: Snapshot
    on_progress: Callable[[float, int], bool] | None = None
    counts: Counter = field(default_factory=Counter)
    rubric_versions: Counter = field(default_factory=Counter)
    agreement: dict[str, dict] | None = None  # quality's figures, for a pairwise format's card
    total: int = 0  # labels to read (twice over for Dawid-Skene)
    consumed: int = 0
    rows: int = 0
    _pseudonyms: dict[int, str] = field(default_factory=dict)
    _querysets: dict[str, Any] = field(default_factory=dict)
    _json: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.texts = Texts(metadata=self.spec.format == "generic")

    def json_value(self, text: str | None) -> Any:
        """A stored JSON text decoded, once per distinct text: rows that share it share
        the object (exports never mutate what they read)."""
        if text is None:
            return None
        found = self._json.get(text)
        if found is None:
            if len(self._json) >= JSON_MEMO:
                self._json.clear()
            found = self._json[text] = json.loads(text)
        return found

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
        out unless asked for. Adjudicated judgments (a researcher's final answer, not an
        annotator's label) are read only by the ``adjudicated`` aggregation, and
        counted (once) where they are left out."""
        if kind not in self._querysets:
            qs = qs.filter(pk__lte=getattr(self.snapshot, kind))
            derived = qs.filter(source=LabelSource.DERIVED).count()
            self.counts["derived_included" if self.spec.include_derived else "derived_excluded"] += derived
            if not self.spec.include_derived:
                qs = qs.exclude(source=LabelSource.DERIVED)
            if kind == "judgment" and self.spec.aggregate != "adjudicated":
                if adjudicated := qs.filter(source=LabelSource.ADJUDICATED).count():
                    self.counts["adjudicated_excluded"] += adjudicated
                qs = qs.exclude(source=LabelSource.ADJUDICATED)
            self._querysets[kind] = qs
        return self._querysets[kind]

    def judgments(self):
        return self._labels(Judgment.objects.filter(comparison__project=self.project), "judgment")

    def ratings(self):
        return self._labels(Rating.objects.filter(response__prompt__project=self.project), "rating")

    def rankings(self):
        return self._labels(Ranking.objects.filter(prompt__project=self.project), "ranking")
