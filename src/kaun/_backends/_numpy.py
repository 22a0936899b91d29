"""NumPy: the formulas on NumPy's ufuncs, with floating-point warnings silenced (the formulas
produce inf or NaN only in branches that ``where`` discards).

Beside the shared formulas, two tables of NumPy-specific forward evaluations (values only; the
derivatives keep the shared formulas), each run block by block into preallocated scratch arrays
with ``out=`` (no fresh temporaries, every block in cache):

* ``_WIDE``: float32 input computed by the textbook formula in float64 and rounded once to
  float32. A float32 value is exact in float64, and every formula there is a short chain of
  operations with no cancelling subtraction and no float64 overflow or underflow where the
  float32 result is finite and nonzero, so the float64 result carries a relative error of a few
  units of 2^-53 (2^-29 of a float32 ulp), and the one rounding to float32 is within 0.5 ulp
  plus that: correctly rounded except in rare near-ties, subnormal results included. This is
  as accurate as the compensated float32 formulas or better (their 2-4 ulp become 0.5), in far
  fewer passes. gelu's Phi is Hart's double-precision rational (3e-9 relative at worst) and a
  continued fraction past 7.07; see ``_w_gelu``. float64 input keeps the shared formulas (it
  cannot go wider), and half precision too (computed in float32 and rounded once, as everywhere).
* ``_SAME``: the shared formula's own operations, in the same order, written without ``where``
  (a data-dependent select costs NumPy 5-7 ns an element, ten times an add): bitwise the shared
  formula in float32 and float64, signed zeros included. Each kernel says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..activation._defs import _SELU_L_DOWN, _SELU_LA, _hs_bounds
from ..activation._entry import Entry
from ..activation._params import dtype_name
from ._base import HALF, Backend


class NumpyOps:
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log1p = staticmethod(np.log1p)
    tanh = staticmethod(np.tanh)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    where = staticmethod(np.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return np.asarray(c).astype(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return float(np.finfo(x.dtype).max)

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == np.float64 else 32


# Large arrays are evaluated in blocks of this many elements: a formula's temporaries then stay
# in the CPU's cache (128 KiB each in float32) instead of each making a pass through memory, and
# the same few blocks are recycled by the allocator. The result is bitwise the same.
# Formulas of one or two operations gain nothing from blocks (they cost one more copy).
CHUNK = 1 << 15
_LIGHT = frozenset({"relu", "tanh", "relu6", "hard_tanh", "leaky_relu", "prelu", "elu", "selu",
                    "celu", "hard_sigmoid", "sparse_sigmoid"})

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_BIG32 = float(np.finfo(np.float32).max)
_INF = float("inf")


def _same_kind(x: Any, y: Any) -> Any:
    """A NumPy scalar for a NumPy scalar, an ndarray for an ndarray (ufuncs turn 0-d arrays into
    scalars)."""
    if isinstance(y, tuple):
        return tuple(_same_kind(x, v) for v in y)
    if isinstance(x, np.generic):
        return y[()] if isinstance(y, np.ndarray) else y
    return y if isinstance(y, np.ndarray) else np.asarray(y)


# -- kernels -------------------------------------------------------------------------------------
# A kernel k(s, o, b, *p) reads the contiguous 1-d block s, writes the result into o (the same
# length, x's dtype) and uses the scratch arrays b (float64 for _WIDE, x's dtype for _SAME).
# It never writes into s (the caller's input).

Kernel = Callable[..., None]


def _w_sigmoid(s: Any, o: Any, b: list[Any]) -> None:
    """1 / (1 + exp(-x)): exp(-x) overflows float64 only past x = -709, where 1/inf = 0 is the
    float32 result (the true value is below 1e-308)."""
    (e,) = b
    np.negative(s, out=e)
    np.exp(e, out=e)
    np.add(e, 1.0, out=e)
    np.divide(1.0, e, out=o)


def _w_silu(s: Any, o: Any, b: list[Any]) -> None:
    """x / (1 + exp(-x)), x = -inf taken as the most negative float32 (the limit -0, not
    -inf/inf)."""
    a, e = b
    np.copyto(a, s)
    np.clip(a, -_BIG32, _INF, out=a)
    np.negative(a, out=e)
    np.exp(e, out=e)
    np.add(e, 1.0, out=e)
    np.divide(a, e, out=o)


def _w_mish(s: Any, o: Any, b: list[Any]) -> None:
    """x tanh(softplus(x)) = x / (1 + 2/n), n = e (e + 2) = (1 + e)^2 - 1, e = exp(x): products
    and quotients of positive numbers only (no cancellation in either tail: x < 0 gives about
    x e). e = inf (x > 709) gives n = inf and x / 1; e = 0 gives 2/0 = inf and x / inf = -0."""
    a, e, t = b
    np.copyto(a, s)
    np.clip(a, -_BIG32, _INF, out=a)  # -inf: the limit -0, not -inf/inf
    np.exp(a, out=e)
    np.add(e, 2.0, out=t)
    np.multiply(e, t, out=e)
    np.divide(2.0, e, out=e)
    np.add(e, 1.0, out=e)
    np.divide(a, e, out=o)


_GA_K = 0.044715
_GA_C2 = 1.5957691216057308  # 2 sqrt(2/pi)


def _w_gelu_approx(s: Any, o: Any, b: list[Any]) -> None:
    """x sigmoid(v), v = 2 sqrt(2/pi) (x + 0.044715 x^3) = 2 sqrt(2/pi) x (1 + 0.044715 x^2), as
    x / (1 + exp(-v)); v's relative error (a few 2^-53) is multiplied by |v| <= 112 in exp where
    the float32 result is nonzero: below 2^-45 relative. x below -100 is clipped (the result
    is -0 from x = -11 on; -inf would give -inf/inf)."""
    a, v = b
    np.copyto(a, s)
    np.clip(a, -100.0, _INF, out=a)
    np.multiply(a, a, out=v)
    np.multiply(v, _GA_K, out=v)
    np.add(v, 1.0, out=v)
    np.multiply(v, a, out=v)
    np.multiply(v, -_GA_C2, out=v)
    np.exp(v, out=v)
    np.add(v, 1.0, out=v)
    np.divide(a, v, out=o)


def _w_squareplus(s: Any, o: Any, b: list[Any], bp: float) -> None:
    """(x + sqrt(x^2 + b)) / 2 = max(x, 0) + (b/2) / (|x| + sqrt(x^2 + b)) (both sides of 0: the
    identity r^2 - x^2 = b), sums of positive numbers only; x^2 of a float32 is exact in float64
    and cannot overflow there. max(x, 0) is clip(x, -0.0, inf): -0 for x <= 0, which adds
    nothing."""
    a, r, t = b
    np.copyto(a, s)
    np.abs(a, out=t)
    np.multiply(t, t, out=r)
    np.add(r, bp, out=r)
    np.sqrt(r, out=r)
    np.add(r, t, out=r)
    np.divide(0.5 * bp, r, out=r)
    np.clip(a, -0.0, _INF, out=a)
    np.add(a, r, out=o)


# Hart (1968), algorithm 5666, as published by G. West, "Better approximations to cumulative
# normal functions" (2009): Phi(-z) = exp(-z^2/2) P(z) / Q(z) for 0 <= z < 7.07 (relative error
# 1.5e-14 below z = 3, 4.5e-11 below 5, 2.9e-9 below 7.07, against mpmath), and a continued
# fraction exp(-z^2/2) / (z + 1/(z + 2/(z + 3/(z + 4/(z + 0.65))))) / sqrt(2 pi) from 7.07 on
# (8.9e-9 below 10, 3.2e-9 to 15). 3e-9 to 9e-9 is 0.05 to 0.15 of a float32 ulp.
_HP = (3.52624965998911e-02, 0.700383064443688, 6.37396220353165, 33.912866078383,
       112.079291497871, 221.213596169931, 220.206867912376)
_HQ = (8.83883476483184e-02, 1.75566716318264, 16.064177579207, 86.7807322029461,
       296.564248779674, 637.333633378831, 793.826512519948, 440.413735824752)
_HART_SPLIT = 7.07106781186547
_INV_SQRT_2PI = 0.3989422804014327


def _horner(z: Any, c: tuple[float, ...], y: Any) -> None:
    np.multiply(z, c[0], out=y)
    np.add(y, c[1], out=y)
    for v in c[2:]:
        np.multiply(y, z, out=y)
        np.add(y, v, out=y)


def _w_gelu(s: Any, o: Any, b: list[Any]) -> None:
    """x Phi(x) = max(x, 0) - |x| Phi(-|x|) (x < 0: -0 - |x| Phi(x) = x Phi(x); x >= 0:
    x - x Phi(-x), Phi(-x) <= 1/2, no cancellation). z = |x| is clipped to 40 (Phi(-40) is 0 in
    float64 and float32 alike), z^2 is exact. Both approximations of Phi(-z) are evaluated (no
    data-dependent select) and blended, p + w (q - p) with w = 0 or 1: exact either way (q - p
    is exact by Sterbenz where w = 1, both are finite everywhere)."""
    a, z, e, p, q = b
    np.copyto(a, s)
    np.abs(a, out=z)
    np.clip(z, 0.0, 40.0, out=z)
    np.multiply(z, z, out=e)
    np.multiply(e, -0.5, out=e)
    np.exp(e, out=e)
    _horner(z, _HP, p)
    _horner(z, _HQ, q)
    np.multiply(p, e, out=p)
    np.divide(p, q, out=p)
    np.add(z, 0.65, out=q)
    for k in (4.0, 3.0, 2.0, 1.0):
        np.divide(k, q, out=q)
        np.add(q, z, out=q)
    np.divide(e, q, out=q)
    np.multiply(q, _INV_SQRT_2PI, out=q)
    np.subtract(q, p, out=q)
    np.greater_equal(z, _HART_SPLIT, out=e)  # 1.0 or 0.0
    np.multiply(q, e, out=q)
    np.add(p, q, out=p)  # Phi(-z)
    np.multiply(p, z, out=p)
    np.clip(a, -0.0, _INF, out=a)
    np.subtract(a, p, out=o)


def _w_glu(a: Any, c: Any, o: Any, e: Any) -> None:
    """a / (1 + exp(-b)), as sigmoid (a = +-inf meets 1/inf only where a * sigmoid(b) is
    itself inf * 0)."""
    np.negative(c, out=e)
    np.exp(e, out=e)
    np.add(e, 1.0, out=e)
    np.divide(a, e, out=o)


def _s_elu_like(s: Any, o: Any, b: list[Any], alpha: float, div: bool) -> None:
    """where(x > 0, x, alpha expm1(min(x, 0) [/ alpha])) as alpha expm1(...) + clip(x, -0.0, inf),
    alpha > 0: for x > 0 the first term is alpha * expm1(0) = +0 and x + 0 = x; for x < 0 and
    x = -0 the second is -0, which adds nothing (signed zeros kept); x = +0 gives +0 both ways.
    min(x, 0) is np.minimum, bitwise the formula's clip(x, None, 0) (+0 at x = -0 in both)."""
    (t,) = b
    np.minimum(s, 0.0, out=t)  # the formula's clip(x, None, 0): +0 at x = -0, as minimum gives
    if div:
        np.divide(t, alpha, out=t)
    np.expm1(t, out=t)
    np.multiply(t, alpha, out=t)
    np.clip(s, -0.0, _INF, out=o)
    np.add(o, t, out=o)


