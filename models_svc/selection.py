"""Write the queue's priorities from the active reward model (DESIGN §5).

After each new active version (and on demand) a Celery task calls
``comparisons_rescore``: the project's open comparisons are scored by the
project's selection strategy and ``QueueSlot.priority`` is written in bulk. The
queue then hands out by ``ORDER BY priority DESC`` on an index: no model call ever
happens on the request path.

Before any model exists (and for the ``coverage`` and ``random`` strategies) the
priorities are coverage-first: fewest labels first, spread over prompts.
"""

from __future__ import annotations

import time
from collections import defaultdict

import numpy as np
from django.db import connection, transaction

from annotate.models import HUMAN_SOURCES, Judgment, Project, QueueSlot

from .ml import acquisition
from .models import ModelVersion, RewardSettings
from .services.scoring import load_model

MODEL_STRATEGIES = ("uncertainty", "bald", "variance", "balpm")
RESOLVED_DELTA = 0.3  # |p̄ − ½| beyond which a pair counts as settled …
RESOLVED_MIN_LABELS = 2  # … once it has this many labels
PER_PROMPT_CAP = 3  # at most this many of one prompt's pairs in the top batch
TOP_BATCH = 500  # pairs placed greedily (cap applied) before the rest by score
CHUNK = 2000


def _label_counts(project: Project) -> tuple[dict[int, int], dict[int, int]]:
    per_pair: dict[int, int] = defaultdict(int)
    per_prompt: dict[int, int] = defaultdict(int)
    rows = Judgment.objects.filter(
        comparison__project=project, source__in=HUMAN_SOURCES
    ).values_list("comparison_id", "comparison__prompt_id")
    for cid, pid in rows.iterator(chunk_size=10_000):
        per_pair[cid] += 1
        per_prompt[pid] += 1
    return per_pair, per_prompt


class _Pool:
    """The open, non-gold comparisons of a project, with their label counts."""

    def __init__(self, project: Project):
        rows = list(
            QueueSlot.objects.filter(project=project, is_open=True)
            .values_list("pk", "comparison__prompt_id", "comparison__response_a_id", "comparison__response_b_id")
            .order_by("pk")
        )
        self.rows = rows
        self.ids = np.array([c[0] for c in rows])
        self.prompts = [c[1] for c in rows]
        per_pair, self.per_prompt = _label_counts(project) if rows else ({}, {})
        self.labels = np.array([per_pair.get(c, 0) for c in self.ids])

    def __len__(self) -> int:
        return len(self.rows)


def comparisons_rescore(*, project: Project, strategy: str | None = None, seed: int = 0) -> dict:
    """Score every open, non-gold comparison and write its priority. Returns what
    was done (counts, strategy used, model version, seconds per phase)."""
    started = time.perf_counter()
    strategy = strategy or project.selection_strategy
    rng = np.random.default_rng(seed)
    pool = _Pool(project)
    if not len(pool):
        return {"strategy": strategy, "rescored": 0}
    active = ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    report: dict = {"strategy": strategy, "model_version": active.number if active else None}
    if strategy == "arena":
        order = _order_by_score(_arena_scores(project, pool))
        report["used"] = "arena"
    elif strategy not in MODEL_STRATEGIES or active is None:
        order = _order_by_score(_model_free_scores(strategy, pool, rng))
        report["used"] = "random" if strategy == "random" else "coverage"
    else:
        order = _model_order(project, active, strategy, pool, rng, report)
    priority = np.empty(len(pool), dtype=np.int64)
    priority[order] = np.arange(len(pool), 0, -1)  # first in order → highest priority
    _write_priorities(pool.ids, priority)
    report["rescored"] = len(pool)
    report["seconds"] = round(time.perf_counter() - started, 2)
    RewardSettings.objects.update_or_create(project=project, defaults={"last_rescore": report})
    return report


def _order_by_score(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, kind="stable")


def _model_free_scores(strategy: str, pool: _Pool, rng: np.random.Generator) -> np.ndarray:
    """Uniform for ``random``; else coverage-first (fewest labels, spread over prompts)."""
    if strategy == "random":
        return acquisition.score("random", np.zeros((1, len(pool))), rng)
    return acquisition.cold_start_scores(pool.labels, np.array([pool.per_prompt.get(p, 0) for p in pool.prompts]), rng)


