"""FLOP counting, outside the primitive: torch's counter, taught mixlib's ops, plus the mixers'
own formulas.

    from mixlib.flops import forward_flops
    forward_flops(model, x)   # {"counter": ..., "aggregate": ..., "fft": ..., "total": ...}

``torch.utils.flop_counter`` counts matrix products, convolutions and attention. This module
registers formulas for mixlib's library ops (``mixlib::aggregate``, ``adjoint``,
``similarity``: 2 FLOPs per channel, pixel and offset), so the counter sees the primitive as it
runs on every backend but "reference". Static weights on the "conv" backend are depthwise
convolutions run through those ops (for their faster derivatives): their FLOPs go to the
counter's column, with the other convolutions, as when they ran as ``F.conv2d``. On "dense" that is the window's products, not the zeros its N × N matrix
product also multiplies: the algorithm's cost, the same on every backend. The "reference"
backend's unfold is not counted: it is the definition, not a way to run a model. What the
counter cannot see at all (FFTs, pooling) each mixer declares in its ``MixerInfo.flops``
(mixlib.mixers), and `forward_flops` adds it up under the formula's label.
"""
from __future__ import annotations

import math

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from .mixers import MixerInfo
from .ops import library  # noqa: F401  (defines torch.ops.mixlib.*)

__all__ = ["AGGREGATION_OPS", "forward_flops"]


_CONVOLUTION_FLOPS: list[int] = []  # the "conv" backend's, while forward_flops counts


def _windowed(x_shape, w_shape, kernel_size, *args, out_shape=None, **kwargs) -> int:
    flops = 2 * math.prod(x_shape) * kernel_size ** 2  # a multiply-add per channel, pixel, offset
    if "conv" in args:  # the backend (no other argument is a string "conv")
        _CONVOLUTION_FLOPS.append(flops)
    return flops


AGGREGATION_OPS = (torch.ops.mixlib.aggregate, torch.ops.mixlib.adjoint,
                   torch.ops.mixlib.similarity)
for _op in AGGREGATION_OPS:
    register_flop_formula(_op)(_windowed)


def _mixer_info(module: torch.nn.Module) -> MixerInfo | None:
    declared = getattr(type(module), "info", None)
    return declared if isinstance(declared, MixerInfo) else None


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """Forward FLOPs (2 per multiply-add) of one batch, split by where they were counted.

    "counter": torch.utils.flop_counter (matrix products, convolutions, the "conv" backend's
    included; attention counted through the math SDPA backend, which the counter sees on the
    CPU); "aggregate": mixlib's local_aggregate / local_similarity outside convolutions; then one entry per label of the
    mixers' own formulas (``MixerInfo.flops``: "fft" for the global filters, "pooling" for
    PoolFormer's mixer), and "total". A mixer's ``MixerInfo.flop_settings`` are in force
    while counting (neighbourhood attention is counted as the k×k windows it computes,
    whichever implementation would run).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    parts: dict[str, int] = {"counter": 0, "aggregate": 0}
    hooks, saved = [], []
    for module in model.modules():
        declared = _mixer_info(module)
        if declared is None:
            continue
        if declared.flops is not None:
            formula = declared.flops
            parts.setdefault(formula.label, 0)

            def hook(module, inputs, output, formula=formula):
                parts[formula.label] += int(formula.count(module, inputs, output))

            hooks.append(module.register_forward_hook(hook))
        for attribute, value in declared.flop_settings.items():
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, value)
    _CONVOLUTION_FLOPS.clear()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
        for module, attribute, value in reversed(saved):
            setattr(module, attribute, value)
    by_op = counter.get_flop_counts().get("Global", {})
    aggregate = sum(count for op, count in by_op.items() if op in AGGREGATION_OPS)
    aggregate -= sum(_CONVOLUTION_FLOPS)
    parts["aggregate"] = aggregate
    parts["counter"] = counter.get_total_flops() - aggregate
    parts["total"] = sum(parts.values())
    return parts
