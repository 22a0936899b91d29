"""JAX: a ``jax.custom_jvp`` per activation whose rule is the derivative formula of the same
entry, jitted and cached per hyper-parameters. Works eagerly and under jit, grad, vmap, to any
order (the rule itself is differentiated by JAX)."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from .._core import Entry
from ._base import Backend


class JaxOps:
    exp = staticmethod(jnp.exp)
    expm1 = staticmethod(jnp.expm1)
    log1p = staticmethod(jnp.log1p)

    @staticmethod
    def tanh(x: Any) -> Any:
        # XLA's float64 tanh is 6.5 ulp off near |x| = 19; from expm1 it is within 2.5.
        if x.dtype != jnp.float64:
            return jnp.tanh(x)
        t = jnp.expm1(-2.0 * jnp.abs(x))
        return jnp.copysign(-t / (2.0 + t), x)
    sqrt = staticmethod(jnp.sqrt)
    abs = staticmethod(jnp.abs)
    where = staticmethod(jnp.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return jnp.clip(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return c.astype(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return float(jnp.finfo(x.dtype).max)  # type: ignore[no-untyped-call]

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == jnp.float64 else 32


O = JaxOps()  # noqa: E741
_HALF = (jnp.float16, jnp.bfloat16)


def _args(entry: Entry, x: Any, p: tuple[float, ...]) -> tuple[Any, ...]:
    return entry.prep(p, 64 if x.dtype == jnp.float64 else 32)


def _work(f: Any, x: Any, *args: Any) -> Any:
    if x.dtype in _HALF:
        return f(O, x.astype(jnp.float32), *args).astype(x.dtype)
    return f(O, x, *args)


def _scaled(t: Any, d: Any) -> Any:
    if t.dtype in _HALF:
        return (t.astype(jnp.float32) * d).astype(t.dtype)
    return t * d


def _dwork(f: Any, x: Any, *args: Any) -> Any:
    return f(O, x.astype(jnp.float32), *args) if x.dtype in _HALF else f(O, x, *args)


@functools.cache
def _elementwise(entry: Entry, p: tuple[float, ...]) -> Any:
    value, deriv = entry.value, entry.deriv

    @jax.custom_jvp
    def f(x: Any) -> Any:
        return _work(value, x, *_args(entry, x, p))

    @f.defjvp
    def f_jvp(primals: Any, tangents: Any) -> Any:
        (x,), (t,) = primals, tangents
        return f(x), _scaled(t, _dwork(deriv, x, *_args(entry, x, p)))

    return jax.jit(f)


@functools.cache
def _derivative(entry: Entry, p: tuple[float, ...]) -> Any:
    return jax.jit(lambda x: _work(entry.deriv, x, *_args(entry, x, p)))


@functools.cache
def _prelu(entry: Entry) -> Any:
    # where(x > 0, x, alpha * x) differentiates to the conventions (alpha at 0) by itself.
    return jax.jit(lambda x, a: _work(entry.value, x, a.astype(jnp.float32) if x.dtype in _HALF else a))


@functools.cache
def _glu(entry: Entry, ax: int) -> Any:
    @jax.custom_jvp
    def f(a: Any, b: Any) -> Any:
        if a.dtype in _HALF:  # computed in float32 and rounded once (sigmoid(-20) is 0 in half)
            return entry.value(O, a.astype(jnp.float32), b.astype(jnp.float32)).astype(a.dtype)
        return entry.value(O, a, b)

    @f.defjvp
    def f_jvp(primals: Any, tangents: Any) -> Any:
        (a, b), (ta, tb) = primals, tangents
        da, db = _dwork(entry.deriv, a, b.astype(jnp.float32) if a.dtype in _HALF else b)
        return f(a, b), _scaled(ta, da) + _scaled(tb, db)

    def g(x: Any) -> Any:
        # split, not two slices: the transpose of a slice is a pad, and XLA on CPU runs the
        # backward's pad + add 30x slower than split's transpose, one concatenate
        return f(*jnp.split(x, 2, axis=ax))

    return jax.jit(g)


class JaxBackend(Backend):
    name = "jax"
    o = O
    f32 = jnp.float32

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return _elementwise(entry, p)(x)

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return _derivative(entry, p)(x)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        return _prelu(entry)(x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        return _glu(entry, ax)(x)