def _s_elu(s: Any, o: Any, b: list[Any], alpha: float) -> None:
    _s_elu_like(s, o, b, alpha, False)


def _s_celu(s: Any, o: Any, b: list[Any], alpha: float) -> None:
    """celu for alpha a positive power of two (x / alpha exact: the shared formula has no
    correction term then), as _s_elu_like."""
    _s_elu_like(s, o, b, alpha, True)


def _s_selu(s: Any, o: Any, b: list[Any]) -> None:
    """where(x > 0, lam x, la expm1(min(x, 0))) as la expm1(min(x, 0)) + lam clip(x, -0.0, inf),
    as _s_elu_like (lam * -0 = -0)."""
    (t,) = b
    np.minimum(s, 0.0, out=t)
    np.expm1(t, out=t)
    np.multiply(t, _SELU_LA, out=t)
    np.clip(s, -0.0, _INF, out=o)
    np.multiply(o, _SELU_L_DOWN[64 if s.dtype == _F64 else 32], out=o)
    np.add(o, t, out=o)


def _s_leaky(s: Any, o: Any, b: list[Any], slope: Any) -> None:
    """where(x > 0, x, slope x) for slope != 0 as max(x, slope x) (slope <= 1) or min(x, slope x)
    (slope > 1): the rounded slope x is on the right side of x for x > 0 and x < 0 (rounding is
    monotone), and on a tie (x = +-0, or slope x == x) NumPy returns the second operand,
    slope x, which is the formula's value (bitwise, signed zeros included; NaN propagates)."""
    (t,) = b
    np.multiply(s, slope, out=t)
    (np.maximum if slope <= 1.0 else np.minimum)(s, t, out=o)


