"""The book's small models: one skeleton, any mixer, for CIFAR-10 and Imagenette.

To compare mixers, everything but the mixer is the same: a convolutional stem, four stages
of pre-norm MetaFormer blocks (BatchNorm, MLP ×3) at widths (w, 2w, 4w, 8w) and depths
(2, 2, 4, 2), 3×3 stride-2 convs between stages, and a pooled linear head. Each mixer's
hyper-parameters are fitted to the map it sees (heads of 16 channels, windows that tile the
map, filters of the map's size), and the width w is chosen per mixer so that every model has
about the same number of parameters, SMALL_BUDGET (the widths are in WIDTHS; a test checks
every preset is within 15% of the budget, 1.7M to 2.3M).

| preset                | image   | maps per stage          |
|-----------------------|---------|-------------------------|
| <mixer>_cifar         | 32 px   | 16, 8, 4, 2             |
| <mixer>_imagenette    | 160 px  | 40, 20, 10, 5 (128 px: 32, 16, 8, 4) |

A list of four mixer names makes a hybrid: "cctt_cifar" is CoAtNet's layout, depthwise
convolutions in the first two stages and relative attention in the last two.
"""
from __future__ import annotations

import torch.nn as nn

from ..layers import check_int
from ..mixers import build as build_mixer
from .backbone import Backbone, ClassifierHead, hierarchy
from .blocks import MetaFormerBlock
from .presets import register_model

__all__ = ["SMALL_BUDGET", "WIDTHS", "PRESETS", "small_metaformer", "mixer_kwargs", "fitted_block"]

SMALL_BUDGET = 2.0e6  # parameters, 10 classes
DEPTHS = (2, 2, 4, 2)
HEAD_WIDTH = 16
IMAGE_SIZE = {"cifar": 32, "imagenette": 160}
STEM_STRIDE = {"cifar": 2, "imagenette": 4}

# widths w (stage widths w, 2w, 4w, 8w) that put each mixer's model nearest SMALL_BUDGET, found
# by a search over multiples of 4 (D-DW: 2; all within 15%; D-DW's kernel generator is heavy, so its
# model is the narrowest)
_WIDTHS = {"dwconv": 36, "ddwconv": 22, "idwconv": 32, "pooling": 36, "window_attention": 28,
           "neighborhood_attention": 28, "relative_attention": 28, "lka": 32, "elsa": 24,
           "gnconv": 28, "global_filter": 36, "cctt": 28}
WIDTHS = {"cifar": _WIDTHS, "imagenette": {**_WIDTHS, "global_filter": 32}}
HYBRIDS = {"cctt": ["dwconv", "dwconv", "relative_attention", "relative_attention"]}
PRESETS: list[str] = []  # the names of the small presets, filled as they are registered (below)


def _largest_odd_at_most(n: int, limit: int) -> int:
    k = min(n, limit)
    return k if k % 2 else k - 1


