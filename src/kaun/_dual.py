"""Forward-mode differentiation of a formula, over any ops namespace.

``derive(f)`` is the derivative of a one-input formula ``f(o, x, *args)`` (see ``kaun._core.Entry``)
as another formula of the same signature: ``f`` is run on dual numbers ``v + d eps`` whose parts are
arrays of the caller's namespace (NumPy, torch, jax.numpy, or the symbolic nodes of ``kaun._ir``,
so that a derived formula is traced and compiled like a written one). Nesting gives any order.

This is what autodiff of the formula would compute, with the same rules at the edges: a ``where``
differentiates the branch it takes (nothing leaks from the other), ``clip`` passes the derivative
on ``lo <= x <= hi`` (torch's ``clamp``), ``mask`` is a constant; ``abs``'s derivative at 0 is -1
(the x < 0 side; torch and JAX take 0, which loses the third derivative at 0 of a smooth f in |x|).
An entry writes its higher derivatives as formulas where this is not accurate (see
``Entry.deriv2``); elsewhere the derived ones serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _special as sp


def _zero(v: Any) -> bool:
    return isinstance(v, float) and v == 0.0


class Dual:
    """v + d eps; ``d`` is the Python float 0.0 where nothing depends on the input (those terms
    are left out of the arithmetic)."""

    __slots__ = ("v", "d")

    def __init__(self, v: Any, d: Any = 0.0) -> None:
        self.v = v
        self.d = d

    def __bool__(self) -> bool:
        return bool(self.v)  # the value's rule (an array or a traced node refuses)

    # arithmetic -------------------------------------------------------------------------------
    def __add__(self, o: Any) -> Dual:
        o = _lift(o)
        return Dual(self.v + o.v, _add(self.d, o.d))

    __radd__ = __add__

    def __sub__(self, o: Any) -> Dual:
        o = _lift(o)
        return Dual(self.v - o.v, _sub(self.d, o.d))

    def __rsub__(self, o: Any) -> Dual:
        return _lift(o) - self

    def __mul__(self, o: Any) -> Dual:
        o = _lift(o)
        return Dual(self.v * o.v, _add(_mul(self.d, o.v), _mul(self.v, o.d)))

    __rmul__ = __mul__

    def __truediv__(self, o: Any) -> Dual:
        o = _lift(o)
        q = self.v / o.v
        if _zero(o.d):
            return Dual(q, 0.0 if _zero(self.d) else self.d / o.v)
        return Dual(q, _sub(0.0 if _zero(self.d) else self.d / o.v, q * o.d / o.v))

    def __rtruediv__(self, o: Any) -> Dual:
        return _lift(o) / self

    def __neg__(self) -> Dual:
        return Dual(-self.v, 0.0 if _zero(self.d) else -self.d)

    # comparisons: of the values (a boolean array has no derivative) ---------------------------
    def __lt__(self, o: Any) -> Any:
        return self.v < _val(o)

    def __le__(self, o: Any) -> Any:
        return self.v <= _val(o)

    def __gt__(self, o: Any) -> Any:
        return self.v > _val(o)

    def __ge__(self, o: Any) -> Any:
        return self.v >= _val(o)

    __hash__ = object.__hash__


def _lift(a: Any) -> Dual:
    return a if isinstance(a, Dual) else Dual(a)


def _val(a: Any) -> Any:
    return a.v if isinstance(a, Dual) else a


def _add(a: Any, b: Any) -> Any:
    if _zero(a):
        return b
    if _zero(b):
        return a
    return a + b


def _sub(a: Any, b: Any) -> Any:
    if _zero(b):
        return a
    if _zero(a):
        return -b
    return a - b


def _mul(d: Any, v: Any) -> Any:
    return 0.0 if _zero(d) else d * v


class DualOps:
    """The formula vocabulary on :class:`Dual` numbers over the namespace ``o``."""

    def __init__(self, o: Any) -> None:
        self.o = o

    def _chain(self, a: Any, y: Any, dy: Callable[[], Any]) -> Dual:
        a = _lift(a)
        return Dual(y, 0.0 if _zero(a.d) else a.d * dy())

    def exp(self, a: Any) -> Dual:
        y = self.o.exp(_val(a))
        return self._chain(a, y, lambda: y)

    def exp_normal(self, a: Any) -> Dual:
        y = self.o.exp_normal(_val(a))
        return self._chain(a, y, lambda: y)

    def expm1(self, a: Any) -> Dual:
        return self._chain(a, self.o.expm1(_val(a)), lambda: self.o.exp(_val(a)))

    def log1p(self, a: Any) -> Dual:
        return self._chain(a, self.o.log1p(_val(a)), lambda: 1.0 / (1.0 + _val(a)))

    def tanh(self, a: Any) -> Dual:
        # sech^2 as 4 e / (1 + e)^2, e = exp(-2|a|): not 1 - tanh^2, which is 0 in the tails
        def d() -> Any:
            e = self.o.exp(-2.0 * self.o.abs(_val(a)))
            r = 1.0 / (1.0 + e)
            return (4.0 * e) * r * r

        return self._chain(a, self.o.tanh(_val(a)), d)

    def sqrt(self, a: Any) -> Dual:
        y = self.o.sqrt(_val(a))
        return self._chain(a, y, lambda: 0.5 / y)

    def abs(self, a: Any) -> Dual:
        v = _val(a)
        a = _lift(a)
        if _zero(a.d):
            return Dual(self.o.abs(v))
        # at 0 the x < 0 side (the conventions' side for kinks): never 0, which would lose the
        # odd derivatives at 0 of a smooth function written in |x| (sigmoid's third at 0)
        return Dual(self.o.abs(v), self.o.where(v > 0.0, a.d, -a.d))

    def where(self, c: Any, a: Any, b: Any) -> Dual:
        a, b = _lift(a), _lift(b)
        v = self.o.where(c, a.v, b.v)
        if _zero(a.d) and _zero(b.d):
            return Dual(v)
        return Dual(v, self.o.where(c, a.d, b.d))

    def clip(self, x: Any, lo: Any, hi: Any) -> Dual:
        x = _lift(x)
        y = self.o.clip(x.v, lo, hi)
        if _zero(x.d):
            return Dual(y)
        inside = None
        if lo is not None:
            inside = x.v >= lo
        if hi is not None:
            inside = (x.v <= hi) if inside is None else inside & (x.v <= hi)
        if inside is None:
            return Dual(y, x.d)
        return Dual(y, self.o.where(inside, x.d, 0.0 * x.d))

    def mask(self, c: Any, like: Any) -> Dual:
        return Dual(self.o.mask(c, _val(like)))

    def big(self, x: Any) -> float:
        return self.o.big(_val(x))  # type: ignore[no-any-return]

    def prec(self, x: Any) -> int:
        return self.o.prec(_val(x))  # type: ignore[no-any-return]

    def prod_err(self, a: Any, b: Any) -> Dual:
        """a b - fl(a b): its derivative is 0 (the product's derivative is carried by fl(a b))."""
        av, bv = _val(a), _val(b)
        err = getattr(self.o, "prod_err", None)
        if err is not None:
            return Dual(err(av, bv))
        if isinstance(av, float):
            av, bv = bv, av
        if isinstance(bv, float):  # a constant, split as the working dtype holds it
            return Dual(sp.two_prod_const(self.o, av, bv)[1])
        return Dual(sp.two_prod(self.o, av, bv)[1])


def _ones_like(o: Any, x: Any) -> Any:
    """An array of ones like x (of the innermost namespace, for a nested dual): the seed. (An
    array, not the number 1.0, so that a select between two seeds has an array to select in.)"""
    if isinstance(x, Dual):
        return Dual(_ones_like(o.o, x.v))
    return o.where(x < x, x, 1.0)


def derive(f: Callable[..., Any]) -> Callable[..., Any]:
    """The derivative of the one-input formula f, as a formula: ``derive(f)(o, x, *args)``."""

    def df(o: Any, x: Any, *args: Any) -> Any:
        y = f(DualOps(o), Dual(x, _ones_like(o, x)), *args)
        d = y.d if isinstance(y, Dual) else 0.0
        if _zero(d):  # a constant: zeros like x (never 0 * x, which is NaN at +-inf)
            return o.mask(x < x, x)
        return d

    df.__name__ = f"d_{getattr(f, '__name__', 'f')}"
    df.__qualname__ = df.__name__
    return df
