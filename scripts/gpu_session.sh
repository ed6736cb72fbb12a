#!/usr/bin/env bash
# One lease of a GPU machine, used once: the benchmarks and the Triton tests of
# scripts/gpu_check.sh on a quiet GPU, then the comparison's GPU sweep (scripts/sweep_gpu.sh)
# with the remaining checks beside it, until a deadline. What is made is packed into a few files
# under PACK (the device tool brings back at most 8 files of 16 MiB each) after each phase and
# every minute of the sweep's last phase, so a command killed at the device's limit still
# returns what was done.
#
#   scripts/device_tree.sh prepare      # here, before the call: .data/ and .whl/, weights out
#   device run: command "MIXLIB_DATA=.data PACK=$OUT DEADLINE_S=525 bash scripts/gpu_session.sh",
#               carry [".data", ".whl"], timeout_s 600
#   scripts/device_tree.sh restore      # here, right after it
#   QUICK=1 PACK=/tmp/pack DEADLINE_S=420 scripts/gpu_session.sh   # on a CPU (tests/)
#
# DEADLINE_S counts from the start; no step runs past it (each runs in its own session, which
# is ended whole). The sweep starts only the runs its estimates say end 45 s before it, and at
# the deadline it is stopped (SIGTERM: each training stops at its next step, writes its
# checkpoint and exits; runs not finished are lost with the machine). Unpack here, in the
# repository's root (run logs land in gpu-logs/, git-ignored), with
#   cat PACK/weights.tar.part-* > /tmp/w.tar; for f in PACK/results.tar /tmp/w.tar; do tar -xf $f; done
# GPU_CHECK and SWEEP name stand-ins for the two scripts (tests/).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
deadline=${DEADLINE_S:-525}
pack=${PACK:?PACK names the folder that receives the packed results}
check=${GPU_CHECK:-scripts/gpu_check.sh}
sweep_script=${SWEEP:-scripts/sweep_gpu.sh}
mkdir -p "$pack"
stamp=$(mktemp)  # weights newer than this were made by this session
export PYTHON=${PYTHON:-python3} PYTHONUNBUFFERED=1
[[ -n ${MIXLIB_DATA:-} ]] && export MIXLIB_DATA=$(realpath "$MIXLIB_DATA")  # steps cd elsewhere
work=${WORK:-${TMPDIR:-/tmp}/mixlib-sweep-gpu$([[ ${QUICK:-0} == 1 ]] && echo -quick)}
results=${RESULTS:-results/sweep-gpu}
[[ ${QUICK:-0} == 1 ]] && results=${RESULTS:-$work/results}
weights=${WEIGHTS:-results/weights-gpu}  # where sweep_gpu.sh writes seed 0's weights
export WORK=$work RESULTS=$results WEIGHTS=$weights
exec 3>&1  # the session's own log, also from inside a step's redirected output
log() { echo "$(date +%T) +$(( $(date +%s) - started ))s $*" >&3; }
left() { echo $(( deadline - ($(date +%s) - started) )); }  # seconds to the deadline