def _s_hard_sigmoid(s: Any, o: Any, b: list[Any], shift: float, alpha: float) -> None:
    """clip((x + beta/alpha) alpha, 0, 1), the formula's operations in place."""
    np.add(s, shift, out=o)
    np.multiply(o, alpha, out=o)
    np.clip(o, 0.0, 1.0, out=o)


def _s_sparse_sigmoid(s: Any, o: Any, b: list[Any]) -> None:
    np.clip(s, -1.0, 1.0, out=o)
    np.multiply(o, 0.5, out=o)
    np.add(o, 0.5, out=o)


def _s_log1p_exp(s: Any, t: Any) -> None:
    np.abs(s, out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)


def _s_softplus(s: Any, o: Any, b: list[Any]) -> None:
    """clip(x, 0, None) + log1p(exp(-|x|)) in place (clip(x, 0, inf) is the same clip)."""
    (t,) = b
    _s_log1p_exp(s, t)
    np.clip(s, 0.0, _INF, out=o)
    np.add(o, t, out=o)


def _s_log_sigmoid(s: Any, o: Any, b: list[Any]) -> None:
    (t,) = b
    _s_log1p_exp(s, t)
    np.clip(s, -_INF, 0.0, out=o)
    np.subtract(o, t, out=o)


def _pow2(a: float) -> bool:
    return a > 0.0 and math.frexp(a)[0] == 0.5


