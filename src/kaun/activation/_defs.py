"""THE math of kaun.activation: one entry per function, value and derivative side by side.

Each formula is written over a small vocabulary ``o`` (``exp``, ``expm1``, ``log1p``, ``tanh``,
``sqrt``, ``abs``, ``where``, ``clip``, ``mask``, ``big``, ``prec``) that every backend spells for
its own arrays, and runs in the working dtype: float16 and bfloat16 are computed in float32 and
rounded once. The forms are chosen to be stable over the whole finite range: no overflowing
intermediate whose result is finite, no cancelling tail, NaN in gives NaN out, +-inf gives the
limit. Derivatives follow the conventions at breakpoints (the outer piece: the x < 0 side at 0
for the relu family, the saturated side at a clamp's bound).

The sections follow the spec: standard, exponential, smooth, gating, sparse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any, TypeVar

from .. import _special as sp
from .._core import ALL, ENTRIES, EXTRAS, Entry
from ._dispatch import apply, apply_gated, apply_glu, apply_prelu

ArrayT = TypeVar("ArrayT")
Array = Any
# the arithmetic of the constants below, at 50 digits, in a context of its own (setting the
# thread's context would change the precision of the importing program's Decimals)
_D50 = Context(prec=50)

F = TypeVar("F", bound=Callable[..., Any])


def _register(entry: Entry) -> Callable[[F], F]:
    """Record a public function as the face of its entry (and the entry on the function)."""

    def deco(fn: F) -> F:
        entry.fn = fn
        fn._kaun_entry = entry  # type: ignore[attr-defined]
        (EXTRAS if entry.extra else ENTRIES)[entry.name] = ALL[entry.key] = entry
        return fn

    return deco


# -- shared pieces ------------------------------------------------------------------------------


def _nabs(o: Any, x: Array) -> tuple[Array, Array]:
    """(x >= 0, -|x|), with -|x| differentiating to the side that ``x >= 0`` picks (abs'(0) is 0
    in torch, which would lose the second derivative at 0)."""
    pos = x >= 0.0
    return pos, o.where(pos, -x, x)


def _sig(o: Any, x: Array) -> tuple[Array, Array]:
    """(sigmoid(x), sigmoid(-x)) from t = exp(-|x|), with no cancelling tail on either side."""
    pos, na = _nabs(o, x)
    t = o.exp(na)
    r = 1.0 / (1.0 + t)
    tr = t * r
    return o.where(pos, r, tr), o.where(pos, tr, r)


def _lo(o: Any, x: Array) -> Array:
    """x with -inf replaced by the most negative finite value, so x * f(x) -> -0 there."""
    return o.clip(x, -o.big(x), None)


def _fin(o: Any, x: Array) -> Array:
    """x with +-inf replaced by the largest finite values (NaN stays NaN)."""
    b = o.big(x)
    return o.clip(x, -b, b)


# -- the sigmoid's derivatives, for the higher orders of every function built on it --------------
# With t = exp(-|x|) and r = 1 / (1 + t), the sigmoid's derivatives s1, s2, s3 are
#   s1 = t r^2,  s2 = -sign(x) t (1 - t) r^3,  s3 = t r^4 (t^2 - 4t + 1) = t r^4 (t - t0)(t - t1),
# t0 = 2 - sqrt(3) = exp(-X0), t1 = 2 + sqrt(3). 1 - t is -expm1(-|x|) (exact as |x| -> 0, where
# s2 ~ -x/8) and t - t0 is t0 expm1(X0 - |x|) (exact next to the zeros of s3 at +-X0), so each
# keeps its relative precision everywhere. Each comes divided by sc (t = ts sc, ts normal; see
# sp.exp_neg): multiplying by x and then by sc keeps x s2 precise where t is subnormal and x t is not.
_SQRT3 = _D50.sqrt(Decimal(3))
_X0 = _D50.ln(_D50.add(Decimal(2), _SQRT3))
_T0, _T1 = float(_D50.subtract(Decimal(2), _SQRT3)), float(_D50.add(Decimal(2), _SQRT3))
_X0_SPLIT = {p: (h, float(_D50.subtract(_X0, Decimal(h)))) for p, h in (
    (32, sp.round_const(float(_X0), 32)[0]), (64, float(_X0)))}


def _sig_parts(o: Any, x: Array) -> tuple[Array, Array, Array, Array, Array, Array]:
    """(pos, na, ts, sc, t, r): x >= 0, -|x|, t = exp(-|x|) = ts sc (ts normal), r = 1 / (1 + t)."""
    pos, na = _nabs(o, x)
    ts, sc = sp.exp_neg(o, -na)
    t = ts * sc
    return pos, na, ts, sc, t, 1.0 / (1.0 + t)


def _sig_derivs(o: Any, x: Array, k: float = 1.0) -> tuple[Array, Array, Array, Array]:
    """(k s1 / sc, k s2 / sc, k s3 / sc, sc) at x (see above); the factor k enters first (k s2 is
    normal next to x = 0 where s2 is not, and XLA flushes a subnormal intermediate)."""
    pos, na, ts, sc, t, r = _sig_parts(o, x)
    d1 = ((k * ts) if k != 1.0 else ts) * r * r
    u = (d1 * -o.expm1(na)) * r
    x0h, x0l = _X0_SPLIT[o.prec(x)]
    d3 = (d1 * r * r) * ((_T0 * o.expm1((x0h + na) + x0l)) * (t - _T1))
    return d1, o.where(pos, -u, u), d3, sc


# ================================ Standard activations ========================================


def _relu(o: Any, x: Array) -> Array:
    return o.clip(x, 0, None)


def _d_relu(o: Any, x: Array) -> Array:
    return o.mask(x > 0.0, x)


_RELU = Entry("relu", "standard", "max(x, 0)", _relu, _d_relu, ints=True)


@_register(_RELU)
def relu(x: ArrayT, /) -> ArrayT:
    """Rectified linear unit: ``max(x, 0)``.

    Takes every real numeric dtype (signed and unsigned integers too); NaN stays NaN.

    Derivative: 1 for x > 0, else 0 (0 at the kink, as torch).

    Example:
        >>> A.relu(np.array([-2.0, 0.0, 3.0]))
        array([0., 0., 3.])
    """
    return apply(_RELU, x, ())


def _sigmoid(o: Any, x: Array) -> Array:
    return _sig(o, x)[0]


def _d_sigmoid(o: Any, x: Array) -> Array:
    # sigmoid(x) sigmoid(-x) = t / (1 + t)^2 with t = exp(-|x|), the same on both sides
    t = o.exp(-o.abs(x))
    r = 1.0 / (1.0 + t)
    return (t * r) * r


def _d2_sigmoid(o: Any, x: Array) -> Array:
    _, d2, _, sc = _sig_derivs(o, x)
    return d2 * sc


def _d3_sigmoid(o: Any, x: Array) -> Array:
    _, _, d3, sc = _sig_derivs(o, x)
    return d3 * sc


_SIGMOID = Entry("sigmoid", "standard", "1 / (1 + exp(-x))", _sigmoid, _d_sigmoid, smooth=True,
                 deriv2=_d2_sigmoid, deriv3=_d3_sigmoid)


@_register(_SIGMOID)
def sigmoid(x: ArrayT, /) -> ArrayT:
    """Logistic sigmoid: ``1 / (1 + exp(-x))``.

    Evaluated as ``exp(x) / (1 + exp(x))`` for x < 0, so the negative tail keeps full relative
    precision down to the smallest subnormal.

    Derivative: ``sigmoid(x) * sigmoid(-x)`` (never ``s * (1 - s)``, which is 0 once s rounds to 1).

    Example:
        >>> A.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """
    return apply(_SIGMOID, x, ())


def _tanh(o: Any, x: Array) -> Array:
    return o.tanh(x)


def _d_tanh(o: Any, x: Array) -> Array:
    ts, sc = sp.exp_neg(o, 2.0 * o.abs(x))
    r = 1.0 / (1.0 + ts * sc)
    return ((4.0 * ts) * r * r) * sc


def _d2_tanh(o: Any, x: Array) -> Array:
    # tanh(x) = 2 sigmoid(2x) - 1, the factor 8 (16) entering first (see _sig_derivs)
    _, d2, _, sc = _sig_derivs(o, 2.0 * x, 8.0)
    return d2 * sc


def _d3_tanh(o: Any, x: Array) -> Array:
    _, _, d3, sc = _sig_derivs(o, 2.0 * x, 16.0)
    return d3 * sc


_TANH = Entry("tanh", "standard", "tanh(x)", _tanh, _d_tanh, smooth=True, deriv2=_d2_tanh,
              deriv3=_d3_tanh)


@_register(_TANH)
def tanh(x: ArrayT, /) -> ArrayT:
    """Hyperbolic tangent: ``tanh(x)``.

    Derivative: ``4 e / (1 + e)^2`` with ``e = exp(-2|x|)``, exact in the tails where
    ``1 - tanh(x)^2`` rounds to 0.

    Example:
        >>> A.tanh(np.array([0.0, 1.0]))
        array([0.        , 0.76159416])
    """
    return apply(_TANH, x, ())


def _relu6(o: Any, x: Array) -> Array:
    return o.clip(x, 0.0, 6.0)


def _d_relu6(o: Any, x: Array) -> Array:
    return o.mask((x > 0.0) & (x < 6.0), x)


_RELU6 = Entry("relu6", "standard", "min(max(x, 0), 6)", _relu6, _d_relu6)


@_register(_RELU6)
def relu6(x: ArrayT, /) -> ArrayT:
    """ReLU capped at 6: ``min(max(x, 0), 6)``.

    Derivative: 1 on (0, 6), else 0 (0 at both kinks, as torch).

    Example:
        >>> A.relu6(np.array([-1.0, 3.0, 9.0]))
        array([0., 3., 6.])
    """
    return apply(_RELU6, x, ())


def _prep_slope(p: tuple[float, ...], prec: int) -> tuple[bool, float]:
    """(whether the slope is 0, the slope): a slope of 0 is relu, where 0 * -inf must give 0."""
    return p[0] == 0.0, p[0]


def _leaky_relu(o: Any, x: Array, zero: bool, negative_slope: float) -> Array:
    if zero:
        return o.where(x > 0.0, x, 0.0 * _fin(o, x))
    return o.where(x > 0.0, x, negative_slope * x)


def _d_leaky_relu(o: Any, x: Array, zero: bool, negative_slope: float) -> Array:
    m = o.mask(x > 0.0, x)
    return m + negative_slope * (1.0 - m)


_LEAKY_RELU = Entry(
    "leaky_relu", "standard", "x if x >= 0 else negative_slope * x", _leaky_relu, _d_leaky_relu,
    params=(("negative_slope", 0.01),), prep=_prep_slope, forms=((0.0,),),
)


@_register(_LEAKY_RELU)
def leaky_relu(x: ArrayT, /, *, negative_slope: float = 0.01) -> ArrayT:
    """Leaky ReLU: ``x`` for x >= 0, ``negative_slope * x`` otherwise.

    Equals the spec's ``max(x, negative_slope * x)`` for 0 <= negative_slope <= 1.

    Args:
        negative_slope: slope for x < 0 (default 0.01), any finite real.

    Derivative: 1 for x > 0, ``negative_slope`` for x <= 0 (the x < 0 side at 0, as torch).

    Example:
        >>> A.leaky_relu(np.array([-2.0, 3.0]), negative_slope=0.5)
        array([-1.,  3.])
    """
    return apply(_LEAKY_RELU, x, (negative_slope,))


def _hard_tanh(o: Any, x: Array) -> Array:
    return o.clip(x, -1.0, 1.0)


def _d_hard_tanh(o: Any, x: Array) -> Array:
    return o.mask((x > -1.0) & (x < 1.0), x)


_HARD_TANH = Entry("hard_tanh", "standard", "max(-1, min(1, x))", _hard_tanh, _d_hard_tanh)


@_register(_HARD_TANH)
def hard_tanh(x: ArrayT, /) -> ArrayT:
    """Hard tanh: ``max(-1, min(1, x))``.

    Derivative: 1 on (-1, 1), else 0 (0 at +-1, as torch).

    Example:
        >>> A.hard_tanh(np.array([-3.0, 0.5, 3.0]))
        array([-1. ,  0.5,  1. ])
    """
    return apply(_HARD_TANH, x, ())


def _hs_bounds(alpha: float, beta: float) -> tuple[float, float, float] | None:
    """(shift, lo, hi): alpha x + beta = (x + shift) alpha, zero at lo and one at hi (sorted)."""
    if alpha == 0.0:
        return None
    shift, top = beta / alpha, (1.0 - beta) / alpha
    if not (math.isfinite(shift) and math.isfinite(top)):
        return None
    return shift, min(-shift, top), max(-shift, top)


def _prep_hard_sigmoid(p: tuple[float, ...], prec: int) -> tuple[Any, ...]:
    """(form, alpha, b, lo, hi): form "shift" computes (x + b) alpha with b = beta/alpha, 0 at lo
    and 1 at hi; "affine" x alpha + beta (b = beta), where beta/alpha overflows; "const" beta
    (alpha = 0)."""
    alpha, beta = p
    hb = _hs_bounds(alpha, beta)
    if hb is None:
        return ("const" if alpha == 0.0 else "affine"), alpha, beta, 0.0, 0.0
    return "shift", alpha, *hb


def _hard_sigmoid(o: Any, x: Array, form: str, alpha: float, b: float, lo: float, hi: float) -> Array:
    # (x + beta/alpha) alpha: x + 3 is exact near -3, so the result keeps its relative precision
    # where it approaches 0 (x alpha + beta cancels there)
    if form == "const":  # also at +-inf
        return o.clip(0.0 * _fin(o, x) + b, 0.0, 1.0)
    u = x * alpha + b if form == "affine" else (x + b) * alpha
    return o.clip(u, 0.0, 1.0)


def _d_hard_sigmoid(o: Any, x: Array, form: str, alpha: float, b: float, lo: float, hi: float) -> Array:
    if form != "shift":
        u = x * alpha + b
        return alpha * o.mask((u > 0.0) & (u < 1.0), x)
    # decided on x itself, so that the slope is not lost to the rounding of u next to a bound
    return alpha * o.mask((x > lo) & (x < hi), x)


_HARD_SIGMOID = Entry(
    "hard_sigmoid", "standard", "min(1, max(0, alpha * x + beta))", _hard_sigmoid, _d_hard_sigmoid,
    params=(("alpha", 1.0 / 6.0), ("beta", 0.5)), prep=_prep_hard_sigmoid,
    forms=((0.0, 0.5), (5e-324, 0.5)),
)


@_register(_HARD_SIGMOID)
def hard_sigmoid(x: ArrayT, /, *, alpha: float = 1.0 / 6.0, beta: float = 0.5) -> ArrayT:
    """Hard sigmoid: ``min(1, max(0, alpha * x + beta))``.

    Args:
        alpha: slope (default 1/6).
        beta: offset (default 0.5).

    Derivative: ``alpha`` where 0 < alpha x + beta < 1, else 0 (0 at both bounds, as torch).

    Example:
        >>> A.hard_sigmoid(np.array([-3.0, 0.0, 3.0]))
        array([0. , 0.5, 1. ])
    """
    return apply(_HARD_SIGMOID, x, (alpha, beta))


def _prelu(o: Any, x: Array, alpha: Array) -> Array:
    return o.where(x > 0.0, x, alpha * x)


def _d_prelu(o: Any, x: Array, alpha: Array) -> tuple[Array, Array]:
    """(d/dx, d/dalpha), before alpha's broadcast axes are summed."""
    m = o.mask(x > 0.0, x)
    return m + alpha * (1.0 - m), o.where(x < 0.0, x, 0.0)


