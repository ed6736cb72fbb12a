"""Fused Triton kernels for local_similarity and local_aggregate (forward and backward).

The kernels read neighbours straight from the input (the k*k-times copy that unfold makes is
never built): a program handles one (image, channel) or (image, group) and a block of pixels,
and loops over the K = k*k offsets, accumulating in float32 for float32, bfloat16 and float16 inputs (float64 in float64).

- aggregate forward: y[b, c, i] = Σ_o w[b, g(c), o, i] · v[b, c, n(i, o)]    (gather)
- aggregate backward: grad_v[b, c, n(i, o)] += w · grad_y[b, c, i]            (atomic scatter)
                      grad_w[b, g, o, i] += Σ_{c in g} grad_y · v[n(i, o)]   (atomic where shared)
- similarity forward: logits[b, g, o, i] = Σ_{c in g} q[b, c, i] · k[b, c, n(i, o)]
- similarity backward: grad_q by gather, grad_k by atomic scatter.

n(i, o) is the o-th neighbour of pixel i under the border rule: i + d·o with zeros outside
("zeros"), or NATTEN's window shifted inward ("clamp"). Broadcast weights (a size-1 batch,
height or width axis) are read with stride 0, and their gradient is summed with atomics.

Launch on CUDA tensors; on the CPU the same kernels run under ``TRITON_INTERPRET=1`` (set
before this module is imported), which is how CI tests them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 128


@triton.jit
def _neighbour(pos, t, length, RADIUS: tl.constexpr, DILATION: tl.constexpr,
               KERNEL: tl.constexpr, CLAMP: tl.constexpr):
    """Position of the t-th neighbour (t = 0..k-1) of `pos` along an axis; may be outside for
    zero padding (the caller masks it)."""
    if CLAMP:
        phase = pos % DILATION
        index = pos // DILATION
        sub_length = (length - phase + DILATION - 1) // DILATION
        start = tl.maximum(index - RADIUS, 0)
        start = tl.where(index + RADIUS >= sub_length, sub_length - KERNEL, start)
        return (start + t) * DILATION + phase
    return pos + (t - RADIUS) * DILATION


@triton.jit
def _aggregate_fwd(v_ptr, w_ptr, y_ptr, C, H, W, G_CH,
                   w_sb, w_sg, w_so, w_sh, w_sw,
                   KERNEL: tl.constexpr, DILATION: tl.constexpr, CLAMP: tl.constexpr,
                   ACC: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    bc = tl.program_id(0).to(tl.int64)  # one (image, channel); int64: offsets pass 2^31
    b = bc // C
    g = (bc % C) // G_CH
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pix < H * W
    row, col = pix // W, pix % W
    base = bc * H * W
    acc = tl.zeros((BLOCK_SIZE,), dtype=ACC)
    for o in tl.static_range(KERNEL * KERNEL):
        r = _neighbour(row, o // KERNEL, H, KERNEL // 2, DILATION, KERNEL, CLAMP)
        c = _neighbour(col, o % KERNEL, W, KERNEL // 2, DILATION, KERNEL, CLAMP)
        ok = inside & (r >= 0) & (r < H) & (c >= 0) & (c < W)
        value = tl.load(v_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
        weight = tl.load(w_ptr + b * w_sb + g * w_sg + o * w_so + row * w_sh + col * w_sw,
                         mask=inside, other=0.0).to(ACC)
        acc += weight * value
    tl.store(y_ptr + base + pix, acc.to(y_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _aggregate_bwd(v_ptr, w_ptr, gy_ptr, gv_ptr, gw_ptr, C, H, W, G_CH,
                   w_sb, w_sg, w_so, w_sh, w_sw,
                   NEED_V: tl.constexpr, NEED_W: tl.constexpr, STATIC: tl.constexpr,
                   KERNEL: tl.constexpr, DILATION: tl.constexpr, CLAMP: tl.constexpr,
                   ACC: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    bc = tl.program_id(0).to(tl.int64)
    b = bc // C
    g = (bc % C) // G_CH
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pix < H * W
    row, col = pix // W, pix % W
    base = bc * H * W
    grad = tl.load(gy_ptr + base + pix, mask=inside, other=0.0).to(ACC)
    for o in tl.static_range(KERNEL * KERNEL):
        r = _neighbour(row, o // KERNEL, H, KERNEL // 2, DILATION, KERNEL, CLAMP)
        c = _neighbour(col, o % KERNEL, W, KERNEL // 2, DILATION, KERNEL, CLAMP)
        ok = inside & (r >= 0) & (r < H) & (c >= 0) & (c < W)
        w_offset = b * w_sb + g * w_sg + o * w_so
        if NEED_V:
            weight = tl.load(w_ptr + w_offset + row * w_sh + col * w_sw, mask=inside, other=0.0)
            tl.atomic_add(gv_ptr + base + r * W + c, weight.to(ACC) * grad, mask=ok)
        if NEED_W:
            value = tl.load(v_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
            if STATIC:  # one weight for every pixel: sum the block first, one atomic
                tl.atomic_add(gw_ptr + w_offset, tl.sum(grad * value, axis=0))
            else:
                tl.atomic_add(gw_ptr + w_offset + row * w_sh + col * w_sw, grad * value, mask=inside)


@triton.jit
def _similarity_fwd(q_ptr, k_ptr, out_ptr, C, H, W, G, G_CH,
                    KERNEL: tl.constexpr, DILATION: tl.constexpr, CLAMP: tl.constexpr,
                    ACC: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    bg = tl.program_id(0).to(tl.int64)  # one (image, group)
    b, g = bg // G, bg % G
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pix < H * W
    row, col = pix // W, pix % W
    for o in tl.static_range(KERNEL * KERNEL):
        r = _neighbour(row, o // KERNEL, H, KERNEL // 2, DILATION, KERNEL, CLAMP)
        c = _neighbour(col, o % KERNEL, W, KERNEL // 2, DILATION, KERNEL, CLAMP)
        ok = inside & (r >= 0) & (r < H) & (c >= 0) & (c < W)
        acc = tl.zeros((BLOCK_SIZE,), dtype=ACC)
        for ch in range(G_CH):
            base = (b * C + g * G_CH + ch) * H * W
            query = tl.load(q_ptr + base + pix, mask=inside, other=0.0).to(ACC)
            key = tl.load(k_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
            acc += query * key
        acc = tl.where(ok, acc, float("-inf"))
        tl.store(out_ptr + (bg * KERNEL * KERNEL + o) * H * W + pix,
                 acc.to(out_ptr.dtype.element_ty), mask=inside)


@triton.jit
def _similarity_bwd(q_ptr, k_ptr, gl_ptr, gq_ptr, gk_ptr, C, H, W, G, G_CH,
                    NEED_Q: tl.constexpr, NEED_K: tl.constexpr,
                    KERNEL: tl.constexpr, DILATION: tl.constexpr, CLAMP: tl.constexpr,
                    ACC: tl.constexpr, BLOCK_SIZE: tl.constexpr):
    bc = tl.program_id(0).to(tl.int64)  # one (image, channel); int64: offsets pass 2^31
    b = bc // C
    bg = b * G + (bc % C) // G_CH
    pix = tl.program_id(1) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    inside = pix < H * W
    row, col = pix // W, pix % W
    base = bc * H * W
    query = tl.load(q_ptr + base + pix, mask=inside, other=0.0).to(ACC)
    grad_q = tl.zeros((BLOCK_SIZE,), dtype=ACC)
    for o in tl.static_range(KERNEL * KERNEL):
        r = _neighbour(row, o // KERNEL, H, KERNEL // 2, DILATION, KERNEL, CLAMP)
        c = _neighbour(col, o % KERNEL, W, KERNEL // 2, DILATION, KERNEL, CLAMP)
        ok = inside & (r >= 0) & (r < H) & (c >= 0) & (c < W)
        grad = tl.load(gl_ptr + (bg * KERNEL * KERNEL + o) * H * W + pix, mask=ok, other=0.0)
        grad = grad.to(ACC)
        if NEED_Q:
            grad_q += grad * tl.load(k_ptr + base + r * W + c, mask=ok, other=0.0).to(ACC)
        if NEED_K:
            tl.atomic_add(gk_ptr + base + r * W + c, grad * query, mask=ok)
    if NEED_Q:
        tl.store(gq_ptr + base + pix, grad_q.to(gq_ptr.dtype.element_ty), mask=inside)


def _torch_accumulator(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype accumulates in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _accumulator(x: torch.Tensor):
    return tl.float64 if x.dtype == torch.float64 else tl.float32


def _grid(rows: int, height: int, width: int):
    return (rows, triton.cdiv(height * width, BLOCK))


def _weight_strides(w: torch.Tensor):
    """(batch, group, offset, row, col) strides, 0 along broadcast (size-1) axes."""
    return tuple(0 if size == 1 else stride for size, stride in zip(w.shape, w.stride()))


class TritonAggregate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, w, kernel_size, dilation, border):
        v, w = v.contiguous(), w.contiguous()
        B, C, H, W = v.shape
        G = w.shape[1]
        y = torch.empty_like(v)
        _aggregate_fwd[_grid(B * C, H, W)](
            v, w, y, C, H, W, C // G, *_weight_strides(w), KERNEL=kernel_size,
            DILATION=dilation, CLAMP=border == "clamp", ACC=_accumulator(v), BLOCK_SIZE=BLOCK)
        ctx.save_for_backward(v, w)
        ctx.window = (kernel_size, dilation, border)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        v, w = ctx.saved_tensors
        kernel_size, dilation, border = ctx.window
        B, C, H, W = v.shape
        G = w.shape[1]
        need_v, need_w = ctx.needs_input_grad[:2]
        acc = _torch_accumulator(v)
        grad_v = torch.zeros(v.shape, device=v.device, dtype=acc) if need_v else v
        grad_w = torch.zeros(w.shape, device=w.device, dtype=acc) if need_w else w
        _aggregate_bwd[_grid(B * C, H, W)](
            v, w, grad_y.contiguous(), grad_v, grad_w, C, H, W, C // G, *_weight_strides(w),
            NEED_V=need_v, NEED_W=need_w, STATIC=w.shape[3:] == (1, 1), KERNEL=kernel_size,
            DILATION=dilation, CLAMP=border == "clamp", ACC=_accumulator(v), BLOCK_SIZE=BLOCK)
        return (grad_v.to(v.dtype) if need_v else None, grad_w.to(w.dtype) if need_w else None,
                None, None, None)


class TritonSimilarity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, kernel_size, dilation, groups, border):
        q, k = q.contiguous(), k.contiguous()
        B, C, H, W = q.shape
        logits = q.new_empty(B, groups, kernel_size ** 2, H, W)
        _similarity_fwd[_grid(B * groups, H, W)](
            q, k, logits, C, H, W, groups, C // groups, KERNEL=kernel_size, DILATION=dilation,
            CLAMP=border == "clamp", ACC=_accumulator(q), BLOCK_SIZE=BLOCK)
        ctx.save_for_backward(q, k)
        ctx.window = (kernel_size, dilation, groups, border)
        return logits

    @staticmethod
    def backward(ctx, grad_logits):
        q, k = ctx.saved_tensors
        kernel_size, dilation, groups, border = ctx.window
        B, C, H, W = q.shape
        need_q, need_k = ctx.needs_input_grad[:2]
        grad_q = torch.empty_like(q) if need_q else q
        grad_k = torch.zeros(k.shape, device=k.device, dtype=_torch_accumulator(k)) if need_k else k
        _similarity_bwd[_grid(B * C, H, W)](
            q, k, grad_logits.contiguous(), grad_q, grad_k, C, H, W, groups, C // groups,
            NEED_Q=need_q, NEED_K=need_k, KERNEL=kernel_size, DILATION=dilation,
            CLAMP=border == "clamp", ACC=_accumulator(q), BLOCK_SIZE=BLOCK)
        return (grad_q if need_q else None, grad_k.to(k.dtype) if need_k else None,
                None, None, None, None)
