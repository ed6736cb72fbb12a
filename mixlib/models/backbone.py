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

from ..layers import check_int, check_probability

__all__ = ["Backbone", "ClassifierHead", "FeatureInfo", "FeatureMaps", "PositionEmbedding",
           "hierarchy"]


class ClassifierHead(nn.Module):
    """Pool and classify: [pre_norm on the map] -> mean over pixels -> [post_norm]
    -> [Linear-tanh hidden layer] -> Linear (none for num_classes=0, as in timm)."""

    def __init__(self, dim: int, num_classes: int, *, pre_norm: nn.Module | None = None,
                 post_norm: nn.Module | None = None, hidden: int | None = None, drop: float = 0.0):
        super().__init__()
        self.pre_norm = pre_norm or nn.Identity()
        self.post_norm = post_norm or nn.Identity()
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh()) if hidden else nn.Identity()
        self.drop = nn.Dropout(drop)
        self.features = hidden or dim
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """A new, freshly initialised classifier for `num_classes` (0: the pooled features)."""
        check_int("num_classes", num_classes, minimum=0)
        self.num_classes = num_classes
        self.fc = nn.Linear(self.features, num_classes) if num_classes else nn.Identity()

    def forward(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        x = self.pre_norm(x).mean((2, 3))  # (B, C, H, W) -> (B, C)
        x = self.drop(self.hidden(self.post_norm(x)))
        return x if pre_logits else self.fc(x)


class FeatureInfo(list):
    """timm's feature_info: one dict per feature map, {"num_chs", "reduction", "module"}, with
    timm's accessors."""

    def channels(self) -> list[int]:
        return [info["num_chs"] for info in self]

    def reduction(self) -> list[int]:
        return [info["reduction"] for info in self]

    def module_name(self) -> list[str]:
        return [info["module"] for info in self]


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


def _check_images(x: torch.Tensor, in_chans: int | None) -> None:
    if x.dim() != 4 or (in_chans is not None and x.shape[1] != in_chans):
        raise ValueError(f"images must have shape (B, {in_chans or 'C'}, H, W), got {tuple(x.shape)}")


class Backbone(nn.Module):
    """stem -> stages -> head, all on (B, C, H, W) maps, with timm's model API:
    ``forward_features`` (the last map), ``forward_head`` (``pre_logits=True``: the pooled
    features), ``reset_classifier``, ``num_classes``, ``feature_info`` and ``in_chans``;
    ``models.build(name, features_only=True, out_indices=...)`` gives the stages' maps.

    Attributes:
        dims: the width of each stage; feature maps of every stage come from `features`.
        image_size: the image side the model is made for (224 unless the preset says).
    """

    def __init__(self, stem: nn.Module, stages: list[nn.Module], head: nn.Module, dims: list[int],
                 *, image_size: int = 224):
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.dims = list(dims)
        self.image_size = image_size
        # the image channels the stem's first convolution takes (None: a stem without one)
        first = next((m for m in stem.modules() if isinstance(m, nn.Conv2d)), None)
        self.in_chans = first.in_channels if first is not None else None
        self._feature_info = None

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a new one for `num_classes` (0: none, the model returns
        its pooled features), as timm's models do for fine-tuning."""
        self.head.reset(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map, (B, dims[-1], H', W')."""
        return self.features(x)[-1]

    def forward_head(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    @property
    def feature_info(self) -> FeatureInfo:
        """Each stage's map: its channels, its reduction (image side / map side) and its module
        name; the reductions are measured once, by a forward pass at `image_size`."""
        if self._feature_info is None:
            size = self.image_size
            parameter = next(self.parameters())
            probe = torch.zeros(1, self.in_chans or 3, size, size, dtype=parameter.dtype,
                                device=parameter.device)
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    maps = self.features(probe)
            finally:
                self.train(was_training)
            self._feature_info = FeatureInfo(
                {"num_chs": m.shape[1], "reduction": round(size / m.shape[-1]), "module": f"stages.{i}"}
                for i, m in enumerate(maps))
        return self._feature_info

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output map of every stage."""
        _check_images(x, self.in_chans)
        maps = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeatureMaps(nn.Module):
    """A backbone without its head, for detection and segmentation: the maps of the stages
    `out_indices`, as timm's ``features_only=True`` models give them. Its state dict keys are
    the backbone's (stem.*, stages.*), so a classifier's weights load into it."""

    def __init__(self, backbone: Backbone, out_indices=None):
        super().__init__()
        stages = len(backbone.stages)
        out_indices = tuple(range(stages)) if out_indices is None else tuple(out_indices)
        if not out_indices or any(isinstance(i, bool) or not isinstance(i, int)
                                  or not -stages <= i < stages for i in out_indices):
            raise ValueError(f"out_indices must be stage indices in [-{stages}, {stages}), "
                             f"got {out_indices!r}")
        self.out_indices = tuple(i % stages for i in out_indices)
        self.feature_info = FeatureInfo(backbone.feature_info[i] for i in self.out_indices)
        self.stem = backbone.stem
        self.stages = nn.ModuleList(backbone.stages[:max(self.out_indices) + 1])
        self.in_chans = backbone.in_chans

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        _check_images(x, self.in_chans)
        maps = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                maps.append(x)
        return maps


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
    dims = [check_int(f"dims[{i}]", d) for i, d in enumerate(dims)]
    depths = [check_int(f"depths[{i}]", d) for i, d in enumerate(depths)]  # 0 blocks: no mixer
    drop_path_rate = check_probability("drop_path_rate", drop_path_rate)
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