def mixer_kwargs(name: str, dim: int, stage: int, map_size: int, index: int = 0) -> dict:
    """The hyper-parameters of mixer `name` in stage `stage` of a small model whose maps there
    are map_size × map_size: heads of about 16 channels (as many as divide dim), windows and
    filters fitted to the map; window attention shifts its windows in odd blocks (`index`),
    as Swin does."""
    heads = next(h for h in range(max(dim // HEAD_WIDTH, 1), 0, -1) if dim % h == 0)
    if name == "window_attention":
        window = min(8, map_size)
        return dict(num_heads=heads, window_size=window, shift_size=window // 2 if index % 2 else 0)
    if name == "neighborhood_attention":
        return dict(num_heads=heads, kernel_size=_largest_odd_at_most(map_size, 7))
    if name == "relative_attention":
        return dict(num_heads=heads, size=(map_size, map_size))
    if name == "elsa":
        return dict(num_heads=heads, kernel_size=7)
    if name in ("ddwconv", "idwconv"):
        # No BatchNorm in the kernel generators (the paper's have one): in this pre-norm network
        # the training loss then stays at chance from the first steps (D-DW: 2.30 for 195
        # steps; I-D-DW: 2.31 for 194, both seeds, CIFAR-10), while without it both learn as
        # fast as a static kernel (I-D-DW: 1.88 after 24 steps). For D-DW the BatchNorm runs over
        # one pooled vector per image, so each image's kernel depends on the rest of the batch.
        # The ImageNet presets keep the papers' generators.
        extra = dict(groups=heads) if name == "idwconv" else {}
        return dict(kernel_size=7, norm_layer=nn.Identity, **extra)
    if name == "dwconv":
        return dict(kernel_size=7)
    if name == "gnconv":
        return dict(order=stage + 2)  # HorNet: orders 2, 3, 4, 5
    if name == "global_filter":
        return dict(size=(map_size, map_size))
    return {}


def fitted_block(names: list[str], maps: list[int], *, mlp_ratio: float):
    """The `block` argument of `hierarchy` for the book's small models: a pre-norm MetaFormer
    block (BatchNorm) whose mixer is names[stage], its hyper-parameters fitted to the stage's
    map of maps[stage] × maps[stage] pixels (`mixer_kwargs`)."""
    def block(stage, index, _, dim, drop_path):
        name = names[stage]
        mixer = build_mixer(name, dim, **mixer_kwargs(name, dim, stage, maps[stage], index))
        return MetaFormerBlock(dim, mixer, norm_layer=nn.BatchNorm2d, mlp_ratio=mlp_ratio,
                               drop_path=drop_path)
    return block


def small_metaformer(mixers: str | list[str], *, width: int, num_classes: int = 10,
                     image_size: int = 32, stem_stride: int = 2, depths=DEPTHS,
                     mlp_ratio: float = 3.0, drop_path_rate: float = 0.05) -> Backbone:
    """A small four-stage MetaFormer with `mixers` (one name, or one per stage).

    Args:
        mixers: a registered mixer name, or a list of four (e.g. C-C-T-T).
        width: w; the stages have widths w, 2w, 4w, 8w.
        num_classes: classes of the head.
        image_size: the input's side, which fixes every stage's map size.
        stem_stride: 2 (CIFAR) or 4 (Imagenette): the first stage's map is image_size / stride.
        depths: blocks per stage.
        mlp_ratio: the MLP's hidden width over C.
        drop_path_rate: stochastic depth of the last block.
    """
    names = [mixers] * len(depths) if isinstance(mixers, str) else list(mixers)
    if len(names) != len(depths):
        raise ValueError(f"mixers must be one name or one per stage ({len(depths)}), got {mixers!r}")
    check_int("width", width)
    if stem_stride not in (2, 4):
        raise ValueError(f"stem_stride must be 2 or 4, got {stem_stride}")
    dims = [width * 2 ** s for s in range(len(depths))]
    maps = [-(-image_size // stem_stride)]  # stride-2 convs with padding 1 round up
    for _ in depths[1:]:
        maps.append(-(-maps[-1] // 2))
    half = dims[0] // 2
    stem = [nn.Conv2d(3, half, 3, 1 if stem_stride == 2 else 2, 1, bias=False), nn.BatchNorm2d(half),
            nn.GELU(), nn.Conv2d(half, dims[0], 3, 2, 1, bias=False), nn.BatchNorm2d(dims[0])]

    block = fitted_block(names, maps, mlp_ratio=mlp_ratio)

    def downsample(in_dim, dim):
        return nn.Sequential(nn.Conv2d(in_dim, dim, 3, 2, 1, bias=False), nn.BatchNorm2d(dim))

    head = ClassifierHead(dims[-1], num_classes, pre_norm=nn.BatchNorm2d(dims[-1]))
    return hierarchy(dims=dims, depths=list(depths), stem=nn.Sequential(*stem), block=block,
                     downsample=downsample, head=head, drop_path_rate=drop_path_rate)


def _register(name: str, data: str) -> None:
    mixers = HYBRIDS.get(name, name)

    def preset(*, num_classes: int = 10, image_size: int = IMAGE_SIZE[data], **kwargs) -> Backbone:
        return small_metaformer(mixers, width=kwargs.pop("width", WIDTHS[data][name]),
                                num_classes=num_classes, image_size=image_size,
                                stem_stride=STEM_STRIDE[data], **kwargs)

    preset.__name__ = f"{name}_{data}"
    preset.__doc__ = f"The small {name} model for {data} (see mixlib.models.small)."
    register_model(preset)
    PRESETS.append(preset.__name__)


for _data in IMAGE_SIZE:
    for _name in WIDTHS[_data]:
        _register(_name, _data)
