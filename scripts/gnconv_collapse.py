"""Why gnconv_cifar-s0-e15 collapses to chance in its third epoch (chapter 8, issue 19).

The sweep's run reached 60.4% after epoch 2, then its training loss rose to ln 10 (2.30, a
constant prediction) during epoch 3, with and without the "conv" backend's own derivatives.
Two probes, each written with its provenance to results/runs/gnconv-collapse/:

    python scripts/gnconv_collapse.py snapshots CHECKPOINT...   # -> snapshots.json
    python scripts/gnconv_collapse.py replay CHECKPOINT UNTIL EVERY  # -> replay.json
    python scripts/gnconv_collapse.py train VARIANT [STEPS]     # -> <variant>.json

`snapshots` reads checkpoints of the run (mixlib.train's, copied from the sweep's work folder
as the run wrote them, every 100 steps) and measures, on one fixed batch (256 test images drawn
with seed 0, training-mode BatchNorm, no drop path, the weights themselves, not their average),
in every block:
the RMS of the residual stream after it; in each gnConv the RMS and the largest magnitude of
p_0 (proj_in's first part), of its gates (the spatial mixer's output times s, one per order)
and of the recursive products p_1..p_n they make, and the norms of the 1×1 weights the products
pass through; and the norm of each block's gradient of the batch's loss. What grows before the collapse is what
broke.

`replay` resumes the run from one of those checkpoints (mixlib.train's resume continues the
same data order, draws and schedule) and stops every EVERY steps until step UNTIL, measuring
each stop as `snapshots` does: the steps between two of the sweep's checkpoints, closer.

`train` repeats the run's first STEPS steps (the same recipe, seed and 15-epoch schedule, cut
after STEPS steps) as the preset is (`preset`) or with HorNet's LayerScale (1e-6 on every
residual branch, `layer_scale`), keeping the training-loss curve (a point every 10 steps).
"""
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from mixlib import data as mdata
from mixlib import models
from mixlib.files import atomic_write, load_checked
from mixlib.mixers.hornet import GnConv
from mixlib.models.blocks import MetaFormerBlock
from mixlib.provenance import code_commit, environment
from mixlib.train import TrainConfig, train

from cut_run import cut_run  # scripts/, beside this file

OUT = Path("results/runs/gnconv-collapse")
MODEL = "gnconv_cifar"
VARIANTS = {"preset": {}, "layer_scale": {"layer_scale": 1e-6}}  # HorNet's LayerScale init


def rms(t: torch.Tensor) -> float:
    return t.detach().float().pow(2).mean().sqrt().item()


def measure(state: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """The statistics of one checkpoint on one batch (see the module's docstring)."""
    model = models.build(MODEL, num_classes=10, **state["config"].get("model_kwargs", {}))
    model.load_state_dict(state["model"])
    # BatchNorm as in training (batch statistics: what the optimiser saw; the running ones move,
    # but this copy is thrown away), drop path off: every block counts, the same at every call
    model.eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()
    blocks = [m for m in model.modules() if isinstance(m, MetaFormerBlock)]
    seen: dict[int, dict] = {i: {"products": [], "products_max": []} for i in range(len(blocks))}
    hooks = []
    for i, block in enumerate(blocks):
        mixer = block.mixer
        assert isinstance(mixer, GnConv), type(mixer)

        def first_factor(module, args, out, i=i, mixer=mixer):  # p_0, proj_in's first part
            p0 = out[:, :mixer.dims[0]]
            seen[i].update(p0=rms(p0), p0_max=p0.abs().max().item())

        def gates(module, args, out, i=i, mixer=mixer):
            split = [g * mixer.scale for g in torch.split(out, mixer.dims, dim=1)]
            seen[i].update(gates=[rms(g) for g in split],
                           gates_max=[g.abs().max().item() for g in split])

        def product(module, args, i=i):  # pws[k] and proj_out read the products p_1..p_n
            seen[i]["products"].append(rms(args[0]))
            seen[i]["products_max"].append(args[0].abs().max().item())

        def residual(module, args, out, i=i):
            seen[i]["residual"] = rms(out)

        hooks += [mixer.proj_in.register_forward_hook(first_factor),
                  mixer.spatial.register_forward_hook(gates),
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
        mixer = block.mixer
        rows.append({"block": i, "order": mixer.order, **seen[i],
                     "grad_norm": torch.stack([g.norm() for g in grads]).norm().item(),
                     # the weights the products pass through: proj_in, pw_1..pw_{n-1}, proj_out
                     "weight_norms": [m.weight.norm().item()
                                      for m in (mixer.proj_in, *mixer.pws, mixer.proj_out)]})
    return {"step": state["step"], "loss": loss.item(),
            "accuracy": (logits.argmax(1) == labels).float().mean().item(),
            "predicted_classes": int(logits.argmax(1).unique().numel()),
            "logit_rms": rms(logits), "blocks": rows}


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    batch = mdata.load("cifar10", "test").sample(256, seed=0)  # the archive is sorted by class
    return mdata.normalize(batch.images, batch.spec), batch.labels


def load(path: Path) -> dict:
    return load_checked(path, RuntimeError, remedy="copy it again", map_location="cpu",
                        weights_only=False)


def write(name: str, records: list[dict], **extra) -> None:
    records.sort(key=lambda r: r["step"])
    record = {"model": MODEL, **extra,
              "batch": "256 CIFAR-10 test images drawn with seed 0, training-mode BatchNorm, no drop path",
              "commit": code_commit(), "hardware": environment(torch.device("cpu")),
              "snapshots": records}
    OUT.mkdir(parents=True, exist_ok=True)
    atomic_write(OUT / name, lambda tmp: tmp.write_text(json.dumps(record, indent=1) + "\n"))
    for r in records:
        last = r["blocks"][-1]
        print(f"step {r['step']:4d} loss {r['loss']:.3f} acc {r['accuracy']:.3f} classes {r['predicted_classes']:2d} "
              f"residual {[round(b['residual'], 1) for b in r['blocks']]} "
              f"last block gates {[round(g, 2) for g in last['gates']]} "
              f"products {[round(p, 2) for p in last['products']]} "
              f"grads {[round(b['grad_norm'], 2) for b in r['blocks']]}", flush=True)


def snapshots(paths: list[str]) -> None:
    images, labels = fixed_batch()
    write("snapshots.json", [measure(load(Path(p)), images, labels) for p in paths])


def replay(path: str, until: int, every: int) -> None:
    images, labels = fixed_batch()
    state = load(Path(path))
    start, records = state["step"], []
    with tempfile.TemporaryDirectory() as scratch:
        run = Path(scratch) / "replay"
        run.mkdir()
        shutil.copyfile(path, run / "checkpoint.pt")
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        config = {k: v for k, v in state["config"].items() if k in fields}
        for stop in range(start + every, until + 1, every):
            train(TrainConfig(**{**config, "out": scratch, "run": "replay",
                                 "stop_after_steps": stop}), resume=True, log=lambda *_: None)
            records.append(measure(load(run / "checkpoint.pt"), images, labels))
    write("replay.json", records, replayed_from_step=start)


def probe(variant: str, steps: int) -> None:
    if variant not in VARIANTS:
        sys.exit(f"VARIANT must be one of {sorted(VARIANTS)}, got {variant!r}")
    cut_run(MODEL, variant, VARIANTS[variant], steps, OUT / f"{variant}.json")


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("snapshots", "replay", "train"):
        sys.exit(__doc__)
    if sys.argv[1] == "snapshots":
        snapshots(sys.argv[2:])
    elif sys.argv[1] == "replay":
        replay(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        probe(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 600)
