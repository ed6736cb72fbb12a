"""The three bilinear ops as PyTorch library ops, with their derivatives, for the "lean",
"dense", "conv" and "triton" backends.

    aggregate(x, w)    y[c, i] = Σ_o w[g, o, i] · x[c, n(i, o)]
    adjoint(x, w)      y[c, j] = Σ_{(i, o): n(i, o) = j} w[g, o, i] · x[c, i]
    similarity(q, k)   s[g, o, i] = Σ_{c in g} q[c, i] · k[c, n(i, o)]

similarity takes the shape of its output, (B or 1, G, K, H or 1, W or 1): a size-1 axis is
summed over, which is how a broadcast weight's gradient comes out at the weight's own size
(lean never holds the per-pixel gradient), and a broadcast output is a broadcast weight again
for the other two ops.

The three are closed under differentiation, which is what makes every derivative exact:

    d aggregate:  dx = adjoint(gy, w)     dw = similarity(gy, x)
    d adjoint:    dx = aggregate(gy, w)   dw = similarity(x, gy)
    d similarity: dq = aggregate(k, gs)   dk = adjoint(q, gs)

(dw at w's shape). So the backward of each op is the ops
themselves, differentiable again: second derivatives (``gradgradcheck``) hold on every backend.

Layers, each doing one job:
- ``torch.library.custom_op`` ``mixlib::aggregate`` / ``adjoint`` / ``similarity``: opaque to
  ``torch.compile`` (one node in the graph, a fake implementation gives output shapes), with a
  vmap rule that folds the mapped axis into the batch. They carry no autograd of their own.
- ``torch.autograd.Function``s with ``setup_context``, ``jvp`` and the derivatives above, so that
  ``torch.func.grad``, ``vmap``, ``jvp`` and double backward work, and Dynamo traces them into
  one graph (forward and backward).
"""
from __future__ import annotations

import torch
from torch.library import custom_op

from .geometry import neighbour_mask

BACKENDS = ("lean", "dense", "conv", "triton")


def _backend(name: str):
    """The module that implements the ops: lean, dense or conv (PyTorch), or the Triton kernels
    (imported on first use, so that TRITON_INTERPRET can be set before)."""
    if name == "conv":
        from . import conv
        return conv
    if name == "triton":
        from . import triton_kernels
        return triton_kernels
    if name == "dense":
        from . import dense
        return dense
    from . import lean
    return lean


# ----------------------------------------------------------------------------------------------
# The library ops


@custom_op("mixlib::aggregate", mutates_args=())
def _aggregate_op(x: torch.Tensor, w: torch.Tensor, kernel_size: int, dilation: int, border: str,
                  backend: str) -> torch.Tensor:
    return _backend(backend).aggregate(x, w, kernel_size, dilation, border)


@custom_op("mixlib::adjoint", mutates_args=())
def _adjoint_op(x: torch.Tensor, w: torch.Tensor, kernel_size: int, dilation: int, border: str,
                backend: str) -> torch.Tensor:
    return _backend(backend).adjoint(x, w, kernel_size, dilation, border)


@custom_op("mixlib::similarity", mutates_args=())
def _similarity_op(q: torch.Tensor, k: torch.Tensor, kernel_size: int, dilation: int, border: str,
                   masked: bool, backend: str, shape: list[int]) -> torch.Tensor:
    return _backend(backend).similarity(q, k, kernel_size, dilation, border, masked, shape)


@_aggregate_op.register_fake
def _(x, w, kernel_size, dilation, border, backend):
    return x.new_empty(x.shape)


@_adjoint_op.register_fake
def _(x, w, kernel_size, dilation, border, backend):
    return x.new_empty(x.shape)


@_similarity_op.register_fake
def _(q, k, kernel_size, dilation, border, masked, backend, shape):
    return q.new_empty(shape)


def _fold_batch(batch_size: int, in_dims, tensors):
    """Merge the vmapped axis N into each tensor's own batch axis B: (N·B, ...).

    An unmapped tensor with a size-1 batch axis stays as it is (it broadcasts over N·B); any
    other is expanded to (N, B, ...) first."""
    moved = [t.unsqueeze(0).expand(batch_size, *t.shape) if d is None else t.movedim(d, 0)
             for t, d in zip(tensors, in_dims)]
    B = max(m.shape[1] for m in moved)
    return B, [t if d is None and t.shape[0] == 1 else
               m.expand(batch_size, B, *m.shape[2:]).reshape(batch_size * B, *m.shape[2:])
               for t, d, m in zip(tensors, in_dims, moved)]


def _vmap_rule(op):
    def rule(info, in_dims, a, b, *window):
        B, (a, b) = _fold_batch(info.batch_size, in_dims[:2], (a, b))
        return op(a, b, *window).unflatten(0, (info.batch_size, B)), 0
    return rule


for _op in (_aggregate_op, _adjoint_op):
    _op.register_vmap(_vmap_rule(_op))


@_similarity_op.register_vmap
def _(info, in_dims, q, k, kernel_size, dilation, border, masked, backend, shape):
    N = info.batch_size
    B, (q, k) = _fold_batch(N, in_dims[:2], (q, k))
    out = _similarity_op(q, k, kernel_size, dilation, border, masked, backend, [N * B, *shape[1:]])
    out = out.unflatten(0, (N, B))  # the batch is summed over per mapped sample, not across
    return (out.sum(1, keepdim=True) if shape[0] == 1 and B > 1 else out), 0


# ----------------------------------------------------------------------------------------------
# Autograd: each op's derivatives are the ops again


