"""The training config: help text, validation, resolved round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from models_svc.ml.config import TrainConfig, default_backbone_path


def test_every_field_has_help_text():
    assert all(text.strip() for text in TrainConfig.help().values())
    assert set(TrainConfig.help()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_to_dict_is_resolved_and_round_trips():
    data = TrainConfig(mode="head").to_dict()
    assert data["backbone"] == str(default_backbone_path().resolve()) and Path(data["backbone"]).is_absolute()
    assert data["device"] in ("cpu", "cuda")
    assert (data["batch_size"], data["lr"], data["epochs"], data["ensemble_size"]) == (64, 1e-2, 30, 4)
    assert TrainConfig.from_dict(data).to_dict() == data


def test_finetune_resolves_its_own_defaults_and_a_single_model():
    data = TrainConfig(mode="finetune", ensemble_size=5).to_dict()
    assert (data["batch_size"], data["lr"], data["epochs"], data["ensemble_size"]) == (8, 2e-5, 1, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "lora"}, {"ties": "ignore"}, {"mode": "finetune", "objective": "gated"}, {"margins": (0.1, 0.2)}, {"ensemble_size": 0}],
)
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="lrr"):
        TrainConfig.from_dict({"lrr": 0.1})