def _model_order(project: Project, active: ModelVersion, strategy: str, pool: _Pool, rng: np.random.Generator,
                 report: dict) -> np.ndarray:
    """The active model's acquisition scores, settled prompts last, then a capped
    greedy top batch followed by the rest by score. Adds timings and the score
    histogram to ``report``."""
    diffs = _member_differences(project, active, pool.rows, report)
    scores = acquisition.score("bald" if strategy == "balpm" else strategy, diffs, rng)
    # Successive elimination: a settled prompt's pairs go to the back of the queue.
    settled = acquisition.resolved_prompts(acquisition.mean_probability(diffs), pool.labels, pool.prompts,
                                           delta=RESOLVED_DELTA, min_labels=RESOLVED_MIN_LABELS)
    scores = np.where([p in settled for p in pool.prompts], scores - 1e6, scores)
    report["used"] = strategy
    report["settled_prompts"] = len(settled)
    entropy = _prompt_entropy(active, pool) if strategy == "balpm" else None
    picks = acquisition.select_batch(scores, min(TOP_BATCH, len(pool)), prompt_ids=pool.prompts,
                                     per_prompt_cap=PER_PROMPT_CAP, rng=rng, entropy=entropy,
                                     beta=acquisition.BALPM_BETA)
    head = [p.index for p in picks]
    rest = np.setdiff1d(np.argsort(-scores, kind="stable"), head, assume_unique=True)
    rest = rest[np.argsort(-scores[rest], kind="stable")]
    live = scores[scores > -1e5]
    if len(live):
        counts, edges = np.histogram(live, bins=10)
        report["score_histogram"], report["score_edges"] = counts.tolist(), edges.tolist()
    return np.concatenate([np.array(head, dtype=int), rest])


def _prompt_entropy(active: ModelVersion, pool: _Pool) -> acquisition.PromptEntropy:
    """BAL-PM's prompt-entropy term over the open pairs' prompts and the labelled
    ones, each labelled prompt counted once per human label, in the active model's
    backbone space. It orders the top batch; the rest follows by BALD."""
    from annotate.models import Prompt

    ids = sorted(set(pool.prompts) | {p for p, n in pool.per_prompt.items() if n})
    row = {p: i for i, p in enumerate(ids)}
    conversations = dict(Prompt.objects.filter(pk__in=ids).values_list("id", "conversation"))
    points = load_model(active).prompt_embeddings([conversations[p] for p in ids])
    counts = np.array([pool.per_prompt.get(p, 0) for p in ids], dtype=np.int64)
    return acquisition.PromptEntropy(points, np.array([row[p] for p in pool.prompts]), counts)


def _member_differences(project: Project, active: ModelVersion, rows: list[tuple], report: dict) -> np.ndarray:
    """(M, pairs) reward differences r_m(a) − r_m(b), each response scored once."""
    model = load_model(active)
    response_ids = sorted({r for c in rows for r in (c[2], c[3])})
    texts = _texts(project, response_ids)
    t0 = time.perf_counter()
    members = model.score_items([texts[r] for r in response_ids]).members  # (M, R)
    report["score_seconds"] = round(time.perf_counter() - t0, 2)
    col = {r: i for i, r in enumerate(response_ids)}
    a = np.array([col[c[2]] for c in rows])
    b = np.array([col[c[3]] for c in rows])
    return members[:, a] - members[:, b]


def source_battles(project: Project, limit: int = 50_000) -> list[tuple[str, str, str, int]]:
    """(source of A, source of B, outcome, prompt id) of the most recent human/imported
    labels. The prompt id is the leaderboard's bootstrap cluster: a comparison's labels,
    and the comparisons of one prompt, are correlated and are resampled together."""
    rows = (
        Judgment.objects.filter(comparison__project=project, source__in=HUMAN_SOURCES,
                                choice__in=("A", "B", "tie"))
        .order_by("-id")
        .values_list("comparison__response_a__source", "comparison__response_b__source", "choice",
                     "comparison__prompt_id")[:limit]
    )
    return [(a or "unknown", b or "unknown", c, prompt) for a, b, c, prompt in rows]


ARENA_PLAN = 2000  # comparisons placed by the variance-reduction plan; the rest follow by their pair's share


