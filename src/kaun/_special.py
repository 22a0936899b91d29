"""Error-free arithmetic and an erfc written in the formula vocabulary.

Everything here takes an ops namespace ``o`` (see ``kaun._backends``) and arrays of the working
dtype (float32 or float64), so the same code runs on NumPy, torch, jax.numpy and any Array API
namespace. No function here allocates more than a handful of temporaries of the input's size.

Accuracy (measured by ``benchmarks/accuracy.py``, through gelu): ``erfc_gauss`` returns erfc(w)
and exp(-w^2) within about 3 ulp of the working dtype over the whole real line, because exp(-w^2)
is evaluated from an exact split of w^2 rather than from its rounded value (the usual
Cephes/XLA formula loses |w|^2 ulp in the tail: about 170 ulp at w = 26 in float64).

Error-free transformations meet compilers that contract a product and a sum into an fma (XLA on
CPU does). A product contracted inside ``two_prod`` keeps it accurate to far below an ulp; a
product that feeds ``two_sum`` or ``exp`` while its error term is used elsewhere is passed through
``clip(p, 0, None)`` or an equivalent no-op first, which no compiler contracts through.
"""

from __future__ import annotations

import math
from typing import Any

Array = Any

# Veltkamp's constant 2^s + 1 splits a float of p bits into two halves of p/2 bits.
SPLIT = {32: 4097.0, 64: 134217729.0}

# Cephes ndtr.c (S. L. Moshier): erf(w) = w T(w^2) / U(w^2) for |w| < 0.84375 (U with its
# leading 1 written out).
_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
      7.00332514112805075473e3, 5.55923013010394962768e4)
_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
      2.26290000613890934246e4, 4.92673942608635921086e4)

# The FDLIBM coefficients below come from s_erf.c 1.3 95/01/18, with this notice:
#   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
#   Developed at SunSoft, a Sun Microsystems, Inc. business.
#   Permission to use, copy, modify, and distribute this software is freely granted,
#   provided that this notice is preserved.
# FDLIBM s_erf.c: erfc(w) = (1 - erx) - P(s) / Q(s),
# s = w - 1, for 0.84375 <= w < 1.25, where 1 - erf(w) would lose three bits; highest first.
_ERX = 8.45062911510467529297e-01  # 24 bits: 1 - erx is exact in float32 and float64
_PA = (-2.16637559486879084300e-03, 3.54783043256182359371e-02, -1.10894694282396677476e-01,
       3.18346619901161753674e-01, -3.72207876035701323847e-01, 4.14856118683748331666e-01,
       -2.36211856075265944077e-03)
_QA = (1.19844998467991074170e-02, 1.36370839120290507362e-02, 1.26171219808761642112e-01,
       7.18286544141962662868e-02, 5.40397917702171048937e-01, 1.06420880400844228286e-01, 1.0)

# FDLIBM again, for |w| >= 1.25: erfc(|w|) = exp(-w^2) exp(R(s) / S(s) - 0.5625) / |w|, s = 1/w^2,
# (ra, sa) below 1/0.35 and (rb, sb) above; R/S enters an exponent, so its rounding hardly counts.
_RA = (-9.81432934416914548592e+00, -8.12874355063065934246e+01, -1.84605092906711035994e+02,
       -1.62396669462573470355e+02, -6.23753324503260060396e+01, -1.05586262253232909814e+01,
       -6.93858572707181764372e-01, -9.86494403484714822705e-03)
_SA = (-6.04244152148580987438e-02, 6.57024977031928170135e+00, 1.08635005541779435134e+02,
       4.29008140027567833386e+02, 6.45387271733267880336e+02, 4.34565877475229228821e+02,
       1.37657754143519042600e+02, 1.96512716674392571292e+01, 1.0)
_RB = (-4.83519191608651397019e+02, -1.02509513161107724954e+03, -6.37566443368389627722e+02,
       -1.60636384855821916062e+02, -1.77579549177547519889e+01, -7.99283237680523006574e-01,
       -9.86494292470009928597e-03)
_SB = (-2.24409524465858183362e+01, 4.74528541206955367215e+02, 2.55305040643316442583e+03,
       3.19985821950859553908e+03, 1.53672958608443695994e+03, 3.25792512996573918826e+02,
       3.03380607434824582924e+01, 1.0)

TWO_OVER_SQRT_PI = 1.1283791670955126


