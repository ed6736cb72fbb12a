"""The equivalences of the book (mixers.md, section 8), in float64.

Tolerance: 1e-10 absolute unless stated (every quantity is O(1), sums of at most a few hundred
products, so float64 round-off stays near 1e-14). Where the two sides treat the border
differently, the check is restricted to the interior and the border difference is asserted too.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from mixlib import mixers
from mixlib.mixers.attention import swin_relative_index
from mixlib.ops import local_aggregate

TOL = 1e-10
torch.manual_seed(0)


def close(a, b, tol=TOL):
    return torch.allclose(a, b, atol=tol, rtol=0)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


# 1. depthwise conv -------------------------------------------------------------------------------

def test_dwconv_is_aggregation_with_shared_per_channel_weights():
    m = mixers.build("dwconv", 8, kernel_size=5, dilation=2).double()
    x = rand(2, 8, 13, 17)
    expected = F.conv2d(x, m.conv.weight, m.conv.bias, padding=4, dilation=2, groups=8)
    assert close(m(x), expected)
    w = m.aggregation_weights()
    assert w.shape == (1, 8, 25, 1, 1)
    assert close(local_aggregate(x, w, 5, 2, backend="reference") + m.conv.bias.view(1, -1, 1, 1), expected)


# 2. LKA == one dense 23×23 kernel ----------------------------------------------------------------

def test_lka_composes_into_one_dense_23x23_kernel():
    m = mixers.build("lka", 4).double()
    kernel, bias = m.composed_kernel()
    assert kernel.shape == (4, 1, 23, 23) and m.receptive_field == 23
    assert (kernel != 0).all()  # the composed kernel is dense: 529 of 529 taps
    x = rand(2, 4, 40, 41)
    # exact everywhere when the input is padded once by the total radius and both convs are valid
    padded = F.pad(x, (11,) * 4)
    first, second = m.conv0.conv, m.conv_spatial.conv
    two_valid = F.conv2d(F.conv2d(padded, first.weight, first.bias, groups=4),
                         second.weight, second.bias, dilation=3, groups=4)
    one = F.conv2d(padded, kernel, bias, groups=4)
    assert close(two_valid, one)
    # with per-layer padding (what VAN does) only pixels >= 9 from the border agree
    per_layer = m.conv_spatial(m.conv0(x))
    dense = F.conv2d(x, kernel, bias, padding=11, groups=4)
    assert close(per_layer[..., 9:-9, 9:-9], dense[..., 9:-9, 9:-9])
    assert not close(per_layer, dense, 1e-6)
    # and the whole mixer is x ⊙ Conv1×1(DW23×23(x)) in that interior
    lka = x * m.conv1(dense)
    assert close(m(x)[..., 9:-9, 9:-9], lka[..., 9:-9, 9:-9])


# 3. GFNet's filter == circular depthwise conv ----------------------------------------------------

@pytest.mark.parametrize("size", [(6, 8), (6, 7)])
def test_global_filter_is_a_circular_depthwise_convolution(size):
    m = mixers.build("global_filter", 3, size=size).double()
    with torch.no_grad():
        m.complex_weight.normal_()  # arbitrary complex weights, DC/Nyquist imaginary parts too
    x = rand(2, 3, *size)
    k = m.spatial_kernel()  # (C, H, W)
    H, W = size
    circular = torch.zeros_like(x)
    for dy in range(H):
        for dx in range(W):  # y_i = Σ_o k[o] x[i - o], indices mod (H, W)
            circular += k[None, :, dy, dx, None, None] * torch.roll(x, (dy, dx), dims=(2, 3))
    assert close(m(x), circular)


# 4. Swin SW-MSA == global attention with a block mask ---------------------------------------------

@pytest.mark.parametrize("shift", [0, 3])
def test_shifted_window_attention_is_masked_global_attention(shift):
    M, H, W, C, heads = 7, 14, 21, 8, 2
    m = mixers.build("window_attention", C, num_heads=heads, window_size=M, shift_size=shift).double()
    x = rand(2, C, H, W)
    # the same layer as global attention: i and j attend iff, after the cyclic shift, they lie in
    # the same window and neither wrapped around (their offset is unchanged by the shift)
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    srows, scols = (rows - shift) % H, (cols - shift) % W
    same_window = (srows[:, None] // M == srows[None] // M) & (scols[:, None] // M == scols[None] // M)
    no_wrap = ((srows[:, None] - srows[None]) == (rows[:, None] - rows[None])) & \
              ((scols[:, None] - scols[None]) == (cols[:, None] - cols[None]))
    allowed = same_window & no_wrap
    # relative bias from the table, Swin's (query - key) index
    dr = (rows[:, None] - rows[None]).clamp(-(M - 1), M - 1)
    dc = (cols[:, None] - cols[None]).clamp(-(M - 1), M - 1)
    bias = m.relative_position_bias_table[(dr + M - 1) * (2 * M - 1) + dc + M - 1]  # (N, N, h)
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C)
    q, k, v = m.qkv(tokens).view(2, H * W, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) / math.sqrt(C // heads) + bias.permute(2, 0, 1)
    logits = logits.masked_fill(~allowed, float("-inf"))
    y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(2, H * W, C)
    expected = m.proj(y).transpose(1, 2).reshape(2, C, H, W)
    assert close(m(x), expected)


def test_window_attention_pads_any_size_without_leaking():
    m = mixers.build("window_attention", 8, num_heads=2, window_size=7, shift_size=3).double()
    x = rand(1, 8, 9, 10)
    y = m(x)
    # the map is padded to 14×14, then rolled by -3: the shifted windows start at rows and
    # columns 3 and 10 (and 10..13 wrap around to 0..2); a pixel changes the outputs of its
    # own window's pixels on the map and of no other
    for (r, c), rows, cols in (((8, 9), slice(3, 9), slice(3, 10)),  # rows 3..9, cols 3..9
                               ((0, 0), slice(0, 3), slice(0, 3))):  # a wrapped window
        x2 = x.clone()
        x2[..., r, c] += 1.0
        changed = (m(x2) - y).abs().sum(1)[0] > 1e-12
        expected = torch.zeros(9, 10, dtype=torch.bool)
        expected[rows, cols] = True
        assert torch.equal(changed, expected), (r, c)


# 5. relative index tables: Swin's (query - key) is the transpose of NATTEN's (key - query) -------

def test_swin_index_is_the_transpose_of_key_minus_query():
    index = swin_relative_index(4, 5)
    r, c = (t.flatten() for t in torch.meshgrid(torch.arange(4), torch.arange(5), indexing="ij"))
    # [i, j]: the table row of offset key j - query i, on a (2·4 - 1) × (2·5 - 1) table
    key_minus_query = (r[None] - r[:, None] + 3) * 9 + (c[None] - c[:, None] + 4)
    assert torch.equal(index.T, key_minus_query)
    assert not torch.equal(index, key_minus_query)  # the two conventions do differ


# 6. neighbourhood attention ----------------------------------------------------------------------

def _zero_queries(m, C):
    with torch.no_grad():
        m.qkv.weight[:C] = 0
        m.qkv.bias[:C] = 0


def test_neighborhood_attention_without_queries_is_a_depthwise_conv_inside():
    C, heads, k = 8, 2, 5
    m = mixers.build("neighborhood_attention", C, num_heads=heads, kernel_size=k).double()
    _zero_queries(m, C)
    x = rand(2, C, 12, 13)
    centre = m.rpb[:, k // 2: k // 2 + k, k // 2: k // 2 + k]  # (h, k, k): the interior offsets
    kernel = centre.reshape(heads, -1).softmax(-1).view(heads, 1, k, k)
    kernel = kernel.repeat_interleave(C // heads, dim=0)  # one kernel per channel of a head
    v = m.qkv(x.permute(0, 2, 3, 1))[..., 2 * C:].permute(0, 3, 1, 2)
    expected = m.proj(F.conv2d(v, kernel, padding=k // 2, groups=C).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    r = k // 2
    for implementation in ("aggregate", "dense", "tiled"):
        m.implementation = implementation
        y = m(x)
        assert close(y[..., r:-r, r:-r], expected[..., r:-r, r:-r])
        assert not close(y[..., 0, :], expected[..., 0, :], 1e-6)  # clamped windows at the border


# a 7×7 map under NATTEN's clamped windows; maps smaller than the window under centred windows
# with the outside masked (border "zeros"), which the book's small models use on 4×4 and 2×2 maps
@pytest.mark.parametrize("size, border", [(7, "clamp"), (4, "zeros"), (2, "zeros")])
@pytest.mark.parametrize("implementation", ["aggregate", "dense", "tiled"])
def test_neighborhood_attention_over_the_whole_map_is_global_attention(size, border, implementation):
    C, heads, k, N = 8, 2, 7, size * size
    m = mixers.build("neighborhood_attention", C, num_heads=heads, kernel_size=k, border=border,
                     implementation=implementation).double()
    x = rand(2, C, size, size)
    q, key, v = m.qkv(x.permute(0, 2, 3, 1)).view(2, N, 3, heads, C // heads).permute(2, 0, 3, 1, 4)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    bias = m.rpb[:, rows[None] - rows[:, None] + k - 1, cols[None] - cols[:, None] + k - 1]  # key - query
    logits = q @ key.transpose(-1, -2) / math.sqrt(C // heads) + bias
    y = (logits.softmax(-1) @ v).transpose(1, 2).reshape(2, size, size, C)
    assert close(m(x), m.proj(y).permute(0, 3, 1, 2))


@pytest.mark.parametrize("name, kwargs", [
    ("neighborhood_attention", dict(kernel_size=3)),
    ("neighborhood_attention", dict(kernel_size=3, border="zeros")),
    ("window_attention", dict(window_size=4, shift_size=2)),
])
def test_without_position_bias_is_the_same_layer_with_a_zero_table(name, kwargs):
    plain = mixers.build(name, 8, num_heads=2, position_bias=False, **kwargs).double()
    learned = mixers.build(name, 8, num_heads=2, **kwargs).double()
    tables = [n for n, _ in learned.named_parameters() if "rpb" in n or "bias_table" in n]
    assert len(tables) == 1 and tables[0] not in dict(plain.named_parameters())
    learned.load_state_dict(plain.state_dict(), strict=False)  # the same projections
    x = rand(2, 8, 8, 8)
    assert not close(plain(x), learned(x))  # the learned table matters...
    with torch.no_grad():
        learned.get_parameter(tables[0]).zero_()
    assert close(plain(x), learned(x))  # ...and dropping it is a zero table


@pytest.mark.parametrize("dilation, border", [(1, "clamp"), (2, "clamp"), (1, "zeros"), (2, "zeros")])
def test_neighborhood_attention_dense_and_aggregate_agree(dilation, border):
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=3, dilation=dilation,
                     border=border).double()
    x = rand(2, 8, 9, 11)
    m.implementation = "dense"
    dense = m(x)
    m.implementation = "aggregate"
    assert close(m(x), dense)


def test_neighborhood_attention_auto_on_the_cpu_is_dense_for_one_tile_and_tiled_above(monkeypatch):
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=3, border="zeros")
    chosen = []
    for name in ("_tiled", "_flex"):
        monkeypatch.setattr(m, name, lambda q, *a, _n=name: chosen.append(_n) or q)
    monkeypatch.setattr(mixers.attention, "attend", lambda q, *a: chosen.append("dense") or q)
    side = int(m.DENSE_MAX_PIXELS ** 0.5)
    for width, expected in ((side, "dense"), (side + 1, "_tiled")):
        chosen.clear()
        m(torch.randn(1, 8, side, width))
        assert chosen == [expected], width


@pytest.mark.parametrize("size, kernel_size, dilation, border", [
    ((19, 23), 7, 1, "clamp"),   # tiles of 8 plus short ones on both axes, NAT's window
    ((17, 12), 3, 2, "clamp"),   # dilation: windows on interleaved sub-grids
    ((19, 23), 7, 1, "zeros"),   # centred windows, cut at the border
    ((5, 6), 7, 1, "zeros"),     # one short tile, every window reaching past the map
    ((16, 24), 5, 3, "zeros"),   # whole tiles, dilated windows wider than a tile
])
def test_neighborhood_attention_tiled_equals_aggregate_with_its_gradients(size, kernel_size,
                                                                          dilation, border):
    """The tiled form (8×8 query tiles against their windows' keys) is the same layer: outputs
    and the gradients of input, projections and bias table agree in float64."""
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=kernel_size,
                     dilation=dilation, border=border).double()
    with torch.no_grad():
        m.rpb.normal_()  # a table that is not zero, so that a misplaced bias shows
    x = rand(2, 8, *size).requires_grad_()
    weights = torch.randn(2, 8, *size, dtype=torch.float64,
                          generator=torch.Generator().manual_seed(5))
    results = {}
    for implementation in ("aggregate", "tiled"):
        m.implementation = implementation
        m.zero_grad()
        x.grad = None
        y = m(x)
        (y * weights).sum().backward()
        results[implementation] = (y, x.grad, m.rpb.grad, m.qkv.weight.grad)
    for a, b in zip(results["aggregate"], results["tiled"]):
        assert close(a, b)


# 7. CoAtNet relative attention without content == normalised convolution -----------------------

def test_relative_attention_without_content_is_a_normalised_convolution():
    C, heads, H, W = 4, 2, 5, 6
    m = mixers.build("relative_attention", C, num_heads=heads, size=(H, W)).double()
    with torch.no_grad():  # q = k = 0: only the static term w_{i-j} is left
        m.qkv.weight[:2 * C] = 0
        m.qkv.bias[:2 * C] = 0
    x = rand(2, C, H, W)
    v = m.qkv(x)[:, 2 * C:]
    # table rows hold w[i - j]; as a correlation kernel over offsets o = j - i that is w[-o]
    table = m.relative_position_bias_table.T.reshape(heads, 2 * H - 1, 2 * W - 1)
    kernel = table.flip(-1, -2).exp().repeat_interleave(C // heads, dim=0)[:, None]  # (C, 1, 2H-1, 2W-1)
    numerator = F.conv2d(v, kernel, padding=(H - 1, W - 1), groups=C)
    denominator = F.conv2d(torch.ones_like(v), kernel, padding=(H - 1, W - 1), groups=C)
    assert close(m(x), m.proj(numerator / denominator))


# 8. gnConv ---------------------------------------------------------------------------------------

def test_gnconv_order_one_is_a_gated_depthwise_conv():
    m = mixers.build("gnconv", 8, order=1).double()
    x = rand(2, 8, 9, 10)
    p, q = m.proj_in(x).chunk(2, dim=1)
    dw = m.spatial.conv
    gated = p * F.conv2d(q, dw.weight, dw.bias, padding=3, groups=8) / 3
    assert close(m(x), m.proj_out(gated))


def test_gnconv_order_three_is_the_explicit_recursion():
    m = mixers.build("gnconv", 16, order=3).double()
    x = rand(2, 16, 9, 10)
    fused = m.proj_in(x)
    p0, q0, q1, q2 = fused[:, :4], fused[:, 4:8], fused[:, 8:16], fused[:, 16:32]
    dw = m.spatial.conv
    dwq = F.conv2d(torch.cat([q0, q1, q2], 1), dw.weight, dw.bias, padding=3, groups=28) / 3
    p1 = p0 * dwq[:, :4]
    p2 = m.pws[0](p1) * dwq[:, 4:12]
    p3 = m.pws[1](p2) * dwq[:, 12:28]
    assert close(m(x), m.proj_out(p3))


# 9. PoolFormer ------------------------------------------------------------------------------------

def test_pooling_is_a_normalised_box_filter_minus_identity():
    m = mixers.build("pooling", 4)
    x = rand(2, 4, 7, 9)
    assert close(m(x), local_aggregate(x, m.aggregation_weights(x), 3))
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    normalised = F.conv2d(x, ones.expand(4, 1, 3, 3), padding=1, groups=4) / \
        F.conv2d(torch.ones_like(x), ones.expand(4, 1, 3, 3), padding=1, groups=4)
    assert close(m(x), normalised - x)
    kernel = torch.full((4, 1, 3, 3), 1 / 9, dtype=torch.float64)
    kernel[:, :, 1, 1] -= 1
    as_dwconv = F.conv2d(x, kernel, padding=1, groups=4)
    assert close(m(x)[..., 1:-1, 1:-1], as_dwconv[..., 1:-1, 1:-1])  # interior only
    assert not close(m(x)[..., 0, :], as_dwconv[..., 0, :], 1e-6)
    assert close(m.aggregation_weights(x).sum(2), torch.zeros(1, 1, 7, 9, dtype=torch.float64))


# 11. dynamic depthwise convolutions --------------------------------------------------------------

def test_ddw_is_a_per_sample_depthwise_conv():
    m = mixers.build("ddwconv", 8, kernel_size=3, reduction=1).double().eval()  # 8 hidden units
    x = rand(3, 8, 9, 10)
    w = m.aggregation_weights(x)  # (B, C, 9, 1, 1)
    per_sample = torch.cat([F.conv2d(x[b:b + 1], w[b].view(8, 1, 3, 3), m.bias, padding=1, groups=8)
                            for b in range(3)])
    assert close(m(x), per_sample)
    assert not close(w[0], w[1], 1e-6)


def test_idw_with_spatially_constant_weights_and_one_channel_per_group_is_a_dwconv():
    m = mixers.build("idwconv", 8, kernel_size=3, groups=8).double().eval()
    with torch.no_grad():  # the generator's last layer ignores its input: constant weights
        m.generator[-1].weight.zero_()
    x = rand(2, 8, 9, 10)
    kernel = m.generator[-1].bias.view(8, 1, 3, 3)
    assert close(m(x), F.conv2d(x, kernel, padding=1, groups=8))


# 12. HorNet's GlobalLocalFilter interleaves its two halves --------------------------------------

def test_global_local_filter_interleaves_channels():
    from mixlib.mixers.hornet import spectral_filter
    m = mixers.GlobalLocalFilter(8, size=(6, 6)).double()
    m.post_norm = torch.nn.Identity()
    x = rand(2, 8, 6, 6)
    normed = m.pre_norm(x)
    local = m.dw(normed[:, :4])
    glob = spectral_filter(normed[:, 4:], m.complex_weight)
    y = m(x)
    assert close(y[:, 0::2], local) and close(y[:, 1::2], glob)


# attention averages, convolutions need not ----------------------------------------------------

def test_attention_rows_sum_to_one_and_pooling_rows_to_zero():
    x = rand(1, 8, 6, 7)
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=3).double()
    w = m.aggregation_weights(x)
    assert close(w.sum(2), torch.ones_like(w.sum(2)))
    pooled = mixers.build("pooling", 8).aggregation_weights(x).sum(2)  # mean - identity
    assert close(pooled, torch.zeros_like(pooled))


# 10. ELSA ----------------------------------------------------------------------------------------

def test_elsa_without_multiplier_is_dynamic_aggregation_plus_a_static_dwconv():
    m = mixers.build("elsa", 8, num_heads=2, kernel_size=3, lam=0, gamma=1.0).double()
    x = rand(2, 8, 9, 10)
    q, k, v = torch.split(m.pre_proj(x), (m.dim_qk, m.dim_qk, 8), dim=1)
    dynamic = local_aggregate(v, m.head_weights(q, k), 3, backend="reference")  # head-shared
    static = F.conv2d(v, m.ghost_add.view(8, 1, 3, 3), padding=1, groups=8)  # ghost_add as DW conv
    expected = m.post_proj((dynamic + static).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert close(m(x), expected)


def test_elsa_filter_is_ghost_mul_times_attention_plus_ghost_add():
    m = mixers.build("elsa", 8, num_heads=2, kernel_size=3, lam=1, gamma=0.5).double()
    x = rand(2, 8, 9, 10)
    q, k, v = torch.split(m.pre_proj(x), (m.dim_qk, m.dim_qk, 8), dim=1)
    attention = m.head_weights(q, k).repeat_interleave(4, dim=1)  # (B, C, K, H, W)
    filters = m.ghost_mul[None, :, :, None, None] * attention + 0.5 * m.ghost_add[None, :, :, None, None]
    assert close(m.aggregation_weights(x), filters)
    y = local_aggregate(v, filters, 3, backend="reference")
    assert close(m(x), m.post_proj(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


@pytest.mark.parametrize("dilation", [1, 2])
def test_neighborhood_attention_flex_matches_dense(dilation):
    """flex_attention with NA's block mask and bias (forward; the CPU has no flex backward)."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=3,
                     dilation=dilation).double().eval()
    x = torch.randn(2, 8, 9, 11, dtype=torch.float64)
    with torch.no_grad():
        m.implementation = "dense"
        dense = m(x)
        m.implementation = "flex"
        try:
            flex = m(x)
        except NotImplementedError as error:  # pragma: no cover - depends on the PyTorch build
            pytest.skip(f"flex_attention is not supported here: {error}")
    assert flex.dtype == torch.float64
    assert torch.allclose(flex, dense, atol=1e-12, rtol=0)


