"""Why gnconv_cifar-s0-e15 collapses to chance in its third epoch (chapter 8, issue 19).

The sweep's run reached 60.4% after epoch 2, then its training loss rose to ln 10 (2.30, a
constant prediction) during epoch 3, with and without the "conv" backend's own derivatives.
Two probes, each written with its provenance to results/runs/gnconv-collapse/:

    python scripts/gnconv_collapse.py snapshots CHECKPOINT...   # -> snapshots.json
    python scripts/gnconv_collapse.py train VARIANT [STEPS]     # -> <variant>.json

`snapshots` reads checkpoints of the run (mixlib.train's, copied from the sweep's work folder
as the run wrote them, every 100 steps) and measures, on one fixed batch (256 test images drawn
with seed 0, training-mode BatchNorm, the weights themselves, not their average), in every block:
the RMS of the residual stream after it, and in each gnConv the RMS of its gates (the spatial
mixer's output times s, one per order) and of the recursive products p_1..p_n they make, and
the norm of each block's gradient of the batch's loss. What grows before the collapse is what
broke.

`train` repeats the run's first STEPS steps (the same recipe, seed and 15-epoch schedule, cut
after STEPS steps) as the preset is (`preset`) or with HorNet's LayerScale (1e-6 on every
residual branch, `layer_scale`), keeping the training-loss curve (a point every 10 steps).
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mixlib import data as mdata
from mixlib import models
from mixlib.files import atomic_write, load_checked
from mixlib.mixers.hornet import GnConv
from mixlib.models.blocks import MetaFormerBlock
from mixlib.provenance import code_commit, environment
from mixlib.train import TrainConfig, train

OUT = Path("results/runs/gnconv-collapse")
MODEL = "gnconv_cifar"
VARIANTS = {"preset": {}, "layer_scale": {"layer_scale": 1e-6}}  # HorNet's LayerScale init


def rms(t: torch.Tensor) -> float:
    return t.detach().float().pow(2).mean().sqrt().item()


def measure(state: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """The statistics of one checkpoint on one batch (see the module's docstring)."""
    model = models.build(MODEL, num_classes=10, **state["config"].get("model_kwargs", {}))
    model.load_state_dict(state["model"])
    model.train()  # training-mode BatchNorm: what the optimiser saw (its running stats move,
    # but this copy of the model is thrown away)
    blocks = [m for m in model.modules() if isinstance(m, MetaFormerBlock)]
    seen: dict[int, dict] = {i: {"gates": [], "products": []} for i in range(len(blocks))}
    hooks = []
    for i, block in enumerate(blocks):
        mixer = block.mixer
        assert isinstance(mixer, GnConv), type(mixer)

        def gates(module, args, out, i=i, mixer=mixer):
            seen[i]["gates"] = [rms(g * mixer.scale) for g in torch.split(out, mixer.dims, dim=1)]

        def product(module, args, i=i):  # pws[k] and proj_out read the products p_1..p_n
            seen[i]["products"].append(rms(args[0]))

        def residual(module, args, out, i=i):
            seen[i]["residual"] = rms(out)

        hooks += [mixer.spatial.register_forward_hook(gates),
                  *(pw.register_forward_pre_hook(product) for pw in mixer.pws),
                  mixer.proj_out.register_forward_pre_hook(product),
                  block.register_forward_hook(residual)]
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    for hook in hooks:
        hook.remove()
    rows = []
    for i, block in enumerate(blocks):
        grads = [p.grad for p in block.parameters() if p.grad is not None]
        rows.append({"block": i, "order": block.mixer.order, **seen[i],
                     "grad_norm": torch.stack([g.norm() for g in grads]).norm().item()})
    return {"step": state["step"], "loss": loss.item(),
            "accuracy": (logits.argmax(1) == labels).float().mean().item(),
            "predicted_classes": int(logits.argmax(1).unique().numel()),
            "logit_rms": rms(logits), "blocks": rows}


def snapshots(paths: list[str]) -> None:
    batch = mdata.load("cifar10", "test").sample(256, seed=0)  # the archive is sorted by class
    images, labels = mdata.normalize(batch.images, batch.spec), batch.labels
    records = []
    for path in paths:
        state = load_checked(Path(path), RuntimeError, remedy="copy it again",
                             map_location="cpu", weights_only=False)
        records.append(measure(state, images, labels))
    records.sort(key=lambda r: r["step"])
    record = {"model": MODEL, "batch": "256 CIFAR-10 test images drawn with seed 0, training-mode BatchNorm",
              "commit": code_commit(), "hardware": environment(torch.device("cpu")),
              "snapshots": records}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT / "snapshots.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    for r in records:
        last = r["blocks"][-1]
        print(f"step {r['step']:4d} loss {r['loss']:.3f} acc {r['accuracy']:.3f} classes {r['predicted_classes']:2d} "
              f"residual {[round(b['residual'], 1) for b in r['blocks']]} "
              f"last block gates {[round(g, 2) for g in last['gates']]} "
              f"products {[round(p, 2) for p in last['products']]} "
              f"grads {[round(b['grad_norm'], 2) for b in r['blocks']]}", flush=True)


def probe(variant: str, steps: int) -> None:
    if variant not in VARIANTS:
        sys.exit(f"VARIANT must be one of {sorted(VARIANTS)}, got {variant!r}")
    commit = code_commit()  # the code this process runs: read before it trains, not after
    with tempfile.TemporaryDirectory() as scratch:  # the cut run's checkpoint is not kept
        config = TrainConfig(model=MODEL, data="cifar10", epochs=15, seed=0, amp="off",
                             log_every=10, stop_after_steps=steps, out=scratch, run=variant,
                             model_kwargs=VARIANTS[variant])
        started = time.time()
        train(config, log=lambda *_: None)
        state = load_checked(Path(scratch) / variant / "checkpoint.pt", RuntimeError,
                             remedy="run the probe again", map_location="cpu", weights_only=False)
        record = {"model": MODEL, "variant": variant, "model_kwargs": config.model_kwargs,
                  "seed": config.seed, "epochs_of_schedule": config.epochs, "steps": steps,
                  "batch_size": config.batch_size, "lr": config.lr, "amp": config.amp,
                  "wall_time_s": round(time.time() - started, 1), "commit": commit,
                  "hardware": environment(torch.device("cpu")), "step_log": state["step_log"]}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT / f"{variant}.json", lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    print(variant, [(p["step"], round(p["train_loss"], 3)) for p in record["step_log"]], flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("snapshots", "train"):
        sys.exit(__doc__)
    if sys.argv[1] == "snapshots":
        snapshots(sys.argv[2:])
    else:
        probe(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 600)
