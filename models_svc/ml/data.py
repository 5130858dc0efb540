"""Plain records from the Django side, text formatting with left truncation,
dynamic-padding collate, length-grouped batching and the prompt-stratified split.

The Django side turns database rows into :class:`PairExample` and
:class:`RatedExample`; nothing here knows about models or querysets.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

import numpy as np
import torch

Message = dict[str, str]  # {"role": "user" | "assistant" | "system", "content": str}

_PLAIN_ROLES = {"user": "User", "assistant": "Assistant", "system": "System"}


@dataclass(frozen=True)
class PairExample:
    """One pairwise label. For a tie, chosen/rejected are just the two responses (A, B).

    ``criteria`` holds per-criterion choices in this example's frame: ``"A"`` is
    ``chosen_text``, ``"B"`` is ``rejected_text``; values are A, B, tie or na.
    ``strength`` is the magnitude 1..3 (None when not asked; ties carry 0 or None).
    """

    prompt_id: str
    conversation: list[Message]
    chosen_text: str
    rejected_text: str
    tie: bool = False
    strength: int | None = None
    criteria: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A signed strength (−3…+3 in the judgment) must arrive as a magnitude: the
        # direction is already in which text is chosen.
        if self.strength is not None and not 0 <= self.strength <= 3:
            raise ValueError(f"strength must be a magnitude 0..3, got {self.strength}")


@dataclass(frozen=True)
class RatedExample:
    """One absolute label: per-criterion scores, None where missing or N/A."""

    prompt_id: str
    conversation: list[Message]
    response_text: str
    scores: dict[str, float | None]


class FormattedText(NamedTuple):
    """A model input as two strings: the prompt part (cut from the left when too
    long) and the response part (cut from the right only if it alone is too long)."""

    prompt: str
    response: str


class _Tokenizer(Protocol):
    chat_template: Any

    def __call__(self, text: list[str], add_special_tokens: bool = ...) -> Any: ...

    def apply_chat_template(self, conversation: list[Message], **kwargs: Any) -> Any: ...


class TextEncoder:
    """Formats conversation + response for one tokenizer and turns it into token ids.

    With a chat template the conversation and the response (as an assistant turn)
    are rendered by the template; the prompt part is the longest common prefix of
    that rendering and the rendering of the conversation alone with a generation
    prompt, which is robust to templates that add markup after the last turn.
    Without one, a plain ``User: …\\n\\nAssistant: …`` layout is used.
    """

    def __init__(self, tokenizer: _Tokenizer, max_length: int):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.uses_chat_template = bool(getattr(tokenizer, "chat_template", None))
        if self.uses_chat_template:
            # A template renders its own BOS/turn markers: adding specials would double them.
            self._prefix: list[int] = []
            self._suffix: list[int] = []
        else:
            self._prefix, self._suffix = _special_affixes(tokenizer)

    def format(self, conversation: Sequence[Message], response: str) -> FormattedText:
        if not self.uses_chat_template:
            return FormattedText(_plain_prompt(conversation), response)
        messages = [*conversation, {"role": "assistant", "content": response}]
        full = self.tokenizer.apply_chat_template(messages, tokenize=False)
        prompt = self.tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True)
        cut = len(os.path.commonprefix([full, prompt]))
        return FormattedText(full[:cut], full[cut:])

    def format_prompt(self, conversation: Sequence[Message]) -> FormattedText:
        """The conversation alone, ready for an answer (the gate's input)."""
        if not self.uses_chat_template:
            return FormattedText(_plain_prompt(conversation), "")
        return FormattedText(
            self.tokenizer.apply_chat_template(list(conversation), tokenize=False, add_generation_prompt=True), ""
        )

    @staticmethod
    def format_response(response: str) -> FormattedText:
        """The response alone, without its conversation (a head-mode feature)."""
        return FormattedText("", response)

    def encode(self, texts: Sequence[FormattedText]) -> list[list[int]]:
        """Token ids of at most ``max_length``: the prompt is cut from the left so the
        response survives; the response is cut from the right only if it alone does
        not fit."""
        if not texts:
            return []
        prompts = self._tokenize([t.prompt for t in texts])
        responses = self._tokenize([t.response for t in texts])
        budget = max(self.max_length - len(self._prefix) - len(self._suffix), 1)
        out = []
        for p, r in zip(prompts, responses, strict=True):
            r = r[:budget]
            keep = budget - len(r)
            p = p[len(p) - keep :] if keep > 0 else []
            out.append(self._prefix + p + r + self._suffix)
        return out

    def _tokenize(self, strings: list[str]) -> list[list[int]]:
        # verbose=False: texts longer than the model maximum are expected here, we cut them ourselves.
        return self.tokenizer(strings, add_special_tokens=False, verbose=False)["input_ids"]


def _plain_prompt(conversation: Sequence[Message]) -> str:
    turns = [f"{_PLAIN_ROLES.get(m['role'], m['role'].title())}: {m['content']}" for m in conversation]
    return "\n\n".join([*turns, "Assistant: "])


def _special_affixes(tokenizer: _Tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a single sequence
    (``[CLS]`` … ``[SEP]`` for BERT, ``<s>`` … for Llama), found by encoding a word
    with and without them; transformers 5 has no public API for ids we cut ourselves."""
    bare = tokenizer(["hello"], add_special_tokens=False)["input_ids"][0]
    full = tokenizer(["hello"], add_special_tokens=True)["input_ids"][0]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return list(full[:start]), list(full[start + len(bare) :])
    raise ValueError("cannot locate the special tokens this tokenizer adds")


def collate(sequences: Sequence[Sequence[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence in the batch (dynamic padding)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int, bucket_batches: int = 50) -> list[list[int]]:
    """Shuffled batches of indices whose lengths are similar (little padding).

    Indices are shuffled with ``seed``, cut into buckets of ``bucket_batches``
    batches, sorted by length inside each bucket, cut into batches, and the batch
    order is shuffled again: randomness across the epoch, similar lengths within a
    batch. Deterministic for a given seed.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    lengths_arr = np.asarray(lengths)
    bucket = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(-lengths_arr[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches over indices sorted by length, longest first (inference: least padding)."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]


class _HasPromptId(Protocol):
    prompt_id: Any


T = TypeVar("T", bound=_HasPromptId)


def prompt_in_eval(prompt_id: Any, eval_fraction: float, seed: int) -> bool:
    """Whether a prompt belongs to the eval side: sha256(seed, prompt id) read as a
    uniform number in [0, 1) and compared with ``eval_fraction``. Depends on nothing
    else, so a prompt never changes side as a project grows."""
    digest = hashlib.sha256(f"{seed}:{prompt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < eval_fraction


def split_by_prompt(examples: Iterable[T], eval_fraction: float, seed: int) -> tuple[list[T], list[T]]:
    """(train, eval) with every prompt wholly on one side; fixed for a given seed."""
    train: list[T] = []
    held: list[T] = []
    for ex in examples:
        (held if prompt_in_eval(ex.prompt_id, eval_fraction, seed) else train).append(ex)
    return train, held


def folds_by_prompt(examples: Sequence[T], k: int, seed: int | Sequence[int]) -> list[tuple[list[T], list[T]]]:
    """K (train, held-out) splits for prompt cross-validation. The distinct prompts
    are shuffled with ``seed`` and dealt round-robin into k folds, so every prompt is
    held out exactly once, never sits on both sides of a split, and the folds' prompt
    counts differ by one at most (a hash split like :func:`split_by_prompt` lets them
    drift, which small files cannot afford)."""
    if k < 2:
        raise ValueError(f"k={k}: cross-validation needs at least 2 folds")
    prompts = sorted({ex.prompt_id for ex in examples}, key=str)
    if len(prompts) < k:
        raise ValueError(f"{k} folds need at least {k} distinct prompts, got {len(prompts)}")
    order = np.random.default_rng(seed).permutation(len(prompts))
    fold = {prompts[i]: n % k for n, i in enumerate(order)}
    return [
        ([ex for ex in examples if fold[ex.prompt_id] != f], [ex for ex in examples if fold[ex.prompt_id] == f])
        for f in range(k)
    ]
