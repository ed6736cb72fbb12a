"""Named models: the papers' ImageNet models, and the book's small models (models.small).

    from mixlib import models
    models.available()
    net = models.build("convnext_t", num_classes=1000)

Each ImageNet preset follows its reference code closely enough that the parameter count
matches the reference code's within 0.5% (tests/test_models.py checks every one):

| preset          | params (1000 classes) | paper / reference code                      |
|-----------------|-----------------------|---------------------------------------------|
| swin_t          | 28.29M                | microsoft/Swin-Transformer                  |
| dwnet_t         | 24.17M                | Atten4Vis/DemystifyLocalViT (DW)            |
| ddwnet_t        | 51.13M                | same, dynamic (D-DW)                        |
| idwnet_t        | 26.24M                | same, inhomogeneous dynamic (I-D-DW)        |
| elsa_swin_t     | 29.14M                | damo-cv/ELSA                                |
| van_b0          | 4.11M                 | Visual-Attention-Network/VAN-Classification |
| coatnet_0       | 25.04M                | timm coatnet_0_224 (the paper's layout)     |
| hornet_t_7x7    | 22.41M                | raoyongming/HorNet                          |
| hornet_t_gf     | 22.99M                | raoyongming/HorNet                          |
| gfnet_ti        | 7.51M                 | raoyongming/GFNet                           |
| convnext_t      | 28.59M                | facebookresearch/ConvNeXt                   |
| poolformer_s12  | 11.92M                | sail-sg/poolformer                          |
"""
from __future__ import annotations

import functools
from functools import partial
from typing import Callable

import torch.nn as nn

from ..layers import LayerNorm2d, check_int, check_probability
from ..mixers import (ELSA, DWConv, DynamicDWConv, GlobalFilter, GnConv, InhomogeneousDWConv,
                      LargeKernelAttention, Pooling, RelativeAttention, WindowAttention)
from .backbone import Backbone, ClassifierHead, FeatureMaps, PositionEmbedding, hierarchy
from .blocks import (CoAtTransformerBlock, ConvNeXtBlock, DWConvMlp, DWNetBlock, GFNetBlock,
                     MBConvBlock, MetaFormerBlock, PatchMerging, ProjectedMixer)
from .init import init_weights

__all__ = ["register_model", "paper_model", "unregister_model", "add_preset_source", "build",
           "available"]

_MODELS: dict[str, Callable[..., Backbone]] = {}
# functions that register the presets of families which grow after import (models.small: a
# preset per registered mixer), called before every lookup
_SOURCES: list[Callable[[], None]] = []


def add_preset_source(sync: Callable[[], None]) -> None:
    _SOURCES.append(sync)


def _sync() -> None:
    for sync in _SOURCES:
        sync()


