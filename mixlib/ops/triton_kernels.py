"""Fused Triton kernels of the three bilinear ops behind local_aggregate and local_similarity.

The kernels read neighbours straight from the input (the k*k-times copy that unfold makes is
never built). A program handles one (image, channel), or one (image, group) for similarity,
and a block of pixels, and sums in float32 for float32, bfloat16 and float16 inputs (float64 in
float64), rounding once when it stores.

- ``aggregate(x, w)``:  y[b, c, i] = Σ_o w[b, g(c), o, i] · x[b, c, n(i, o)]              (gather)
- ``adjoint(x, w)``:    y[b, c, j] = Σ_{(i, o): n(i, o) = j} w[b, g, o, i] · x[b, c, i]
- ``similarity(q, k)``: s[b, g, o, i] = Σ_{c in g} q[b, c, i] · k[b, c, n(i, o)]

Every derivative of each op is one of the three again (``library``), so the backward needs no
kernel of its own and derivatives of any order are exact. No kernel uses atomics: the adjoint,
a scatter, is computed as a gather over the pixels i that can read j, so every sum runs in a
fixed order and results are deterministic (``torch.use_deterministic_algorithms`` holds).

n(i, o) is the o-th neighbour of pixel i under the border rule, read from the position tables
of ``geometry.axis_neighbours`` (one (k, H) table for rows, one (k, W) for columns): the rule
is written once, in PyTorch, and the kernels never repeat it. A position outside the image
reads a zero. Broadcast weights (a size-1 batch, height or width axis) are read with stride 0.

Launch on CUDA tensors; on the CPU the same kernels run under ``TRITON_INTERPRET=1`` (set
before this module is imported), which is how CI tests them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .geometry import axis_neighbours, window_reach
from .lean import accumulator as _torch_accumulator

BLOCK = 128


@triton.jit
def _program(C, H, W, G_CH, w_sb, w_sg, BLOCK_SIZE: tl.constexpr):
    """One (image, channel) and a block of its pixels: the channel's offset, its weights'
    offset, the pixel indices, their rows and columns, and which of them are in the map."""
    bc = tl.program_id(0).to(tl.int64)  # int64: offsets pass 2^31 on large batches
    w_base = (bc // C) * w_sb + ((bc % C) // G_CH) * w_sg
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    return bc * H * W, w_base, pix, pix // W, pix % W, pix < H * W


@triton.jit
def _aggregate(x_ptr, w_ptr, rows_ptr, cols_ptr, y_ptr, C, H, W, G_CH,
               w_sb, w_sg, w_so, w_sh, w_sw,
               KERNEL: tl.constexpr, ACC: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    base, w_base, pix, row, col, inside = _program(C, H, W, G_CH, w_sb, w_sg, BLOCK_SIZE)
    acc = tl.zeros((BLOCK_SIZE,), dtype=ACC)
    for ty in range(KERNEL):  # a loop, not unrolled: registers stay flat in k
        r = tl.load(rows_ptr + ty * H + row, mask=inside, other=-1)
        row_ok = inside & (r >= 0) & (r < H)
        for tx in tl.static_range(KERNEL):
            c = tl.load(cols_ptr + tx * W + col, mask=inside, other=-1)
            ok = row_ok & (c >= 0) & (c < W)
            value = tl.load(x_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
            weight = tl.load(w_ptr + w_base + (ty * KERNEL + tx) * w_so + row * w_sh + col * w_sw,
                             mask=ok, other=0.0).to(ACC)
            acc += weight * value
    tl.store(y_ptr + base + pix, acc.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _adjoint(x_ptr, w_ptr, rows_ptr, cols_ptr, y_ptr, C, H, W, G_CH, DILATION,
             w_sb, w_sg, w_so, w_sh, w_sw,
             KERNEL: tl.constexpr, REACH: tl.constexpr, ACC: tl.constexpr,
             BLOCK_SIZE: tl.constexpr):
    # Pixel j = (row, col) sums over the pixels i that read it. Such an i lies at most REACH
    # steps of d away along each axis and in j's sub-axis; j is i's t-th neighbour along an
    # axis when j = start(i) + t·d with 0 <= t < k, start(i) = the table's first row.
    base, w_base, pix, row, col, inside = _program(C, H, W, G_CH, w_sb, w_sg, BLOCK_SIZE)
    acc = tl.zeros((BLOCK_SIZE,), dtype=ACC)
    for sy in range(2 * REACH + 1):
        ri = row + (sy - REACH) * DILATION
        row_in = inside & (ri >= 0) & (ri < H)
        ty = (row - tl.load(rows_ptr + ri, mask=row_in, other=0)) // DILATION  # exact: same phase
        row_ok = row_in & (ty >= 0) & (ty < KERNEL)
        for sx in range(2 * REACH + 1):  # unrolled, k = 13 took 225 registers
            ci = col + (sx - REACH) * DILATION
            col_in = (ci >= 0) & (ci < W)
            tx = (col - tl.load(cols_ptr + ci, mask=row_ok & col_in, other=0)) // DILATION
            ok = row_ok & col_in & (tx >= 0) & (tx < KERNEL)
            value = tl.load(x_ptr + base + ri * W + ci, mask=ok, other=0.0).to(ACC)
            weight = tl.load(w_ptr + w_base + (ty * KERNEL + tx) * w_so + ri * w_sh + ci * w_sw,
                             mask=ok, other=0.0).to(ACC)
            acc += weight * value
    tl.store(y_ptr + base + pix, acc.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _similarity(q_ptr, k_ptr, rows_ptr, cols_ptr, out_ptr, C, H, W, G, G_CH,
                KERNEL: tl.constexpr, MASKED: tl.constexpr, ACC: tl.constexpr,
                BLOCK_SIZE: tl.constexpr):
    bg = tl.program_id(0).to(tl.int64)  # one (image, group)
    first = ((bg // G) * C + (bg % G) * G_CH) * H * W  # the group's first channel
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pix < H * W
    row, col = pix // W, pix % W
    for ty in range(KERNEL):
        r = tl.load(rows_ptr + ty * H + row, mask=inside, other=-1)
        row_ok = inside & (r >= 0) & (r < H)
        for tx in tl.static_range(KERNEL):
            c = tl.load(cols_ptr + tx * W + col, mask=inside, other=-1)
            ok = row_ok & (c >= 0) & (c < W)
            acc = tl.zeros((BLOCK_SIZE,), dtype=ACC)
            for ch in range(G_CH):
                base = first + ch * H * W
                query = tl.load(q_ptr + base + pix, mask=inside, other=0.0).to(ACC)
                key = tl.load(k_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
                acc += query * key
            if MASKED:  # a neighbour outside the image gets no attention after a softmax
                acc = tl.where(ok, acc, float("-inf"))
            tl.store(out_ptr + (bg * KERNEL * KERNEL + ty * KERNEL + tx) * H * W + pix,
                     acc.to(out_ptr.dtype.element_ty), mask=inside)


# ----------------------------------------------------------------------------------------------
# Launchers: plain functions of tensors (autograd, vmap and torch.compile live in ``library``)


def accumulator(dtype: torch.dtype):
    """The accumulator as a Triton type."""
    return tl.float64 if _torch_accumulator(dtype) == torch.float64 else tl.float32


def _tables(x: torch.Tensor, kernel_size: int, dilation: int, border: str):
    """The (k, H) row and (k, W) column position tables of the border rule, int32."""
    H, W = x.shape[-2:]
    return tuple(axis_neighbours(length, kernel_size, dilation, border, x.device).to(torch.int32)
                 for length in (H, W))


def _grid(rows: int, height: int, width: int):
    return (rows, triton.cdiv(height * width, BLOCK))


def _weight_strides(w: torch.Tensor):
    """(batch, group, offset, row, col) strides, 0 along broadcast (size-1) axes."""
    return tuple(0 if size == 1 else stride for size, stride in zip(w.shape, w.stride()))


def aggregate(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    y = torch.empty_like(x)
    _aggregate[_grid(B * C, H, W)](
        x, w, *_tables(x, kernel_size, dilation, border), y, C, H, W, C // w.shape[1],
        *_weight_strides(w), KERNEL=kernel_size, ACC=accumulator(x.dtype), BLOCK_SIZE=BLOCK)
    return y


def adjoint(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    y = torch.empty_like(x)
    _adjoint[_grid(B * C, H, W)](
        x, w, *_tables(x, kernel_size, dilation, border), y, C, H, W, C // w.shape[1], dilation,
        *_weight_strides(w), KERNEL=kernel_size, REACH=window_reach(kernel_size, border),
        ACC=accumulator(x.dtype), BLOCK_SIZE=BLOCK)
    return y


def similarity(q, k, kernel_size: int, dilation: int, border: str, masked: bool,
               shape) -> torch.Tensor:
    """shape: the output's, (B or 1, G, K, H or 1, W or 1); the kernel writes every pixel (in
    the accumulator's dtype when size-1 axes are then summed over)."""
    q, k = q.contiguous(), k.contiguous()
    B, C, H, W = q.shape
    groups = shape[1]
    full = [B, groups, kernel_size ** 2, H, W]
    reduced = list(shape) != full
    logits = q.new_empty(full, dtype=_torch_accumulator(q.dtype) if reduced else q.dtype)
    _similarity[_grid(B * groups, H, W)](
        q, k, *_tables(q, kernel_size, dilation, border), logits, C, H, W, groups, C // groups,
        KERNEL=kernel_size, MASKED=masked and border == "zeros", ACC=accumulator(q.dtype),
        BLOCK_SIZE=BLOCK)
    return logits.sum_to_size(shape).to(q.dtype) if reduced else logits