_PRELU = Entry(
    "prelu", "standard", "max(0, x) + alpha * min(0, x)", _prelu, _d_prelu, kind="prelu"
)


@_register(_PRELU)
def prelu(x: ArrayT, /, alpha: Any) -> ArrayT:
    """Parametric ReLU: ``max(0, x) + alpha * min(0, x)``.

    Args:
        alpha: a Python number, or an array of the same library and dtype as ``x`` that
            broadcasts to ``x.shape`` (a learnable parameter; the result has ``x.shape``).

    Derivative: 1 for x > 0, ``alpha`` for x <= 0 (as torch); with respect to alpha,
    ``min(0, x)``, summed over alpha's broadcast axes.

    Example:
        >>> A.prelu(np.array([-2.0, 3.0]), 0.25)
        array([-0.5,  3. ])
    """
    return apply_prelu(_PRELU, x, alpha)


# ================================ Exponential family ==========================================


def _elu(o: Any, x: Array, alpha: float) -> Array:
    return o.where(x > 0.0, x, alpha * o.expm1(o.clip(x, None, 0.0)))


def _exp_tail(o: Any, c: float, z: Array) -> Array:
    """c * exp(-z) (z >= 0, or z < 0 for celu's negative alpha), with no subnormal intermediate
    where the result is normal (c: elu's alpha, whatever its size: exp_neg's general form)."""
    ts, sc = sp.exp_neg(o, z, general=True)
    return (c * ts) * sc


def _d_elu(o: Any, x: Array, alpha: float) -> Array:
    return o.where(x > 0.0, 1.0, _exp_tail(o, alpha, -o.clip(x, None, 0.0)))


_ELU = Entry(
    "elu", "exponential", "x if x >= 0 else alpha * (exp(x) - 1)", _elu, _d_elu,
    params=(("alpha", 1.0),),
)


@_register(_ELU)
def elu(x: ArrayT, /, *, alpha: float = 1.0) -> ArrayT:
    """Exponential linear unit: ``x`` for x >= 0, ``alpha * (exp(x) - 1)`` otherwise.

    Uses ``expm1``, exact near 0.

    Args:
        alpha: scale of the negative part (default 1.0).

    Derivative: 1 for x > 0, ``alpha * exp(x)`` for x <= 0 (``alpha`` at 0, as torch).

    Example:
        >>> A.elu(np.array([-1.0, 2.0]))
        array([-0.63212056,  2.        ])
    """
    return apply(_ELU, x, (alpha,))


SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA = 1.0507009873554804934193349852946
_SELU_LA = float(
    _D50.multiply(Decimal("1.6732632423543772848170429916717"), Decimal("1.0507009873554804934193349852946"))
)


def _round_down(d: Decimal, prec: int) -> float:
    """The largest float of the working precision that is <= d."""
    import numpy as np

    t = np.float32 if prec == 32 else np.float64
    v = t(float(d))
    if Decimal(float(v)) > d:
        v = np.nextafter(v, t(-np.inf))
    return float(v)


# lambda rounded down per working precision: lambda x then never overflows where the true value
# is finite (float32's nearest lambda does, for x > 3.2386e38), at a cost of half an ulp
_SELU_L_DOWN = {p: _round_down(Decimal("1.0507009873554804934193349852946"), p) for p in (32, 64)}


