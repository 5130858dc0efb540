"""How much any vote-allocation rule could save over uniform sampling (issue #20,
point 7): a bound that explains the leaderboard-sampling figures.

``leaderboard_sampling.py`` measures the votes each rule needs to reach a target
precision. This asks the question behind the ≤ 0.6× goal: even an **oracle** that
knows every source's full-data strength and splits its votes between pairs in the
best possible proportions — how many votes does it need, relative to the data's
own mix of pairs (what uniform sampling of the remaining labels follows)?

For large n, a Bradley-Terry fit's covariance is the inverse Fisher information,
Σ(π)/n with Σ(π) = H(π)⁺ and H(π) = Σ_pairs π_ij p_ij(1−p_ij)(e_i − e_j)(e_i − e_j)ᵀ
(``leaderboard.information``). A target that needs a variance below some level
needs votes in proportion to the variance at n = 1, so the oracle's vote ratio is
f(π*) / f(data mix), for:

- **width**: the median over sources of the centred score's variance (the median
  95 % interval width, squared);
- **order**: the largest over rank neighbours of var(β_i − β_j) / (β_i − β_j)², the
  gap hardest to resolve (for 4–5 sources, τ ≥ 0.9 means the exact order);
- **top-1**: the same for the first two sources only.

π* is found by Nelder–Mead on a softmax parametrisation from the data mix, uniform
and ``--starts`` random points (the median is not smooth). The bound is asymptotic:
it ignores that a rule must first learn the strengths and that the replay's pool
of each pair is finite (the allocation's largest share is printed; compare it with
the pool's). So a measured ratio above the bound may be improvable; a goal below it
is out of reach for every rule.

    PREFLAB_SHARED_DATA=../shared/data .venv/bin/python benchmarks/leaderboard_oracle.py \
        --out-json benchmarks/results/leaderboard_oracle.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import uptime  # noqa: E402
from benchmarks.leaderboard_sampling import DATA, DATASETS, Votes, load  # noqa: E402
from models_svc.ml import leaderboard as lb  # noqa: E402

TARGETS = ("top1", "order", "width")
MEASURED = Path(__file__).resolve().parent / "results" / "leaderboard_sampling.json"
# the leaderboard_sampling target each oracle target bounds
MEASURED_TARGET = {"top1": "top1", "order": "tau", "width": "width"}


def full_data_beta(data: Votes) -> np.ndarray:
    n = len(data.sources)
    wins = np.zeros((n, n))
    for a, b, outcome in zip(data.a, data.b, data.outcomes):
        lb.count_vote(wins, int(a), int(b), outcome)
    nz = np.flatnonzero(wins)
    return lb.fit(nz // n, nz % n, wins.ravel()[nz], n)


def pair_mix(data: Votes) -> np.ndarray:
    """Share of the data's labels on each source pair, in np.triu_indices order."""
    n = len(data.sources)
    counts = np.zeros((n, n))
    for a, b in zip(data.a, data.b):
        counts[min(a, b), max(a, b)] += 1
    iu, ju = np.triu_indices(n, 1)
    share = counts[iu, ju]
    return share / share.sum()


