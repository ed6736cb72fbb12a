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
pixel has k*k neighbours inside the image (``clamped_neighbours``). Offsets are those of cross-correlation, like
``F.conv2d``: w[..., o, i] multiplies v at i + d·o.

Backends (all exact; float64 results agree to 1e-12, gradients too)
    "reference"  ``F.unfold`` copies every neighbourhood (K times the input): the definition.
    "lean"       a loop over the K offsets on shifted views of a padded input, with its own
                 backward, so memory stays O(input + weights). Plain autograd over the same
                 loop would not be lean: each slice's backward allocates a full-size gradient.
    "conv"       static weights (H = W = 1) through ``F.conv2d(groups=...)``, i.e. the
                 library's depthwise-convolution kernels; per-sample static weights fold the
                 batch into the groups.
    "triton"     fused GPU kernels (``triton_kernels``), forward and backward, that never copy
                 the neighbourhoods; CUDA tensors, or the CPU under ``TRITON_INTERPRET=1``.
    "auto"       the fastest exact backend for the weights given: "conv" for static weights,
                 else "triton" on a GPU and "lean" on the CPU (``python -m mixlib.bench
                 aggregate`` shows why).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "AGGREGATE_BACKENDS",
    "BORDERS",
    "count_aggregation_flops",
    "clamped_neighbours",
    "window_positions",
    "SIMILARITY_BACKENDS",
    "local_aggregate",
    "local_similarity",
    "neighbour_offsets",
    "neighbour_mask",
]

AGGREGATE_BACKENDS = ("auto", "reference", "lean", "conv", "triton")
BORDERS = ("zeros", "clamp")
SIMILARITY_BACKENDS = ("auto", "reference", "lean", "triton")


# ----------------------------------------------------------------------------------------------
# Geometry of the window


def neighbour_offsets(kernel_size: int, dilation: int = 1) -> list[tuple[int, int]]:
    """The K = k*k offsets (dy, dx) of a dilated k×k window, row-major, centre at K // 2."""
    _check_window(kernel_size, dilation)
    r = kernel_size // 2
    return [(dy * dilation, dx * dilation) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]


