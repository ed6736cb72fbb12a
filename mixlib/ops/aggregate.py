"""Local aggregation, the one primitive of the book.

Every local token mixer in the book computes

    y_i = Σ_{j ∈ N(i)} w_ij ⊙ v_j                                           (1)

where N(i) is the k×k window around pixel i (spread out by a dilation d) and w_ij holds one
weight per group of channels. Mixers differ only in where w comes from: learned and static
(depthwise conv), generated from the input (dynamic conv), or query-key similarity (attention).
This module holds the two operations all of them share:

- ``local_similarity(q, k, kernel_size)``: the logits q_i · k_j for every neighbour j of i,
  the raw material of local attention weights;
- ``local_aggregate(v, w, kernel_size)``: equation (1) itself.

Shape legend
    B batch, C channels, H × W the feature map, G weight groups (heads), G divides C and
    channel c belongs to group c // (C // G). K = k*k neighbour offsets o = (dy, dx) in row-major
    order from (-r, -r) to (r, r), r = k // 2, each times the dilation d: neighbour j = i + d·o.
    Weights w have shape (B or 1, G, K, H or 1, W or 1); an axis of size 1 is shared.

Borders (``border=``): "zeros", the default, makes a neighbour outside the image a zero for
aggregation and a -inf logit for similarity, so that a softmax gives it no mass. "clamp" is
neighbourhood attention's rule instead: a border pixel's window shifts inward, so that every
pixel has k*k neighbours inside the image. Both rules are written once, in
``geometry.axis_neighbours``, which every backend reads; a map too small for a clamped window is
a ValueError on every backend (``geometry.check_clamp_fits``). Offsets are those of
cross-correlation, like ``F.conv2d``: w[..., o, i] multiplies v at i + d·o.

Backends (all exact; float64 results agree to 1e-12, gradients too)
    "reference"  ``F.unfold`` copies every neighbourhood (K times the input): the definition,
                 differentiated by plain autograd.
    "lean"       a loop over the K offsets on shifted views of a padded input (``lean``), so
                 memory stays O(input + weights); sums in float32 for half-precision inputs.
    "dense"      each image and group's weights as an N × N matrix (N = H·W) and the ops as
                 batched matrix products (``dense``): memory O(B·G·N²), for small maps, where
                 the CPU runs it many times faster than lean's K passes.
    "conv"       static weights (H = W = 1) through ``F.conv2d(groups=...)``, i.e. the
                 library's depthwise-convolution kernels; per-sample static weights fold the
                 batch into the groups. A shared kernel of 7×7 or more on a small CPU map
                 has derivatives of its own (``conv.own_derivatives``): the input's gradient
                 a convolution with the flipped kernel, the kernel's a matrix product, since
                 oneDNN's backward of such kernels costs tens of times its forward. Under CPU
                 autocast it computes in float32 (or wider): oneDNN's bf16 depthwise kernels
                 are the slow ones there, while the dense convolutions around them gain. The
                 rule is this backend's, not the caller's: only the dispatch here knows that
                 a mixer's weights reach these kernels.
    "triton"     fused GPU kernels (``triton_kernels``) that never copy the neighbourhoods and
                 use no atomics (deterministic); CUDA tensors, or the CPU under
                 ``TRITON_INTERPRET=1``.
    "auto"       the fastest exact backend for the weights given: "conv" for static weights
                 (on the CPU "dense" for dilated ones up to ``DENSE_MAX_PIXELS_DILATED``
                 pixels), else "triton" on a GPU, and on the CPU "dense" up to
                 ``DENSE_MAX_PIXELS`` pixels, "lean" above (``python -m mixlib.bench
                 aggregate`` and ``small-maps`` show why).

"lean", "dense", "conv" and "triton" run as PyTorch library ops (``library``): one node each under
``torch.compile``, with derivatives of every order, ``torch.func.grad``, ``vmap`` and ``jvp``.
Weights and values must be on one device (a ValueError says which argument is not).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from einops import rearrange

from . import conv, library
from .geometry import (
    BORDERS,
    axis_neighbours,
    check_border,
    check_clamp_fits,
    check_window,
    clamped_neighbours,
    neighbour_mask,
    neighbour_offsets,
    window_positions,
)
from .dense import DENSE_MAX_PIXELS, DENSE_MAX_PIXELS_DILATED
from .lean import Window

__all__ = [
    "AGGREGATE_BACKENDS",
    "BORDERS",
    "axis_neighbours",
    "clamped_neighbours",
    "window_positions",
    "SIMILARITY_BACKENDS",
    "local_aggregate",
    "local_similarity",
    "neighbour_offsets",
    "neighbour_mask",
]

AGGREGATE_BACKENDS = ("auto", "reference", "lean", "dense", "conv", "triton")
SIMILARITY_BACKENDS = ("auto", "reference", "lean", "dense", "triton")


# ----------------------------------------------------------------------------------------------
# Argument checks: every message names the argument and the value


def _check_map(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():  # integer sums would wrap or truncate, bools would not sum
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_backend(backend: str, allowed: tuple[str, ...]) -> None:
    if backend not in allowed:
        raise ValueError(f"backend must be one of {allowed}, got {backend!r}")


def _check_same_device(name: str, x: torch.Tensor, other: str, y: torch.Tensor) -> None:
    """A kernel launched on one device cannot read the other's memory: say so up front."""
    if x.device != y.device:
        raise ValueError(f"{name} must be on the device of {other} ({y.device}), got {name} on "
                         f"{x.device}")


