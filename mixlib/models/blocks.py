"""Blocks: what wraps a mixer in each paper (norms, residuals, MLP, layer scale, drop path).

A mixer mixes pixels; the block around it normalises, adds the residual and mixes channels.
The papers of the book wrap their mixers in these forms (all (B, C, H, W) in and out):

| block            | form                                                              | papers          |
|------------------|-------------------------------------------------------------------|-----------------|
| MetaFormerBlock  | x + LS·mixer(norm(x)); x + LS·MLP(norm(x))                        | Swin, ELSA, NAT, PoolFormer, HorNet, VAN |
| ConvNeXtBlock    | x + γ·MLP(LN(mixer(x)))                                           | ConvNeXt        |
| DWNetBlock       | x + [1×1-BN-ReLU, mixer, BN-ReLU, 1×1-BN](x); x + MLP(BN(x))      | DWNet           |
| GFNetBlock       | x + MLP(LN(mixer(LN(x))))   (one residual)                        | GFNet           |
| MBConvBlock      | shortcut(x) + [BN, 1×1, BN-GELU, DW3×3, BN-GELU, SE, 1×1](x)      | CoAtNet (C)     |
| CoAtTransformerBlock | shortcut(x) + attn(LN(x)); x + MLP(LN(x))                    | CoAtNet (T)     |

plus the pieces between stages (PatchMerging, Downsample2d) and VAN's ProjectedMixer.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..layers import (ConvMlp, DropPath, LayerNorm2d, LayerScale, add_residual, check_float,
                      check_int)

__all__ = ["MetaFormerBlock", "ConvNeXtBlock", "DWNetBlock", "GFNetBlock", "MBConvBlock",
           "CoAtTransformerBlock", "ProjectedMixer", "DWConvMlp", "SqueezeExcite",
           "PatchMerging", "Downsample2d"]


def _scale(dim: int, init: float | None) -> nn.Module:
    """LayerScale starting at `init` (0: gammas that start at zero), or none for None."""
    if init is None:
        return nn.Identity()
    return LayerScale(dim, check_float("layer_scale", init, minimum=0.0))


def _hidden(dim: int, mlp_ratio: float) -> int:
    """The MLP's hidden width: at least one channel (0 would silently drop the MLP)."""
    hidden = int(dim * check_float("mlp_ratio", mlp_ratio, above=0.0))
    return check_int(f"the MLP's width int(dim * mlp_ratio) (dim={dim}, mlp_ratio={mlp_ratio})",
                     hidden)


