"""Benchmarks: time and memory of the primitive (and, later, of the models).

    python -m mixlib.bench aggregate [--quick] [--repeats 5] [--json out.json]
    python -m mixlib.bench neighborhood [--quick] [--json out.json]

Every number in a table comes from one run on one machine, so the ratios compare like with like.
Time is forward + backward, the fastest of ``--repeats`` runs after one warm-up, the
candidates of a row group measured in turns. Memory is the
op's own peak: the largest total of bytes allocated during forward + backward, minus what was
allocated before it started (its inputs), read from the allocator through the PyTorch profiler
on the CPU and from ``torch.cuda.max_memory_allocated`` on a GPU.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from typing import Callable

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler is chatty on stderr

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .ops import local_aggregate  # noqa: E402

__all__ = ["time_ms", "time_each_ms", "peak_memory_bytes", "environment", "bench_aggregate", "main"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int = 5) -> float:
    """The fastest of `repeats` wall times of fn() in milliseconds, after one warm-up call.

    The minimum, not the mean: on a shared machine noise only ever adds time.
    """
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


@contextlib.contextmanager
def _stderr_silenced():
    """The CPU profiler's C++ side logs every start and stop to file descriptor 2; mute it."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def time_each_ms(runs: dict[str, Callable[[], object]], device: torch.device,
                 repeats: int = 5) -> dict[str, float]:
    """time_ms of several candidates, measured in turns (one call of each per round), so
    that a slow spell of a shared machine hits all of them alike."""
    for fn in runs.values():
        fn()
    _sync(device)
    best = {name: float("inf") for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], (time.perf_counter() - start) * 1e3)
    return best


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """The most memory fn() held at once beyond what was allocated before it ran."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    from torch.profiler import ProfilerActivity, profile

    with _stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = []

    def walk(nodes):
        for node in nodes:
            extra = node.extra_fields
            if type(extra).__name__ == "_ExtraFields_Allocation" and extra.device.type == "cpu":
                events.append((node.start_time_ns, extra.alloc_size))
            walk(node.children)

    walk(prof.profiler.kineto_results.experimental_event_tree())
    events.sort(key=lambda e: e[0])
    held = peak = 0
    for _, size in events:  # a positive size allocates, a negative one frees
        held += size
        peak = max(peak, held)
    return peak


def environment(device: torch.device) -> dict:
    """What the numbers were measured on."""
    env = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    else:
        try:
            with open("/proc/cpuinfo") as f:
                names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
            env["cpu"] = names[0] if names else platform.processor()
            env["cores"] = os.cpu_count()
        except OSError:
            pass
    return env


# ----------------------------------------------------------------------------------------------
# aggregate


CPU_MAPS, GPU_MAPS = ((32, 64), (56, 64)), ((56, 64), (28, 128))  # (side, channels)


def bench_aggregate(*, device: torch.device, batch: int = 32, maps=None, kernels=None,
                    dynamic_groups: int = 8, repeats: int = 5, backends=None) -> list[dict]:
    """Time and peak memory of every backend, for dynamic per-pixel and static weights.

    Defaults: on the CPU 32×32×64 and 56×56×64 maps with k = 3, 7, 13; on a GPU 56×56×64 and
    28×28×128 with k = 7, 13 and the Triton kernels as well.
    """
    gpu = device.type == "cuda"
    maps = maps or (GPU_MAPS if gpu else CPU_MAPS)
    kernels = kernels or ((7, 13) if gpu else (3, 7, 13))
    backends = backends or (("reference", "lean", "conv", "triton", "auto") if gpu
                            else ("reference", "lean", "conv", "auto"))
    rows = []
    for size, channels in maps:
        for k in kernels:
            v = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
            cases = {
                f"dynamic G={dynamic_groups}": torch.randn(
                    batch, dynamic_groups, k * k, size, size, device=device),
                "static per-channel": torch.randn(1, channels, k * k, 1, 1, device=device),
            }
            for weights, w in cases.items():
                w.requires_grad_(True)
                static = w.shape[3:] == (1, 1)
                runs = {b: (lambda b=b: local_aggregate(v, w, k, backend=b).sum().backward())
                        for b in backends if b != "conv" or static}
                if static:
                    kernel = w.detach().reshape(channels, 1, k, k).clone().requires_grad_(True)
                    runs["F.conv2d"] = lambda: F.conv2d(v, kernel, padding=k // 2,
                                                        groups=channels).sum().backward()
                times = time_each_ms(runs, device, repeats)
                measured = {name: (times[name], peak_memory_bytes(run, device))
                            for name, run in runs.items()}
                ref_ms, ref_mem = measured["reference"]
                for name, (ms, mem) in measured.items():
                    row = {"map": f"{size}x{size}x{channels}", "k": k, "weights": weights,
                           "backend": name, "ms": ms, "peak_mb": mem / 2 ** 20,
                           "time_vs_reference": ms / ref_ms, "memory_vs_reference": mem / ref_mem}
                    if static:
                        row["time_vs_conv2d"] = ms / measured["F.conv2d"][0]
                    rows.append(row)
                v.grad = None
    return rows


# ----------------------------------------------------------------------------------------------
# neighbourhood attention: the two exact implementations, by map size


def bench_neighborhood(*, device: torch.device, batch: int = 16, channels: int = 64, heads: int = 4,
                       kernel_size: int = 7, sizes=(8, 16, 24, 32, 48, 64), repeats: int = 5) -> list[dict]:
    """Forward + backward of NeighborhoodAttention as k×k aggregation vs one dense masked SDPA."""
    from .mixers import NeighborhoodAttention

    rows = []
    for size in sizes:
        x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
        measured = {}
        for implementation in ("aggregate", "dense"):
            mixer = NeighborhoodAttention(channels, num_heads=heads, kernel_size=kernel_size,
                                          implementation=implementation).to(device)
            run = lambda: mixer(x).sum().backward()  # noqa: E731
            measured[implementation] = (time_ms(run, device, repeats), peak_memory_bytes(run, device))
        for implementation, (ms, mem) in measured.items():
            rows.append({"map": f"{size}x{size}x{channels}", "pixels": size * size,
                         "implementation": implementation, "ms": ms, "peak_mb": mem / 2 ** 20,
                         "time_vs_aggregate": ms / measured["aggregate"][0]})
    return rows


def format_neighborhood(rows: list[dict]) -> str:
    lines = ["| map | implementation | fwd+bwd ms | peak MB | time / aggregate |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['map']} | {r['implementation']} | {r['ms']:.1f} | {r['peak_mb']:.1f} "
                     f"| {r['time_vs_aggregate']:.2f} |")
    return "\n".join(lines)


def format_table(rows: list[dict]) -> str:
    header = ("| map | k | weights | backend | fwd+bwd ms | peak MB | time / ref | mem / ref "
              "| time / F.conv2d |")
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        conv = f"{r['time_vs_conv2d']:.2f}" if "time_vs_conv2d" in r else ""
        lines.append(f"| {r['map']} | {r['k']} | {r['weights']} | {r['backend']} | {r['ms']:.1f} "
                     f"| {r['peak_mb']:.1f} | {r['time_vs_reference']:.2f} "
                     f"| {r['memory_vs_reference']:.3f} | {conv} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mixlib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    agg = sub.add_parser("aggregate", help="the primitive's backends")
    agg.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    agg.add_argument("--batch", type=int, default=32)
    agg.add_argument("--repeats", type=int, default=5)
    agg.add_argument("--quick", action="store_true", help="one small size, for a smoke test")
    agg.add_argument("--json", help="also write the rows and the environment to this file")
    na = sub.add_parser("neighborhood", help="neighbourhood attention: aggregate vs dense, by map size")
    na.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    na.add_argument("--repeats", type=int, default=5)
    na.add_argument("--quick", action="store_true", help="two small sizes, for a smoke test")
    na.add_argument("--json", help="also write the rows and the environment to this file")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if args.what == "neighborhood":
        kwargs = dict(sizes=(8, 12), batch=2, repeats=1) if args.quick else dict(repeats=args.repeats)
        start = time.perf_counter()
        rows = bench_neighborhood(device=device, **kwargs)
        env = environment(device)
        print(f"NeighborhoodAttention (k=7, 4 heads), forward + backward, {env}")
        print(format_neighborhood(rows))
        print(f"({time.perf_counter() - start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"environment": env, "rows": rows}, f, indent=1)
    if args.what == "aggregate":
        kwargs = dict(maps=((16, 64),), kernels=(3, 7), batch=4, repeats=1) if args.quick else \
            dict(batch=args.batch, repeats=args.repeats)
        start = time.perf_counter()
        rows = bench_aggregate(device=device, **kwargs)
        env = environment(device)
        print(f"local_aggregate, forward + backward, batch {kwargs['batch']}, {env}")
        print(format_table(rows))
        print(f"({time.perf_counter() - start:.0f} s)")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"environment": env, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