def register_model(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
    """Function decorator: the function's name becomes a preset of build()."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model name {fn.__name__!r} is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def unregister_model(name: str) -> None:
    if name not in _MODELS:
        raise ValueError(f"name must be one of {available()}, got {name!r}")
    del _MODELS[name]


def available() -> list[str]:
    _sync()
    return sorted(_MODELS)


def paper_model(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
    """Decorator of the papers' ImageNet presets: register `fn`, with an ``init`` keyword,
    "trunc_normal" by default (ConvNeXt's N(0, 0.02²) truncated, biases 0, models.init) or
    "torch" (PyTorch's default initialisation, the presets' before issue 24)."""
    @functools.wraps(fn)
    def preset(*, init: str = "trunc_normal", **kwargs) -> Backbone:
        return init_weights(fn(**kwargs), init)

    return register_model(preset)


def build(name: str, num_classes: int | None = None, *, pretrained: bool = False,
          features_only: bool = False, out_indices=None, in_chans: int = 3, **kwargs) -> Backbone:
    """The preset `name`, with its own number of classes (1000 for the ImageNet models, 10 for
    the small ones) unless `num_classes` says otherwise; keyword arguments (drop_path_rate,
    init, ...) change its other defaults.

    timm's arguments: ``pretrained=True`` loads the released weights through timm's hub and
    mixlib.models.convert (the presets with a timm twin; needs the network);
    ``features_only=True`` returns the stages' maps (``out_indices``: which, default all) as a
    `FeatureMaps`; ``in_chans`` sets the image channels of the stem's first convolution
    (pretrained weights adapted as timm does: summed for 1 channel, repeated and rescaled for
    more).
    """
    _sync()
    if name not in _MODELS:
        raise ValueError(f"name must be one of {available()}, got {name!r}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    _check_shared(kwargs)
    check_int("in_chans", in_chans)
    if out_indices is not None and not features_only:
        raise ValueError(f"out_indices={out_indices!r} needs features_only=True")
    model = _MODELS[name](**kwargs)
    if pretrained:
        from .convert import load_pretrained
        load_pretrained(model, name)
    if in_chans != 3:
        _set_in_chans(model, in_chans)
    return FeatureMaps(model, out_indices) if features_only else model


def _set_in_chans(model: Backbone, in_chans: int) -> None:
    """Make the stem's first convolution take `in_chans` channels, its weights adapted from the
    three colour channels as timm's ``adapt_input_conv`` does."""
    import torch

    if isinstance(model.stem, nn.Conv2d):  # PoolFormer's stem is one convolution
        parent, key, conv = model, "stem", model.stem
    else:
        parent, key, conv = next((parent, key, child) for parent in model.stem.modules()
                                 for key, child in parent.named_children()
                                 if isinstance(child, nn.Conv2d))
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None).to(conv.weight)
    with torch.no_grad():
        weight = conv.weight
        if in_chans == 1:
            new.weight.copy_(weight.sum(1, keepdim=True))
        else:
            repeats = -(-in_chans // weight.shape[1])
            new.weight.copy_(weight.repeat(1, repeats, 1, 1)[:, :in_chans] * (3 / in_chans))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, key, new)
    model.in_chans = in_chans
    model._feature_info = None


def _check_shared(kwargs: dict) -> None:
    """The keyword arguments most presets share, checked by name before any layer is built: a
    bad one would otherwise surface deep inside, under another name (a drop-path rate of 1.5
    as the probability p of the block whose share of it reaches 1, an image size of 0 as a
    window size of 0) or not at all (an image size of -5 for a convolutional model)."""
    for key in ("num_classes", "image_size", "width"):
        if key in kwargs:
            check_int(key, kwargs[key])  # num_classes=0: build, then reset_classifier(0)
    if "drop_path_rate" in kwargs:
        check_probability("drop_path_rate", kwargs["drop_path_rate"])


# ----------------------------------------------------------------------------------------------
# The pieces the papers share

def _patch_stem(dim: int, patch: int, norm: Callable | None) -> nn.Module:
    """A patch-embedding conv (kernel = stride = patch), optionally followed by a norm."""
    conv = nn.Conv2d(3, dim, patch, stride=patch)
    return nn.Sequential(conv, norm(dim)) if norm else conv


def _norm_then_conv(in_dim: int, dim: int) -> nn.Module:
    """ConvNeXt's and HorNet's downsampling: LayerNorm, then a 2×2 stride-2 conv."""
    return nn.Sequential(LayerNorm2d(in_dim, eps=1e-6), nn.Conv2d(in_dim, dim, 2, stride=2))


SWIN_LN = partial(LayerNorm2d, eps=1e-5)  # Swin, DWNet and ELSA use nn.LayerNorm's default eps
SWIN_DIMS, SWIN_DEPTHS, SWIN_HEADS = [96, 192, 384, 768], [2, 2, 6, 2], [3, 6, 12, 24]


def _swin_block(dim: int, heads: int, index: int, drop_path: float, window: int = 7) -> nn.Module:
    """A Swin block; odd blocks of a stage shift their windows by half a window."""
    mixer = WindowAttention(dim, num_heads=heads, window_size=window,
                            shift_size=0 if index % 2 == 0 else window // 2)
    return MetaFormerBlock(dim, mixer, norm_layer=SWIN_LN, drop_path=drop_path)


def _swin_skeleton(block: Callable, num_classes: int, drop_path_rate: float) -> Backbone:
    """Swin-T's stem, patch merging, widths and head around any block (DWNet, ELSA-Swin)."""
    return hierarchy(dims=SWIN_DIMS, depths=SWIN_DEPTHS, stem=_patch_stem(96, 4, SWIN_LN),
                     block=block, downsample=PatchMerging,
                     head=ClassifierHead(768, num_classes, pre_norm=SWIN_LN(768)),
                     drop_path_rate=drop_path_rate)


# ----------------------------------------------------------------------------------------------
# The papers' ImageNet models

@paper_model
def swin_t(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _swin_skeleton(lambda s, b, _, dim, dp: _swin_block(dim, SWIN_HEADS[s], b, dp),
                          num_classes, drop_path_rate)


@paper_model
def dwnet_t(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _swin_skeleton(lambda s, b, _, dim, dp: DWNetBlock(dim, DWConv(dim, kernel_size=7), drop_path=dp),
                          num_classes, drop_path_rate)


@paper_model
def ddwnet_t(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _swin_skeleton(
        lambda s, b, _, dim, dp: DWNetBlock(dim, DynamicDWConv(dim, kernel_size=7), drop_path=dp),
        num_classes, drop_path_rate)


@paper_model
def idwnet_t(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _swin_skeleton(
        lambda s, b, _, dim, dp: DWNetBlock(dim, InhomogeneousDWConv(dim, kernel_size=7, groups=32),
                                            drop_path=dp),
        num_classes, drop_path_rate)


@paper_model
def elsa_swin_t(*, num_classes: int = 1000, drop_path_rate: float = 0.1) -> Backbone:
    def block(s, b, _, dim, dp):
        if s == 3:  # ELSA-Swin keeps plain Swin blocks in the last stage
            return _swin_block(dim, SWIN_HEADS[s], b, dp)
        mixer = ELSA(dim, num_heads=SWIN_HEADS[s], kernel_size=7, group_width=4, lam=0, gamma=1.0,
                     qkv_bias=True, qk_scale=1.0)
        return MetaFormerBlock(dim, mixer, norm_layer=SWIN_LN, drop_path=dp)

    return _swin_skeleton(block, num_classes, drop_path_rate)


@paper_model
def van_b0(*, num_classes: int = 1000, drop_path_rate: float = 0.1) -> Backbone:
    dims, ratios = [32, 64, 160, 256], [8, 8, 4, 4]

    def block(s, b, _, dim, dp):
        mixer = ProjectedMixer(dim, LargeKernelAttention(dim, kernel_size=21, dilation=3))
        return MetaFormerBlock(dim, mixer, norm_layer=nn.BatchNorm2d, mlp_ratio=ratios[s],
                               mlp_layer=DWConvMlp, layer_scale=1e-2, drop_path=dp)

    def overlap_embed(in_dim, dim, kernel=3, stride=2):
        return nn.Sequential(nn.Conv2d(in_dim, dim, kernel, stride, kernel // 2), nn.BatchNorm2d(dim))

    return hierarchy(dims=dims, depths=[3, 3, 5, 2], stem=overlap_embed(3, 32, 7, 4), block=block,
                     downsample=overlap_embed, stage_norm=partial(LayerNorm2d, eps=1e-6),
                     head=ClassifierHead(256, num_classes), drop_path_rate=drop_path_rate)


@paper_model
def coatnet_0(*, num_classes: int = 1000, drop_path_rate: float = 0.0, image_size: int = 224) -> Backbone:
    # the attention stages work on maps of image_size / 16 and / 32 pixels
    check_int("image_size", image_size, minimum=32)
    dims, kinds = [96, 192, 384, 768], ["C", "C", "T", "T"]
    stem = nn.Sequential(nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.GELU(),
                         nn.Conv2d(64, 64, 3, 1, 1, bias=False))

    def block(s, b, in_dim, dim, dp):
        stride = 2 if b == 0 else 1
        if kinds[s] == "C":
            return MBConvBlock(in_dim, dim, stride=stride, drop_path=dp)
        size = image_size // 2 ** (s + 2)  # the map this stage works on: 14 and 7 at 224 px
        mixer = RelativeAttention(in_dim, dim_out=dim, size=(size, size))
        return CoAtTransformerBlock(in_dim, dim, mixer, stride=stride, drop_path=dp)

    head = ClassifierHead(768, num_classes, post_norm=nn.LayerNorm(768, eps=1e-6), hidden=768)
    model = hierarchy(dims=dims, depths=[2, 3, 5, 2], stem=stem, block=block, head=head,
                      stem_dim=64, drop_path_rate=drop_path_rate)
    model.image_size = image_size
    return model


def _hornet(global_sizes: list, num_classes: int, drop_path_rate: float) -> Backbone:
    orders = [2, 3, 4, 5]

    def block(s, b, _, dim, dp):
        mixer = GnConv(dim, order=orders[s], kernel_size=7, scale=1 / 3, global_size=global_sizes[s])
        return MetaFormerBlock(dim, mixer, norm_layer=partial(LayerNorm2d, eps=1e-6),
                               layer_scale=1e-6, drop_path=dp)

    return hierarchy(dims=[64, 128, 256, 512], depths=[2, 3, 18, 2],
                     stem=_patch_stem(64, 4, partial(LayerNorm2d, eps=1e-6)), block=block,
                     downsample=_norm_then_conv, drop_path_rate=drop_path_rate,
                     head=ClassifierHead(512, num_classes, post_norm=nn.LayerNorm(512, eps=1e-6)))


@paper_model
def hornet_t_7x7(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _hornet([None] * 4, num_classes, drop_path_rate)


@paper_model
def hornet_t_gf(*, num_classes: int = 1000, drop_path_rate: float = 0.2) -> Backbone:
    return _hornet([None, None, (14, 14), (7, 7)], num_classes, drop_path_rate)


@paper_model
def gfnet_ti(*, num_classes: int = 1000, drop_path_rate: float = 0.0, image_size: int = 224) -> Backbone:
    size = (check_int("image_size", image_size, minimum=16) // 16,) * 2  # 16-pixel patches
    stem = nn.Sequential(nn.Conv2d(3, 256, 16, stride=16), PositionEmbedding(256, size))
    norm = partial(LayerNorm2d, eps=1e-6)
    model = hierarchy(dims=[256], depths=[12], stem=stem,
                      block=lambda s, b, _, dim, dp: GFNetBlock(dim, GlobalFilter(dim, size=size),
                                                                norm_layer=norm, drop_path=dp),
                      head=ClassifierHead(256, num_classes, pre_norm=norm(256)),
                      drop_path_rate=drop_path_rate)
    model.image_size = image_size
    return model


@paper_model
def convnext_t(*, num_classes: int = 1000, drop_path_rate: float = 0.1) -> Backbone:
    return hierarchy(dims=[96, 192, 384, 768], depths=[3, 3, 9, 3],
                     stem=_patch_stem(96, 4, partial(LayerNorm2d, eps=1e-6)),
                     block=lambda s, b, _, dim, dp: ConvNeXtBlock(dim, DWConv(dim, kernel_size=7),
                                                                  drop_path=dp),
                     downsample=_norm_then_conv, drop_path_rate=drop_path_rate,
                     head=ClassifierHead(768, num_classes, post_norm=nn.LayerNorm(768, eps=1e-6)))


@paper_model
def poolformer_s12(*, num_classes: int = 1000, drop_path_rate: float = 0.1) -> Backbone:
    group_norm = partial(nn.GroupNorm, 1)  # GroupNorm with one group: over C, H and W together
    return hierarchy(dims=[64, 128, 320, 512], depths=[2, 2, 6, 2], stem=nn.Conv2d(3, 64, 7, 4, 2),
                     block=lambda s, b, _, dim, dp: MetaFormerBlock(
                         dim, Pooling(dim, pool_size=3), norm_layer=group_norm, layer_scale=1e-5,
                         drop_path=dp),
                     downsample=lambda in_dim, dim: nn.Conv2d(in_dim, dim, 3, 2, 1),
                     head=ClassifierHead(512, num_classes, pre_norm=group_norm(512)),
                     drop_path_rate=drop_path_rate)
