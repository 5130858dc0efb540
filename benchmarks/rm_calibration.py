"""Calibration of the gated reward model with and without its learned temperature β
(issue #20, fix 2), over several prompt splits, with the plain Bradley-Terry head as
a reference.

For each file and each split seed s (``--splits``, default 5), the pairs are split
by prompt (``split_by_prompt(pairs, 0.2, s)``) and three head-mode models are trained
with the product's defaults and ``seed = s``:

- ``bt``: the default Bradley-Terry head on the training pairs;
- ``gated β off`` and ``gated β on``: ``objective=gated`` with ``gate_temperature``
  False and True. The two configs are one config with that field replaced, so they
  share split, seed, bootstrap draws, initialisation and criterion heads; only β
  differs (the test checks it).

Held-out accuracy, ECE (``evaluate.expected_calibration_error`` on both orders of
each non-tie pair), the mean |Δ| = |r(A) − r(B)|, the learned β (mean over the
ensemble members) and a reliability table pooled over the splits are reported.

Where the per-criterion ratings come from. The gated objective trains criterion heads
on ratings (stage 1), then the gate on pairs (stage 2). The criteria and their
sources were fixed before any run, and no hyper-parameter is set here (TrainConfig's
defaults throughout):

- ``finegrained`` (Fine-Grained RLHF QA feedback): ratings and pairs from one file,
  the full gated objective. A rating is the number of error spans of each of the five
  types on prediction 1 (as the ``spans`` scale counts them), negated; the pairs are
  the six judgments among the four predictions. Ratings follow the pairs' prompt
  split, so held-out prompts train neither stage.
- ``summarize-batch13`` and ``hh-harmless`` carry no per-criterion ratings (batch13's
  confidence is one number per comparison, already the pair's strength). Stage 1
  trains on the ratings of two other files that are never reported here: all 500
  Fine-Grained RLHF error counts (as above) and OASST's sibling ranks as one
  criterion, ``oasst_rank`` = 1 − g/(G − 1) for a reply in rank group g of G. Stage 2
  trains on the file's training pairs. Held-out pairs train nothing: ArmoRM's own
  arrangement (regression heads on rating data, the gate on other preference data).

Ratings are negated error counts because the gate's weights are a softmax (≥ 0): it
can only add criteria, so each must be higher-is-better.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/rm_calibration.py --threads 1 --cache-dir /tmp/cache

Prints the tables, writes ``--json`` (default benchmarks/results/rm_calibration.json,
with the command and ``uptime`` before and after) and ends with ONE JSON line.
Reads ../shared/data (see its README).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._labels import PARSERS, load_pairs, to_pair_example  # noqa: E402
from benchmarks._machine import uptime as _uptime  # noqa: E402
from dataio.imports.parsers.finegrained import FINEGRAINED_ERROR_TYPES  # noqa: E402
from models_svc.ml import evaluate  # noqa: E402
from models_svc.ml.config import TrainConfig  # noqa: E402
from models_svc.ml.data import PairExample, RatedExample, split_by_prompt  # noqa: E402
from models_svc.ml.train import train_head  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
EVAL_FRACTION = 0.2
N_BINS = 10
VARIANTS = ("bt", "gated β off", "gated β on")
FINEGRAINED = ("finegrained", "finegrained-rlhf/dev_feedback.json")
OASST = ("oasst", "oasst/en_100_tree.jsonl")
# name → (import format, path under the data folder, where the ratings come from)
FILES: dict[str, tuple[str, str, str]] = {
    "finegrained": (*FINEGRAINED, "same file"),
    "summarize-batch13": ("summarize", "summarize-from-feedback/batch13.json", "other files"),
    "hh-harmless": ("hh", "hh-rlhf/harmless-base-test.jsonl.gz", "other files"),
}


def finegrained_ratings(path: Path) -> list[RatedExample]:
    """Prediction 1 of each item, scored per error type by minus its number of spans."""
    out = []
    for rec in PARSERS["finegrained"](path):
        texts = {r.external_id: r.text for r in rec.responses}
        for rating in rec.ratings:
            counts = {key: 0.0 for key in FINEGRAINED_ERROR_TYPES.values()}
            for span in rating.spans:
                counts[span["type"]] += 1.0
            scores: dict[str, float | None] = {key: -n for key, n in counts.items()}
            out.append(RatedExample(rec.prompt_id, rec.conversation, texts[rating.response], scores))
    return out


def oasst_rank_ratings(path: Path) -> list[RatedExample]:
    """Every ranked OASST reply scored 1 − g/(G − 1) by its rank group g of G (best 1, worst 0)."""
    out = []
    for rec in PARSERS["oasst"](path):
        texts = {r.external_id: r.text for r in rec.responses}
        for ranking in rec.rankings:
            last = len(ranking.groups) - 1
            for g, group in enumerate(ranking.groups):
                for rid in group:
                    score = 1.0 - g / last if last else None
                    out.append(RatedExample(rec.prompt_id, rec.conversation, texts[rid], {"oasst_rank": score}))
    return out


def variant_configs(base: TrainConfig, seed: int) -> dict[str, TrainConfig]:
    """The three models of one split, all with ``seed``; the gated pair differs only in β."""
    seeded = dataclasses.replace(base, seed=seed, split_seed=seed, eval_fraction=EVAL_FRACTION)
    gated = dataclasses.replace(seeded, objective="gated")
    return {
        "bt": dataclasses.replace(seeded, objective="bt"),
        "gated β off": dataclasses.replace(gated, gate_temperature=False),
        "gated β on": dataclasses.replace(gated, gate_temperature=True),
    }


def held_out_diffs(model: Any, pairs: Sequence[PairExample]) -> np.ndarray:
    """r(chosen) − r(rejected) of each pair (ensemble mean), scored as the API scores."""
    items = [(p.conversation, t) for p in pairs for t in (p.chosen_text, p.rejected_text)]
    reward = model.score_items(items).reward
    return np.asarray(reward[0::2] - reward[1::2], dtype=float)


def reliability_counts(diff: np.ndarray, tie: np.ndarray) -> dict[str, list[float]]:
    """Per P-bin count, Σ P and Σ outcome over both orders of each non-tie pair (summable over splits)."""
    prob, outcome = evaluate.pair_calibration_inputs(diff, tie)
    bins = np.minimum((prob * N_BINS).astype(int), N_BINS - 1)
    return {
        "n": np.bincount(bins, minlength=N_BINS).astype(float).tolist(),
        "p": np.bincount(bins, weights=prob, minlength=N_BINS).tolist(),
        "y": np.bincount(bins, weights=outcome, minlength=N_BINS).tolist(),
    }


def run_split(
    pairs: Sequence[PairExample],
    ratings: Sequence[RatedExample],
    *,
    seed: int,
    base: TrainConfig,
    ratings_in_file: bool,
    log: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Train the three variants on one prompt split and measure them on its held-out pairs.

    ``ratings_in_file``: the ratings are the same file's and follow the pairs' prompt
    split; otherwise they come from other files and stage 1 trains on all of them."""
    train, held = split_by_prompt(pairs, EVAL_FRACTION, seed)
    if ratings_in_file:
        train_r, held_r = split_by_prompt(ratings, EVAL_FRACTION, seed)
    else:
        train_r, held_r = list(ratings), []
    tie = np.array([p.tie for p in held], dtype=bool)
    out: dict[str, Any] = {
        "seed": seed, "train_pairs": len(train), "eval_pairs": len(held), "eval_ties": int(tie.sum()),
        "train_ratings": len(train_r), "held_out_prompts": sorted({p.prompt_id for p in held}), "variants": {},
    }
    for name, cfg in variant_configs(base, seed).items():
        started = time.perf_counter()
        gated = cfg.objective == "gated"
        result = train_head(cfg, train, train_r if gated else (), eval_pairs=held, eval_ratings=held_r if gated else None)
        diff = held_out_diffs(result.model, held)
        prob, outcome = evaluate.pair_calibration_inputs(diff, tie)
        gates = result.model.head.gates
        betas = [float(g.beta().detach()) for g in gates.members] if gates is not None else []
        row = {
            "config": result.config,
            "eval_accuracy": evaluate.pairwise_accuracy(diff, tie),
            "ece": evaluate.expected_calibration_error(prob, outcome, N_BINS),
            "mean_abs_diff": float(np.abs(diff[~tie]).mean()) if (~tie).any() else float("nan"),
            "mean_abs_p_minus_half": float(np.abs(prob - 0.5).mean()) if len(prob) else float("nan"),
            "beta": float(np.mean(betas)) if betas else None,
            "beta_members": betas,
            # Σ|w| of the criterion heads: equal under β off and on when only the gate differs.
            "criterion_heads_abs_sum": float(sum(w.detach().abs().sum() for w in result.model.head.heads.parameters()))
            if gated else None,
            "criteria": result.model.criteria,
            "train_accuracy": result.metrics.get("train_accuracy"),
            "trainer_ece": result.metrics.get("ece"),
            "reliability": reliability_counts(diff, tie),
            "train_s": time.perf_counter() - started,
        }
        out["variants"][name] = row
        log(f"  split {seed} {name:<12} acc {row['eval_accuracy']:.3f}  ECE {row['ece']:.3f}  "
            f"|Δ| {row['mean_abs_diff']:.3f}  β {row['beta'] if row['beta'] is not None else '–'}  "
            f"({row['train_s']:.0f} s)")
    return out