def _check_clamp(border: str, x: torch.Tensor, kernel_size: int, dilation: int) -> None:
    """Every backend refuses a map too small for a clamped window, before it dispatches."""
    if border == "clamp":
        for length in x.shape[-2:]:
            check_clamp_fits(length, kernel_size, dilation)


def _check_weights(v: torch.Tensor, w, kernel_size: int) -> None:
    if not isinstance(w, torch.Tensor) or w.dim() != 5:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w must have shape (B or 1, G, k*k, H or 1, W or 1), got {shape}")
    B, C, H, W = v.shape
    Bw, G, K, Hw, Ww = w.shape
    if K != kernel_size ** 2:
        raise ValueError(f"w has {K} offsets on dim 2 but kernel_size={kernel_size} needs "
                         f"{kernel_size ** 2}; w.shape={tuple(w.shape)}")
    if G < 1 or C % G:
        raise ValueError(f"w has G={G} groups on dim 1, which must divide the C={C} channels of v; "
                         f"w.shape={tuple(w.shape)}")
    for axis, size, full in (("batch", Bw, B), ("height", Hw, H), ("width", Ww, W)):
        if size not in (1, full):
            raise ValueError(f"w's {axis} axis must be 1 or {full} to match v of shape "
                             f"{tuple(v.shape)}, got w.shape={tuple(w.shape)}")


# ----------------------------------------------------------------------------------------------
# "reference": the definition, every neighbourhood copied


def _unfold(x: torch.Tensor, kernel_size: int, dilation: int,
            groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, G, C/G, K, H, W): every neighbourhood copied,
    zeros outside."""
    B, C, H, W = x.shape
    pad = dilation * (kernel_size // 2)
    cols = F.unfold(x, kernel_size, dilation=dilation, padding=pad)
    # unfold's (B, C·K, H·W) is channel-major: channel c's K offsets are
    # contiguous
    return rearrange(cols, "b (g c o) (h w) -> b g c o h w",
                     g=groups, o=kernel_size ** 2, h=H)


def _gather_all(x: torch.Tensor, kernel_size: int, dilation: int, groups: int,
                border: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, G, C/G, K, H, W) under either border rule."""
    if border == "zeros":
        return _unfold(x, kernel_size, dilation, groups)
    H, W = x.shape[2:]
    window = Window(H, W, kernel_size, dilation, border, x.device)
    source = window.source(x)
    neighbours = torch.stack([window.neighbours(source, o)
                              for o in range(kernel_size ** 2)], dim=2)
    # (B, C, K, H, W) -> (B, G, C/G, K, H, W)
    return neighbours.unflatten(1, (groups, -1))


