"""Fused Triton kernels of the three bilinear ops behind local_aggregate and local_similarity.

The kernels read neighbours straight from the input (the k*k-times copy that unfold makes is
never built), and sum in float32 for float32, bfloat16 and float16 inputs (float64 in float64),
rounding once when they store.

- ``aggregate(x, w)``:  y[b, c, i] = Σ_o w[b, g(c), o, i] · x[b, c, n(i, o)]              (gather)
- ``adjoint(x, w)``:    y[b, c, j] = Σ_{(i, o): n(i, o) = j} w[b, g, o, i] · x[b, c, i]
- ``similarity(q, k)``: s[b, g, o, i] = Σ_{c in g} q[b, c, i] · k[b, c, n(i, o)]

What a program handles: a 2-D tile of [BLOCK_C channels of one group] × [BLOCK_P pixels] of
one image. All channels of a group share their weights, so a program reads each weight (and
each neighbour position) once per pixel block for all BLOCK_C channels, instead of once per
channel, and its channel loads are one 2-D tile load per offset rather than one program per
channel. aggregate and adjoint write the tile; similarity sums the tile over its channels with
``tl.sum`` (a group wider than BLOCK_C is summed tile after tile, in a fixed order).
``launch_tile`` chooses the tile per map: BLOCK_P follows the map (a 2×2 map gets 4 pixels,
not a block of 128 mostly masked off) and the channels fill the rest of the tile, so the small
maps of the CIFAR models still fill their programs.

A broadcast weight's gradient (a similarity whose output has size-1 height and width) never
forms the per-pixel (B, G, K, H, W) tensor: each program sums its pixel block too and writes
one partial sum per (image, group, offset, pixel block), (B, G, K, n_blocks), which PyTorch
then sums (a second stage in a fixed order). Other reduced shapes (a row-shared weight, a
batch-shared per-pixel one) are written per pixel and summed, as before.

Every derivative of each op is one of the three again (``library``), so the backward needs no
kernel of its own and derivatives of any order are exact. No kernel uses atomics: the adjoint,
a scatter, is computed as a gather over the pixels i that can read j, and the partial sums
above are summed in a second stage, so every sum runs in a fixed order and results are
deterministic (``torch.use_deterministic_algorithms`` holds).

n(i, o) is the o-th neighbour of pixel i under the border rule, read from the position tables
of ``geometry.axis_neighbours`` (one (k, H) table for rows, one (k, W) for columns): the rule
is written once, in PyTorch, and the kernels never repeat it. A position outside the image
reads a zero. Broadcast weights (a size-1 batch, height or width axis) are read with stride 0.

Launch on CUDA tensors; on the CPU the same kernels run under ``TRITON_INTERPRET=1`` (set
before this module is imported), which is how CI tests them.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from .geometry import axis_neighbours, window_reach
from .lean import accumulator as _torch_accumulator

# Elements of one program's tile: 1024 with 8 warps is 4 per thread (``launch_tile``).
TILE_ELEMENTS = 1024
# Channels per tile on a map large enough to fill it: 32 pixels of float32 are one 128-byte
# line per channel row. Small maps take more channels (``launch_tile``).
WIDE_CHANNELS = 32


class Tile(NamedTuple):
    channels: int  # BLOCK_C, a power of two
    pixels: int  # BLOCK_P, a power of two
    num_warps: int


def launch_tile(pixels: int, group_channels: int, *, elements: int | None = None) -> Tile:
    """The tile a program handles on a map of `pixels` pixels whose groups have
    `group_channels` channels: up to `elements` (TILE_ELEMENTS) of them.

    Pixels come first, up to the map's own size (rounded up to a power of two) and no more
    than ``elements // WIDE_CHANNELS`` on a wide group; the channels then fill the tile, up to
    the group's width. A 16² map with 16-channel groups gets 16 × 64, a 2² map 16 × 4 (before,
    each channel had a program of 128 pixels, 124 of them masked off there), a depthwise layer
    (one channel per group) 1 × 1024. One warp per 128 elements, at most 8: every thread
    holds at most 4 elements of the tile (with 8 the depthwise tile took 122 registers at
    k = 13, with 4 about 60, which leaves room for twice the warps per multiprocessor).
    """
    elements = TILE_ELEMENTS if elements is None else elements
    group = triton.next_power_of_2(max(group_channels, 1))
    block_p = min(triton.next_power_of_2(max(pixels, 1)),
                  max(elements // min(group, WIDE_CHANNELS), 1))
    block_c = min(group, max(elements // block_p, 1))
    return Tile(block_c, block_p, min(max(block_c * block_p // 128, 1), 8))


@triton.jit
def _program(C, H, W, G_CH, w_sb, w_sg, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """One (image, group, channel tile) and a block of pixels: each channel's offset (int64:
    offsets pass 2^31 on large batches) and whether it is in the group, the group's weights'
    offset, the pixel indices, their rows and columns, and which of them are in the map."""
    tiles = tl.cdiv(G_CH, BLOCK_C)
    program = tl.program_id(0).to(tl.int64)
    tile, bg = program % tiles, program // tiles
    groups = C // G_CH
    b, g = bg // groups, bg % groups
    lane = tile * BLOCK_C + tl.arange(0, BLOCK_C)  # channel within the group
    channel = (b * C + g * G_CH + lane) * H * W
    w_base = b * w_sb + g * w_sg
    pix = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)
    return channel, lane < G_CH, w_base, pix, pix // W, pix % W, pix < H * W


@triton.jit
def _aggregate(x_ptr, w_ptr, rows_ptr, cols_ptr, y_ptr, C, H, W, G_CH,
               w_sb, w_sg, w_so, w_sh, w_sw,
               KERNEL: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr,
               BLOCK_P: tl.constexpr):
    channel, in_group, w_base, pix, row, col, inside = _program(
        C, H, W, G_CH, w_sb, w_sg, BLOCK_C, BLOCK_P)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for ty in range(KERNEL):  # loops, not unrolled: registers stay flat in k
        r = tl.load(rows_ptr + ty * H + row, mask=inside, other=-1)
        row_ok = inside & (r >= 0) & (r < H)
        for tx in range(KERNEL):
            c = tl.load(cols_ptr + tx * W + col, mask=inside, other=-1)
            ok = row_ok & (c >= 0) & (c < W)
            # one weight per pixel, read once for every channel of the tile
            weight = tl.load(w_ptr + w_base + (ty * KERNEL + tx) * w_so + row * w_sh + col * w_sw,
                             mask=ok, other=0.0).to(ACC)
            value = tl.load(x_ptr + channel[:, None] + (r * W + c)[None, :],
                            mask=in_group[:, None] & ok[None, :], other=0.0).to(ACC)
            acc += weight[None, :] * value
    tl.store(y_ptr + channel[:, None] + pix[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=in_group[:, None] & inside[None, :])


@triton.jit
def _adjoint(x_ptr, w_ptr, rows_ptr, cols_ptr, y_ptr, C, H, W, G_CH, DILATION,
             w_sb, w_sg, w_so, w_sh, w_sw,
             KERNEL: tl.constexpr, REACH: tl.constexpr, ACC: tl.constexpr,
             BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    # Pixel j = (row, col) sums over the pixels i that read it. Such an i lies at most REACH
    # steps of d away along each axis and in j's sub-axis; j is i's t-th neighbour along an
    # axis when j = start(i) + t·d with 0 <= t < k, start(i) = the table's first row.
    channel, in_group, w_base, pix, row, col, inside = _program(
        C, H, W, G_CH, w_sb, w_sg, BLOCK_C, BLOCK_P)
    acc = tl.zeros((BLOCK_C, BLOCK_P), dtype=ACC)
    for sy in range(2 * REACH + 1):
        ri = row + (sy - REACH) * DILATION
        row_in = inside & (ri >= 0) & (ri < H)
        ty = (row - tl.load(rows_ptr + ri, mask=row_in, other=0)) // DILATION  # exact: same phase
        row_ok = row_in & (ty >= 0) & (ty < KERNEL)
        for sx in range(2 * REACH + 1):  # a loop: both unrolled, k = 13 took 225 registers
            ci = col + (sx - REACH) * DILATION
            col_in = (ci >= 0) & (ci < W)
            tx = (col - tl.load(cols_ptr + ci, mask=row_ok & col_in, other=0)) // DILATION
            ok = row_ok & col_in & (tx >= 0) & (tx < KERNEL)
            weight = tl.load(w_ptr + w_base + (ty * KERNEL + tx) * w_so + ri * w_sh + ci * w_sw,
                             mask=ok, other=0.0).to(ACC)
            value = tl.load(x_ptr + channel[:, None] + (ri * W + ci)[None, :],
                            mask=in_group[:, None] & ok[None, :], other=0.0).to(ACC)
            acc += weight[None, :] * value
    tl.store(y_ptr + channel[:, None] + pix[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=in_group[:, None] & inside[None, :])


@triton.jit
def _similarity(q_ptr, k_ptr, rows_ptr, cols_ptr, out_ptr, C, H, W, G, G_CH,
                KERNEL: tl.constexpr, MASKED: tl.constexpr, REDUCE: tl.constexpr,
                ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    # One (image, group) and a block of pixels; the group's channels are summed BLOCK_C at a
    # time. REDUCE: the pixel block is summed too, one partial sum per offset at
    # out[b, g, o, block] (out is (B, G, K, n_blocks)), for a broadcast weight's gradient.
    bg = tl.program_id(0).to(tl.int64)
    first = (bg // G) * C + (bg % G) * G_CH  # the group's first channel
    block = tl.program_id(1)
    pix = block * BLOCK_P + tl.arange(0, BLOCK_P)
    inside = pix < H * W
    row, col = pix // W, pix % W
    lane = tl.arange(0, BLOCK_C)
    for ty in range(KERNEL):
        r = tl.load(rows_ptr + ty * H + row, mask=inside, other=-1)
        row_ok = inside & (r >= 0) & (r < H)
        for tx in range(KERNEL):
            c = tl.load(cols_ptr + tx * W + col, mask=inside, other=-1)
            ok = row_ok & (c >= 0) & (c < W)
            acc = tl.zeros((BLOCK_P,), dtype=ACC)
            for start in range(0, G_CH, BLOCK_C):  # once when the tile holds the group
                channel = (first + start + lane) * H * W
                in_group = (start + lane) < G_CH
                query = tl.load(q_ptr + channel[:, None] + pix[None, :],
                                mask=in_group[:, None] & inside[None, :], other=0.0).to(ACC)
                key = tl.load(k_ptr + channel[:, None] + (r * W + c)[None, :],
                              mask=in_group[:, None] & ok[None, :], other=0.0).to(ACC)
                acc += tl.sum(query * key, axis=0)
            offset = bg * KERNEL * KERNEL + ty * KERNEL + tx
            if REDUCE:  # pixels outside the map or the image added zeros
                tl.store(out_ptr + offset * tl.num_programs(1) + block, tl.sum(acc, axis=0))
            else:
                if MASKED:  # a neighbour outside the image gets no attention after a softmax
                    acc = tl.where(ok, acc, float("-inf"))
                tl.store(out_ptr + offset * H * W + pix, acc.to(out_ptr.dtype.element_ty),
                         mask=inside)


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


def _weight_strides(w: torch.Tensor):
    """(batch, group, offset, row, col) strides, 0 along broadcast (size-1) axes."""
    return tuple(0 if size == 1 else stride for size, stride in zip(w.shape, w.stride()))


def _weighted(kernel, x, w, kernel_size: int, dilation: int, border: str, extra: tuple = (),
              **constexprs) -> torch.Tensor:
    """Launch aggregate or adjoint (`extra`: the ints between G_CH and the weight strides): one
    program per (image, group, channel tile) and pixel block."""
    x, w = x.contiguous(), w.contiguous()
    B, C, H, W = x.shape
    group_channels = C // w.shape[1]
    tile = launch_tile(H * W, group_channels)
    y = torch.empty_like(x)
    grid = (B * w.shape[1] * triton.cdiv(group_channels, tile.channels),
            triton.cdiv(H * W, tile.pixels))
    kernel[grid](x, w, *_tables(x, kernel_size, dilation, border), y, C, H, W, group_channels,
                 *extra, *_weight_strides(w), KERNEL=kernel_size, ACC=accumulator(x.dtype),
                 BLOCK_C=tile.channels, BLOCK_P=tile.pixels, num_warps=tile.num_warps,
                 **constexprs)
    return y


def aggregate(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    return _weighted(_aggregate, x, w, kernel_size, dilation, border)


def adjoint(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    return _weighted(_adjoint, x, w, kernel_size, dilation, border, extra=(dilation,),
                     REACH=window_reach(kernel_size, border))


def similarity(q, k, kernel_size: int, dilation: int, border: str, masked: bool,
               shape) -> torch.Tensor:
    """shape: the output's, (B or 1, G, K, H or 1, W or 1). Size-1 height and width: partial
    sums per pixel block, then summed; any other reduced shape: every pixel written (in the
    accumulator's dtype), then summed over its size-1 axes."""
    q, k = q.contiguous(), k.contiguous()
    B, C, H, W = q.shape
    groups = shape[1]
    full = [B, groups, kernel_size ** 2, H, W]
    masked = masked and border == "zeros"
    reduced = list(shape) != full
    pixel_sums = reduced and shape[3] == shape[4] == 1 and not masked
    tile = launch_tile(H * W, C // groups)
    blocks = triton.cdiv(H * W, tile.pixels)
    out_shape = full[:3] + [blocks] if pixel_sums else full
    out = q.new_empty(out_shape, dtype=_torch_accumulator(q.dtype) if reduced else q.dtype)
    _similarity[(B * groups, blocks)](
        q, k, *_tables(q, kernel_size, dilation, border), out, C, H, W, groups, C // groups,
        KERNEL=kernel_size, MASKED=masked, REDUCE=pixel_sums, ACC=accumulator(q.dtype),
        BLOCK_C=tile.channels, BLOCK_P=tile.pixels, num_warps=tile.num_warps)
    if pixel_sums:  # the second stage: the blocks' partial sums, in a fixed order
        out = out.sum(-1)[..., None, None]
    return out.sum_to_size(shape).to(q.dtype) if reduced else out