def summarize_splits(splits: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean ± std (population) over splits of each variant's figures, and the pooled reliability."""
    summary: dict[str, dict[str, Any]] = {}
    for name in VARIANTS:
        rows = [s["variants"][name] for s in splits if name in s["variants"]]
        if not rows:
            continue
        entry: dict[str, Any] = {"splits": len(rows)}
        for key in ("eval_accuracy", "ece", "mean_abs_diff", "mean_abs_p_minus_half", "beta"):
            values = [r[key] for r in rows if r[key] is not None]
            if values:
                entry[key] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}
        pooled = {k: np.sum([r["reliability"][k] for r in rows], axis=0) for k in ("n", "p", "y")}
        entry["reliability"] = [
            {"bin": f"{b / N_BINS:.1f}–{(b + 1) / N_BINS:.1f}", "n": int(pooled["n"][b]),
             "mean_p": float(pooled["p"][b] / pooled["n"][b]), "observed": float(pooled["y"][b] / pooled["n"][b])}
            for b in range(N_BINS) if pooled["n"][b]
        ]
        summary[name] = entry
    return summary


def _pm(entry: dict[str, Any], key: str) -> str:
    v = entry.get(key)
    return f"{v['mean']:.3f} ± {v['std']:.3f}" if v else "–"


