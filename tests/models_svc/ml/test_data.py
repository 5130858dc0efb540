"""Formatting, truncation, collate, batching and the prompt split."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from models_svc.ml.data import (
    FormattedText,
    PairExample,
    TextEncoder,
    collate,
    folds_by_prompt,
    length_grouped_batches,
    split_by_prompt,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_backbone: Path):
    return AutoTokenizer.from_pretrained(tiny_backbone, local_files_only=True)


def test_plain_layout_without_chat_template(tokenizer):
    enc = TextEncoder(tokenizer, 64)
    conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Help?"}]
    assert not enc.uses_chat_template
    assert enc.format(conversation, "Sure.") == FormattedText("User: Hi\n\nAssistant: Hello\n\nUser: Help?\n\nAssistant: ", "Sure.")


def test_left_truncation_drops_the_prompt_start_and_keeps_the_response(tokenizer):
    enc = TextEncoder(tokenizer, 16)
    conversation = [{"role": "user", "content": "alpha " + "filler " * 50 + "omega"}]
    ids = enc.encode([enc.format(conversation, "the answer stays intact")])[0]
    text = tokenizer.decode(ids)
    assert len(ids) == 16
    assert text.startswith("[CLS]") and text.endswith("the answer stays intact [SEP]")
    assert "alpha" not in text and "omega" in text


def test_a_response_longer_than_max_length_is_cut_from_the_right(tokenizer):
    enc = TextEncoder(tokenizer, 8)
    ids = enc.encode([enc.format([{"role": "user", "content": "question"}], "one two three four five six seven eight nine")])[0]
    assert tokenizer.decode(ids) == "[CLS] one two three four five six [SEP]"


def test_chat_template_is_used_when_the_tokenizer_has_one(tiny_chat_backbone: Path):
    tok = AutoTokenizer.from_pretrained(tiny_chat_backbone, local_files_only=True)
    enc = TextEncoder(tok, 64)
    formatted = enc.format([{"role": "user", "content": "hi there"}], "hello")
    assert enc.uses_chat_template
    assert formatted == FormattedText("<|user|> hi there\n<|assistant|> ", "hello\n")
    ids = enc.encode([formatted])[0]
    assert tok.cls_token_id not in ids  # the template, not the tokenizer, decides the markers
    assert tok.decode(ids).startswith("< | user | > hi there")


def test_chat_template_truncation_still_keeps_the_response(tiny_chat_backbone: Path):
    tok = AutoTokenizer.from_pretrained(tiny_chat_backbone, local_files_only=True)
    enc = TextEncoder(tok, 12)
    ids = enc.encode([enc.format([{"role": "user", "content": "alpha " + "filler " * 40}], "kept answer")])[0]
    assert len(ids) == 12
    assert tok.decode(ids).endswith("assistant | > kept answer")


def test_collate_pads_to_the_longest_in_the_batch():
    batch = collate([[5, 6, 7], [8]], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_length_grouped_batches_cover_every_index_once_and_are_deterministic():
    rng = random.Random(0)
    lengths = [rng.randint(1, 500) for _ in range(103)]
    batches = length_grouped_batches(lengths, batch_size=8, seed=3, bucket_batches=4)
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert batches == length_grouped_batches(lengths, batch_size=8, seed=3, bucket_batches=4)
    assert batches != length_grouped_batches(lengths, batch_size=8, seed=4, bucket_batches=4)
    for b in batches:  # sorted within their bucket: non-increasing lengths inside a batch
        assert [lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True)


def _pairs(n_prompts: int) -> list[PairExample]:
    return [
        PairExample(f"prompt-{p}", [{"role": "user", "content": str(p)}], f"good {k}", f"bad {k}")
        for p in range(n_prompts)
        for k in range(3)
    ]


def test_split_by_prompt_never_puts_a_prompt_on_both_sides():
    train, held = split_by_prompt(_pairs(300), 0.2, seed=0)
    assert {p.prompt_id for p in train}.isdisjoint({p.prompt_id for p in held})
    assert 0.12 < len(held) / 900 < 0.28


def test_split_by_prompt_is_fixed_regardless_of_order_and_growth():
    pairs = _pairs(200)
    _, held = split_by_prompt(pairs, 0.2, seed=7)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    _, held_shuffled = split_by_prompt(shuffled + _pairs(260)[600:], 0.2, seed=7)
    assert {p.prompt_id for p in held} == {p.prompt_id for p in held_shuffled if int(p.prompt_id.split("-")[1]) < 200}
    _, other_seed = split_by_prompt(pairs, 0.2, seed=8)
    assert {p.prompt_id for p in held} != {p.prompt_id for p in other_seed}


def test_a_signed_strength_is_refused():
    with pytest.raises(ValueError, match="magnitude"):
        PairExample("p", [], "a", "b", strength=-2)


def test_folds_by_prompt_hold_out_each_prompt_exactly_once_and_balance_prompt_counts():
    pairs = _pairs(101)
    folds = folds_by_prompt(pairs, 5, seed=3)
    held_prompts = [{p.prompt_id for p in held} for _, held in folds]
    for (train, held), prompts in zip(folds, held_prompts, strict=True):
        assert {p.prompt_id for p in train}.isdisjoint(prompts)
        assert len(train) + len(held) == len(pairs)
    assert set().union(*held_prompts) == {p.prompt_id for p in pairs}
    assert sum(len(s) for s in held_prompts) == 101  # no prompt in two folds
    assert sorted(len(s) for s in held_prompts) == [20, 20, 20, 20, 21]
    reordered = folds_by_prompt(pairs[::-1], 5, seed=3)  # the folds depend on the prompts, not on file order
    assert [{p.prompt_id for p in held} for _, held in reordered] == held_prompts
    assert held_prompts != [{p.prompt_id for p in held} for _, held in folds_by_prompt(pairs, 5, seed=4)]


def test_folds_by_prompt_refuse_fewer_prompts_than_folds():
    with pytest.raises(ValueError, match="at least 3 distinct prompts"):
        folds_by_prompt(_pairs(2), 3, seed=0)
