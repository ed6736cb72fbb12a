#!/usr/bin/env bash
# The GPU path, checked in one run on a machine with a GPU (issue 22): the primitive's and
# neighbourhood attention's benchmarks on CUDA, each writing JSON under results/bench/, then
# the Triton kernels' tests natively. Nothing is downloaded: it needs the PyTorch (>= 2.11),
# Triton (>= 3.6) and pytest already installed, and runs from any directory.
#
#   scripts/gpu_check.sh                 # on a GPU: about 5 minutes on one H200
#   QUICK=1 scripts/gpu_check.sh         # smoke test, seconds, on the CPU (tests/ runs this)
#
# Environment: PYTHON (default python3), OUT_DIR (default results/bench; in quick mode a
# temporary folder, so that a smoke test never overwrites measured results), STEPS (default all
# six, run in this order: "pytest_train_cuda bench_aggregate bench_neighborhood
# bench_host_reads pytest_triton notebook_ch1"; a
# later call with other steps adds its steps to the same gpu-check JSON, so the benchmarks can
# run on a quiet GPU and the tests beside other work, as scripts/gpu_session.sh does).
# notebook_ch1 executes chapter 1 on the device (in quick mode, MIXLIB_QUICK=1) into
# OUT_DIR/01_one_formula<suffix>.ipynb; it reads Imagenette's test images (MIXLIB_DATA's
# imagenette-160/val.tar.gz). Where nbclient and ipykernel are not installed (the GPU machine's
# image), it installs the wheels that scripts/gpu_wheels.sh put in .whl/ into a temporary
# folder first.
# Without a GPU the script runs in quick mode whatever QUICK says. Every step runs under a
# timeout, a failed step does not stop the others, and the exit status is 1 if any failed;
# gpu-check.json in OUT_DIR records each step's exit status and seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# the notebook's kernel runs in OUT_DIR: a relative data folder would point elsewhere there
[[ -n "${MIXLIB_DATA:-}" ]] && export MIXLIB_DATA="$(realpath "$MIXLIB_DATA")"
PYTHON="${PYTHON:-python3}"

if "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  DEVICE=cuda
else
  DEVICE=cpu
  QUICK=1
fi
QUICK="${QUICK:-0}"
if [[ "$QUICK" == 1 ]]; then
  OUT_DIR="${OUT_DIR:-$(mktemp -d)}"
  SUFFIX="-quick-$DEVICE"
  BENCH_FLAGS=(--quick)
  # the interpreter runs Triton on the CPU: only the fast tests, to prove the plumbing
  PYTEST_FLAGS=(-k "too_small or backend_needs_cuda")
else
  OUT_DIR="${OUT_DIR:-results/bench}"
  SUFFIX="-$DEVICE"
  BENCH_FLAGS=()
  PYTEST_FLAGS=()
fi
mkdir -p "$OUT_DIR"

steps=()  # "name rc seconds" per step
failed=0
STEPS="${STEPS:-pytest_triton pytest_train_cuda bench_aggregate bench_neighborhood bench_host_reads notebook_ch1}"
step() {  # step NAME TIMEOUT_S COMMAND...: run it, record its exit status and time
  local name="$1" limit="$2" start rc=0
  shift 2
  [[ " $STEPS " == *" $name "* ]] || return 0
  echo "== $name ($DEVICE, quick=$QUICK)"
  start=$(date +%s)
  timeout -k 5 "$limit" "$@" || rc=$?
  steps+=("$name $rc $(( $(date +%s) - start ))")
  if [[ "$rc" != 0 ]]; then
    echo "!! $name failed (exit status $rc)" >&2
    failed=1
  fi
}

# the training loop's host syncs on a GPU (skipped on the CPU; needs MIXLIB_DATA's CIFAR-10)
step pytest_train_cuda 120 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_train.py \
  -k wait_for_the_gpu
step bench_aggregate 240 "$PYTHON" -m mixlib.bench aggregate --device "$DEVICE" "${BENCH_FLAGS[@]}" \
  --json "$OUT_DIR/aggregate$SUFFIX.json"
step bench_neighborhood 180 "$PYTHON" -m mixlib.bench neighborhood --device "$DEVICE" "${BENCH_FLAGS[@]}" \
  --json "$OUT_DIR/neighborhood$SUFFIX.json"
# the training loop's throughput with five host reads a step (before ab5181b) and now (issue 19)
step bench_host_reads 150 "$PYTHON" -m mixlib.bench host-reads --device "$DEVICE" "${BENCH_FLAGS[@]}" \
  --json "$OUT_DIR/host-reads$SUFFIX.json"
# the Triton tests after the benchmarks: a slow first compile cannot cost a benchmark its time
step pytest_triton 300 "$PYTHON" -m pytest -q -p no:cacheprovider tests/test_triton.py "${PYTEST_FLAGS[@]}"

if [[ " $STEPS " == *" notebook_ch1 "* ]]; then
  if ! "$PYTHON" -c 'import nbclient, ipykernel' 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
    site="$(mktemp -d)"  # the Jupyter stack beside the image's packages, not over them
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" \
      .whl/*.whl && export PYTHONPATH="$PYTHONPATH:$site" PATH="$site/bin:$PATH"  # jupyter-execute
  fi
  cp notebooks/01_one_formula.ipynb "$OUT_DIR/01_one_formula$SUFFIX.ipynb"
fi
# the kernel runs in OUT_DIR and finds mixlib through PYTHONPATH; a cell's error fails the step
MIXLIB_QUICK="$QUICK" step notebook_ch1 240 "$PYTHON" -m jupyter execute --inplace --timeout=200 \
  "$OUT_DIR/01_one_formula$SUFFIX.ipynb"

"$PYTHON" - "$OUT_DIR/gpu-check$SUFFIX.json" "$DEVICE" "$QUICK" "${steps[@]}" <<'EOF'
import json, os, sys
import torch
from mixlib.provenance import code_commit, environment
path, device, quick, *steps = sys.argv[1:]
# the machine (the GPU's name) and the code of the last call: a lent H100 and H200 differ
record = {"device": device, "quick": quick == "1", "environment": environment(torch.device(device)),
          "commit": code_commit(), "steps": {}}
if os.path.exists(path):  # an earlier call's steps (STEPS chose some): keep them
    record["steps"] = json.load(open(path)).get("steps", {})
record["steps"].update({name: {"exit_status": int(rc), "seconds": int(s)}
                        for name, rc, s in (step.split() for step in steps)})
open(path, "w").write(json.dumps(record, indent=1) + "\n")
print(f"wrote {path}")
EOF
exit "$failed"
