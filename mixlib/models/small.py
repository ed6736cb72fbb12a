"""The book's small models: one skeleton, any mixer, for CIFAR-10 and Imagenette.

To compare mixers, everything but the mixer is the same: a convolutional stem, four stages
of pre-norm MetaFormer blocks (BatchNorm, MLP ×3) at widths (w, 2w, 4w, 8w) and depths
(2, 2, 4, 2), 3×3 stride-2 convs between stages, a pooled linear head, and the papers'
initialisation (truncated normal, std 0.02; `init="torch"` keeps PyTorch's default). The width
w is chosen per preset so that every model has about the same number of parameters,
SMALL_BUDGET (the widths are in WIDTHS; a test checks every preset is within 15% of the
budget, 1.7M to 2.3M).

| preset                | image   | maps per stage          |
|-----------------------|---------|-------------------------|
| <mixer>_cifar         | 32 px   | 16, 8, 4, 2             |
| <mixer>_imagenette    | 160 px  | 40, 20, 10, 5 (128 px: 32, 16, 8, 4) |

Each mixer keeps its paper's own kind of mixing, with one size for every stage (`mixer_kwargs`;
`stage_settings` lists them per stage). The mixer's own module declares how
(``MixerInfo.small``) and the width of its presets (``MixerInfo.small_width``): every registered
mixer that declares them has a ``<name>_cifar`` and a ``<name>_imagenette`` preset, a new one
included. The fits: heads of about 16 channels (the most heads, at most
width // 16, that divide the width); 7×7 windows for the depthwise and dynamic
convolutions, ELSA and neighbourhood attention; Swin's windows of 4×4 pixels, shifted by 2 in
every second block where the map holds more than one window; VAN's 21×21 kernel (dilation 3); filters and bias tables of the map's size
for the global mixers; HorNet's orders 2, 3, 4, 5. Maps of 4×4 and 2×2 pixels (the last two
CIFAR stages) are smaller than these windows: there every windowed mixer but 3×3 pooling
(local on the 4×4 map) covers the whole map.
Window attention is then one window, and neighbourhood attention, whose clamped windows (NATTEN)
cannot be larger than the map, centres its window and masks the outside (`border="zeros"`),
which is global attention too.

A list of four mixer names makes a hybrid: CoAtNet's layouts "ccct", "cctt" and "cttt" put
depthwise convolutions (C) and relative attention (T) in the four stages. ABLATIONS are presets
of one mixer with one hyper-parameter changed, for the comparison's claims: window and
neighbourhood attention without their relative position bias, and gnConv of order 1 (the gated
convolution) in every stage.
"""
from __future__ import annotations

import torch.nn as nn

from ..layers import check_int
from .. import mixers as _mixers
from ..mixers import SmallMap
from ..mixers import build as build_mixer
from .backbone import Backbone, ClassifierHead, hierarchy
from .blocks import MetaFormerBlock
from .init import init_weights
from .presets import add_preset_source, register_model, unregister_model

__all__ = ["SMALL_BUDGET", "WIDTHS", "PRESETS", "HYBRIDS", "ABLATIONS", "small_metaformer",
           "mixer_kwargs", "fitted_block", "stage_settings", "sync_presets"]

SMALL_BUDGET = 2.0e6  # parameters, 10 classes
DEPTHS = (2, 2, 4, 2)
HEAD_WIDTH = 16
IMAGE_SIZE = {"cifar": 32, "imagenette": 160}
STEM_STRIDE = {"cifar": 2, "imagenette": 4}

# CoAtNet's vertical layouts: C = depthwise convolution, T = relative attention, per stage
# (C-C-C-C and T-T-T-T are the dwconv and relative_attention presets)
_C, _T = "dwconv", "relative_attention"
HYBRIDS = {"ccct": [_C, _C, _C, _T], "cctt": [_C, _C, _T, _T], "cttt": [_C, _T, _T, _T]}
# one mixer with hyper-parameters other than mixer_kwargs's, for the comparison's claims
ABLATIONS = {"window_attention_nobias": ("window_attention", dict(position_bias=False)),
             "neighborhood_attention_nobias": ("neighborhood_attention", dict(position_bias=False)),
             "gnconv_order1": ("gnconv", dict(order=1))}