def _selu(o: Any, x: Array) -> Array:
    lam = _SELU_L_DOWN[o.prec(x)]
    return o.where(x > 0.0, lam * x, _SELU_LA * o.expm1(o.clip(x, None, 0.0)))


def _d_selu(o: Any, x: Array) -> Array:
    return o.where(x > 0.0, SELU_LAMBDA, _exp_tail(o, _SELU_LA, -o.clip(x, None, 0.0)))


_SELU = Entry("selu", "exponential", "lambda * elu(x, alpha)", _selu, _d_selu)


@_register(_SELU)
def selu(x: ArrayT, /) -> ArrayT:
    """Scaled ELU: ``lambda * elu(x, alpha)`` with the self-normalizing constants
    alpha = 1.6732632423543772848 and lambda = 1.0507009873554804934.

    Derivative: ``lambda`` for x > 0, ``lambda * alpha * exp(x)`` for x <= 0.

    Example:
        >>> A.selu(np.array([1.0]))
        array([1.05070099])
    """
    return apply(_SELU, x, ())


def _check_celu(qualname: str, p: tuple[Any, ...]) -> None:
    if p[0] == 0.0:
        raise ValueError(f"{qualname}: alpha must be nonzero (celu divides by it), got 0.0")


def _prep_celu(p: tuple[float, ...], prec: int) -> tuple[Any, ...]:
    """(corrected, alpha, aw, a_rest, aw_hi, aw_lo, lo): alpha = aw + a_rest with aw as the
    working dtype holds it (0.3 is 0.30000001 in float32), aw = aw_hi + aw_lo its Veltkamp halves,
    lo the clip below which exp is 0 or inf anyway. No correction (the rest 0.0) where x / alpha
    is exact (alpha a power of two) or alpha < 0 (exp(x/alpha) grows and overflows; a rare choice
    of alpha, measured only for alpha > 0)."""
    alpha = p[0]
    if math.frexp(alpha)[0] in (0.5, -0.5) or alpha < 0.0:
        return False, alpha, 0.0, 0.0, 0.0, 0.0, 0.0
    aw, a_rest = sp.round_const(alpha, prec)
    return (True, alpha, aw, a_rest, *sp.split_const(aw, prec), -1e4 * abs(alpha))


def _celu_arg(o: Any, x: Array, corrected: bool, alpha: float, aw: float, a_rest: float,
              aw_hi: float, aw_lo: float, lo: float) -> tuple[Array, Array | None]:
    """(u, ul) with u + ul = min(x, 0) / alpha to about twice the working precision.

    exp multiplies the relative error of its argument by |x / alpha|: the rounding of the
    division (and of alpha itself, in float32) would cost ~50 ulp at x / alpha = -100. ul is
    that rounding, from the exact residual x - u alpha (Dekker's product); None where u is exact.
    """
    xn = o.clip(x, None, 0.0)
    u = xn / alpha
    if not corrected:
        return u, None
    # past |x/alpha| = 1e4 exp is 0 or inf and needs no correction: clipping keeps it finite
    xr = o.clip(xn, lo, None)
    ur = xr / alpha
    ph, pl = sp.two_prod_split(o, ur, aw, aw_hi, aw_lo)
    return u, (((xr - ph) - pl) - ur * a_rest) / aw


def _celu(o: Any, x: Array, *a: Any) -> Array:
    u, ul = _celu_arg(o, x, *a)
    alpha = a[1]
    if ul is None:
        return o.where(x > 0.0, x, alpha * o.expm1(u))
    # expm1(u + ul) = expm1(u) + exp(u) ul to first order
    return o.where(x > 0.0, x, alpha * (o.expm1(u) + o.exp(u) * ul))


def _d_celu(o: Any, x: Array, *a: Any) -> Array:
    u, ul = _celu_arg(o, x, *a)
    if ul is None:
        return o.where(x > 0.0, 1.0, _exp_tail(o, 1.0, -u))
    return o.where(x > 0.0, 1.0, _exp_tail(o, 1.0, -u) * (1.0 + ul))


_CELU = Entry(
    "celu", "exponential", "max(0, x) + min(0, alpha * (exp(x / alpha) - 1))", _celu, _d_celu,
    params=(("alpha", 1.0),), check=_check_celu, prep=_prep_celu, forms=((0.3,),),
)


@_register(_CELU)
def celu(x: ArrayT, /, *, alpha: float = 1.0) -> ArrayT:
    """Continuously differentiable ELU: ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Args:
        alpha: nonzero scale (default 1.0); ``alpha = 0`` raises ``ValueError``.

    Derivative: 1 for x > 0, ``exp(x / alpha)`` for x <= 0 (1 at 0).

    Example:
        >>> A.celu(np.array([-1.0, 2.0]), alpha=2.0)
        array([-0.78693868,  2.        ])
    """
    return apply(_CELU, x, (alpha,))


# ================================ Smooth activations ==========================================

_INV_SQRT2 = _D50.divide(_D50.sqrt(Decimal(2)), Decimal(2))
_INV_SQRT_2PI = 0.3989422804014327
_GELU_C = {
    # (c rounded to the working dtype, the rest of c): x/sqrt(2) = x*c_hi + x*c_lo
    p: (float(h), float(_D50.subtract(_INV_SQRT2, Decimal(float(h)))))
    for p, h in ((32, float.fromhex("0x1.6a09e6p-1")), (64, float(_INV_SQRT2)))
}


def _gelu_parts(o: Any, x: Array) -> tuple[Array, Array, Array, Array]:
    """(x clipped to [-40, 40], e, g, sc) with erfc(-x/sqrt2) = e sc and exp(-x^2/2) = g sc,
    compensating the rounding of x/sqrt2; sc keeps e and g normal in the left tail.

    Without the compensation the rounding of x/sqrt2 is amplified by erfc's steepness: ~160 ulp
    in float32 at x = -13. Past |x| = 40 both are exact as 0 or 2 in every dtype.
    """
    c_hi, c_lo = _GELU_C[o.prec(x)]
    xc = o.clip(x, -40.0, 40.0)
    p, e = sp.two_prod_const(o, xc, c_hi)
    return xc, *sp.erfc_gauss_scaled(o, -p, -(e + xc * c_lo))


# float32 (and half): gelu(x) = max(x, 0) - t Phi(-t) with t = |x| (no cancellation on either
# side: Phi(-t) <= 1/2), Phi(-t) = exp(-t^2/2) R(t), R(t) = q(t) / (p(t) + s t q(t)) a rational fit
# of the scaled Mills ratio with positive coefficients (tools/fit_gelu32.py: 1e-8 relative over
# [0, 14.6]; past 14.6, t Phi(-t) is 0 in float32). exp(-t^2/2) carries the rounding of t^2 (an
# exact product) as a factor. The value needs no scaling of the tail: t Phi(-t) is below
# 0.4 exp(-t^2/2), so where exp(-t^2/2) is subnormal the result is too, and exp rounds a subnormal
# result once. The derivative, about 0.4 t exp(-t^2/2), is normal down to t = 13.2 where
# exp(-t^2/2) is not (and XLA flushes it to 0): there exp is taken scaled by 2^92, exactly (the
# shift 92 ln 2 split in two, its low part joining the factor of t^2's rounding).
# About a fifth of the operations of the float64 form below.
_G32_P = (2.0, 1.332849144935608, 0.4562121331691742, 0.08570694923400879, 0.007626371458172798)
_G32_Q = (1.0, 1.1218546628952026, 0.6024075746536255, 0.1879301369190216, 0.03419836610555649,
          0.0030423745047301054)
_G32_S = 2.5066282749176025  # sqrt(2 pi), as float32 rounds it (the fit is for this value)
_G32_SHIFT = 63.76954650878906  # 92 ln 2 rounded to float32; the rest:
_G32_SHIFT_LO = 92 * math.log(2) - _G32_SHIFT


def _gelu32_parts(o: Any, x: Array) -> tuple[Array, Array]:
    """(t, e): t = min(|x|, 14.6), e = exp(-t^2/2) with the rounding of t^2 carried."""
    t = o.clip(o.abs(x), None, 14.6)
    h, hl = sp.two_prod(o, t, t)  # t^2 = h + hl exactly
    return t, o.exp(-0.5 * h) * (1.0 - 0.5 * hl)


def _gelu32_parts_scaled(o: Any, x: Array) -> tuple[Array, Array, Array]:
    """(t, e, sc): exp(-t^2/2) = e sc, e normal (see the note above), sc 1 or 2^-92."""
    t = o.clip(o.abs(x), None, 14.6)
    h, hl = sp.two_prod(o, t, t)
    z = 0.5 * h
    m = o.mask(z > 72.0, z)  # exp(-z) leaves float32's normal range past 87
    # exp(-z - hl/2) = exp(S m - z) 2^(-92 m) (1 + S_lo m - hl/2), S m - z exact (z is within a
    # factor of two of S = 92 ln 2 where m = 1)
    e = o.exp(_G32_SHIFT * m - z) * (1.0 + (_G32_SHIFT_LO * m - 0.5 * hl))
    return t, e, m * 2.0**-92 + (1.0 - m)


def _gelu(o: Any, x: Array) -> Array:
    if o.prec(x) == 32:
        t, e = _gelu32_parts(o, x)
        q = sp.horner(o, t, _G32_Q[::-1])
        u = t * q
        a = (u / (sp.horner(o, t, _G32_P[::-1]) + _G32_S * u)) * e  # t R(t) exp(-t^2/2) = t Phi(-t)
        return o.where(x >= 0.0, x - a, -a)
    _, e, _, sc = _gelu_parts(o, x)
    # x below -40 is clipped too: gelu is -0 there, and the scaled e must not meet a huge x
    return (0.5 * o.clip(x, -40.0, None) * e) * sc


