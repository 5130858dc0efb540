"""The machine's state for a benchmark's results file: the ``uptime`` line, whose
load average says how quiet the machine was (every figure is read against it)."""

from __future__ import annotations

import os
import subprocess


def uptime() -> str:
    """``uptime``'s line; the bare load averages where the command is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