def _slope_ok(v: float) -> bool:
    return v != 0.0 and math.isfinite(v)


# name -> (kernel, scratch arrays, the kernel's parameters from the entry's or None to decline)
_WIDE: dict[str, tuple[Kernel, int, Callable[[tuple[Any, ...]], tuple[Any, ...] | None]]] = {
    "sigmoid": (_w_sigmoid, 1, lambda p: ()),
    "silu": (_w_silu, 2, lambda p: ()),
    "mish": (_w_mish, 3, lambda p: ()),
    "gelu": (_w_gelu, 5, lambda p: ()),
    "gelu_approx": (_w_gelu_approx, 2, lambda p: ()),
    "squareplus": (_w_squareplus, 3, lambda p: (float(p[0]),) if p[0] > 0.0 else None),
}
_SAME: dict[str, tuple[Kernel, int, Callable[[tuple[Any, ...]], tuple[Any, ...] | None]]] = {
    "elu": (_s_elu, 1, lambda p: (p[0],) if p[0] > 0.0 else None),
    "celu": (_s_celu, 1, lambda p: (p[0],) if _pow2(p[0]) else None),
    "selu": (_s_selu, 1, lambda p: ()),
    "leaky_relu": (_s_leaky, 1, lambda p: (p[0],) if _slope_ok(p[0]) else None),
    "prelu": (_s_leaky, 1, lambda p: (p[0],) if _slope_ok(p[0]) else None),  # a Python alpha
    "hard_sigmoid": (_s_hard_sigmoid, 0, lambda p: (
        None if p[0] == 0.0 or (hb := _hs_bounds(p[0], p[1])) is None else (hb[0], p[0]))),
    "sparse_sigmoid": (_s_sparse_sigmoid, 0, lambda p: ()),
    "softplus": (_s_softplus, 1, lambda p: ()),
    "log_sigmoid": (_s_log_sigmoid, 1, lambda p: ()),
}


def _run(k: Kernel, nbuf: int, bdt: Any, x: Any, p: tuple[Any, ...]) -> Any:
    """k over x (any shape, any strides) block by block, into a fresh array of x's dtype."""
    x = np.asarray(x)  # a subclass (np.matrix keeps 2-D under reshape): its plain array
    flat = (x if x.flags.c_contiguous else np.ascontiguousarray(x)).reshape(-1)
    n = flat.size
    out = np.empty(n, dtype=x.dtype)
    m = min(n, CHUNK)
    bufs = [np.empty(m, dtype=bdt) for _ in range(nbuf)]
    for i in range(0, n, CHUNK):
        j = min(i + CHUNK, n)
        k(flat[i:j], out[i:j], bufs if j - i == m else [v[: j - i] for v in bufs], *p)
    return out.reshape(np.shape(x))


