#!/usr/bin/env bash
# One lease of a GPU machine, used once: the benchmarks of scripts/gpu_check.sh on a quiet GPU,
# then the comparison's GPU sweep (scripts/sweep_gpu.sh) with the Triton tests beside it, until a
# deadline; then everything made is packed into a few files under PACK (the device tool brings
# back at most 8 files of 16 MiB each).
#
#   MIXLIB_DATA=.data PACK=$OUT DEADLINE_S=540 scripts/gpu_session.sh   # on the GPU machine
#   QUICK=1 PACK=/tmp/pack scripts/gpu_session.sh                        # seconds on a CPU (tests/)
#
# Carried to the GPU machine (git-ignored): .data/cifar10-jpg (a copy of the shared data) and
# .whl/ (scripts/gpu_wheels.sh: Jupyter's execution stack, which the machine's image lacks, for
# chapter 1 executed on the GPU).
#
# DEADLINE_S counts from the start: the sweep is stopped then (SIGTERM: each training stops at
# its next step, writes its checkpoint and exits; runs not finished are lost with the machine).
# Unpack here with `for f in PACK/*.tar; do tar -xf $f; done` in the repository's root
# (weights.tar.part-* first joined with cat).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
deadline=${DEADLINE_S:-540}
pack=${PACK:?PACK names the folder that receives the packed results}
mkdir -p "$pack"
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
log() { echo "$(date +%T) +$(( $(date +%s) - started ))s $*"; }

log "benchmarks on a quiet GPU"
STEPS="bench_aggregate bench_neighborhood" OUT_DIR=${BENCH_OUT:-} bash scripts/gpu_check.sh \
  > "$pack/gpu-check.log" 2>&1
log "benchmarks done (exit $?)"

log "sweep starts"
setsid bash scripts/sweep_gpu.sh > "$pack/sweep.log" 2>&1 &
sweep=$!
log "triton tests and chapter 1 beside the sweep"
STEPS="pytest_triton pytest_train_cuda notebook_ch1" OUT_DIR=${BENCH_OUT:-} bash scripts/gpu_check.sh \
  >> "$pack/gpu-check.log" 2>&1
log "triton tests and chapter 1 done (exit $?)"

while kill -0 "$sweep" 2>/dev/null && (( $(date +%s) - started < deadline )); do sleep 5; done
if kill -0 "$sweep" 2>/dev/null; then
  log "deadline: stopping the sweep"
  kill -TERM -- -"$sweep" 2>/dev/null
  for _ in $(seq 20); do kill -0 "$sweep" 2>/dev/null || break; sleep 1; done
  kill -KILL -- -"$sweep" 2>/dev/null
fi
wait "$sweep" 2>/dev/null
log "sweep ended"

# what the sweep wrote, with the bench JSONs and the logs of every run (finished or not)
work=${WORK:-${TMPDIR:-/tmp}/mixlib-sweep-gpu}
results=${RESULTS:-results/sweep-gpu}
[[ ${QUICK:-0} == 1 ]] && results=${RESULTS:-$work/results}
tar -cf "$pack/results.tar" --ignore-failed-read "$results" results/bench \
  $(ls "$work"/*.log 2>/dev/null) 2>/dev/null
# the kept weights (about 4 MB each), as many as fit in 45 MB beside the rest; the others can
# be made again from their runs
kept=() total=0
for f in $(ls results/weights-gpu/*.pt 2>/dev/null); do
  size=$(stat -c %s "$f")
  (( total + size <= 45000000 )) || continue
  kept+=("$f") total=$(( total + size ))
done
if (( ${#kept[@]} )); then
  tar -cf "$pack/weights.tar" "${kept[@]}"
  split -b 15M -a 1 "$pack/weights.tar" "$pack/weights.tar.part-" && rm "$pack/weights.tar"
fi
ls -l "$pack"
log "packed"
