"""A dense-convolution reference network for CIFAR-10: what the 90%-in-an-hour goal asks of a
network built for this hardware, beside the book's mixer presets.

Every mixer of the book slims the dense k×k convolution, y_i = Σ_j W_{i-j} x_j with a full C×C
matrix W_{i-j} for each offset: depthwise convolution keeps its diagonal, attention makes it
depend on the input. The dense form costs the most FLOPs per parameter, but those FLOPs are
the ones a CPU (and a GPU) runs fastest, as large matrix products. The CIFAR-10 speed records
(airbench94, Jordan 2024: 94% in a few seconds on an A100) use a plain stack of them, and so
does this model:

    stem    conv3×3 3→24, BN, GELU                              32×32
    group 1 conv3×3 24→64,   maxpool 2, BN, GELU, conv3×3, BN, GELU   16×16
    group 2 conv3×3 64→256,  maxpool 2, BN, GELU, conv3×3, BN, GELU    8×8
    group 3 conv3×3 256→256, maxpool 2, BN, GELU, conv3×3, BN, GELU    4×4
    head    mean over pixels, linear

No residuals, no MLP, no token mixer in the MetaFormer sense: the convolutions mix tokens and
channels at once. About 1.97M parameters, the small presets' budget. Unlike airbench, its stem
is a learned 3×3 convolution (airbench freezes a 2×2 patch-whitening one), and it trains with
the book's one recipe (mixlib.train), not airbench's own optimizer and tricks.

| preset          | image | maps per group |
|-----------------|-------|----------------|
| denseconv_cifar | 32 px | 16, 8, 4       |
"""
from __future__ import annotations

import torch.nn as nn

from ..layers import check_int
from .backbone import Backbone, ClassifierHead
from .presets import register_model

__all__ = ["conv_group", "denseconv_cifar"]


def _conv_bn_gelu(in_dim: int, dim: int, *, pool: bool) -> list[nn.Module]:
    # airbench's order: pooling before the norm, so BN sees the map the next layer gets
    pooling = [nn.MaxPool2d(2)] if pool else []
    return [nn.Conv2d(in_dim, dim, 3, padding=1, bias=False), *pooling, nn.BatchNorm2d(dim), nn.GELU()]


def conv_group(in_dim: int, dim: int) -> nn.Sequential:
    """Two 3×3 convolutions with a 2×2 max-pooling after the first: (B, in_dim, H, W) ->
    (B, dim, H/2, W/2)."""
    return nn.Sequential(*_conv_bn_gelu(in_dim, dim, pool=True), *_conv_bn_gelu(dim, dim, pool=False))


@register_model
def denseconv_cifar(*, num_classes: int = 10, widths: tuple[int, ...] = (64, 256, 256),
                    stem_width: int = 24) -> Backbone:
    """The dense-convolution reference network (see mixlib.models.reference).

    Args:
        num_classes: classes of the head.
        widths: the width of each group; each group halves the map.
        stem_width: the channels of the stem's convolution.
    """
    dims = [check_int("stem_width", stem_width)] + [check_int("widths", w) for w in widths]
    stem = nn.Sequential(*_conv_bn_gelu(3, dims[0], pool=False))
    groups = [conv_group(in_dim, dim) for in_dim, dim in zip(dims, dims[1:])]
    return Backbone(stem, groups, ClassifierHead(dims[-1], num_classes), dims=dims[1:])