def _d_gelu(o: Any, x: Array) -> Array:
    if o.prec(x) == 32:
        # Phi(x) + x phi(x): 1 - Phi(-t) + t phi(t) for x >= 0, Phi(-t) - t phi(t) for x < 0
        t, e, sc = _gelu32_parts_scaled(o, x)
        q = sp.horner(o, t, _G32_Q[::-1])
        r = q / (sp.horner(o, t, _G32_P[::-1]) + (_G32_S * t) * q)
        b = (e * (t * _INV_SQRT_2PI - r)) * sc
        return o.where(x >= 0.0, 1.0 + b, -b)
    xc, e, g, sc = _gelu_parts(o, x)
    return (0.5 * e + xc * g * _INV_SQRT_2PI) * sc


def _phi_scaled(o: Any, x: Array) -> tuple[Array, Array, Array]:
    """(xc, g, sc): x clipped to [-40, 40] and exp(-x^2/2) = g sc, g normal (sp.gauss_scaled),
    with the rounding of x/sqrt2 carried. Past |x| = 40 the Gaussian is 0 in every dtype."""
    c_hi, c_lo = _GELU_C[o.prec(x)]
    xc = o.clip(x, -40.0, 40.0)
    p, e = sp.two_prod_const(o, xc, c_hi)
    g, sc = sp.gauss_scaled(o, p, e + xc * c_lo)
    return xc, g, sc


_SQRT2_SPLIT = {p: (h, float(_D50.subtract(_D50.sqrt(Decimal(2)), Decimal(h)))) for p, h in (
    (32, sp.round_const(math.sqrt(2.0), 32)[0]), (64, math.sqrt(2.0)))}


def _d2_gelu(o: Any, x: Array) -> Array:
    # phi(x) (2 - x^2), with 2 - x^2 = (sqrt2 - |x|)(sqrt2 + |x|): exact next to the zeros at +-sqrt2
    xc, g, sc = _phi_scaled(o, x)
    s_hi, s_lo = _SQRT2_SPLIT[o.prec(x)]
    a = o.abs(xc)
    return ((_INV_SQRT_2PI * g) * (((s_hi - a) + s_lo) * (s_hi + a))) * sc


def _d3_gelu(o: Any, x: Array) -> Array:
    # x phi(x) (x^2 - 4) = x phi(x) (|x| - 2)(|x| + 2)
    xc, g, sc = _phi_scaled(o, x)
    a = o.abs(xc)
    return ((_INV_SQRT_2PI * g) * (xc * ((a - 2.0) * (a + 2.0)))) * sc


_GELU = Entry(
    "gelu", "smooth", "0.5 * x * (1 + erf(x / sqrt(2)))", _gelu, _d_gelu, smooth=True,
    deriv2=_d2_gelu, deriv3=_d3_gelu,
)


@_register(_GELU)
def gelu(x: ArrayT, /) -> ArrayT:
    """Gaussian error linear unit, exact: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    Evaluated as ``max(x, 0) - |x| Phi(-|x|)``, so the negative tail keeps full precision
    (``gelu(-10)`` is -7.6e-23, not 0): in float64 through ``erfc`` with the rounding of
    ``x / sqrt(2)`` carried as an error term, in float32 (and half) through a rational fit of
    ``Phi(-t) exp(t^2 / 2)`` and an exactly split ``t^2``.

    Derivative: ``Phi(x) + x * phi(x)``.

    Example:
        >>> A.gelu(np.array([-1.0, 0.0, 1.0]))
        array([-0.15865525,  0.        ,  0.84134475])
    """
    return apply(_GELU, x, ())


_SQRT_2_OVER_PI = 0.7978845608028654
_GA_K = 0.044715


def _split_dec(d: Decimal, prec: int) -> tuple[float, float]:
    """A constant as hi + lo: hi rounded to the working dtype, lo the rest (a float64)."""
    import numpy as np

    hi = float(np.float32(float(d))) if prec == 32 else float(d)
    return hi, float(_D50.subtract(d, Decimal(hi)))


# 2 sqrt(2/pi) and 0.044715, each as hi + lo per working precision
_GA_C2 = Decimal("1.595769121605730711759784239737527473903")
_GA_CONST = {p: (_split_dec(_GA_C2, p), _split_dec(Decimal("0.044715"), p)) for p in (32, 64)}


def _gelu_approx_v(o: Any, x: Array) -> tuple[Array, Array, Array, Array]:
    """(xc, vh, vl, dv): v = 2 sqrt(2/pi) (x + 0.044715 x^3) = vh + vl to about twice the
    working precision, and v'(x), for x clipped to +-1e4 (past it the sigmoid is 0 or 1).

    sigmoid(v) ~ exp(v) in the left tail multiplies the relative error of v by |v| (up to 104 in
    float32, 745 in float64), so v carries its rounding errors: x^2 is exact (two_prod), the
    constants are split in two, 1 + k x^2 and the products keep their error terms.
    """
    (ch, cl), (kh, kl) = _GA_CONST[o.prec(x)]
    xc = o.clip(x, -1e4, 1e4)
    sh, sl = sp.two_prod(o, xc, xc)
    th, tl = sp.two_prod_const(o, sh, kh)
    # th >= 0: the clip is a no-op that stops a compiler from contracting th into 1 + th (an fma
    # there makes 1 + th exact while tl still counts th's rounding: XLA on CPU does that)
    wh, wl = sp.two_sum(o, o.clip(th, 0.0, None), 1.0)
    wl = wl + (tl + kh * sl + kl * sh)
    mh, ml = sp.two_prod_const(o, xc, ch)
    ml = ml + xc * cl
    vh, vl = sp.two_prod(o, mh, wh)
    vl = vl + (mh * wl + ml * wh)
    dv = ch * (1.0 + (3.0 * kh) * sh)
    return xc, vh, vl, dv


def _gelu_approx(o: Any, x: Array) -> Array:
    xc, vh, vl, _ = _gelu_approx_v(o, x)
    pos, _, ts, sc, t, r = _sig_parts(o, vh)
    # sigmoid(vh + vl) = s (1 + sigmoid(-v) vl) to first order; v < 0: s = t r, v >= 0: s = r
    xv = o.clip(x, -1e4, None)
    return o.where(pos, xv * r * (1.0 + t * r * vl), (((xc * ts) * r) * (1.0 + r * vl)) * sc)


def _d_gelu_approx(o: Any, x: Array) -> Array:
    xc, vh, vl, dv = _gelu_approx_v(o, x)
    pos, _, ts, sc, t, r = _sig_parts(o, vh)
    # s + x v' s sn, with s sn corrected by (1 + (sn - s) vl)
    tr = t * r
    d_pos = r * (1.0 + tr * vl) + xc * dv * (tr * r) * (1.0 + (tr - r) * vl)
    d_neg = ((ts * r) * ((1.0 + r * vl) + xc * dv * r * (1.0 + (r - tr) * vl))) * sc
    return o.where(pos, d_pos, d_neg)


def _gelu_approx_high(o: Any, x: Array, order: int) -> Array:
    """The second or third derivative of x s(v), v = c (x + k x^3) (c = 2 sqrt(2/pi)), from the
    sigmoid's derivatives in t = exp(-|v|), r = 1 / (1 + t), em = 1 - t (as for the sigmoid, see
    _sig_derivs), with their common factor out:
        order 2:  t r^3 [(1 + t)(2v' + x v'') - |x| v'^2 em],
        order 3:  t r^4 [(1 + t)^2 (3v'' + x v''') - 3 sign(x) v' (v' + x v'') em (1 + t)
                         + x v'^3 (t - t0)(t - t1)].
    Every term is O(x) as x -> 0 (nothing subnormal where the result is not). v = vh + vl: the
    rounding vl enters as the factor (1 - sign(v) vl), the tails' d/dv of exp(-|v|)."""
    (ch, _), (kh, _) = _GA_CONST[o.prec(x)]
    xc, vh, vl, dv = _gelu_approx_v(o, x)
    pos, na, ts, sc, t, r = _sig_parts(o, vh)
    em = -o.expm1(na)
    c3 = 6.0 * ch * kh  # v'''
    ddv = c3 * xc
    if order == 2:
        br = (1.0 + t) * (2.0 * dv + xc * ddv) - ((o.abs(xc) * dv) * dv) * em
        u = (ts * r * r * r) * br
    else:
        x0h, x0l = _X0_SPLIT[o.prec(x)]
        tt = (_T0 * o.expm1((x0h + na) + x0l)) * (t - _T1)
        # 3v'' + x v''' = 4 c3 x in one product (3 c3 x alone is subnormal where the result is not);
        # the two terms that cancel next to the zeros at +-2.0135 with their common factor v' out,
        # each product exact (two_prod) before they meet: their roundings were amplified there
        mh, ml = sp.two_prod(o, 3.0 * (dv + xc * ddv), em * (1.0 + t))
        mh, ml = o.where(pos, -mh, mh), o.where(pos, -ml, ml)
        qh, ql = sp.two_prod(o, (xc * dv) * dv, tt)
        br = ((1.0 + t) * (1.0 + t)) * ((4.0 * c3) * xc) + dv * ((mh + qh) + (ml + ql))
        u = (ts * r * r * r * r) * br
    # the correction as a factor: u vl alone can be subnormal (and flushed) where u is not
    return (u * o.where(pos, 1.0 - vl, 1.0 + vl)) * sc


