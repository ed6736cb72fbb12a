"""Attention mixers: Swin's window attention, neighbourhood attention, CoAtNet's relative
attention. All three compute weights from queries and keys plus a learned relative position bias,

    w_ij = softmax_{j ∈ N(i)}(q_i · k_j / √d + b_h[rel(i, j)]),    y_i = Σ_{j ∈ N(i)} w_ij v_j,

one weight per head, shared by its d channels. They differ in the neighbourhood N(i):

| mixer                 | N(i)                                             | bias index (rel)   |
|-----------------------|--------------------------------------------------|--------------------|
| WindowAttention       | i's M×M window (∩ i's region when shifted)       | query - key (Swin) |
| NeighborhoodAttention | k×k window around i, shifted inward at borders   | key - query (NAT)  |
| RelativeAttention     | the whole map                                    | query - key        |

Papers: Swin (Liu et al., ICCV 2021, arXiv 2103.14030); NAT (Hassani et al., CVPR 2023, arXiv
2204.07143); CoAtNet (Dai et al., NeurIPS 2021, arXiv 2106.04803).

Shape legend: B batch, C = dim, H × W the map, N = H·W, h heads, d = C / h head width,
M window size, T = M·M tokens per window, nW windows, K = k*k neighbours.
Channel layout of the qkv projection: (qkv, head, d), as in Swin.
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from ..layers import check_bool, check_divides, check_int, check_map, check_probability, pair
from ..ops import (axis_neighbours, clamped_neighbours, local_aggregate, local_similarity,
                   window_positions)
from ..ops.dense import neighbour_index, weight_matrix
from ..ops.geometry import check_clamp_fits, inside
from ._registry import SMALL_WINDOW, MixerInfo, SmallMap, map_pixels, register_mixer

__all__ = ["WindowAttention", "NeighborhoodAttention", "RelativeAttention", "resolve_heads",
           "swin_relative_index"]

HEAD_WIDTH = 32  # Swin, NAT and CoAtNet all use 32 channels per head
SMALL_SWIN_WINDOW = 4  # window attention's M in the small models: 4×4 and 2×2 CIFAR windows


def _small_window_attention(stage: SmallMap) -> dict:
    # every second block shifted, as in Swin; a map no larger than one window is one window,
    # which the layer never shifts (so the settings table says 0 there, as the layer does)
    shifted = stage.index % 2 and stage.size > SMALL_SWIN_WINDOW
    return dict(num_heads=stage.heads, window_size=SMALL_SWIN_WINDOW,
                shift_size=SMALL_SWIN_WINDOW // 2 if shifted else 0)


def _small_neighborhood_attention(stage: SmallMap) -> dict:
    # NATTEN's clamped windows need the map to hold one; a smaller map centres and masks
    border = "clamp" if stage.size >= SMALL_WINDOW else "zeros"
    return dict(num_heads=stage.heads, kernel_size=SMALL_WINDOW, border=border)


def resolve_heads(dim: int, num_heads: int | None) -> int:
    """num_heads, or dim // 32 (the papers' head width) when it is None."""
    if num_heads is None:
        if dim % HEAD_WIDTH:
            raise ValueError(f"dim={dim} is not a multiple of the default head width "
                             f"{HEAD_WIDTH}; pass num_heads")
        num_heads = dim // HEAD_WIDTH
    check_int("num_heads", num_heads)
    check_divides("num_heads", num_heads, "dim", dim)
    return num_heads


def swin_relative_index(height: int, width: int, table_height: int | None = None,
                        table_width: int | None = None) -> torch.Tensor:
    """(N, N) long: row of the bias table for query i and key j, indexed by query - key.

    The table has (2·table_height - 1)(2·table_width - 1) rows; a map smaller than the table's
    uses its central part, so the same offsets always read the same rows.
    """
    table_height = table_height or height
    table_width = table_width or width
    coords = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"))
    coords = coords.flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :]  # (2, N, N): query - key
    return (rel[0] + table_height - 1) * (2 * table_width - 1) + (rel[1] + table_width - 1)


def lookup_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(h, N, N) bias from a ((2H-1)(2W-1), h) table and an (N, N) index of its rows."""
    return table[index.reshape(-1)].view(*index.shape, table.shape[1]).permute(2, 0, 1)  # (N, N, h) -> (h, N, N)


def attention_weights(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d + bias) over the keys (the last axis): the weights w_ij."""
    return ((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1) + bias).softmax(-1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
           dropout_p: float = 0.0) -> torch.Tensor:
    """softmax(q kᵀ / √d + bias) v over the last two axes; bias broadcasts, -inf masks.

    On a GPU this is PyTorch's fused attention. On the CPU the explicit products are faster:
    SDPA's math path there adds a guard against fully masked rows (none of the masks here has
    one) and extra copies, about 8% of a Swin-T training step.
    """
    bias = bias.to(q.dtype)
    if q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    attn = attention_weights(q, k, bias)
    if dropout_p:
        attn = F.dropout(attn, dropout_p)
    return attn @ v


