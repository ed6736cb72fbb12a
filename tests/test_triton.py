"""The fused Triton kernels against the reference backend, values and gradients.

On a machine without a GPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set in
conftest.py before anything imports triton), so CI proves them on the CPU; with a GPU the same
tests run natively. Tolerances: float64 to 1e-12 (float64 accumulation); float32 to 1e-5; float16
and bfloat16 against a float64 reference of the same rounded inputs, to 1e-2 relative to the
output's scale (the kernels accumulate in float32 and round once when they store).
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
    monkeypatch.setattr(triton_kernels.TritonAggregate, "apply",
                        lambda *a: calls.append(1) or a[0])
    local_aggregate(rand(B, C, H, W), rand(B, 2, 9, H, W), 3)
    assert calls


def test_triton_backend_needs_cuda_or_the_interpreter(monkeypatch):
    if DEVICE == "cuda":
        pytest.skip("CUDA is here")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        local_aggregate(rand(B, C, H, W), rand(B, 2, 9, H, W), 3, backend="triton")