def _d2_gelu_approx(o: Any, x: Array) -> Array:
    return _gelu_approx_high(o, x, 2)


def _d3_gelu_approx(o: Any, x: Array) -> Array:
    return _gelu_approx_high(o, x, 3)


_GELU_APPROX = Entry(
    "gelu_approx", "smooth", "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))",
    _gelu_approx, _d_gelu_approx, smooth=True, deriv2=_d2_gelu_approx, deriv3=_d3_gelu_approx,
)


@_register(_GELU_APPROX)
def gelu_approx(x: ArrayT, /) -> ArrayT:
    """GELU, tanh approximation: ``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))``.

    Evaluated as ``x * sigmoid(2u)`` (the same function, without the cancelling ``1 + tanh``),
    with the full-precision constant sqrt(2/pi) = 0.7978845608028654.

    Derivative: ``s + x * s * (1 - s) * 2u'`` with ``s = sigmoid(2u)``, finite everywhere.

    Example:
        >>> A.gelu_approx(np.array([-1.0, 0.0, 1.0]))
        array([-0.15880801,  0.        ,  0.84119199])
    """
    return apply(_GELU_APPROX, x, ())


def _silu(o: Any, x: Array) -> Array:
    xl = _lo(o, x)
    pos, na = _nabs(o, xl)
    ts, sc = sp.exp_neg(o, -na)  # exp(-|x|) = ts sc, ts normal (the tail keeps its precision)
    r = 1.0 / (1.0 + ts * sc)
    return o.where(pos, xl * r, ((xl * ts) * r) * sc)


def _d_silu(o: Any, x: Array) -> Array:
    xc = _fin(o, x)
    pos, _, ts, sc, t, r = _sig_parts(o, xc)
    # s + x s sn: x >= 0, s = r, sn = t r; x < 0, s = t r, sn = r
    return o.where(pos, r * (1.0 + xc * t * r), ((ts * r) * (1.0 + xc * r)) * sc)


def _d2_silu(o: Any, x: Array) -> Array:
    # 2 s1 + x s2 = t r^3 ((2 - a) + t (2 + a)), a = |x|: 2 - a is exact next to the zeros at
    # +-2.3994, where the two terms cancel; sc applied last (a t is normal where t is not); a is
    # clipped where t is 0 anyway, so that nothing overflows
    pos, na, ts, sc, t, r = _sig_parts(o, _fin(o, x))
    a = o.clip(-na, None, 1e4)
    return ((ts * r * r * r) * ((2.0 - a) + t * (2.0 + a))) * sc


def _d3_silu(o: Any, x: Array) -> Array:
    # 3 s2 + x s3 = sign(x) t r^4 B, B = (a - 3) + t (t (a + 3) - 4a): exact next to the zeros at
    # +-3.4358; as x -> 0 the same B in em = 1 - t = -expm1(-a), em (em (a + 3) - (6 - 2a)) - 2a,
    # which does not cancel (B ~ -8a)
    pos, na, ts, sc, t, r = _sig_parts(o, _fin(o, x))
    a = o.clip(-na, None, 1e4)
    em = -o.expm1(na)
    b = o.where(a < 1.5, em * (em * (a + 3.0) - (6.0 - 2.0 * a)) - 2.0 * a,
                (a - 3.0) + t * (t * (a + 3.0) - 4.0 * a))
    u = (ts * r * r * r * r) * b
    return o.where(pos, u, -u) * sc


_SILU = Entry("silu", "smooth", "x * sigmoid(x)", _silu, _d_silu, smooth=True, deriv2=_d2_silu,
              deriv3=_d3_silu)


@_register(_SILU)
def silu(x: ArrayT, /) -> ArrayT:
    """Sigmoid linear unit (swish): ``x * sigmoid(x)``.

    Derivative: ``sigmoid(x) * (1 + x * sigmoid(-x))``.

    Example:
        >>> A.silu(np.array([-1.0, 0.0, 1.0]))
        array([-0.26894142,  0.        ,  0.73105858])
    """
    return apply(_SILU, x, ())


swish = silu


def _hard_silu(o: Any, x: Array) -> Array:
    xl = _lo(o, x)
    # (x + 3) / 6 is exact to one rounding near -3, where x / 6 + 1/2 cancels
    return xl * o.clip((xl + 3.0) / 6.0, 0.0, 1.0)


def _d_hard_silu(o: Any, x: Array) -> Array:
    xc = _fin(o, x)
    # (2x + 3) / 6 on (-3, 3), decided on x itself (not on a rounded x / 6 + 1/2)
    xm = o.clip(xc, -3.0, 3.0)
    return o.mask((xc > -3.0) & (xc < 3.0), xc) * ((2.0 * xm + 3.0) / 6.0) + o.mask(xc >= 3.0, xc)


_HARD_SILU = Entry("hard_silu", "smooth", "x * hard_sigmoid(x)", _hard_silu, _d_hard_silu)


@_register(_HARD_SILU)
def hard_silu(x: ArrayT, /) -> ArrayT:
    """Hard SiLU (hard swish): ``x * hard_sigmoid(x)`` = ``x * min(1, max(0, x/6 + 1/2))``.

    Derivative: ``hard_sigmoid(x) + x/6`` on (-3, 3), 0 below, 1 above: 0 at -3 and 1 at 3
    (the saturated side, as torch's hardswish).

    Example:
        >>> A.hard_silu(np.array([-4.0, 0.0, 1.5, 4.0]))
        array([-0.   ,  0.   ,  1.125,  4.   ])
    """
    return apply(_HARD_SILU, x, ())


hard_swish = hard_silu


def _mish_parts(o: Any, x: Array) -> tuple[Array, Array, Array, Array, Array]:
    """(pos, ts, sc, t, d): tanh(softplus(x)) = a / (a + b) with no cancelling part, from
    t = exp(-|x|) = ts sc (ts normal in the left tail): x >= 0, a = 1 + 2t, b = 2t^2;
    x < 0, a = t (t + 2), b = 2. d = 1 / (a + b)."""
    pos, na = _nabs(o, x)
    ts, sc = sp.exp_neg(o, -na)
    t = ts * sc
    d = 1.0 / o.where(pos, 1.0 + 2.0 * t + 2.0 * t * t, t * (t + 2.0) + 2.0)
    return pos, ts, sc, t, d


def _mish(o: Any, x: Array) -> Array:
    xl = _lo(o, x)
    pos, ts, sc, t, d = _mish_parts(o, xl)
    return o.where(pos, xl * ((1.0 + 2.0 * t) * d), (((xl * ts) * (t + 2.0)) * d) * sc)


def _d_mish(o: Any, x: Array) -> Array:
    xc = _fin(o, x)
    pos, ts, sc, t, d = _mish_parts(o, xc)
    r = 1.0 / (1.0 + t)
    # g + x (1 - g^2) sigmoid(x), with 1 - g^2 = b (2a + b) / (a + b)^2
    # x clipped to 1e4 in the term that vanishes (t = 0) long before: keeps its gradient finite
    a_p, b_p = 1.0 + 2.0 * t, 2.0 * t * t
    d_pos = a_p * d + o.clip(xc, None, 1e4) * (r * (b_p * (2.0 * a_p + b_p) * d * d))
    # x < 0: a = t (t + 2) = ts sc (t + 2), sigmoid(x) = ts sc r, b = 2; x clipped to <= 0 so that
    # this branch stays finite (and its gradient, for second order) where x >= 0 is taken
    a_n = t * (t + 2.0)
    xn = o.clip(xc, None, 0.0)
    d_neg = (ts * ((t + 2.0) * d + xn * (r * ((4.0 * a_n + 4.0) * d * d)))) * sc
    return o.where(pos, d_pos, d_neg)


# mish = x g, g = tanh(softplus(x)) = 1 - 2 / D, D = w^2 + 2w + 2, w = exp(x):
#   h = g' = 4w (w + 1) / D^2,  h' = 4w B1 / D^3,  h'' = 4w B2 / D^4,
#   B1 = -2w^3 - 3w^2 + 2w + 2,  B2 = 4w^5 + 5w^4 - 24w^3 - 32w^2 + 4,
#   mish'' = 2h + x h' = 4w / D^3 [2 (w + 1) D + x B1],  mish''' = 3h' + x h'' = 4w / D^4 [3 B1 D + x B2].
# The brackets multiplied out and ordered by powers of w, their constant terms 4 + 2x and 4 (3 + x)
# exact next to the zeros at -2.2564 and -3.2673 (no cancellation of rounded terms there):
#   2 (w + 1) D + x B1 = (4 + 2x) + w (8 + 2x) + w^2 (6 - 3x) + w^3 (2 - 2x),
#   3 B1 D + x B2 = 4 (3 + x) + 24w - 32x w^2 - 24 (1 + x) w^3 + (5x - 21) w^4 + (4x - 6) w^5.
# For x >= 0 the same divided through by powers of w, in t = exp(-x), E = 1 + 2t + 2t^2, with a
# factor exp(-2x) taken scaled (sp.exp_neg of 2x, so that x exp(-2x) keeps its precision):
#   mish'' = 4 exp(-2x) / E^3 [(2 - 2x) + t (6 - 3x) + t^2 (8 + 2x) + t^3 (4 + 2x)],
#   mish''' = 4 exp(-2x) / E^4 [(4x - 6) + t (5x - 21) - 24 (1 + x) t^2 - 32x t^3 + 24 t^4 + (12 + 4x) t^5],
# 2 - 2x and 4x - 6 exact next to the zeros at 1.4906 and 2.1148. For x < 0, w = t = exp(-|x|) = ts sc.
def _mish_high(o: Any, x: Array, order: int) -> Array:
    xc = _fin(o, x)
    pos, na, ts, sc, t, _ = _sig_parts(o, xc)
    e2s, sc2 = sp.exp_neg(o, -2.0 * na)  # exp(-2|x|) = e2s sc2
    # x clipped where the exponentials are 0 already (x times a coefficient would overflow there)
    xp, xn = o.clip(xc, 0.0, 1e4), o.clip(xc, -1e4, 0.0)
    e = 1.0 + t * (2.0 + 2.0 * t)
    d = 2.0 + t * (2.0 + t)
    if order == 2:
        bp = (2.0 - 2.0 * xp) + t * ((6.0 - 3.0 * xp) + t * ((8.0 + 2.0 * xp) + t * (4.0 + 2.0 * xp)))
        bn = (4.0 + 2.0 * xn) + t * ((8.0 + 2.0 * xn) + t * ((6.0 - 3.0 * xn) + t * (2.0 - 2.0 * xn)))
        hp = (4.0 * e2s) / (e * e * e) * bp
        hn = (4.0 * ts) / (d * d * d) * bn
    else:
        bp = (4.0 * xp - 6.0) + t * ((5.0 * xp - 21.0) + t * ((-24.0 - 24.0 * xp) + t * (
            -32.0 * xp + t * (24.0 + t * (12.0 + 4.0 * xp)))))
        bn = 4.0 * (3.0 + xn) + t * (24.0 + t * (-32.0 * xn + t * ((-24.0 - 24.0 * xn) + t * (
            (5.0 * xn - 21.0) + t * (4.0 * xn - 6.0)))))
        hp = (4.0 * e2s) / (e * e * e * e) * bp
        hn = (4.0 * ts) / (d * d * d * d) * bn
    return o.where(pos, hp * sc2, hn * sc)


