"""The rows of each export format (``PRODUCERS``): each producer returns its
columns and an iterator of rows, streamed a chunk of labels at a time."""

from __future__ import annotations

import itertools
from operator import attrgetter, itemgetter
from typing import Any, Callable, Iterator

from django.db.models import F, TextField
from django.db.models.functions import Cast

from rubrics.models import RubricVersion
from rubrics.schema import answer_number

from annotate.models import LabelSource

from .aggregate import answer_of, dawid_skene
from .context import CHUNK, Column, Context, PromptRow, ResponseRow


def _judgment_stream(ctx: Context, fields: list[str], json_fields: tuple[str, ...] = ()) -> Iterator[Any]:
    """The snapshot's judgments in (comparison, annotator) order, as named rows with
    ``prompt_pk``, ``a_pk`` and ``b_pk``, their texts loaded. ``json_fields`` come as
    ``<name>_text``, the stored JSON text, for ``ctx.json_value`` to decode once per
    distinct text (labels repeat a few criteria answers and empty metadata)."""
    as_text = {f"{name}_text": Cast(name, TextField()) for name in json_fields}
    qs = (
        ctx.judgments()
        .annotate(prompt_pk=F("comparison__prompt_id"), a_pk=F("comparison__response_a_id"), b_pk=F("comparison__response_b_id"),
                  **as_text)
        .order_by("comparison_id", "annotator_id")
        .values_list("comparison_id", "annotator_id", "rubric_version_id", "prompt_pk", "a_pk", "b_pk", *fields, *as_text,
                     named=True)
    )
    return _with_texts(ctx, qs)


def _with_texts(ctx: Context, qs) -> Iterator[Any]:
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


