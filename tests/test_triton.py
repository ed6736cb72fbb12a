"""The fused Triton kernels against the reference backend, values and gradients.

On a machine without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set in
conftest.py before anything imports triton), so CI proves them on the CPU; with a GPU the same
tests run natively. Tolerances: float64 to 1e-12 (float64 accumulation); float32 to 1e-5; float16
and bfloat16 against a float64 reference of the same rounded inputs, to 1e-2 relative to the
output's scale (the kernels accumulate in float32 and round once when they store).

A program handles a tile of a group's channels × a block of pixels (``launch_tile``), up to
1024 elements, so the small maps here would fit one block: the multi-block tests shrink the
tile (``small_tiles``) to get odd maps of 3 to 6 blocks, the last partly outside the map.
"""

import pytest
import torch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytest.importorskip("triton")

from mixlib.ops import local_aggregate, local_similarity  # noqa: E402

B, C, H, W = 2, 4, 6, 7


def rand(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed + sum(shape))
    return torch.randn(*shape, dtype=dtype, generator=g).to(DEVICE)


WEIGHT_SHAPES = {
    "per_pixel": lambda G, K: (B, G, K, H, W),
    "batch_shared": lambda G, K: (1, G, K, H, W),
    "static": lambda G, K: (1, G, K, 1, 1),
    "per_sample_static": lambda G, K: (B, G, K, 1, 1),
    "row_shared": lambda G, K: (1, G, K, 1, W),
}


def grads(fn, inputs, upstream):
    inputs = [t.detach().requires_grad_(True) for t in inputs]
    out = fn(*inputs)
    return out, torch.autograd.grad(out, inputs, upstream)


@pytest.mark.parametrize("border", ["zeros", "clamp"])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_aggregate_values_and_gradients_float64(border, dilation, groups):
    k = 3
    # a clamped window with dilation 3 needs k·d = 9 pixels per axis
    h, wd = (9, 10) if border == "clamp" and dilation == 3 else (H, W)
    # every sharing pattern with 2 groups; per-pixel weights for the other group counts
    shapes = WEIGHT_SHAPES if groups == 2 else {"per_pixel": WEIGHT_SHAPES["per_pixel"]}
    for name, shape in shapes.items():
        shape = [{H: h, W: wd}.get(size, size) if axis >= 3 else size
                 for axis, size in enumerate(shape(groups, k * k))]
        v, w = rand(B, C, h, wd), rand(*shape, seed=1)
        upstream = rand(B, C, h, wd, seed=2)
        expected, (gv_ref, gw_ref) = grads(
            lambda v, w: local_aggregate(v, w, k, dilation, "reference", border=border), (v, w), upstream)
        got, (gv, gw) = grads(
            lambda v, w: local_aggregate(v, w, k, dilation, "triton", border=border), (v, w), upstream)
        assert torch.allclose(got, expected, atol=1e-12, rtol=0), name
        assert torch.allclose(gv, gv_ref, atol=1e-12, rtol=0), name
        assert torch.allclose(gw, gw_ref, atol=1e-12, rtol=0), name


@pytest.mark.parametrize("border", ["zeros", "clamp"])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("groups", [1, 2, 4])
def test_similarity_values_and_gradients_float64(border, dilation, groups):
    k = 3
    q, key = rand(B, C, H, W), rand(B, C, H, W, seed=1)
    expected = local_similarity(q, key, k, dilation, groups=groups, backend="reference", border=border)
    got = local_similarity(q, key, k, dilation, groups=groups, backend="triton", border=border)
    assert torch.equal(got.isinf(), expected.isinf())
    inside = ~expected.isinf()
    assert torch.allclose(got[inside], expected[inside], atol=1e-12, rtol=0)
    upstream = rand(*expected.shape, seed=3)
    finite = lambda backend: (lambda q, key: local_similarity(  # noqa: E731
        q, key, k, dilation, groups=groups, backend=backend, border=border).masked_fill(~inside, 0.0))
    _, (gq_ref, gk_ref) = grads(finite("reference"), (q, key), upstream)
    _, (gq, gk) = grads(finite("triton"), (q, key), upstream)
    assert torch.allclose(gq, gq_ref, atol=1e-12, rtol=0)
    assert torch.allclose(gk, gk_ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 1e-2)])
