"""The mixer registry: build(name, dim, **kwargs) and available(), timm-style but small."""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn

__all__ = ["MixerInfo", "register_mixer", "build", "available", "mixer_class", "info"]


@dataclass(frozen=True)
class MixerInfo:
    """Where a mixer sits among the three choices of y_i = Σ_{j ∈ N(i)} w_ij ⊙ x_j."""

    neighbourhood: str  # N(i): "k×k window", "dilated window", "window partition", "global", ...
    sharing: str  # what shares one weight: "channel", "head", "group", "all channels"
    weights: str  # where w comes from: "static", "generated", "query-key", "static+gate", ...
    paper: str  # bibliography key


_MIXERS: dict[str, type[nn.Module]] = {}


def register_mixer(name: str):
    """Class decorator: make `name` buildable with build(name, dim, **kwargs)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MIXERS:
            raise ValueError(f"mixer name {name!r} is registered twice")
        if not isinstance(getattr(cls, "info", None), MixerInfo):
            raise TypeError(f"{cls.__name__} needs a class attribute info = MixerInfo(...)")
        cls.registry_name = name
        _MIXERS[name] = cls
        return cls

    return add


def available() -> list[str]:
    """The registered mixer names, sorted."""
    return sorted(_MIXERS)


def mixer_class(name: str) -> type[nn.Module]:
    if name not in _MIXERS:
        raise ValueError(f"name must be one of {available()}, got {name!r}")
    return _MIXERS[name]


def info(name: str) -> MixerInfo:
    return mixer_class(name).info


def build(name: str, dim: int, **kwargs) -> nn.Module:
    """The mixer `name` for `dim` channels, with the paper's defaults unless kwargs say otherwise.

    A misspelt keyword raises TypeError: the mixers take keyword-only hyper-parameters and no
    **kwargs catch-all.
    """
    return mixer_class(name)(dim, **kwargs)
