"""The "lean" backend: the three bilinear ops as loops over the K offsets on shifted views.

Memory stays O(input + weights): no neighbourhood is copied, and each op is a plain function of
tensors (no autograd of its own; ``library`` registers the derivatives, which are the same
three ops again). Sums run in float32 for float16 and bfloat16 inputs (float64 for float64),
and the result is rounded once to the input's dtype, as the Triton kernels do.

- ``aggregate(x, w)``: y[c, i] = Σ_o w[g, o, i] · x[c, n(i, o)]                 (gather)
- ``adjoint(x, w)``:   y[c, j] = Σ_{(i, o): n(i, o) = j} w[g, o, i] · x[c, i]    (scatter)
- ``similarity(q, k)``: s[g, o, i] = Σ_{c in g} q[c, i] · k[c, n(i, o)]
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .geometry import axis_neighbours, neighbour_mask, neighbour_offsets


def accumulator(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; every other dtype accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class Window:
    """Reads and writes the K neighbours of every pixel under one border rule.

    "zeros": pad once, then every neighbour map is a shifted view of the padded tensor.
    "clamp": every neighbour map is a gather along rows then columns (index_select) with the
    positions of ``axis_neighbours``; the adjoint scatter is index_add along columns then rows.
    """

    def __init__(self, height, width, kernel_size, dilation, border, device):
        self.height, self.width, self.border = height, width, border
        self.offsets = neighbour_offsets(kernel_size, dilation)
        self.pad = dilation * (kernel_size // 2)
        if border == "clamp":
            self.rows = axis_neighbours(height, kernel_size, dilation, border, device)  # (k, H)
            self.cols = axis_neighbours(width, kernel_size, dilation, border, device)  # (k, W)
            self.index = [(ty, tx) for ty in range(kernel_size) for tx in range(kernel_size)]

    def source(self, x: torch.Tensor) -> torch.Tensor:
        """What `neighbours` reads from: x zero-padded by the window radius, or x itself."""
        if self.border == "clamp":
            return x
        return F.pad(x, (self.pad,) * 4)

    def neighbours(self, source: torch.Tensor, o: int) -> torch.Tensor:
        """(..., H, W): x at the o-th neighbour of every pixel."""
        if self.border == "clamp":
            ty, tx = self.index[o]
            return source.index_select(-2, self.rows[ty]).index_select(-1, self.cols[tx])
        dy, dx = self.offsets[o]
        return _shifted(source, self.pad, dy, dx, self.height, self.width)

    def scatter_buffer(self, like: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """A zero buffer for `scatter_addcmul`, shaped like `source(like)`."""
        pad = 0 if self.border == "clamp" else 2 * self.pad
        return like.new_zeros(*like.shape[:-2], self.height + pad, self.width + pad, dtype=dtype)

    def scatter_addcmul(self, buffer: torch.Tensor, o: int, a: torch.Tensor, b: torch.Tensor) -> None:
        """buffer[neighbour o of i] += a[i] * b[i] for every pixel i: the adjoint of `neighbours`.
        The product is formed in the buffer's dtype (float32 for half-precision inputs)."""
        if self.border == "zeros":
            self.neighbours(buffer, o).addcmul_(a, b)  # in place on the view, no temporary
            return
        ty, tx = self.index[o]
        values = a.to(buffer.dtype) * b
        by_column = torch.zeros_like(values).index_add_(values.dim() - 1, self.cols[tx], values)
        buffer.index_add_(buffer.dim() - 2, self.rows[ty], by_column)

    def crop(self, buffer: torch.Tensor) -> torch.Tensor:
        """The (..., H, W) image part of a scatter buffer."""
        if self.border == "clamp":
            return buffer
        return _shifted(buffer, self.pad, 0, 0, self.height, self.width)


def _shifted(padded: torch.Tensor, pad: int, dy: int, dx: int, height: int, width: int) -> torch.Tensor:
    """A view of a map zero-padded by `pad` on each side that holds x[i + (dy, dx)] at i."""
    return padded[..., pad + dy: pad + dy + height, pad + dx: pad + dx + width]


def _setup(x: torch.Tensor, groups: int, kernel_size: int, dilation: int, border: str):
    """The window of x's map, x split into (B, G, C/G, H, W), and the accumulator dtype."""
    B, C, H, W = x.shape
    window = Window(H, W, kernel_size, dilation, border, x.device)
    return window, x.unflatten(1, (groups, C // groups)), accumulator(x.dtype)


def _offset_planes(w: torch.Tensor) -> torch.Tensor:
    """w with each offset's (H, W) plane contiguous, as the K passes read it. A generator's
    channels-last output, viewed as (B, G, K, H, W), has the offsets innermost instead, and
    every pass would then stride through all of w: 2.3 times slower on the CPU (16² and 32²
    maps, batch 256) than this one copy."""
    return w.contiguous()


def aggregate(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    w = _offset_planes(w)
    window, x, acc = _setup(x, w.shape[1], kernel_size, dilation, border)
    source = window.source(x)
    y = x.new_zeros(*x.shape, dtype=acc)
    for o in range(kernel_size ** 2):
        # w[:, :, o]: (B or 1, G, H or 1, W or 1) -> one weight for all channels of a group;
        # addcmul_ into a float32 buffer multiplies half-precision operands in float32
        y.addcmul_(window.neighbours(source, o), w[:, :, o].unsqueeze(2))
    return y.flatten(1, 2).to(x.dtype)


def adjoint(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    # the scatter buffer is row-major: a channels-last x would make each of the K passes cross
    # layouts, 1.8-3.5 times slower on the CPU than one copy of x first (16² and 32² maps)
    w = _offset_planes(w)
    window, x, acc = _setup(x.contiguous(), w.shape[1], kernel_size, dilation, border)
    buffer = window.scatter_buffer(x, acc)
    for o in range(kernel_size ** 2):
        window.scatter_addcmul(buffer, o, x, w[:, :, o].unsqueeze(2))
    return window.crop(buffer).flatten(1, 2).to(x.dtype)


def similarity(q, k, kernel_size: int, dilation: int, border: str, masked: bool,
               shape) -> torch.Tensor:
    """shape: the output's, (B or 1, G, K, H or 1, W or 1), size-1 axes summed over offset by
    offset (never the per-pixel tensor). masked: -inf where a neighbour is outside the image
    (border "zeros", full shape only), else a zero there."""
    window, queries, acc = _setup(q, shape[1], kernel_size, dilation, border)
    queries = queries.to(acc)  # one float32 copy of q: every product below is then float32
    keys = window.source(k).unflatten(1, (shape[1], -1))
    logits = q.new_empty(shape, dtype=acc)
    per_offset = (shape[0], shape[1], shape[3], shape[4])
    for o in range(kernel_size ** 2):
        logits[:, :, o] = (queries * window.neighbours(keys, o)).sum(2).sum_to_size(per_offset)
    if masked and border == "zeros":
        H, W = q.shape[-2:]
        inside = neighbour_mask(H, W, kernel_size, dilation, q.device)  # (K, H, W)
        logits.masked_fill_(~inside, float("-inf"))
    return logits.to(q.dtype)
