from __future__ import annotations

import gzip
import itertools
import socket
import subprocess
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


def chart_specs(html: str, specs_id: str) -> list[dict]:
    """The chart specs a page embeds for preflab/charts.js (models_svc.plots)."""
    import json
    import re

    found = re.search(rf'<script id="{specs_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found, f"no chart specs {specs_id!r} on the page"
    return json.loads(found.group(1))


def card_agreement(card: str) -> dict[str, tuple]:
    """The dataset card's agreement table: statistic → (value, items, annotators)."""
    section = card.split("## Agreement", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        if line.startswith("| `"):
            name, value, items, raters = (cell.strip() for cell in line.strip("|").split("|")[:4])
            rows[name.strip("`")] = (None if value == "n/a" else float(value), int(items), int(raters))
    return rows


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_stop(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a process the test started, then SIGKILL it if it is still alive after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
