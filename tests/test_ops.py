"""The primitive: every backend is the definition, in values and gradients (float64).

Tolerances: values agree to 1e-12 absolute (sums of at most 49 products of O(1) numbers);
gradients are checked by torch.autograd.gradcheck against finite differences (eps 1e-6,
atol 1e-6; fast mode: random projections of the Jacobian), which proves each hand-written
backward on its own, and lean gradients equal reference gradients to 1e-12.
"""
import itertools

import pytest
import torch
import torch.nn.functional as F

from mixlib.ops import (
    AGGREGATE_BACKENDS,
    local_aggregate,
    local_similarity,
    neighbour_mask,
    neighbour_offsets,
)

TOL = 1e-12
B, C, H, W = 2, 4, 5, 7  # odd, non-square map


def rand(*shape, grad=False, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, dtype=torch.float64, generator=g).to(device).requires_grad_(grad)


def weight_shapes(groups, k):
    """Per-pixel, batch-broadcast, space-broadcast, row-broadcast and static weights."""
    K = k * k
    return {
        "per_pixel": (B, groups, K, H, W),
        "batch_shared": (1, groups, K, H, W),
        "per_sample_static": (B, groups, K, 1, 1),
        "row_shared": (1, groups, K, 1, W),
        "static": (1, groups, K, 1, 1),
    }


def naive_aggregate(v, w, k, d):
    """Equation (1) with explicit loops over pixels and offsets: the definition itself."""
    Bv, Cv, Hv, Wv = v.shape
    G = w.shape[1]
    wb = w.expand(Bv, G, k * k, Hv, Wv)
    y = torch.zeros_like(v)
    for c in range(Cv):
        g = c // (Cv // G)
        for o, (dy, dx) in enumerate(neighbour_offsets(k, d)):
            for i in range(Hv):
                for j in range(Wv):
                    if 0 <= i + dy < Hv and 0 <= j + dx < Wv:
                        y[:, c, i, j] += wb[:, g, o, i, j] * v[:, c, i + dy, j + dx]
    return y


@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_reference_is_the_definition(dilation):
    v, w = rand(B, C, H, W), rand(B, 2, 9, H, W, seed=1)
    expected = naive_aggregate(v, w, 3, dilation)
    assert torch.allclose(local_aggregate(v, w, 3, dilation, backend="reference"), expected,
                          atol=TOL, rtol=0)


@pytest.mark.parametrize("dilation,groups,k", list(itertools.product([1, 2, 3], [1, 2, 4], [3, 5])))
def test_backends_agree_in_values(dilation, groups, k):
    v = rand(B, C, H, W)
    for name, shape in weight_shapes(groups, k).items():
        w = rand(*shape, seed=1)
        expected = local_aggregate(v, w, k, dilation, backend="reference")
        backends = ["lean", "dense", "auto"] + (["conv"] if shape[3:] == (1, 1) else [])
        for backend in backends:
            got = local_aggregate(v, w, k, dilation, backend=backend)
            assert got.shape == v.shape
            assert torch.allclose(got, expected, atol=TOL, rtol=0), (name, backend)


@pytest.mark.parametrize("backend", ["reference", "lean", "dense", "conv"])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_backends_gradcheck(backend, dilation):
    for groups in (1, 2, 4):
        for name, shape in weight_shapes(groups, 3).items():
            if backend == "conv" and shape[3:] != (1, 1):
                continue
            v, w = rand(B, C, H, W, grad=True), rand(*shape, grad=True, seed=1)
            assert torch.autograd.gradcheck(
                lambda v, w: local_aggregate(v, w, 3, dilation, backend=backend), (v, w),
                eps=1e-6, atol=1e-6, fast_mode=True), (name, groups)


def test_lean_gradient_equals_reference_gradient():
    v = rand(B, C, H, W, grad=True)
    w = rand(B, 2, 25, H, W, grad=True, seed=1)
    g = rand(B, C, H, W, seed=2)
    grads = {}
    for backend in ("reference", "lean", "dense"):
        grads[backend] = torch.autograd.grad(local_aggregate(v, w, 5, 2, backend=backend), (v, w), g)
    for backend in ("lean", "dense"):
        for a, b in zip(grads["reference"], grads[backend]):
            assert torch.allclose(a, b, atol=TOL, rtol=0), backend


