"""The fused Triton kernels against the reference backend, values and gradients.

On a machine without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set in
conftest.py before anything imports triton), so CI proves them on the CPU; with a GPU the same
tests run natively. Tolerances: float64 to 1e-12 (float64 accumulation); float32 to 1e-5; float16
and bfloat16 against a float64 reference of the same rounded inputs, to 1e-2 relative to the
output's scale (the kernels accumulate in float32 and round once when they store).

The kernels handle 128 pixels per program: the multi-block tests use odd maps of 3 to 6
blocks, so that the last block is partly outside the map.
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
    expected = m(x)
    q, key, v = m._qkv(x)
    w = (local_similarity(q * m.scale, key, 3, groups=2, backend="triton", border="clamp")
         + m.relative_bias(6, 7, x.device)).softmax(dim=2)
    y = local_aggregate(v, w, 3, backend="triton", border="clamp")
    assert torch.allclose(m.proj(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), expected, atol=1e-12, rtol=0)


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


# 323 pixels: 3 blocks of 128, the last partly outside the map. One image of 4 channels in
# 2 groups keeps the interpreter (one Python step per program and offset) to seconds.
HEIGHT, WIDTH = 17, 19


@pytest.mark.parametrize("border,dilation,k", [("zeros", 1, 3), ("zeros", 2, 5), ("clamp", 1, 5),
                                               ("clamp", 3, 3)])
def test_multi_block_maps_float64(border, dilation, k):
    """Values and both gradients of both ops, per-pixel and static weights, equal reference."""
    groups, height, width = 2, HEIGHT, WIDTH
    v, q = rand(1, 4, height, width), rand(1, 4, height, width, seed=3)
    upstream = rand(1, 4, height, width, seed=2)
    for shape in [(1, groups, k * k, height, width), (1, groups, k * k, 1, 1)]:
        w = rand(*shape, seed=1)
        results = {}
        for backend in ("reference", "triton"):
            results[backend] = grads(lambda v, w: local_aggregate(
                v, w, k, dilation, backend, border=border), (v, w), upstream)
        (y_ref, g_ref), (y, g) = results["reference"], results["triton"]
        assert torch.allclose(y, y_ref, atol=1e-12, rtol=0), shape
        for a, b in zip(g, g_ref):
            assert torch.allclose(a, b, atol=1e-12, rtol=0), shape
    results = {}
    for backend in ("reference", "triton"):
        results[backend] = grads(lambda q, key: local_similarity(
            q, key, k, dilation, groups=groups, backend=backend, border=border).nan_to_num(
            neginf=0.0), (q, v), rand(1, groups, k * k, height, width, seed=4))
    (s_ref, g_ref), (s, g) = results["reference"], results["triton"]
    assert torch.allclose(s, s_ref, atol=1e-12, rtol=0)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("border,dilation", [("zeros", 2), ("clamp", 1)])
def test_multi_block_maps_low_precision(dtype, tol, border, dilation):
    """Each dtype on 3 blocks, forward and backward, against float64 of the same inputs."""
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