def _d2_mish(o: Any, x: Array) -> Array:
    return _mish_high(o, x, 2)


def _d3_mish(o: Any, x: Array) -> Array:
    return _mish_high(o, x, 3)


_MISH = Entry("mish", "smooth", "x * tanh(softplus(x))", _mish, _d_mish, smooth=True,
              deriv2=_d2_mish, deriv3=_d3_mish)


@_register(_MISH)
def mish(x: ArrayT, /) -> ArrayT:
    """Mish: ``x * tanh(softplus(x))``.

    Evaluated as ``x * a / (a + b)`` with ``a, b`` rational in ``exp(-|x|)``, which keeps both
    tails exact (the negative tail is ``x * exp(x)``, not 0).

    Derivative: ``g + x * sigmoid(x) * (1 - g^2)``, ``g = tanh(softplus(x))``.

    Example:
        >>> A.mish(np.array([-1.0, 0.0, 1.0]))
        array([-0.30340146,  0.        ,  0.86509839])
    """
    return apply(_MISH, x, ())


def _softplus(o: Any, x: Array) -> Array:
    return o.clip(x, 0.0, None) + o.log1p(o.exp(-o.abs(x)))


def _d_softplus(o: Any, x: Array) -> Array:
    return _sig(o, x)[0]


_SOFTPLUS = Entry("softplus", "smooth", "log(1 + exp(x))", _softplus, _d_softplus, smooth=True,
                  deriv2=_d_sigmoid, deriv3=_d2_sigmoid)


@_register(_SOFTPLUS)
def softplus(x: ArrayT, /) -> ArrayT:
    """Softplus: ``log(1 + exp(x))``, as ``max(x, 0) + log1p(exp(-|x|))`` (no threshold).

    Derivative: ``sigmoid(x)``.

    Example:
        >>> A.softplus(np.array([0.0, 1000.0]))
        array([6.93147181e-01, 1.00000000e+03])
    """
    return apply(_SOFTPLUS, x, ())


def _softsign(o: Any, x: Array) -> Array:
    xc = _fin(o, x)
    return xc / (1.0 + o.abs(xc))


def _d_softsign(o: Any, x: Array) -> Array:
    r = 1.0 / (1.0 + o.abs(x))
    return r * r


def _d2_softsign(o: Any, x: Array) -> Array:
    # -2 sign(x) r^3 (the x < 0 side at 0: 2), the factor first: 2 r^3 is normal where r^3 is not
    r = 1.0 / (1.0 + o.abs(x))
    u = ((2.0 * r) * r) * r
    return o.where(x > 0.0, -u, u)


def _d3_softsign(o: Any, x: Array) -> Array:
    r = 1.0 / (1.0 + o.abs(x))
    return (((6.0 * r) * r) * r) * r


_SOFTSIGN = Entry("softsign", "smooth", "x / (|x| + 1)", _softsign, _d_softsign, smooth=True,
                  deriv2=_d2_softsign, deriv3=_d3_softsign)


@_register(_SOFTSIGN)
def softsign(x: ArrayT, /) -> ArrayT:
    """Softsign: ``x / (|x| + 1)``.

    Derivative: ``1 / (1 + |x|)^2``, evaluated as ``r * r`` with ``r = 1 / (1 + |x|)`` so that it
    neither overflows nor underflows early.

    Example:
        >>> A.softsign(np.array([-1.0, 3.0]))
        array([-0.5 ,  0.75])
    """
    return apply(_SOFTSIGN, x, ())


def _check_squareplus(qualname: str, p: tuple[Any, ...]) -> None:
    if p[0] < 0.0:
        raise ValueError(f"{qualname}: b must be >= 0, got {p[0]}")


def _prep_squareplus(p: tuple[float, ...], prec: int) -> tuple[Any, ...]:
    """(b = 0, b, sqrt(b) or 1, b/4, b/2, -3b/2): b = 0 is relu. (The last two are the second
    and third derivatives' factors 2 (b/4) and -6 (b/4), computed here in float64 rather than in
    a formula: a run-time scalar of JAX's primitives is float32 where JAX's x64 is off.)"""
    b = p[0]
    qb = 0.25 * b
    return b == 0.0, b, math.sqrt(b) if b > 0.0 else 1.0, qb, 2.0 * qb, -6.0 * qb


def _sqp_root(o: Any, x: Array, b: float, sb: float) -> Array:
    """sqrt(x^2 + b), as |x| sqrt(1 + b/x^2) where x^2 > b, so x^2 never overflows."""
    ax = o.abs(x)
    m = o.clip(ax, sb, None)  # keeps the unused branch finite
    return o.where(ax * ax > b, ax * o.sqrt(1.0 + (b / m) / m), o.sqrt(x * x + b))


def _squareplus(o: Any, x: Array, zero: bool, b: float, sb: float, qb: float, *_: float) -> Array:
    if zero:
        return _relu(o, x)  # (x + |x|) / 2
    r = _sqp_root(o, x, b, sb)
    # (x + r) / 2 as x + (b/2) / (r + x) for x >= 0 and (b/2) / (r - x) for x < 0, with halves so
    # that r + |x| does not overflow for |x| > max / 2 (nor can a compiler factor 0.5 x + 0.5 r)
    ax = o.abs(x)
    c = qb / (0.5 * r + 0.5 * ax)
    return o.where(x >= 0.0, x + c, c)


def _d_squareplus(o: Any, x: Array, zero: bool, b: float, sb: float, qb: float, *_: float) -> Array:
    if zero:
        return _d_relu(o, x)
    xc = _fin(o, x)
    r = _sqp_root(o, xc, b, sb)
    return o.where(xc >= 0.0, 0.5 + 0.5 * (xc / r), (qb / r) / (0.5 * r - 0.5 * o.clip(xc, None, 0.0)))


def _d2_squareplus(o: Any, x: Array, zero: bool, b: float, sb: float, qb: float, qb2: float,
                   qb6: float) -> Array:
    # b / (2 r^3), one factor at a time (r^3 overflows where the result is merely tiny)
    if zero:
        return o.mask(x < x, x)  # relu's: 0
    # by the reciprocal: XLA rewrites a / r / r into a / (r * r), which underflows early
    ir = 1.0 / _sqp_root(o, _fin(o, x), b, sb)
    return (qb2 * ir) * ir * ir  # (qb2 = 2 qb)


def _d3_squareplus(o: Any, x: Array, zero: bool, b: float, sb: float, qb: float, qb2: float,
                   qb6: float) -> Array:
    # -3 b x / (2 r^5) = -(3b/2) (x / r) / r^4
    if zero:
        return o.mask(x < x, x)
    xc = _fin(o, x)
    ir = 1.0 / _sqp_root(o, xc, b, sb)
    return (((qb6 * (xc * ir)) * ir) * ir) * ir * ir  # (qb6 = -6 qb)


_SQUAREPLUS = Entry(
    "squareplus", "smooth", "0.5 * (x + sqrt(x^2 + b))", _squareplus, _d_squareplus,
    params=(("b", 4.0),), check=_check_squareplus, smooth=True, prep=_prep_squareplus,
    forms=((0.0,),), deriv2=_d2_squareplus, deriv3=_d3_squareplus,
)


@_register(_SQUAREPLUS)
def squareplus(x: ArrayT, /, *, b: float = 4.0) -> ArrayT:
    """Squareplus: ``0.5 * (x + sqrt(x^2 + b))``.

    For x < 0 evaluated as ``0.5 * b / (sqrt(x^2 + b) - x)`` (no cancellation), and the root
    is scaled so that ``x^2`` never overflows: ``squareplus(-1e4)`` is 1e-4, not 0.

    Args:
        b: curvature near 0, >= 0 (default 4.0); b = 0 is relu, with relu's derivative.

    Derivative: ``0.5 * (1 + x / sqrt(x^2 + b))``.

    Example:
        >>> A.squareplus(np.array([-1.0, 0.0, 1.0]))
        array([0.61803399, 1.        , 1.61803399])
    """
    return apply(_SQUAREPLUS, x, (b,))


