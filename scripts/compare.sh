#!/usr/bin/env bash
# The book's mixer comparison (chapter 8): every small preset, one seed per call, one after the
# other. Resumable: a finished run (result.json present) is skipped, a stopped one resumes.
#
#   scripts/compare.sh cifar10 0          # seed 0 on CIFAR-10, with the budget below
#   OMP_NUM_THREADS=1 scripts/compare.sh cifar10 1 &   # two seeds side by side on two cores
#
# Budget (chosen by measurement on the 2-core CPU, see chapter 8): CIFAR-10, 2 epochs over the
# first 25,000 training images (balanced over the classes); Imagenette, 1 epoch at 128 px,
# batch 128, for a local convolution, local attention and a global mixer (dwconv, window
# attention, global filter: one of each kind; at 11-101 img/s (160 px, results/bench) all twelve
# presets would take hours per seed).
set -euo pipefail
data=${1:?data set: cifar10 or imagenette}
seed=${2:?seed}
python=${PYTHON:-python}
case $data in
  cifar10)
    presets=${PRESETS:-"dwconv window_attention lka ddwconv idwconv global_filter gnconv
             neighborhood_attention relative_attention elsa pooling cctt"}
    suffix=_cifar
    budget=(--epochs 2 --max-train-images 25000 --warmup-epochs 0.3) ;;
  imagenette)
    presets=${PRESETS:-"dwconv window_attention global_filter"}
    suffix=_imagenette
    budget=(--epochs 1 --batch-size 128 --image-size 128 --warmup-epochs 0.3) ;;
  *) echo "data must be cifar10 or imagenette, got '$data'" >&2; exit 2 ;;
esac
out=${OUT:-results/runs/compare-$data}
for preset in $presets; do
  run=$preset$suffix-s$seed
  if [[ -f $out/$run/result.json ]]; then echo "done: $run"; continue; fi
  "$python" -m mixlib.train --model "$preset$suffix" --data "$data" --seed "$seed" \
    "${budget[@]}" --out "$out" --name "$run" --resume
done
