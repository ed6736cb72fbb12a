"""Convolutional mixers: depthwise convolution, its two dynamic forms, and pooling.

All four are y_i = Σ_{j ∈ N(i)} w_ij ⊙ x_j over a k×k window with zero padding; they differ in
how w is shared and where it comes from:

| mixer                 | w_ij                                        | shared by                  |
|-----------------------|---------------------------------------------|----------------------------|
| DWConv                | W_c[j - i], learned                         | every image and position   |
| DynamicDWConv (D-DW)  | W_{b,c}[j - i] = FC(GAP(x_b)), generated    | every position of an image |
| InhomogeneousDWConv   | W_{b,g}[i; j - i] = 1×1conv(x)_i, generated | the channels of a group    |
| Pooling               | 1/|N(i)| - δ_ij, fixed                       | everything                 |

Papers: ConvNeXt (Liu et al., 2022, arXiv 2201.03545); DWNet, D-DW and I-D-DW (Han et al., "On
the Connection between Local Attention and Dynamic Depth-wise Convolution", ICLR 2022, arXiv
2106.04263); PoolFormer (Yu et al., "MetaFormer is Actually What You Need for Vision", CVPR 2022,
arXiv 2111.11418).

Shape legend: B batch, C = dim channels, H × W the map, G weight groups, K = k*k offsets.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import check_bool, check_divides, check_int, check_map
from ..ops import local_aggregate, neighbour_mask
from ._registry import SMALL_WINDOW, FlopFormula, MixerInfo, map_pixels, register_mixer

__all__ = ["DWConv", "DynamicDWConv", "InhomogeneousDWConv", "Pooling"]


def _init_kernel_generator(last: nn.Conv2d, kernel_taps: int) -> None:
    """Start the generated kernels at the scale of a default depthwise kernel.

    PyTorch's default init of the generator's last 1×1 conv makes every generated tap about
    as large as its input, so a K-tap kernel multiplies the map's scale by ~√K: in the small
    D-DW network's blocks the mixer's output starts 3 to 12 times as large as its input (RMS)
    and grows the residual stream block by block (DWNet's block has a BatchNorm after the
    mixer that hides this; a pre-norm MetaFormer block does not). Here the taps start with
    variance 1/(3K), as `nn.Conv2d`'s own depthwise init gives: weights U(±√(2/(hidden·K)))
    against inputs of mean square ~1/2 (a ReLU of unit-variance features), biases zero; the
    output is then about half the input. This is the mixer's own init, which models built with
    ``init="torch"`` keep; ConvNeXt's truncated normal (``models.init_weights``, every
    preset's default) replaces it with std 0.02.
    """
    bound = (2.0 / (last.in_channels * kernel_taps)) ** 0.5
    nn.init.uniform_(last.weight, -bound, bound)
    if last.bias is not None:
        nn.init.zeros_(last.bias)


def _generator_width(dim: int, reduction: int) -> int:
    """The kernel generator's hidden width, dim // reduction, of at least one channel."""
    hidden = dim // check_int("reduction", reduction)
    if hidden < 1:
        raise ValueError(f"reduction={reduction} leaves no hidden channel for dim={dim}")
    return hidden


