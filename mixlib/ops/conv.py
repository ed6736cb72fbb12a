"""The "conv" backend: the three bilinear ops for static weights through the convolution kernels.

Static weights have shape (B or 1, G, K, 1, 1): one k×k kernel per group of channels (and per
image when B > 1), the same at every pixel, so each op is a depthwise convolution with zero
padding:

- ``aggregate(x, w)``:  y = x ⋆ w, the cross-correlation ``F.conv2d`` computes;
- ``adjoint(x, w)``:    y = x ⋆ w turned by 180°: the adjoint of a zero-padded correlation is the
                        correlation with the flipped kernel, at the same padding;
- ``similarity(q, k)``: s[g, o] = Σ_{b, c ∈ g, i} q[c, i] · k[c, i + d·o], a kernel's gradient,
                        at the shape asked for (summed over the batch when it is 1).

Why not leave the derivatives to PyTorch: on small CPU maps, oneDNN's backward of a 7×7 (or
larger) depthwise kernel costs tens of times its forward, most of it the kernel's
gradient, while its 3×3 and 5×5 backward are fast (``python -m mixlib.bench small-maps``).
There (``own_derivatives``) the input's gradient is a forward convolution and the kernel's the
"dense" backend's matrix product over pixel pairs, which contracts the batch and the pixels in
one product; elsewhere ``F.conv2d`` keeps PyTorch's derivatives. As library ops (``library``)
the three inherit its derivatives of every order, ``torch.func`` and one node under
``torch.compile``.

Per-image kernels (B > 1, dynamic D-DW) fold the batch into the groups: one group per
(image, channel). Sums run in the input's dtype, as the convolution kernels do.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import dense

# On the CPU the weight gradient of a kernel the batch shares goes through dense.similarity up
# to this many pixels (python -m mixlib.bench small-maps), through oneDNN above
DENSE_GRADIENT_MAX_PIXELS = 64
# where own_derivatives holds: kernels this large, on maps this small, on the CPU
OWN_DERIVATIVES_MIN_KERNEL = 7
OWN_DERIVATIVES_MAX_PIXELS = 64


def own_derivatives(x: torch.Tensor, w: torch.Tensor, kernel_size: int) -> bool:
    """Whether a static kernel should run as the library op with this module's derivatives
    rather than as ``F.conv2d`` with PyTorch's: a kernel the batch shares, k ≥ 7, a CPU map of
    at most 64 pixels (on 16×16 the two were level; per-image kernels, 3×3 and 5×5 kernels and
    GPUs are as fast or faster with their own backward)."""
    return (x.device.type == "cpu" and w.shape[0] == 1
            and kernel_size >= OWN_DERIVATIVES_MIN_KERNEL
            and x.shape[2] * x.shape[3] <= OWN_DERIVATIVES_MAX_PIXELS)


def _dense_layout(x: torch.Tensor) -> torch.Tensor:
    """x, or a copy laid out in memory: an expanded gradient (of a sum: stride 0) sends
    oneDNN's convolution to a path eight times slower."""
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous(memory_format=torch.channels_last)


def check_static(w_shape, what: str = "weights") -> None:
    if tuple(w_shape[3:]) != (1, 1):
        raise ValueError(f"backend='conv' needs static {what} of shape (B or 1, G, k*k, 1, 1), "
                         f"got shape {tuple(w_shape)}")


def _correlate(x, w, kernel_size: int, dilation: int, *,
               flip: bool = False) -> torch.Tensor:
    """x (B, C, H, W) cross-correlated with the k×k kernel of each channel's
    group in w (B or 1, G, K, 1, 1), turned by 180° with `flip`, zero-padded
    to the map's size."""
    x = _dense_layout(x)
    B, C, H, W = x.shape
    Bw, G = w.shape[:2]
    # (B or 1, G, K, 1, 1) -> (B·C or C, 1, k, k): one kernel per channel
    # (per image)
    kernels = w.flatten(2)
    if G != C:
        kernels = kernels.repeat_interleave(C // G, dim=1)
    kernels = kernels.reshape(Bw * C, 1, kernel_size, kernel_size)
    if flip:
        kernels = kernels.flip(-2, -1)
    pad = dilation * (kernel_size // 2)
    if Bw == 1:
        return F.conv2d(x, kernels, padding=pad, dilation=dilation, groups=C)
    if B == 0:  # no sample, no group: the folded convolution cannot say that
        return x.new_zeros(x.shape)
    # per-image kernels: fold the batch into the channels, one group per
    # (image, channel)
    y = F.conv2d(x.reshape(1, B * C, H, W), kernels, padding=pad,
                 dilation=dilation, groups=B * C)
    return y.view(B, C, H, W)


def aggregate(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    check_static(w.shape)
    return _correlate(x, w, kernel_size, dilation)


def adjoint(x, w, kernel_size: int, dilation: int, border: str) -> torch.Tensor:
    check_static(w.shape)
    return _correlate(x, w, kernel_size, dilation, flip=True)


def similarity(q, k, kernel_size: int, dilation: int, border: str, masked: bool,
               shape) -> torch.Tensor:
    """shape: (B or 1, G, K, 1, 1); a batch of 1 is summed over the images."""
    check_static(shape, "output")
    if masked:
        raise ValueError("backend='conv' has no masked logits: it serves static weights only")
    B, C, H, W = q.shape
    Bw, G, K = shape[:3]
    shared = Bw == 1
    if shared and q.device.type == "cpu" and H * W <= DENSE_GRADIENT_MAX_PIXELS:
        return dense.similarity(q, k, kernel_size, dilation, border, False, shape)
    if B == 0:
        return q.new_zeros(shape)
    q, k = _dense_layout(q), _dense_layout(k)  # for oneDNN (dense reads any layout)
    pad = dilation * (kernel_size // 2)
    if shared:  # q plays the output's gradient, k the input, of a conv over the batch
        grad_out, inputs, groups = q, k, C
    else:  # per-image kernels: one group per (image, channel), as in the forward
        grad_out, inputs, groups = q.reshape(1, B * C, H, W), k.reshape(1, B * C, H, W), B * C
    # the weight is read for its shape only (its gradient alone is asked for)
    kernel_shape = q.new_zeros(1, 1, 1, 1).expand(groups, 1, kernel_size, kernel_size)
    _, grad_kernels, _ = torch.ops.aten.convolution_backward(
        grad_out, inputs, kernel_shape, None, (1, 1), (pad, pad), (dilation, dilation), False,
        (0, 0), groups, (False, True, False))
    # (Bw·C, 1, k, k) -> (Bw, G, C/G, K): a group's channels share one kernel, so their sum
    per_channel = grad_kernels.reshape(Bw, G, C // G, K)
    return per_channel.sum(2).reshape(shape)
