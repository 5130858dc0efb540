"""Does the noise audit find flipped labels? Flip a known share of HH harmless
training labels, train the product's head ensemble on the noisy set, score every
training pair with each member, and rank the labels by the audit's evidence
z = −μ/σ (``quality.noise``). Prints precision and recall of the top-k flags
(k = the number flipped) and of the rule the review queue uses (z > FLIP_Z),
against random flags, per seed and as mean ± std over seeds.

Two ways to score: *in-sample* (the product's audit: the active model scores the
labels it was trained on) and *cross-fitted* (two halves by prompt, each scored by
the ensemble trained on the other half), which a label cannot pull towards itself.

    .venv/bin/python benchmarks/noise_audit.py [--seeds 0 1 2] [--noise 0.1] [--threads 2]
        [--cache-dir var/benchmarks/cache] [--out benchmarks/results/noise_audit-hh-harmless.json]

Reads ../shared/data (see its README). Prints a table, ends with one JSON line,
writes the results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("PREFLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

import numpy as np  # noqa: E402

from benchmarks._labels import load_pairs, to_pair_example  # noqa: E402
from models_svc.ml.config import TrainConfig  # noqa: E402
from models_svc.ml.data import PairExample, split_by_prompt  # noqa: E402
from quality import noise  # noqa: E402

EVAL_FRACTION = 0.2


def flip(train: list[PairExample], share: float, rng: random.Random) -> tuple[list[PairExample], np.ndarray]:
    """``train`` with a ``share`` of its decisive labels turned round, and which."""
    decisive = [i for i, p in enumerate(train) if not p.tie]
    chosen = set(rng.sample(decisive, round(share * len(decisive))))
    noisy = [dataclasses.replace(p, chosen_text=p.rejected_text, rejected_text=p.chosen_text) if i in chosen else p
             for i, p in enumerate(train)]
    return noisy, np.array([i in chosen for i in range(len(train))])


def evidence(model, pairs: list[PairExample]) -> np.ndarray:
    """Per pair, (z = −μ/σ, −μ) of d = r(chosen) − r(rejected) over the members."""
    items = [(p.conversation, text) for p in pairs for text in (p.chosen_text, p.rejected_text)]
    members = model.score_items(items).members
    d = members[:, 0::2] - members[:, 1::2]
    return np.stack([noise.flip_evidence(d.mean(axis=0), d.std(axis=0)), -d.mean(axis=0)])


def scores(both: np.ndarray, flipped: np.ndarray, decisive: np.ndarray, rng: random.Random) -> dict:
    """Figures of the audit's evidence z; ``margin_*`` rank by −μ alone, for comparison."""
    z, margin, flipped = both[0][decisive], both[1][decisive], flipped[decisive]
    k = int(flipped.sum())
    p_at_k, r_at_k = noise.precision_recall_at_k(z, flipped, k)
    rule = z > noise.FLIP_Z
    random_top = np.zeros(len(z), dtype=bool)
    random_top[rng.sample(range(len(z)), k)] = True
    from sklearn.metrics import roc_auc_score

    return {
        "k": k, "precision_at_k": round(p_at_k, 4), "recall_at_k": round(r_at_k, 4),
        "random_precision_at_k": round(float(flipped[random_top].mean()), 4),
        "rule_flags": int(rule.sum()), "rule_precision": round(float(flipped[rule].mean()), 4) if rule.any() else None,
        "rule_recall": round(float((rule & flipped).sum() / max(k, 1)), 4),
        "auc": round(float(roc_auc_score(flipped, z)), 4),
        "margin_precision_at_k": round(noise.precision_recall_at_k(margin, flipped, k)[0], 4),
        "margin_auc": round(float(roc_auc_score(flipped, margin)), 4),
    }