def _reference_aggregate(v, w, kernel_size, dilation, border):
    # (B, G, C/G, K, H, W): each pixel's K neighbours
    neighbours = _gather_all(v, kernel_size, dilation, w.shape[1], border)
    # w: (B, G, 1, K, H, W), shared by a group's channels; sum over offsets
    y = (neighbours * w.unsqueeze(2)).sum(3)
    return rearrange(y, "b g c h w -> b (g c) h w")


def _reference_similarity(q, k, kernel_size, dilation, groups, border):
    keys = _gather_all(k, kernel_size, dilation, groups, border)  # (B, G, C/G, K, H, W)
    queries = rearrange(q, "b (g c) h w -> b g c 1 h w", g=groups)
    logits = (queries * keys).sum(2)  # (B, G, K, H, W), dot product within each group
    if border == "clamp":
        return logits  # every neighbour is inside the image
    inside = neighbour_mask(q.shape[2], q.shape[3], kernel_size, dilation, q.device)
    return logits.masked_fill(~inside, float("-inf"))


# ----------------------------------------------------------------------------------------------
# "conv": static weights through the convolution kernels


def _conv_aggregate(v, w, kernel_size, dilation):
    if v.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        # oneDNN's depthwise kernels ran 2-3 times slower in bf16 than in float32 on an AMX
        # Xeon, backward included, while the dense convolutions around them gain (chapter 8):
        # this one stays out of autocast, at float32 or wider
        dtype = torch.promote_types(v.dtype, torch.float32)
        with torch.autocast("cpu", enabled=False):
            return _conv_aggregate(v.to(dtype), w.to(dtype), kernel_size, dilation)
    conv.check_static(w.shape)
    if conv.own_derivatives(v, w, kernel_size):  # large kernels on small CPU maps
        return library.aggregate(v, w, kernel_size, dilation, "zeros", "conv")
    return conv.aggregate(v, w, kernel_size, dilation, "zeros")  # F.conv2d, PyTorch's derivatives


# ----------------------------------------------------------------------------------------------
# "triton": fused kernels, loaded on first use (so that TRITON_INTERPRET can be set before)


