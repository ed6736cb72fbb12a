"""High-order and global mixers: HorNet's gnConv, GFNet's global filter, HorNet's
GlobalLocalFilter.

Papers: HorNet (Rao et al., "HorNet: Efficient High-Order Spatial Interactions with Recursive
Gated Convolutions", NeurIPS 2022, arXiv 2207.14284); GFNet (Rao et al., "Global Filter
Networks for Image Classification", NeurIPS 2021, arXiv 2107.00645).

- GlobalFilter: y = irfft2(rfft2(x) ⊙ W). In the book's formula that is a *circular*
  depthwise convolution over the whole map, y_i = Σ_j k_c[(i - j) mod (H, W)] x_j with
  k = irfft2(W) (a convolution, so as a cross-correlation its kernel is k flipped): static
  weights, one global kernel per channel.
- GnConv: p_1 = p_0 ⊙ s·DW(q_0), then p_{k+1} = pw_{k-1}(p_k) ⊙ s·DW(q_k), ...: each order
  multiplies by one more spatially aggregated gate. Order 1 is a gated depthwise conv,
  y = proj_out(p_0 ⊙ s·(K ⋆ q_0 + b)), whose weights w_ij = s·p_i ⊙ K[j - i] on q depend on
  the input through the query-side gate p_i (plus the gated bias s·p_i ⊙ b).
- GlobalLocalFilter: half the channels through a 3×3 depthwise conv, half through a global
  filter; HorNet-GF uses it as gnConv's spatial mixer.

Shape legend: B batch, C = dim, H × W the map, (h, w) = (H, W // 2 + 1) the rfft spectrum.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import LayerNorm2d, check_float, check_int, check_map, pair
from ._registry import FlopFormula, MixerInfo, map_pixels, register_mixer
from .conv import DWConv

__all__ = ["GlobalFilter", "GlobalLocalFilter", "GnConv", "spectral_filter"]


def spectral_filter(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """irfft2(rfft2(x) ⊙ W) with orthonormal FFTs for x (B, C, H, W), in float32 at least.

    weight: (C, h, w, 2), real and imaginary parts. When the map's spectrum (H, W // 2 + 1)
    differs from (h, w), the weights are resized bilinearly (align_corners=True), as HorNet
    does; at the size they were made for, the layer is exactly a circular depthwise conv.
    """
    H, W = x.shape[-2:]
    if x.numel() == 0:  # an empty batch: MKL refuses to plan an FFT over no data
        return x.clone()
    real_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32  # no half FFTs
    spectrum = torch.fft.rfft2(x.to(real_dtype), dim=(2, 3), norm="ortho")  # (B, C, H, W // 2 + 1)
    if spectrum.shape[-2:] != weight.shape[1:3]:
        # (C, h, w, 2) -> (2, C, h, w) to resize the two spatial axes, then back
        weight = F.interpolate(weight.permute(3, 0, 1, 2), size=spectrum.shape[-2:],
                               mode="bilinear", align_corners=True).permute(1, 2, 3, 0)
    filtered = spectrum * torch.view_as_complex(weight.to(real_dtype).contiguous())
    return torch.fft.irfft2(filtered, s=(H, W), dim=(2, 3), norm="ortho").to(x.dtype)


def _fft_flops(channels: int, batch: int, height: int, width: int) -> int:
    """A global filter's FLOPs: 2.5·N·log2(N) per real transform of N pixels (there and
    back) and 6 per complex product of the H × (W/2 + 1) spectrum."""
    n = height * width
    return int(batch * channels * (2 * 2.5 * n * math.log2(max(n, 2)) + 6 * height * (width // 2 + 1)))


def _filter_flops(module: nn.Module, inputs: tuple, output) -> int:
    B, C, H, W = inputs[0].shape
    return _fft_flops(C if isinstance(module, GlobalFilter) else C // 2, B, H, W)


FFT_FLOPS = FlopFormula("fft", _filter_flops)


@register_mixer("global_filter")
class GlobalFilter(nn.Module):
    r"""GFNet's global filter: $y = \mathcal F^{-1}(\mathcal F(x) \odot W)$, per channel.

    Equal to a circular depthwise convolution with kernel ``spatial_kernel()`` over the whole
    map. GFNet fixes the map size; here other sizes resize the filter (see ``spectral_filter``).

    Args:
        dim: C.
        size: (H, W), the map the filter is learned for (GFNet-Ti at 224 px: 14×14, so a
            14×8 spectrum).
    """

    info = MixerInfo(neighbourhood="global (circular)", sharing="channel", weights="static",
                     paper="rao2021gfnet", flops=FFT_FLOPS,
                     small=lambda stage: dict(size=(stage.size, stage.size)),
                     small_width={"cifar": 36, "imagenette": 32},
                     bad_example=("size", dict(size=(3, 4, 5))))

    def __init__(self, dim: int, *, size=(14, 14)):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.size = pair("size", size)
        h, w = self.size[0], self.size[1] // 2 + 1
        self.complex_weight = nn.Parameter(torch.randn(dim, h, w, 2) * 0.02)

    def spatial_kernel(self) -> torch.Tensor:
        """(C, H, W): k = irfft2(W), the kernel of the circular convolution the layer applies,
        y_i = Σ_o k[o] x_{(i - o) mod (H, W)}."""
        weight = torch.view_as_complex(self.complex_weight.contiguous())
        return torch.fft.irfft2(weight, s=self.size, dim=(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        return spectral_filter(x, self.complex_weight)

    def multiply_adds(self, height: int, width: int) -> None:
        """None: its cost is two FFTs and a complex product, counted by ``info.flops``
        (`_fft_flops`), not multiply-adds of a learned kernel."""
        map_pixels(height, width)
        return None


class GlobalLocalFilter(nn.Module):
    """HorNet's spatial mixer for HorNet-GF: half the channels through a 3×3 depthwise conv,
    half through a global filter, outputs interleaved (dw_0, fft_0, dw_1, fft_1, ...),
    between two channels-first LayerNorms.

    Args:
        dim: C, even.
        size: (H, W), the map the global filter is learned for (HorNet-T-GF: 14×14 in stage 3,
            7×7 in stage 4).
    """

    # not a registered mixer of its own (GnConv holds it): its info carries its FLOP formula
    info = MixerInfo(neighbourhood="global (circular) + 3×3 window", sharing="channel",
                     weights="static", paper="rao2022hornet", flops=FFT_FLOPS)

    def __init__(self, dim: int, *, size=(14, 14)):
        super().__init__()
        self.dim = check_int("dim", dim, minimum=2)
        if dim % 2:
            raise ValueError(f"GlobalLocalFilter splits the channels in halves: dim={dim} must be even")
        self.size = pair("size", size)
        half = dim // 2
        self.pre_norm = LayerNorm2d(dim, eps=1e-6)
        self.dw = nn.Conv2d(half, half, 3, padding=1, bias=False, groups=half)
        h, w = self.size[0], self.size[1] // 2 + 1
        self.complex_weight = nn.Parameter(torch.empty(half, h, w, 2))
        nn.init.trunc_normal_(self.complex_weight, std=0.02)
        self.post_norm = LayerNorm2d(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        x = self.pre_norm(x)
        local, glob = x.chunk(2, dim=1)
        local = self.dw(local)
        glob = spectral_filter(glob, self.complex_weight)
        # (B, C/2, H, W) twice -> (B, C/2, 2, H, W) -> (B, C, H, W): channels interleave
        x = torch.stack([local, glob], dim=2).reshape(B, C, H, W)
        return self.post_norm(x)


@register_mixer("gnconv")
class GnConv(nn.Module):
    r"""HorNet's recursive gated convolution of order n.

    $[p_0, q_0, \dots, q_{n-1}] = \mathrm{proj_{in}}(x)$ with widths
    $C/2^{n-1}, C/2^{n-1}, \dots, C/2, C$; the q's go through one spatial mixer together and are
    scaled by s; then $p_1 = p_0 \odot q'_0$,
    $p_{k+1} = \mathrm{pw}_{k-1}(p_k) \odot q'_k$ for k = 1, ..., n-1 (``pws[k-1]``, a 1×1
    conv that doubles the width), and $y = \mathrm{proj_{out}}(p_n)$.

    Args:
        dim: C, divisible by 2^(order-1).
        order: n (HorNet-T: 2, 3, 4, 5 in its four stages).
        kernel_size: k of the depthwise spatial mixer (HorNet: 7).
        scale: s, the factor on the spatial mixer's output (HorNet: 1/3).
        global_size: None for the depthwise conv, or (H, W) to use a GlobalLocalFilter learned
            for that map size (HorNet-GF).
    """

    info = MixerInfo(neighbourhood="k×k window", sharing="channel",
                     weights="static + recursive gates", paper="rao2022hornet",
                     small=lambda stage: dict(order=stage.stage + 2),  # HorNet: orders 2 to 5
                     small_width=28,
                     bad_example=("order", dict(order=8)))

    def __init__(self, dim: int, *, order: int = 5, kernel_size: int = 7, scale: float = 1 / 3,
                 global_size=None):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.order = check_int("order", order)
        if dim % 2 ** (order - 1):
            raise ValueError(f"order={order} halves dim={dim} {order - 1} times: dim must be "
                             f"divisible by {2 ** (order - 1)}")
        self.dims = [dim // 2 ** i for i in range(order)][::-1]  # smallest first
        self.scale = check_float("scale", scale, above=0)  # 0 zeroes every gate: y = proj_out's bias
        # checked with a global filter too, which does not use it: a bad value is a typo
        check_int("kernel_size", kernel_size, odd=True)
        self.proj_in = nn.Conv2d(dim, 2 * dim, 1)
        if global_size is None:
            self.spatial = DWConv(sum(self.dims), kernel_size=kernel_size)
        else:
            if sum(self.dims) % 2:  # dim not a multiple of 2**order: an odd number of q channels
                raise ValueError(f"global_size needs dim divisible by 2**order = {2 ** order} (the "
                                 f"GlobalLocalFilter halves the {sum(self.dims)} q channels), got "
                                 f"dim={dim}, order={order}")
            self.spatial = GlobalLocalFilter(sum(self.dims), size=pair("global_size", global_size))
        self.pws = nn.ModuleList(nn.Conv2d(self.dims[i], self.dims[i + 1], 1) for i in range(order - 1))
        self.proj_out = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        p, q = torch.split(self.proj_in(x), (self.dims[0], sum(self.dims)),
                           dim=1)
        gates = torch.split(self.spatial(q) * self.scale, self.dims, dim=1)
        x = p * gates[0]
        for pw, gate in zip(self.pws, gates[1:]):
            x = pw(x) * gate
        return self.proj_out(x)

    def multiply_adds(self, height: int, width: int) -> int | None:
        """N (2C² + Σ_k C_k C_{k+1} + C²) + the spatial mixer's k² Σ_k C_k per pixel: the
        projection in, the 1×1 convs between the steps, the projection out, and one
        depthwise conv over all the q's (the gates' products are elementwise, not counted).
        None with a global filter (HorNet-GF), whose FFTs are not multiply-adds."""
        N = map_pixels(height, width)
        if not isinstance(self.spatial, DWConv):
            return None
        C, d = self.dim, self.dims
        pointwise = 2 * C * C + sum(a * b for a, b in zip(d, d[1:])) + C * C
        return N * pointwise + self.spatial.multiply_adds(height, width)
