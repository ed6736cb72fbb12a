"""torch.compile sees every registered mixer as one graph: no graph break, in the forward
(``torch._dynamo.explain``) or in the compiled backward, and the compiled mixer gives the same
numbers. The ops run as library ops (``mixlib.ops.library``), and the clamped border's size
check is an int comparison, not a tensor reduction read back on the host.
"""
import pytest
import torch

from mixlib import mixers

DIM = 32
KWARGS = {"relative_attention": dict(size=(13, 17))}
CASES = [(name, {}) for name in mixers.available()] + [
    # on the CPU "auto" picks "dense" for small maps: the library ops path on its own too
    ("neighborhood_attention", dict(implementation="aggregate")),
    ("neighborhood_attention", dict(implementation="tiled")),
]


@pytest.mark.parametrize("name,extra", CASES, ids=[f"{n}-{'-'.join(e.values())}" if e else n
                                                   for n, e in CASES])
def test_mixer_compiles_as_one_graph(name, extra):
    torch.manual_seed(0)
    mixer = mixers.build(name, DIM, **{**KWARGS.get(name, {}), **extra}).double()
    x = torch.randn(2, DIM, 13, 17, dtype=torch.float64, requires_grad=True)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(mixer)(x)
    assert explained.graph_break_count == 0, [r.reason for r in explained.break_reasons]
    compiled = torch.compile(mixer, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    assert torch.allclose(y, mixer(x), atol=1e-12, rtol=0)
    (got,) = torch.autograd.grad(y.square().sum(), x)
    (expected,) = torch.autograd.grad(mixer(x).square().sum(), x)
    assert torch.allclose(got, expected, atol=1e-10, rtol=0)


def test_neighborhood_attention_compiles_as_one_graph_when_the_map_size_changes():
    """A second map size makes torch.compile's sizes symbolic; "auto" then keeps to forms
    without per-map constants (the tiles are constants of one map), still one graph."""
    torch._dynamo.reset()
    mixer = mixers.build("neighborhood_attention", 16, num_heads=2).double()
    compiled = torch.compile(mixer, fullgraph=True, backend="eager")
    for height, width in ((13, 17), (15, 19), (20, 21)):
        x = torch.randn(2, 16, height, width, dtype=torch.float64)
        assert torch.allclose(compiled(x), mixer(x), atol=1e-12, rtol=0), (height, width)