def run_seed(pairs: list[PairExample], *, seed: int, share: float, config: TrainConfig, crossfit: bool = True) -> dict:
    """One seed: flip, train in-sample (and cross-fitted), score. Returns the figures."""
    from models_svc.ml.train import train_head

    rng = random.Random(seed)
    train, held = split_by_prompt(pairs, EVAL_FRACTION, seed=seed)
    noisy, flipped = flip(train, share, rng)
    decisive = np.array([not p.tie for p in noisy])
    cfg = dataclasses.replace(config, seed=seed, split_seed=seed)
    started = time.perf_counter()
    result = train_head(cfg, noisy, eval_pairs=held)
    in_sample = scores(evidence(result.model, noisy), flipped, decisive, rng)
    in_sample["held_out_accuracy"] = round(float(result.metrics.get("eval_accuracy") or 0.0), 4)
    row = {"seed": seed, "train_pairs": len(noisy), "flipped": int(flipped.sum()), "in_sample": in_sample}
    if not crossfit:
        return {**row, "seconds": round(time.perf_counter() - started, 1)}
    halves = [[], []]
    for i, p in enumerate(noisy):
        halves[int(noise_half(p.prompt_id, seed))].append(i)
    z = np.zeros((2, len(noisy)))
    for side in (0, 1):
        fit = train_head(cfg, [noisy[i] for i in halves[1 - side]], eval_pairs=held)
        z[:, halves[side]] = evidence(fit.model, [noisy[i] for i in halves[side]])
    return {**row, "crossfit": scores(z, flipped, decisive, rng), "seconds": round(time.perf_counter() - started, 1)}


def noise_half(prompt_id: str, seed: int) -> int:
    """A prompt's half for cross-fitting (every pair of a prompt on one side)."""
    import hashlib

    return hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()[0] % 2


def summarize(rows: list[dict]) -> dict:
    out = {}
    for way in ("in_sample", "crossfit"):
        for key in ("precision_at_k", "recall_at_k", "random_precision_at_k", "rule_precision", "rule_recall", "auc",
                    "margin_precision_at_k", "margin_auc"):
            values = [r[way][key] for r in rows if r[way][key] is not None]
            if values:
                out[f"{way}_{key}"] = {"mean": round(statistics.mean(values), 4),
                                       "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", type=Path, default=DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    parser.add_argument("--format", default="hh")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--noise", type=float, default=0.1, help="share of training labels flipped")
    parser.add_argument("--limit", type=int, help="use only the first N pairs (quick runs)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache-dir", type=Path, default=REPO / "var" / "benchmarks" / "cache")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "noise_audit-hh-harmless.json")
    args = parser.parse_args()
    if not args.path.exists():
        sys.exit(f"{args.path} not found (the shared data folder, see ../shared/data/README.md)")
    import torch

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    pairs = [to_pair_example(p) for p in load_pairs(args.format, args.path)][: args.limit]
    config = TrainConfig(cache_dir=str(args.cache_dir))  # the product's head-mode defaults
    rows = [run_seed(pairs, seed=s, share=args.noise, config=config) for s in args.seeds]
    print(f"{'seed':>4} {'way':>10} {'P@k':>6} {'R@k':>6} {'random':>7} {'rule n':>7} {'rule P':>7} {'rule R':>7} {'AUC':>6}")
    for r in rows:
        for way in ("in_sample", "crossfit"):
            s = r[way]
            print(f"{r['seed']:>4} {way:>10} {s['precision_at_k']:>6} {s['recall_at_k']:>6} {s['random_precision_at_k']:>7} "
                  f"{s['rule_flags']:>7} {str(s['rule_precision']):>7} {s['rule_recall']:>7} {s['auc']:>6}")
    summary = summarize(rows)
    result = {"benchmark": "noise_audit", "path": str(args.path.relative_to(DATA) if args.path.is_relative_to(DATA) else args.path),
              "noise": args.noise, "flip_z": noise.FLIP_Z, "config": "TrainConfig() head-mode defaults (MiniLM)",
              "python": platform.python_version(), "cpus": os.cpu_count(), "threads": args.threads,
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "command": "python benchmarks/noise_audit.py " + " ".join(sys.argv[1:]), "seeds": rows, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