def _arena_scores(project: Project, pool: _Pool) -> np.ndarray:
    """Comparisons in the order of a variance-reduction plan over pairs of response
    sources (``leaderboard.plan_votes``, objective "rank"): each next vote goes to the
    pair that most shrinks the variance of the gaps between rank neighbours, weighted
    by the chance the two are misordered, and the plan spreads over pairs as their
    variance falls. In benchmarks/leaderboard_sampling.py this reached the full-data
    ranking with fewer votes than uniform sampling and than the old rule (largest
    interval overlap first, one pair at a time). A source with no battles has an
    unbounded variance, so it is covered first. Same-source pairs go last."""
    from annotate.models import Response

    from .ml.leaderboard import count_vote, plan_votes

    response_ids = {r for c in pool.rows for r in (c[2], c[3])}
    source = dict(Response.objects.filter(pk__in=response_ids).values_list("id", "source"))
    battles = [b for b in source_battles(project) if b[0] != b[1]]
    pair_sources = [(source.get(a) or "unknown", source.get(b) or "unknown") for _, _, a, b in pool.rows]
    names = sorted({s for b in battles for s in b[:2]} | {s for p in pair_sources for s in p})
    index = {s: i for i, s in enumerate(names)}
    n = len(names)
    wins = np.zeros((n, n))
    for a, b, outcome, _ in battles:
        count_vote(wins, index[a], index[b], outcome)
    # Each source pair's open comparisons, fewest labels first, then spread over prompts.
    by_pair: dict[tuple[int, int], list[int]] = defaultdict(list)
    per_prompt = np.array([pool.per_prompt.get(p, 0) for p in pool.prompts])
    for k in np.lexsort((per_prompt, pool.labels)):
        ia, ib = (index[s] for s in pair_sources[k])
        if ia != ib:
            by_pair[(min(ia, ib), max(ia, ib))].append(int(k))
    scores = np.full(len(pool), -1e9)
    if not by_pair:
        return scores
    available = np.zeros((n, n))
    for (i, j), members in by_pair.items():
        available[i, j] = len(members)
    plan = plan_votes(wins, available, min(ARENA_PLAN, int(available.sum())), objective="rank")
    taken = defaultdict(int)
    position = 0
    for key in plan:
        scores[by_pair[key][taken[key]]] = len(pool) - position
        taken[key] += 1
        position += 1
    # Beyond the plan: the rest of each pair, pairs the plan used most first.
    for key in sorted(by_pair, key=lambda k: -taken[k]):
        for k in by_pair[key][taken[key]:]:
            scores[k] = len(pool) - position
            position += 1
    return scores


def _texts(project: Project, response_ids: list[int]) -> dict[int, tuple]:
    from annotate.models import Response

    out = {}
    for start in range(0, len(response_ids), CHUNK):
        chunk = response_ids[start:start + CHUNK]
        for rid, text, conversation in Response.objects.filter(pk__in=chunk).values_list(
                "id", "text", "prompt__conversation"):
            out[rid] = (conversation, text)
    return out


def _write_priorities(ids: np.ndarray, priority: np.ndarray) -> None:
    """Write the priorities that changed, and only those: each write leaves a dead
    row version in the queue table (priority is indexed, so it is never HOT)."""
    if connection.vendor == "postgresql":
        # One UPDATE joined to the arrays: bulk_update's CASE WHEN per chunk took
        # most of a 100k-pair rescore (56 s under load, of which scoring was 1.5 s).
        table = QueueSlot._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f'UPDATE "{table}" AS c SET priority = v.p FROM unnest(%s::bigint[], %s::double precision[]) '
                "AS v(id, p) WHERE c.comparison_id = v.id AND c.priority IS DISTINCT FROM v.p",
                [[int(i) for i in ids], [float(int(x)) for x in priority]],
            )
        return
    with transaction.atomic():
        for start in range(0, len(ids), CHUNK):
            chunk = slice(start, start + CHUNK)
            wanted = {int(i): float(p) for i, p in zip(ids[chunk], priority[chunk])}
            now = dict(QueueSlot.objects.filter(pk__in=list(wanted)).values_list("pk", "priority"))
            batch = [QueueSlot(pk=i, priority=p) for i, p in wanted.items() if now.get(i) != p]
            QueueSlot.objects.bulk_update(batch, ["priority"], batch_size=CHUNK)
