#!/usr/bin/env bash
# The CUDA checks in one command, for a machine with an NVIDIA GPU; a few minutes on an H200.
# Runs from source (PYTHONPATH=src, added to any PYTHONPATH given) with .venv/bin/python when the
# quick start made one, else the machine's own python3 with its torch and pytest:
#   bash scripts/gpu-check.sh                 # on the GPU machine
#   PYTHON=.venv/bin/python DEVICE=cpu OVERRIDES=batch=2 BENCH_ARGS="--quick --no-startup" \
#     bash scripts/gpu-check.sh   # a dry run here
# 1. the CUDA tests (tests/test_cuda.py), which cannot skip once a GPU is seen;
# 2. `mlpcli run` of every config in configs/ on $DEVICE, summarised from its JSON line;
# 3. the notebook network's table on $DEVICE, `compare` of the CPU and $DEVICE in three dtypes,
#    `bench` eager and with --cuda-graph, a network too big for $DEVICE refused, and `env`;
# 4. runs over ranks (docs/distributed.md): torchrun with a rank per GPU it finds (NCCL; one GPU
#    is world size 1 through the same code path), every mode compared with one process, bench
#    over the ranks, and `run --nproc`; RANKS overrides the count (2 for a CPU dry run, Gloo);
# 5. benchmarks/bench.py: mlpcli against raw PyTorch loops, CUDA graphs and torch.compile.
# Without a visible CUDA device it stops after the first check (exit 1); past it, every step
# runs even when one before it failed, and the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# The quick start's environment when there is one (torch, typer, rich, pyyaml), else python3.
if [ -x .venv/bin/python ]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
DEVICE=${DEVICE:-cuda}
failed=()

step() {
  echo "== $*"
  "$@" || failed+=("$*")
}

summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
cat >"$summary" <<'PY'
import json, sys
for line in sys.stdin:
    r, t = json.loads(line), json.loads(line)["timing_ms"]
    print(f"{r['name']}: {r['device']} {r['config']['dtype']} output[0][:4]={r['output'][0][:4]} "
          f"build {t['build']:.1f} ms, forward {t['forward']:.2f} ms")
PY
run_summarised() {
  # shellcheck disable=SC2086  # OVERRIDES is a list of KEY=VALUE words
  "$PYTHON" -m mlpcli run "$1" "device=$DEVICE" ${OVERRIDES:-} --format json | "$PYTHON" "$summary"
}

echo "== the machine"
# The one check that stops the script: without a visible CUDA device every later step would
# fail for that one reason (a dry run sets DEVICE=cpu).
if ! "$PYTHON" -c '
import sys, torch, typer
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| typer", typer.__version__)
if sys.argv[1] != "cpu":
    if not torch.cuda.is_available():
        sys.exit("no CUDA device visible: this script is for a GPU machine (DEVICE=cpu: a dry run)")
    print("GPU:", torch.cuda.get_device_name(0))
' "$DEVICE"; then
  echo "FAILED: stopped after the first check"
  exit 1
fi
cuda_tests() {
  if ! "$PYTHON" -m pytest --version >/dev/null 2>&1; then
    echo "no pytest beside $PYTHON: install the dev tools (the README's test command) for the CUDA tests"
    return 1
  fi
  "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py
}
step cuda_tests
for config in configs/*.yaml; do
  step run_summarised "$config"
done
step "$PYTHON" -m mlpcli run configs/two_layer.yaml "device=$DEVICE"
for dtype in float32 float16 bfloat16; do
  step "$PYTHON" -m mlpcli compare configs/deep_relu.yaml "dtype=$dtype" --devices "cpu,$DEVICE"
done
step "$PYTHON" -m mlpcli bench configs/deep_relu.yaml "device=$DEVICE" --repeat 50
if [[ $DEVICE != cpu ]]; then
  step "$PYTHON" -m mlpcli bench configs/deep_relu.yaml "device=$DEVICE" --repeat 50 --cuda-graph
fi
refused() {  # 160 GB of weights: exit 3 with both numbers, before anything is allocated
  local code=0
  time "$PYTHON" -m mlpcli run "layers=[200000, 200000]" "device=$DEVICE" rng=device || code=$?
  ((code == 3))
}
step refused
step "$PYTHON" -m mlpcli env
RANKS=${RANKS:-$("$PYTHON" -c 'import torch; print(max(1, torch.cuda.device_count()))')}
WIDE="layers=[4096,4096,4096,4096,4096,4096,4096,4096,4096]"
torchrun_ranks() {  # OVERRIDES last: a dry run's batch=2 wins
  # shellcheck disable=SC2086  # OVERRIDES is a list of KEY=VALUE words
  "$PYTHON" -m torch.distributed.run --standalone --nproc-per-node "$RANKS" -m mlpcli "$@" \
    ${OVERRIDES:-}
}
for mode in data pipeline tensor; do
  step torchrun_ranks compare "$WIDE" batch=512 init=kaiming "device=$DEVICE" "parallel=$mode"
  step torchrun_ranks bench "$WIDE" batch=4096 dtype=bfloat16 "device=$DEVICE" "parallel=$mode" \
    --repeat 20
done
step "$PYTHON" -m mlpcli run --nproc "$RANKS" "$WIDE" batch=64 "device=$DEVICE" parallel=tensor \
  --format json --field parallel --field output.0.0
step "$PYTHON" -m mlpcli shapes "layers=[65536,65536,65536,65536,65536,65536,65536,65536,65536]" \
  dtype=bfloat16 batch=16384 parallel=tensor --nproc 8 --device-memory 141GB
# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
step "$PYTHON" benchmarks/bench.py ${BENCH_ARGS:---quick --no-startup}

if ((${#failed[@]})); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all GPU checks passed"
