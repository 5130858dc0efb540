"""Reward-model training and scoring throughput, with model FLOPs utilisation (MFU).

Runs the product's own finetune loop (``train_finetune``: length-grouped batches,
AdamW, clipping, autocast per ``--precision``) on real pairs, after a short warm-up
run in the same process so that kernel selection and allocator growth are not
timed. Then scores responses through the backbone as the scoring API does
(``Backbone.embed_ids``, longest first). Reports, for each phase:

- pairs/s (training) or responses/s (scoring), and real tokens/s;
- model TFLOP/s from ``models_svc.ml.flops`` (6·N·T + 12·L·d·T² per trained sequence,
  2·N·T + 4·L·d·T² per scored one; padding not counted);
- MFU against the chip's datasheet peak (known GPUs, bf16) or ``--peak-tflops``,
  and utilisation against a large matrix product measured here (``gemm_tflops``).

    .venv/bin/python benchmarks/rm_throughput.py --threads 2            # this CPU: MiniLM, HH harmless
    python3 benchmarks/rm_throughput.py --device cuda --batch-size 64     # a GPU: bf16 autocast

Pairs come from ``--path`` read through the product's importer (default: HH
harmless in ../shared/data when present, else synthetic pairs); they are cycled
when more are asked for than the file has (throughput does not care). Prints a
table, writes JSON (``--json``, default ``benchmarks/results/rm_throughput-…``),
and ends with ONE line that is a JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from benchmarks._labels import PARSERS, load_pairs, to_pair_example  # noqa: E402
from benchmarks.rm_accuracy import _slug  # noqa: E402
from models_svc.ml.config import TrainConfig, resolve_device, resolve_precision  # noqa: E402
from models_svc.ml.data import PairExample  # noqa: E402
from models_svc.ml.flops import datasheet_peak_tflops, forward_flops, shape_of, training_flops  # noqa: E402
from models_svc.ml.train import train_finetune  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"


def synthetic_pairs(n: int) -> list[PairExample]:
    return [
        PairExample(
            f"s{i}", [{"role": "user", "content": f"Question {i}: " + "why is the sky blue? " * (1 + i % 12)}],
            "Because of Rayleigh scattering. " * (2 + i % 20), "No idea. " * (1 + i % 7),
        )
        for i in range(n)
    ]


def cycled(pairs: list[PairExample], n: int) -> list[PairExample]:
    return list(itertools.islice(itertools.cycle(pairs), n))


def gemm_tflops(device: str, precision: str, n: int) -> float:
    """TFLOP/s of an n×n×n matrix product in the run's precision (the mean of 5 after 2 warm-ups)."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    _sync(device)
    return 5 * 2 * n**3 / (time.perf_counter() - start) / 1e12


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", help="local checkpoint directory, .gguf file, or 'smollm2' (default: MiniLM)")
    parser.add_argument("--format", choices=sorted(PARSERS), default="hh", help="import format of --path")
    parser.add_argument("--path", type=Path, help=f"labels file (default: {DEFAULT_DATA.name} if present, else synthetic)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    parser.add_argument("--batch-size", type=int, help="pairs per step (default: 32 on cuda, 8 on cpu)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--train-pairs", type=int, help="timed training pairs (default: 8192 on cuda, 96 on cpu)")
    parser.add_argument("--score-texts", type=int, help="timed scored responses (default: 8192 on cuda, 256 on cpu)")
    parser.add_argument("--embed-batch-size", type=int, help="texts per scoring batch (default: 256 on cuda, 32 on cpu)")
    parser.add_argument("--peak-tflops", type=float, help="the chip's peak for MFU (default: datasheet, known GPUs)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    wall = time.perf_counter()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    gpu = device.startswith("cuda")
    batch = args.batch_size or (32 if gpu else 8)
    n_train = args.train_pairs or (8192 if gpu else 96)
    n_score = args.score_texts or (8192 if gpu else 256)
    embed_batch = args.embed_batch_size or (256 if gpu else 32)
    path = args.path or (DEFAULT_DATA if DEFAULT_DATA.exists() else None)
    source = [to_pair_example(p) for p in load_pairs(args.format, path)] if path else synthetic_pairs(512)
    if not source:
        sys.exit(f"{path}: no pairwise labels")
    config = TrainConfig(
        backbone=args.backbone, mode="finetune", device=device, precision=precision, batch_size=batch,
        max_length=args.max_length, epochs=1, eval_every=10**9, embed_batch_size=embed_batch,
    )

    # Warm-up: a few steps in this process (CUDA context, kernel choice, allocator), not timed.
    train_finetune(config, cycled(source, 4 * batch), eval_pairs=[])
    pairs = cycled(source, n_train)
    result = train_finetune(config, pairs, eval_pairs=[])
    train_pps = result.curves[-1]["pairs_per_s"]  # training steps only (no tokenising, no evaluation)
    train_s = n_train / train_pps
    backbone = result.model.backbone
    text = backbone.text
    seqs = text.encode([text.format(p.conversation, p.chosen_text) for p in pairs])
    seqs += text.encode([text.format(p.conversation, p.rejected_text) for p in pairs])
    shape = shape_of(backbone.model)
    train_tflops = training_flops(map(len, seqs), shape) / train_s / 1e12

    distinct = list(dict.fromkeys(text.format(p.conversation, r) for p in source for r in (p.chosen_text, p.rejected_text)))
    score_ids = text.encode(list(itertools.islice(itertools.cycle(distinct), n_score)))
    backbone.embed_ids(score_ids[:embed_batch], embed_batch)  # warm-up
    start = time.perf_counter()
    backbone.embed_ids(score_ids, embed_batch)  # copies each batch to the host: synchronised
    score_s = time.perf_counter() - start
    score_tflops = forward_flops(map(len, score_ids), shape) / score_s / 1e12

    device_name = torch.cuda.get_device_name() if gpu else (platform.processor() or platform.machine())
    peak = args.peak_tflops or (datasheet_peak_tflops(device_name, precision) if gpu else None)
    gemm = gemm_tflops(device, precision, 8192 if gpu else 1024)
    row = {
        "backbone": args.backbone or "all-MiniLM-L6-v2 (bundled)",
        "device": device,
        "device_name": device_name,
        "precision": precision,
        "threads": args.threads if not gpu else None,
        "data": str(path) if path else "synthetic",
        "non_embedding_params": shape.params,
        "layers": shape.layers,
        "width": shape.width,
        "max_length": args.max_length,
        "batch_size": batch,
        "train_pairs": n_train,
        "train_s": train_s,
        "train_pairs_per_s": train_pps,
        "train_tokens_per_s": sum(map(len, seqs)) / train_s,
        "train_model_tflops": train_tflops,
        "score_texts": n_score,
        "score_s": score_s,
        "score_texts_per_s": n_score / score_s,
        "score_tokens_per_s": sum(map(len, score_ids)) / score_s,
        "score_model_tflops": score_tflops,
        "mean_tokens": sum(map(len, seqs)) / len(seqs),
        "peak_tflops": peak,
        "train_mfu": train_tflops / peak if peak else None,
        "score_mfu": score_tflops / peak if peak else None,
        "gemm_tflops": gemm,
        "train_vs_gemm": train_tflops / gemm,
        "score_vs_gemm": score_tflops / gemm,
        "gpu_max_allocated_mb": torch.cuda.max_memory_allocated() / 2**20 if gpu else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "wall_s": time.perf_counter() - wall,
    }
    width = max(map(len, row))
    for key, value in row.items():
        shown = f"{value:.4g}" if isinstance(value, float) else ("–" if value is None else str(value))
        print(f"{key:<{width}}  {shown}")
    out = args.json or RESULTS / f"rm_throughput-{_slug(Path(args.backbone or 'minilm').name)}-{_slug(device)}-{precision}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=2))
    print(f"wrote {out}")
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