def _log_sigmoid(o: Any, x: Array) -> Array:
    return o.clip(x, None, 0.0) - o.log1p(o.exp(-o.abs(x)))


def _d_log_sigmoid(o: Any, x: Array) -> Array:
    return _sig(o, x)[1]


def _d2_log_sigmoid(o: Any, x: Array) -> Array:
    return -_d_sigmoid(o, x)  # (sigmoid(-x))' = -sigmoid'(x), an even function


def _d3_log_sigmoid(o: Any, x: Array) -> Array:
    return -_d2_sigmoid(o, x)


_LOG_SIGMOID = Entry(
    "log_sigmoid", "smooth", "log(sigmoid(x)) = -softplus(-x)", _log_sigmoid, _d_log_sigmoid,
    smooth=True, deriv2=_d2_log_sigmoid, deriv3=_d3_log_sigmoid,
)


@_register(_LOG_SIGMOID)
def log_sigmoid(x: ArrayT, /) -> ArrayT:
    """Log-sigmoid: ``log(sigmoid(x))``, as ``min(x, 0) - log1p(exp(-|x|))``.

    Derivative: ``sigmoid(-x)``.

    Example:
        >>> A.log_sigmoid(np.array([-1000.0, 0.0]))
        array([-1.00000000e+03, -6.93147181e-01])
    """
    return apply(_LOG_SIGMOID, x, ())


# ================================ Gating ======================================================


def _glu(o: Any, a: Array, b: Array) -> Array:
    # a = +-inf with b > -inf: a times a positive number, a; not a * 0 where the sigmoid
    # underflows (b < -88 in float32, -20 in half under XLA's flush to zero)
    big = o.big(a)
    return o.where((o.abs(a) > big) & (b >= -big), a, a * _sig(o, b)[0])