def _pairwise(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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
        columns += [("n_labels", "int", "labels on the comparison"), ("agreement", "float", "share of labels giving the winning answer (with Dawid-Skene 0 when it infers an answer that no label gave; an adjudicated answer is not a label: empty when no annotator labelled the comparison)")]
    ctx.total = ctx.judgments().count() * (2 if spec.aggregate == "dawid-skene" else 1)
    return columns, _pairwise_rows(ctx, conversational)


def _pairwise_rows(ctx: Context, conversational: bool) -> Iterator[dict]:
    spec = ctx.spec
    inferred = dawid_skene(ctx) if spec.aggregate == "dawid-skene" else None
    adjudicating = spec.aggregate == "adjudicated"
    fields = ["criteria"] if spec.criterion else ["choice", "strength"]
    if adjudicating:
        fields.append("source")
    by_criterion = spec.criterion is not None
    unit = "labels" if spec.aggregate == "all" else "items"
    for comparison_id, group in itertools.groupby(_judgment_stream(ctx, fields), key=attrgetter("comparison_id")):
        labels = list(group)
        first = labels[0]
        # The adjudicated answer (the ``adjudicated`` aggregation reads it; no other
        # does) decides the row; it is never one of the votes.
        final = next((r for r in labels if r.source == LabelSource.ADJUDICATED), None) if adjudicating else None
        if final is not None:
            labels = [r for r in labels if r is not final]
        ctx.counts["labels"] += len(labels)
        votes = []
        tally: dict[str, int] = {}
        for r in labels:
            ctx.rubric_versions[r.rubric_version_id] += 1
            v = answer_of(ctx, r) if by_criterion else r.choice
            if v is None:
                ctx.counts["excluded_criterion_missing"] += 1
                continue
            votes.append((r, v))
            tally[v] = tally.get(v, 0) + 1
        if final is not None:
            yield from _adjudicated_row(ctx, conversational, first, final, votes, tally)
            continue
        if not votes:
            continue
        ctx.counts["items"] += 1
        ranked = sorted(tally.items(), key=itemgetter(1), reverse=True)
        # Dawid-Skene weighs annotators by their estimated confusion, so it may infer an
        # answer that no label of this comparison gave: its share is then 0. The share is
        # always that of the exported answer (for a majority, the most frequent one).
        winner = None if inferred is None else inferred[comparison_id]
        share = (ranked[0][1] if winner is None else tally.get(winner, 0)) / len(votes)
        if spec.min_agreement is not None and share < spec.min_agreement:
            ctx.counts[f"excluded_min_agreement_{unit}"] += len(votes) if unit == "labels" else 1
            continue
        prompt, a, b = _texts(ctx, first)
        if spec.aggregate == "all":
            for r, v in votes:
                if v in ("tie", "both_bad"):
                    ctx.counts[f"excluded_{v}_labels"] += 1
                    continue
                strength = None if by_criterion else r.strength
                yield _pair_row(spec, conversational, prompt, a, b, v, [strength], {"annotator": ctx.pseudonym(r.annotator_id)})
            continue
        if inferred is None:
            if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
                ctx.counts["excluded_vote_tied_items"] += 1
                continue
            winner = ranked[0][0]
        if winner in ("tie", "both_bad"):
            ctx.counts[f"excluded_{winner}_items"] += 1
            continue
        if winner not in tally:
            ctx.counts["inferred_unvoted_items"] += 1
        strengths = [None if by_criterion else r.strength for r, v in votes if v == winner]
        extra = {"n_labels": len(votes), "agreement": share}
        yield _pair_row(spec, conversational, prompt, a, b, winner, strengths, extra)


def _texts(ctx: Context, row) -> tuple[PromptRow, ResponseRow, ResponseRow]:
    return ctx.texts.prompts[row.prompt_pk], ctx.texts.responses[row.a_pk], ctx.texts.responses[row.b_pk]


def _adjudicated_row(ctx: Context, conversational: bool, first, final, votes: list, tally: dict[str, int]) -> Iterator[dict]:
    """The row of a comparison a researcher adjudicated: their answer and strength,
    whatever the votes and the minimum agreement say; ``agreement`` is the share of
    the annotators' labels that gave it (empty without any)."""
    ctx.counts["items"] += 1
    ctx.counts["adjudicated_items"] += 1
    if final.choice in ("tie", "both_bad"):
        ctx.counts[f"excluded_{final.choice}_items"] += 1
        return
    prompt, a, b = _texts(ctx, first)
    share = tally.get(final.choice, 0) / len(votes) if votes else None
    yield _pair_row(ctx.spec, conversational, prompt, a, b, final.choice, [final.strength],
                    {"n_labels": len(votes), "agreement": share})


def _pair_row(spec, conversational, prompt: PromptRow, a: ResponseRow, b: ResponseRow, winner: str,
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


def _helpsteer2(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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


def _helpsteer2_rows(ctx: Context, ratings, keys: list[str]) -> Iterator[dict]:
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


def _ranking_stream(ctx: Context) -> Iterator[tuple[Any, list[int]]]:
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


def _rankings(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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


def _ranked(ctx: Context, pk: int, rank: int | None) -> dict:
    resp = ctx.texts.responses[pk]
    return {"id": resp.external_id, "text": resp.text, "source": resp.source, "rank": rank}


def _best_of_n(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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


def _raw(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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


def _generic(ctx: Context) -> tuple[list[Column], Iterator[dict]]:
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
                "strength": None if r.strength is None else abs(r.strength), "criteria": ctx.json_value(r.criteria_text),
                "rationale": r.rationale, "time_on_task_ms": r.time_on_task_ms}

    def rows() -> Iterator[dict]:
        fields = ["choice", "strength", "rationale", "time_on_task_ms"]
        stream = _judgment_stream(ctx, fields, json_fields=("criteria", "metadata"))
        for _, group in itertools.groupby(stream, key=attrgetter("comparison_id")):
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
                       "labels": [{**label(r), "a": 0, "b": 1, "metadata": ctx.json_value(r.metadata_text)} for r in labels]}
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


def _generic_response(resp: ResponseRow) -> dict:
    return {"id": resp.external_id, "text": resp.text, "source": resp.source, "metadata": resp.metadata}


PRODUCERS: dict[str, Callable[[Context], tuple[list[Column], Iterator[dict]]]] = {
    "trl": _pairwise,
    "trl-conversational": _pairwise,
    "helpsteer2": _helpsteer2,
    "rankings": _rankings,
    "best-of-n": _best_of_n,
    "raw": _raw,
    "generic": _generic,
}
