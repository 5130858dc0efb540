"""Which comparisons to ask for when the question is "which of my models is best?"

A replay over real labels that carry the source (model, policy) of each response:
PandaLM's human test set (five systems, three annotators per pair) and the OpenAI
summarize-from-feedback batches 13 (two policies) and cnndm (four policies). Each
strategy asks for one vote at a time, naming a pair of sources; the replay hands it
the next unseen label of that pair (a fixed shuffled order per seed, the same for
every strategy), and only then is the label revealed (``Oracle``; the test flips
every unrequested label and checks the run is identical).

Strategies:
- ``uniform``: a uniformly drawn remaining label.
- ``arena``: the ``arena`` strategy's rule before this benchmark: every ``--every``
  votes the leaderboard is refitted, and the pair of sources whose 95 % intervals
  overlap the most is asked for until the next refit.
- ``variance``: ``leaderboard.plan_votes`` with objective "rank", the ``arena``
  strategy's rule since (models_svc/selection.py): greedily, the pair whose vote most
  reduces the variance of the gaps between rank neighbours, each weighted by the
  chance the two are misordered; replanned every ``--every`` votes.
- ``width``: the same with objective "width" (summed variance of the scores).

Every ``--every`` votes the leaderboard (``models_svc/ml/leaderboard.py``; its
bootstrap resamples whole prompts) is fitted on the labels revealed so far. Targets,
each counted as the first checkpoint from which it holds until the end of the run:
top-1 equal to the full data's; Kendall τ ≥ ``--tau`` to the full-data ranking;
median 95 % interval width ≤ ``--width-factor`` × the full data's median width.

    nice -n 10 python benchmarks/leaderboard_sampling.py --seeds 20 \\
        --out-json benchmarks/results/leaderboard_sampling.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.stats import kendalltau

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks._machine import uptime as _uptime  # noqa: E402
from models_svc.ml.leaderboard import count_vote, leaderboard, most_informative_pair, plan_votes  # noqa: E402

DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
STRATEGIES = ("uniform", "arena", "variance", "width")
TARGETS = ("top1", "tau", "width")


@dataclass
class Votes:
    """Labels with their sources; ``outcomes`` is hidden behind an ``Oracle``."""
    name: str
    sources: list[str]
    a: np.ndarray  # source index of response A
    b: np.ndarray
    cluster: list  # the prompt: the bootstrap resamples it whole
    outcomes: list[str]  # "A" | "B" | "tie"

    def pairs(self, indices: Sequence[int] | None = None) -> list[tuple]:
        idx = range(len(self.a)) if indices is None else indices
        return [(self.sources[self.a[i]], self.sources[self.b[i]], self.outcomes[i], self.cluster[i]) for i in idx]


class Oracle:
    """The simulated annotator: a label exists for a strategy only once asked for;
    every reveal is recorded (the test checks it)."""

    def __init__(self, outcomes: Sequence[str]):
        self._outcomes = list(outcomes)
        self.revealed: list[int] = []

    def reveal(self, index: int) -> str:
        self.revealed.append(int(index))
        return self._outcomes[index]


def load_pandalm(path: Path) -> Votes:
    rows = json.loads(path.read_text(encoding="utf-8"))
    outcome = {0: "tie", 1: "A", 2: "B"}
    triples = []
    for r in rows:
        a, b = r["cmp_key"].split("_", 1)
        for k in (1, 2, 3):
            triples.append((a, b, outcome[r[f"annotator{k}"]], (r["instruction"], r["input"])))
    return _votes("pandalm", triples)


def load_summarize(path: Path, name: str) -> Votes:
    triples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        s = r["summaries"]
        triples.append((s[0]["policy"], s[1]["policy"], "A" if int(r["choice"]) == 0 else "B",
                        r["info"].get("id") or r["info"].get("post") or r["info"].get("article")))
    return _votes(name, triples)


DATASETS = {
    "pandalm": lambda data: load_pandalm(data / "pandalm" / "testset-v1.json"),
    "batch13": lambda data: load_summarize(data / "summarize-from-feedback" / "batch13.json", "batch13"),
    "cnndm": lambda data: load_summarize(data / "summarize-from-feedback" / "batch0_cnndm.json", "cnndm"),
}


def load(name: str, data: Path) -> Votes:
    """One of ``DATASETS`` from the shared data folder ``data``."""
    return DATASETS[name](data)


def _votes(name: str, triples: list[tuple]) -> Votes:
    sources = sorted({s for t in triples for s in t[:2]})
    index = {s: i for i, s in enumerate(sources)}
    return Votes(name, sources, np.array([index[t[0]] for t in triples]), np.array([index[t[1]] for t in triples]),
                 [t[3] for t in triples], [t[2] for t in triples])


@dataclass
class Trace:
    """What a run did: the labels it asked for, in order, and the leaderboard at each
    checkpoint (votes, sources best first, scores, median 95 % width)."""
    picks: list[int] = field(default_factory=list)
    checkpoints: list[tuple[int, tuple[str, ...], tuple[float, ...], float]] = field(default_factory=list)


def _pair_key(i: int, j: int) -> tuple[int, int]:
    return (i, j) if i < j else (j, i)


def replay(data: Votes, oracle: Oracle, strategy: str, seed: int, *, every: int, rounds: int,
           budget: int | None = None) -> Trace:
    """One run of ``strategy``; labels reach it only through ``oracle.reveal``."""
    n = len(data.sources)
    order_rng = np.random.default_rng(seed)  # the same within-pair order for every strategy
    queues: dict[tuple[int, int], list[int]] = {}
    for i in order_rng.permutation(len(data.a)):
        queues.setdefault(_pair_key(int(data.a[i]), int(data.b[i])), []).append(int(i))
    keys = sorted(queues)
    pick_rng = np.random.default_rng([seed, STRATEGIES.index(strategy)])
    budget = len(data.a) if budget is None else min(budget, len(data.a))
    wins = np.zeros((n, n))
    revealed: list[tuple] = []
    trace = Trace()
    plan: list[tuple[int, int]] = []
    arena_order: list[tuple[int, int]] = []

    def checkpoint() -> None:
        rows = leaderboard(revealed, rounds=rounds, seed=seed) if revealed else []
        widths = [r.high - r.low for r in rows]
        trace.checkpoints.append((len(trace.picks), tuple(r.source for r in rows),
                                  tuple(round(float(r.score), 6) for r in rows),
                                  round(float(np.median(widths)), 6) if widths else float("inf")))
        nonlocal plan, arena_order
        available = np.zeros((n, n))
        for (i, j), q in queues.items():
            available[i, j] = len(q)
        if strategy in ("variance", "width"):
            plan = plan_votes(wins, available, every, objective="rank" if strategy == "variance" else "width")
        elif strategy == "arena":
            arena_order = _arena_order(rows, keys, data.sources, pick_rng)

    while len(trace.picks) < budget:
        if len(trace.picks) % every == 0:
            checkpoint()
        open_keys = [k for k in keys if queues[k]]
        if strategy == "uniform":
            sizes = np.array([len(queues[k]) for k in open_keys], dtype=float)
            key = open_keys[int(pick_rng.choice(len(open_keys), p=sizes / sizes.sum()))]
        elif strategy == "arena":
            key = next(k for k in arena_order if queues[k])
        else:
            key = plan.pop(0) if plan else open_keys[0]
            if not queues[key]:
                key = open_keys[0]
        index = queues[key].pop(0)
        outcome = oracle.reveal(index)
        trace.picks.append(index)
        ia, ib = int(data.a[index]), int(data.b[index])
        count_vote(wins, ia, ib, outcome)
        revealed.append((data.sources[ia], data.sources[ib], outcome, data.cluster[index]))
    checkpoint()
    return trace


def _arena_order(rows, keys: list[tuple[int, int]], sources: list[str], rng: np.random.Generator) -> list:
    """Source pairs as ``selection._arena_scores`` orders them: a pair with a source not
    yet seen first, then by overlap of the two intervals, largest first (random ties)."""
    by_source = {r.source: r for r in rows}
    scores = []
    for i, j in keys:
        x, y = by_source.get(sources[i]), by_source.get(sources[j])
        scores.append(1e6 if x is None or y is None else min(x.high, y.high) - max(x.low, y.low))
    tiebreak = rng.permutation(len(keys))
    return [keys[k] for k in np.lexsort((tiebreak, -np.array(scores)))]


def reference(data: Votes, rounds: int) -> dict[str, Any]:
    rows = leaderboard(data.pairs(), rounds=rounds, seed=0)
    return {"ranking": [r.source for r in rows], "scores": {r.source: round(float(r.score), 1) for r in rows},
            "median_width": round(float(np.median([r.high - r.low for r in rows])), 2),
            "adjacent_overlap": most_informative_pair(rows)}


def votes_to_targets(trace: Trace, ref: dict[str, Any], *, tau: float, width: float) -> dict[str, int | None]:
    """For each target the first checkpoint from which it holds to the end (None: not at the end)."""
    truth = ref["ranking"]
    held: dict[str, Callable] = {
        "top1": lambda ranking, w: bool(ranking) and ranking[0] == truth[0],
        "tau": lambda ranking, w: len(ranking) == len(truth) and _tau(ranking, truth) >= tau,
        "width": lambda ranking, w: len(ranking) == len(truth) and w <= width,
    }
    out = {}
    for name, ok in held.items():
        first = None
        for votes, ranking, _, w in trace.checkpoints:
            if ok(ranking, w):
                first = votes if first is None else first
            else:
                first = None
        out[name] = first
    return out


def _tau(ranking: Sequence[str], truth: Sequence[str]) -> float:
    if len(truth) < 2:
        return 1.0
    pos = {s: k for k, s in enumerate(ranking)}
    return float(kendalltau([pos[s] for s in truth], range(len(truth))).statistic)


def run_dataset(data: Votes, strategies: Sequence[str], seeds: int, *, every: int, rounds: int, ref_rounds: int,
                tau: float, width_factor: float, budget: int | None, log: Callable[[str], None]) -> dict[str, Any]:
    ref = reference(data, ref_rounds)
    width = width_factor * ref["median_width"]
    out: dict[str, Any] = {"votes": len(data.a), "sources": data.sources, "reference": ref, "every": every,
                           "width_target": round(width, 2), "strategies": {}}
    for name in strategies:
        started = time.perf_counter()
        per_seed = {t: [] for t in TARGETS}
        for seed in range(seeds):
            trace = replay(data, Oracle(data.outcomes), name, seed, every=every, rounds=rounds, budget=budget)
            for t, v in votes_to_targets(trace, ref, tau=tau, width=width).items():
                per_seed[t].append(v)
        out["strategies"][name] = {"votes_to": per_seed, **{t: _summary(v, len(data.a)) for t, v in per_seed.items()},
                                   "seconds": round(time.perf_counter() - started, 1)}
        log(f"  {data.name} {name}: " + ", ".join(f"{t} {out['strategies'][name][t]['median']}" for t in TARGETS))
    base = out["strategies"].get("uniform")
    for s in out["strategies"].values():
        for t in TARGETS:
            m, u = s[t]["median"], base[t]["median"] if base else None
            s[t]["ratio_to_uniform"] = round(m / u, 3) if m is not None and u else None
    return out


def _summary(values: list[int | None], total: int) -> dict[str, Any]:
    """Median and quartiles over seeds; a seed that never held the target counts as
    needing more than every vote (its quartile then reads None)."""
    filled = np.array([np.inf if v is None else v for v in values], dtype=float)
    q = np.percentile(filled, [25, 50, 75], method="lower")
    as_int = [None if not np.isfinite(x) else int(x) for x in q]
    return {"median": as_int[1], "p25": as_int[0], "p75": as_int[2], "not_reached": sum(v is None for v in values)}


def table(result: dict[str, Any]) -> str:
    head = f"{'dataset':<10} {'strategy':<9}" + "".join(f" {t + ' votes [p25–p75]':>26} {'×unif':>6}" for t in TARGETS)
    lines = [head, "-" * len(head)]
    for dname, d in result["datasets"].items():
        for sname, s in d["strategies"].items():
            cells = ""
            for t in TARGETS:
                x = s[t]
                spread = f"{x['median']} [{x['p25']}–{x['p75']}]"
                ratio = "" if x["ratio_to_uniform"] is None else f"{x['ratio_to_uniform']:.2f}"
                cells += f" {spread:>26} {ratio:>6}"
            lines.append(f"{dname:<10} {sname:<9}{cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--datasets", default="pandalm,batch13,cnndm")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--every", type=int, default=0, help="votes between refits/checkpoints (0: votes/80, min 5)")
    parser.add_argument("--rounds", type=int, default=40, help="bootstrap rounds at each checkpoint")
    parser.add_argument("--ref-rounds", type=int, default=200, help="bootstrap rounds of the full-data reference")
    parser.add_argument("--tau", type=float, default=0.9)
    parser.add_argument("--width-factor", type=float, default=1.5, help="target median width ÷ the full data's")
    parser.add_argument("--budget", type=int, help="stop each run after this many votes")
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategies {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/leaderboard_sampling.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "uptime_before": _uptime(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out_json"},
        "datasets": {},
    }
    for name in [d for d in args.datasets.split(",") if d]:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name}; choose from {', '.join(DATASETS)}")
        try:
            data = load(name, args.data)
        except FileNotFoundError as exc:
            sys.exit(f"{exc.filename} not found (the shared data folder, see ../shared/data/README.md)")
        every = args.every or max(5, len(data.a) // 80)
        print(f"{name}: {len(data.a)} votes, {len(data.sources)} sources, checkpoint every {every}", flush=True)
        result["datasets"][name] = run_dataset(
            data, strategies, args.seeds, every=every, rounds=args.rounds, ref_rounds=args.ref_rounds, tau=args.tau,
            width_factor=args.width_factor, budget=args.budget, log=lambda line: print(line, flush=True))
    result["uptime_after"] = _uptime()
    result["cpus"] = os.cpu_count()
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(table(result))
    summary = {d: {s: {t: v[t]["ratio_to_uniform"] for t in TARGETS} for s, v in r["strategies"].items()}
               for d, r in result["datasets"].items()}
    print(json.dumps({"ratio_to_uniform": summary, "wall_seconds": result["wall_seconds"]}))
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