@register_mixer("dwconv")
class DWConv(nn.Module):
    r"""Depthwise convolution: static weights, one k×k kernel per channel, shared over positions.

    $y_{c,i} = \sum_{o} W_c[o]\, x_{c,\, i + d\,o} + b_c$, i.e. the formula with
    w of shape (1, C, K, 1, 1).

    Args:
        dim: C, the channels.
        kernel_size: k (ConvNeXt and DWNet: 7).
        dilation: d, the spacing of the taps.
        bias: add a learned b_c.
    """

    info = MixerInfo(neighbourhood="k×k window", sharing="channel", weights="static",
                     paper="liu2022convnext", small=lambda stage: dict(kernel_size=SMALL_WINDOW),
                     small_width=36,
                     bad_example=("kernel_size", dict(kernel_size=4)))

    def __init__(self, dim: int, *, kernel_size: int = 7, dilation: int = 1, bias: bool = True):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)
        self.dilation = check_int("dilation", dilation)
        # an nn.Conv2d holds the kernel so that checkpoints of ConvNeXt-style code load 1:1
        self.conv = nn.Conv2d(dim, dim, kernel_size, padding=dilation * (kernel_size // 2),
                              dilation=dilation, groups=dim, bias=check_bool("bias", bias))

    def aggregation_weights(self, x: torch.Tensor | None = None
                            ) -> torch.Tensor:
        """(1, C, K, 1, 1): the same kernel for every image and pixel (x is
        not needed)."""
        K = self.kernel_size ** 2
        # (C, 1, k, k) -> (1, C, K, 1, 1): taps row-major, as the offsets
        return self.conv.weight.reshape(1, self.dim, K, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        y = local_aggregate(x, self.aggregation_weights(), self.kernel_size,
                            self.dilation)
        if self.conv.bias is not None:
            y = y + self.conv.bias.view(1, -1, 1, 1)
        return y

    def multiply_adds(self, height: int, width: int) -> int:
        """N k² C for one image of N = H·W pixels: one per pixel, channel and offset (the
        bias is an addition, not counted)."""
        return map_pixels(height, width) * self.kernel_size ** 2 * self.dim


@register_mixer("ddwconv")
class DynamicDWConv(nn.Module):
    r"""Homogeneous dynamic depthwise convolution (D-DW, Han et al. 2022).

    A kernel per image and channel, generated from the pooled image, shared by every position:
    $W_{b} = \mathrm{FC}_2(\mathrm{act}(\mathrm{norm}(\mathrm{FC}_1(\mathrm{GAP}(x_b)))))$,
    $y_{b,c,i} = \sum_o W_{b,c}[o]\, x_{b,c,i+o} + b_c$; w has shape (B, C, K, 1, 1). No
    softmax: the generated kernels are unnormalised, as in the paper.

    Args:
        dim: C.
        kernel_size: k (DWNet: 7).
        reduction: the generator's hidden width is C // reduction (DWNet: 4).
        norm_layer, act_layer: the generator's normalisation and activation (BN, ReLU).
    """

    # the kernel generator is heavy: its small model is the narrowest
    info = MixerInfo(neighbourhood="k×k window", sharing="channel (per image)",
                     weights="generated", paper="han2022connection",
                     small=lambda stage: dict(kernel_size=SMALL_WINDOW), small_width=22,
                     bad_example=("reduction", dict(reduction=0)))

    def __init__(self, dim: int, *, kernel_size: int = 7, reduction: int = 4,
                 norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)
        hidden = _generator_width(dim, reduction)
        self.generator = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, hidden, 1, bias=False),
            norm_layer(hidden),
            act_layer(),
            nn.Conv2d(hidden, dim * kernel_size ** 2, 1),
        )
        _init_kernel_generator(self.generator[-1], kernel_size ** 2)
        self.bias = nn.Parameter(torch.zeros(dim))

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, K, 1, 1): one kernel per image and channel."""
        check_map(x, self.dim, self)
        B = x.shape[0]
        norm = self.generator[2]
        if B == 1 and self.training and isinstance(norm, nn.modules.batchnorm._BatchNorm):
            raise ValueError(f"DynamicDWConv in training mode needs at least 2 images: its "
                             f"generator's BatchNorm normalises the pooled features across the "
                             f"batch, got x of shape {tuple(x.shape)} (eval() takes one)")
        # (B, C·K, 1, 1) -> (B, C, K, 1, 1): the generator's channels are channel-major
        return self.generator(x).view(B, self.dim, self.kernel_size ** 2, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # aggregation_weights checks x first, as every mixer's forward does
        y = local_aggregate(x, self.aggregation_weights(x), self.kernel_size)
        return y + self.bias.view(1, -1, 1, 1)

    def multiply_adds(self, height: int, width: int) -> int:
        """N k² C + C·C_h + C_h·C k², C_h = C // reduction: the aggregation, then the
        generator's two layers, which run once per image on the pooled vector."""
        C, K, hidden = self.dim, self.kernel_size ** 2, self.generator[1].out_channels
        return map_pixels(height, width) * K * C + C * hidden + hidden * C * K


