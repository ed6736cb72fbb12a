#!/usr/bin/env bash
# One lease of a GPU machine, used once: the benchmarks and the Triton tests of
# scripts/gpu_check.sh on a quiet GPU, then the comparison's GPU sweep (scripts/sweep_gpu.sh)
# with the remaining checks beside it, until a deadline. What is made is packed into a few files
# under PACK (the device tool brings back at most 8 files of 16 MiB each) after each phase and
# every minute, so a command killed at the device's limit still returns what was done.
#
#   scripts/device_tree.sh prepare                                  # here, before the call
#   MIXLIB_DATA=.data PACK=$OUT DEADLINE_S=525 bash scripts/gpu_session.sh   # the call
#   scripts/device_tree.sh restore                                  # here, after it
#   QUICK=1 PACK=/tmp/pack DEADLINE_S=60 scripts/gpu_session.sh     # on a CPU (tests/)
#
# DEADLINE_S counts from the start; no step runs past it. The sweep starts only runs its
# estimates say end in time (--hours), and at the deadline it is stopped (SIGTERM: each training
# stops at its next step, writes its checkpoint and exits; runs not finished are lost with the
# machine). Unpack here, in the repository's root, with
#   cat PACK/weights.tar.part-* > /tmp/w.tar; for f in PACK/results.tar /tmp/w.tar; do tar -xf $f; done
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
deadline=${DEADLINE_S:-525}
pack=${PACK:?PACK names the folder that receives the packed results}
mkdir -p "$pack"
stamp=$(mktemp)  # weights newer than this were made by this session
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
[[ -n ${MIXLIB_DATA:-} ]] && export MIXLIB_DATA=$(realpath "$MIXLIB_DATA")  # steps cd elsewhere
work=${WORK:-${TMPDIR:-/tmp}/mixlib-sweep-gpu}
results=${RESULTS:-results/sweep-gpu}
[[ ${QUICK:-0} == 1 ]] && results=${RESULTS:-$work/results}
export WORK=$work RESULTS=$results
log() { echo "$(date +%T) +$(( $(date +%s) - started ))s $*"; }
left() { echo $(( deadline - ($(date +%s) - started) )); }  # seconds to the deadline
bounded() {  # bounded SECONDS COMMAND...: at most SECONDS and never past the deadline
  local limit=$1; shift
  (( limit > $(left) - 15 )) && limit=$(( $(left) - 15 ))
  (( limit > 0 )) || { log "no time left for: $*"; return 124; }
  timeout -k 5 "$limit" "$@"
}

pack_now() {  # everything made so far, each archive replaced whole (tar to a temporary name)
  # the sweep's results, the bench JSONs, and every run's log (under gpu-logs/)
  local logs=()
  [[ -d $work ]] && logs=(-C "$work" --transform 's,^\([^/]*\.log\)$,gpu-logs/\1,'
                          $(cd "$work" && ls *.log 2>/dev/null))
  tar -cf "$pack/.results.tar" --ignore-failed-read "$results" results/bench "${logs[@]}" \
    2>/dev/null
  mv -f "$pack/.results.tar" "$pack/results.tar"
  # this session's weights (about 4 MB each), as many as fit in 45 MB; the others can be made
  # again from their runs' checkpoints
  local kept=() total=0 size f
  for f in $(find results/weights-gpu -name '*.pt' -newer "$stamp" 2>/dev/null | sort); do
    size=$(stat -c %s "$f")
    (( total + size <= 45000000 )) || continue
    kept+=("$f") total=$(( total + size ))
  done
  rm -f "$pack"/weights.tar.part-*
  if (( ${#kept[@]} )); then
    tar -cf - "${kept[@]}" | split -b 15M -a 1 - "$pack/weights.tar.part-"
  fi
}

log "benchmarks and Triton tests on a quiet GPU"
STEPS="bench_aggregate bench_neighborhood bench_host_reads pytest_triton" OUT_DIR=${BENCH_OUT:-} \
  bounded 240 bash scripts/gpu_check.sh > "$pack/gpu-check.log" 2>&1
log "benchmarks and tests done (exit $?)"
pack_now

sweep_s=$(( $(left) - 45 ))  # the sweep's runs end 45 s before the deadline, to be packed
if (( sweep_s > 0 )); then
  log "sweep starts: the runs estimated to end within $sweep_s s"
  hours=$(awk "BEGIN {print $sweep_s / 3600}")
  # quick runs have no estimates to start by: all start, and the deadline stops them
  [[ ${QUICK:-0} == 1 ]] && hours=
  HOURS=$hours setsid bash scripts/sweep_gpu.sh \
    > "$pack/sweep.log" 2>&1 &
  sweep=$!
  log "the training loop's test and chapter 1 beside the sweep"
  STEPS="pytest_train_cuda notebook_ch1" OUT_DIR=${BENCH_OUT:-} \
    bounded 300 bash scripts/gpu_check.sh >> "$pack/gpu-check.log" 2>&1
  log "the training loop's test and chapter 1 done (exit $?)"
  pack_now
  last_pack=$(date +%s)
  while kill -0 -- -"$sweep" 2>/dev/null && (( $(left) > 25 )); do
    sleep 5
    if (( $(date +%s) - last_pack >= 60 )); then pack_now; last_pack=$(date +%s); fi
  done
  if kill -0 -- -"$sweep" 2>/dev/null; then
    log "deadline: stopping the sweep"
    kill -TERM -- -"$sweep" 2>/dev/null
    # every process of the group, not only its shell, until the trainings have stopped
    for _ in $(seq 15); do kill -0 -- -"$sweep" 2>/dev/null || break; sleep 1; done
    kill -KILL -- -"$sweep" 2>/dev/null
  fi
  wait "$sweep" 2>/dev/null
  log "sweep ended"
else
  log "no time left for the sweep"
fi
pack_now
rm -f "$stamp"
ls -l "$pack"
log "packed"
