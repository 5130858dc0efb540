"""Scoring with a stored reward model: the version's artifact loaded once per
process, then rewards for (conversation, response) items. Used by the scoring API
and the worker's rescoring; torch is imported only when a model is loaded."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from annotate.models import Project

from ..models import ModelVersion

_LOADED: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def load_model(version: ModelVersion):
    """The version's RewardModel, loaded once per process (the last two are kept)."""
    from ..ml.infer import RewardModel

    with _LOAD_LOCK:
        model = _LOADED.get(version.artifact_path)
        if model is None:
            model = RewardModel.load(version.artifact_path, cache_dir=Path(settings.MODEL_DIR) / "embeddings")
            while len(_LOADED) >= 2:
                _LOADED.pop(next(iter(_LOADED)))
            _LOADED[version.artifact_path] = model
        return model


def rewards_score(*, project: Project, items: list[dict[str, Any]], version: ModelVersion | None = None) -> dict:
    """Score ``items`` (each ``{"conversation": […], "responses": […]}``) with the
    active version (or ``version``)."""
    version = version or ModelVersion.objects.filter(project=project, state=ModelVersion.State.ACTIVE).first()
    if version is None:
        raise LookupError("this project has no active reward model yet; train one and promote it")
    model = load_model(version)
    flat = [(item["conversation"], text) for item in items for text in item["responses"]]
    scores = model.score_items(flat).rows() if flat else []
    out, at = [], 0
    for item in items:
        out.append(scores[at:at + len(item["responses"])])
        at += len(item["responses"])
    return {"model_version": version.number, "criteria": model.criteria, "results": out}