def neighbour_mask(height: int, width: int, kernel_size: int, dilation: int = 1,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """(K, H, W) bool: True where neighbour i + d·o of pixel i lies inside the image."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    masks = []
    for dy, dx in neighbour_offsets(kernel_size, dilation):
        row_ok = (rows + dy >= 0) & (rows + dy < height)  # (H,)
        col_ok = (cols + dx >= 0) & (cols + dx < width)  # (W,)
        masks.append(row_ok[:, None] & col_ok[None, :])
    return torch.stack(masks)


def clamped_neighbours(length: int, kernel_size: int, dilation: int = 1,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """(k, L) long: the position of the t-th neighbour of every i along an axis of length L,
    under neighbourhood attention's border rule (NATTEN).

    The window of a pixel near the border shifts inward instead of reaching outside, so every
    pixel has exactly k neighbours. With dilation d the axis splits into d interleaved
    sub-axes (i mod d) and the rule applies inside each of them.
    """
    _check_window(kernel_size, dilation)
    r = kernel_size // 2
    i = torch.arange(length, device=device)
    phase, index = i % dilation, i // dilation  # which sub-axis, and where in it
    sub_length = (length - phase + dilation - 1) // dilation  # ceil((L - phase) / d)
    if int(sub_length.min()) < kernel_size:
        raise ValueError(f"border='clamp' needs every axis to hold kernel_size * dilation = "
                         f"{kernel_size * dilation} pixels, got an axis of length {length}")
    start = (index - r).clamp(min=0)
    start = start + (index + r >= sub_length) * (sub_length - index - r - 1)
    t = torch.arange(kernel_size, device=device)[:, None]
    return (start[None, :] + t) * dilation + phase[None, :]


def window_positions(height: int, width: int, kernel_size: int, dilation: int = 1,
                     border: str = "zeros", device: torch.device | str | None = None):
    """(rows, cols), each (K, H, W) long: where neighbour o of pixel (i, j) lies.

    With border="zeros" a position may fall outside the image (that neighbour reads a zero);
    with border="clamp" it never does. Relative positions (rows - i) // dilation index
    relative position bias tables.
    """
    _check_border(border)
    k, K = kernel_size, kernel_size ** 2
    if border == "clamp":
        row_of = clamped_neighbours(height, k, dilation, device)  # (k, H)
        col_of = clamped_neighbours(width, k, dilation, device)  # (k, W)
        rows = row_of[:, None, :, None].expand(k, k, height, width).reshape(K, height, width)
        cols = col_of[None, :, None, :].expand(k, k, height, width).reshape(K, height, width)
        return rows, cols
    offsets = torch.tensor(neighbour_offsets(k, dilation), device=device)  # (K, 2)
    rows = torch.arange(height, device=device)[None, :, None] + offsets[:, 0, None, None]
    cols = torch.arange(width, device=device)[None, None, :] + offsets[:, 1, None, None]
    return rows.expand(K, height, width), cols.expand(K, height, width)


class _Window:
    """Reads and writes the K neighbours of every pixel under one border rule.

    "zeros": pad once, then every neighbour map is a shifted view of the padded tensor.
    "clamp": every neighbour map is a gather along rows then columns (index_select); the
    adjoint scatter is index_add along columns then rows.
    """

    def __init__(self, height, width, kernel_size, dilation, border, device):
        self.height, self.width, self.border = height, width, border
        self.offsets = neighbour_offsets(kernel_size, dilation)
        self.pad = dilation * (kernel_size // 2)
        if border == "clamp":
            self.rows = clamped_neighbours(height, kernel_size, dilation, device)  # (k, H)
            self.cols = clamped_neighbours(width, kernel_size, dilation, device)  # (k, W)
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

    def scatter_buffer(self, like: torch.Tensor) -> torch.Tensor:
        """A zero buffer for `scatter_add`, shaped like `source(like)`."""
        pad = 0 if self.border == "clamp" else 2 * self.pad
        return like.new_zeros(*like.shape[:-2], self.height + pad, self.width + pad)

    def scatter_addcmul(self, buffer: torch.Tensor, o: int, a: torch.Tensor, b: torch.Tensor) -> None:
        """buffer[neighbour o of i] += a[i] * b[i] for every pixel i: the adjoint of `neighbours`."""
        if self.border == "zeros":
            self.neighbours(buffer, o).addcmul_(a, b)  # in place on the view, no temporary
            return
        ty, tx = self.index[o]
        values = a * b
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


# ----------------------------------------------------------------------------------------------
# Argument checks: every message names the argument and the value


def _check_window(kernel_size, dilation) -> None:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 \
            or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be an odd positive int, got {kernel_size!r}")
    if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
        raise ValueError(f"dilation must be a positive int, got {dilation!r}")


def _check_map(name: str, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got shape {tuple(x.shape)}")


def _check_border(border: str) -> None:
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")


def _check_backend(backend: str, allowed: tuple[str, ...]) -> None:
    if backend not in allowed:
        raise ValueError(f"backend must be one of {allowed}, got {backend!r}")


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


def _unfold(x: torch.Tensor, kernel_size: int, dilation: int, groups: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, G, C/G, K, H, W): every neighbourhood copied, zeros outside."""
    B, C, H, W = x.shape
    cols = F.unfold(x, kernel_size, dilation=dilation, padding=dilation * (kernel_size // 2))
    # unfold's (B, C·K, H·W) is channel-major: channel c's K offsets are contiguous
    return rearrange(cols, "b (g c o) (h w) -> b g c o h w", g=groups, o=kernel_size ** 2, h=H)


def _gather_all(x: torch.Tensor, kernel_size: int, dilation: int, groups: int, border: str) -> torch.Tensor:
    """(B, C, H, W) -> (B, G, C/G, K, H, W) under either border rule."""
    if border == "zeros":
        return _unfold(x, kernel_size, dilation, groups)
    window = _Window(x.shape[2], x.shape[3], kernel_size, dilation, border, x.device)
    source = window.source(x)
    neighbours = torch.stack([window.neighbours(source, o) for o in range(kernel_size ** 2)], dim=2)
    return neighbours.unflatten(1, (groups, -1))  # (B, C, K, H, W) -> (B, G, C/G, K, H, W)


def _reference_aggregate(v, w, kernel_size, dilation, border):
    neighbours = _gather_all(v, kernel_size, dilation, w.shape[1], border)  # (B, G, C/G, K, H, W)
    y = (neighbours * w.unsqueeze(2)).sum(3)  # w: (B, G, 1, K, H, W), sum over offsets
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
# "lean": a loop over offsets on views, with a hand-written backward


class _LeanAggregate(torch.autograd.Function):
    """y = Σ_o w_o ⊙ neighbours_o(v); the backward scatters through the same neighbours."""

    @staticmethod
    def forward(ctx, v, w, kernel_size, dilation, border):
        ctx.save_for_backward(v, w)
        ctx.window = (kernel_size, dilation, border)
        B, C, H, W = v.shape
        G = w.shape[1]
        window = _Window(H, W, kernel_size, dilation, border, v.device)
        source = window.source(v).unflatten(1, (G, C // G))  # (B, G, C/G, H(+2p), W(+2p))
        y = v.new_zeros(B, G, C // G, H, W)
        for o in range(kernel_size ** 2):
            # w[:, :, o]: (B or 1, G, H or 1, W or 1) -> one weight for all channels of a group
            y.addcmul_(window.neighbours(source, o), w[:, :, o].unsqueeze(2))
        return y.flatten(1, 2)

    @staticmethod
    def backward(ctx, grad_y):
        v, w = ctx.saved_tensors
        kernel_size, dilation, border = ctx.window
        B, C, H, W = v.shape
        G = w.shape[1]
        window = _Window(H, W, kernel_size, dilation, border, v.device)
        grad_y = grad_y.unflatten(1, (G, C // G))  # (B, G, C/G, H, W)
        grad_v = grad_w = None
        if ctx.needs_input_grad[0]:
            # each output pixel sends its gradient back to the neighbours it read
            buffer = window.scatter_buffer(grad_y)
            for o in range(kernel_size ** 2):
                window.scatter_addcmul(buffer, o, grad_y, w[:, :, o].unsqueeze(2))
            grad_v = window.crop(buffer).flatten(1, 2)
        if ctx.needs_input_grad[1]:
            source = window.source(v).unflatten(1, (G, C // G))
            grad_w = torch.empty_like(w)
            shared_shape = (w.shape[0], G, w.shape[3], w.shape[4])  # broadcast axes sum up
            for o in range(kernel_size ** 2):
                per_pixel = (grad_y * window.neighbours(source, o)).sum(2)  # (B, G, H, W)
                grad_w[:, :, o] = per_pixel.sum_to_size(shared_shape)
        return grad_v, grad_w, None, None, None


class _LeanSimilarity(torch.autograd.Function):
    """logits_o = Σ_{c in group} q ⊙ neighbours_o(k), -inf where a neighbour is outside."""

    @staticmethod
    def forward(ctx, q, k, kernel_size, dilation, groups, border):
        B, C, H, W = q.shape
        window = _Window(H, W, kernel_size, dilation, border, q.device)
        if border == "zeros":
            inside = neighbour_mask(H, W, kernel_size, dilation, q.device)  # (K, H, W)
        else:
            inside = torch.ones(kernel_size ** 2, H, W, dtype=torch.bool, device=q.device)
        ctx.save_for_backward(q, k, inside)
        ctx.window = (kernel_size, dilation, groups, border)
        queries = q.unflatten(1, (groups, C // groups))  # (B, G, C/G, H, W)
        keys = window.source(k).unflatten(1, (groups, C // groups))
        logits = q.new_empty(B, groups, kernel_size ** 2, H, W)
        for o in range(kernel_size ** 2):
            logits[:, :, o] = (queries * window.neighbours(keys, o)).sum(2)
        return logits.masked_fill_(~inside, float("-inf"))

    @staticmethod
    def backward(ctx, grad_logits):
        q, k, inside = ctx.saved_tensors
        kernel_size, dilation, groups, border = ctx.window
        B, C, H, W = q.shape
        window = _Window(H, W, kernel_size, dilation, border, q.device)
        grad_logits = grad_logits.masked_fill(~inside, 0.0)  # masked logits do not depend on q, k
        queries = q.unflatten(1, (groups, C // groups))
        grad_q = grad_k = None
        if ctx.needs_input_grad[0]:
            keys = window.source(k).unflatten(1, (groups, C // groups))
            grad_q = torch.zeros_like(queries)
            for o in range(kernel_size ** 2):
                grad_q.addcmul_(window.neighbours(keys, o), grad_logits[:, :, o].unsqueeze(2))
            grad_q = grad_q.flatten(1, 2)
        if ctx.needs_input_grad[1]:
            buffer = window.scatter_buffer(queries)
            for o in range(kernel_size ** 2):
                window.scatter_addcmul(buffer, o, queries, grad_logits[:, :, o].unsqueeze(2))
            grad_k = window.crop(buffer).flatten(1, 2)
        return grad_q, grad_k, None, None, None, None


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
    B, C, H, W = v.shape
    Bw, G = w.shape[:2]
    if w.shape[3:] != (1, 1):
        raise ValueError("backend='conv' needs static weights of shape (B or 1, G, k*k, 1, 1), "
                         f"got w.shape={tuple(w.shape)}")
    pad = dilation * (kernel_size // 2)
    # (B or 1, G, K, 1, 1) -> (B or 1, C, K) -> (B·C or C, 1, k, k): a kernel per channel
    kernels = w.flatten(2)
    if G != C:
        kernels = kernels.repeat_interleave(C // G, dim=1)
    kernels = kernels.reshape(Bw * C, 1, kernel_size, kernel_size)
    if Bw == 1:
        return F.conv2d(v, kernels, padding=pad, dilation=dilation, groups=C)
    # per-sample kernels: fold the batch into the channels, one group per (sample, channel)
    y = F.conv2d(v.reshape(1, B * C, H, W), kernels, padding=pad, dilation=dilation, groups=B * C)
    return y.view(B, C, H, W)


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


def _triton_kernels(x: torch.Tensor):
    if not _triton_usable(x):
        raise ValueError("backend='triton' needs CUDA tensors and the triton package (or "
                         f"TRITON_INTERPRET=1 on the CPU); got a tensor on {x.device}")
    from . import triton_kernels
    return triton_kernels


# ----------------------------------------------------------------------------------------------
# FLOPs that PyTorch's counter cannot see (it counts matrix products and convolutions only)

_FLOP_COUNTERS: list[list[int]] = []


class count_aggregation_flops:
    """Context manager: the FLOPs (2 per multiply-add) of every local_aggregate and
    local_similarity call inside it that does not run as a convolution.

        with count_aggregation_flops() as counted:
            model(x)
        counted.total
    """

    def __enter__(self):
        self._cell = [0]
        _FLOP_COUNTERS.append(self._cell)
        return self

    def __exit__(self, *exc):
        _FLOP_COUNTERS.remove(self._cell)

    @property
    def total(self) -> int:
        return self._cell[0]


def _record_flops(x: torch.Tensor, kernel_size: int) -> None:
    if _FLOP_COUNTERS:
        flops = 2 * x.numel() * kernel_size ** 2  # one multiply-add per channel, pixel, offset
        for cell in _FLOP_COUNTERS:
            cell[0] += flops


# ----------------------------------------------------------------------------------------------
# The two public operations


def local_aggregate(v: torch.Tensor, w: torch.Tensor, kernel_size: int, dilation: int = 1,
                    backend: str = "auto", *, border: str = "zeros") -> torch.Tensor:
    """y_i = Σ_{j ∈ N(i)} w_ij ⊙ v_j over the dilated k×k window N(i) (equation 1).

    Args:
        v: values, (B, C, H, W).
        w: weights, (B or 1, G, k*k, H or 1, W or 1); channel c uses group c // (C // G).
            w[:, g, o, i] weighs neighbour i + dilation·offset_o (``neighbour_offsets``).
        kernel_size: k, odd.
        dilation: d, the spacing between the neighbours.
        backend: "auto", "reference", "lean", "conv" or "triton" (module docstring).
        border: "zeros" (out-of-image neighbours are zeros, like a zero-padded convolution) or
            "clamp" (windows shift inward at the border, as in neighbourhood attention).

    Returns:
        y, (B, C, H, W).
    """
    _check_window(kernel_size, dilation)
    _check_map("v", v)
    _check_weights(v, w, kernel_size)
    _check_backend(backend, AGGREGATE_BACKENDS)
    _check_border(border)
    if border == "clamp" and backend == "conv":
        raise ValueError("backend='conv' has zero padding only; border='clamp' needs "
                         "backend 'lean', 'reference', 'triton' or 'auto'")
    if v.dtype != w.dtype:  # e.g. bf16 values with fp32 softmax weights under autocast
        dtype = torch.promote_types(v.dtype, w.dtype)
        v, w = v.to(dtype), w.to(dtype)
    if backend == "auto":
        if w.shape[3:] == (1, 1) and border == "zeros":
            backend = "conv"
        else:
            backend = "triton" if v.is_cuda and _triton_usable(v) else "lean"
    if backend == "conv":
        return _conv_aggregate(v, w, kernel_size, dilation)
    _record_flops(v, kernel_size)
    if backend == "reference":
        return _reference_aggregate(v, w, kernel_size, dilation, border)
    if backend == "triton":
        return _triton_kernels(v).TritonAggregate.apply(v, w, kernel_size, dilation, border)
    return _LeanAggregate.apply(v, w, kernel_size, dilation, border)


def local_similarity(q: torch.Tensor, k: torch.Tensor, kernel_size: int, dilation: int = 1, *,
                     groups: int = 1, backend: str = "auto", border: str = "zeros") -> torch.Tensor:
    """logits[b, g, o, i] = q_i · k_{i + d·o}, the dot product over the channels of group g.

    Args:
        q: queries, (B, C, H, W); scale them first if the attention is scaled.
        k: keys, (B, C, H, W).
        kernel_size: k, odd.
        dilation: d.
        groups: G, the number of heads; G divides C.
        backend: "auto", "reference", "lean" or "triton".
        border: "zeros" (out-of-image neighbours get -inf) or "clamp" (windows shift inward).

    Returns:
        logits, (B, G, k*k, H, W), -inf where the neighbour is outside the image.
    """
    _check_window(kernel_size, dilation)
    _check_map("q", q)
    _check_map("k", k)
    if k.shape != q.shape:
        raise ValueError(f"k must have the shape of q {tuple(q.shape)}, got {tuple(k.shape)}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or q.shape[1] % groups:
        raise ValueError(f"groups must be a positive int dividing the C={q.shape[1]} channels, "
                         f"got {groups!r}")
    _check_backend(backend, SIMILARITY_BACKENDS)
    _check_border(border)
    if q.dtype != k.dtype:
        dtype = torch.promote_types(q.dtype, k.dtype)
        q, k = q.to(dtype), k.to(dtype)
    if backend == "auto":
        backend = "triton" if q.is_cuda and _triton_usable(q) else "lean"
    _record_flops(q, kernel_size)
    if backend == "reference":
        return _reference_similarity(q, k, kernel_size, dilation, groups, border)
    if backend == "triton":
        return _triton_kernels(q).TritonSimilarity.apply(q, k, kernel_size, dilation, groups, border)
    return _LeanSimilarity.apply(q, k, kernel_size, dilation, groups, border)