def _triton_usable(x: torch.Tensor) -> bool:
    if not (x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _check_triton(x: torch.Tensor) -> None:
    if not _triton_usable(x):
        raise ValueError("backend='triton' needs CUDA tensors and the triton package (or "
                         f"TRITON_INTERPRET=1 on the CPU); got a tensor on {x.device}")


def _static_backend(x: torch.Tensor, w: torch.Tensor, dilation: int) -> str:
    """"auto"'s choice for static weights: the convolution kernels, but for a dilated kernel
    that the batch shares, on a small CPU map, one matrix product per channel, since oneDNN's
    dilated depthwise kernel is the slow one there (``python -m mixlib.bench small-maps``).
    Per-image kernels stay with the convolution: their matrices would be B times as large."""
    small = x.shape[2] * x.shape[3] <= DENSE_MAX_PIXELS_DILATED
    shared = w.shape[0] == 1
    return "dense" if x.device.type == "cpu" and dilation > 1 and small and shared else "conv"


def _dynamic_backend(x: torch.Tensor) -> str:
    """"auto"'s choice for weights that vary over pixels (or logits): the fused kernels on a
    GPU; on the CPU one matrix product per image and group for small maps, lean's K passes on
    larger ones."""
    if x.is_cuda and _triton_usable(x):
        return "triton"
    small = x.shape[2] * x.shape[3] <= DENSE_MAX_PIXELS
    return "dense" if x.device.type == "cpu" and small else "lean"


# ----------------------------------------------------------------------------------------------
# The two public operations


def local_aggregate(v: torch.Tensor, w: torch.Tensor, kernel_size: int, dilation: int = 1,
                    backend: str = "auto", *, border: str = "zeros") -> torch.Tensor:
    """y_i = Σ_{j ∈ N(i)} w_ij ⊙ v_j over the dilated k×k window N(i) (equation 1).

    Args:
        v: values, (B, C, H, W).
        w: weights, (B or 1, G, k*k, H or 1, W or 1); channel c uses group c // (C // G).
            w[:, g, o, i] weighs the o-th neighbour of i: i + offset_o under border="zeros"
            (the o-th of ``neighbour_offsets(kernel_size, dilation)``), the o-th position of
            NATTEN's shifted window under "clamp" (``geometry.window_positions``).
        kernel_size: k, odd.
        dilation: d, the spacing between the neighbours.
        backend: "auto", "reference", "lean", "dense", "conv" or "triton" (module docstring).
        border: "zeros" (out-of-image neighbours are zeros, like a zero-padded convolution) or
            "clamp" (windows shift inward at the border, as in neighbourhood attention).

    Returns:
        y, (B, C, H, W).
    """
    check_window(kernel_size, dilation)
    _check_map("v", v)
    _check_weights(v, w, kernel_size)
    _check_same_device("w", w, "v", v)
    _check_backend(backend, AGGREGATE_BACKENDS)
    check_border(border)
    _check_clamp(border, v, kernel_size, dilation)
    if border == "clamp" and backend == "conv":
        raise ValueError("backend='conv' has zero padding only; border='clamp' needs "
                         "backend 'lean', 'dense', 'reference', 'triton' or 'auto'")
    if v.dtype != w.dtype:  # e.g. bf16 values with fp32 softmax weights under autocast
        dtype = torch.promote_types(v.dtype, w.dtype)
        v, w = v.to(dtype), w.to(dtype)
    if backend == "auto":
        if w.shape[3:] == (1, 1) and border == "zeros":
            backend = _static_backend(v, w, dilation)
        else:
            backend = _dynamic_backend(v)
    if backend == "conv":
        return _conv_aggregate(v, w, kernel_size, dilation)
    if backend == "reference":
        return _reference_aggregate(v, w, kernel_size, dilation, border)
    if backend == "triton":
        _check_triton(v)
    return library.aggregate(v, w, kernel_size, dilation, border, backend)


def local_similarity(q: torch.Tensor, k: torch.Tensor, kernel_size: int, dilation: int = 1, *,
                     groups: int = 1, backend: str = "auto", border: str = "zeros") -> torch.Tensor:
    """logits[b, g, o, i] = q_i · k_{n(i, o)}, the dot product over the channels of group g,
    where n(i, o) is the o-th neighbour of i: i + d·o under border="zeros", the o-th position of
    NATTEN's shifted window under "clamp" (``geometry.window_positions``).

    Args:
        q: queries, (B, C, H, W); scale them first if the attention is scaled.
        k: keys, (B, C, H, W).
        kernel_size: k, odd.
        dilation: d.
        groups: G, the number of heads; G divides C.
        backend: "auto", "reference", "lean", "dense" or "triton".
        border: "zeros" (out-of-image neighbours get -inf) or "clamp" (windows shift inward).

    Returns:
        logits, (B, G, k*k, H, W), -inf where the neighbour is outside the image.
    """
    check_window(kernel_size, dilation)
    _check_map("q", q)
    _check_map("k", k)
    _check_same_device("k", k, "q", q)
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or q.shape[1] % groups:
        raise ValueError(f"groups must be a positive int dividing the C={q.shape[1]} channels, "
                         f"got {groups!r}")
    _check_backend(backend, SIMILARITY_BACKENDS)
    check_border(border)
    _check_clamp(border, q, kernel_size, dilation)
    if q.dtype != k.dtype:
        dtype = torch.promote_types(q.dtype, k.dtype)
        q, k = q.to(dtype), k.to(dtype)
    if backend == "auto":
        backend = _dynamic_backend(q)
    if backend == "reference":
        return _reference_similarity(q, k, kernel_size, dilation, groups, border)
    if backend == "triton":
        _check_triton(q)
    return library.similarity(q, k, kernel_size, dilation, groups, border, backend)
