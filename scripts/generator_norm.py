"""Why D-DW and I-D-DW stalled with their generators' BatchNorm, and what fixes it (chapter 8).

Trains each of dwconv_cifar, ddwconv_cifar and idwconv_cifar (their generators with BatchNorm, as
the papers) for one epoch over 12,800 CIFAR-10 training images, once with PyTorch's default
initialisation and once with the papers' (truncated normal, std 0.02), and keeps each run's
training-loss curve (a point every 5 steps) in results/runs/generator-norm/<model>-<init>/.

    python scripts/generator_norm.py [OUT]      # about 2 minutes per run on two cores
"""
import sys

from mixlib.train import RunFolderError, TrainConfig, train

OUT = sys.argv[1] if len(sys.argv) > 1 else "results/runs/generator-norm"

for model in ("ddwconv_cifar", "idwconv_cifar", "dwconv_cifar"):
    for init in ("torch", "trunc_normal"):
        config = TrainConfig(model=model, data="cifar10", epochs=1, max_train_images=12800,
                             warmup_epochs=0.3, log_every=5, out=OUT, run=f"{model}-{init}",
                             model_kwargs={"init": init})
        try:
            result = train(config)
        except RunFolderError as error:  # done before: keep it
            print(f"skipped: {error}", file=sys.stderr)
            continue
        print(model, init, [round(p["train_loss"], 3) for p in result["step_log"]], flush=True)