def print_tables(name: str, source: str, summary: dict[str, dict[str, Any]]) -> None:
    print(f"\n{name} (ratings: {source}); mean ± std over {next(iter(summary.values()))['splits']} prompt splits")
    print(f"{'model':<12} {'held-out acc.':>15} {'ECE':>15} {'mean |Δ|':>15} {'β':>15}")
    for variant, entry in summary.items():
        print(f"{variant:<12} {_pm(entry, 'eval_accuracy'):>15} {_pm(entry, 'ece'):>15} "
              f"{_pm(entry, 'mean_abs_diff'):>15} {_pm(entry, 'beta'):>15}")
    # Both orders of each pair are counted, so bin b mirrors bin 9 − b: the upper half says it all.
    print(f"reliability, pooled over splits (P ≥ 0.5; the lower half mirrors it): bin  n  mean P → observed")
    for variant, entry in summary.items():
        cells = [f"{r['bin']} {r['n']} {r['mean_p']:.2f}→{r['observed']:.2f}" for r in entry["reliability"]
                 if r["mean_p"] >= 0.5]
        print(f"  {variant:<12} " + " | ".join(cells))


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", nargs="+", choices=sorted(FILES), default=list(FILES))
    parser.add_argument("--splits", type=int, default=5, help="prompt split seeds 0..N−1 (≥ 5 for reported figures)")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="default: $PREFLAB_SHARED_DATA or ../shared/data")
    parser.add_argument("--backbone", help="local checkpoint directory (default: the bundled all-MiniLM-L6-v2)")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache (default: none, everything embedded per run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=RESULTS / "rm_calibration.json")
    parser.add_argument("--limit", type=int, help="first N pairs of each file only (smoke runs; not for figures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    record: dict[str, Any] = {
        "benchmark": "rm_calibration",
        "command": "python benchmarks/rm_calibration.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "uptime_before": _uptime(),
        "eval_fraction": EVAL_FRACTION,
        "files": {},
    }
    base = TrainConfig(backbone=args.backbone, mode="head", cache_dir=str(args.cache_dir) if args.cache_dir else None)

    def data(fmt: str, rel: str) -> Path:
        path = args.data_dir / rel
        if not path.exists():
            sys.exit(f"{path} not found (the shared data folder, see ../shared/data/README.md)")
        return path

    other_ratings: list[RatedExample] | None = None
    for name in args.files:
        fmt, rel, source = FILES[name]
        pairs = [to_pair_example(p) for p in load_pairs(fmt, data(fmt, rel))][: args.limit]
        if source == "same file":
            ratings = finegrained_ratings(data(fmt, rel))
        else:
            if other_ratings is None:
                other_ratings = finegrained_ratings(data(*FINEGRAINED)) + oasst_rank_ratings(data(*OASST))
            ratings = other_ratings
        print(f"{name}: {len(pairs)} pairs, {len(ratings)} ratings ({source})", file=sys.stderr, flush=True)
        splits = [
            run_split(pairs, ratings, seed=s, base=base, ratings_in_file=source == "same file",
                      log=lambda line: print(line, file=sys.stderr, flush=True))
            for s in range(args.splits)
        ]
        summary = summarize_splits(splits)
        print_tables(name, source, summary)
        record["files"][name] = {"format": fmt, "path": rel, "ratings": source, "pairs": len(pairs),
                                 "n_ratings": len(ratings), "summary": summary, "splits": splits}
    record["uptime_after"] = _uptime()
    record["wall_s"] = time.perf_counter() - started
    record["threads"] = args.threads
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1, ensure_ascii=False))
    line = {
        "benchmark": "rm_calibration", "json": str(args.json), "wall_s": round(record["wall_s"], 1),
        **{f"{name}/{variant}/{key}": round(entry[key]["mean"], 4)
           for name, f in record["files"].items() for variant, entry in f["summary"].items()
           for key in ("eval_accuracy", "ece", "beta") if key in entry},
    }
    print(f"wrote {args.json}")
    print(json.dumps(line, ensure_ascii=False), flush=True)
    return record


if __name__ == "__main__":
    main()
