"""Tiny random-weight backbones for the reward-model tests (seconds, no downloads).

The tokenizer is all-MiniLM-L6-v2's, copied from its package; the model is a
2-layer, 32-wide BERT built from a config with a fixed seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(2)

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% endif %}"
)


def build_tiny_backbone(path: Path, *, seed: int = 0, chat_template: str | None = None) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from models_svc.ml.presets import default_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(default_backbone_path(), local_files_only=True)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def other_tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert-other"), seed=1)


@pytest.fixture(scope="session")
def tiny_chat_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_backbone(tmp_path_factory.mktemp("tiny-bert-chat"), chat_template=TINY_CHAT_TEMPLATE)


def build_tiny_decoder(path: Path, *, seed: int = 0, chat_template: str | None = TINY_CHAT_TEMPLATE) -> Path:
    """A 2-layer, 32-wide random Llama (decoder-only, causal attention) with
    all-MiniLM-L6-v2's tokenizer stripped of its pad token, as decoder tokenizers
    often are."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    from models_svc.ml.presets import default_backbone_path

    tokenizer = AutoTokenizer.from_pretrained(default_backbone_path(), local_files_only=True)
    tokenizer.chat_template = chat_template
    tokenizer.eos_token = "[SEP]"
    tokenizer.pad_token = None
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=None,
    )
    torch.manual_seed(seed)
    LlamaModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("tiny-llama"))