def test_low_precision_accumulates_in_float32(dtype, tol):
    k, groups = 5, 2
    v = rand(B, C, H, W).to(dtype)
    w = rand(B, groups, k * k, H, W, seed=1).to(dtype)
    expected = local_aggregate(v.double(), w.double(), k, backend="reference")
    got = local_aggregate(v, w, k, backend="triton")
    assert got.dtype == dtype
    assert (got.double() - expected).abs().max() <= tol * expected.abs().max()
    q, key = rand(B, C, H, W, seed=2).to(dtype), rand(B, C, H, W, seed=3).to(dtype)
    expected = local_similarity(q.double(), key.double(), k, groups=groups, backend="reference")
    got = local_similarity(q, key, k, groups=groups, backend="triton")
    inside = ~expected.isinf()
    assert (got.double()[inside] - expected[inside]).abs().max() <= tol * expected[inside].abs().max()


def test_neighborhood_attention_runs_on_the_kernels():
    from mixlib import mixers
    m = mixers.build("neighborhood_attention", 8, num_heads=2, kernel_size=3,
                     implementation="aggregate").double().to(DEVICE)
    x = rand(1, 8, 6, 7)
    q, key, v = m._qkv(x)

    def layer(backend):  # the mixer's forward, written out on one backend
        w = (local_similarity(q * m.scale, key, 3, groups=2, backend=backend, border="clamp")
             + m.relative_bias(6, 7, x.device)).softmax(dim=2)
        y = local_aggregate(v, w, 3, backend=backend, border="clamp")
        return m.proj(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, C, H, W) <-> channels last

    expected = layer("reference")  # not m(x): on CUDA, "auto" is the Triton kernels themselves
    assert torch.allclose(layer("triton"), expected, atol=1e-12, rtol=0)
    assert torch.allclose(m(x), expected, atol=1e-12, rtol=0)


@pytest.mark.skipif(DEVICE == "cpu", reason="auto picks the kernels for CUDA tensors only")
def test_auto_picks_triton_on_cuda(monkeypatch):
    from mixlib.ops import triton_kernels
    calls = []
    monkeypatch.setattr(triton_kernels, "aggregate", lambda x, *a: calls.append(1) or x.clone())
    local_aggregate(rand(B, C, H, W), rand(B, 2, 9, H, W), 3)
    assert calls


def test_triton_backend_needs_cuda_or_the_interpreter(monkeypatch):
    if DEVICE == "cuda":
        pytest.skip("CUDA is here")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        local_aggregate(rand(B, C, H, W), rand(B, 2, 9, H, W), 3, backend="triton")


# ----------------------------------------------------------------------------------------------
# Issue 22: the border rule, derivatives of every order, torch.func and torch.compile, and
# maps of several blocks


@pytest.mark.parametrize("k,d,size", [(5, 1, 4), (3, 3, 8), (3, 2, 5)])
def test_clamp_too_small_raises(k, d, size):
    from test_ops import test_clamp_too_small_raises_on_every_op
    test_clamp_too_small_raises_on_every_op("triton", k, d, size)


@pytest.mark.parametrize("border", ["zeros", "clamp"])
def test_second_derivatives(border):
    """The backward is the three ops again: gradgradcheck holds (it read zeros before)."""
    from test_ops import test_second_derivatives
    test_second_derivatives("triton", border, device=DEVICE)


@pytest.mark.parametrize("border", ["zeros", "clamp"])
def test_torch_func_grad_vmap_jvp(border):
    from test_ops import func_transforms_agree
    func_transforms_agree("triton", border, device=DEVICE)


def test_ops_compile_as_one_graph():
    from test_ops import test_ops_compile_as_one_graph
    test_ops_compile_as_one_graph("triton", "clamp", device=DEVICE)


# 323 pixels: with tiles of 128 elements, 2 channels (a group) × 64 pixels, 6 blocks, the last
# partly outside the map. One image of 4 channels in 2 groups keeps the interpreter (one
# Python step per program and offset) to seconds.
HEIGHT, WIDTH = 17, 19


