from __future__ import annotations

import gzip
import itertools
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model

from annotate.models import ImportJob


def db_snapshot() -> dict[str, list]:
    """Every row's primary key and field values for the data tables (import jobs
    excluded: a rejected import records its own failure)."""
    snap: dict[str, list] = {}
    models = list(apps.get_app_config("annotate").get_models()) + list(apps.get_app_config("rubrics").get_models())
    models.append(get_user_model())
    for model in models:
        if model is ImportJob:
            continue
        snap[model._meta.label] = list(model.objects.order_by("pk").values())
    return snap


def head_lines(src: Path, dest: Path, n: int) -> list[bytes]:
    """Copy the first n lines of a (possibly gzipped) file into dest, uncompressed."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rb") as fh:
        lines = list(itertools.islice(fh, n))
    dest.write_bytes(b"".join(lines))
    return lines