# attention maps: the dense (query, key) weights the figures draw are the layer's own -----------

@pytest.mark.parametrize("name, kwargs, size", [
    ("window_attention", dict(window_size=4, shift_size=0), (8, 8)),
    ("window_attention", dict(window_size=4, shift_size=2), (9, 11)),  # shifted and padded
    ("neighborhood_attention", dict(kernel_size=5), (9, 11)),
    ("neighborhood_attention", dict(kernel_size=5, border="zeros"), (4, 6)),
])
def test_attention_map_is_the_layers_weights(name, kwargs, size):
    C, heads = 8, 2
    m = mixers.build(name, C, num_heads=heads, **kwargs).double()
    x = rand(2, C, *size)
    w = m.attention_map(x)  # (B, h, N, N)
    N = size[0] * size[1]
    assert w.shape == (2, heads, N, N) and (w >= 0).all()
    assert close(w.sum(-1), torch.ones(2, heads, N, dtype=torch.float64))
    v = m.qkv(x.permute(0, 2, 3, 1))[..., 2 * C:].reshape(2, N, heads, C // heads).transpose(1, 2)
    y = (w @ v).transpose(1, 2).reshape(2, *size, C)  # (B, H, W, C)
    assert close(m(x), m.proj(y).permute(0, 3, 1, 2))
