#!/usr/bin/env bash
# The GPU checks of the reward-model service, in one call on a lent GPU machine.
#
# Here first:   .venv/bin/python benchmarks/gpu_prepare.py     (builds .gpu/, ~48 MiB)
# Then, with the device tool:   run  command="bash benchmarks/gpu_check.sh"  carry=[".gpu"]  timeout_s=480
#
# That machine's own python3 has torch and transformers but not Django, so the
# GPU-marked tests run with --noconftest (they need none of the fixtures) and the
# benchmarks read HH harmless from .gpu/. Everything lands in $OUT: the test log,
# the throughput and MFU JSON (batch 32 and 128, bf16) and the accuracy JSON of a
# finetune and a head run on the GPU. Every step has its own time limit, so one
# that hangs still leaves the others' results. GPU_CHECK_SMALL=1 shrinks every
# size, to try the script on a CPU (GPU_CHECK_DEVICE=cpu).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/preflab-gpu-check}"
mkdir -p "$OUT"
DEVICE="${GPU_CHECK_DEVICE:-cuda}"
PY="${GPU_CHECK_PYTHON:-python3}"
DATA=.gpu/harmless-base-test.jsonl.gz
[ -d .gpu/minilm ] && [ -f "$DATA" ] || { echo ".gpu/ is missing: run benchmarks/gpu_prepare.py here and carry .gpu" >&2; exit 2; }

if ! "$PY" -c 'import pydantic' 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/preflab-site .gpu/wheels/*.whl || exit 2
  export PYTHONPATH="/tmp/preflab-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export PREFLAB_GPU_BACKBONE="$PWD/.gpu/minilm"

if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then
  tp=(--train-pairs 16 --score-texts 32); acc=(--limit 64); batches=(8); epochs=1
else
  tp=(); acc=(); batches=(32 128); epochs=2
fi

rc=0
step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, remember a failure
  local name=$1 limit=$2; shift 2
  echo "== $name"
  timeout "$limit" "$@" 2>&1 | grep -v '^Loading weights' | tee "$OUT/$name.log"
  local status=${PIPESTATUS[0]}
  [ "$status" = 0 ] || { echo "== $name failed ($status)"; rc=1; }
}

{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  "$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())'
} 2>&1 | tee "$OUT/machine.txt"

step pytest-gpu 180 "$PY" -m pytest tests/models_svc/ml -m gpu --noconftest -p no:cacheprovider -p no:django -q -rA -s
for b in "${batches[@]}"; do
  step "throughput-b$b" 150 "$PY" benchmarks/rm_throughput.py --device "$DEVICE" --backbone .gpu/minilm --path "$DATA" \
    --batch-size "$b" "${tp[@]}" --json "$OUT/rm_throughput-minilm-$DEVICE-b$b.json"
done
step accuracy-finetune 200 "$PY" benchmarks/rm_accuracy.py --format hh --path "$DATA" --backbone .gpu/minilm \
  --device "$DEVICE" --mode finetune --epochs "$epochs" --batch-size 32 --seed 0 "${acc[@]}" \
  --json "$OUT/rm_accuracy-hh-minilm-finetune-$DEVICE.json"
step accuracy-head 120 "$PY" benchmarks/rm_accuracy.py --format hh --path "$DATA" --backbone .gpu/minilm \
  --device "$DEVICE" --mode head --seed 0 "${acc[@]}" --json "$OUT/rm_accuracy-hh-minilm-head-$DEVICE.json"
exit $rc