def _bilinear_jvp(function, a, b, da, db, *window):
    """The tangent of a bilinear op: op(da, b) + op(a, db), a missing tangent being zero."""
    terms = [_apply(function, da, b, *window) if da is not None else None,
             _apply(function, a, db, *window) if db is not None else None]
    terms = [t for t in terms if t is not None]
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]


def _apply(function, *args):
    """function.apply, or its twin with a forward-mode derivative (``torch.func.jvp``) outside
    torch.compile: Dynamo cannot trace a Function that defines jvp (a graph break)."""
    if not torch.compiler.is_compiling():
        function = _WITH_JVP[function]
    a, b, *window = args
    if a is b:  # similarity(x, x): Dynamo breaks the graph on one tensor passed twice
        b = b.view_as(b)
    return function.apply(a, b, *window)


class _Bilinear(torch.autograd.Function):
    """Shared bookkeeping: two tensor inputs, then the window's settings."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output):
        a, b, *window = inputs
        ctx.save_for_backward(a, b)
        ctx.save_for_forward(a, b)
        ctx.window = tuple(window)


def _weighted_backward(ctx, grad_y, grad_x_function, similarity_order):
    """Aggregate's and Adjoint's backward: grad_x by the other op of the two, grad_w by a
    similarity of grad_y and x (in the order `similarity_order` gives) at w's shape."""
    x, w = ctx.saved_tensors
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = _apply(grad_x_function, grad_y, w, *ctx.window)
    if ctx.needs_input_grad[1]:
        kernel_size, dilation, border, backend = ctx.window
        grad_w = _apply(Similarity, *similarity_order(grad_y, x), kernel_size, dilation, border,
                        False, backend, list(w.shape))
    return grad_x, grad_w, None, None, None, None


def _weighted_function(name: str, op: str, similarity_order):
    """Aggregate or Adjoint: torch.ops.mixlib.<op> forward, `_weighted_backward` backward; each
    is the other's derivative in x. (The op is looked up by name: Dynamo cannot trace a call to
    the CustomOpDef object held in a closure.)"""
    def forward(x, w, kernel_size, dilation, border, backend):
        return getattr(torch.ops.mixlib, op)(x, w, kernel_size, dilation, border, backend)

    def backward(ctx, grad_y):
        return _weighted_backward(ctx, grad_y, _X_DERIVATIVE[name], similarity_order)

    return type(name, (_Bilinear,), {"forward": staticmethod(forward),
                                     "backward": staticmethod(backward)})


Aggregate = _weighted_function("Aggregate", "aggregate", lambda grad_y, x: (grad_y, x))
Adjoint = _weighted_function("Adjoint", "adjoint", lambda grad_y, x: (x, grad_y))
_X_DERIVATIVE = {"Aggregate": Adjoint, "Adjoint": Aggregate}


class Similarity(_Bilinear):
    @staticmethod
    def forward(q, k, kernel_size, dilation, border, masked, backend, shape):
        return torch.ops.mixlib.similarity(q, k, kernel_size, dilation, border, masked, backend,
                                           shape)

    @staticmethod
    def backward(ctx, grad_logits):
        q, k = ctx.saved_tensors
        kernel_size, dilation, border, masked, backend, shape = ctx.window
        if masked and border == "zeros":  # the -inf logits are constants: no gradient
            H, W = q.shape[-2:]
            grad_logits = grad_logits.masked_fill(
                ~neighbour_mask(H, W, kernel_size, dilation, q.device), 0.0)
        window = (kernel_size, dilation, border, backend)
        grad_q = _apply(Aggregate, k, grad_logits, *window) if ctx.needs_input_grad[0] else None
        grad_k = _apply(Adjoint, q, grad_logits, *window) if ctx.needs_input_grad[1] else None
        # a broadcast output's gradient is a broadcast weight for aggregate and adjoint
        return grad_q, grad_k, None, None, None, None, None, None


def _with_bilinear_jvp(function):
    """function's twin with jvp = op(dx, w) + op(x, dw)."""
    def jvp(ctx, dx, dw, *_):
        return _bilinear_jvp(function, *ctx.saved_tensors, dx, dw, *ctx.window)
    return type(f"{function.__name__}Jvp", (function,), {"jvp": staticmethod(jvp)})


class _SimilarityJvp(Similarity):
    @staticmethod
    def jvp(ctx, dq, dk, *_):
        q, k = ctx.saved_tensors
        kernel_size, dilation, border, masked, backend, shape = ctx.window
        # the tangent of a masked logit is zero: the unmasked op gives zeros there
        return _bilinear_jvp(Similarity, q, k, dq, dk, kernel_size, dilation, border, False,
                             backend, shape)


_WITH_JVP = {Aggregate: _with_bilinear_jvp(Aggregate), Adjoint: _with_bilinear_jvp(Adjoint),
             Similarity: _SimilarityJvp}


def aggregate(x, w, kernel_size: int, dilation: int, border: str, backend: str) -> torch.Tensor:
    return _apply(Aggregate, x, w, kernel_size, dilation, border, backend)


def similarity(q, k, kernel_size: int, dilation: int, groups: int, border: str,
               backend: str) -> torch.Tensor:
    """(B, G, K, H, W) logits; with border="zeros", -inf where a neighbour lies outside the
    image (with "clamp" every neighbour lies inside)."""
    B, _, H, W = q.shape
    return _apply(Similarity, q, k, kernel_size, dilation, border, True, backend,
                  [B, groups, kernel_size ** 2, H, W])
