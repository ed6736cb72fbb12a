"""The backbone: stem -> stages -> head, and the one function that assembles a hierarchy.

Every model of the book is a MetaFormer in the broad sense: a stem turns the image into a
map, stages of blocks (each block: a token mixer + a channel MLP) work at falling
resolution and rising width, and a head pools and classifies. What differs between papers is
which mixer sits in each block, the block's form (models.blocks), and the stem, the
downsampling and the head, which `hierarchy` takes as arguments.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ..layers import check_int

__all__ = ["Backbone", "ClassifierHead", "PositionEmbedding", "hierarchy"]


class ClassifierHead(nn.Module):
    """Pool and classify: [pre_norm on the map] -> mean over pixels -> [post_norm]
    -> [Linear-tanh hidden layer] -> Linear."""

    def __init__(self, dim: int, num_classes: int, *, pre_norm: nn.Module | None = None,
                 post_norm: nn.Module | None = None, hidden: int | None = None, drop: float = 0.0):
        super().__init__()
        self.pre_norm = pre_norm or nn.Identity()
        self.post_norm = post_norm or nn.Identity()
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh()) if hidden else nn.Identity()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(hidden or dim, check_int("num_classes", num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_norm(x).mean((2, 3))  # (B, C, H, W) -> (B, C)
        return self.fc(self.drop(self.hidden(self.post_norm(x))))


class PositionEmbedding(nn.Module):
    """x + a learned (1, C, H, W) map (GFNet); resized bilinearly for other map sizes."""

    def __init__(self, dim: int, size: tuple[int, int]):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, dim, *size))
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if weight.shape[-2:] != x.shape[-2:]:
            weight = nn.functional.interpolate(weight, size=x.shape[-2:], mode="bilinear",
                                               align_corners=False)
        return x + weight


class Backbone(nn.Module):
    """stem -> stages -> head, all on (B, C, H, W) maps.

    Attributes:
        dims: the width of each stage; feature maps of every stage come from `features`.
    """

    def __init__(self, stem: nn.Module, stages: list[nn.Module], head: nn.Module, dims: list[int]):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.dims = list(dims)
        # the image channels the stem's first convolution takes (None: a stem without one)
        first = next((m for m in stem.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_chans = first.in_channels if first is not None else None

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output map of every stage."""
        if x.dim() != 4 or (self.in_chans is not None and x.shape[1] != self.in_chans):
            raise ValueError(f"images must have shape (B, {self.in_chans or 'C'}, H, W), "
                             f"got {tuple(x.shape)}")
        maps = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)[-1])


def hierarchy(*, dims: list[int], depths: list[int], stem: nn.Module, block: Callable,
              head: nn.Module, downsample: Callable | None = None, stage_norm: Callable | None = None,
              stem_dim: int | None = None, drop_path_rate: float = 0.0) -> Backbone:
    """Assemble stages of blocks.

    Args:
        dims, depths: width and number of blocks of each stage.
        stem: the module from the image to the first map.
        block: block(stage, index, in_dim, dim, drop_path) -> nn.Module. in_dim differs from
            dim only for the first block of a stage when `downsample` is None (the block
            downsamples itself, as in CoAtNet).
        head: the module from the last map to the logits.
        downsample: downsample(in_dim, dim) -> nn.Module, between stages.
        stage_norm: stage_norm(dim) -> nn.Module at the end of every stage (VAN).
        stem_dim: the stem's width when the first stage's blocks downsample (CoAtNet).
        drop_path_rate: stochastic depth, rising linearly from 0 to this over all blocks.
    """
    if len(dims) != len(depths):
        raise ValueError(f"dims and depths must have the same length, got {dims} and {depths}")
    total = sum(depths)
    rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
    stages, previous, n = [], stem_dim or dims[0], 0
    for s, (dim, depth) in enumerate(zip(dims, depths)):
        layers = []
        in_dim = previous
        if downsample is not None and s > 0:
            layers.append(downsample(previous, dim))
            in_dim = dim
        for b in range(depth):
            layers.append(block(s, b, in_dim if b == 0 else dim, dim, rates[n]))
            n += 1
        if stage_norm is not None:
            layers.append(stage_norm(dim))
        stages.append(nn.Sequential(*layers))
        previous = dim
    return Backbone(stem, stages, head, dims)