def test_channels_last_generated_weights_give_the_same_result_and_gradients():
    """A generator's channels-last output viewed as (B, G, K, H, W) has the offsets innermost;
    lean copies it to offset planes first (for speed): the values and both gradients must be
    those of the same weights laid out plainly, on every backend that reads per-pixel weights."""
    v = rand(B, C, H, W, grad=True)
    plain = rand(B, 2, 25, H, W, seed=1)
    # (B, G·K, H, W) channels-last, then viewed as (B, G, K, H, W): the layout a 1x1 conv gives
    strided = plain.flatten(1, 2).contiguous(memory_format=torch.channels_last).view(plain.shape)
    assert not strided.is_contiguous()
    g = rand(B, C, H, W, seed=2)
    for backend in ("lean", "dense", "reference"):
        results = []
        for w in (plain, strided):
            w = w.detach().requires_grad_()
            y = local_aggregate(v, w, 5, 2, backend=backend)
            results.append((y, *torch.autograd.grad(y, (v, w), g)))
        for a, b in zip(*results):
            assert torch.allclose(a, b, atol=TOL, rtol=0), backend


def test_static_weights_are_a_depthwise_convolution():
    """Equivalence: aggregation with per-channel shared weights == F.conv2d(groups=C)."""
    v = rand(B, C, H, W)
    kernel = rand(C, 1, 5, 5, seed=3)
    w = kernel.reshape(1, C, 25, 1, 1)  # one 5×5 kernel per channel, shared by every pixel
    expected = F.conv2d(v, kernel, padding=4, dilation=2, groups=C)
    for backend in ("reference", "lean", "dense", "conv"):
        assert torch.allclose(local_aggregate(v, w, 5, 2, backend=backend), expected, atol=TOL, rtol=0)


def test_static_weights_stay_float32_under_cpu_autocast():
    """The depthwise convolution is kept out of CPU autocast (its bf16 kernels are the slow
    ones): bf16 values come out in float32, equal to the float32 convolution of the same values,
    and the weights' gradient is float32 too."""
    v = torch.randn(B, C, H, W).bfloat16()
    kernel = torch.randn(C, 1, 3, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = local_aggregate(v, kernel.reshape(1, C, 9, 1, 1), 3)
    assert y.dtype == torch.float32
    assert torch.equal(y, F.conv2d(v.float(), kernel, padding=1, groups=C))
    y.sum().backward()
    assert kernel.grad.dtype == torch.float32


def test_channel_to_group_assignment_is_contiguous():
    """Channel c uses group c // (C // G): weights of group 1 touch channels 2 and 3 only."""
    v = rand(B, C, H, W)
    w = torch.zeros(1, 2, 9, 1, 1, dtype=torch.float64)
    w[0, 1, 4] = 1.0  # the centre tap of group 1
    y = local_aggregate(v, w, 3)
    assert torch.equal(y[:, :2], torch.zeros_like(y[:, :2]))
    assert torch.equal(y[:, 2:], v[:, 2:])


def naive_similarity(q, k, ks, d, groups):
    Bq, Cq, Hq, Wq = q.shape
    out = torch.full((Bq, groups, ks * ks, Hq, Wq), float("-inf"), dtype=q.dtype)
    cg = Cq // groups
    for g in range(groups):
        for o, (dy, dx) in enumerate(neighbour_offsets(ks, d)):
            for i in range(Hq):
                for j in range(Wq):
                    if 0 <= i + dy < Hq and 0 <= j + dx < Wq:
                        out[:, g, o, i, j] = (q[:, g * cg:(g + 1) * cg, i, j]
                                              * k[:, g * cg:(g + 1) * cg, i + dy, j + dx]).sum(1)
    return out


@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_similarity_backends_are_the_definition(dilation, groups):
    q, k = rand(B, C, H, W), rand(B, C, H, W, seed=1)
    expected = naive_similarity(q, k, 3, dilation, groups)
    for backend in ("reference", "lean", "dense", "auto"):
        got = local_similarity(q, k, 3, dilation, groups=groups, backend=backend)
        assert torch.equal(got.isinf(), expected.isinf())
        inside = ~expected.isinf()
        assert torch.allclose(got[inside], expected[inside], atol=TOL, rtol=0)


@pytest.mark.parametrize("backend", ["reference", "lean", "dense"])
@pytest.mark.parametrize("dilation", [1, 2, 3])
def test_similarity_gradcheck(backend, dilation):
    for groups in (1, 2, 4):
        q, k = rand(B, C, H, W, grad=True), rand(B, C, H, W, grad=True, seed=1)

        def finite_logits(q, k):
            logits = local_similarity(q, k, 3, dilation, groups=groups, backend=backend)
            return logits.masked_fill(logits.isinf(), 0.0)

        assert torch.autograd.gradcheck(finite_logits, (q, k), eps=1e-6, atol=1e-6, fast_mode=True)


def test_softmax_of_similarity_then_aggregate_is_local_attention():
    """Attention over a 3×3 window, written with dense masked softmax, equals the two ops."""
    q, k, v = rand(1, 4, 4, 6), rand(1, 4, 4, 6, seed=1), rand(1, 4, 4, 6, seed=2)
    w = local_similarity(q, k, 3, groups=2).softmax(dim=2)
    y = local_aggregate(v, w, 3)
    # dense: position p attends to position r iff |Δrow| <= 1 and |Δcol| <= 1
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(6), indexing="ij")
    rows, cols = rows.flatten(), cols.flatten()
    near = ((rows[:, None] - rows[None]).abs() <= 1) & ((cols[:, None] - cols[None]).abs() <= 1)
    qh, kh, vh = (t.reshape(2, 2, 24) for t in (q, k, v))  # (heads, d, N)
    logits = torch.einsum("hdn,hdm->hnm", qh, kh).masked_fill(~near, float("-inf"))
    dense = torch.einsum("hnm,hdm->hdn", logits.softmax(-1), vh).reshape(1, 4, 4, 6)
    assert torch.allclose(y, dense, atol=TOL, rtol=0)


