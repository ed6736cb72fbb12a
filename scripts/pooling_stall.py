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
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from mixlib.files import atomic_write, load_checked
from mixlib.provenance import code_commit, environment
from mixlib.train import TrainConfig, train

VARIANTS = {"preset": {}, "layer_scale": {"layer_scale": 1e-5}}
variant = sys.argv[1]
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
if variant not in VARIANTS:
    sys.exit(f"VARIANT must be one of {sorted(VARIANTS)}, got {variant!r}")
out = Path("results/runs/pooling-stall") / f"{variant}.json"

commit = code_commit()  # the code this process runs: read before it trains, not after
with tempfile.TemporaryDirectory() as scratch:  # the cut run's checkpoint is not kept
    config = TrainConfig(model="pooling_cifar", data="cifar10", epochs=15, seed=0, amp="off",
                         log_every=10, stop_after_steps=steps, out=scratch, run=variant,
                         model_kwargs=VARIANTS[variant])
    started = time.time()
    train(config, log=lambda *_: None)
    state = load_checked(Path(scratch) / variant / "checkpoint.pt", RuntimeError,
                         remedy="run the probe again", map_location="cpu", weights_only=False)
    record = {"model": config.model, "variant": variant, "model_kwargs": config.model_kwargs,
              "seed": config.seed, "epochs_of_schedule": config.epochs, "steps": steps,
              "batch_size": config.batch_size, "lr": config.lr, "amp": config.amp,
              "wall_time_s": round(time.time() - started, 1), "commit": commit,
              "hardware": environment(torch.device("cpu")), "step_log": state["step_log"]}
atomic_write(out, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
print(variant, [(p["step"], round(p["train_loss"], 3)) for p in record["step_log"]], flush=True)
