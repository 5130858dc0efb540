"""Fine-tune checkpoints: written every ``checkpoint_every`` optimizer steps
under ``work_dir/checkpoints``, one kept, resumed only by the run they belong to
(same config and the same training pairs: a fingerprint is checked)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from .backbone import PooledRewardModel
from .config import TrainConfig
from .data import PairExample

_RUNTIME_FIELDS = ("device", "cache_dir", "eval_every", "checkpoint_every", "embed_batch_size")


def fingerprint(cfg: TrainConfig, pairs: Sequence[PairExample]) -> str:
    """What a checkpoint must match to be resumed: the training config (minus fields
    that do not change the result) and the exact training pairs."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _RUNTIME_FIELDS}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for p in pairs:
        row = [str(p.prompt_id), p.conversation, p.chosen_text, p.rejected_text, p.tie, p.strength]
        digest.update(json.dumps(row, sort_keys=True).encode())
    return digest.hexdigest()


def latest_checkpoint(root: Path | None) -> Path | None:
    if root is None or not root.is_dir():
        return None
    done = sorted(root.glob("step-*"))
    return done[-1] if done else None


def save_checkpoint(
    root: Path,
    step: int,
    model: PooledRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    curves: list[dict[str, Any]],
    fingerprint: str,
) -> None:
    """Write ``step-NNNNNNNN`` via a temporary directory and a rename (a crash mid-write
    leaves only a ``.tmp-`` directory, never a half checkpoint), then drop older ones."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    state = {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "curves": curves,
        "fingerprint": fingerprint,
    }
    torch.save(state, tmp / "trainer.pt")
    os.rename(tmp, final)
    for old in root.iterdir():
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    path: Path,
    model: PooledRewardModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
    device: str,
) -> tuple[int, list[dict[str, Any]]]:
    state = torch.load(path / "trainer.pt", weights_only=True, map_location="cpu")
    if state["fingerprint"] != fingerprint:
        raise ValueError(f"checkpoint {path} was made with another config or other data; use a fresh work_dir")
    load_model(model, str(path / "model.safetensors"), device=device)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), list(state["curves"])
