"""Why D-DW and I-D-DW stalled with their generators' BatchNorm, and what initialisation does to
it (chapter 8).

Trains ddwconv_cifar or idwconv_cifar (their generators with BatchNorm, as the papers) with the
budget of the runs that first stalled, 2 epochs over 25,600 CIFAR-10 training images (200 steps
of 256), once with PyTorch's default initialisation and once with the papers' (truncated normal,
std 0.02), and keeps each run's training-loss curve (a point every 10 steps) in
results/runs/generator-norm/<model>-<init>/.

    python scripts/generator_norm.py MODEL INIT [OUT]    # e.g. ddwconv_cifar torch

A run interrupted before it finished resumes from its checkpoint when started again.
"""
import sys
from pathlib import Path

from mixlib.train import TrainConfig, train

model, init = sys.argv[1], sys.argv[2]
out = sys.argv[3] if len(sys.argv) > 3 else "results/runs/generator-norm"
config = TrainConfig(model=model, data="cifar10", epochs=2, max_train_images=25_600,
                     warmup_epochs=0.3, log_every=10, out=out, run=f"{model}-{init}",
                     model_kwargs={"init": init})
result = train(config, resume=(Path(out) / config.run / "checkpoint.pt").is_file())
if "step_log" in result:  # not when stopped by a signal: then it resumes next time
    print(model, init, [round(p["train_loss"], 3) for p in result["step_log"]], flush=True)