class NumpyBackend(Backend):
    name = "numpy"
    o = NumpyOps()
    f32 = np.float32

    def work(self, f: Any, x: Any, *args: Any) -> Any:
        with np.errstate(all="ignore"):
            return _same_kind(x, super().work(f, x, *args))

    def _override(self, name: str, x: Any, p: tuple[Any, ...]) -> Any:
        """The _WIDE or _SAME evaluation of entry name at x, or None where neither applies."""
        dt = x.dtype
        if dt == _F32 and name in _WIDE:
            k, nbuf, args = _WIDE[name]
            bdt = _F64
        elif (dt == _F32 or dt == _F64) and name in _SAME:
            k, nbuf, args = _SAME[name]
            bdt = dt
        else:
            return None
        a = args(p)
        if a is None:
            return None
        with np.errstate(all="ignore"):
            return _same_kind(x, _run(k, nbuf, bdt, x, a))

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        y = self._override(entry.name, x, p)
        if y is not None:
            return y
        if x.size >= 2 * CHUNK and x.flags.c_contiguous and entry.name not in _LIGHT:
            with np.errstate(all="ignore"):
                return self._blocks(entry.value, x, p)
        return self.work(entry.value, x, *p)

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if x.size >= 2 * CHUNK and x.flags.c_contiguous:
            with np.errstate(all="ignore"):
                return self._blocks(entry.deriv, x, p)
        return self.work(entry.deriv, x, *p)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        """An alpha of one element (any shape that broadcasts): leaky_relu's kernel with alpha as
        a scalar of x's dtype (the formula's alpha * x, bitwise)."""
        if alpha.size == 1 and (x.dtype == _F32 or x.dtype == _F64):
            a = alpha.reshape(())[()]
            if _slope_ok(float(a)):
                with np.errstate(all="ignore"):
                    return _same_kind(x, _run(_s_leaky, 1, x.dtype, x, (a,)))
        return super().prelu(entry, x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        """float32: a / (1 + exp(-b)) in float64, rounded once (see _WIDE), over blocks of the
        two halves, viewed as (rows, 2, length) of the C-contiguous input."""
        if x.dtype != _F32 or type(x) is not np.ndarray:  # a subclass: the shared formula
            return super().glu(entry, x, ax)
        xc = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        shape = xc.shape
        n = shape[ax] // 2
        rows = math.prod(shape[:ax])
        length = n * math.prod(shape[ax + 1 :])
        v = xc.reshape(rows, 2, length)
        out = np.empty((rows, length), dtype=_F32)
        cols = max(1, min(length, CHUNK))  # 1 for an empty half: no block runs
        step = max(1, CHUNK // cols)
        buf = np.empty(min(rows, step) * cols, dtype=_F64)
        with np.errstate(all="ignore"):
            for i in range(0, rows, step):
                i2 = min(i + step, rows)
                for j in range(0, length, cols):
                    j2 = min(j + cols, length)
                    e = buf[: (i2 - i) * (j2 - j)].reshape(i2 - i, j2 - j)
                    _w_glu(v[i:i2, 0, j:j2], v[i:i2, 1, j:j2], out[i:i2, j:j2], e)
        return out.reshape(shape[:ax] + (n,) + shape[ax + 1 :])

    def _blocks(self, f: Any, x: Any, args: tuple[Any, ...]) -> Any:
        flat = x.reshape(-1)
        half = dtype_name(x.dtype) in HALF
        out: Any = None
        for i in range(0, flat.size, CHUNK):
            c = flat[i : i + CHUNK]
            y = f(self.o, c.astype(np.float32) if half else c, *args)
            if out is None:  # the formula's result dtype (float32 for a half derivative)
                dt = x.dtype if half else np.result_type(y)
                out = np.empty(flat.size, dtype=dt)
            out[i : i + CHUNK] = y
        return out.reshape(x.shape)


class PythonBackend(NumpyBackend):
    """Python numbers and nested lists, turned into NumPy arrays first."""

    converts = True

    def convert(self, entry: Entry, x: Any) -> Any:
        try:
            a = np.asarray(x)
        except ValueError as e:  # a ragged nested list
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got a ragged nested list"
            ) from e
        if a.dtype.kind in "iu" and not entry.ints:
            a = a.astype(np.float64)
        elif a.dtype.kind not in "biufc":
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got {type(x).__name__} that NumPy reads as {a.dtype}"
            )
        return a
