"""A protocol run cut after a few steps, its training-loss curve kept with its provenance.

The probes of chapter 8 (`pooling_stall.py`, `gnconv_collapse.py train`) repeat the first steps
of a sweep run (the same recipe, seed and 15-epoch schedule: warm-up and decay are those of the
full run) as the preset is and with one change of the model, and keep what the loss did.
"""
import json
import tempfile
import time
from pathlib import Path

import torch

from mixlib.files import atomic_write, load_checked
from mixlib.provenance import code_commit, environment
from mixlib.train import TrainConfig, train


def cut_run(model: str, variant: str, model_kwargs: dict, steps: int, out: Path) -> dict:
    """Train `model` (with `model_kwargs`) for `steps` steps of its 15-epoch schedule; write
    the record (a training-loss point every 10 steps) atomically to `out` and return it."""
    commit = code_commit()  # the code this process runs: read before it trains, not after
    with tempfile.TemporaryDirectory() as scratch:  # the cut run's checkpoint is not kept
        config = TrainConfig(model=model, data="cifar10", epochs=15, seed=0, amp="off",
                             log_every=10, stop_after_steps=steps, out=scratch, run=variant,
                             model_kwargs=model_kwargs)
        started = time.time()
        train(config, log=lambda *_: None)
        state = load_checked(Path(scratch) / variant / "checkpoint.pt", RuntimeError,
                             remedy="run the probe again", map_location="cpu", weights_only=False)
        record = {"model": model, "variant": variant, "model_kwargs": config.model_kwargs,
                  "seed": config.seed, "epochs_of_schedule": config.epochs, "steps": steps,
                  "batch_size": config.batch_size, "lr": config.lr, "amp": config.amp,
                  "wall_time_s": round(time.time() - started, 1), "commit": commit,
                  "hardware": environment(torch.device("cpu")), "step_log": state["step_log"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    print(variant, [(p["step"], round(p["train_loss"], 3)) for p in record["step_log"]], flush=True)
    return record
