"""The README's manage.py commands work as written on a fresh clone (issue #17 point 3).

A copy of the checkout (the files git would clone, plus uncommitted ones) is set up
the way the README says, by ``bash scripts/dev.sh`` (stopped once it serves), and
every ``.venv/bin/python manage.py …`` line of the README's code blocks then runs in
a new, empty environment (``env -i``): no DEBUG, no SECRET_KEY, nothing exported.
Placeholders (PROJECT_SLUG, PATH…) get the demo project's values; optional
``[…]`` parts are left out."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
PREFIX = ".venv/bin/python manage.py"
PLACEHOLDERS = {
    "PROJECT_SLUG": "demo",
    "PATH": "dataio/demo_data/demo.jsonl",
    "FORMAT": "jsonl",
    "DIR": "var/readme-export",
}


def readme_commands() -> list[str]:
    text = README.read_text()
    commands = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split())
            if PREFIX in line:
                commands.append(line)
    return commands


def concrete(synopsis: str) -> list[str]:
    command = synopsis
    while re.search(r"\[[^\[\]]*\]", command):
        command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
    tokens = [PLACEHOLDERS.get(token, token) for token in shlex.split(command)]
    leftover = [token for token in tokens if re.fullmatch(r"[A-Z][A-Z_]+", token)]
    assert not leftover, f"give the README placeholder(s) {leftover} a value in PLACEHOLDERS"
    return tokens


def _clean_env(home: Path, **extra: str) -> dict[str, str]:
    # what `env -i PATH=… HOME=…` leaves: a new shell with nothing exported
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), **extra}


def _copy_checkout(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _borrow_venv(clone: Path) -> None:
    """A .venv for the copy that sees this interpreter's installed packages, marked
    installed for the copy's pyproject so scripts/_venv.sh does not reinstall."""
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    (site / "_borrowed.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    celery = venv / "bin" / "celery"
    celery.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom celery.__main__ import main\nsys.exit(main())\n")
    celery.chmod(0o755)
    stamp = hashlib.sha1((clone / "pyproject.toml").read_bytes()).hexdigest() + "-test"
    (venv / ".preflab-installed").write_text(stamp + "\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to copy")
    clone = tmp_path_factory.mktemp("clone")
    home = tmp_path_factory.mktemp("home")
    _copy_checkout(clone)
    assert not (clone / ".env").exists() and not (clone / "var").exists()
    _borrow_venv(clone)
    port = _free_port()
    log = clone / "dev.log"
    with log.open("w") as out:
        dev = subprocess.Popen(
            ["bash", "scripts/dev.sh"], cwd=clone, env=_clean_env(home, PORT=str(port)),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while not _serving(port):
            assert dev.poll() is None, f"scripts/dev.sh stopped:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"scripts/dev.sh did not serve in 240 s:\n{log.read_text()[-3000:]}"
            time.sleep(1)
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGTERM)
            try:
                dev.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
    return clone, home


def test_the_readme_documents_manage_py_commands_without_environment_prefixes():
    commands = readme_commands()
    assert len(commands) >= 3, commands
    prefixed = [c for c in commands if not c.startswith(PREFIX)]
    assert not prefixed, f"README commands that need something exported first: {prefixed}"


def test_dev_sh_writes_a_private_ignored_env_with_a_generated_secret(fresh_clone):
    clone, _ = fresh_clone
    env_file = clone / ".env"
    lines = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line and not line.startswith("#"))
    assert lines["DEBUG"] == "1" and len(lines["SECRET_KEY"]) >= 50
    assert env_file.stat().st_mode & 0o077 == 0
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0


@pytest.mark.parametrize("synopsis", [c for c in readme_commands() if c.startswith(PREFIX)])
def test_readme_command_works_as_written_in_a_new_shell(fresh_clone, synopsis):
    clone, home = fresh_clone
    tokens = concrete(synopsis)
    result = subprocess.run(
        ["bash", "-c", shlex.join(tokens)], cwd=clone, env=_clean_env(home), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{shlex.join(tokens)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    if "export_data" in tokens:
        out = clone / PLACEHOLDERS["DIR"]
        assert (out / "README.md").is_file() and len(list(out.iterdir())) >= 2
    # the dev set-up's database, not a new empty one
    assert not (clone / "preflab.sqlite3").exists() and (clone / "var" / "preflab.sqlite3").is_file()
