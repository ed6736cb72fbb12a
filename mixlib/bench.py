"""Benchmarks: time and memory of the primitive, of layers and of the models.

    python -m mixlib.bench aggregate [--quick] [--repeats 5] [--json out.json]
    python -m mixlib.bench small-maps [--quick] [--json out.json]
    python -m mixlib.bench neighborhood [--quick] [--json out.json]
    python -m mixlib.bench mlp [--quick] [--json out.json]
    python -m mixlib.bench models [--which small|imagenet|all] [--vs-timm] [--json out.json]
    python -m mixlib.bench host-reads [--models ...] [--quick] [--json out.json]

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
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the CPU profiler is chatty on stderr

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from .files import atomic_write  # noqa: E402
from .flops import forward_flops  # noqa: E402
from .layers import check_int  # noqa: E402
from .ops import local_aggregate  # noqa: E402
from .provenance import code_commit, environment  # noqa: E402

__all__ = ["time_ms", "time_each_ms", "peak_memory_bytes", "mixer_complexity", "forward_flops",
           "environment", "code_commit", "bench_aggregate", "bench_mlp", "main"]


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


# the small presets' maps at batch 256, as the sweep trains them: (side, channels), k = 7
SMALL_MAPS = ((2, 256), (4, 128), (6, 96), (8, 64), (12, 48), (16, 32))


def bench_small_maps(*, device: torch.device, batch: int = 256, maps=SMALL_MAPS, k: int = 7,
                     groups: int = 8, repeats: int = 3, static_kernels=(3, 5, 7)) -> list[dict]:
    """Small maps, forward + backward (a random output gradient, as in training): where "auto"
    switches to "dense" on the CPU, and where "conv" takes its own derivatives.

    Per-pixel weights (G = `groups`), "lean" against "dense" (``DENSE_MAX_PIXELS``); static
    per-channel weights dilated by 3 (LKA's second convolution), "conv" against "dense"
    (``DENSE_MAX_PIXELS_DILATED``); undilated static weights of each size in `static_kernels`,
    ``F.conv2d`` with PyTorch's derivatives against the "conv" library op with its own
    (``conv.own_derivatives``); and a k×k kernel's gradient alone, oneDNN's
    (``convolution_backward``) against a dense product (``conv.DENSE_GRADIENT_MAX_PIXELS``).
    Ratios are to the first of each group.
    """
    rows = []
    for size, channels in maps:
        v = torch.randn(batch, channels, size, size, device=device).contiguous(
            memory_format=torch.channels_last).requires_grad_(True)
        grad = torch.randn_like(v)

        def static(kernel_size):
            return torch.randn(1, channels, kernel_size ** 2, 1, 1, device=device)

        cases = [
            (f"dynamic G={groups}", k, 1, torch.randn(batch, groups, k * k, size, size, device=device),
             ("lean", "dense")),
            ("static per-channel, dilation 3", k, 3, static(k), ("conv", "dense")),
            *(("static per-channel", kk, 1, static(kk), ("F.conv2d", "own derivatives"))
              for kk in static_kernels),
            ("static per-channel, the kernel's gradient", k, 1, None, ("convolution_backward", "dense")),
        ]
        for weights, kk, dilation, w, backends in cases:
            runs = (_kernel_gradient_runs(v.detach(), grad, kk) if w is None else
                    _aggregate_runs(v, w.requires_grad_(True), kk, dilation, backends, grad))
            times = time_each_ms(runs, device, repeats)
            memory = {b: peak_memory_bytes(run, device) for b, run in runs.items()}
            for b in backends:
                rows.append({"map": f"{size}x{size}x{channels}", "k": kk, "dilation": dilation,
                             "weights": weights, "backend": b, "ms": times[b],
                             "peak_mb": memory[b] / 2 ** 20,
                             "time_vs_reference": times[b] / times[backends[0]],
                             "memory_vs_reference": memory[b] / memory[backends[0]]})
            v.grad = None
    return rows


def _aggregate_runs(v, w, k, dilation, backends, grad) -> dict:
    """Forward + backward of local_aggregate on each backend; "F.conv2d" is the plain
    convolution with PyTorch's derivatives, "own derivatives" the "conv" library op."""
    from .ops import library

    def run(backend):
        if backend == "F.conv2d":
            kernel = w.reshape(v.shape[1], 1, k, k)
            pad = dilation * (k // 2)
            return lambda: F.conv2d(v, kernel, padding=pad, dilation=dilation,
                                    groups=v.shape[1]).backward(grad)
        if backend == "own derivatives":
            return lambda: library.aggregate(v, w, k, dilation, "zeros", "conv").backward(grad)
        return lambda: local_aggregate(v, w, k, dilation, backend=backend).backward(grad)
    return {b: run(b) for b in backends}


def _kernel_gradient_runs(v, grad, k) -> dict:
    """A shared k×k kernel's gradient from the output's gradient and the input: what oneDNN's
    backward computes, and the dense product the "conv" backend takes on small CPU maps."""
    from .ops import dense

    C = v.shape[1]
    kernel = v.new_zeros(C, 1, k, k)
    mask = (False, True, False)
    return {"convolution_backward": lambda: torch.ops.aten.convolution_backward(
                grad, v, kernel, None, (1, 1), (k // 2, k // 2), (1, 1), False, (0, 0), C, mask),
            "dense": lambda: dense.similarity(grad, v, k, 1, "zeros", False, [1, C, k * k, 1, 1])}


# ----------------------------------------------------------------------------------------------
# neighbourhood attention: the two exact implementations, by map size


def bench_neighborhood(*, device: torch.device, batch: int = 16, channels: int = 64, heads: int = 4,
                       kernel_size: int = 7, sizes=(8, 16, 24, 32, 48, 64), repeats: int = 5,
                       implementations=None) -> list[dict]:
    """Forward + backward of NeighborhoodAttention as k×k aggregation, one dense masked SDPA,
    on the CPU 8×8 query tiles against their windows' keys ("tiled") and, on a GPU, compiled
    flex_attention with the windows as a block mask (the CPU has no flex backward). An
    implementation that fails on a map gets a row with its error, not a crash."""
    from .mixers import NeighborhoodAttention

    implementations = implementations or (("aggregate", "dense", "flex") if device.type == "cuda"
                                          else ("aggregate", "dense", "tiled"))
    rows = []
    for size in sizes:
        x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
        measured = {}
        for implementation in implementations:
            try:
                mixer = NeighborhoodAttention(channels, num_heads=heads, kernel_size=kernel_size,
                                              implementation=implementation).to(device)
                run = lambda: mixer(x).sum().backward()  # noqa: E731
                run()  # compiles flex_attention outside the timing
                measured[implementation] = (time_ms(run, device, repeats),
                                            peak_memory_bytes(run, device))
            except Exception as error:  # one failed column must not lose the others
                measured[implementation] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        baseline = measured.get("aggregate")
        for implementation, result in measured.items():
            row = {"map": f"{size}x{size}x{channels}", "pixels": size * size,
                   "implementation": implementation}
            if isinstance(result, str):
                row["error"] = result
            else:
                ms, mem = result
                row.update(ms=ms, peak_mb=mem / 2 ** 20)
                if isinstance(baseline, tuple):
                    row["time_vs_aggregate"] = ms / baseline[0]
            rows.append(row)
    return rows


def format_neighborhood(rows: list[dict]) -> str:
    lines = ["| map | implementation | fwd+bwd ms | peak MB | time / aggregate |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['map']} | {r['implementation']} | failed: {r['error']} | | |")
            continue
        ratio = f"{r['time_vs_aggregate']:.2f}" if "time_vs_aggregate" in r else "-"
        lines.append(f"| {r['map']} | {r['implementation']} | {r['ms']:.1f} | {r['peak_mb']:.1f} "
                     f"| {ratio} |")
    return "\n".join(lines)


# the MetaFormer MLP: 1×1 convolutions or matrix products, by map shape
MLP_SHAPES = ((8, 64, 56), (8, 96, 56), (8, 128, 28), (8, 320, 14), (8, 512, 7),  # ImageNet models
              (64, 28, 16), (64, 56, 8), (64, 112, 4), (64, 224, 2))             # CIFAR presets


def bench_mlp(*, device: torch.device, shapes=MLP_SHAPES, mlp_ratio: int = 4,
              repeats: int = 10) -> list[dict]:
    """Forward + backward of ConvMlp on (B, C, S, S) channels_last maps through both of its
    paths, timed in turns, and the path its forward picks (``ConvMlp.prefers_matmul``)."""
    from .layers import ConvMlp

    rows = []
    for batch, channels, size in shapes:
        mlp = ConvMlp(channels, mlp_ratio * channels).to(device).to(memory_format=torch.channels_last)
        x = torch.randn(batch, channels, size, size, device=device)
        x = x.to(memory_format=torch.channels_last).requires_grad_()

        def run(path):
            return lambda: path(x).square().mean().backward()

        ms = time_each_ms({"conv": run(mlp.as_conv), "matmul": run(mlp.as_matmul)}, device, repeats)
        picked = "matmul" if ConvMlp.prefers_matmul(x) else "conv"
        rows.append({"map": f"{batch}x{channels}x{size}x{size}", "conv_ms": ms["conv"],
                     "matmul_ms": ms["matmul"], "picked": picked,
                     "picked_vs_best": ms[picked] / min(ms.values())})
    return rows


def format_mlp(rows: list[dict]) -> str:
    lines = ["| B×C×H×W | 1×1 conv ms | matmul ms | forward picks | picked / best |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['map']} | {r['conv_ms']:.2f} | {r['matmul_ms']:.2f} | {r['picked']} "
                     f"| {r['picked_vs_best']:.2f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# models: params, FLOPs, throughput, memory

TIMM_TWINS = {"convnext_t": "convnext_tiny", "swin_t": "swin_tiny_patch4_window7_224",
              "poolformer_s12": "poolformer_s12", "coatnet_0": "coatnet_0_224"}


def mixer_complexity(mixer: torch.nn.Module, *, size: int = 32, batch: int = 8,
                     device: torch.device | str = "cpu") -> dict:
    """One row of a chapter's complexity table: a mixer's parameters, forward GFLOPs per
    image and the peak memory (MB) of a forward + backward on a batch of size×size maps."""
    device = torch.device(device)
    mixer = mixer.to(device)
    x = torch.randn(batch, mixer.dim, size, size, device=device, requires_grad=True)
    flops = forward_flops(mixer.eval(), x[:1].detach())
    mixer.train()
    peak = peak_memory_bytes(lambda: mixer(x).sum().backward(), device)
    return {"params": sum(p.numel() for p in mixer.parameters()),
            "gflops": flops["total"] / 1e9, "peak_mb": peak / 2 ** 20}


AMP_DTYPES = {"bf16": torch.bfloat16}  # `bench models --amp`: training under autocast


def _training_step(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                   autocast_dtype: torch.dtype | None = None) -> Callable[[], None]:
    """One forward + backward + AdamW step of `model` on (x, y), as a function; the forward
    under autocast to `autocast_dtype` when one is given, as `mixlib.train --amp` runs it."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with torch.autocast(x.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def _batch(batch: int, image_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images and labels in [0, 10): every preset has at least 10 classes."""
    x = torch.randn(batch, 3, image_size, image_size, device=device)
    return x.to(memory_format=torch.channels_last), torch.randint(0, 10, (batch,), device=device)


def bench_model(model: torch.nn.Module, *, image_size: int, batch: int, device: torch.device,
                repeats: int = 3, amp: str = "off") -> dict:
    """Params, forward GFLOPs per image, inference and training images/s, training peak MB;
    with `amp` ("bf16"), also the training images/s under autocast and its ratio to float32,
    the two steps timed in turns."""
    if amp != "off" and amp not in AMP_DTYPES:
        raise ValueError(f"amp must be 'off' or one of {sorted(AMP_DTYPES)}, got {amp!r}")
    model = model.to(device).to(memory_format=torch.channels_last)
    x, y = _batch(batch, image_size, device)
    model.eval()
    flops = forward_flops(model, x[:1])
    with torch.no_grad():
        infer_ms = time_ms(lambda: model(x), device, repeats)
    step = _training_step(model, x, y)
    if amp == "off":
        train_ms = time_ms(step, device, repeats)
    else:  # both steps in turns: the ratio and the two speeds from the same rounds
        mixed = _training_step(model, x, y, autocast_dtype=AMP_DTYPES[amp])
        ms = time_each_ms({"fp32": step, amp: mixed}, device, repeats)
        train_ms = ms["fp32"]
    row = {"params": sum(p.numel() for p in model.parameters()),
           "gflops_forward": flops["total"] / 1e9, "gflops_train": 3 * flops["total"] / 1e9,
           "gflops_by_formula": (flops["total"] - flops["counter"]) / 1e9,
           "infer_img_s": batch / infer_ms * 1e3, "train_img_s": batch / train_ms * 1e3,
           "train_peak_mb": peak_memory_bytes(step, device) / 2 ** 20}
    if amp != "off":
        row.update(amp=amp, train_img_s_amp=batch / ms[amp] * 1e3,
                   train_speed_amp_vs_fp32=ms["fp32"] / ms[amp])
    return row


def _own_image_size(name: str) -> int:
    """The image size a preset is built for: CIFAR 32, Imagenette 160, ImageNet 224."""
    return 32 if name.endswith("_cifar") else 160 if name.endswith("_imagenette") else 224


def _training_steps(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int,
                    read_every_step: bool) -> Callable[[], None]:
    """`steps` training steps of `model` on (x, y) with the training loop's bookkeeping (a
    finiteness check of the loss and of the gradient norm, the correct count, the loss sum),
    as a function, in one of two forms:

    - ``read_every_step``: read on the host as the loop did before ``ab5181b``: five reads a
      step, the first right after the forward, so the host waits for the device before it can
      queue the backward;
    - else as ``mixlib.train`` does now: the step's numbers stay on the device, and one
      transfer reads them every 20 steps (``settle``, at ``log_every``) and at the end.
    """
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        if read_every_step and not torch.isfinite(loss.detach()).item():
            raise FloatingPointError(f"the loss is {loss.item()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        if read_every_step and not torch.isfinite(grad_norm):
            raise FloatingPointError(f"the gradient norm is {grad_norm.item()}")
        optimizer.step()
        correct = (logits.argmax(1) == y).sum()
        if read_every_step:
            return int(correct), loss.item() * len(y), loss.item() * len(y)  # sum, curve
        return torch.stack([loss.detach() * len(y), grad_norm.detach(), correct.float()])

    def run():
        pending = []
        for i in range(1, steps + 1):
            numbers = step()
            if not read_every_step:
                pending.append(numbers)
                if i % 20 == 0 or i == steps:  # settle(): one transfer for the steps since
                    if not torch.isfinite(torch.stack(pending)).all().item():
                        raise FloatingPointError("a step's loss or gradient norm is not finite")
                    pending.clear()

    return run


def bench_host_reads(names: list[str], *, device: torch.device, batch: int = 256,
                     steps: int = 40, repeats: int = 3) -> list[dict]:
    """The training loop's throughput before and after it stopped reading the device every step
    (issue 19): per preset, `steps` training steps with five host reads a step and with one
    transfer every 20 steps (`_training_steps`), timed in turns; images/s of each and their
    ratio. On a CPU a read costs next to nothing; on a GPU each one makes the host wait for the
    device to finish the work queued so far."""
    from . import models

    for arg, value in (("batch", batch), ("steps", steps), ("repeats", repeats)):
        check_int(arg, value)
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = models.build(name).to(device).to(memory_format=torch.channels_last)
        size = _own_image_size(name)
        x, y = _batch(batch, size, device)
        ms = time_each_ms({form: _training_steps(model, x, y, steps=steps,
                                                 read_every_step=form == "before")
                           for form in ("before", "after")}, device, repeats)
        rows.append({"model": name, "batch": batch, "steps": steps,
                     "img_s_before": batch * steps / ms["before"] * 1e3,
                     "img_s_after": batch * steps / ms["after"] * 1e3,
                     "speedup": ms["before"] / ms["after"]})
    return rows


def format_host_reads(rows: list[dict]) -> str:
    lines = ["| model | batch | steps | img/s, 5 reads a step | img/s, 1 read per 20 steps "
             "| after / before |", "|" + "---|" * 6]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['steps']} | {r['img_s_before']:.1f} "
                     f"| {r['img_s_after']:.1f} | {r['speedup']:.2f} |")
    return "\n".join(lines)


def preset_names(which: str) -> list[str]:
    """The presets `bench models --which` measures: "small", the mixer presets of one skeleton
    (chapter 8's table); "imagenet", the papers' models; "all", every preset, the reference
    networks of `models.reference` included."""
    from . import models
    from .models import small

    imagenet = [n for n in models.available() if not n.endswith(("_cifar", "_imagenette"))]
    choices = {"small": sorted(small.PRESETS), "imagenet": imagenet, "all": models.available()}
    if which not in choices:
        raise ValueError(f"which must be one of {sorted(choices)}, got {which!r}")
    return choices[which]


def bench_models(names: list[str], *, device: torch.device, batch: int, repeats: int,
                 vs_timm: bool = False, amp: str = "off", turns: bool = False,
                 image_size: int | None = None) -> list[dict]:
    """One row per preset (`bench_model`); with `turns`, also every preset's training speed
    measured in turns, one step of each per round (``train_img_s_turns``): on a machine shared
    with other work, the speeds to compare presets by. `image_size`: the small presets built for
    that size (as ``mixlib.train --image-size`` builds them), instead of their own."""
    from . import models

    rows, steps = [], {}
    for name in names:
        small = name.endswith(("_cifar", "_imagenette"))
        if image_size is not None and not small:
            raise ValueError(f"image_size={image_size} is for the small presets only, got {name!r}")
        size = image_size or _own_image_size(name)
        torch.manual_seed(0)
        ours = models.build(name, **({"image_size": image_size} if image_size else {}))
        row = {"model": name, "image_size": size,
               **bench_model(ours, image_size=size, batch=batch, device=device, repeats=repeats,
                             amp=amp)}
        if turns:
            steps[name] = _training_step(ours, *_batch(batch, size, device))
        if vs_timm and name in TIMM_TWINS and not small:
            import timm

            twin = timm.create_model(TIMM_TWINS[name]).to(device).to(memory_format=torch.channels_last)
            row["timm_model"] = TIMM_TWINS[name]
            row["timm_params"] = sum(p.numel() for p in twin.parameters())
            # the ratio from steps taken in turns, so that a busy spell of the machine hits both
            x, y = _batch(batch, size, device)
            ms = time_each_ms({"mixlib": _training_step(ours, x, y),
                               "timm": _training_step(twin, x, y)}, device, repeats)
            row["timm_train_img_s"] = batch / ms["timm"] * 1e3
            row["train_speed_vs_timm"] = ms["timm"] / ms["mixlib"]
        rows.append(row)
    if turns:
        ms = time_each_ms(steps, device, repeats)
        for row in rows:
            row["train_img_s_turns"] = batch / ms[row["model"]] * 1e3
    return rows


def format_models(rows: list[dict]) -> str:
    lines = ["| model | image | params (M) | fwd GFLOPs | train GFLOPs | by formula | infer img/s "
             "| train img/s | train peak MB | vs timm | amp train img/s | amp vs fp32 |",
             "|" + "---|" * 12]
    for r in rows:
        vs = f"{r['train_speed_vs_timm']:.2f}" if "train_speed_vs_timm" in r else ""
        amp = (f"{r['train_img_s_amp']:.1f} ({r['amp']}) | {r['train_speed_amp_vs_fp32']:.2f}"
               if "amp" in r else " | ")
        lines.append(f"| {r['model']} | {r['image_size']} | {r['params'] / 1e6:.2f} "
                     f"| {r['gflops_forward']:.3f} | {r['gflops_train']:.3f} | {r['gflops_by_formula']:.3f} "
                     f"| {r['infer_img_s']:.0f} | {r['train_img_s']:.1f} | {r['train_peak_mb']:.0f} | {vs} "
                     f"| {amp} |")
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
    small = sub.add_parser("small-maps", help="small maps: lean or conv vs dense")
    small.add_argument("--device", default="cpu")
    small.add_argument("--repeats", type=int, default=3)
    small.add_argument("--quick", action="store_true", help="two small maps, for a smoke test")
    small.add_argument("--json", help="also write the rows and the environment to this file")
    na = sub.add_parser("neighborhood", help="neighbourhood attention: aggregate vs dense, by map size")
    na.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    na.add_argument("--repeats", type=int, default=5)
    na.add_argument("--quick", action="store_true", help="two small sizes, for a smoke test")
    na.add_argument("--json", help="also write the rows and the environment to this file")
    mlp = sub.add_parser("mlp", help="ConvMlp as 1×1 convolutions or as matrix products, by shape")
    mlp.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    mlp.add_argument("--repeats", type=int, default=10)
    mlp.add_argument("--quick", action="store_true", help="two small shapes, for a smoke test")
    mlp.add_argument("--json", help="also write the rows and the environment to this file")
    mod = sub.add_parser("models", help="params, FLOPs, throughput and memory of the presets")
    mod.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    mod.add_argument("--which", default="small", choices=["small", "imagenet", "all"],
                     help="the small mixer presets (CIFAR/Imagenette), the papers' models, or every preset")
    mod.add_argument("--models", nargs="*", help="these presets instead")
    mod.add_argument("--batch", type=int, default=None,
                     help="default 64 when every model is a small preset, else 8")
    mod.add_argument("--repeats", type=int, default=3)
    mod.add_argument("--vs-timm", action="store_true", help="timm's same models beside them")
    mod.add_argument("--amp", default="off", choices=["off", *AMP_DTYPES],
                     help="also time training under autocast to this type, beside float32")
    mod.add_argument("--image-size", type=int, default=None,
                     help="build the small presets for this image size (the sweep's Imagenette: 128)")
    mod.add_argument("--turns", action="store_true",
                     help="also time every preset's training step in turns (train_img_s_turns)")
    mod.add_argument("--json", help="also write the rows and the environment to this file")
    reads = sub.add_parser("host-reads", help="the training loop reading the device every step "
                                              "or every 20 steps")
    reads.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    reads.add_argument("--models", nargs="*", default=["pooling_cifar", "dwconv_cifar", "cctt_cifar"])
    reads.add_argument("--batch", type=int, default=256)
    reads.add_argument("--steps", type=int, default=40)
    reads.add_argument("--repeats", type=int, default=3)
    reads.add_argument("--quick", action="store_true", help="one preset, a few small steps")
    reads.add_argument("--json", help="also write the rows and the environment to this file")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    started = time.perf_counter()
    commit = code_commit()  # the code the numbers were measured with, read before they are
    if args.what == "models":
        names = args.models or preset_names(args.which)
        small = all(n.endswith(("_cifar", "_imagenette")) for n in names)
        batch = args.batch or (64 if small else 8)  # 64 ImageNet images at 224 px take 20 GB
        rows = bench_models(names, device=device, batch=batch, repeats=args.repeats,
                            vs_timm=args.vs_timm, amp=args.amp, turns=args.turns,
                            image_size=args.image_size)
        title, table = f"models, batch {batch}, training = forward + backward + AdamW step", format_models(rows)
        extra = {"batch": batch, "repeats": args.repeats, "amp": args.amp, "turns": args.turns}
    elif args.what == "host-reads":
        kwargs = dict(names=["pooling_cifar"], batch=4, steps=3, repeats=1) if args.quick else \
            dict(names=args.models, batch=args.batch, steps=args.steps, repeats=args.repeats)
        rows = bench_host_reads(device=device, **kwargs)
        title = ("training steps with the loop's host reads: five a step (before ab5181b) "
                 "or one transfer per 20 steps (now), in turns")
        table, extra = format_host_reads(rows), {"repeats": kwargs["repeats"]}
    elif args.what == "mlp":
        kwargs = dict(shapes=((2, 8, 8), (2, 64, 2)), repeats=1) if args.quick else \
            dict(repeats=args.repeats)
        rows = bench_mlp(device=device, **kwargs)
        title, table = "ConvMlp (ratio 4), forward + backward", format_mlp(rows)
        extra = {"repeats": kwargs["repeats"]}
    elif args.what == "small-maps":
        kwargs = dict(maps=((2, 16), (4, 16)), batch=2, repeats=1) if args.quick else \
            dict(repeats=args.repeats)
        rows = bench_small_maps(device=device, **kwargs)
        extra = {"repeats": kwargs["repeats"], "batch": kwargs.get("batch", 256)}
        title, table = ("local_aggregate on small maps, forward + backward, "
                        f"batch {extra['batch']}; ratios to the first of each group"), format_table(rows)
    elif args.what == "neighborhood":
        kwargs = dict(sizes=(8, 12), batch=2, repeats=1) if args.quick else dict(repeats=args.repeats)
        rows = bench_neighborhood(device=device, **kwargs)
        extra = {"repeats": kwargs["repeats"]}
        title, table = "NeighborhoodAttention (k=7, 4 heads), forward + backward", format_neighborhood(rows)
    else:
        kwargs = dict(maps=((16, 64),), kernels=(3, 7), batch=4, repeats=1) if args.quick else \
            dict(batch=args.batch, repeats=args.repeats)
        rows = bench_aggregate(device=device, **kwargs)
        extra = {"batch": kwargs["batch"], "repeats": kwargs["repeats"]}
        title, table = f"local_aggregate, forward + backward, batch {kwargs['batch']}", format_table(rows)
    env = environment(device)
    print(f"{title}, {env}")
    print(table)
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.json:
        record = {"environment": env, "commit": commit, "title": title, **extra, "rows": rows}
        atomic_write(Path(args.json), lambda tmp: tmp.write_text(json.dumps(record, indent=1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
