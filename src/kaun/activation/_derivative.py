"""Explicit derivatives, for NumPy users (and anyone who wants f'(x) without autodiff)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .._core import ENTRIES, Entry
from ._defs import PRELU_SCALAR
from ._dispatch import backend_of, check_float32_range, prepare
from ._params import axis as check_axis
from ._params import hyper


def _entry_of(fn: Any) -> Entry:
    entry: Entry | None = getattr(fn, "_kaun_entry", None)
    if entry is None or ENTRIES.get(entry.name) is not entry:
        raise TypeError(
            f"kaun.activation.derivative: fn must be one of kaun.activation's functions, got {fn!r}"
        )
    return entry


def derivative(fn: Callable[..., Any], order: int = 1) -> Callable[..., Any]:
    """The derivative of a kaun activation, evaluated by its own formula (no autodiff).

    - Elementwise functions: ``derivative(f)(x, **params)`` is ``f'(x)``, elementwise, with the
      same hyper-parameters as ``f`` and the same conventions at kinks as autodiff gives;
      ``derivative(f, order=2)`` is the second derivative and ``order=3`` the third: the
      formulas that torch's double and triple backward and JAX's nested ``grad``/``jvp`` reach.
    - ``derivative(prelu)(x, alpha, g)`` is the vector-Jacobian product ``(dL/dx, dL/dalpha)`` for
      the cotangent ``g`` (dL/dalpha summed over alpha's broadcast axes; a float for a number alpha).
    - ``derivative(glu)(x, g, axis=-1)`` is the vector-Jacobian product ``dL/dx`` for the
      cotangent ``g`` (shape of ``glu(x)``).

    Works on every backend that the functions take.

    Example:
        >>> dg = A.derivative(A.gelu)
        >>> dg(np.array([0.0]))
        array([0.5])
        >>> A.derivative(A.gelu, order=2)(np.array([0.0]))
        array([0.79788456])
    """
    entry = _entry_of(fn)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 3:
        raise ValueError(f"kaun.activation.derivative: order must be 1, 2 or 3, got {order!r}")
    if order > 1 and entry.kind != "elementwise":
        raise ValueError(
            f"kaun.activation.derivative: order {order} is for the elementwise functions; "
            f"{entry.qualname} has order 1 here (differentiate its gradient with torch or JAX)"
        )
    if entry.kind == "glu":
        return _glu_vjp(entry)
    if entry.kind == "prelu":
        return _prelu_vjp(entry)

    def d(x: Any, /, **params: Any) -> Any:
        unknown = set(params) - {n for n, _ in entry.params}
        if unknown:
            raise TypeError(f"{entry.qualname}: unexpected hyper-parameter(s) {sorted(unknown)}")
        be, x = prepare(entry, x)
        p = hyper(entry, tuple(params.get(n, v) for n, v in entry.params))
        check_float32_range(entry, x, p)
        return be.derivative(entry, x, p, order)

    d.__name__ = f"d{order if order > 1 else ''}_{entry.name}"
    d.__doc__ = f"Derivative of order {order} of {entry.qualname}: see derivative()."
    return d


def _glu_vjp(entry: Entry) -> Callable[..., Any]:
    def vjp(x: Any, g: Any, /, *, axis: int = -1) -> Any:
        be, x = prepare(entry, x)
        ax = check_axis(entry.qualname, axis, len(x.shape))
        if x.shape[ax] % 2:
            raise ValueError(
                f"{entry.qualname}: the size {x.shape[ax]} of axis {axis} does not split into two equal halves"
            )
        da, db = be.glu_deriv(entry, x, ax)
        xp = _namespace(x)
        return xp.concat([g * da, g * db], axis=ax)

    return vjp


def _prelu_vjp(entry: Entry) -> Callable[..., Any]:
    def vjp(x: Any, alpha: Any, g: Any, /) -> Any:
        # a sum in half precision may overflow to inf, which is its value: no NumPy warning
        with np.errstate(over="ignore", invalid="ignore"):
            return _vjp(x, alpha, g)

    def _vjp(x: Any, alpha: Any, g: Any) -> Any:
        be, x = prepare(entry, x)
        if not hasattr(alpha, "shape"):
            p = hyper(PRELU_SCALAR, (alpha,))
            dx = be.derivative(PRELU_SCALAR, x, p)
            xp = _namespace(x)
            return g * dx, float(xp.sum(xp.where(x < 0, x * g, 0 * g)))
        if backend_of(entry.qualname, alpha, "alpha") is not be:
            raise TypeError(f"{entry.qualname}: alpha must be an array of the same library as x")
        dx, da = be.prelu_deriv(entry, x, alpha)
        ga = g * da
        lead = len(ga.shape) - len(alpha.shape)
        xp = _namespace(x)
        if lead:
            ga = xp.sum(ga, axis=tuple(range(lead)))
        axes = tuple(i for i, n in enumerate(alpha.shape) if n == 1 and ga.shape[i] != 1)
        if axes:
            ga = xp.sum(ga, axis=axes, keepdims=True)
        return g * dx, ga

    return vjp


_namespace = array_namespace
