#!/usr/bin/env bash
# The comparison's sweep on one CUDA GPU: the protocol's CIFAR-10 runs (mixlib.protocol), several
# at once, into results/sweep-gpu/ (a separate hardware column beside the CPU's results/sweep/).
# Needs only the repository, the CIFAR-10 tarballs and a preinstalled PyTorch (2.11 or newer):
# nothing is downloaded, and the images are decoded once from the JPEG tarballs on the machine.
#
#   MIXLIB_DATA=data scripts/sweep_gpu.sh     # data/cifar10-jpg/ holds the tarballs
#   QUICK=1 scripts/sweep_gpu.sh              # seconds on a CPU: two runs on 400 images (CI)
#
# WORKERS runs share the GPU (default 8, each with 2 CPU threads for its data); a finished run
# is skipped and a stopped one resumes, as with the CPU sweep. SWEEP_END (optional, seconds since
# the epoch): start only the runs estimated to end by then (the sweep's --hours, counted from
# when it plans them). The summary of what finished is written to $RESULTS/summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
results=${RESULTS:-results/sweep-gpu}
weights=${WEIGHTS:-results/weights-gpu}
work=${WORK:-${TMPDIR:-/tmp}/mixlib-sweep-gpu}
workers=${WORKERS:-8}
sweep_args=()
if [[ ${QUICK:-0} == 1 ]]; then
  export MIXLIB_QUICK=1
  # a folder of its own: quick checkpoints in the real one would stop its runs' resumes
  work=${WORK:-${TMPDIR:-/tmp}/mixlib-sweep-gpu-quick}
  results=${RESULTS:-$work/results}
  weights=$work/weights
  workers=2
  sweep_args+=(--only pooling_cifar-s0-e15 window_attention_cifar-s0-e15)  # the two cheapest on a CPU
else
  # every CIFAR-10 model: the sweep plans their runs at the E this column's own pilot decided
  models=$("$python" -c "from mixlib import protocol; print(' '.join(dict.fromkeys(r.model for r in protocol.RUNS if r.data == 'cifar10')))")
  sweep_args+=(--only $models)
  "$python" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device: use QUICK=1 on a CPU'"
fi
"$python" - <<'PY'
import torch
print(f"torch {torch.__version__}, " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"))
PY
# decode the tarballs once before the workers start, so they do not all decode at the same time
"$python" -c "from mixlib import data; [data.load('cifar10', s) for s in ('train', 'test')]"
started=$(date +%s)
if [[ -n ${SWEEP_END:-} ]]; then
  (( SWEEP_END > started )) || { echo "no time left before SWEEP_END"; exit 0; }
  sweep_args+=(--hours "$(awk "BEGIN {print ($SWEEP_END - $started) / 3600}")")
fi
"$python" -m mixlib.sweep run "${sweep_args[@]}" --results "$results" --work "$work" \
  --weights "$weights" --workers "$workers" --threads 2
"$python" - "$results" "$(( $(date +%s) - started ))" <<'PY' | tee "$results/summary.txt"
import sys
from mixlib import results
folder, seconds = sys.argv[1], int(sys.argv[2])
runs = results.load_runs(folder)
print(f"{len(runs)} runs in {folder}, this call {seconds / 60:.1f} min")
# one summary per data set and budget (the pilot's 2E runs beside the E ones): summarize
# refuses runs of one model at two budgets
for data, epochs in sorted({(r["dataset"], r["epochs"]) for r in runs}):
    chosen = [r for r in runs if (r["dataset"], r["epochs"]) == (data, epochs)]
    for row in results.summarize(chosen):
        print(f"{row['model']:40s} e{row['epochs']:<3d} seeds {row['seeds']}  "
              f"{100 * row['mean_acc']:.2f}%")
PY
