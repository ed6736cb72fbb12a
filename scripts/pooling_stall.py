"""Why pooling_cifar's training loss stops falling at step ~60 (chapter 8, issue 19).

The GPU column's pooling run (bf16 autocast) stalled near a loss of 2.0 from step ~60, during
the warm-up. This probe repeats the first STEPS steps of that run, the same recipe, seed and
schedule (15 epochs' warm-up and decay; the run is cut after STEPS steps), in float32 on this
machine, once as the preset is and once with a LayerScale of 1e-5 on every residual branch (as
PoolFormer has), and keeps each probe's training-loss curve (a point every 10 steps) with its
provenance in results/runs/pooling-stall/<variant>.json. Beside the GPU run's curve, the two
say what the missing LayerScale does in float32; they cannot tell the GPU's bf16 arithmetic
from its own random draws (augmentation and drop path come from the device's generators).

    python scripts/pooling_stall.py VARIANT [STEPS]      # VARIANT: preset or layer_scale
"""
import sys
from pathlib import Path

from cut_run import cut_run  # scripts/, beside this file

VARIANTS = {"preset": {}, "layer_scale": {"layer_scale": 1e-5}}
variant = sys.argv[1] if len(sys.argv) > 1 else None
if variant not in VARIANTS:
    sys.exit(f"VARIANT must be one of {sorted(VARIANTS)}, got {variant!r}")
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
cut_run("pooling_cifar", variant, VARIANTS[variant], steps,
        Path("results/runs/pooling-stall") / f"{variant}.json")