# processes are found in /proc, not with pgrep and pkill: procps need not be on the device's image
session_pids() {  # session_pids SID: the processes of that session
  local f fields
  for f in /proc/[0-9]*/stat; do
    fields=$(cat "$f" 2>/dev/null) || continue
    fields=(${fields##*) })  # the fields after "(command)", whose name may hold spaces
    [[ ${fields[3]} == "$1" ]] && { f=${f%/stat}; echo "${f#/proc/}"; }
  done
}
running() { [[ -n $(session_pids "$1") ]]; }  # running SID: a process of that session is alive

stop_session() {  # stop_session SID: TERM to every process of that session, KILL after 15 s
  local pids
  pids=$(session_pids "$1"); [[ -n $pids ]] && kill -TERM $pids 2>/dev/null
  for _ in $(seq 15); do running "$1" || return 0; sleep 1; done
  pids=$(session_pids "$1"); [[ -n $pids ]] && kill -KILL $pids 2>/dev/null
  return 0
}

kill_matching() {  # kill_matching TEXT: KILL every process whose command line holds TEXT
  local f
  for f in /proc/[0-9]*/cmdline; do
    tr '\0' ' ' < "$f" 2>/dev/null | grep -qF -- "$1" && kill -KILL "${f//[^0-9]/}" 2>/dev/null
  done
  return 0
}

bounded() {  # bounded SECONDS COMMAND...: at most SECONDS and never past the deadline
  local limit=$1 pid; shift
  (( limit > $(left) - 15 )) && limit=$(( $(left) - 15 ))
  (( limit > 0 )) || { log "no time left for: $*"; return 124; }
  # a session of its own: the timeouts inside the command start process groups of their own,
  # which a group kill would miss
  setsid "$@" & pid=$!
  local end=$(( $(date +%s) + limit ))
  while kill -0 "$pid" 2>/dev/null && (( $(date +%s) < end )); do sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then log "over $limit s: stopping $*"; stop_session "$pid"; fi
  wait "$pid"
}

pack_now() {
  # what this session wrote of the sweep's results and the bench JSONs (not the files that
  # came with the tree: unpacked here, they would undo edits made since), and every run's log
  # and per-epoch metrics, finished or not (under gpu-logs/)
  local made=() logs=()
  mapfile -t made < <(find "$results" results/bench -type f -newer "$stamp" \
                        ! -name .sweep.lock ! -name summary.txt 2>/dev/null)
  [[ -d $work ]] && logs=(-C "$work" --transform 's,^\([^/]*\.log\)$,gpu-logs/\1,'
                          --transform 's,^\([^/]*/metrics\.jsonl\)$,gpu-logs/\1,'
                          $(cd "$work" && ls *.log */metrics.jsonl 2>/dev/null))
  tar -cf "$pack/.results.tar" --ignore-failed-read -T /dev/null "${made[@]}" "${logs[@]}" \
    2>/dev/null
  mv -f "$pack/.results.tar" "$pack/results.tar"  # replaced whole
  # this session's weights (about 4 MB each), as many as fit in 45 MB; the others can be made
  # again from their runs' checkpoints
  local kept=() total=0 size f
  for f in $(find "$weights" -name '*.pt' -newer "$stamp" 2>/dev/null | sort); do
    size=$(stat -c %s "$f")
    (( total + size <= 45000000 )) || continue
    kept+=("$f") total=$(( total + size ))
  done
  (( ${#kept[@]} )) || return 0
  tar -cf - "${kept[@]}" | split -b 15M -a 1 - "$pack/.weights.tar.part-"
  rm -f "$pack"/weights.tar.part-*
  for f in "$pack"/.weights.tar.part-*; do mv -f "$f" "$pack/${f##*/.}"; done
}

log "benchmarks and Triton tests on a quiet GPU"
# a record of this session's steps only (gpu_check.sh adds its steps to the one it finds)
[[ ${QUICK:-0} == 1 ]] || rm -f "${BENCH_OUT:-results/bench}/gpu-check-cuda.json"
STEPS="bench_aggregate bench_neighborhood bench_host_reads pytest_triton" OUT_DIR=${BENCH_OUT:-} \
  bounded 240 bash "$check" > "$pack/gpu-check.log" 2>&1
log "benchmarks and tests done (exit $?)"
pack_now

if (( $(left) > 60 )); then
  # the sweep starts the runs estimated to end by then, counted from when it plans them
  log "sweep starts"
  # quick runs have no estimates to start by: all start, and the deadline stops them
  [[ ${QUICK:-0} == 1 ]] || export SWEEP_END=$(( started + deadline - 45 ))
  setsid bash "$sweep_script" > "$pack/sweep.log" 2>&1 & sweep=$!
  log "the training loop's test and chapter 1 beside the sweep"
  STEPS="pytest_train_cuda notebook_ch1" OUT_DIR=${BENCH_OUT:-} \
    bounded 300 bash "$check" >> "$pack/gpu-check.log" 2>&1
  log "the training loop's test and chapter 1 done (exit $?)"
  pack_now
  last_pack=$(date +%s)
  while running "$sweep" && (( $(left) > 25 )); do
    sleep 5
    if (( $(date +%s) - last_pack >= 60 )); then pack_now; last_pack=$(date +%s); fi
  done
  if running "$sweep"; then
    log "deadline: stopping the sweep"
    stop_session "$sweep"
  fi
  # its trainings run in sessions of their own (mixlib.sweep), which the sweep stops on TERM;
  # any left after its KILL go now
  kill_matching "--out $work "
  wait "$sweep" 2>/dev/null
  log "sweep ended"
else
  log "no time left for the sweep"
fi
pack_now
rm -f "$stamp"
ls -l "$pack"
log "packed"