def horner(o: Any, x: Array, coefs: tuple[float, ...]) -> Array:
    """The polynomial of coefs (highest degree first) at x. Where the ops namespace has ``fma``
    (the compiled kernels, whose C fuses nothing it is not told to), each step is one fma:
    as accurate, and one operation where it was two."""
    fma = getattr(o, "fma", None)
    if fma is None:
        y = x * coefs[0] + coefs[1]
        for c in coefs[2:]:
            y = y * x + c
        return y
    y = fma(x, coefs[0], coefs[1])
    for c in coefs[2:]:
        y = fma(y, x, c)
    return y


def split(o: Any, a: Array) -> tuple[Array, Array]:
    """Veltkamp split: a = hi + lo exactly, each half of the significand (|a| < 1e30)."""
    s = a * SPLIT[o.prec(a)]
    hi = s - (s - a)
    return hi, a - hi


def two_prod(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    """Dekker's product: a*b = p + e exactly, without an fma (|a|, |b| < 1e15). Where the ops
    namespace has ``prod_err`` (the compiled kernels: one fma), e comes from it: the same exact
    value."""
    p = a * b
    err = getattr(o, "prod_err", None)
    if err is not None:
        return p, err(a, b)
    ah, al = split(o, a)
    bh, bl = split(o, b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


# Where exp(-z) leaves the normal range (z > th), exp(-z) is evaluated as exp(-z + S) * exp(-S):
# -z + S is exact there (|z| >= S, and S is a multiple of ulp(z)), exp(-z + S) is normal and the
# constant exp(-S) is applied last, so a result that is normal (x * exp(-z) with x large) or
# subnormal keeps its precision instead of inheriting that of a subnormal intermediate (and XLA's
# flush to zero of subnormals on CPU loses only results that are themselves subnormal).
# The thresholds leave room (2^20 and more) for the small factors that follow (erfc's 1/w).
TAIL = {32: (72.0, 64.0, math.exp(-64.0)), 64: (690.0, 512.0, math.exp(-512.0))}


def exp_neg(o: Any, z: Array, general: bool = False) -> tuple[Array, Array]:
    """(e, sc) with exp(-z) = e * sc for z >= 0: e is normal unless exp(-z) is 0 to every
    precision, sc is 1 or the constant exp(-S). Multiply sc in last.

    e is exp_normal's (one scale factor; 0 where it would be subnormal, z > S + 87 in float32
    and S + 708 in float64): there exp(-z) is below 2^-126 e^-64 (2^-1022 e^-512), and its
    product with any factor below 2^60 (2^600), or with a power of z, is 0 in that precision,
    as the callers here multiply it. ``general``: o.exp, for a z that may be negative or a
    factor of the user's (elu's alpha up to 3.4e38, celu's negative alpha)."""
    th, s, c = TAIL[o.prec(z)]
    m = o.mask(z > th, z)
    return (o.exp if general else o.exp_normal)(s * m - z), m * c + (1.0 - m)


def two_sum(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    """Knuth's sum: a + b = s + e exactly (no overflow)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def gauss_scaled(o: Any, wh: Array, wl: Array | float = 0.0) -> tuple[Array, Array]:
    """(g, sc) with exp(-(wh + wl)^2) = g * sc, g normal (see exp_neg)."""
    e, d, sc = _gauss_parts(o, wh, wl)
    return e * (1.0 - d), sc


def _gauss_parts(o: Any, wh: Array, wl: Array | float) -> tuple[Array, Array, Array]:
    """(e, d, sc): exp(-(wh + wl)^2) = e * exp(-d) * sc, d tiny (the error terms of w^2)."""
    sq, sqe = two_prod(o, wh, wh)
    # max(., 0) is a no-op that keeps a compiler from contracting the product into a later
    # subtraction (an fma there would make sq exact and sqe counted twice): XLA on CPU does that
    e, sc = exp_neg(o, o.clip(sq, 0.0, None))
    return e, sqe + 2.0 * wh * wl, sc


def erfc_gauss(o: Any, wh: Array, wl: Array | float = 0.0) -> tuple[Array, Array]:
    """(erfc(w), exp(-w^2)) for w = wh + wl, wl a correction below half an ulp of wh."""
    y, g, sc = erfc_gauss_scaled(o, wh, wl)
    return y * sc, g * sc


def erfc_gauss_scaled(o: Any, wh: Array, wl: Array | float = 0.0
                      ) -> tuple[Array, Array, Array]:
    """(y, g, sc) with erfc(w) = y * sc and exp(-w^2) = g * sc, for w = wh + wl, wl a correction
    below half an ulp of wh; sc is 1 except far in the right tail, where it keeps y and g normal.

    For |w| >= 1.25 the correction is carried by exp(-(wh + wl)^2) itself (erfc = exp(-w^2) R(w)
    with R slowly varying); for |w| < 1.25 it enters to first order:
    erfc(wh + wl) = erfc(wh) - 2/sqrt(pi) exp(-wh^2) wl.
    """
    w = o.clip(wh, -40.0, 40.0)  # erfc is 0 or 2 to every precision past 27
    a = o.abs(w)
    e, d, sc = _gauss_parts(o, w, wl)
    # for w <= 0 nothing is scaled (2 - tail is near 2 wherever exp(-w^2) is tiny)
    pos = w > 0.0
    e = o.where(pos, e, e * sc)
    sc = o.where(pos, sc, 1.0)
    g = e * (1.0 - d)
    ac = o.clip(a, 1.25, None)  # keeps the unused branches finite (and their gradients)
    s2 = 1.0 / (ac * ac)
    rs = o.where(ac < 1.0 / 0.35, horner(o, s2, _RA) / horner(o, s2, _SA),
                 horner(o, s2, _RB) / horner(o, s2, _SB))
    # erfc(|w|) for |w| >= 1.25 (scaled by 1/sc for w > 0), the error terms d of w^2 folded into
    # the second exponent (one rounding fewer than g * exp(rs - 0.5625))
    tail = e * (o.exp((rs - 0.5625) - d) / ac)
    corr = TWO_OVER_SQRT_PI * g * wl  # first order, where exp(-w^2) does not carry wl
    ws = o.clip(w, -1.0, 1.0)
    w2 = ws * ws
    small = (1.0 - ws * horner(o, w2, _T) / horner(o, w2, _U)) - corr
    sm = o.clip(a, 0.84375, 1.25) - 1.0
    mid = (1.0 - _ERX) - horner(o, sm, _PA) / horner(o, sm, _QA)  # erfc(|w|), 0.84375 <= |w| < 1.25
    pos_w = w >= 0.0
    y = o.where(
        a < 0.84375, small,
        o.where(a < 1.25, o.where(pos_w, mid, 2.0 - mid) - corr,
                o.where(pos_w, tail, 2.0 - tail)),
    )
    return y, g, sc


def erfc(o: Any, w: Array) -> Array:
    """Complementary error function in the working dtype, accurate to a few ulp everywhere."""
    return erfc_gauss(o, w)[0]


def round_const(b: float, prec: int) -> tuple[float, float]:
    """(bw, rest): b rounded to nearest in the working precision, and b - bw (a float64), in
    plain Python arithmetic. b must be normal in the working dtype."""
    p = 24 if prec == 32 else 53
    m, e = math.frexp(b)
    bw = math.ldexp(round(m * 2.0**p) / 2.0**p, e)
    return bw, b - bw


def split_const(b: float, prec: int) -> tuple[float, float]:
    """b as the working dtype holds it (round to nearest), split into two halves of its
    significand (at most 12 bits each in float32, 26 in float64), in plain Python arithmetic:
    constant-folded by torch.compile and jax.jit alike. b must be normal in the working dtype."""
    p = 24 if prec == 32 else 53
    m, e = math.frexp(b)
    m = round(m * 2.0**p) / 2.0**p
    hi = math.ldexp(round(m * 2.0 ** (p // 2)) / 2.0 ** (p // 2), e)
    return hi, math.ldexp(m, e) - hi


def two_prod_const(o: Any, a: Array, b: float) -> tuple[Array, Array]:
    """two_prod with a Python float b, as the working dtype rounds it."""
    return two_prod_split(o, a, b, *split_const(b, o.prec(a)))


def two_prod_split(o: Any, a: Array, b: Any, bh: Any, bl: Any) -> tuple[Array, Array]:
    """two_prod with a constant b of the working dtype given with its halves (bh, bl) from
    ``split_const``: a run-time scalar of a compiled kernel, or a Python float."""
    p = a * b
    err = getattr(o, "prod_err", None)
    if err is not None:
        return p, err(a, b)
    ah, al = split(o, a)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e
