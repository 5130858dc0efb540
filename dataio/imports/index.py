"""What validation keeps of a whole file instead of its records (``FileIndex``)."""

from __future__ import annotations

import json

from .parsers.base import ImportRejected, Record


class FileIndex:
    """What validation keeps of a whole file instead of its records: a small integer
    per prompt, response and annotator (with the first line that gave it and a hash of
    its text, to catch a later line that disagrees), and one packed integer per label
    for the one-label-per-(pair, annotator) rule. ``add`` turns a record into the
    compact tuple the writer reads back (texts only on their first occurrence)."""

    def __init__(self) -> None:
        self.prompts: dict[str, tuple[int, int, int]] = {}  # external id → (index, first line, conversation hash)
        self.responses: dict[tuple[int, str], tuple[int, int, int]] = {}  # (prompt index, id) → (index, first line, text hash)
        self.annotators: dict[str, int] = {}
        self.seen: dict[int, int] = {}  # packed (kind, keys…, annotator) → line
        self.records = self.labels = self.ratings = self.rankings = 0
        self._conversation: tuple[object, int] = (None, 0)  # the last one hashed (parsers share it between rows)

    def _once(self, key: int, record: Record, annotator: str, what: str, field: str) -> None:
        """One label per (pair, annotator), rating per (response, annotator) and ranking
        per (prompt, annotator): a second one in the same file is an error, not an update."""
        if key in self.seen:
            raise ImportRejected(
                f"a second {what} by {annotator!r} (the first is on {record.unit} {self.seen[key]})",
                line=record.line, field=field, unit=record.unit,
            )
        self.seen[key] = record.line

    def _annotator(self, name: str) -> int:
        found = self.annotators.get(name)
        if found is None:
            found = self.annotators[name] = len(self.annotators)
        return found

    def add(self, record: Record) -> tuple:
        self.records += 1
        if self._conversation[0] is record.conversation:
            digest = self._conversation[1]
        else:
            digest = hash(json.dumps(record.conversation, sort_keys=True))
            self._conversation = (record.conversation, digest)
        known = self.prompts.get(record.prompt_id)
        new_prompt = None
        if known is None:
            known = self.prompts[record.prompt_id] = (len(self.prompts), record.line, digest)
            new_prompt = (record.prompt_id, record.conversation, record.prompt_metadata)
        elif known[2] != digest:
            raise ImportRejected(
                f"prompt id {record.prompt_id!r} was given a different conversation on {record.unit} {known[1]}",
                line=record.line, field="id", unit=record.unit,
            )
        pidx = known[0]
        ridx: dict[str, int] = {}
        texts: dict[str, str] = {}
        new_responses = []
        for resp in record.responses:
            key = (pidx, resp.external_id)
            digest = hash(resp.text)
            seen = self.responses.get(key)
            if seen is None:
                seen = self.responses[key] = (len(self.responses), record.line, digest)
                new_responses.append((seen[0], resp.external_id, resp.text, resp.source, resp.metadata))
            elif seen[2] != digest:
                raise ImportRejected(
                    f"response id {resp.external_id!r} has a different text on {record.unit} {seen[1]}",
                    line=record.line, field="responses", unit=record.unit,
                )
            ridx[resp.external_id] = seen[0]
            texts[resp.external_id] = resp.text
        labels = []
        for label in record.labels:
            a, b, who = ridx[label.a], ridx[label.b], self._annotator(label.annotator)
            self._once(((min(a, b) << 32 | max(a, b)) << 32 | who) << 2, record, label.annotator,
                       "label for the same pair", "labels")
            labels.append((a, b, who, label.choice, label.strength, label.criteria, label.rationale,
                           label.time_on_task_ms, label.metadata))
        ratings = []
        for rating in record.ratings:
            r, who = ridx[rating.response], self._annotator(rating.annotator)
            self._once((r << 32 | who) << 2 | 1, record, rating.annotator, "rating of the same response", "ratings")
            text = texts[rating.response]
            spans = [{**span, "text": text[span["start"] : span["end"]]} for span in rating.spans]
            ratings.append((r, who, rating.scores, rating.rationale, spans, rating.time_on_task_ms, rating.metadata))
        rankings = []
        for ranking in record.rankings:
            who = self._annotator(ranking.annotator)
            self._once((pidx << 32 | who) << 2 | 2, record, ranking.annotator, "ranking of the same prompt", "rankings")
            rankings.append((who, [[ridx[ext] for ext in group] for group in ranking.groups], ranking.metadata))
        self.labels += len(labels)
        self.ratings += len(ratings)
        self.rankings += len(rankings)
        return (record.line, record.unit, pidx, new_prompt, new_responses, labels, ratings, rankings)