@register_mixer("idwconv")
class InhomogeneousDWConv(nn.Module):
    r"""Inhomogeneous dynamic depthwise convolution (I-D-DW, Han et al. 2022).

    A kernel per pixel, generated from that pixel's features by a 1×1 bottleneck and shared by
    the C/G channels of a group, like a head of local attention but without query-key products
    or softmax: $w_{g}[i; o] = \mathrm{Conv}_2(\mathrm{act}(\mathrm{norm}(\mathrm{Conv}_1(x))))_i$,
    shape (B, G, K, H, W).

    Args:
        dim: C.
        kernel_size: k (DWNet: 7).
        groups: G, the number of weight groups; DWNet uses 32 in every stage (its config's
            "heads" 3/6/12/24 are channels per group).
        reduction: the generator's hidden width is C // reduction (DWNet: 4).
        norm_layer, act_layer: the generator's normalisation and activation (BN, ReLU).
    """

    info = MixerInfo(neighbourhood="k×k window", sharing="group", weights="generated",
                     paper="han2022connection", small_width=32,
                     # one kernel per head-sized group of channels, as attention's heads
                     small=lambda stage: dict(kernel_size=SMALL_WINDOW, groups=stage.heads),
                     bad_example=("groups", dict(groups=5)))

    def __init__(self, dim: int, *, kernel_size: int = 7, groups: int = 32, reduction: int = 4,
                 norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)
        self.groups = check_int("groups", groups)
        check_divides("groups", groups, "dim", dim)
        hidden = _generator_width(dim, reduction)
        self.generator = nn.Sequential(
            nn.Conv2d(dim, hidden, 1),
            norm_layer(hidden),
            act_layer(),
            nn.Conv2d(hidden, groups * kernel_size ** 2, 1),
        )
        _init_kernel_generator(self.generator[-1], kernel_size ** 2)

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, G, K, H, W): a kernel per pixel and group; the generator's channels are
        group-major, (G, K)."""
        check_map(x, self.dim, self)
        B, _, H, W = x.shape
        # (B, G·K, H, W) -> (B, G, K, H, W)
        return self.generator(x).view(B, self.groups, self.kernel_size ** 2, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # aggregation_weights checks x first, as every mixer's forward does
        return local_aggregate(x, self.aggregation_weights(x), self.kernel_size)

    def multiply_adds(self, height: int, width: int) -> int:
        """N k² C + N (C·C_h + C_h·G k²), C_h = C // reduction: the aggregation, then the
        generator's two 1×1 layers, which run at every pixel."""
        C, K, hidden = self.dim, self.kernel_size ** 2, self.generator[0].out_channels
        return map_pixels(height, width) * (K * C + C * hidden + hidden * self.groups * K)


def _pooling_flops(module: "Pooling", inputs: tuple, output: torch.Tensor) -> int:
    """k² + 1 per output value: k² - 1 additions, the division of the mean, the subtraction
    of x (fewer at the borders, so an upper bound; torch's counter sees no pooling at all)."""
    return output.numel() * (module.pool_size ** 2 + 1)


@register_mixer("pooling")
class Pooling(nn.Module):
    r"""PoolFormer's mixer: the mean of the neighbours inside the image, minus the pixel.

    $y_i = \frac{1}{|\mathcal{N}(i)|}\sum_{j \in \mathcal{N}(i)} x_j - x_i$: fixed weights
    $w_{ij} = 1/|\mathcal{N}(i)| - \delta_{ij}$, shared by all channels; their rows sum to 0.
    The forward uses average pooling (the fastest exact path); `aggregation_weights` gives the
    same layer in the book's form.

    Args:
        dim: C (only checked: pooling has no weights).
        pool_size: k (PoolFormer: 3).
    """

    info = MixerInfo(neighbourhood="k×k window", sharing="all channels", weights="fixed",
                     paper="yu2022metaformer", small=lambda stage: {}, small_width=36,
                     flops=FlopFormula("pooling", _pooling_flops),
                     bad_example=("pool_size", dict(pool_size=2)))

    def __init__(self, dim: int, *, pool_size: int = 3):
        super().__init__()
        self.dim = check_int("dim", dim)
        # at least 3: a 1×1 "average" is the pixel itself, and the mixer's output would be 0
        self.pool_size = check_int("pool_size", pool_size, minimum=3, odd=True)

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(1, 1, K, H, W): 1/|N(i)| on the neighbours inside the image, minus 1 at the centre."""
        check_map(x, self.dim, self)
        H, W = x.shape[-2:]
        inside = neighbour_mask(H, W, self.pool_size, device=x.device).to(x.dtype)  # (K, H, W)
        w = inside / inside.sum(0)
        w[self.pool_size ** 2 // 2] -= 1.0  # the centre offset
        return w[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        mean = F.avg_pool2d(x, self.pool_size, stride=1, padding=self.pool_size // 2,
                            count_include_pad=False)
        return mean - x

    def multiply_adds(self, height: int, width: int) -> None:
        """None: a mean multiplies nothing it learned; its additions are counted by
        ``info.flops`` (k² + 1 per output value)."""
        map_pixels(height, width)
        return None
