#!/usr/bin/env bash
# What travels to the GPU machine for scripts/gpu_session.sh. The device tool copies the
# checkout's tracked files and its untracked files that git does not ignore, at most 64 MiB in
# all with the carried paths; the committed trained weights (results/weights*/, about 90 MB)
# alone are more than that, and the GPU session reads none of them. So, for the one call:
#
#   scripts/device_tree.sh prepare [DATA]   # before it: data and wheels in, weights out; MiB
#   scripts/device_tree.sh restore          # after it, before anything is committed
#   scripts/device_tree.sh size             # the MiB that would travel now
#
# `prepare` copies the CIFAR-10 tarballs and Imagenette's test tarball (with their SHA256SUMS)
# from DATA (default $MIXLIB_DATA, else ../shared/data) into .data/ (git-ignored, carried),
# makes the wheels of scripts/gpu_wheels.sh if .whl/ has none, and takes the weights out of
# git's index for the call: `git rm --cached` and lines in .git/info/exclude, so they count
# neither as tracked nor as untracked files; the files themselves stay where they are. It
# refuses to start while other changes are staged. `restore` puts the index and the exclude
# file back as they were (the weights as HEAD has them).
#
# Until `restore`, the index holds the weights' deletion: a `git commit` without paths would
# commit it, and a commit of a weights path fails (the CPU sweep's, when a run ends, gives up
# after about 4 minutes and leaves the run's files to be committed by hand). Restore right
# after the call.
set -euo pipefail
here=$PWD
cd "$(dirname "$0")/.."
WEIGHTS=(results/weights results/weights-gpu)
LIMIT_MIB=64
exclude=$(git rev-parse --git-path info/exclude)
marker="# scripts/device_tree.sh: weights out of the device call"

size_mib() {  # tracked and untracked-not-ignored files, and the carried .data/ and .whl/
  { git ls-files -z --cached --others --exclude-standard
    find .data .whl -type f -print0 2>/dev/null || true
  } | du -cb --files0-from=- 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}' || true
}

restore() {
  if grep -qxF "$marker" "$exclude" 2>/dev/null; then
    git reset -q -- "${WEIGHTS[@]}"
    grep -vxF -e "$marker" "${WEIGHTS[@]/#/-e/}" "$exclude" > "$exclude.tmp" || true
    mv "$exclude.tmp" "$exclude"
  fi
}

case "${1:-}" in
  prepare)
    if [[ -n ${2:-} || -n ${MIXLIB_DATA:-} ]]; then  # as the caller named it, from its folder
      data=$(cd "$here" && realpath -m -- "${2:-$MIXLIB_DATA}")
    else
      data=$(realpath -m ../shared/data)
    fi
    [[ -d $data/cifar10-jpg && -d $data/imagenette-160 ]] || {
      echo "device_tree.sh: DATA=$data holds no cifar10-jpg/ and imagenette-160/" >&2; exit 2; }
    [[ $data != $(realpath -m .data) ]] || {
      echo "device_tree.sh: DATA=$data is the copy itself; name the shared data folder" >&2
      exit 2; }
    if ! grep -qxF "$marker" "$exclude" 2>/dev/null && ! git diff --cached --quiet; then
      echo "device_tree.sh: other changes are staged; commit or unstage them first" >&2; exit 1
    fi
    mkdir -p .data/imagenette-160
    cp -r "$data/cifar10-jpg" .data/
    cp "$data/imagenette-160/val.tar.gz" "$data/imagenette-160/SHA256SUMS" .data/imagenette-160/
    chmod -R u+w .data
    compgen -G ".whl/*.whl" > /dev/null || bash scripts/gpu_wheels.sh
    if ! grep -qxF "$marker" "$exclude" 2>/dev/null; then
      git rm -r -q --cached --ignore-unmatch -- "${WEIGHTS[@]}"
      printf '%s\n' "$marker" "${WEIGHTS[@]/#//}" >> "$exclude"
    fi
    mib=$(size_mib)
    echo "what travels: ${mib:-?} MiB (limit $LIMIT_MIB)"
    if [[ -z $mib ]] || ! awk -v m="$mib" -v l="$LIMIT_MIB" 'BEGIN {exit !(m > 0 && m < l)}'; then
      restore
      echo "device_tree.sh: ${mib:-?} MiB would travel, not under $LIMIT_MIB: the index is" \
           "restored" >&2
      exit 1
    fi ;;
  restore) restore; echo "what travels: $(size_mib) MiB" ;;
  size) echo "$(size_mib)" ;;
  *) echo "usage: scripts/device_tree.sh prepare [DATA] | restore | size" >&2; exit 2 ;;
esac
