"""Training loops: ``train_head`` (frozen backbone, seconds) and ``train_finetune``.

Both take plain examples, report ``progress_cb(fraction, metrics)`` (at most about
once a second, plus at every evaluation), raise :class:`Cancelled` as soon as
``should_stop_cb()`` is true, and return a :class:`TrainResult` holding the model,
the curves (loss and eval accuracy per eval step) and final eval metrics. Nothing
is written as an artifact until the caller runs ``result.save(path)``.

When no eval set is passed, the training examples are split by prompt with
``config.eval_fraction`` and ``config.split_seed`` (see ``data.split_by_prompt``).

Where each part lives: ``train_head`` (head mode), ``finetune`` (fine-tune mode),
``checkpoints`` (the fine-tune's resumable checkpoints) and ``train_common`` (the
result, cancellation, progress, pair labels and metrics both modes share). This
module is the entry point callers import.
"""

from __future__ import annotations

from .finetune import train_finetune
from .train_common import Cancelled, TrainResult
from .train_head import train_head

__all__ = ["Cancelled", "TrainResult", "train_finetune", "train_head"]
