"""Backbone loading (local files only), pooling, and the on-disk embedding cache.

Encoders are used the sentence-transformers way: the pooled embedding of a text is
the mean of the last hidden states over its attention mask,

    e = Σ_t m_t h_t / Σ_t m_t.

A decoder-only model (Llama, GPT-2, SmolLM2…) attends causally, so only its last
real token has seen the whole text: it is pooled by that token's hidden state,
e = h_T with T the last position whose mask is 1 (left or right padding alike).
That is the default (``pooling="auto"``); ``TrainConfig.pooling`` can force either
for any backbone.

With ``layers = k > 1`` the pooled states are the average of the last k layers'
hidden states, h̄_t = (1/k) Σ_{l=L−k+1..L} h_t^(l), instead of the last layer's
alone. A frozen encoder's last layer is shaped by its own training objective
(sentence similarity for MiniLM); the layers below it keep more of what a reward
head needs: on HH harmless, a head on MiniLM's last 4 layers averaged and
z-scored scores 0.641 against 0.625 for the last layer's (mean of five prompt
splits, docs/reward-model-accuracy.md). Decoders such as Llama report their last
state after the final norm and the others before it; the SmolLM2 presets keep
``layers=1``, the recipe they were measured with. Pooling and layers are saved with the
run's config and are part of the embedding cache key, so a head means the same
thing in training, caching and scoring.

A backbone is a checkpoint directory (``AutoModel``), or a GGUF file (or a
directory holding exactly one ``.gguf`` and no ``config.json``): transformers
de-quantises it to fp32 with ``gguf_file=`` (needs the ``gguf`` package).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .config import resolve_precision
from .data import FormattedText, TextEncoder, collate, sorted_batches

_IDENTITY_MEMO: dict[tuple[Any, ...], str] = {}


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """e = Σ_t m_t h_t / Σ_t m_t over the sequence axis (padding excluded)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """e = h_T, T the last position whose mask is 1 (right or left padding alike)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    last = (mask.to(torch.long) * positions).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def is_decoder_only(config: Any) -> bool:
    """A causal LM architecture that has no masked-LM (bidirectional) form: Llama,
    GPT-2, Qwen2… (BERT and RoBERTa also have a causal LM head, but are encoders)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return False
    kind = getattr(config, "model_type", "")
    return kind in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and kind not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def gguf_checkpoint(path: str | Path) -> Path | None:
    """The GGUF file a backbone path names: the path itself when it is a ``.gguf``
    file, the one ``.gguf`` of a directory without ``config.json``; None for an
    ordinary checkpoint directory."""
    root = Path(path)
    if root.is_file():
        if root.suffix.lower() != ".gguf":
            raise FileNotFoundError(f"backbone {root} is a file but not a .gguf checkpoint")
        return root
    if not root.is_dir() or (root / "config.json").exists():
        return None
    found = sorted(root.glob("*.gguf"))
    if len(found) > 1:
        raise FileNotFoundError(f"backbone {root} holds {len(found)} .gguf files; name one of them")
    return found[0] if found else None


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast (matrix products in bf16, reductions and norms in fp32) or plain fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def backbone_identity(path: str | Path) -> str:
    """sha256 over the relative names and contents of every file in the checkpoint
    directory: two copies of the same checkpoint share cached embeddings, a changed
    weight or tokenizer file never does. A GGUF checkpoint (tokenizer and weights in
    one file) is identified by that file's content alone. Memoised per process on
    (name, size, mtime) so a 100 MB checkpoint is hashed once."""
    root = Path(path)
    gguf = gguf_checkpoint(root)
    if gguf is not None:
        root, files, prefix = gguf.parent, [gguf], b"gguf\0"
    else:
        files, prefix = sorted(p for p in root.rglob("*") if p.is_file()), b""
    stamp = tuple((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    memo_key = (str(root.resolve()), stamp)
    if memo_key not in _IDENTITY_MEMO:
        digest = hashlib.sha256(prefix)
        for p in files:
            if gguf is None:
                digest.update(str(p.relative_to(root)).encode() + b"\0")
            with p.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        _IDENTITY_MEMO[memo_key] = digest.hexdigest()
    return _IDENTITY_MEMO[memo_key]


class Backbone:
    """Tokenizer + ``AutoModel`` from local files, with its text encoder and pooling."""

    def __init__(
        self, tokenizer: Any, model: nn.Module, *, path: Path, identity: str, max_length: int, device: str,
        pooling: str = "auto", precision: str = "auto", layers: int = 1,
    ):
        _ensure_pad_token(tokenizer, model)
        self.tokenizer = tokenizer
        self.model = model
        self.path = path
        self.identity = identity
        self.device = torch.device(device)
        # What the numbers are computed in ("auto" resolved here): part of the cache key.
        self.precision = resolve_precision(precision, device)
        self.text = TextEncoder(tokenizer, max_length)
        self.pad_id = _pad_id(tokenizer)
        if pooling not in ("auto", "mean", "last"):
            raise ValueError(f"pooling={pooling!r}: expected auto, mean or last")
        if pooling == "auto":
            pooling = "last" if is_decoder_only(model.config) else "mean"
        self.pooling = pooling
        if layers < 1:
            raise ValueError(f"layers={layers}: expected ≥ 1 (how many of the last hidden layers are averaged)")
        # Capped at the model's depth, so "the last 4" of a 2-layer test model means both.
        depth = getattr(model.config, "num_hidden_layers", None)
        self.layers = min(layers, int(depth)) if isinstance(depth, int) and depth > 0 else layers
        self.forward_calls = 0  # batches run through the transformer (tests count cache misses with it)

    @classmethod
    def load(
        cls, path: str | Path, *, max_length: int, device: str, pooling: str = "auto", precision: str = "auto",
        layers: int = 1,
    ) -> Backbone:
        """Load from a local checkpoint directory or GGUF file; never touches a hub."""
        from transformers import AutoModel, AutoTokenizer

        root = Path(path).expanduser().resolve()
        if not root.exists():
            raise FileNotFoundError(f"backbone {root} is not a local checkpoint directory (hub ids are not allowed)")
        gguf = gguf_checkpoint(root)
        if gguf is not None:
            if importlib.util.find_spec("gguf") is None:
                raise ImportError(f"loading {gguf.name} needs the gguf package: pip install gguf (the [smollm2] extra)")
            where = {"gguf_file": gguf.name, "local_files_only": True}
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **where)
            model = AutoModel.from_pretrained(gguf.parent, dtype=torch.float32, **where)
            root = gguf
        else:
            tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
            # fp32 whatever the checkpoint stores (most recent ones are bf16): the fine-tune's
            # AdamW keeps fp32 master weights, and ``precision`` decides the arithmetic.
            model = AutoModel.from_pretrained(root, local_files_only=True, dtype=torch.float32)
        model.to(device).eval()
        return cls(
            tokenizer, model, path=root, identity=backbone_identity(root), max_length=max_length, device=device,
            pooling=pooling, precision=precision, layers=layers,
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def pooled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled embeddings of a collated batch: mean pooling, or the last real
        token for a decoder-only model, of the last ``layers`` hidden states
        averaged (gradients flow when enabled)."""
        self.forward_calls += 1
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with autocast(self.device, self.precision):
            if self.layers == 1:
                hidden = self.model(**batch).last_hidden_state
            else:
                # hidden_states = (embeddings, layer 1, …, layer L): the last k are layers L−k+1..L.
                states = self.model(**batch, output_hidden_states=True).hidden_states[-self.layers :]
                hidden = torch.stack([h.float() for h in states]).mean(dim=0)
        pool = last_token_pool if self.pooling == "last" else mean_pool
        return pool(hidden.float(), batch["attention_mask"])

    @torch.inference_mode()
    def embed_ids(
        self, sequences: Sequence[Sequence[int]], batch_size: int, on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """float32 [N, dim] embeddings, batched longest-first to minimise padding.
        ``on_batch(n_done)`` runs after each batch (progress and cancellation)."""
        out = np.zeros((len(sequences), self.dim), dtype=np.float32)
        was_training = self.model.training
        self.model.eval()
        done = 0
        try:
            for idx in sorted_batches([len(s) for s in sequences], batch_size):
                out[idx] = self.pooled(collate([sequences[i] for i in idx], self.pad_id)).cpu().numpy()
                done += len(idx)
                if on_batch is not None:
                    on_batch(done)
        finally:
            self.model.train(was_training)
        return out


def _ensure_pad_token(tokenizer: Any, model: nn.Module) -> None:
    """Decoder tokenizers often have no pad token: use EOS (or UNK) as one. Padded
    positions are masked out of attention and pooling, so which token it is does
    not change an embedding."""
    if tokenizer.pad_token is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is not None:
            tokenizer.pad_token = fallback
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def _pad_id(tokenizer: Any) -> int:
    # Decoder tokenizers often have no pad token; any id works under the attention mask.
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


class EmbeddingCache:
    """Pooled embeddings on disk, keyed by sha256(backbone identity, precision,
    max_length, pooling when not mean, layers when not 1, formatted text).

    Layout: ``root/<identity prefix>/<shard>.safetensors``, each shard holding an
    ``emb`` matrix and its keys in the header metadata. Shards are written to a
    temporary name and renamed, so readers (other runs, other processes) only ever
    see complete shards; a shard is never modified, so reuse across runs is safe.
    """

    def __init__(self, root: str | Path, backbone: Backbone):
        self.namespace = f"{backbone.identity}\0{backbone.precision}\0{backbone.text.max_length}"
        if backbone.pooling != "mean":  # mean-pooled keys stay as they were before last-token pooling existed
            self.namespace += f"\0{backbone.pooling}"
        if backbone.layers != 1:  # likewise for keys of the last layer alone
            self.namespace += f"\0layers={backbone.layers}"
        self.dir = Path(root) / backbone.identity[:32]
        self.dir.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path, int]] = {}
        self._seen: set[Path] = set()
        self._scan()

    def key(self, text: FormattedText) -> str:
        payload = json.dumps([self.namespace, text.prompt, text.response], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _scan(self) -> None:
        for shard in sorted(self.dir.glob("*.safetensors")):
            if shard in self._seen:
                continue
            with safe_open(str(shard), framework="np") as fh:
                keys = json.loads(fh.metadata()["keys"])
            self._index.update({k: (shard, row) for row, k in enumerate(keys)})
            self._seen.add(shard)

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (rescanning once for shards others wrote)."""
        if any(k not in self._index for k in keys):
            self._scan()
        by_shard: dict[Path, list[tuple[str, int]]] = {}
        for k in keys:
            if k in self._index:
                shard, row = self._index[k]
                by_shard.setdefault(shard, []).append((k, row))
        found: dict[str, np.ndarray] = {}
        for shard, items in by_shard.items():
            with safe_open(str(shard), framework="np") as fh:
                emb = fh.get_tensor("emb")
            found.update({k: emb[row] for k, row in items})
        return found

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Write one new shard atomically."""
        if not keys:
            return
        name = f"{uuid.uuid4().hex}.safetensors"
        tmp = self.dir / f".tmp-{name}"
        emb = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
        save_file({"emb": emb}, str(tmp), metadata={"keys": json.dumps(list(keys))})
        os.replace(tmp, self.dir / name)
        self._index.update({k: (self.dir / name, row) for row, k in enumerate(keys)})
        self._seen.add(self.dir / name)


class Embedder:
    """Embeds formatted texts through a frozen backbone; with a cache, only texts
    whose key is not cached yet reach the backbone."""

    def __init__(self, backbone: Backbone, cache: EmbeddingCache | None, batch_size: int, flush_every: int = 1024):
        self.backbone = backbone
        self.cache = cache
        self.batch_size = batch_size
        self.flush_every = flush_every

    def embed(self, texts: Sequence[FormattedText], on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """float32 [N, dim]. Each distinct text is embedded once (a prompt shared by
        many responses, say); ``on_progress(done, todo)`` counts texts computed."""
        unique: dict[FormattedText, int] = {}
        for t in texts:
            unique.setdefault(t, len(unique))
        distinct = list(unique)
        vectors = np.zeros((len(distinct), self.backbone.dim), dtype=np.float32)
        if self.cache is None:
            todo = list(range(len(distinct)))
            keys: list[str] = []
        else:
            keys = [self.cache.key(t) for t in distinct]
            cached = self.cache.get(keys)
            todo = [i for i, k in enumerate(keys) if k not in cached]
            for i, k in enumerate(keys):
                if k in cached:
                    vectors[i] = cached[k]
        # Embedded in chunks, each written to the cache at once, so that a crash or a
        # cancel mid-way keeps the work already done.
        for start, chunk in _chunks(todo, self.flush_every):
            ids = self.backbone.text.encode([distinct[i] for i in chunk])
            vectors[chunk] = self.backbone.embed_ids(ids, self.batch_size, _progress(on_progress, len(todo), start))
            if self.cache is not None:
                self.cache.put([keys[i] for i in chunk], vectors[chunk])
        return vectors[np.array([unique[t] for t in texts], dtype=np.int64)]


def _chunks(items: list[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    for start in range(0, len(items), size):
        yield start, items[start : start + size]


def _progress(cb: Callable[[int, int], None] | None, total: int, offset: int = 0) -> Callable[[int], None] | None:
    if cb is None:
        return None
    return lambda done: cb(offset + done, total)


class PooledRewardModel(nn.Module):
    """Finetune mode: backbone → pooling (mean, or last token) → linear head, r(x, y) = wᵀe + b."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.encoder = backbone.model
        self.head = nn.Linear(backbone.dim, 1)
        self._backbone = backbone

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(self._backbone.pooled(batch)).squeeze(-1)

    @torch.inference_mode()
    def rewards(self, sequences: Sequence[Sequence[int]], batch_size: int) -> torch.Tensor:
        """[N] rewards of token-id sequences in eval mode (no dropout), longest first."""
        was_training = self.training
        self.eval()
        out = torch.zeros(len(sequences))
        try:
            for idx in sorted_batches([len(s) for s in sequences], batch_size):
                out[idx] = self(collate([sequences[i] for i in idx], self._backbone.pad_id)).float().cpu()
        finally:
            self.train(was_training)
        return out
