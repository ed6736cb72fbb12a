#!/usr/bin/env bash
# What travels to the GPU machine for scripts/gpu_session.sh. The device tool copies the
# checkout's tracked files and its untracked files that git does not ignore, at most 64 MiB in
# all; the committed trained weights (results/weights*/, about 90 MB) alone are more than that,
# and the GPU session reads none of them. So, for the one call:
#
#   scripts/device_tree.sh prepare [DATA]   # before it: data and wheels in, weights out; MiB
#   scripts/device_tree.sh restore          # after it, before anything is committed
#   scripts/device_tree.sh size             # the MiB that would travel now
#
# `prepare` copies the CIFAR-10 tarballs and Imagenette's test tarball (with their SHA256SUMS)
# from DATA (default $MIXLIB_DATA, else ../shared/data) into .data/, makes the wheels of
# scripts/gpu_wheels.sh if .whl/ has none, and takes the weights out of git's index for the
# call: `git rm --cached` and a line in .git/info/exclude, so they neither count as tracked nor
# as untracked files; the files themselves stay where they are. `restore` puts the index and the
# exclude file back as they were (the weights as HEAD has them). Until then `git status` shows
# the weights as deleted, and a commit of those paths (the CPU sweep's, when a run ends) fails
# and is retried: restore right after the call.
set -euo pipefail
cd "$(dirname "$0")/.."
WEIGHTS=(results/weights results/weights-gpu)
LIMIT_MIB=64
exclude=$(git rev-parse --git-path info/exclude)
marker="# scripts/device_tree.sh: weights out of the device call"

size_mib() {  # tracked and untracked-not-ignored files, and the carried .data/ and .whl/
  { git ls-files -z --cached --others --exclude-standard; find .data .whl -type f -print0 2>/dev/null; } \
    | du -cb --files0-from=- 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}'
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
    data=${2:-${MIXLIB_DATA:-../shared/data}}
    [[ -d $data/cifar10-jpg && -d $data/imagenette-160 ]] || {
      echo "device_tree.sh: DATA=$data holds no cifar10-jpg/ and imagenette-160/" >&2; exit 2; }
    mkdir -p .data/imagenette-160
    cp -r "$data/cifar10-jpg" .data/
    cp "$data/imagenette-160/val.tar.gz" "$data/imagenette-160/SHA256SUMS" .data/imagenette-160/
    chmod -R u+w .data
    compgen -G ".whl/*.whl" > /dev/null || bash scripts/gpu_wheels.sh
    if ! grep -qxF "$marker" "$exclude" 2>/dev/null; then
      git rm -r -q --cached -- "${WEIGHTS[@]}"
      printf '%s\n' "$marker" "${WEIGHTS[@]/#//}" >> "$exclude"
    fi
    mib=$(size_mib)
    echo "what travels: $mib MiB (limit $LIMIT_MIB)"
    if ! awk "BEGIN {exit !($mib < $LIMIT_MIB)}"; then
      restore
      echo "device_tree.sh: $mib MiB would travel, over $LIMIT_MIB: the index is restored" >&2
      exit 1
    fi ;;
  restore) restore; echo "what travels: $(size_mib) MiB" ;;
  size) echo "$(size_mib)" ;;
  *) echo "usage: scripts/device_tree.sh prepare [DATA] | restore | size" >&2; exit 2 ;;
esac
