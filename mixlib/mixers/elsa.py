"""ELSA: enhanced local self-attention (Hadamard attention + ghost head).

Paper: Zhou et al., "ELSA: Enhanced Local Self-Attention for Vision Transformer", arXiv
2112.12786 (code: damo-cv/ELSA).

Local self-attention computes its k×k weights from dot products q_i · k_j with every neighbour.
ELSA computes them from the pixel alone: the *Hadamard attention* h_i = q_i ⊙ k_i (no
neighbour products), turned into k*k logits per head by a small generator (a grouped k×k
conv, GELU, a 1×1 conv), so that relative position is implicit in which output channel a
logit comes from. The softmax runs over the k*k offsets. The *ghost head* then gives every
channel c of head g its own filter, from two static per-channel k×k tensors:

    f_c[i; o] = ghost_mul_c[o]^λ · softmax(Gen(q ⊙ k · s))_g[i; o] + γ · ghost_add_c[o],
    y_i = post_proj(Σ_o f_c[i; o] · v_{c, i + d·o}),

with zero padding. With λ = 0, γ = 1 (ELSA-Swin's setting) this is a head-shared dynamic
aggregation plus a static depthwise convolution with kernel ghost_add, which is how the
forward computes it.

Shape legend: B batch, C = dim, H × W the map, G heads, K = k*k offsets, D = dim_qk.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import check_bool, check_float, check_int, check_map, check_probability
from ..ops import local_aggregate
from ._registry import SMALL_WINDOW, MixerInfo, map_pixels, register_mixer
from .attention import resolve_heads

__all__ = ["ELSA"]


@register_mixer("elsa")
class ELSA(nn.Module):
    r"""ELSA's mixer. Defaults are those of ELSA-Swin-T's blocks.

    Args:
        dim: C.
        num_heads: G (default C // 32, Swin's heads).
        kernel_size: k (ELSA-Swin: 7).
        dilation: d.
        group_width: channels per group of the generator's k×k conv (ELSA-Swin-T: 4).
        lam: λ, the power of the ghost multiplier: 0 (no multiplier; ELSA-Swin) or 1.
        gamma: γ, the weight of the ghost adder (ELSA-Swin: 1; 0 removes it).
        qkv_bias: bias in the 1×1 q, k, v projection (ELSA-Swin: True).
        qk_scale: s in q ⊙ k · s (ELSA-Swin: 1; None means (C / G)^-1/2).
        attn_drop, proj_drop: dropout on the weights and on the output.
    """

    info = MixerInfo(neighbourhood="k×k window", sharing="head + channel (ghost)",
                     weights="generated from q ⊙ k + static", paper="zhou2021elsa",
                     small=lambda stage: dict(num_heads=stage.heads, kernel_size=SMALL_WINDOW),
                     small_width=24,
                     bad_example=("lam", dict(lam=0.5)))

    def __init__(self, dim: int, *, num_heads: int | None = None, kernel_size: int = 7,
                 dilation: int = 1, group_width: int = 4, lam: int = 0, gamma: float = 1.0,
                 qkv_bias: bool = True, qk_scale: float | None = 1.0, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.num_heads = resolve_heads(dim, num_heads)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)
        self.dilation = check_int("dilation", dilation)
        self.group_width = check_int("group_width", group_width)
        if isinstance(lam, bool) or lam not in (0, 1):
            raise ValueError(f"lam must be 0 or 1 (the ghost multiplier is raised to it), got {lam!r}")
        self.lam, self.gamma = int(lam), check_float("gamma", gamma)
        self.dim_qk = math.ceil((dim // 3 * 2) / group_width) * group_width
        if self.dim_qk < 1:  # dim // 3 * 2 is 0 below three channels
            raise ValueError(f"dim={dim} leaves no query/key channel (ELSA's 2/3 of dim)")
        # 0 would make the generator's input constant (ELSA's code reads 0 as "the default")
        self.scale = (check_float("qk_scale", qk_scale, above=0) if qk_scale is not None
                      else (dim // self.num_heads) ** -0.5)
        K = kernel_size ** 2
        self.pre_proj = nn.Conv2d(dim, 2 * self.dim_qk + dim, 1, bias=check_bool("qkv_bias", qkv_bias))
        self.generator = nn.Sequential(
            nn.Conv2d(self.dim_qk, self.dim_qk, kernel_size, padding=dilation * (kernel_size // 2),
                      dilation=dilation, groups=self.dim_qk // group_width),
            nn.GELU(),
            nn.Conv2d(self.dim_qk, K * self.num_heads, 1),
        )
        # the ghost head: static per-channel k×k tensors, made only when they are used
        self.ghost_mul = nn.Parameter(torch.randn(dim, K)) if self.lam else None
        if self.gamma:
            self.ghost_add = nn.Parameter(torch.empty(dim, K))
            nn.init.trunc_normal_(self.ghost_add, std=0.02)
        else:
            self.ghost_add = None
        self.attn_drop = nn.Dropout(check_probability("attn_drop", attn_drop))
        self.post_proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(check_probability("proj_drop", proj_drop))

    def _split(self, x):
        return torch.split(self.pre_proj(x), (self.dim_qk, self.dim_qk, self.dim), dim=1)

    def head_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(B, G, K, H, W): softmax over the offsets of the generated logits
        (Hadamard attention)."""
        B, _, H, W = q.shape
        # (B, G·K, H, W), head-major channels
        logits = self.generator(q * k * self.scale)
        K = self.kernel_size ** 2
        return logits.view(B, self.num_heads, K, H, W).softmax(dim=2)

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, K, H, W): every channel's filter f_c = ghost_mul^λ · attn_g + γ · ghost_add."""
        check_map(x, self.dim, self)
        q, k, _ = self._split(x)
        return self._channel_filters(self.head_weights(q, k))

    def _channel_filters(self, attention):
        filters = attention.repeat_interleave(self.dim // self.num_heads, dim=1)  # heads -> channels
        if self.lam:
            filters = filters * self.ghost_mul[None, :, :, None, None] ** self.lam
        if self.ghost_add is not None:
            filters = filters + self.gamma * self.ghost_add[None, :, :, None, None]
        return filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        q, k, v = self._split(x)
        attention = self.attn_drop(self.head_weights(q, k))
        if self.lam:  # a filter of its own for every channel
            y = local_aggregate(v, self._channel_filters(attention), self.kernel_size, self.dilation)
        else:  # head-shared dynamic aggregation + static depthwise conv: the same sum, cheaper
            y = local_aggregate(v, attention, self.kernel_size, self.dilation)
            if self.ghost_add is not None:
                # (C, K) -> (1, C, K, 1, 1): one static kernel per channel
                static = (self.gamma * self.ghost_add).view(1, self.dim, -1, 1, 1)
                y = y + local_aggregate(v, static, self.kernel_size, self.dilation)
        y = self.post_proj(y.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, C)
        return self.proj_drop(y).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)

    def multiply_adds(self, height: int, width: int) -> int:
        """N (C (2D + C) + D k² (g + G) + a k² C + C²), D = dim_qk, g = group_width: the
        projection in, the generator (its grouped k×k conv and its 1×1 conv to G k² logits),
        a = 2 aggregations (head-shared and ghost-add, λ = 0 and γ ≠ 0; else 1), the
        projection out. The ghost head's products with λ = 1 are elementwise, not counted."""
        C, D, K = self.dim, self.dim_qk, self.kernel_size ** 2
        aggregations = 2 if (not self.lam and self.ghost_add is not None) else 1
        return map_pixels(height, width) * (C * (2 * D + C) + D * K * (self.group_width
                                             + self.num_heads) + aggregations * K * C + C * C)