@functools.cache
def _compiled_flex_attention():
    """flex_attention compiled, once per process: on a GPU, eager flex_attention is PyTorch's
    unfused reference (it materialises the N×N scores), so only the compiled one is the fused
    kernel that its users run."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def bias_table(module: nn.Module, name: str, shape: tuple[int, ...], learned: bool) -> None:
    """Give `module` a relative position bias table `name` of `shape`: learned (a parameter,
    truncated normal with std 0.02, as the papers) or, switched off, zeros held as a buffer, so
    every code path reads a table and the ablation changes nothing else."""
    check_bool("position_bias", learned)
    table = torch.zeros(shape)
    if learned:
        nn.init.trunc_normal_(table, std=0.02)
        module.register_parameter(name, nn.Parameter(table))
    else:
        module.register_buffer(name, table, persistent=False)


def _split_qkv(qkv: torch.Tensor, pattern: str, **axes):
    """q, k, v from one projection whose channels are laid out (qkv, head, d)."""
    return rearrange(qkv, pattern, three=3, **axes).unbind(0)


@register_mixer("window_attention")
class WindowAttention(nn.Module):
    r"""Swin's (shifted) window attention with relative position bias.

    The map is cut into non-overlapping M×M windows and each window attends within itself:
    $w_{ij} = \mathrm{softmax}_j(q_i \cdot k_j/\sqrt d + B_h[i - j])$ for j in i's window. With
    ``shift_size`` s > 0 the windows are first moved by (s, s) (a cyclic roll), and a mask keeps
    pixels that the roll brought together from different image regions apart.

    Any H, W works: the map is padded to a multiple of M and the padded keys are masked. As in
    Swin, a map whose shorter side is at most M gets no shift. Unlike Swin, M is not then
    reduced to min(H, W): on a square map of side at most M both are global attention, but on
    a 4×20 map with M = 7 the windows here are 4×7, 4×7 and 4×6 (padded to 7×7), not
    Swin's five of 4×4. The masks use -inf (exact) where Swin adds -100.

    Args:
        dim: C.
        num_heads: h (default C // 32, Swin's head width).
        window_size: M (Swin: 7).
        shift_size: s, 0 or M // 2 in alternating Swin blocks.
        position_bias: learn the relative position bias B (Swin: True); False drops it.
        qkv_bias: bias in the qkv projection (Swin: True).
        attn_drop: dropout on the attention weights; proj_drop: on the output.
    """

    info = MixerInfo(neighbourhood="window partition", sharing="head", weights="query-key",
                     paper="liu2021swin", small=_small_window_attention, small_width=28,
                     no_weight_decay=("relative_position_bias_table",),
                     bad_example=("shift_size", dict(shift_size=7)))

    def __init__(self, dim: int, *, num_heads: int | None = None, window_size: int = 7,
                 shift_size: int = 0, position_bias: bool = True, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.num_heads = resolve_heads(dim, num_heads)
        self.window_size = check_int("window_size", window_size)
        self.shift_size = check_int("shift_size", shift_size, minimum=0)
        if shift_size >= window_size:
            raise ValueError(f"shift_size={shift_size} must be smaller than window_size={window_size}")
        M = window_size
        self.qkv = nn.Linear(dim, 3 * dim, bias=check_bool("qkv_bias", qkv_bias))
        bias_table(self, "relative_position_bias_table", ((2 * M - 1) ** 2, self.num_heads),
                   position_bias)
        self.register_buffer("relative_position_index", swin_relative_index(M, M), persistent=False)
        self.attn_drop = check_probability("attn_drop", attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(check_probability("proj_drop", proj_drop))
        self._masks: dict[tuple, torch.Tensor | None] = {}  # window_mask's, by (H, W, device)

    def relative_bias(self) -> torch.Tensor:
        """(h, T, T): B_h[i - j] for every query and key of a window."""
        return lookup_bias(self.relative_position_bias_table, self.relative_position_index)

    def window_mask(self, height: int, width: int, device=None) -> torch.Tensor | None:
        """(nW, T, T) bool, True where query i may attend to key j; None if nothing is masked.

        Two rules: after a shift only pixels of the same image region meet (Swin's 9 regions),
        and padded pixels are no keys of real queries.
        """
        key = (height, width, str(device))
        if key not in self._masks:  # a few map sizes per model: computed once each, as Swin does
            self._masks[key] = self._window_mask(height, width, device)
        return self._masks[key]

    def _window_mask(self, height: int, width: int, device=None) -> torch.Tensor | None:
        M, shift = self.window_size, self._shift(height, width)
        Hp, Wp = self._padded(height, width)
        if shift == 0 and (Hp, Wp) == (height, width):
            return None
        region = torch.zeros(Hp, Wp, dtype=torch.long, device=device)
        if shift:
            label = 0
            for rows in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
                for cols in (slice(0, -M), slice(-M, -shift), slice(-shift, None)):
                    region[rows, cols] = label
                    label += 1
        real = torch.zeros(Hp, Wp, dtype=torch.bool, device=device)
        real[:height, :width] = True
        real = torch.roll(real, (-shift, -shift), dims=(0, 1))  # into the shifted frame
        region, real = (rearrange(t, "(nh m1) (nw m2) -> (nh nw) (m1 m2)", m1=M, m2=M)
                        for t in (region, real))  # (nW, T)
        same_region = region[:, :, None] == region[:, None, :]
        key_ok = real[:, None, :] | ~real[:, :, None]  # padded queries may see anything
        return same_region & key_ok

    def _shift(self, height: int, width: int) -> int:
        return self.shift_size if min(height, width) > self.window_size else 0

    def _padded(self, height: int, width: int) -> tuple[int, int]:
        """The map's size once padded at the bottom and right to whole M×M windows."""
        M = self.window_size
        return height + (-height) % M, width + (-width) % M

    def _partition(self, t: torch.Tensor, shift: int) -> torch.Tensor:
        """(B, H, W, C) -> (B, nW, T, C): padded at the bottom and right to multiples of M,
        rolled by (-shift, -shift), cut into M×M windows."""
        M, (H, W) = self.window_size, t.shape[1:3]
        Hp, Wp = self._padded(H, W)
        t = F.pad(t, (0, 0, 0, Wp - W, 0, Hp - H))
        if shift:
            t = torch.roll(t, (-shift, -shift), dims=(1, 2))
        return rearrange(t, "b (nh m1) (nw m2) c -> b (nh nw) (m1 m2) c", m1=M, m2=M)

    def _masked_bias(self, height: int, width: int, device) -> torch.Tensor:
        """(h, T, T) relative bias, or (nW, h, T, T) with -inf where the window mask forbids."""
        bias = self.relative_bias()
        mask = self.window_mask(height, width, device)
        return bias if mask is None else bias.masked_fill(~mask[:, None], float("-inf"))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, N, N): the weight w_ij of query pixel i on key pixel j of the H×W map (pixels
        numbered row by row, N = H·W), zero where j is not in i's window; row i sums to one.
        The layer is ``proj`` of Σ_j w_ij v_j per head. For figures and checks: it holds N²
        weights per head, so keep the maps small."""
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        shift = self._shift(H, W)
        q, k, _ = _split_qkv(self.qkv(self._partition(x.permute(0, 2, 3, 1), shift)),
                             "b n t (three h d) -> three b n h t d", h=self.num_heads)
        attn = attention_weights(q, k, self._masked_bias(H, W, x.device))  # (B, nW, h, T, T)
        # each window position's pixel, 1 + its index in the map; 0 for padding
        pixel = torch.arange(1, H * W + 1, device=x.device).view(1, H, W, 1)
        pixel = self._partition(pixel, shift)[0, :, :, 0]  # (nW, T)
        nW, T = pixel.shape
        dense = attn.new_zeros(B, self.num_heads, H * W + 1, H * W + 1)
        dense[:, :, pixel[:, :, None].expand(nW, T, T), pixel[:, None, :].expand(nW, T, T)] = \
            attn.permute(0, 2, 1, 3, 4)  # (B, h, nW, T, T) into the rows and columns of its pixels
        return dense[:, :, 1:, 1:]  # real queries give padding no weight: dropping it loses nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        M, shift = self.window_size, self._shift(H, W)
        Hp, Wp = self._padded(H, W)
        windows = self._partition(x.permute(0, 2, 3, 1), shift)  # (B, nW, T, C)
        # the fused SDPA kernels take 4-D inputs: batch and windows merge into one axis
        q, k, v = _split_qkv(self.qkv(windows), "b n t (three h d) -> three (b n) h t d",
                            h=self.num_heads)
        bias = self._masked_bias(H, W, x.device)  # (h, T, T) or (nW, h, T, T)
        if bias.dim() == 4:  # per image: (B·nW, h, T, T)
            bias = bias.expand(B, *bias.shape).flatten(0, 1)
        y = attend(q, k, v, bias, self.attn_drop if self.training else 0.0)
        # n given, not b: einops cannot infer n from an empty batch (B = 0)
        y = rearrange(y, "(b n) h t d -> b n t (h d)", n=(Hp // M) * (Wp // M))
        y = self.proj_drop(self.proj(y))
        y = rearrange(y, "b (nh nw) (m1 m2) c -> b (nh m1) (nw m2) c", nh=Hp // M, m1=M)
        if shift:
            y = torch.roll(y, (shift, shift), dims=(1, 2))
        return y[:, :H, :W].permute(0, 3, 1, 2)  # crop, (B, H, W, C) -> (B, C, H, W)

    def multiply_adds(self, height: int, width: int) -> int:
        """4 N' C² + 2 N' M² C, N' the pixels of the map padded to whole M×M windows: the
        q, k, v and output projections, then q·k and Σ w v over each pixel's M² window
        partners. Padded pixels are computed too, and so counted."""
        map_pixels(height, width)
        M, (Hp, Wp) = self.window_size, self._padded(height, width)
        padded = Hp * Wp
        return 4 * padded * self.dim ** 2 + 2 * padded * M * M * self.dim


_TILE_LAYOUTS: dict[tuple, tuple[torch.Tensor, ...]] = {}  # _tile_layout's, once per map


@torch.compiler.assume_constant_result  # a function of the map alone: constants to a compiler
def _tile_layout(height: int, width: int, kernel_size: int, dilation: int, border: str,
                 tile: int) -> tuple[torch.Tensor, ...]:
    """NeighborhoodAttention's "tiled" form: which pixels each tile×tile query tile holds and
    which keys its queries' windows reach, once per map (CPU tensors, never written to), as

    queries (n, T), keys (n, S): pixel indices, N (a spare zero token) filling short tiles;
    valid (n, T, S): which key lies in which query's window;
    rel_rows, rel_cols (n, T, S): the bias table's row and column of each (query, key) pair;
    order (N,): where each pixel's output sits among the n·T tile queries.
    """
    args = (height, width, kernel_size, dilation, border, tile)
    if args not in _TILE_LAYOUTS:  # its own memo: a compiler calls the function itself
        _TILE_LAYOUTS[args] = _build_tile_layout(*args)
    return _TILE_LAYOUTS[args]


def _build_tile_layout(height, width, kernel_size, dilation, border, tile):
    ks, d, N = kernel_size, dilation, height * width
    window_rows = axis_neighbours(height, ks, d, border)  # (k, H): the rows of each window
    window_cols = axis_neighbours(width, ks, d, border)  # (k, W)

    def reach(window, queries, length):  # the key positions the windows of `queries` cover
        lo, hi = window[:, queries].min().clamp(min=0), window[:, queries].max()
        return torch.arange(int(lo), int(hi.clamp(max=length - 1)) + 1)

    tiles = [(torch.arange(r, min(r + tile, height)), torch.arange(c, min(c + tile, width)))
             for r in range(0, height, tile) for c in range(0, width, tile)]
    spans = [(reach(window_rows, qr, height), reach(window_cols, qc, width)) for qr, qc in tiles]
    n, T, S = len(tiles), tile * tile, max(len(kr) * len(kc) for kr, kc in spans)
    queries, keys = torch.full((n, T), N), torch.full((n, S), N)
    valid = torch.zeros(n, T, S, dtype=torch.bool)
    rel_rows = torch.zeros(n, T, S, dtype=torch.long)
    rel_cols = torch.zeros(n, T, S, dtype=torch.long)
    for t, ((qr, qc), (kr, kc)) in enumerate(zip(tiles, spans)):
        nq, nk = len(qr) * len(qc), len(kr) * len(kc)
        pairs = (len(qr), len(qc), len(kr), len(kc))  # (query row, query col, key row, key col)
        queries[t, :nq] = (qr[:, None] * width + qc).flatten()
        keys[t, :nk] = (kr[:, None] * width + kc).flatten()
        # key row r is in query row i's window iff r is one of window_rows[:, i]
        in_rows = (window_rows[:, qr, None] == kr).any(0)  # (query rows, key rows)
        in_cols = (window_cols[:, qc, None] == kc).any(0)  # (query cols, key cols)
        # pairs -> (queries, keys), both row-major
        valid[t, :nq, :nk] = (in_rows[:, None, :, None] & in_cols[None, :, None, :]).reshape(nq, nk)
        rows = torch.div(kr - qr[:, None], d, rounding_mode="floor") + ks - 1  # key - query
        cols = torch.div(kc - qc[:, None], d, rounding_mode="floor") + ks - 1
        rel_rows[t, :nq, :nk] = rows[:, None, :, None].expand(pairs).reshape(nq, nk)
        rel_cols[t, :nq, :nk] = cols[None, :, None, :].expand(pairs).reshape(nq, nk)
    rel_rows.clamp_(0, 2 * ks - 2)  # pairs outside a window index anything: they are masked
    rel_cols.clamp_(0, 2 * ks - 2)
    # a spare query (short tile) sees its tile's real keys: a finite row, dropped after
    valid |= (queries == N)[:, :, None] & (keys != N)[:, None, :]
    flat = queries.flatten()
    order = torch.empty(N, dtype=torch.long)
    order[flat[flat < N]] = torch.arange(flat.numel())[flat < N]
    return queries, keys, valid, rel_rows, rel_cols, order


@register_mixer("neighborhood_attention")
class NeighborhoodAttention(nn.Module):
    r"""Neighbourhood attention (NAT): a k×k sliding window around every pixel.

    $w_{ij} = \mathrm{softmax}_{j \in \mathcal N(i)}(q_i \cdot k_j/\sqrt d + B_h[j - i])$, then
    $y_i = \sum_j w_{ij} v_j$: ``local_similarity`` + bias, softmax, ``local_aggregate``, with
    NATTEN's border rule (``border="clamp"``): near the border the window shifts inward, so every
    pixel attends to exactly k*k pixels. The bias table is (h, 2k-1, 2k-1), indexed by key - query;
    the interior only uses its central k×k. ``border="zeros"`` keeps every window centred on its
    pixel and masks the positions outside the map before the softmax (SASA's sliding window;
    ELSA instead keeps the outside positions in its softmax and reads zeros there); it also
    works on maps smaller than the window, where it is global attention.

    ``implementation``: "aggregate" (the two ops, memory O(N·K); on a GPU they run as fused
    Triton kernels), "dense" (one masked attention over all N pixels, `attend`, memory
    O(N²), faster for small maps on the CPU), "tiled" (the map cut into 8×8 query tiles, each
    a masked attention over the union of its queries' windows, (8 + k - 1)² keys without
    dilation: HaloNet's blocking, dense products at a few times the window's work instead of
    N/K times; under torch.compile the map's size must be static, as the tiles are constants),
    "flex" (PyTorch's flex_attention with a block mask built from the same window rule, once
    per map, and the bias as a score_mod; compiled on a GPU; where the installed PyTorch
    supports it on the device, e.g. no CPU backward) or "auto" (on the CPU dense up to
    ``DENSE_MAX_PIXELS``, tiled above, or under torch.compile dense up to 32×32; else
    aggregate). All give the same numbers.

    Args:
        dim: C.
        num_heads: h (default C // 32).
        kernel_size: k (NAT: 7).
        dilation: d.
        border: "clamp" (NATTEN's windows, shifted inward) or "zeros" (centred windows, outside
            positions masked).
        position_bias: learn the relative position bias B (NAT: True); False drops it.
        qkv_bias: bias in the qkv projection.
        attn_drop, proj_drop: dropout on the weights and on the output.
        implementation: "auto", "aggregate", "dense", "tiled" or "flex" ("flex": clamp only).
    """

    info = MixerInfo(neighbourhood="k×k window (clamped)", sharing="head", weights="query-key",
                     paper="hassani2023nat", small=_small_neighborhood_attention, small_width=28,
                     # counted as the k×k windows it computes, not the dense path's masked products
                     flop_settings={"implementation": "aggregate"}, no_weight_decay=("rpb",),
                     bad_example=("num_heads", dict(num_heads=5)))
    DENSE_MAX_PIXELS = 64  # "auto" on the CPU: one tile's worth; tiled above (bench neighborhood)
    COMPILED_DENSE_MAX_PIXELS = 1024  # the same under torch.compile, where "tiled" is not taken
    TILE = 8  # "tiled": query tiles of TILE × TILE pixels
    IMPLEMENTATIONS = ("auto", "aggregate", "dense", "tiled", "flex")

    def __init__(self, dim: int, *, num_heads: int | None = None, kernel_size: int = 7,
                 dilation: int = 1, border: str = "clamp", position_bias: bool = True,
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 implementation: str = "auto"):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.num_heads = resolve_heads(dim, num_heads)
        self.kernel_size = check_int("kernel_size", kernel_size, odd=True)
        self.dilation = check_int("dilation", dilation)
        if border not in ("clamp", "zeros"):
            raise ValueError(f"border must be 'clamp' or 'zeros', got {border!r}")
        self.border = border
        self.implementation = implementation  # checked by its setter, against the border
        self._block_masks = {}  # (H, W, device) -> flex_attention's block mask of the windows
        self.scale = (dim // self.num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=check_bool("qkv_bias", qkv_bias))
        bias_table(self, "rpb", (self.num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1),
                   position_bias)
        self.attn_drop = nn.Dropout(check_probability("attn_drop", attn_drop))
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(check_probability("proj_drop", proj_drop))

    @property
    def implementation(self) -> str:
        return self._implementation_name

    @implementation.setter
    def implementation(self, value: str) -> None:
        # a property, so that switching a built mixer (as the benchmarks and chapter 3 do) is
        # checked too: a typo would otherwise run "auto", and "flex" with border="zeros" would
        # silently compute clamped windows
        if value not in self.IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {self.IMPLEMENTATIONS}, got {value!r}")
        if value == "flex" and self.border != "clamp":
            raise ValueError("implementation='flex' builds NATTEN's clamped windows only; "
                             f"border={self.border!r} needs another implementation")
        self._implementation_name = value

    def _qkv(self, x: torch.Tensor):
        qkv = self.qkv(x.permute(0, 2, 3, 1))  # (B, C, H, W) -> (B, H, W, 3C)
        return _split_qkv(qkv, "b x y (three c) -> three b c x y")  # 3 × (B, C, H, W)

    def _positions(self, height: int, width: int, device):
        """Neighbour positions (K, H, W) and their bias table rows and columns."""
        rows, cols = window_positions(height, width, self.kernel_size, self.dilation, self.border,
                                      device)
        i = torch.arange(height, device=device)[None, :, None]
        j = torch.arange(width, device=device)[None, None, :]
        rel_rows = torch.div(rows - i, self.dilation, rounding_mode="floor") + self.kernel_size - 1
        rel_cols = torch.div(cols - j, self.dilation, rounding_mode="floor") + self.kernel_size - 1
        return rows, cols, rel_rows, rel_cols

    def relative_bias(self, height: int, width: int, device=None) -> torch.Tensor:
        """(h, K, H, W): B_h[j - i] for every pixel and neighbour; -inf for neighbours outside
        the map (border "zeros")."""
        rows, cols, rel_rows, rel_cols = self._positions(height, width, device or self.rpb.device)
        bias = self.rpb[:, rel_rows, rel_cols]
        if self.border == "zeros":
            bias = bias.masked_fill(~inside(rows, cols, height, width), float("-inf"))
        return bias

    def aggregation_weights(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, K, H, W): the attention weights of every pixel over its k×k window."""
        check_map(x, self.dim, self)
        q, k, _ = self._qkv(x)
        return self._weights(q, k)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """(B, h, N, N): the weight w_ij of query pixel i on key pixel j of the H×W map (pixels
        numbered row by row, N = H·W), zero outside i's window: ``aggregation_weights`` spread
        over the whole map, in the same form as ``WindowAttention.attention_map``. For figures
        and checks: it holds N² weights per head, so keep the maps small."""
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        w = self.aggregation_weights(x)  # (B, h, K, H, W)
        index = neighbour_index(H, W, self.kernel_size, self.dilation, self.border, x.device)
        return weight_matrix(w, H, W, index, w.dtype)  # the dense backend's own matrix

    def _weights(self, q, k):
        H, W = q.shape[-2:]
        logits = local_similarity(q * self.scale, k, self.kernel_size,
                                  self.dilation, groups=self.num_heads,
                                  border=self.border)
        return (logits + self.relative_bias(H, W, q.device)).softmax(dim=2)

    def _implementation(self, x: torch.Tensor) -> str:
        if self.implementation != "auto":
            return self.implementation
        if x.device.type != "cpu":
            return "aggregate"
        pixels = x.shape[2] * x.shape[3]
        if torch.compiler.is_compiling():  # the tiles are constants: no dynamic map sizes
            return "dense" if pixels <= self.COMPILED_DENSE_MAX_PIXELS else "aggregate"
        return "dense" if pixels <= self.DENSE_MAX_PIXELS else "tiled"

    def _flex(self, q, k, v, height: int, width: int):
        """flex_attention over (B, h, N, d) tokens with NA's window as a block mask."""
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        if self.training and self.attn_drop.p > 0:
            raise ValueError("implementation='flex' has no attention dropout; use 'aggregate'")
        ks, d, rpb = self.kernel_size, self.dilation, self.rpb
        row_start = clamped_neighbours(height, ks, d, q.device)[0]  # (H,): each window's first row
        col_start = clamped_neighbours(width, ks, d, q.device)[0]  # (W,)
        span = (ks - 1) * d

        def in_window(q_idx, kv_idx):
            dr = kv_idx // width - row_start[q_idx // width]
            dc = kv_idx % width - col_start[q_idx % width]
            return (dr >= 0) & (dr <= span) & (dr % d == 0) & (dc >= 0) & (dc <= span) & (dc % d == 0)

        def score_mod(score, b, h, q_idx, kv_idx):  # + B_h[key - query], inside the window
            rel_r = ((kv_idx // width - q_idx // width) // d + ks - 1).clamp(0, 2 * ks - 2)
            rel_c = ((kv_idx % width - q_idx % width) // d + ks - 1).clamp(0, 2 * ks - 2)
            return score + rpb[h, rel_r, rel_c]

        N = height * width
        key = (height, width, str(q.device))
        if key not in self._block_masks:  # a function of the map alone: built once per map
            self._block_masks[key] = create_block_mask(
                lambda b, h, qi, ki: in_window(qi, ki), None, None, N, N, device=q.device)
        attention = _compiled_flex_attention() if q.is_cuda else flex_attention
        return attention(q, k, v, score_mod=score_mod, block_mask=self._block_masks[key],
                         scale=self.scale)

    def _tiled(self, q, k, v, height: int, width: int):
        """Attention over (B, h, N, d) tokens, tile by tile (``_tile_layout``)."""
        layout = _tile_layout(height, width, self.kernel_size, self.dilation, self.border,
                              self.TILE)
        queries, keys, valid, rel_rows, rel_cols, order = (t.to(q.device) for t in layout)

        def gather(t, index):  # (B, h, N, d) + a spare zero token -> (B, h, n, T or S, d)
            return F.pad(t, (0, 0, 0, 1))[:, :, index]

        bias = self.rpb[:, rel_rows, rel_cols].masked_fill(~valid, float("-inf"))  # (h, n, T, S)
        drop = self.attn_drop.p if self.training else 0.0
        y = attend(gather(q, queries), gather(k, keys), gather(v, keys), bias, drop)
        return y.flatten(2, 3)[:, :, order]  # (B, h, n, T, d) -> pixel order (B, h, N, d)

    def dense_bias(self, height: int, width: int, device=None) -> torch.Tensor:
        """(h, N, N): the bias B_h[j - i] where j is a neighbour of i, -inf elsewhere."""
        device = device or self.rpb.device
        _, _, rel_rows, rel_cols = self._positions(height, width, device)
        N, K = height * width, self.kernel_size ** 2
        # (N, K): the key index of each neighbour; outside the map a spare column N, dropped
        keys = neighbour_index(height, width, self.kernel_size, self.dilation, self.border, device)
        bias = self.rpb[:, rel_rows, rel_cols].view(self.num_heads, K, N).transpose(1, 2)  # (h, N, K)
        dense = torch.full((self.num_heads, N, N + 1), float("-inf"), device=device, dtype=bias.dtype)
        return dense.scatter(2, keys.expand(self.num_heads, N, K), bias)[..., :N]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        if self.border == "clamp":
            try:  # the ops' one rule for whether a clamped window fits, named for this mixer
                for length in (H, W):
                    check_clamp_fits(length, self.kernel_size, self.dilation)
            except ValueError as error:
                raise ValueError(f"NeighborhoodAttention(kernel_size={self.kernel_size}, "
                                 f"dilation={self.dilation}): {error}, in x of shape "
                                 f"{tuple(x.shape)}; border='zeros' takes any map") from None
        q, k, v = self._qkv(x)
        implementation = self._implementation(x)
        if implementation in ("dense", "tiled", "flex"):
            def tokens(t):  # (B, C, H, W) -> (B, h, N, d)
                return rearrange(t, "b (h d) x y -> b h (x y) d", h=self.num_heads)
            if implementation == "flex":
                y = self._flex(tokens(q), tokens(k), tokens(v), H, W)
            elif implementation == "tiled":
                y = self._tiled(tokens(q), tokens(k), tokens(v), H, W)
            else:
                drop = self.attn_drop.p if self.training else 0.0
                y = attend(tokens(q), tokens(k), tokens(v), self.dense_bias(H, W, x.device), drop)
            y = rearrange(y, "b h (x y) d -> b x y (h d)", x=H)
        else:
            w = self.attn_drop(self._weights(q, k))
            y = local_aggregate(v, w, self.kernel_size, self.dilation, border=self.border)
            y = y.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        return self.proj_drop(self.proj(y)).permute(0, 3, 1, 2)  # back to (B, C, H, W)

    def multiply_adds(self, height: int, width: int) -> int:
        """4 N C² + 2 N k² C: the q, k, v and output projections, then q·k and Σ w v over
        each pixel's k×k window, whichever implementation runs (the dense and tiled paths
        also multiply masked pairs; this is the algorithm's count)."""
        N = map_pixels(height, width)
        return 4 * N * self.dim ** 2 + 2 * N * self.kernel_size ** 2 * self.dim


@register_mixer("relative_attention")
class RelativeAttention(nn.Module):
    r"""CoAtNet's global attention with a relative bias added before the softmax.

    $y_i = \sum_j \mathrm{softmax}_j(q_i \cdot k_j/\sqrt d + w_h[i - j])\, v_j$ over all pixels:
    a convolution-like static term $w_{i-j}$ (one scalar per head and offset) inside the
    attention's normalisation. The bias table covers maps up to ``size``; smaller maps use its
    centre, larger ones a bicubic enlargement of it (as timm resizes the table of a CoAtNet
    loaded at a larger image size), so the model takes any input size.

    Args:
        dim: C.
        num_heads: h (default C // 32).
        size: (H, W), the largest map (CoAtNet-0 at 224 px: 14×14 in stage 3, 7×7 in stage 4).
        qkv_bias: bias in the 1×1 qkv projection.
        attn_drop, proj_drop: dropout on the weights and on the output.
        dim_out: output channels, for the first block of a CoAtNet stage, whose attention
            widens the map (q, k, v and the output have dim_out channels); default C.
    """

    info = MixerInfo(neighbourhood="global", sharing="head", weights="query-key + static",
                     paper="dai2021coatnet", small_width=28,
                     small=lambda stage: dict(num_heads=stage.heads, size=(stage.size, stage.size)),
                     no_weight_decay=("relative_position_bias_table",),
                     bad_example=("size", dict(size=(0, 4))))

    def __init__(self, dim: int, *, num_heads: int | None = None, size=(14, 14),
                 qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 dim_out: int | None = None):
        super().__init__()
        self.dim = check_int("dim", dim)
        self.dim_out = check_int("dim_out", dim_out) if dim_out is not None else dim
        self.num_heads = resolve_heads(self.dim_out, num_heads)
        self.size = pair("size", size)
        self.qkv = nn.Conv2d(dim, 3 * self.dim_out, 1, bias=check_bool("qkv_bias", qkv_bias))
        bias_table(self, "relative_position_bias_table",
                   ((2 * self.size[0] - 1) * (2 * self.size[1] - 1), self.num_heads), True)
        self.attn_drop = check_probability("attn_drop", attn_drop)
        self.proj = nn.Conv2d(self.dim_out, self.dim_out, 1)
        self.proj_drop = nn.Dropout(check_probability("proj_drop", proj_drop))

    def relative_bias(self, height: int, width: int) -> torch.Tensor:
        """(h, N, N): w_h[i - j] for every query i and key j of an H×W map."""
        table, (rows, cols) = self.relative_position_bias_table, self.size
        if height > rows or width > cols:  # offsets beyond the table's: enlarge it
            rows, cols = max(height, rows), max(width, cols)
            # ((2R-1)(2S-1), h) -> (1, h, 2R-1, 2S-1): each head's table as an image to resize
            grid = table.T.reshape(1, -1, 2 * self.size[0] - 1, 2 * self.size[1] - 1)
            grid = F.interpolate(grid, size=(2 * rows - 1, 2 * cols - 1), mode="bicubic",
                                 align_corners=False)
            # (1, h, 2R-1, 2S-1) -> (h, (2R-1)(2S-1)) -> ((2R-1)(2S-1), h)
            table = grid.flatten(2)[0].T
        index = swin_relative_index(height, width, rows, cols).to(table.device)
        return lookup_bias(table, index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_map(x, self.dim, self)
        B, C, H, W = x.shape
        q, k, v = _split_qkv(self.qkv(x),
                             "b (three h d) x y -> three b h (x y) d",
                             h=self.num_heads)
        dropout = self.attn_drop if self.training else 0.0
        y = attend(q, k, v, self.relative_bias(H, W), dropout)
        y = rearrange(y, "b h (x y) d -> b (h d) x y", x=H)
        return self.proj_drop(self.proj(y))

    def multiply_adds(self, height: int, width: int) -> int:
        """N (3 C C_o + C_o²) + 2 N² C_o, C_o = dim_out: the projections in and out, then
        q·k and Σ w v over all N pixels (4 N C² + 2 N² C when C_o = C): quadratic in N."""
        N, C, out = map_pixels(height, width), self.dim, self.dim_out
        return N * (3 * C * out + out * out) + 2 * N * N * out