def variance_at_one_vote(beta: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Σ(π): the covariance of β̂ per vote under pair shares π (pseudo-inverse, as
    scores are relative)."""
    n = len(beta)
    iu, ju = np.triu_indices(n, 1)
    battles = np.zeros((n, n))
    battles[iu, ju] = share
    return np.linalg.pinv(lb.information(beta, battles + battles.T))


def objectives(beta: np.ndarray) -> dict[str, Callable[[np.ndarray], float]]:
    n = len(beta)
    order = np.argsort(-beta, kind="stable")
    centred = np.eye(n) - 1.0 / n

    def gap_ratio(k_pairs: Sequence[tuple[int, int]]) -> Callable[[np.ndarray], float]:
        def f(share: np.ndarray) -> float:
            cov = variance_at_one_vote(beta, share)
            worst = 0.0
            for i, j in k_pairs:
                e = np.zeros(n)
                e[i], e[j] = 1.0, -1.0
                worst = max(worst, float(e @ cov @ e) / (beta[i] - beta[j]) ** 2)
            return worst
        return f

    def width(share: np.ndarray) -> float:
        cov = variance_at_one_vote(beta, share)
        return float(np.median(np.diag(centred @ cov @ centred)))

    neighbours = [(int(order[k]), int(order[k + 1])) for k in range(n - 1)]
    return {"top1": gap_ratio(neighbours[:1]), "order": gap_ratio(neighbours), "width": width}


def best_share(f: Callable[[np.ndarray], float], starts: Sequence[np.ndarray]) -> tuple[float, np.ndarray]:
    def on_simplex(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max())
        return e / e.sum()

    def descend(x0: np.ndarray):
        return minimize(lambda x: f(on_simplex(x)), x0, method="Nelder-Mead",
                        options={"maxiter": 3000, "xatol": 1e-5, "fatol": 1e-10})

    best = min((descend(x0) for x0 in starts), key=lambda r: r.fun)
    for _ in range(3):  # Nelder-Mead stalls on a kink of the median; restarting from its end moves on
        again = descend(best.x)
        if again.fun >= best.fun - 1e-12:
            break
        best = again
    return float(best.fun), on_simplex(best.x)


def measured_best(name: str) -> dict[str, dict[str, Any]]:
    """The best median ratio to uniform per target in the committed replay results."""
    if not MEASURED.exists():
        return {}
    data = json.loads(MEASURED.read_text()).get("datasets", {}).get(name)
    if not data:
        return {}
    out = {}
    for target, key in MEASURED_TARGET.items():
        rows = [(v[key]["ratio_to_uniform"], s) for s, v in data["strategies"].items()
                if s != "uniform" and v[key].get("ratio_to_uniform") is not None]
        if rows:
            ratio, strategy = min(rows)
            out[target] = {"ratio": ratio, "strategy": strategy}
    return out


def run_dataset(data: Votes, starts: int, seed: int) -> dict[str, Any]:
    beta = full_data_beta(data)
    mix = pair_mix(data)
    rng = np.random.default_rng(seed)
    inits = [np.log(mix), np.zeros(len(mix))] + [rng.normal(size=len(mix)) for _ in range(starts)]
    result: dict[str, Any] = {
        "votes": len(data.a), "sources": data.sources,
        "scores": {s: round(1000 + lb.SCALE * float(b), 1) for s, b in zip(data.sources, beta)},
        "pair_mix": [round(float(x), 4) for x in mix], "targets": {}, "measured": measured_best(data.name),
    }
    for target, f in objectives(beta).items():
        value, share = best_share(f, inits)
        base = f(mix)
        result["targets"][target] = {
            "oracle_ratio": round(value / base, 3),
            "uniform_pairs_ratio": round(f(np.full(len(mix), 1 / len(mix))) / base, 3),
            "oracle_share": [round(float(x), 3) for x in share],
        }
    return result


def table(result: dict[str, Any]) -> str:
    lines = ["| dataset | target | oracle ÷ data mix | equal pairs ÷ data mix | best rule measured (leaderboard_sampling) |",
             "|---|---|---|---|---|"]
    for name, r in result["datasets"].items():
        for target in TARGETS:
            t = r["targets"][target]
            m = r["measured"].get(target)
            seen = f"{m['ratio']:.2f}× ({m['strategy']})" if m else "—"
            lines.append(f"| {name} | {target} | {t['oracle_ratio']:.2f}× | {t['uniform_pairs_ratio']:.2f}× | {seen} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--datasets", default="pandalm,cnndm", help="batch13 has two sources: nothing to allocate")
    parser.add_argument("--starts", type=int, default=12, help="random starts of the optimiser besides mix and uniform")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/leaderboard_oracle.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "uptime_before": uptime(), "datasets": {},
    }
    for name in [d for d in args.datasets.split(",") if d]:
        if name not in DATASETS:
            parser.error(f"unknown dataset {name}; choose from {', '.join(DATASETS)}")
        try:
            data = load(name, args.data)
        except FileNotFoundError as exc:
            sys.exit(f"{exc.filename} not found (the shared data folder, see ../shared/data/README.md)")
        if len(data.sources) < 3:
            parser.error(f"{name} has {len(data.sources)} sources: one pair, nothing to allocate")
        result["datasets"][name] = run_dataset(data, args.starts, args.seed)
    result["uptime_after"] = uptime()
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(table(result))
    print(json.dumps({"oracle_ratio": {d: {t: v["oracle_ratio"] for t, v in r["targets"].items()}
                                       for d, r in result["datasets"].items()},
                      "wall_seconds": result["wall_seconds"]}))
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
