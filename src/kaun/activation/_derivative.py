"""Explicit derivatives, for NumPy users (and anyone who wants f'(x) without autodiff)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from .._core import ENTRIES, EXTRAS, Entry
from ._defs import PRELU_SCALAR
from ._dispatch import backend_of, check_float32_range, check_pair, prepare
from ._params import axis as check_axis
from ._params import hyper


def _entry_of(fn: Any) -> tuple[Entry, dict[str, Any]]:
    """The entry of fn and the hyper-parameters it binds: fn is one of kaun.activation's
    functions, or one configured by ``A.get(name, **params)`` (a ``functools.partial`` that
    binds hyper-parameters by keyword)."""
    bound: dict[str, Any] = {}
    inner = fn
    if isinstance(fn, functools.partial) and not fn.args:
        inner, bound = fn.func, dict(fn.keywords)
    entry: Entry | None = getattr(inner, "_kaun_entry", None)
    if entry is None or (ENTRIES.get(entry.name) or EXTRAS.get(entry.name)) is not entry:
        raise TypeError(
            "kaun.activation.derivative: fn must be one of kaun.activation's functions (or "
            f"A.get(name, **hyper-parameters)), got {fn!r}"
        )
    allowed = entry.keywords
    bad = set(bound) - allowed
    if bad:
        raise TypeError(
            f"kaun.activation.derivative: fn binds {sorted(bad)}, which {entry.qualname} does "
            f"not take (it takes {sorted(allowed) or 'no hyper-parameters'})"
        )
    return entry, bound


def derivative(fn: Callable[..., Any], order: int = 1) -> Callable[..., Any]:
    """The derivative of a kaun activation, evaluated by its own formula (no autodiff).

    - Elementwise functions: ``derivative(f)(x, **params)`` is ``f'(x)``, elementwise, with the
      same hyper-parameters as ``f`` and the same conventions at kinks as autodiff gives;
      ``derivative(f, order=2)`` is the second derivative and ``order=3`` the third: the
      formulas that torch's double and triple backward and JAX's nested ``grad``/``jvp`` reach.
    - ``derivative(prelu)(x, alpha, g)`` is the vector-Jacobian product ``(dL/dx, dL/dalpha)`` for
      the cotangent ``g`` (dL/dalpha summed over alpha's broadcast axes; a float for a number alpha).
    - ``derivative(glu)(x, g, axis=-1)`` is the vector-Jacobian product ``dL/dx`` for the
      cotangent ``g`` (shape of ``glu(x)``); the same for the gated family (swiglu, geglu,
      geglu_approx, reglu), whose two-array form has ``derivative(swiglu)(g, gate=, up=)``, the
      pair ``(dL/dgate, dL/dup)``.

    ``fn`` may be a function configured by ``A.get(name, **params)``: its hyper-parameters
    (prelu's alpha, glu's axis) are the defaults of the derivative, as if passed to each call
    (``derivative(A.get("elu", alpha=0.5))(x)`` is ``derivative(A.elu)(x, alpha=0.5)``; prelu's
    vjp is then ``(x, g)``).

    Works on every backend that the functions take.

    Example:
        >>> dg = A.derivative(A.gelu)
        >>> dg(np.array([0.0]))
        array([0.5])
        >>> A.derivative(A.gelu, order=2)(np.array([0.0]))
        array([0.79788456])
    """
    entry, bound = _entry_of(fn)
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= 3:
        raise ValueError(f"kaun.activation.derivative: order must be 1, 2 or 3, got {order!r}")
    if order > 1 and entry.kind != "elementwise":
        raise ValueError(
            f"kaun.activation.derivative: order {order} is for the elementwise functions; "
            f"{entry.qualname} has order 1 here (differentiate its gradient with torch or JAX)"
        )
    if entry.kind == "glu":
        return _glu_vjp(entry, bound.get("axis", -1))
    if entry.kind == "prelu":
        return _prelu_vjp(entry, bound)

    def d(x: Any, /, **params: Any) -> Any:
        params = {**bound, **params} if bound else params
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


def _glu_vjp(entry: Entry, default_axis: Any) -> Callable[..., Any]:
    def split(x: Any, g: Any, axis: Any) -> Any:
        be, x = prepare(entry, x)
        ax = check_axis(entry.qualname, axis, len(x.shape))
        if x.shape[ax] % 2:
            raise ValueError(
                f"{entry.qualname}: the size {x.shape[ax]} of axis {axis} does not split into two equal halves"
            )
        da, db = be.glu_deriv(entry, x, ax)
        xp = _namespace(x)
        return xp.concat([g * da, g * db], axis=ax)

    if not entry.extra:  # glu: the spec's signature, the split form only
        def vjp(x: Any, g: Any, /, *, axis: Any = default_axis) -> Any:
            return split(x, g, axis)

        return vjp

    def vjp_gated(*args: Any, axis: Any = default_axis, gate: Any = None, up: Any = None) -> Any:
        q = entry.qualname
        if gate is None and up is None:
            if len(args) != 2:
                raise TypeError(f"{q}: the derivative takes (x, g) or (g, gate=, up=)")
            return split(args[0], args[1], axis)
        if gate is None or up is None or len(args) != 1:
            raise TypeError(f"{q}: the derivative of the two-array form takes (g, gate=, up=)")
        be, u, gt = check_pair(entry, gate, up)
        g = args[0]
        with np.errstate(all="ignore"):
            d_up, d_gate = be.formula(entry, "deriv", (u, gt), ())
        return g * d_gate, g * d_up

    vjp_gated.__doc__ = (f"The vjp of {entry.qualname}: (x, g, axis=-1) -> dL/dx, or (g, gate=, up=) "
                         "-> (dL/dgate, dL/dup).")
    return vjp_gated


def _prelu_vjp(entry: Entry, bound: dict[str, Any]) -> Callable[..., Any]:
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

    if "alpha" in bound:  # A.get("prelu", alpha=...): the vjp of x and g
        alpha = bound["alpha"]

        def vjp_bound(x: Any, g: Any, /) -> Any:
            return vjp(x, alpha, g)

        return vjp_bound
    return vjp


_namespace = array_namespace
