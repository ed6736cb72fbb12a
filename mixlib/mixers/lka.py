"""VAN's Large Kernel Attention: a large depthwise kernel, decomposed, used as a gate.

Paper: Guo et al., "Visual Attention Network", Computational Visual Media 2023, arXiv 2202.09741.

A K×K depthwise kernel (K = 21) is replaced by a (2d-1)×(2d-1) depthwise conv, then a
⌈K/d⌉×⌈K/d⌉ depthwise conv with dilation d, then a 1×1 conv that mixes channels:

    a = Conv1×1(DW_dil(DW(x))),    y = x ⊙ a.

The two depthwise convs compose into one dense kernel of extent (2d-1) + (⌈K/d⌉-1)·d
(23×23 for K = 21, d = 3) with 25 + 49 = 74 weights per channel instead of 529.
In the book's formula, a is a static large-kernel aggregation and the output is the input
gated by it: y_i = x_i ⊙ W₁ Σ_o K_o ⊙ x_{i+o}. The 1×1 conv mixes channels, so LKA as a whole
is not a depthwise aggregation; its spatial part is. Values are unbounded (no sigmoid).

Shape legend: B batch, C = dim, H × W the map.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import check_int, check_map
from ._registry import MixerInfo, map_pixels, register_mixer
from .conv import DWConv

__all__ = ["LargeKernelAttention", "compose_depthwise"]


def compose_depthwise(first: torch.Tensor, second: torch.Tensor, dilation: int = 1) -> torch.Tensor:
    """The one depthwise kernel equal to correlating with `first`, then with `second` dilated.

    Args:
        first: (C, 1, k1, k1); second: (C, 1, k2, k2), applied with `dilation`.

    Returns:
        (C, 1, k1 + (k2 - 1)·d, same): the full convolution of the two kernels.
    """
    C, _, k2, _ = second.shape
    span = (k2 - 1) * dilation + 1
    dilated = second.new_zeros(C, 1, span, span)
    dilated[:, :, ::dilation, ::dilation] = second
    # correlating a padded `first` with the flipped second kernel is their full convolution
    padded = F.pad(first.view(1, C, *first.shape[-2:]), (span - 1,) * 4)  # (1, C, k1+2s-2, same)
    size = first.shape[-1] + span - 1
    # (1, C, size, size) -> (C, 1, size, size): a depthwise kernel's layout
    return F.conv2d(padded, dilated.flip(-1, -2), groups=C).view(C, 1, size, size)


@register_mixer("lka")
class LargeKernelAttention(nn.Module):
    r"""$y = x \odot \mathrm{Conv}_{1\times1}(\mathrm{DW}_{\lceil K/d\rceil, d}(\mathrm{DW}_{2d-1}(x)))$.

    Args:
        dim: C.
        kernel_size: K, the large kernel being decomposed (VAN: 21).
        dilation: d (VAN: 3); the first conv is (2d-1)×(2d-1), the second ⌈K/d⌉×⌈K/d⌉, both odd.
    """

    info = MixerInfo(neighbourhood="dilated large window", sharing="channel",
                     weights="static + gate", paper="guo2023van",
                     small=lambda stage: {}, small_width=32,
                     bad_example=("dilation", dict(dilation=1)))

    def __init__(self, dim: int, *, kernel_size: int = 21, dilation: int = 3):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.kernel_size = check_int("kernel_size", kernel_size)
        self.dilation = check_int("dilation", dilation, minimum=2)
        local_size, dilated_size = 2 * dilation - 1, -(-kernel_size // dilation)
        if dilated_size % 2 == 0:
            raise ValueError(f"kernel_size={kernel_size} and dilation={dilation} give an even "
                             f"dilated kernel ⌈K/d⌉={dilated_size}; choose K with odd ⌈K/d⌉")
        self.conv0 = DWConv(dim, kernel_size=local_size)
        self.conv_spatial = DWConv(dim, kernel_size=dilated_size, dilation=dilation)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    @property
    def receptive_field(self) -> int:
        """The extent of the composed kernel: (2d-1) + (⌈K/d⌉-1)·d."""
        return self.conv0.kernel_size + (self.conv_spatial.kernel_size - 1) * self.dilation

    def composed_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C, 1, R, R) kernel and (C,) bias of the single depthwise conv that equals the two:
        exactly when the input is padded once by the total radius and both convs are valid;
        with the layers' own padding, only at least the second conv's radius ((⌈K/d⌉-1)/2 · d,
        9 px at the defaults) inside."""
        first, second = self.conv0.conv, self.conv_spatial.conv
        kernel = compose_depthwise(first.weight, second.weight, self.dilation)
        bias = second.bias + first.bias * second.weight.sum(dim=(1, 2, 3))
        return kernel, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        attention = self.conv1(self.conv_spatial(self.conv0(x)))
        return x * attention

    def multiply_adds(self, height: int, width: int) -> int:
        """N C ((2d-1)² + ⌈K/d⌉²) + N C²: the two depthwise convs, then the 1×1 conv (the
        gate x ⊙ a is one product per value, not counted): 74 + C per pixel and channel
        for K = 21, d = 3, where the full 23×23 kernel costs 529."""
        return (self.conv0.multiply_adds(height, width)
                + self.conv_spatial.multiply_adds(height, width)
                + map_pixels(height, width) * self.dim ** 2)
