"""How much "auto"'s dense backend on small maps speeds up training of the presets it reaches.

    OMP_NUM_THREADS=1 python scripts/dense_speedup.py [--json results/bench/dense-speedup-cpu.json]

One training step (forward, backward, AdamW) of each preset at the sweep's batch (256, one
thread, channels-last, float32), with "auto" as it is (dense up to DENSE_MAX_PIXELS pixels for
per-pixel weights, DENSE_MAX_PIXELS_DILATED for dilated static ones) and with both switches
at 0 (lean and conv, as before the dense backend), the two timed in turns in one process
(``bench.time_each_ms``), so that their ratio compares like with like.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from mixlib import bench, models, provenance
from mixlib.files import atomic_write
from mixlib.ops import aggregate

PRESETS = ("idwconv_cifar", "elsa_cifar", "lka_cifar")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(PRESETS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device("cpu")
    switches = (aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED)
    rows = []
    for name in args.models:
        model = models.build(name).to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (args.batch,))

        def step(limits):
            aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED = limits
            try:
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            finally:
                aggregate.DENSE_MAX_PIXELS, aggregate.DENSE_MAX_PIXELS_DILATED = switches

        ms = bench.time_each_ms({"lean": lambda: step((0, 0)), "auto": lambda: step(switches)},
                                device, args.repeats)
        rows.append({"model": name, "batch": args.batch, "lean_ms": ms["lean"], "auto_ms": ms["auto"],
                     "train_img_s_lean": args.batch / ms["lean"] * 1e3,
                     "train_img_s_auto": args.batch / ms["auto"] * 1e3,
                     "speedup": ms["lean"] / ms["auto"]})
        print(f"{name:24s} without dense {ms['lean']:7.0f} ms  auto {ms['auto']:7.0f} ms"
              f"  speed-up {ms['lean'] / ms['auto']:.2f}×", flush=True)
    if args.json:
        record = {"environment": provenance.environment(device), "commit": provenance.code_commit(),
                  "dense_max_pixels": switches[0], "dense_max_pixels_dilated": switches[1],
                  "repeats": args.repeats, "rows": rows}
        atomic_write(args.json, lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