def _d_glu(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    """(d/da, d/db) of a * sigmoid(b); d/db = a for a = +-inf and a finite b (the limit, a times a
    positive number, as for the value), not inf * an underflowed sigmoid'(b)."""
    s, sn = _sig(o, b)
    big = o.big(a)
    return s, o.where((o.abs(a) > big) & (o.abs(b) <= big), a, a * s * sn)


def _prep_none(p: tuple[Any, ...], prec: int) -> tuple[()]:
    return ()  # the axis says where the halves are, not what the formula computes


_GLU = Entry(
    "glu", "gating", "first * sigmoid(second), halves along axis", _glu, _d_glu,
    params=(("axis", -1),), kind="glu", prep=_prep_none,
)


@_register(_GLU)
def glu(x: ArrayT, /, *, axis: int = -1) -> ArrayT:
    """Gated linear unit: split ``x`` in two equal halves along ``axis``, ``first * sigmoid(second)``.

    Args:
        axis: the axis to split (default -1). A size that does not split in two, or an axis out
            of range (0-d input included), raises ``ValueError``.

    Derivative: ``sigmoid(second)`` for the first half, ``first * sigmoid'(second)`` for the second.

    Example:
        >>> A.glu(np.array([1.0, 2.0, -1.0, 0.0]))
        array([0.26894142, 1.        ])
    """
    return apply_glu(_GLU, x, axis)


# -- the gated family (beyond the spec): glu's split, another activation on the gate -----------
# One convention for all (glu's, torch.nn.functional.glu's): ``first * act(second)``; by name,
# ``up * act(gate)``. Each formula is the activation's own (_silu, _gelu, ...) times the value half;
# the derivatives are (act(gate), up * act'(gate)), the activation's own derivative formula.


def _gated(o: Any, a: Array, b: Array, fb: Array, odd: bool) -> Array:
    """a * fb with fb = act(b), act one of silu, gelu, gelu_approx (``odd``: of b's sign, 0 only at
    0) or relu (0 for b <= 0). Where one input is infinite and the other finite, the limit along
    the infinite one: a = +-inf gives +-inf times the sign of act(b), 0 where act(b) = 0 (not
    inf * an underflowed act(b) = NaN); a = 0 with b = +inf gives 0 (not 0 * inf)."""
    big = o.big(a)
    zero = (a >= 0.0) & (a <= 0.0)
    y = a * o.where(zero, _fin(o, fb), fb)
    nought = 0.0 * _fin(o, a)
    lim = o.where(b > 0.0, a, o.where(b < 0.0, -a, nought) if odd else nought)
    return o.where((o.abs(a) > big) & (o.abs(b) <= big), lim, y)


def _gate_deriv(o: Any, a: Array, fb: Array, db: Array) -> tuple[Array, Array]:
    """(d/da, d/db) of a * act(b): (act(b), a act'(b))."""
    return fb, a * db


def _swiglu(o: Any, a: Array, b: Array) -> Array:
    return _gated(o, a, b, _silu(o, b), True)


def _d_swiglu(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    return _gate_deriv(o, a, _silu(o, b), _d_silu(o, b))


def _geglu(o: Any, a: Array, b: Array) -> Array:
    return _gated(o, a, b, _gelu(o, b), True)


def _d_geglu(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    return _gate_deriv(o, a, _gelu(o, b), _d_gelu(o, b))


def _geglu_approx(o: Any, a: Array, b: Array) -> Array:
    return _gated(o, a, b, _gelu_approx(o, b), True)


def _d_geglu_approx(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    return _gate_deriv(o, a, _gelu_approx(o, b), _d_gelu_approx(o, b))


def _reglu(o: Any, a: Array, b: Array) -> Array:
    return _gated(o, a, b, _relu(o, b), False)


def _d_reglu(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    return _gate_deriv(o, a, _relu(o, b), _d_relu(o, b))


def _gated_entry(name: str, act: str, value: Any, deriv: Any) -> Entry:
    return Entry(name, "gating", f"first * {act}(second), halves along axis; up * {act}(gate)",
                 value, deriv, params=(("axis", -1),), kind="glu", prep=_prep_none, extra=True)


_SWIGLU = _gated_entry("swiglu", "silu", _swiglu, _d_swiglu)
_GEGLU = _gated_entry("geglu", "gelu", _geglu, _d_geglu)
_GEGLU_APPROX = _gated_entry("geglu_approx", "gelu_approx", _geglu_approx, _d_geglu_approx)
_REGLU = _gated_entry("reglu", "relu", _reglu, _d_reglu)

_GATED_FORMS = """
    Two call forms, the same bits. ``{name}(x, axis=-1)`` splits ``x`` in two equal halves along
    ``axis``: ``first * {act}(second)``, the half order of ``glu`` and ``torch.nn.functional.glu``.
    ``{name}(gate=g, up=u)`` takes two arrays of one shape, dtype and device: ``u * {act}(g)``, by
    name only, so that gate and value cannot be swapped. Hugging Face LLaMA's
    ``act(gate_proj(x)) * up_proj(x)`` is ``{name}(gate=gate_proj(x), up=up_proj(x))``;
    Megatron-LM's ``{act}(x[0]) * x[1]`` of ``torch.chunk(x, 2, -1)`` is
    ``{name}(gate=x[0], up=x[1])``.

    An odd size along ``axis``, an axis out of range, both forms at once, gate without up, or
    gate and up of different shapes, dtypes, devices or libraries raise ``ValueError`` or
    ``TypeError`` naming the argument.
"""


@_register(_SWIGLU)
def swiglu(x: ArrayT | None = None, /, *, axis: int = -1, gate: ArrayT | None = None,
           up: ArrayT | None = None) -> ArrayT:
    """SwiGLU (Shazeer 2020; LLaMA, Mistral, Qwen): ``up * silu(gate)``.
    {forms}
    Derivative: ``silu(gate)`` for up, ``up * silu'(gate)`` for gate (silu's own formulas).
    Where one input is infinite and the other finite: the limit along it (``up = inf`` with
    ``gate < 0`` is -inf, not NaN).

    Example:
        >>> A.swiglu(np.array([1.0, 2.0, -1.0, 1.0]))
        array([-0.26894142,  1.46211716])
        >>> A.swiglu(gate=np.array([-1.0, 1.0]), up=np.array([1.0, 2.0]))
        array([-0.26894142,  1.46211716])
    """
    return apply_gated(_SWIGLU, x, axis, gate, up)


@_register(_GEGLU)
def geglu(x: ArrayT | None = None, /, *, axis: int = -1, gate: ArrayT | None = None,
          up: ArrayT | None = None) -> ArrayT:
    """GeGLU with the exact (erf) gelu (Shazeer 2020; Gemma uses ``geglu_approx``):
    ``up * gelu(gate)``.
    {forms}
    Derivative: ``gelu(gate)`` for up, ``up * gelu'(gate)`` for gate (gelu's own formulas).

    Example:
        >>> A.geglu(np.array([1.0, 2.0, -1.0, 1.0]))
        array([-0.15865525,  1.68268949])
    """
    return apply_gated(_GEGLU, x, axis, gate, up)


@_register(_GEGLU_APPROX)
def geglu_approx(x: ArrayT | None = None, /, *, axis: int = -1, gate: ArrayT | None = None,
                 up: ArrayT | None = None) -> ArrayT:
    """GeGLU with the tanh form of gelu (``gelu_approx``; Gemma's ``gelu_pytorch_tanh``):
    ``up * gelu_approx(gate)``.
    {forms}
    Derivative: ``gelu_approx(gate)`` for up, ``up * gelu_approx'(gate)`` for gate.

    Example:
        >>> A.geglu_approx(np.array([1.0, 2.0, -1.0, 1.0]))
        array([-0.15880801,  1.68238398])
    """
    return apply_gated(_GEGLU_APPROX, x, axis, gate, up)


@_register(_REGLU)
def reglu(x: ArrayT | None = None, /, *, axis: int = -1, gate: ArrayT | None = None,
          up: ArrayT | None = None) -> ArrayT:
    """ReGLU (Shazeer 2020): ``up * relu(gate)``.
    {forms}
    Derivative: ``relu(gate)`` for up, ``up`` for gate > 0 and 0 for gate <= 0 (relu's 0 at the
    kink, as torch's autograd of ``F.relu(gate) * up``).

    Example:
        >>> A.reglu(np.array([1.0, 2.0, -1.0, 1.0]))
        array([0., 2.])
    """
    return apply_gated(_REGLU, x, axis, gate, up)


for _f, _act in ((swiglu, "silu"), (geglu, "gelu"), (geglu_approx, "gelu_approx"), (reglu, "relu")):
    _f.__doc__ = (_f.__doc__ or "").replace(
        "{forms}", _GATED_FORMS.format(name=_f.__name__, act=_act))


# -- elementwise, beyond the spec: relu_squared (Primer), quick_gelu (CLIP) ----------------------


def _relu_squared(o: Any, x: Array) -> Array:
    r = _relu(o, x)
    return r * r


def _d_relu_squared(o: Any, x: Array) -> Array:
    return 2.0 * _relu(o, x)


def _d2_relu_squared(o: Any, x: Array) -> Array:
    return 2.0 * _d_relu(o, x)  # 0 at the kink: the x < 0 side, as relu's


_RELU_SQUARED = Entry("relu_squared", "standard", "max(x, 0)^2", _relu_squared, _d_relu_squared,
                      deriv2=_d2_relu_squared, extra=True)


@_register(_RELU_SQUARED)
def relu_squared(x: ArrayT, /) -> ArrayT:
    """Squared ReLU (So et al. 2021, Primer; Hugging Face's ``relu2``): ``max(x, 0)^2``.

    Derivative: ``2 max(x, 0)``; the second derivative 2 for x > 0, else 0 (0 at the kink, as
    relu's derivative).

    Example:
        >>> A.relu_squared(np.array([-2.0, 0.5, 3.0]))
        array([0.  , 0.25, 9.  ])
    """
    return apply(_RELU_SQUARED, x, ())


# quick_gelu's 1.702 as a decimal, split per working precision (k = hi + lo): the rounding of the
# constant and of the product k x would cost |k x| ulp of exp(-|k x|) in the tail
_QG_K = Decimal("1.702")
_QG_SPLIT = {p: (h, float(_D50.subtract(_QG_K, Decimal(h)))) for p, h in (
    (32, sp.round_const(1.702, 32)[0]), (64, 1.702))}


def _qg_arg(o: Any, x: Array) -> tuple[Array, Array]:
    """(z, c): 1.702 x = z + c, z = fl(k_hi x), c the rounding of the product and of k."""
    k_hi, k_lo = _QG_SPLIT[o.prec(x)]
    xc = o.clip(x, -1e3, 1e3)  # (past it exp is 0 in every dtype; two_prod must not overflow)
    z, e = sp.two_prod_const(o, xc, k_hi)
    return z, e + xc * k_lo


def _qg_parts(o: Any, x: Array) -> tuple[Array, Array, Array, Array, Array, Array, Array, Array]:
    """(xl, z, c, pos, ts, sc, t, r): xl = x with -inf -> the most negative finite; 1.702 x =
    z + c (c the rounding of the product and of the constant), t = exp(-|z|) = ts sc, r = 1/(1+t);
    sigmoid(1.702 x) = s (1 + sn c) to first order (s = r, sn = t r for x >= 0, swapped below)."""
    xl = _lo(o, x)
    z, c = _qg_arg(o, x)
    pos, _, ts, sc, t, r = _sig_parts(o, z)
    return xl, z, c, pos, ts, sc, t, r


def _quick_gelu(o: Any, x: Array) -> Array:
    xl, _, c, pos, ts, sc, t, r = _qg_parts(o, x)
    return o.where(pos, xl * r * (1.0 + t * r * c), (((xl * ts) * r) * (1.0 + r * c)) * sc)


def _d_quick_gelu(o: Any, x: Array) -> Array:
    # s + 1.702 x s sn = s (1 + z sn), s and sn corrected by c as in the value
    _, z, c, pos, ts, sc, t, r = _qg_parts(o, x)
    tr = t * r
    d_pos = r * (1.0 + tr * c) * (1.0 + z * tr * (1.0 - r * c))
    d_neg = ((ts * r) * (1.0 + r * c) * (1.0 + z * r * (1.0 - tr * c))) * sc
    return o.where(pos, d_pos, d_neg)


def _d2_quick_gelu(o: Any, x: Array) -> Array:
    # k silu2(k x) at k x = z + c: k (silu2(z) + c silu3(z)), silu's written forms (exact next
    # to their zeros); c carries the rounding of k x, which the tail's exp(-|z|) would
    # multiply by |z|
    z, c = _qg_arg(o, x)
    return 1.702 * (_d2_silu(o, z) + c * _d3_silu(o, z))


def _d3_quick_gelu(o: Any, x: Array) -> Array:
    # k^2 silu3(z + c), to first order in c: silu4 ~ -sign(z) silu3 wherever c matters (the
    # tails, |z| large); next to the zero at 0, c is far below z and silu3 ~ -z
    z, c = _qg_arg(o, x)
    return (2.896804 * _d3_silu(o, z)) * (1.0 - o.where(z > 0.0, c, -c))


_QUICK_GELU = Entry("quick_gelu", "smooth", "x * sigmoid(1.702 x)", _quick_gelu, _d_quick_gelu,
                    smooth=True, extra=True, deriv2=_d2_quick_gelu, deriv3=_d3_quick_gelu)


@_register(_QUICK_GELU)
def quick_gelu(x: ArrayT, /) -> ArrayT:
    """Quick GELU (CLIP; Hugging Face's ``quick_gelu``): ``x * sigmoid(1.702 x)``, with 1.702
    exact (the rounding of the constant and of ``1.702 x`` carried as an error term, so the
    negative tail keeps its relative precision).

    Derivative: ``sigmoid(1.702 x) (1 + 1.702 x sigmoid(-1.702 x))``; orders 2 and 3 by
    forward-mode differentiation of it (kaun._dual).

    Example:
        >>> A.quick_gelu(np.array([-1.0, 0.0, 1.0]))
        array([-0.15420423,  0.        ,  0.84579577])
    """
    return apply(_QUICK_GELU, x, ())


# ================================ Sparse activations ==========================================


def _sparse_plus(o: Any, x: Array) -> Array:
    c = o.clip(x, -1.0, 1.0) + 1.0
    return o.where(x >= 1.0, x, 0.25 * c * c)


def _d_sparse_plus(o: Any, x: Array) -> Array:
    return 0.5 * o.clip(x, -1.0, 1.0) + 0.5


_SPARSE_PLUS = Entry(
    "sparse_plus", "sparse", "x if x >= 1; 0 if x <= -1; 0.25 * (x + 1)^2 otherwise",
    _sparse_plus, _d_sparse_plus,
    # sparse_sigmoid's derivative (0 at +-1, the conventions' saturated side), not clip's 0.5 there
    deriv2=lambda o, x: _d_sparse_sigmoid(o, x),
)


@_register(_SPARSE_PLUS)
def sparse_plus(x: ArrayT, /) -> ArrayT:
    """Sparse plus: ``x`` for x >= 1, 0 for x <= -1, ``0.25 * (x + 1)^2`` in between.

    Derivative: ``sparse_sigmoid(x)``: 0, ``(x + 1) / 2``, 1 (continuous).

    Example:
        >>> A.sparse_plus(np.array([-2.0, 0.0, 2.0]))
        array([0.  , 0.25, 2.  ])
    """
    return apply(_SPARSE_PLUS, x, ())


def _sparse_sigmoid(o: Any, x: Array) -> Array:
    return _d_sparse_plus(o, x)


def _d_sparse_sigmoid(o: Any, x: Array) -> Array:
    return 0.5 * o.mask((x > -1.0) & (x < 1.0), x)


_SPARSE_SIGMOID = Entry(
    "sparse_sigmoid", "sparse", "1 if x >= 1; 0 if x <= -1; 0.5 * (x + 1) otherwise",
    _sparse_sigmoid, _d_sparse_sigmoid,
)


@_register(_SPARSE_SIGMOID)
def sparse_sigmoid(x: ArrayT, /) -> ArrayT:
    """Sparse sigmoid: 1 for x >= 1, 0 for x <= -1, ``0.5 * (x + 1)`` in between.

    Derivative: 0.5 on (-1, 1), else 0 (0 at +-1).

    Example:
        >>> A.sparse_sigmoid(np.array([-2.0, -0.5, 0.5, 2.0]))
        array([0.  , 0.25, 0.75, 1.  ])
    """
    return apply(_SPARSE_SIGMOID, x, ())


# prelu with a Python-number alpha: the same math as leaky_relu, under prelu's name.
PRELU_SCALAR = Entry(
    "prelu", "standard", _PRELU.formula, _leaky_relu, _d_leaky_relu, params=(("alpha", 0.0),),
    prep=_prep_slope, forms=((0.25,),), key="prelu_scalar", fn=prelu,
)
ALL[PRELU_SCALAR.key] = PRELU_SCALAR
