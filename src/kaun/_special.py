"""Error-free arithmetic and an erfc written in the formula vocabulary.

Everything here takes an ops namespace ``o`` (see ``kaun._backends``) and arrays of the working
dtype (float32 or float64), so the same code runs on NumPy, torch, jax.numpy and any Array API
namespace. No function here allocates more than a handful of temporaries of the input's size.

Accuracy (measured by ``benchmarks/accuracy.py``): ``erfc_gauss`` returns erfc(w) and exp(-w^2)
within 3 ulp of the working dtype over the whole real line, because exp(-w^2) is evaluated from
an exact split of w^2 rather than from its rounded value (the usual Cephes/XLA formula loses
|w|^2 ulp in the tail: about 170 ulp at w = 26 in float64).
"""

from __future__ import annotations

import functools
from typing import Any

Array = Any

# Veltkamp's constant 2^s + 1 splits a float of p bits into two halves of p/2 bits.
_SPLIT = {32: 4097.0, 64: 134217729.0}

# Cephes ndtr.c rational approximations (S. L. Moshier), in ascending use:
# erf(w) = w T(w^2) / U(w^2) for |w| < 1, erfc(a) = exp(-a^2) P(a) / Q(a) for 1 <= a < 8,
# and exp(-a^2) R(a) / S(a) for a >= 8. Q, S and U have an implicit leading 1.
_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3,
      7.00332514112805075473e3, 5.55923013010394962768e4)
_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
      2.26290000613890934246e4, 4.92673942608635921086e4)
_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
      4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
      9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_Q = (1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
      9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
      1.65666309194161350182e3, 5.57535340817727675546e2)
_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
      6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_S = (1.0, 2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
      1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)

TWO_OVER_SQRT_PI = 1.1283791670955126


def _horner(x: Array, coefs: tuple[float, ...]) -> Array:
    y = x * coefs[0] + coefs[1]
    for c in coefs[2:]:
        y = y * x + c
    return y


def split(o: Any, a: Array) -> tuple[Array, Array]:
    """Veltkamp split: a = hi + lo exactly, each half of the significand (|a| < 1e30)."""
    s = a * _SPLIT[o.prec(a)]
    hi = s - (s - a)
    return hi, a - hi


def two_prod(o: Any, a: Array, b: Array) -> tuple[Array, Array]:
    """Dekker's product: a*b = p + e exactly, without an fma (|a|, |b| < 1e15)."""
    p = a * b
    ah, al = split(o, a)
    bh, bl = split(o, b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


def gauss(o: Any, wh: Array, wl: Array | float = 0.0) -> Array:
    """exp(-(wh + wl)^2) without the |w|^2-fold error of rounding w^2 first (|wh| <= 40)."""
    sq, sqe = two_prod(o, wh, wh)
    return o.exp(-sq) * (1.0 - (sqe + 2.0 * wh * wl))


def erfc_gauss(o: Any, wh: Array, wl: Array | float = 0.0) -> tuple[Array, Array]:
    """(erfc(w), exp(-w^2)) for w = wh + wl, wl a correction below half an ulp of wh.

    The correction enters to first order: erfc(wh + wl) = erfc(wh) - 2/sqrt(pi) exp(-wh^2) wl.
    """
    w = o.clip(wh, -40.0, 40.0)  # erfc is 0 or 2 to every precision past 27
    a = o.abs(w)
    g = gauss(o, w, wl)
    ac = o.clip(a, 1.0, None)  # keeps the unused branches finite (and their gradients)
    ratio = o.where(a < 8.0, _horner(ac, _P) / _horner(ac, _Q), _horner(ac, _R) / _horner(ac, _S))
    tail = g * ratio  # erfc(|w|) for |w| >= 1
    ws = o.clip(w, -1.0, 1.0)
    w2 = ws * ws
    small = 1.0 - ws * _horner(w2, _T) / _horner(w2, _U)
    y = o.where(a < 1.0, small, o.where(w < 0.0, 2.0 - tail, tail))
    return y - TWO_OVER_SQRT_PI * g * wl, g


def erfc(o: Any, w: Array) -> Array:
    """Complementary error function in the working dtype, accurate to a few ulp everywhere."""
    return erfc_gauss(o, w)[0]


@functools.lru_cache(maxsize=64)
def split_const(b: float, prec: int) -> tuple[float, float]:
    """Veltkamp split of a constant in the arithmetic of the working dtype."""
    import numpy as np

    t = np.float32 if prec == 32 else np.float64
    bb, s = t(b), t(_SPLIT[prec])
    with np.errstate(all="ignore"):
        c = s * bb
        hi = c - (c - bb)
    return float(hi), float(bb - hi)


def two_prod_const(o: Any, a: Array, b: float) -> tuple[Array, Array]:
    """two_prod with a constant b, exactly representable in the working dtype."""
    p = a * b
    ah, al = split(o, a)
    bh, bl = split_const(b, o.prec(a))
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e
