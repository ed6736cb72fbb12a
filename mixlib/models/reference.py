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
the book's one recipe (mixlib.train), not airbench's own optimizer and tricks. Unlike the
mixer presets, both networks here keep PyTorch's default initialisation and have no stochastic
depth (the presets: truncated normal, std 0.02, and drop path up to 0.05), as the appendix's
recorded runs were trained.

The same skeleton also takes a token mixer (`with_mixer`): each group's second convolution
becomes one pre-norm MetaFormer block (BN, mixer, residual; BN, MLP ×4, residual), while the
stem and each group's first convolution, which change the width and pool, stay dense. It
separates, in part, the two things the mixer presets differ from this network in: the mixer, and
where the computation is spent (here 64 channels from the full 32×32 image on, where the presets' first
stage has 22 to 36 channels at 16×16).

| preset              | image | maps per group | the second layer of each group          |
|---------------------|-------|----------------|-----------------------------------------|
| denseconv_cifar     | 32 px | 16, 8, 4       | a dense 3×3 convolution                 |
| dwconv_refnet_cifar | 32 px | 16, 8, 4       | a MetaFormer block with a 7×7 DW conv   |
"""
from __future__ import annotations

import torch.nn as nn

from ..layers import check_int
from ..mixers import available as available_mixers
from .backbone import Backbone, ClassifierHead, hierarchy
from .presets import register_model
from .small import fitted_block

__all__ = ["conv_group", "denseconv_cifar", "with_mixer", "dwconv_refnet_cifar"]


def _conv_bn_gelu(in_dim: int, dim: int, *, pool: bool) -> list[nn.Module]:
    # airbench's order: pooling before the norm, so BN sees the map the next layer gets
    pooling = [nn.MaxPool2d(2)] if pool else []
    return [nn.Conv2d(in_dim, dim, 3, padding=1, bias=False), *pooling, nn.BatchNorm2d(dim), nn.GELU()]


def _dims(stem_width: int, widths: tuple[int, ...]) -> list[int]:
    if not widths:
        raise ValueError(f"widths must name at least one group, got {widths!r}")
    return [check_int("stem_width", stem_width)] + [check_int(f"widths[{i}]", w)
                                                    for i, w in enumerate(widths)]


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
    dims = _dims(stem_width, widths)
    stem = nn.Sequential(*_conv_bn_gelu(3, dims[0], pool=False))
    groups = [conv_group(in_dim, dim) for in_dim, dim in zip(dims, dims[1:])]
    return Backbone(stem, groups, ClassifierHead(dims[-1], num_classes), dims=dims[1:], image_size=32)


def with_mixer(mixer: str, *, num_classes: int = 10, widths: tuple[int, ...] = (64, 256, 256),
               stem_width: int = 24, image_size: int = 32, mlp_ratio: float = 4.0) -> Backbone:
    """The reference network with each group's second convolution replaced by one MetaFormer
    block of `mixer`, its hyper-parameters fitted to the map as in the small presets
    (`small.mixer_kwargs`).

    Args:
        mixer: a registered mixer name.
        num_classes: classes of the head.
        widths: the width of each group; each group halves the map.
        stem_width: the channels of the stem's convolution.
        image_size: the input's side, which fixes every group's map size.
        mlp_ratio: the MLP's hidden width over C.
    """
    if mixer not in available_mixers():
        raise ValueError(f"mixer must be one of {available_mixers()}, got {mixer!r}")
    dims = _dims(stem_width, widths)
    maps = [check_int("image_size", image_size) // 2 ** (g + 1) for g in range(len(widths))]
    if maps[-1] < 1:  # max-pooling rounds down: each group halves the map, odd sides lose a pixel
        raise ValueError(f"image_size must be at least {2 ** len(widths)} for {len(widths)} groups "
                         f"that each halve the map, got {image_size}")
    # the first group's dense convolution and pooling go into the stem: hierarchy only puts
    # `downsample` between stages
    stem = nn.Sequential(*_conv_bn_gelu(3, dims[0], pool=False), *_conv_bn_gelu(dims[0], dims[1], pool=True))

    def downsample(in_dim, dim):
        return nn.Sequential(*_conv_bn_gelu(in_dim, dim, pool=True))

    head = ClassifierHead(dims[-1], num_classes, pre_norm=nn.BatchNorm2d(dims[-1]))
    model = hierarchy(dims=dims[1:], depths=[1] * len(widths), stem=stem,
                      block=fitted_block([mixer] * len(widths), maps, mlp_ratio=mlp_ratio),
                      downsample=downsample, head=head)
    model.image_size = image_size
    return model


@register_model
def dwconv_refnet_cifar(*, num_classes: int = 10, image_size: int = 32) -> Backbone:
    """The reference network with a 7×7 depthwise convolution as the mixer of each group's
    block (see mixlib.models.reference)."""
    return with_mixer("dwconv", num_classes=num_classes, image_size=image_size)