# widths w (stage widths w, 2w, 4w, 8w) that put each preset nearest SMALL_BUDGET, found by a
# search over multiples of 4 (D-DW: 2; all within 15%). A single mixer's width is declared in
# its module (MixerInfo.small_width); the hybrids' and the ablations' are here.
_COMPOSITE_WIDTHS = {"ccct": 30, "cctt": 28, "cttt": 28, "window_attention_nobias": 28,
                     "neighborhood_attention_nobias": 28, "gnconv_order1": 28}
# {data: {name: width}}, the small presets' names without "_<data>"; filled by `sync_presets`
WIDTHS: dict[str, dict[str, int]] = {data: {} for data in ("cifar", "imagenette")}
PRESETS: list[str] = []  # the names of the small presets, filled as they are registered (below)


def mixer_kwargs(name: str, dim: int, stage: int, map_size: int, index: int = 0) -> dict:
    """The hyper-parameters of mixer `name` in stage `stage` of a small model whose maps there
    are map_size × map_size, as the mixer's module declares them (``MixerInfo.small``): heads
    of about 16 channels (as many as divide dim), the papers' windows (one size for every
    stage), filters and bias tables of the map's size; window attention shifts its windows in
    odd blocks (`index`), as Swin does."""
    heads = next(h for h in range(max(dim // HEAD_WIDTH, 1), 0, -1) if dim % h == 0)
    fit = _mixers.info(name).small
    return fit(SmallMap(dim=dim, stage=stage, size=map_size, index=index, heads=heads)) if fit else {}


def fitted_block(names: list[str], maps: list[int], *, mlp_ratio: float,
                 overrides: dict | None = None, layer_scale: float | None = None):
    """The `block` argument of `hierarchy` for the book's small models: a pre-norm MetaFormer
    block (BatchNorm) whose mixer is names[stage], its hyper-parameters fitted to the stage's
    map of maps[stage] × maps[stage] pixels (`mixer_kwargs`), then `overrides` (an ablation's)."""
    def block(stage, index, _, dim, drop_path):
        name = names[stage]
        kwargs = {**mixer_kwargs(name, dim, stage, maps[stage], index), **(overrides or {})}
        return MetaFormerBlock(dim, build_mixer(name, dim, **kwargs), norm_layer=nn.BatchNorm2d,
                               mlp_ratio=mlp_ratio, layer_scale=layer_scale, drop_path=drop_path)
    return block


def _stage_maps(image_size: int, stem_stride: int, stages: int) -> list[int]:
    maps = [-(-image_size // stem_stride)]  # stride-2 convs with padding 1 round up
    for _ in range(stages - 1):
        maps.append(-(-maps[-1] // 2))
    return maps


def stage_settings(preset: str, *, image_size: int | None = None) -> list[dict]:
    """What the mixer of small preset `preset` is in each stage: one row per stage with the map
    side, the width, the mixer's name and its hyper-parameters, as `fitted_block` gives them to
    the stage's blocks; a value that alternates between even and odd blocks (Swin's shift) reads
    "even/odd"."""
    sync_presets()
    name, data = preset.rsplit("_", 1)
    if data not in IMAGE_SIZE or name not in WIDTHS[data]:
        raise ValueError(f"preset must be a small preset ({', '.join(PRESETS)}), got {preset!r}")
    image_size = image_size or IMAGE_SIZE[data]
    names, overrides = _mixers_of(name)
    width = WIDTHS[data][name]
    rows = []
    for stage, map_size in enumerate(_stage_maps(image_size, STEM_STRIDE[data], len(DEPTHS))):
        dim = width * 2 ** stage
        even, odd = ({**mixer_kwargs(names[stage], dim, stage, map_size, index), **overrides}
                     for index in (0, 1))
        kwargs = {k: v if odd[k] == v else f"{v}/{odd[k]}" for k, v in even.items()}
        rows.append({"stage": stage + 1, "map": map_size, "width": dim, "blocks": DEPTHS[stage],
                     "mixer": names[stage], **kwargs})
    return rows


def small_metaformer(mixers: str | list[str], *, width: int, num_classes: int = 10,
                     image_size: int = 32, stem_stride: int = 2, depths=DEPTHS,
                     mlp_ratio: float = 3.0, drop_path_rate: float = 0.05,
                     mixer_overrides: dict | None = None, layer_scale: float | None = None,
                     init: str = "trunc_normal") -> Backbone:
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
        mixer_overrides: hyper-parameters that replace `mixer_kwargs`'s in every stage.
        layer_scale: initial value of a LayerScale on both branches of every block (PoolFormer
            uses 1e-5), None (the presets) for none.
        init: "trunc_normal" (ConvNeXt's: linear and conv weights N(0, 0.02²) truncated,
            biases 0) or "torch" (PyTorch's default); see `models.init`.
    """
    names = [mixers] * len(depths) if isinstance(mixers, str) else list(mixers)
    if len(names) != len(depths):
        raise ValueError(f"mixers must be one name or one per stage ({len(depths)}), got {mixers!r}")
    check_int("width", width)
    if stem_stride not in (2, 4):
        raise ValueError(f"stem_stride must be 2 or 4, got {stem_stride}")
    check_int("image_size", image_size)
    dims = [width * 2 ** s for s in range(len(depths))]
    maps = _stage_maps(image_size, stem_stride, len(depths))
    half = dims[0] // 2
    stem = [nn.Conv2d(3, half, 3, 1 if stem_stride == 2 else 2, 1, bias=False), nn.BatchNorm2d(half),
            nn.GELU(), nn.Conv2d(half, dims[0], 3, 2, 1, bias=False), nn.BatchNorm2d(dims[0])]

    block = fitted_block(names, maps, mlp_ratio=mlp_ratio, overrides=mixer_overrides,
                         layer_scale=layer_scale)

    def downsample(in_dim, dim):
        return nn.Sequential(nn.Conv2d(in_dim, dim, 3, 2, 1, bias=False), nn.BatchNorm2d(dim))

    head = ClassifierHead(dims[-1], num_classes, pre_norm=nn.BatchNorm2d(dims[-1]))
    model = hierarchy(dims=dims, depths=list(depths), stem=nn.Sequential(*stem), block=block,
                      downsample=downsample, head=head, drop_path_rate=drop_path_rate)
    model.image_size = image_size
    return init_weights(model, init)


def _mixers_of(name: str) -> tuple[list[str] | str, dict]:
    """A small preset's mixer(s) and its ablation's overrides."""
    if name in ABLATIONS:
        mixer, overrides = ABLATIONS[name]
        return [mixer] * len(DEPTHS), overrides
    return HYBRIDS.get(name, [name] * len(DEPTHS)), {}


def _width(name: str, data: str) -> int | None:
    """A single mixer's small width for `data`, as its module declares it (None: no preset)."""
    declared = _mixers.info(name).small_width
    return declared.get(data) if isinstance(declared, dict) else declared


def _register(name: str, data: str) -> None:
    mixers, overrides = _mixers_of(name)

    def preset(*, num_classes: int = 10, image_size: int = IMAGE_SIZE[data], **kwargs) -> Backbone:
        return small_metaformer(mixers, width=kwargs.pop("width", WIDTHS[data][name]),
                                num_classes=num_classes, image_size=image_size,
                                stem_stride=STEM_STRIDE[data], mixer_overrides=overrides, **kwargs)

    preset.__name__ = f"{name}_{data}"
    preset.__doc__ = f"The small {name} model for {data} (see mixlib.models.small)."
    register_model(preset)
    PRESETS.append(preset.__name__)


def sync_presets() -> None:
    """Register the small presets of every registered mixer that declares a small width and
    has none yet, and drop those of mixers no longer registered: models.build and
    models.available call it, so a mixer registered after import gets its presets too."""
    registered = set(_mixers.available())
    for data in IMAGE_SIZE:
        widths = WIDTHS[data]
        for name in [n for n in widths if n not in _COMPOSITE_WIDTHS and n not in registered]:
            del widths[name]
            unregister_model(f"{name}_{data}")
            PRESETS.remove(f"{name}_{data}")
        new = {name: width for name in _mixers.available() if name not in widths
               and (width := _width(name, data)) is not None}
        new.update({name: width for name, width in _COMPOSITE_WIDTHS.items() if name not in widths})
        for name, width in new.items():
            widths[name] = width
            _register(name, data)


sync_presets()
add_preset_source(sync_presets)