def _against_reference(v, q, weight_shapes, k, groups, border="zeros", dilation=1):
    """Values and both gradients of aggregate (each weight shape) and of similarity, triton
    against reference, float64 to 1e-12."""
    upstream = rand(*v.shape, seed=2)
    for shape in weight_shapes:
        w = rand(*shape, seed=1)
        (y_ref, g_ref), (y, g) = [grads(lambda v, w: local_aggregate(
            v, w, k, dilation, backend, border=border), (v, w), upstream)
            for backend in ("reference", "triton")]
        for a, b in zip((y, *g), (y_ref, *g_ref)):
            assert torch.allclose(a, b, atol=1e-12, rtol=0), shape
    B, _, H, W = v.shape
    (s_ref, g_ref), (s, g) = [grads(lambda q, key: local_similarity(
        q, key, k, dilation, groups=groups, backend=backend, border=border).nan_to_num(
        neginf=0.0), (q, v), rand(B, groups, k * k, H, W, seed=4))
        for backend in ("reference", "triton")]
    for a, b in zip((s, *g), (s_ref, *g_ref)):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of 128 elements instead of 1024: small maps then span several pixel blocks."""
    from mixlib.ops import triton_kernels
    monkeypatch.setattr(triton_kernels, "TILE_ELEMENTS", 128)
    assert triton_kernels.launch_tile(HEIGHT * WIDTH, 2).pixels == 64


@pytest.mark.parametrize("border,dilation,k", [("zeros", 1, 3), ("zeros", 2, 5), ("clamp", 1, 5),
                                               ("clamp", 3, 3)])
def test_multi_block_maps_float64(border, dilation, k, small_tiles):
    """Values and both gradients of both ops, per-pixel and static weights, equal reference."""
    groups = 2
    _against_reference(rand(1, 4, HEIGHT, WIDTH), rand(1, 4, HEIGHT, WIDTH, seed=3),
                       [(1, groups, k * k, HEIGHT, WIDTH), (1, groups, k * k, 1, 1)], k, groups,
                       border, dilation)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("border,dilation", [("zeros", 2), ("clamp", 1)])
def test_multi_block_maps_low_precision(dtype, tol, border, dilation, small_tiles):
    """Each dtype on 6 blocks, forward and backward, against float64 of the same inputs."""
    k, groups, height, width = 3, 2, HEIGHT, WIDTH
    v = rand(1, 4, height, width).to(dtype)
    w = rand(1, groups, k * k, height, width, seed=1).to(dtype)
    upstream = rand(1, 4, height, width, seed=2).to(dtype)
    expected, expected_grads = grads(lambda v, w: local_aggregate(
        v, w, k, dilation, "reference", border=border), (v.double(), w.double()), upstream.double())
    got, got_grads = grads(lambda v, w: local_aggregate(
        v, w, k, dilation, "triton", border=border), (v, w), upstream)
    for a, b in zip((got, *got_grads), (expected, *expected_grads)):
        assert a.dtype == dtype
        assert (a.double() - b).abs().max() <= tol * b.abs().max()


def test_deterministic_mode_gives_identical_bits():
    """Deterministic algorithms on: the backward runs (no error) and repeats bit for bit (the
    kernels have no atomics; test_compile_triton checks their compiled code for any)."""
    v, w = rand(B, C, H, W), rand(1, 2, 9, 1, W, seed=1)
    upstream = rand(B, C, H, W, seed=2)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        runs = [grads(lambda v, w: local_aggregate(v, w, 3, 1, "triton", border="clamp"),
                      (v, w), upstream)[1] for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(before)
    assert all(torch.equal(a, b) for a, b in zip(*runs))


# ----------------------------------------------------------------------------------------------
# Issue 22, item 4: tiles of a group's channels × a block of pixels


def test_launch_tile_fills_small_maps():
    """Pure Python: powers of two, at most TILE_ELEMENTS and 4 per thread, no wider than the
    group or taller than the map; small maps take fewer pixels and more channels."""
    from mixlib.ops.triton_kernels import TILE_ELEMENTS, launch_tile
    for side in range(1, 60):
        for group in (1, 3, 8, 16, 40, 64, 96, 512):
            tile = launch_tile(side * side, group)
            elements = tile.channels * tile.pixels
            assert all(n & (n - 1) == 0 for n in tile)  # powers of two
            assert elements <= TILE_ELEMENTS and elements <= 4 * 32 * tile.num_warps
            assert tile.channels < 2 * group and tile.pixels < 2 * side * side
    # CIFAR's maps with 16-channel heads: every tile holds a whole head, and the pixel block
    # shrinks with the map (4 pixels on 2², not 128 mostly masked off)
    assert [launch_tile(s * s, 16) for s in (16, 8, 4, 2)] == [
        (16, 64, 8), (16, 64, 8), (16, 16, 2), (16, 4, 1)]
    assert launch_tile(56 * 56, 1) == (1, 1024, 8)  # depthwise: pixels only
    assert launch_tile(56 * 56, 64) == (32, 32, 8)  # wide groups: 32 channels of 32 pixels
    assert launch_tile(2 * 2, 96) == (128, 4, 4)  # a tiny map: many channels


def test_group_size_not_a_power_of_two():
    """3 channels per group in a tile of 4: the fourth lane is masked off."""
    from mixlib.ops.triton_kernels import launch_tile
    k, groups, h, w = 3, 2, 5, 6
    assert launch_tile(h * w, 3).channels == 4
    _against_reference(rand(1, 6, h, w), rand(1, 6, h, w, seed=3),
                       [(1, groups, k * k, h, w), (1, groups, k * k, 1, 1)], k, groups, "clamp")


def test_channel_tile_that_does_not_divide_the_group():
    """40 channels in one group: tiles of 32 channels (the second holds 8), two pixel blocks;
    similarity sums the group over two channel tiles."""
    from mixlib.ops.triton_kernels import launch_tile
    k, h, w = 3, 5, 7
    assert launch_tile(h * w, 40)[:2] == (32, 32)
    _against_reference(rand(1, 40, h, w), rand(1, 40, h, w, seed=3),
                       [(1, 1, k * k, h, w), (1, 1, k * k, 1, 1)], k, 1, "zeros", 2)


def test_broadcast_weight_gradient_from_pixel_block_partials(small_tiles, monkeypatch):
    """Static and per-sample static weights: their gradient is summed per pixel block (6
    blocks here) and then over the blocks, never written per pixel; it equals reference and
    repeats bit for bit."""
    from mixlib.ops import triton_kernels
    k, groups = 3, 2
    v, g = rand(2, 4, HEIGHT, WIDTH), rand(2, 4, HEIGHT, WIDTH, seed=2)
    calls = []
    launch = triton_kernels._similarity

    class Spy:  # records the output each launch writes: (B, G, K, blocks), not per pixel
        def __getitem__(self, grid):
            def run(*args, **kwargs):
                calls.append(tuple(args[4].shape))
                return launch[grid](*args, **kwargs)
            return run

    monkeypatch.setattr(triton_kernels, "_similarity", Spy())
    for batch in (1, 2):
        shape = [batch, groups, k * k, 1, 1]
        expected = local_similarity(g, v, k, groups=groups, backend="reference").nan_to_num(
            neginf=0.0).sum_to_size(shape)
        runs = [triton_kernels.similarity(g, v, k, 1, "zeros", False, shape) for _ in range(2)]
        assert calls[-1] == (2, groups, k * k, 6)
        assert torch.allclose(runs[0], expected, atol=1e-12, rtol=0)
        assert torch.equal(runs[0], runs[1])
        # the same path as the weight gradient of local_aggregate
        w = rand(*shape, seed=1)
        _, (gv_ref, gw_ref) = grads(lambda v, w: local_aggregate(v, w, k, 1, "reference"), (v, w), g)
        calls.clear()
        _, (gv, gw) = grads(lambda v, w: local_aggregate(v, w, k, 1, "triton"), (v, w), g)
        assert calls == [(2, groups, k * k, 6)]
        assert torch.allclose(gw, gw_ref, atol=1e-12, rtol=0)
        assert torch.allclose(gv, gv_ref, atol=1e-12, rtol=0)
