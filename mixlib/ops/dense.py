"""The "dense" backend: the three bilinear ops as matrix products over all N = H·W pixels.

Each image and group's weights are scattered into an N × N matrix A, A[i, j] = w[o, i] where
j = n(i, o) is the o-th neighbour of i (zero elsewhere), and the ops become batched matrix
products, which the CPU runs far faster than K shifted passes over a small map:

- ``aggregate(x, w)``:  y = x Aᵀ    y[c, i] = Σ_o w[g, o, i] · x[c, n(i, o)]
- ``adjoint(x, w)``:    y = x A     y[c, j] = Σ_{(i, o): n(i, o) = j} w[g, o, i] · x[c, i]
- ``similarity(q, k)``: S = qᵀ k, then s[g, o, i] = S[i, n(i, o)], read off at the window.

Memory is O(B·G·N²) and the work N² per channel instead of N·K, so this is a backend for
small maps only: "auto" takes it on the CPU up to ``DENSE_MAX_PIXELS`` pixels for per-pixel
weights and ``DENSE_MAX_PIXELS_DILATED`` for dilated static ones (``python -m mixlib.bench
small-maps`` shows where it stops paying). Weights shared by the batch make one matrix for all
images, whose rows then go through one product together. The borders come from
``geometry.window_positions``, as in every backend; a neighbour outside the image ("zeros")
points at a spare column N, which reads a zero and is dropped. Sums run in float32 for float16
and bfloat16 inputs (float64 for float64), rounded once to the input's dtype, as in ``lean``,
also under autocast (which would run the products in bfloat16; the op turns it off).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from einops import rearrange

from .geometry import inside, window_positions
from .lean import accumulator

# "auto" on the CPU (python -m mixlib.bench small-maps): per-pixel weights up to 8×8 maps;
# static dilated kernels, which oneDNN's depthwise convolution runs slowly, up to 16×16
DENSE_MAX_PIXELS = 64
DENSE_MAX_PIXELS_DILATED = 256


def neighbour_index(height: int, width: int, kernel_size: int, dilation: int, border: str,
                    device) -> torch.Tensor:
    """(N, K) long: the flat position n(i, o) of neighbour o of pixel i; N (a spare column)
    where that neighbour lies outside the image."""
    rows, cols = window_positions(height, width, kernel_size, dilation, border, device)  # (K, H, W)
    outside = ~inside(rows, cols, height, width)
    return (rows * width + cols).masked_fill(outside, height * width).flatten(1).t()


def weight_matrix(w: torch.Tensor, height: int, width: int, index: torch.Tensor,
                  dtype) -> torch.Tensor:
    """A, (B or 1, G, N, N): each pixel's K weights scattered into its row at its neighbours."""
    B, G, K = w.shape[:3]
    N = height * width
    # (B, G, K, H, W) -> (B, G, N, K): a pixel's K weights as one row, pixels flattened
    rows = rearrange(w.to(dtype).expand(B, G, K, height, width), "b g k h w -> b g (h w) k")
    matrix = rows.new_zeros(B, G, N, N + 1)  # + the spare column of outside neighbours
    return matrix.scatter_add_(3, index.expand(B, G, N, K), rows)[..., :N]


def _exact(op):
    """Run `op` with autocast off: its matrix products would otherwise run in bfloat16 on a CPU
    under autocast, where the sums are meant to be float32 (as lean's and Triton's are)."""
    @functools.wraps(op)
    def run(x, *args, **kwargs):
        with torch.autocast(x.device.type, enabled=False):
            return op(x, *args, **kwargs)
    return run


def _apply(x, w, kernel_size, dilation, border, transpose: bool) -> torch.Tensor:
    B, C, H, W = x.shape
    G, acc = w.shape[1], accumulator(x.dtype)
    index = neighbour_index(H, W, kernel_size, dilation, border, x.device)
    matrix = weight_matrix(w, H, W, index, acc)
    if transpose:
        matrix = matrix.transpose(2, 3)
    if w.shape[0] == 1 and B > 1:  # one matrix for the batch: every image's rows in one product
        rows = rearrange(x.to(acc), "b (g c) h w -> 1 g (b c) (h w)", g=G)
        return rearrange(rows @ matrix, "1 g (b c) (h w) -> b (g c) h w", b=B, h=H).to(x.dtype)
    channels = rearrange(x.to(acc), "b (g c) h w -> b g c (h w)", g=G)  # a group's channels
    return rearrange(channels @ matrix, "b g c (h w) -> b (g c) h w", h=H).to(x.dtype)


@_exact
def aggregate(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    return _apply(x, w, kernel_size, dilation, border, transpose=True)


@_exact
def adjoint(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    return _apply(x, w, kernel_size, dilation, border, transpose=False)


@_exact
def similarity(q, k, kernel_size: int, dilation: int, border: str, masked: bool,
               shape) -> torch.Tensor:
    """shape: the output's, (B or 1, G, K, H or 1, W or 1), size-1 axes summed. masked: -inf
    where a neighbour is outside the image (border "zeros", full shape only), else a zero."""
    B, C, H, W = q.shape
    G, N, K, acc = shape[1], H * W, kernel_size ** 2, accumulator(q.dtype)
    index = neighbour_index(H, W, kernel_size, dilation, border, q.device)
    if shape[0] == 1 and B > 1:  # summed over the batch: contract images and channels at once
        queries = rearrange(q.to(acc), "b (g c) h w -> 1 g (h w) (b c)", g=G)
        keys = rearrange(k.to(acc), "b (g c) h w -> 1 g (b c) (h w)", g=G)
        B = 1
    else:
        queries = rearrange(q.to(acc), "b (g c) h w -> b g (h w) c", g=G)
        keys = rearrange(k.to(acc), "b (g c) h w -> b g c (h w)", g=G)
    scores = queries @ keys  # (B, G, N, N): every pair's q·k
    scores = F.pad(scores, (0, 1))  # the spare column: an outside neighbour scores 0
    logits = scores.gather(3, index.expand(B, G, N, K))  # (B, G, N, K): each pixel's window
    logits = rearrange(logits, "b g (h w) k -> b g k h w", h=H)
    if masked and border == "zeros":
        logits = logits.masked_fill((index == N).t().reshape(K, H, W), float("-inf"))
    return logits.sum_to_size(shape).to(q.dtype)
