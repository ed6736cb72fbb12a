"""The mixer registry: build(name, dim, **kwargs) and available(), timm-style but small.

A mixer is one file. Besides the class, its module declares in ``info = MixerInfo(...)`` what
the rest of mixlib needs to know about it, and ``register_mixer`` files both under one name:

- where it sits among the three choices of the formula, and its bibliography key (``paper``);
- how it fits a stage of the book's small models (``small``, ``small_width``): models.small
  builds its ``<name>_cifar`` and ``<name>_imagenette`` presets from these alone;
- the FLOPs torch's counter cannot see (``flops``), which mixlib.flops adds by formula;
- which of its parameters skip weight decay (``no_weight_decay``), as mixlib.train reads it;
- a bad hyper-parameter it refuses (``bad_example``), which the contract tests try.

The class itself gives ``multiply_adds(height, width)``: its chapter's cost formula, the
multiply-adds of one image's forward (None where its cost is not multiply-adds: an FFT, a mean).

CONTRIBUTING.md walks through a new mixer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch.nn as nn

from ..layers import check_int

__all__ = ["MixerInfo", "FlopFormula", "SmallMap", "SMALL_WINDOW", "register_mixer",
           "unregister_mixer", "build", "available", "mixer_class", "info", "no_weight_decay",
           "map_pixels"]

SMALL_WINDOW = 7  # the k×k window of the local mixers in the small models (ConvNeXt, DWNet, NAT)


@dataclass(frozen=True)
class SmallMap:
    """A stage of the book's small models, as a mixer's ``small`` fit sees it."""

    dim: int  # the stage's channels
    stage: int  # 0 to 3
    size: int  # the stage's map is size × size pixels
    index: int  # the block within the stage (Swin shifts its windows in odd blocks)
    heads: int  # heads of about 16 channels: the most, at most dim // 16, that divide dim


@dataclass(frozen=True)
class FlopFormula:
    """Forward FLOPs that torch.utils.flop_counter cannot see (it counts matrix products,
    convolutions and attention only): ``count(module, inputs, output)`` after each forward of
    the mixer, added up under ``label`` (e.g. "fft")."""

    label: str
    count: Callable[[nn.Module, tuple, object], int]


@dataclass(frozen=True)
class MixerInfo:
    """Where a mixer sits among the three choices of y_i = Σ_{j ∈ N(i)} w_ij ⊙ x_j, and what
    the rest of mixlib needs to know about it."""

    neighbourhood: str  # N(i): "k×k window", "dilated window", "window partition", "global", ...
    sharing: str  # what shares one weight: "channel", "head", "group", "all channels"
    weights: str  # where w comes from: "static", "generated", "query-key", "static+gate", ...
    paper: str  # bibliography key in book/references.bib
    # small(SmallMap) -> the mixer's keyword arguments in that stage of a small model
    small: Callable[[SmallMap], dict] | None = None
    # the width w (stages w, 2w, 4w, 8w) of its small presets, near models.small.SMALL_BUDGET:
    # one int, or {"cifar": w, "imagenette": w}; None: no small preset
    small_width: int | Mapping[str, int] | None = None
    flops: FlopFormula | None = None
    # attributes set while FLOPs are counted, so that what is counted is what the mixer
    # computes rather than a faster equivalent (neighbourhood attention's dense path)
    flop_settings: Mapping[str, object] = field(default_factory=dict)
    # parameter names (attributes of the mixer) that skip weight decay: tables, not kernels
    no_weight_decay: tuple[str, ...] = ()
    # (argument, kwargs): a hyper-parameter the mixer refuses with a ValueError that names the
    # argument; tests/test_mixers.py tries it on every registered mixer
    bad_example: tuple[str, Mapping[str, object]] | None = None


def map_pixels(height: int, width: int) -> int:
    """N = H·W, for a mixer's ``multiply_adds(height, width)``: its cost on one H×W map."""
    return check_int("height", height) * check_int("width", width)


_MIXERS: dict[str, type[nn.Module]] = {}


def register_mixer(name: str):
    """Class decorator: make `name` buildable with build(name, dim, **kwargs)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MIXERS:
            raise ValueError(f"mixer name {name!r} is registered twice")
        if not isinstance(getattr(cls, "info", None), MixerInfo):
            raise TypeError(f"{cls.__name__} needs a class attribute info = MixerInfo(...)")
        if not callable(getattr(cls, "multiply_adds", None)):
            raise TypeError(f"{cls.__name__} needs a method multiply_adds(height, width): its "
                            "cost on one map (None where it is not multiply-adds)")
        cls.registry_name = name
        _MIXERS[name] = cls
        return cls

    return add


def unregister_mixer(name: str) -> None:
    """Remove `name` from the registry (a notebook's or a test's own mixer, when done)."""
    mixer_class(name)
    del _MIXERS[name]


def available() -> list[str]:
    """The registered mixer names, sorted."""
    return sorted(_MIXERS)


def mixer_class(name: str) -> type[nn.Module]:
    if name not in _MIXERS:
        raise ValueError(f"name must be one of {available()}, got {name!r}")
    return _MIXERS[name]


def info(name: str) -> MixerInfo:
    return mixer_class(name).info


def no_weight_decay(model: nn.Module) -> set[str]:
    """The full names of the parameters of `model` that its mixers declare free of weight
    decay (``MixerInfo.no_weight_decay``), for an optimizer's parameter groups."""
    names = set()
    for prefix, module in model.named_modules():
        declared = getattr(type(module), "info", None)
        if isinstance(declared, MixerInfo):
            for attribute in declared.no_weight_decay:
                if isinstance(getattr(module, attribute, None), nn.Parameter):
                    names.add(f"{prefix}.{attribute}" if prefix else attribute)
    return names


def build(name: str, dim: int, **kwargs) -> nn.Module:
    """The mixer `name` for `dim` channels, with the paper's defaults unless kwargs say otherwise.

    A misspelt keyword raises TypeError: the mixers take keyword-only hyper-parameters and no
    **kwargs catch-all.
    """
    return mixer_class(name)(dim, **kwargs)