class MetaFormerBlock(nn.Module):
    """x + DP(LS(mixer(norm1(x)))), then x + DP(LS(mlp(norm2(x)))): the pre-norm block.

    Args:
        dim: C.
        mixer: the token mixer, (B, C, H, W) -> (B, C, H, W).
        norm_layer: a class or partial taking C (LayerNorm2d, nn.BatchNorm2d, GroupNorm(1)...).
        mlp_ratio: the MLP's hidden width over C.
        mlp_layer: ConvMlp, or DWConvMlp for VAN.
        layer_scale: initial LayerScale value, None for none.
        drop_path: stochastic depth probability of both branches.
        act_layer: the MLP's activation.
    """

    def __init__(self, dim: int, mixer: nn.Module, *, norm_layer=LayerNorm2d, mlp_ratio: float = 4.0,
                 mlp_layer=ConvMlp, layer_scale: float | None = None, drop_path: float = 0.0,
                 act_layer=nn.GELU):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.mixer = mixer
        self.scale1 = _scale(dim, layer_scale)
        self.norm2 = norm_layer(dim)
        self.mlp = mlp_layer(dim, _hidden(dim, mlp_ratio), act_layer=act_layer)
        self.scale2 = _scale(dim, layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = add_residual(x, self.mixer(self.norm1(x)), self.drop_path, self.scale1)
        return add_residual(x, self.mlp(self.norm2(x)), self.drop_path, self.scale2)


class ConvNeXtBlock(nn.Module):
    """x + DP(γ · MLP(LN(mixer(x)))): ConvNeXt's block, the mixer first and one residual."""

    def __init__(self, dim: int, mixer: nn.Module, *, mlp_ratio: float = 4.0,
                 layer_scale: float | None = 1e-6, drop_path: float = 0.0, norm_layer=LayerNorm2d):
        super().__init__()
        self.mixer = mixer
        self.norm = norm_layer(dim)
        self.mlp = ConvMlp(dim, _hidden(dim, mlp_ratio))
        self.scale = _scale(dim, layer_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_residual(x, self.mlp(self.norm(self.mixer(x))), self.drop_path, self.scale)


class DWNetBlock(nn.Module):
    """DWNet's block (Han et al. 2022): the mixer between 1×1 convs with BN, no pre-norm;
    then a BN-pre-normed MLP.
    x + DP(BN2(conv2(ReLU(BN1(mixer(ReLU(BN0(conv0(x))))))))); x + DP(MLP(BN(x)))."""

    def __init__(self, dim: int, mixer: nn.Module, *, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(dim)
        self.mixer = mixer
        self.bn1 = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        self.norm = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, _hidden(dim, mlp_ratio))
        self.act = nn.ReLU()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn0(self.conv0(x)))
        y = self.act(self.bn1(self.mixer(y)))
        x = add_residual(x, self.bn2(self.conv2(y)), self.drop_path)
        return add_residual(x, self.mlp(self.norm(x)), self.drop_path)


class GFNetBlock(nn.Module):
    """x + DP(MLP(LN2(mixer(LN1(x))))): GFNet's block, one residual around filter and MLP."""

    def __init__(self, dim: int, mixer: nn.Module, *, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 norm_layer=LayerNorm2d):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.mixer = mixer
        self.norm2 = norm_layer(dim)
        self.mlp = ConvMlp(dim, _hidden(dim, mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return add_residual(x, self.mlp(self.norm2(self.mixer(self.norm1(x)))), self.drop_path)


class ProjectedMixer(nn.Module):
    """VAN's "attention" around LKA: 1×1 -> GELU -> mixer -> 1×1, plus an inner shortcut.

    The shortcut is VAN's own (its SpatialAttention adds its input back), inside the block's
    residual branch: VAN's block computes x + LS·(n + proj_2(LKA(GELU(proj_1(n))))) with
    n = BN(x). A block part, not a registered mixer; kept as VAN computes it so that its
    checkpoints give its numbers."""

    def __init__(self, dim: int, mixer: nn.Module, *, act_layer=nn.GELU):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.act = act_layer()
        self.mixer = mixer
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.mixer(self.act(self.proj_1(x))))


class DWConvMlp(nn.Module):
    """VAN's MLP: 1×1 -> 3×3 depthwise conv -> GELU -> 1×1."""

    def __init__(self, dim: int, hidden: int, *, act_layer=nn.GELU):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


class SqueezeExcite(nn.Module):
    """x ⊙ sigmoid(fc2(SiLU(fc1(mean over pixels of x)))): channel gating from global context."""

    def __init__(self, dim: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, reduced, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * gate.sigmoid()


class Downsample2d(nn.Module):
    """The shortcut of a strided CoAtNet block: 2×2 average pooling, then a 1×1 conv if the
    channels change."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)
        self.expand = nn.Conv2d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.pool(x))


def _check_stride(stride: int, in_dim: int, out_dim: int, *, widens_itself: bool) -> None:
    """A CoAtNet block's stride is 1 or 2; at stride 1 a transformer block's identity shortcut
    needs in_dim == out_dim (an MBConv widens its shortcut with a 1×1 conv)."""
    if stride not in (1, 2) or isinstance(stride, bool):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")
    if stride == 1 and not widens_itself and in_dim != out_dim:
        raise ValueError(f"in_dim={in_dim} and out_dim={out_dim} must match at stride 1 "
                         f"(the shortcut is the identity)")


class MBConvBlock(nn.Module):
    """CoAtNet's MBConv (timm's layout): pre-BN, 1×1 expand (×4 of the output width), BN-GELU,
    3×3 depthwise (carries the stride), BN-GELU, squeeze-excite (a quarter of the output
    width), 1×1 project; plus the shortcut (pooled and widened when strided)."""

    def __init__(self, in_dim: int, out_dim: int, *, stride: int = 1, expand_ratio: float = 4.0,
                 se_ratio: float = 0.25, drop_path: float = 0.0):
        super().__init__()
        _check_stride(stride, in_dim, out_dim, widens_itself=True)
        mid = int(out_dim * expand_ratio)
        if stride == 2:
            self.shortcut = Downsample2d(in_dim, out_dim)
        elif in_dim == out_dim:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Conv2d(in_dim, out_dim, 1)
        self.pre_norm = nn.BatchNorm2d(in_dim)
        self.conv1 = nn.Conv2d(in_dim, mid, 1, bias=False)
        self.norm1 = nn.Sequential(nn.BatchNorm2d(mid), nn.GELU())
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False)
        self.norm2 = nn.Sequential(nn.BatchNorm2d(mid), nn.GELU())
        self.se = SqueezeExcite(mid, int(out_dim * se_ratio))
        self.conv3 = nn.Conv2d(mid, out_dim, 1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(self.conv1(self.pre_norm(x)))
        y = self.se(self.norm2(self.conv2(y)))
        return add_residual(self.shortcut(x), self.conv3(y), self.drop_path)


class CoAtTransformerBlock(nn.Module):
    """CoAtNet's transformer block: shortcut(x) + attn(pool(LN(x))), then x + MLP(LN(x)).

    When strided, the attention's input is average-pooled after the norm and the shortcut is a
    Downsample2d; the attention itself widens the channels (``mixer`` maps in_dim -> out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, mixer: nn.Module, *, stride: int = 1,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        _check_stride(stride, in_dim, out_dim, widens_itself=False)
        self.shortcut = Downsample2d(in_dim, out_dim) if stride == 2 else nn.Identity()
        self.norm1 = LayerNorm2d(in_dim)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False) if stride == 2 else nn.Identity()
        self.mixer = mixer
        self.norm2 = LayerNorm2d(out_dim)
        self.mlp = ConvMlp(out_dim, _hidden(out_dim, mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = add_residual(self.shortcut(x), self.mixer(self.pool(self.norm1(x))), self.drop_path)
        return add_residual(x, self.mlp(self.norm2(x)), self.drop_path)


class PatchMerging(nn.Module):
    """Swin's downsampling: each 2×2 patch's four pixels concatenated (4C), LayerNorm, then a
    linear map to the new width. Odd sizes are zero-padded first."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=1e-5)
        self.reduction = nn.Linear(4 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels last throughout: the permute is free for a channels_last map, and the norm
        # and the linear map then act on contiguous pixels (a 1×1 conv here would take
        # PyTorch's slow CPU path)
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = nn.functional.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))
        # Swin's order: (even row, even col), (odd, even), (even, odd), (odd, odd)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]],
                      dim=-1)  # (B, H/2, W/2, 4C)
        x = self.reduction(self.norm(x))  # (B, H/2, W/2, C')
        return x.permute(0, 3, 1, 2)  # -> (B, C', H/2, W/2)
