"""A project's reward-model and selection settings: read them (created on first
use) and update them, validated against the backbone presets this server can run."""

from __future__ import annotations

from pathlib import Path

from django.db import transaction

from annotate.models import Project

from ..ml.config import TrainConfig
from ..ml.presets import PRESETS
from ..models import RewardSettings


def settings_for(project: Project) -> RewardSettings:
    obj, _ = RewardSettings.objects.get_or_create(project=project)
    return obj


@transaction.atomic
def reward_settings_update(*, project: Project, mode: str, objective: str, refresh_after_labels: int | str,
                           auto_promote: bool, preset: str | None = None, backbone: str | None = None,
                           may_set_paths: bool = False,
                           promote_min_eval_pairs: int | str | None = None) -> RewardSettings:
    """``preset`` and ``backbone`` (None: unchanged; backbone "": none) must be
    usable here. A backbone is a path on the server, so only site admins
    (``may_set_paths``) may set one; anyone may clear it."""
    try:
        refresh = int(refresh_after_labels)
    except (TypeError, ValueError):
        raise ValueError("refresh after labels must be a whole number") from None
    if refresh < 0:
        raise ValueError("refresh after labels must be 0 (off) or more")
    min_pairs = None
    if promote_min_eval_pairs is not None:
        try:
            min_pairs = int(promote_min_eval_pairs)
        except (TypeError, ValueError):
            raise ValueError("minimum held-out comparisons must be a whole number") from None
        if min_pairs < 1:
            raise ValueError("minimum held-out comparisons must be 1 or more")
    s = RewardSettings.objects.select_for_update().get(pk=settings_for(project).pk)
    preset = s.preset if preset is None else preset
    if preset not in PRESETS:
        raise ValueError(f"unknown backbone preset {preset!r}; choose one of {', '.join(PRESETS)}")
    missing = PRESETS[preset].missing()
    if missing:
        raise ValueError(f"backbone {PRESETS[preset].label} is not installed on this server: {missing}")
    if backbone:
        backbone = backbone.strip()
        if not may_set_paths:
            raise ValueError("only site admins can point the backbone at a path on the server")
        if not Path(backbone).expanduser().exists():
            raise ValueError(f"backbone path {backbone} does not exist on this server")
    try:  # the default mode and objective must go with the preset (a stack trains heads only)
        TrainConfig(mode=mode, objective=objective, **PRESETS[preset].for_mode(mode))
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    s.mode, s.objective, s.refresh_after_labels, s.auto_promote = mode, objective, refresh, auto_promote
    s.preset = preset
    if min_pairs is not None:
        s.promote_min_eval_pairs = min_pairs
    if backbone is not None:
        s.backbone = backbone
    s.save()
    return s


@transaction.atomic
def selection_settings_update(*, project: Project, strategy: str, exploration_rate: float | str) -> Project:
    """The project's selection strategy and ε; the next rescoring uses them."""
    if strategy not in Project.Strategy.values:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(Project.Strategy.values)}")
    try:
        epsilon = float(exploration_rate)
    except (TypeError, ValueError):
        raise ValueError("exploration rate must be a number from 0 to 1") from None
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError("exploration rate must be a number from 0 to 1")
    Project.objects.filter(pk=project.pk).update(selection_strategy=strategy, exploration_rate=epsilon)
    project.refresh_from_db()
    return project
