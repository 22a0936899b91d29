"""PyTorch: one ``torch.autograd.Function`` per activation that saves only its input.

Forward evaluates the value formula (or torch's own kernel where that kernel meets our accuracy
bound and conventions), backward the derivative formula from the same entry; the backward is
written in differentiable torch operations, so double backward works. ``setup_context`` and
``generate_vmap_rule`` make the functions usable under ``torch.func`` and ``torch.compile``.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F

from ..activation._dispatch import halves
from ..activation._entry import Entry
from ._base import Backend


class TorchOps:
    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log1p = staticmethod(torch.log1p)
    tanh = staticmethod(torch.tanh)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    where = staticmethod(torch.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return c.to(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return torch.finfo(x.dtype).max

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == torch.float64 else 32


O = TorchOps()
_HALF = (torch.float16, torch.bfloat16)


def _work(f: Any, x: Any, *args: Any) -> Any:
    if x.dtype in _HALF:
        return f(O, x.float(), *args).to(x.dtype)
    return f(O, x, *args)


def _scaled(g: Any, d: Any) -> Any:
    """g * d, with d computed in float32 for half precision and rounded once."""
    if g.dtype in _HALF:
        return (g.float() * d).to(g.dtype)
    return g * d


def _dwork(f: Any, x: Any, *args: Any) -> Any:
    return f(O, x.float(), *args) if x.dtype in _HALF else f(O, x, *args)


# Forward kernels of torch's own that are exact (clamps, selections) or within our bound, with
# the derivative convention of ours at the kinks. Backward still runs our derivative formula.
_NATIVE: dict[str, Any] = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "hard_tanh": F.hardtanh,
    "leaky_relu": lambda x, s: F.leaky_relu(x, s),
    "tanh": torch.tanh,
}


@functools.cache
def _function(entry: Entry) -> Any:
    value, deriv = entry.value, entry.deriv
    native = _NATIVE.get(entry.name)

    class Fn(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, *p: Any) -> Any:  # type: ignore[override]
            if native is not None:
                return native(x, *p)
            return _work(value, x, *p)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, *p = inputs
            ctx.p = p
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            (x,) = ctx.saved_tensors
            return (_scaled(g, _dwork(deriv, x, *ctx.p)), *([None] * len(ctx.p)))

        @staticmethod
        def jvp(ctx: Any, tx: Any, *_: Any) -> Any:
            (x,) = ctx.saved_tensors
            return _scaled(tx, _dwork(deriv, x, *ctx.p))

    Fn.__name__ = Fn.__qualname__ = f"kaun_{entry.name}"
    return Fn


def _sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    lead = g.dim() - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=axes, keepdim=True) if axes else g


@functools.cache
def _prelu_function(entry: Entry) -> Any:
    value, deriv = entry.value, entry.deriv

    class Fn(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, alpha: Any) -> Any:  # type: ignore[override]
            return _work(value, x, alpha.float() if x.dtype in _HALF else alpha)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)
            ctx.save_for_forward(*inputs)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            x, alpha = ctx.saved_tensors
            dx, da = _dwork(deriv, x, alpha.float() if x.dtype in _HALF else alpha)
            return _scaled(g, dx), _sum_to(_scaled(g, da), tuple(alpha.shape))

        @staticmethod
        def jvp(ctx: Any, tx: Any, ta: Any) -> Any:
            x, alpha = ctx.saved_tensors
            dx, da = _dwork(deriv, x, alpha.float() if x.dtype in _HALF else alpha)
            out = _scaled(tx, dx)
            return out if ta is None else out + _scaled(ta, da)

    return Fn


@functools.cache
def _glu_function(entry: Entry) -> Any:
    value, deriv = entry.value, entry.deriv

    class Fn(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, ax: int) -> Any:  # type: ignore[override]
            return _work(lambda o, x: value(o, *halves(x, ax)), x)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, ctx.ax = inputs
            ctx.save_for_backward(x)
            ctx.save_for_forward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:  # type: ignore[override]
            (x,) = ctx.saved_tensors
            da, db = _dwork(lambda o, x: deriv(o, *halves(x, ctx.ax)), x)
            return torch.cat([_scaled(g, da), _scaled(g, db)], dim=ctx.ax), None

        @staticmethod
        def jvp(ctx: Any, tx: Any, _: Any) -> Any:
            (x,) = ctx.saved_tensors
            da, db = _dwork(lambda o, x: deriv(o, *halves(x, ctx.ax)), x)
            ta, tb = halves(tx, ctx.ax)
            return _scaled(ta, da) + _scaled(tb, db)

    return Fn


class TorchBackend(Backend):
    name = "torch"
    o = O
    f32 = torch.float32

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if entry.ints and not x.is_floating_point():
            return torch.relu(x)
        return _function(entry).apply(x, *p)

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return _work(entry.deriv, x, *p)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        return _prelu_function(entry).apply(x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        return _glu_function(entry).apply(x, ax)
