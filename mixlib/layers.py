"""Small layers the mixers and blocks share. All take and return (B, C, H, W) unless stated."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["LayerNorm2d", "LayerScale", "DropPath", "add_residual", "ConvMlp", "check_map",
           "check_int", "check_bool", "check_float", "check_probability", "check_divides", "pair"]


def check_map(x: torch.Tensor, dim: int, owner: str | nn.Module) -> None:
    """The mixer contract: x is a floating-point (B, dim, H, W) map, on the device of the
    owner's weights (when `owner` is the module itself); anything else is a ValueError naming it.

    Integer and bool maps are refused here rather than left to the backends: some of them
    would compute in float and some fail inside torch, so the same input gave a result or a
    traceback depending on the mixer.
    """
    name = owner if isinstance(owner, str) else type(owner).__name__
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} expects x of shape (B, C, H, W), got {shape}")
    if x.shape[1] != dim:
        raise ValueError(f"{name} was built with dim={dim} channels, got x with {x.shape[1]} "
                         f"channels (shape {tuple(x.shape)})")
    if not x.is_floating_point():
        raise ValueError(f"{name} expects a floating-point x, got dtype {x.dtype}")
    weight = next(owner.parameters(), None) if isinstance(owner, nn.Module) else None
    if weight is not None and weight.device != x.device:
        raise ValueError(f"x is on {x.device} but {name}'s weights are on {weight.device}: "
                         f"move one of them (e.g. mixer.to(x.device))")


def check_int(name: str, value, *, minimum: int = 1, odd: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (odd and value % 2 == 0):
        kind = "an odd int" if odd else "an int"
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    """True or False, nothing else: a string such as "False" is truthy, and a flag given one
    would silently do the opposite of what it says."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value


def check_float(name: str, value, *, minimum: float | None = None, above: float | None = None,
                below: float | None = None) -> float:
    """A finite real number, at least `minimum`, more than `above`, less than `below` (each
    when given); else a ValueError naming it. NaN fails every comparison, so without the
    finiteness test a NaN hyper-parameter passes range checks written as `if value < 0`."""
    low = f"[{minimum:g}" if minimum is not None else f"({above:g}" if above is not None else None
    if low and below is not None:
        bounds = [f"in {low}, {below:g})"]
    else:
        bounds = [f">= {minimum:g}" if minimum is not None else "",
                  f"> {above:g}" if above is not None else "", f"< {below:g}" if below is not None else ""]
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and (minimum is None or value >= minimum) and (above is None or value > above)
          and (below is None or value < below))
    if not ok:
        text = " and ".join(b for b in bounds if b)
        raise ValueError(f"{name} must be a finite number{' ' + text if text else ''}, got {value!r}")
    return float(value)


def check_probability(name: str, value) -> float:
    """A dropout or drop-path probability: a number in [0, 1)."""
    return check_float(name, value, minimum=0.0, below=1.0)


def pair(name: str, size) -> tuple[int, int]:
    """An int or an (H, W) pair of positive ints, as (H, W); else a ValueError naming it."""
    if isinstance(size, int):
        size = (size, size)
    elif isinstance(size, (tuple, list)):
        size = tuple(size)
    if not isinstance(size, tuple) or len(size) != 2:
        raise ValueError(f"{name} must be an int or (H, W), got {size!r}")
    return check_int(f"{name}[0]", size[0]), check_int(f"{name}[1]", size[1])


def check_divides(name: str, value: int, dim_name: str, dim: int) -> None:
    if dim % value:
        raise ValueError(f"{name}={value} must divide {dim_name}={dim}")


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map (ConvNeXt's
    "channels_first" LayerNorm); the same numbers as permute -> nn.LayerNorm -> permute."""

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)


class LayerScale(nn.Module):
    """x * gamma, one learned scale per channel, initialised small (ConvNeXt, CaiT)."""

    def __init__(self, dim: int, init_value: float = 1e-6):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1)


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = check_probability("drop path probability p", p)

    def keep_mask(self, x: torch.Tensor) -> torch.Tensor | None:
        """(B, 1, ..., 1): 0 for a dropped sample, 1 / (1 - p) for a kept one; None when
        nothing is dropped (p = 0, or evaluation)."""
        if self.p == 0.0 or not self.training:
            return None
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.p)
        return keep.div_(1 - self.p)  # scaled here, on B numbers, not on the whole map

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.keep_mask(x)
        return x if keep is None else x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def add_residual(x: torch.Tensor, branch: torch.Tensor, drop_path: DropPath,
                 scale: nn.Module | None = None) -> torch.Tensor:
    """x + drop_path(scale(branch)) for (B, C, H, W) maps, with the map read once: the layer
    scale γ (C numbers) and the drop mask (B numbers) are multiplied into one (B, C, 1, 1)
    factor first, then torch.addcmul adds x and branch · factor in one pass (instead of a pass
    for γ, one for the mask and one for the sum, and as many again backwards)."""
    if scale is not None and not isinstance(scale, (LayerScale, nn.Identity)):
        raise TypeError(f"scale must be a LayerScale, nn.Identity or None, "
                        f"got {type(scale).__name__}")
    factor = scale.gamma.view(1, -1, 1, 1) if isinstance(scale, LayerScale) else None
    keep = drop_path.keep_mask(branch)
    if keep is not None:
        factor = keep if factor is None else factor * keep
    return x + branch if factor is None else torch.addcmul(x, branch, factor)


class ConvMlp(nn.Module):
    """1×1 conv -> activation -> 1×1 conv: the channel mixer of a MetaFormer block."""

    def __init__(self, dim: int, hidden: int, *, act_layer=nn.GELU, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.as_matmul(x) if self.prefers_matmul(x) else self.as_conv(x)

    @staticmethod
    def prefers_matmul(x: torch.Tensor) -> bool:
        """On the CPU, PyTorch's 1×1 convolutions are the faster path on maps with many pixels
        for their channels (8·H·W ≥ C), matrix products on the others; measured by
        ``python -m mixlib.bench mlp``. Elsewhere, matrix products."""
        return x.device.type != "cpu" or 8 * x.shape[-2] * x.shape[-1] < x.shape[1]

    def as_conv(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))

    def as_matmul(self, x: torch.Tensor) -> torch.Tensor:
        """The same MLP as matrix products over the channels of each pixel (a channels_last
        map permutes for free)."""
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.linear(x, self.fc1.weight.flatten(1), self.fc1.bias)
        x = F.linear(self.act(x), self.fc2.weight.flatten(1), self.fc2.bias)
        return x.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
