#!/usr/bin/env bash
# The CUDA checks in one command, for a machine with an NVIDIA GPU; about a minute on an H200.
# Runs from source (PYTHONPATH=src) with the machine's own Python, torch and pytest:
#   bash scripts/gpu-check.sh                 # on the GPU machine
#   PYTHON=.venv/bin/python DEVICE=cpu OVERRIDES=batch=2 BENCH_ARGS=--quick \
#     bash scripts/gpu-check.sh   # a dry run here
# 1. the CUDA tests (tests/test_cuda.py), which cannot skip once a GPU is seen;
# 2. `mlpcli run` of every config in configs/ on $DEVICE, summarised from its JSON line;
# 3. the notebook network's table on $DEVICE, `compare` of the CPU and $DEVICE, and `env`;
# 4. benchmarks/bench.py: mlpcli against raw PyTorch loops, and start-up times.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}

"$PYTHON" - "$DEVICE" <<'PY'
import sys, torch, typer
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| typer", typer.__version__)
if sys.argv[1] != "cpu":
    assert torch.cuda.is_available(), "no CUDA device visible: this script is for a GPU machine"
    print("GPU:", torch.cuda.get_device_name(0))
PY
"$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
cat >"$summary" <<'PY'
import json, sys
for line in sys.stdin:
    r, t = json.loads(line), json.loads(line)["timing_ms"]
    print(f"{r['name']}: {r['device']} {r['config']['dtype']} output[0][:4]={r['output'][0][:4]} "
          f"build {t['build']:.1f} ms, forward {t['forward']:.2f} ms")
PY
for config in configs/*.yaml; do
  # shellcheck disable=SC2086  # OVERRIDES is a list of KEY=VALUE words
  "$PYTHON" -m mlpcli run "$config" "device=$DEVICE" ${OVERRIDES:-} --format json | "$PYTHON" "$summary"
done
"$PYTHON" -m mlpcli run configs/two_layer.yaml "device=$DEVICE"
"$PYTHON" -m mlpcli compare configs/deep_relu.yaml --devices "cpu,$DEVICE"
"$PYTHON" -m mlpcli env
# The benchmark ladder, GPU rung included (--quick: a minute or two on an H200): figures for
# docs/performance.md.
"$PYTHON" benchmarks/bench.py ${BENCH_ARGS:---quick}
