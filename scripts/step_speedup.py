"""How much one change to the ops speeds up training of the presets it reaches.

    OMP_NUM_THREADS=1 python scripts/step_speedup.py dense [--json results/bench/dense-speedup-cpu.json]
    OMP_NUM_THREADS=1 python scripts/step_speedup.py weight-layout [--json results/bench/weight-layout-cpu.json]
    OMP_NUM_THREADS=1 python scripts/step_speedup.py conv-derivatives [--json results/bench/conv-derivatives-cpu.json]

One training step (forward, backward, AdamW) of each preset at the sweep's batch (256, one
thread, channels-last, float32, the sweep's image size: 32, or 128 for Imagenette), with the library as it is ("after")
and with the change undone ("before"), the two timed in turns in one process
(``bench.time_each_ms``), so that their ratio compares like with like. The changes:

- dense: "auto"'s dense backend on small maps (``DENSE_MAX_PIXELS`` for per-pixel weights,
  ``DENSE_MAX_PIXELS_DILATED`` for dilated static ones); before, both switches at 0 (lean and
  conv).
- weight-layout: lean's copy of per-pixel weights into offset planes (``lean._offset_planes``);
  before, the weights as the generator's channels-last output lays them out.
- conv-derivatives: the "conv" backend as a library op with its own derivatives (``ops.conv``);
  before, ``F.conv2d`` differentiated by PyTorch (oneDNN's depthwise backward).
"""
from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mixlib import bench, models, protocol, provenance
from mixlib.files import atomic_write
from mixlib.ops import aggregate, conv, lean


@contextlib.contextmanager
def _without_dense():
    switches = (aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED)
    aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED = 0, 0
    try:
        yield
    finally:
        aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED = switches


@contextlib.contextmanager
def _without_weight_layout():
    copy = lean._offset_planes
    lean._offset_planes = lambda w: w
    try:
        yield
    finally:
        lean._offset_planes = copy


@contextlib.contextmanager
def _with_pytorch_conv_derivatives():
    rule = conv.own_derivatives
    conv.own_derivatives = lambda *_: False
    try:
        yield
    finally:
        conv.own_derivatives = rule


# change -> (what undoes it, the presets it reaches, what the record says about the library)
CHANGES = {
    "dense": (_without_dense, ("idwconv_cifar", "elsa_cifar", "lka_cifar"),
              lambda: {"dense_max_pixels": aggregate.DENSE_MAX_PIXELS,
                       "dense_max_pixels_dilated": aggregate.DENSE_MAX_PIXELS_DILATED}),
    "weight-layout": (_without_weight_layout, ("idwconv_cifar", "elsa_cifar", "idwconv_imagenette"),
                      dict),
    "conv-derivatives": (_with_pytorch_conv_derivatives,
                         ("dwconv_cifar", "gnconv_cifar", "lka_cifar", "ddwconv_cifar", "cctt_cifar",
                          "elsa_cifar", "dwconv_imagenette"),
                         lambda: {"dense_gradient_max_pixels": conv.DENSE_GRADIENT_MAX_PIXELS}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("change", choices=sorted(CHANGES))
    parser.add_argument("--models", nargs="+", default=None, help="default: the presets it reaches")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    undo, presets, settings = CHANGES[args.change]
    torch.manual_seed(0)
    device = torch.device("cpu")
    rows = []
    for name in args.models or presets:
        size = protocol.IMAGENETTE_SIZE if name.endswith("_imagenette") else 32
        model = models.build(name, image_size=size).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(args.batch, 3, size, size).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch,))

        def step():
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        def step_before():
            with undo():
                step()

        ms = bench.time_each_ms({"before": step_before, "after": step}, device, args.repeats)
        rows.append({"model": name, "image_size": size, "batch": args.batch,
                     "before_ms": ms["before"], "after_ms": ms["after"],
                     "train_img_s_before": args.batch / ms["before"] * 1e3,
                     "train_img_s_after": args.batch / ms["after"] * 1e3,
                     "speedup": ms["before"] / ms["after"]})
        print(f"{name:24s} before {ms['before']:7.0f} ms  after {ms['after']:7.0f} ms"
              f"  speed-up {ms['before'] / ms['after']:.2f}×", flush=True)
    if args.json:
        record = {"environment": provenance.environment(device), "commit": provenance.code_commit(),
                  "change": args.change, **settings(), "repeats": args.repeats, "rows": rows}
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