def test_neighbour_mask_counts():
    mask = neighbour_mask(5, 7, 3)
    assert mask.shape == (9, 5, 7)
    assert mask[:, 2, 3].all()  # interior pixel sees all 9
    assert mask[:, 0, 0].sum() == 4  # a corner sees 2×2


def test_lean_mixed_dtypes_promote():
    v = torch.randn(1, 4, 5, 5, dtype=torch.bfloat16)
    w = torch.randn(1, 2, 9, 5, 5)
    assert local_aggregate(v, w, 3).dtype == torch.float32


@pytest.mark.parametrize("call,match", [
    (lambda: local_aggregate(torch.zeros(4, 5, 5), torch.zeros(1, 1, 9, 1, 1), 3), "v must have shape"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 3, 9, 1, 1), 3), "G=3"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 16, 1, 1), 4), "kernel_size"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 8, 1, 1), 3), "8 offsets"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 9, 1), 3), "w must have shape"),
    (lambda: local_aggregate(torch.zeros(2, 4, 5, 5), torch.zeros(3, 1, 9, 1, 1), 3), "batch axis"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 9, 4, 5), 3), "height axis"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 9, 5, 5), 3, backend="conv"),
     "static weights"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 9, 1, 1), 3, backend="fast"),
     "'fast'"),
    (lambda: local_aggregate(torch.zeros(1, 4, 5, 5), torch.zeros(1, 1, 9, 1, 1), 3, dilation=0),
     "dilation"),
    (lambda: local_similarity(torch.zeros(1, 4, 5, 5), torch.zeros(1, 4, 5, 5), 3, groups=3), "groups"),
    (lambda: local_similarity(torch.zeros(1, 4, 5, 5), torch.zeros(1, 4, 5, 6), 3), "k must have"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_auto_takes_dense_on_small_cpu_maps_and_lean_above(monkeypatch):
    """"auto" on the CPU: one matrix product per image and group up to DENSE_MAX_PIXELS pixels,
    lean's K passes above; both ops, seen by which backend module computes them."""
    from mixlib.ops import aggregate as aggregate_module, dense, lean
    limit = aggregate_module.DENSE_MAX_PIXELS
    called = []
    for module in (dense, lean):
        for op in ("aggregate", "similarity"):
            original = getattr(module, op)
            monkeypatch.setattr(module, op, lambda *a, _o=original, _n=module.__name__, **k:
                                called.append(_n.rsplit(".", 1)[1]) or _o(*a, **k))
    side = int(limit ** 0.5)
    for height, width, expected in ((side, limit // side, "dense"), (side, limit // side + 1, "lean")):
        v = rand(1, 4, height, width)
        called.clear()
        local_aggregate(v, rand(1, 2, 9, height, width, seed=1), 3)
        local_similarity(v, v, 3, groups=2)
        assert called == [expected, expected], (height, width)


def test_auto_takes_dense_for_dilated_static_weights_on_small_cpu_maps(monkeypatch):
    """Static weights go to the convolution kernels, except dilated ones on CPU maps of at
    most DENSE_MAX_PIXELS_DILATED pixels (LKA's second convolution on the small presets)."""
    from mixlib.ops import aggregate as aggregate_module
    limit = aggregate_module.DENSE_MAX_PIXELS_DILATED
    side = int(limit ** 0.5)
    chosen = []
    monkeypatch.setattr(aggregate_module, "_conv_aggregate", lambda *a: chosen.append("conv") or a[0])
    monkeypatch.setattr(aggregate_module.library, "aggregate",
                        lambda *a: chosen.append(a[-1]) or a[0])
    w = rand(1, 4, 9, 1, 1)
    for (height, width), dilation, expected in (((side, limit // side), 3, "dense"),
                                                ((side, limit // side + 1), 3, "conv"),
                                                ((side, limit // side), 1, "conv")):
        chosen.clear()
        local_aggregate(rand(1, 4, height, width), w, 3, dilation)
        assert chosen == [expected], (height, width, dilation)


def test_backends_listed():
    assert set(AGGREGATE_BACKENDS) == {"auto", "reference", "lean", "dense", "conv", "triton"}


# ----------------------------------------------------------------------------------------------
# The clamped border rule of neighbourhood attention


def natten_window_start(i, length, k, d):
    """NATTEN's get_window_start (naive CUDA kernels, v0.17), written out for one index."""
    r = k // 2
    if d <= 1:
        start = max(i - r, 0)
        if i + r >= length:
            start += length - i - r - 1
        return start
    ni = i - r * d
    if ni < 0:
        return i % d
    if i + r * d >= length:
        imodd = i % d
        a = (length // d) * d
        b = length - a
        if imodd < b:
            return length - b + imodd - 2 * r * d
        return a + imodd - k * d
    return ni


@pytest.mark.parametrize("k,d", [(3, 1), (5, 1), (7, 1), (3, 2), (5, 2), (3, 3), (5, 3)])
@pytest.mark.parametrize("length", [15, 16, 23])
def test_clamped_neighbours_follow_natten(k, d, length):
    from mixlib.ops import clamped_neighbours
    got = clamped_neighbours(length, k, d)
    for i in range(length):
        start = natten_window_start(i, length, k, d)
        assert got[:, i].tolist() == [start + t * d for t in range(k)], i


def naive_clamped_aggregate(v, w, k, d):
    from mixlib.ops import clamped_neighbours
    Bv, Cv, Hv, Wv = v.shape
    G = w.shape[1]
    wb = w.expand(Bv, G, k * k, Hv, Wv)
    rows, cols = clamped_neighbours(Hv, k, d), clamped_neighbours(Wv, k, d)
    y = torch.zeros_like(v)
    for c in range(Cv):
        g = c // (Cv // G)
        for i in range(Hv):
            for j in range(Wv):
                for ty in range(k):
                    for tx in range(k):
                        y[:, c, i, j] += wb[:, g, ty * k + tx, i, j] * v[:, c, rows[ty, i], cols[tx, j]]
    return y


@pytest.mark.parametrize("d", [1, 2])
def test_clamp_border_backends_are_the_definition(d):
    v = rand(B, C, 7, 9)
    w = rand(B, 2, 9, 7, 9, seed=1)
    expected = naive_clamped_aggregate(v, w, 3, d)
    for backend in ("reference", "lean", "dense", "auto"):
        got = local_aggregate(v, w, 3, d, backend, border="clamp")
        assert torch.allclose(got, expected, atol=TOL, rtol=0), backend
    q, key = rand(B, C, 7, 9, seed=2), rand(B, C, 7, 9, seed=3)
    ref = local_similarity(q, key, 3, d, groups=2, backend="reference", border="clamp")
    assert torch.isfinite(ref).all()  # no neighbour is outside
    for backend in ("lean", "dense"):
        got = local_similarity(q, key, 3, d, groups=2, backend=backend, border="clamp")
        assert torch.allclose(ref, got, atol=TOL, rtol=0), backend


@pytest.mark.parametrize("backend", ["reference", "lean", "dense"])
def test_clamp_border_gradcheck(backend):
    v, w = rand(1, 4, 6, 7, grad=True), rand(1, 2, 9, 6, 7, grad=True, seed=1)
    assert torch.autograd.gradcheck(
        lambda v, w: local_aggregate(v, w, 3, 2, backend, border="clamp"), (v, w),
        eps=1e-6, atol=1e-6, fast_mode=True)
    q, key = rand(1, 4, 6, 7, grad=True, seed=2), rand(1, 4, 6, 7, grad=True, seed=3)
    assert torch.autograd.gradcheck(
        lambda q, key: local_similarity(q, key, 3, 2, groups=2, backend=backend, border="clamp"),
        (q, key), eps=1e-6, atol=1e-6, fast_mode=True)


def test_clamp_equals_zeros_in_the_interior():
    v, w = rand(1, 4, 9, 9), rand(1, 2, 9, 9, 9, seed=1)
    zeros = local_aggregate(v, w, 3, border="zeros")
    clamp = local_aggregate(v, w, 3, border="clamp")
    assert torch.allclose(zeros[..., 1:-1, 1:-1], clamp[..., 1:-1, 1:-1], atol=TOL, rtol=0)
    assert not torch.allclose(zeros[..., 0, :], clamp[..., 0, :])  # the border differs


def test_window_positions_agree_with_offsets_and_clamp():
    from mixlib.ops import window_positions
    rows, cols = window_positions(5, 6, 3, 1, "zeros")
    assert rows[0, 0, 0] == -1 and cols[0, 0, 0] == -1 and rows[8, 4, 5] == 5
    rows, cols = window_positions(5, 6, 3, 1, "clamp")
    assert rows.min() >= 0 and rows.max() <= 4 and cols.max() <= 5
    assert rows[:, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_clamp_needs_a_large_enough_map():
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        local_aggregate(torch.zeros(1, 2, 4, 9), torch.zeros(1, 1, 25, 1, 1), 5, border="clamp")
    with pytest.raises(ValueError, match="border"):
        local_aggregate(torch.zeros(1, 2, 4, 9), torch.zeros(1, 1, 9, 1, 1), 3, border="reflect")


# ----------------------------------------------------------------------------------------------
# Issue 22: one border rule, devices, half precision, derivatives of every order, torch.func

EXACT_BACKENDS = ["reference", "lean", "dense"]  # test_triton.py runs the same checks on "triton"


@pytest.mark.parametrize("backend", EXACT_BACKENDS + ["auto"])
@pytest.mark.parametrize("k,d,size", [(5, 1, 4), (3, 3, 8), (3, 2, 5)])
def test_clamp_too_small_raises_on_every_op(backend, k, d, size):
    """A map shorter than kernel_size·dilation along one axis: a ValueError, for both ops."""
    v, q = torch.zeros(1, 2, size, 11), torch.zeros(1, 2, 11, size)
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        local_aggregate(v, torch.zeros(1, 1, k * k, size, 11), k, d, backend, border="clamp")
    with pytest.raises(ValueError, match="kernel_size \\* dilation"):
        local_similarity(q, q, k, d, backend=backend, border="clamp")


def test_clamp_fits_exactly_kernel_size_times_dilation():
    """The size check's boundary: an axis of exactly k·d pixels is enough."""
    from mixlib.ops import clamped_neighbours
    assert clamped_neighbours(6, 3, 2).max() == 5
    assert clamped_neighbours(3, 1, 4).tolist() == [[0, 1, 2]]  # k = 1 fits any axis


def test_weights_on_another_device_name_the_argument():
    """The meta device stands in for a GPU: every device mismatch is a ValueError up front."""
    v, w = torch.zeros(1, 2, 5, 5), torch.zeros(1, 1, 9, 5, 5, device="meta")
    with pytest.raises(ValueError, match="w must be on the device of v \\(cpu\\), got w on meta"):
        local_aggregate(v, w, 3)
    with pytest.raises(ValueError, match="k must be on the device of q \\(cpu\\), got k on meta"):
        local_similarity(v, v.to("meta"), 3)


@pytest.mark.parametrize("backend", ["lean", "dense"])
def test_sums_of_half_precision_run_in_float32(backend):
    """bfloat16 inputs, sums in float32, one rounding at the end: the error is that rounding.
    Summing 25 bfloat16 products in bfloat16 was 3-5 times worse (issue 23)."""
    k = 5
    v = torch.randn(2, 8, 12, 12, generator=torch.Generator().manual_seed(0)).bfloat16()
    w = torch.randn(2, 2, k * k, 12, 12, generator=torch.Generator().manual_seed(1)).bfloat16()
    exact = local_aggregate(v.double(), w.double(), k, backend="reference")
    got = local_aggregate(v, w, k, backend=backend)
    assert got.dtype == torch.bfloat16
    rounding = (exact.bfloat16().double() - exact).abs().max()
    assert (got.double() - exact).abs().max() <= 1.01 * rounding
    q = v.flip(1)
    exact = local_similarity(q.double(), v.double(), k, groups=2, backend="reference")
    got = local_similarity(q, v, k, groups=2, backend=backend)
    inside = exact.isfinite()
    rounding = (exact[inside].bfloat16().double() - exact[inside]).abs().max()
    assert (got.double()[inside] - exact[inside]).abs().max() <= 1.01 * rounding


@pytest.mark.parametrize("backend", ["lean", "dense"])
def test_cpu_autocast_leaves_the_sums_in_float32(backend):
    """Under CPU autocast float32 inputs stay float32 sums: dense's matrix products would run in
    bfloat16 there (an error of ~4e-2 on these sizes) unless the op turns autocast off."""
    v, w = torch.randn(2, 8, 6, 6), torch.randn(2, 2, 9, 6, 6)
    exact = local_aggregate(v.double(), w.double(), 3, backend="reference")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = local_aggregate(v, w, 3, backend=backend)
        logits = local_similarity(v, v, 3, groups=2, backend=backend)
    assert got.dtype == torch.float32 and (got.double() - exact).abs().max() < 1e-5
    expected = local_similarity(v.double(), v.double(), 3, groups=2, backend="reference")
    inside = expected.isfinite()
    assert (logits.double()[inside] - expected[inside]).abs().max() < 1e-5


@pytest.mark.parametrize("backend", EXACT_BACKENDS)
@pytest.mark.parametrize("border", ["zeros", "clamp"])
def test_second_derivatives(backend, border, device="cpu"):
    """gradgradcheck: the backward is itself differentiable and exact (finite differences).
    test_triton.py calls it with device="cuda" on a GPU."""
    v, w = rand(1, 4, 6, 7, grad=True, device=device), rand(1, 2, 9, 6, 7, grad=True, seed=1, device=device)
    assert torch.autograd.gradgradcheck(
        lambda v, w: local_aggregate(v, w, 3, 2, backend, border=border), (v, w),
        eps=1e-6, atol=1e-6, fast_mode=True)
    q, key = rand(1, 4, 6, 7, grad=True, seed=2, device=device), rand(1, 4, 6, 7, grad=True, seed=3, device=device)

    def finite_logits(q, key):
        logits = local_similarity(q, key, 3, 2, groups=2, backend=backend, border=border)
        return logits.masked_fill(logits.isinf(), 0.0)

    assert torch.autograd.gradgradcheck(finite_logits, (q, key), eps=1e-6, atol=1e-6, fast_mode=True)


def func_transforms_agree(backend, border="zeros", device="cpu"):
    """torch.func.grad, vmap and jvp through one backend equal plain autograd through the
    reference (float64, 1e-12). Shared with test_triton.py (device="cuda" on a GPU)."""
    v, w = rand(2, 4, 6, 7, device=device), rand(2, 2, 9, 6, 7, seed=1, device=device)
    q, key = rand(2, 4, 6, 7, seed=2, device=device), rand(2, 4, 6, 7, seed=3, device=device)

    def loss(backend):
        def f(v, w, q, key):
            logits = local_similarity(q, key, 3, groups=2, backend=backend, border=border)
            y = local_aggregate(v, logits.softmax(2) * w, 3, backend=backend, border=border)
            return (y ** 2).sum()
        return f

    expected = torch.autograd.grad(loss("reference")(
        *(t.requires_grad_() for t in (v, w, q, key))), (v, w, q, key))
    got = torch.func.grad(loss(backend), argnums=(0, 1, 2, 3))(
        *(t.detach() for t in (v, w, q, key)))
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=TOL, rtol=0)
    v, w = v.detach(), w.detach()
    # vmap over a batch of weights, one sample each: the same as the batch at once
    one = lambda backend: lambda v, w: local_aggregate(  # noqa: E731
        v[None], w[None], 3, backend=backend, border=border)[0]
    assert torch.allclose(torch.func.vmap(one(backend))(v, w),
                          local_aggregate(v, w, 3, backend="reference", border=border), atol=TOL, rtol=0)
    # vmap over values only, the weights shared: w's batch axis of 1 broadcasts
    assert torch.allclose(torch.func.vmap(one(backend), in_dims=(0, None))(v, w[0]),
                          local_aggregate(v, w[:1], 3, backend="reference", border=border), atol=TOL, rtol=0)
    # per-sample gradients of shared static weights: vmap over grad, the weights' gradient
    # summed over the pixels inside the op (its vmap rule must not sum across samples)
    static = w[:1, :, :, :1, :1].contiguous()

    def sample_loss(backend):
        return lambda v, w: local_aggregate(v[None], w, 3, backend=backend, border=border).square().sum()

    per_sample = torch.func.vmap(torch.func.grad(sample_loss(backend), argnums=1), in_dims=(0, None))(v, static)
    for b in range(v.shape[0]):
        expected = torch.autograd.grad(sample_loss("reference")(v[b], static.requires_grad_()), static)[0]
        assert torch.allclose(per_sample[b], expected, atol=TOL, rtol=0)
    static = static.detach()
    # jvp of a bilinear op: op(dv, w) + op(v, dw)
    dv, dw = rand(*v.shape, seed=4, device=device), rand(*w.shape, seed=5, device=device)
    _, tangent = torch.func.jvp(lambda v, w: local_aggregate(v, w, 3, backend=backend, border=border),
                                (v, w), (dv, dw))
    ref = lambda a, b: local_aggregate(a, b, 3, backend="reference", border=border)  # noqa: E731
    assert torch.allclose(tangent, ref(dv, w) + ref(v, dw), atol=TOL, rtol=0)


@pytest.mark.parametrize("border", ["zeros", "clamp"])
@pytest.mark.parametrize("backend", EXACT_BACKENDS)
def test_torch_func_grad_vmap_jvp(backend, border):
    func_transforms_agree(backend, border)


@pytest.mark.parametrize("backend", EXACT_BACKENDS)
@pytest.mark.parametrize("border", ["zeros", "clamp"])
def test_ops_compile_as_one_graph(backend, border, device="cpu"):
    """torch.compile(fullgraph=True): no graph break, no data-dependent size (the clamp rule's
    size check is an int comparison, not a tensor reduction), and the same numbers."""
    v, w = rand(1, 4, 6, 7, grad=True, device=device), rand(1, 2, 9, 6, 7, grad=True, seed=1, device=device)

    def f(v, w):
        logits = local_similarity(v, v, 3, groups=2, backend=backend, border=border)
        return local_aggregate(v, logits.softmax(2) * w, 3, backend=backend, border=border)

    torch._dynamo.reset()
    explained = torch._dynamo.explain(f)(v, w)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    assert torch.allclose(compiled(v, w), f(v, w), atol=TOL, rtol=0)
    got = torch.autograd.grad(compiled(v, w).sum(), (v, w))
    expected = torch.autograd.grad(f(v, w).sum(), (v, w))
    for a, b in zip(got, expected):
        assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_lean_static_weight_gradient_stays_at_the_weights_size():
    """The weights' gradient is summed offset by offset, never held per pixel: the backward's
    peak stays far below the (B, G, K, H, W) tensor a per-pixel gradient would take."""
    from mixlib.bench import peak_memory_bytes
    v = torch.randn(4, 8, 24, 24, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1, 8, 49, 1, 1, dtype=torch.float64, requires_grad=True)
    per_pixel_bytes = 4 * 8 * 49 * 24 * 24 * 8
    peak = peak_memory_bytes(lambda: local_aggregate(v, w, 7, backend="lean", border="clamp")
                             .sum().backward(), torch.device("cpu"))
    # at least v's gradient is held (a profiler that recorded nothing would read 0)
    assert v.numel() * 8 <= peak < per_pixel_bytes / 4, (peak, per_pixel_bytes)


# ----------------------------------------------------------------------------------------------
# The "conv" backend's own derivatives: static weights, the slow oneDNN backward avoided


@pytest.mark.parametrize("dense_gradient", [True, False])
@pytest.mark.parametrize("batch,groups,dilation", [(1, 4, 1), (1, 2, 2), (B, 4, 1), (B, 1, 3)])
def test_conv_backend_derivatives_are_the_reference(monkeypatch, dense_gradient, batch, groups,
                                                    dilation):
    """The library op's derivatives: input gradient by the flipped kernel, kernel gradient by
    the dense product (a kernel the batch shares, on a small CPU map) or by oneDNN's weight
    gradient; both equal the reference's (float64, 1e-12), and the second derivatives pass
    gradgradcheck."""
    from mixlib.ops import conv, dense, library
    monkeypatch.setattr(conv, "DENSE_GRADIENT_MAX_PIXELS", H * W if dense_gradient else H * W - 1)
    dense_calls, similarity = [], dense.similarity
    monkeypatch.setattr(dense, "similarity", lambda *a: dense_calls.append(1) or similarity(*a))
    v, g = rand(B, C, H, W, grad=True), rand(B, C, H, W, seed=2)
    w = rand(batch, groups, 25, 1, 1, grad=True, seed=1)

    def op(v, w):
        return library.aggregate(v, w, 5, dilation, "zeros", "conv")

    expected = torch.autograd.grad(local_aggregate(v, w, 5, dilation, backend="reference"), (v, w), g)
    got = torch.autograd.grad(op(v, w), (v, w), g)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and torch.allclose(a, b, atol=TOL, rtol=0)
    assert bool(dense_calls) == (dense_gradient and batch == 1)
    # an expanded gradient (that of a sum) is copied to a layout oneDNN runs fast, same numbers
    expanded = torch.autograd.grad(op(v, w).sum(), (v, w))
    for a, b in zip(expanded, torch.autograd.grad(op(v, w), (v, w), torch.ones_like(g))):
        assert torch.allclose(a, b, atol=TOL, rtol=0)
    assert torch.autograd.gradgradcheck(op, (v, w), eps=1e-6, atol=1e-6, fast_mode=True)


def test_conv_backend_takes_its_own_derivatives_where_onednn_is_slow(monkeypatch):
    """local_aggregate(backend="conv") runs the library op (own derivatives) for a shared 7×7
    kernel on a map of at most 64 pixels on the CPU, and F.conv2d with PyTorch's derivatives
    for 5×5 kernels, larger maps and per-image kernels; the values are the same."""
    from mixlib.ops import library
    routed = []
    aggregate_op = library.aggregate
    monkeypatch.setattr(library, "aggregate", lambda *a: routed.append(a[1].shape) or aggregate_op(*a))
    cases = [((1, 8, 8, 8), (1, 8, 49, 1, 1), 7, True), ((1, 8, 8, 9), (1, 8, 49, 1, 1), 7, False),
             ((1, 8, 4, 4), (1, 8, 25, 1, 1), 5, False), ((2, 8, 4, 4), (2, 8, 49, 1, 1), 7, False),
             ((1, 8, 2, 2), (1, 4, 81, 1, 1), 9, True)]
    for v_shape, w_shape, k, own in cases:
        routed.clear()
        v, w = rand(*v_shape), rand(*w_shape, seed=1)
        got = local_aggregate(v, w, k, backend="conv")
        assert bool(routed) == own, (v_shape, w_shape, k)
        assert torch.allclose(got, local_aggregate(v, w, k, backend="reference"), atol=TOL, rtol=0)


def test_conv_backend_refuses_what_it_cannot_compute():
    """Its ops serve static weights only: per-pixel weights and masked logits name the shape."""
    from mixlib.ops import conv
    x = torch.zeros(1, 4, 5, 5)
    with pytest.raises(ValueError, match=r"static weights .* got shape \(1, 2, 9, 5, 5\)"):
        conv.adjoint(x, torch.zeros(1, 2, 9, 5, 5), 3, 1, "zeros")
    with pytest.raises(ValueError, match=r"static output .* got shape \(1, 2, 9, 5, 5\)"):
        conv.similarity(x, x, 3, 1, "zeros", False, [1, 2, 9, 5, 5])
    with pytest.raises(ValueError, match="no masked logits"):
        conv.similarity(x, x, 3, 1, "zeros", True, [1, 2, 9, 1, 1])


def test_conv_backend_works_under_torch_func_and_compiles_as_one_graph():
    """Per-sample gradients of a shared kernel (vmap of grad), a jvp, and torch.compile with
    fullgraph=True: the reference's numbers (float64, 1e-12), no graph break."""
    v, static = rand(B, C, H, W), rand(1, 2, 9, 1, 1, seed=1)

    from mixlib.ops import library

    def sample_loss(backend):
        if backend == "conv":  # the library op itself, whatever local_aggregate would route
            return lambda v, w: library.aggregate(v[None], w, 3, 2, "zeros", "conv").square().sum()
        return lambda v, w: local_aggregate(v[None], w, 3, 2, backend=backend).square().sum()

    per_sample = torch.func.vmap(torch.func.grad(sample_loss("conv"), argnums=1),
                                 in_dims=(0, None))(v, static)
    for b in range(B):
        expected = torch.autograd.grad(sample_loss("reference")(v[b], static.requires_grad_()), static)[0]
        assert torch.allclose(per_sample[b], expected, atol=TOL, rtol=0)
    static = static.detach()
    dv, dw = rand(*v.shape, seed=4), rand(*static.shape, seed=5)
    f = lambda v, w: library.aggregate(v, w, 3, 1, "zeros", "conv")  # noqa: E731
    _, tangent = torch.func.jvp(f, (v, static), (dv, dw))
    ref = lambda a, b: local_aggregate(a, b, 3, backend="reference")  # noqa: E731
    assert torch.allclose(tangent, ref(dv, static) + ref(v, dw), atol=TOL, rtol=0)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(f)(v, static)
    assert explained.graph_break_count == 0, explained.break_reasons
    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    v, static = v.requires_grad_(), static.requires_grad_()
    for a, b in zip(torch.autograd.grad(compiled(v, static).square().sum(), (v, static)),
                    torch.autograd.grad(ref(v, static).square().sum(), (v, static))):
        assert torch.allclose(a, b, atol=TOL, rtol=0)
