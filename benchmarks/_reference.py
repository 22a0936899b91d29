"""The high-precision reference for kaun.activation, shared by benchmarks/accuracy.py and
tests/test_accuracy.py (one copy only).

- ``REF[name](x) -> (f(x), f'(x))``: the true math, evaluated by mpmath at ``DPS`` digits on the
  exact value of a float input. Each formula is written in a form without cancellation, so all
  ``DPS`` digits are good (e.g. ``sigmoid' = sigmoid(x) * sigmoid(-x)``, squareplus for x < 0 as
  ``2 / (sqrt(x^2 + 4) - x)``). Hyper-parameters are at their defaults, with the decimal
  constants exact (0.01, 1/6, 0.044715, sqrt(2/pi), the selu constants).
- ``reference(name, xs)``: arrays that encode f and f' at every point exactly enough to measure a
  float64 result to a fraction of an ulp (a double-double significand and an integer exponent).
- ``ulp_error(y, ref, dtype, ...)``: the error of a result, in ULPs of ``dtype``, by the rule that
  docs/accuracy.md states (see ``RULE``).
- ``grid(dtype, quick)``: the inputs: every finite float16/bfloat16 value, or a grid of >= 20,000
  float32/float64 values over the whole finite range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import ml_dtypes
import mpmath
import numpy as np
from mpmath import mp, mpf

DPS = 60
REF_VERSION = 3  # bump when a reference formula or the encoding changes (invalidates the cache)
REF23_VERSION = 2  # the same for orders 2 and 3 (REF23), cached in files of their own

MPF = mpmath.mpf
Pair = tuple[MPF, MPF]

# -- dtypes -------------------------------------------------------------------------------------

DTYPES = ("float16", "bfloat16", "float32", "float64")

# kaun's targets, (value, derivative) in ULP: the bounds that docs/accuracy.md reports against and
# tests/test_accuracy.py asserts
TARGET = {
    "float16": (1.0, 2.0), "bfloat16": (1.0, 2.0), "float32": (4.0, 16.0), "float64": (4.0, 16.0),
}


@dataclass(frozen=True)
class Fmt:
    """A binary floating-point format: p significand bits (with the implicit one), emin the
    exponent of the smallest normal, emax that of the largest finite value."""

    name: str
    p: int
    emin: int
    emax: int

    @property
    def np(self) -> np.dtype:
        return np.dtype(ml_dtypes.bfloat16) if self.name == "bfloat16" else np.dtype(self.name)

    @property
    def tiny(self) -> float:  # smallest subnormal
        return math.ldexp(1.0, self.emin - self.p + 1)

    @property
    def big(self) -> float:
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.p), self.emax)

    @property
    def eps(self) -> float:  # ulp(1)
        return math.ldexp(1.0, 1 - self.p)


FMT = {
    "float16": Fmt("float16", 11, -14, 15),
    "bfloat16": Fmt("bfloat16", 8, -126, 127),
    "float32": Fmt("float32", 24, -126, 127),
    "float64": Fmt("float64", 53, -1022, 1023),
}

# -- mpmath helpers -----------------------------------------------------------------------------

_HUGE = 30000  # exp(-_HUGE) < 2^-43000: zero to every dtype, so kept as an exact zero


def _exp(z: MPF) -> MPF:
    """exp(z), with an exact 0 for z < -_HUGE (never called with z > _HUGE)."""
    return mpf(0) if z < -_HUGE else mp.exp(z)


def _sig(x: MPF) -> MPF:
    """sigmoid(x) to full relative precision on both sides."""
    if x >= 0:
        return 1 / (1 + _exp(-x))
    e = _exp(x)
    return e / (1 + e)


def _softplus(x: MPF) -> MPF:
    return x + mp.log1p(_exp(-x)) if x > 0 else mp.log1p(_exp(x))


def _tanh(z: MPF) -> MPF:
    return mp.tanh(z) if abs(z) < _HUGE else mp.sign(z)


def _sech2(z: MPF) -> MPF:
    e = _exp(-2 * abs(z))
    return 4 * e / (1 + e) ** 2


def _clip(x: MPF, lo: MPF, hi: MPF) -> MPF:
    return lo if x < lo else hi if x > hi else x


class _C:
    """Constants at the working precision (built once per precision, lazily): the references
    of orders 2 and 3 are evaluated twice, at two precisions, and the constants must follow."""

    _at: dict[int, _C] = {}

    def __init__(self) -> None:
        self.SQRT2 = mp.sqrt(2)
        self.INV_SQRT_2PI = 1 / mp.sqrt(2 * mp.pi)
        self.GA_C = mp.sqrt(2 / mp.pi)
        self.GA_K = mpf("0.044715")
        self.SELU_A = mpf("1.6732632423543772848170429916717")
        self.SELU_L = mpf("1.0507009873554804934193349852946")
        self.SLOPE = mpf("0.01")
        self.PRELU = mpf("0.25")
        self.SIXTH = mpf(1) / 6
        self.HALF = mpf(1) / 2

    @classmethod
    def get(cls) -> _C:
        c = cls._at.get(mp.prec)
        if c is None:
            c = cls._at[mp.prec] = cls()
        return c


# -- the true functions: x -> (f(x), f'(x)) ----------------------------------------------------


def _relu(x: MPF) -> Pair:
    return (x, mpf(1)) if x > 0 else (mpf(0), mpf(0))


def _sigmoid(x: MPF) -> Pair:
    s, sn = _sig(x), _sig(-x)
    return s, s * sn


def _tanh_f(x: MPF) -> Pair:
    return _tanh(x), _sech2(x)


def _relu6(x: MPF) -> Pair:
    return _clip(x, mpf(0), mpf(6)), mpf(1 if 0 < x < 6 else 0)


def _leaky_relu(x: MPF) -> Pair:
    c = _C.get().SLOPE
    return (x, mpf(1)) if x > 0 else (c * x, c)


def _hard_tanh(x: MPF) -> Pair:
    return _clip(x, mpf(-1), mpf(1)), mpf(1 if -1 < x < 1 else 0)


def _hard_sigmoid(x: MPF) -> Pair:
    c = _C.get()
    u = x * c.SIXTH + c.HALF
    return _clip(u, mpf(0), mpf(1)), (c.SIXTH if 0 < u < 1 else mpf(0))


def _prelu(x: MPF) -> Pair:
    a = _C.get().PRELU
    return (x, mpf(1)) if x > 0 else (a * x, a)


def _elu(x: MPF) -> Pair:
    return (x, mpf(1)) if x > 0 else (mp.expm1(x), _exp(x))


def _selu(x: MPF) -> Pair:
    c = _C.get()
    if x > 0:
        return c.SELU_L * x, c.SELU_L
    return c.SELU_L * c.SELU_A * mp.expm1(x), c.SELU_L * c.SELU_A * _exp(x)


def _gelu(x: MPF) -> Pair:
    c = _C.get()
    if x < -_HUGE:
        return mpf(0), mpf(0)
    e = mp.erfc(-x / c.SQRT2)
    return x * e / 2, e / 2 + x * _exp(-x * x / 2) * c.INV_SQRT_2PI


def _gelu_approx(x: MPF) -> Pair:
    c = _C.get()
    v = 2 * c.GA_C * (x + c.GA_K * x**3)
    s, sn = _sig(v), _sig(-v)
    dv = 2 * c.GA_C * (1 + 3 * c.GA_K * x * x)
    return x * s, s + x * dv * s * sn


def _silu(x: MPF) -> Pair:
    s, sn = _sig(x), _sig(-x)
    return x * s, s * (1 + x * sn)


def _hard_silu(x: MPF) -> Pair:
    c = _C.get()
    u = x * c.SIXTH + c.HALF
    if u <= 0:
        return mpf(0), mpf(0)
    if u >= 1:
        return x, mpf(1)
    return x * u, x / 3 + c.HALF


def _mish(x: MPF) -> Pair:
    sp = _softplus(x)
    g = _tanh(sp)
    return x * g, g + x * _sech2(sp) * _sig(x)


def _softplus_f(x: MPF) -> Pair:
    return _softplus(x), _sig(x)


def _softsign(x: MPF) -> Pair:
    r = 1 / (1 + abs(x))
    return x * r, r * r


def _squareplus(x: MPF) -> Pair:
    r = mp.sqrt(x * x + 4)
    if x >= 0:
        return (x + r) / 2, (1 + x / r) / 2
    return 2 / (r - x), 2 / (r * (r - x))


def _log_sigmoid(x: MPF) -> Pair:
    return -_softplus(-x), _sig(-x)


def _sparse_plus(x: MPF) -> Pair:
    if x <= -1:
        return mpf(0), mpf(0)
    if x >= 1:
        return x, mpf(1)
    return (x + 1) ** 2 / 4, (x + 1) / 2


def _sparse_sigmoid(x: MPF) -> Pair:
    return _clip((x + 1) / 2, mpf(0), mpf(1)), mpf("0.5") if -1 < x < 1 else mpf(0)


def _relu_squared(x: MPF) -> Pair:
    return (x * x, 2 * x) if x > 0 else (mpf(0), mpf(0))


def _quick_gelu(x: MPF) -> Pair:
    # x sigmoid(k x), k = 1.702 exact (as kaun takes it): f' = s (1 + k x sn)
    k = mpf("1.702")
    s, sn = _sig(k * x), _sig(-k * x)
    return x * s, s * (1 + k * x * sn)


REF: dict[str, Callable[[MPF], Pair]] = {
    "relu": _relu,
    "sigmoid": _sigmoid,
    "tanh": _tanh_f,
    "relu6": _relu6,
    "leaky_relu": _leaky_relu,
    "hard_tanh": _hard_tanh,
    "hard_sigmoid": _hard_sigmoid,
    "prelu": _prelu,
    "elu": _elu,
    "selu": _selu,
    "celu": _elu,  # celu with alpha = 1 is elu with alpha = 1
    "gelu": _gelu,
    "gelu_approx": _gelu_approx,
    "silu": _silu,
    "hard_silu": _hard_silu,
    "mish": _mish,
    "softplus": _softplus_f,
    "softsign": _softsign,
    "squareplus": _squareplus,
    "log_sigmoid": _log_sigmoid,
    "sparse_plus": _sparse_plus,
    "sparse_sigmoid": _sparse_sigmoid,
    # beyond the spec (kaun's extras): measured like the others, marked as extras in the doc
    "relu_squared": _relu_squared,
    "quick_gelu": _quick_gelu,
}
EXTRAS = ("relu_squared", "quick_gelu")
FUNCTIONS = tuple(n for n in REF if n not in EXTRAS)  # the spec's (tests/test_accuracy.py's)
ELEMENTWISE = (*FUNCTIONS, *EXTRAS)  # what benchmarks/accuracy.py measures elementwise


# -- the second and third derivatives: x -> (f''(x), f'''(x)) ----------------------------------
#
# Closed forms (mpmath's numerical mp.diff is no reference in the tails), each free of
# cancellation over the whole finite range, from 5e-324 to 1.8e308: the only differences of
# nearly equal terms are next to the interior zeros of the result (located below and measured by
# the absolute rule there), which the evaluation at two precisions covers (see _checked). At the
# kinks, the value of the outer piece (the x < 0 side at 0 for the relu family, the saturated
# side at a bound for the clamps), as the conventions state for the first derivative.


def _sig_d(v: MPF) -> tuple[MPF, MPF, MPF]:
    """(sigmoid', sigmoid'', sigmoid''') at v: s sn, -s sn tanh(v/2), s sn (1 - 6 s sn), where
    s = sigmoid(v) and sn = sigmoid(-v) = 1 - s (sn - s = -tanh(v/2): no 1 - 2s near 0)."""
    d1 = _sig(v) * _sig(-v)
    return d1, -d1 * _tanh(v / 2), d1 * (1 - 6 * d1)


def _zero23(x: MPF) -> Pair:  # piecewise linear: 0 everywhere, the kinks included
    return mpf(0), mpf(0)


def _sigmoid23(x: MPF) -> Pair:
    _, d2, d3 = _sig_d(x)
    return d2, d3


def _tanh23(x: MPF) -> Pair:
    t, h = _tanh(x), _sech2(x)  # tanh' = h = 1 - t^2
    return -2 * t * h, -2 * h * (1 - 3 * t * t)


def _elu23(x: MPF) -> Pair:  # alpha = 1 (celu too): e^x for x < 0, and at 0 (the x < 0 side)
    e = _exp(x) if x <= 0 else mpf(0)
    return e, e


def _selu23(x: MPF) -> Pair:
    c = _C.get()
    e = c.SELU_L * c.SELU_A * _exp(x) if x <= 0 else mpf(0)
    return e, e


def _gelu23(x: MPF) -> Pair:
    # f = x Phi(x): f'' = phi (2 - x^2), f''' = x phi (x^2 - 4) (x^2 is exact at DPS digits)
    if abs(x) > 1000:
        return mpf(0), mpf(0)  # phi(x) < exp(-500000): zero to every dtype
    phi = _exp(-x * x / 2) * _C.get().INV_SQRT_2PI
    return phi * (2 - x * x), x * phi * (x * x - 4)


def _gelu_approx23(x: MPF) -> Pair:
    # f = x g, g = sigmoid(v), v = a x + b x^3 (a = 2 sqrt(2/pi), b = 0.044715 a):
    # f'' = x g'' + 2 g', f''' = x g''' + 3 g'', g's by the chain rule
    c = _C.get()
    a = 2 * c.GA_C
    b = a * c.GA_K
    if abs(x) > 1e6:
        return mpf(0), mpf(0)  # |v| > 1e17: sigmoid'(v) = 0 to every dtype (and to _exp)
    v = a * x + b * x**3
    d1, d2, d3 = _sig_d(v)
    v1, v2, v3 = a + 3 * b * x * x, 6 * b * x, 6 * b
    g1 = d1 * v1
    g2 = d2 * v1 * v1 + d1 * v2
    g3 = d3 * v1**3 + 3 * d2 * v1 * v2 + d1 * v3
    return x * g2 + 2 * g1, x * g3 + 3 * g2


def _silu23(x: MPF) -> Pair:
    # f = x s(x): f'' = x s'' + 2 s' = s' (2 - x tanh(x/2)), f''' = x s''' + 3 s''
    d1, d2, d3 = _sig_d(x)
    return x * d2 + 2 * d1, x * d3 + 3 * d2


def _hard_silu23(x: MPF) -> Pair:  # 1/3 inside (-3, 3); 0 outside and at the bounds
    return (mpf(1) / 3 if -3 < x < 3 else mpf(0)), mpf(0)


def _mish23(x: MPF) -> Pair:
    # f = x g, g = tanh(softplus(x)) = 1 - 2 / (w^2 + 2w + 2), w = e^x: g', g'', g''' are
    # rational in w (x <= 0) or in q = e^-x (x > 0), their denominators >= 1 and their numerators
    # free of cancellation but next to their roots; f'' = x g'' + 2 g', f''' = x g''' + 3 g''.
    if x <= 0:
        w = _exp(x)
        d = (w + 2) * w + 2
        g1 = 4 * w * (w + 1) / d**2
        g2 = -4 * w * (((2 * w + 3) * w - 2) * w - 2) / d**3
        g3 = 4 * w * ((((4 * w + 5) * w - 24) * w - 32) * w * w + 4) / d**4
    else:
        q = _exp(-x)
        e = (2 * q + 2) * q + 1
        g1 = 4 * q * q * (q + 1) / e**2
        g2 = 4 * q * q * (((2 * q + 2) * q - 3) * q - 2) / e**3
        g3 = 4 * q * q * ((((4 * q * q - 32) * q - 24) * q + 5) * q + 4) / e**4
    return x * g2 + 2 * g1, x * g3 + 3 * g2


def _softplus23(x: MPF) -> Pair:  # f' = s: f'' = s', f''' = s''
    d1, d2, _ = _sig_d(x)
    return d1, d2


def _softsign23(x: MPF) -> Pair:
    # f' = (1 + |x|)^-2: f'' = -2 sign(x) (1 + |x|)^-3, f''' = 6 (1 + |x|)^-4. f'' jumps at 0 (a
    # kink of orders 2 and 3): there the x < 0 side, kaun's convention (docs/conventions.md): 2, 6.
    r = 1 / (1 + abs(x))
    return (-2 if x > 0 else 2) * r**3, 6 * r**4


def _squareplus23(x: MPF) -> Pair:
    # b = 4: f' = (1 + x / r) / 2, r = sqrt(x^2 + 4): f'' = 2 / r^3, f''' = -6 x / r^5
    r = mp.sqrt(x * x + 4)
    return 2 / r**3, -6 * x / r**5


def _log_sigmoid23(x: MPF) -> Pair:  # f' = s(-x): f'' = -s'(x), f''' = -s''(x) (s' even, s'' odd)
    d1, d2, _ = _sig_d(x)
    return -d1, -d2


def _sparse_plus23(x: MPF) -> Pair:  # 1/2 inside (-1, 1); 0 outside and at the bounds
    return (mpf(1) / 2 if -1 < x < 1 else mpf(0)), mpf(0)


def _relu_squared23(x: MPF) -> Pair:  # 2 for x > 0; at the kink 0, the x < 0 side
    return (mpf(2) if x > 0 else mpf(0)), mpf(0)


def _quick_gelu23(x: MPF) -> Pair:
    # f(x) = silu(k x) / k: f'' = k silu''(k x), f''' = k^2 silu'''(k x), k = 1.702 formed at
    # the working precision (the two-precision check of _checked forms it at each)
    k = mpf("1.702")
    d2, d3 = _silu23(k * x)
    return k * d2, k * k * d3


REF23: dict[str, Callable[[MPF], Pair]] = {
    "relu": _zero23,
    "sigmoid": _sigmoid23,
    "tanh": _tanh23,
    "relu6": _zero23,
    "leaky_relu": _zero23,
    "hard_tanh": _zero23,
    "hard_sigmoid": _zero23,
    "prelu": _zero23,
    "elu": _elu23,
    "selu": _selu23,
    "celu": _elu23,  # alpha = 1
    "gelu": _gelu23,
    "gelu_approx": _gelu_approx23,
    "silu": _silu23,
    "hard_silu": _hard_silu23,
    "mish": _mish23,
    "softplus": _softplus23,
    "softsign": _softsign23,
    "squareplus": _squareplus23,
    "log_sigmoid": _log_sigmoid23,
    "sparse_plus": _sparse_plus23,
    "sparse_sigmoid": _zero23,
    "relu_squared": _relu_squared23,
    "quick_gelu": _quick_gelu23,
}
# Piecewise polynomials: their f'' and f''' are constants between the kinks (or e^x), nothing to
# cancel, so evaluated once. The others are evaluated at two precisions (see _checked).
PIECEWISE = ("relu", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "prelu", "elu", "selu",
             "celu", "hard_silu", "sparse_plus", "sparse_sigmoid", "relu_squared")
SMOOTH = tuple(n for n in ELEMENTWISE if n not in PIECEWISE)

# Points where the derivative jumps: autodiff gives a convention there, not a value, so the
# derivative is not measured at exactly these inputs (the conventions are tested elsewhere).
KINKS: dict[str, tuple[float, ...]] = {
    "relu": (0.0,), "relu6": (0.0, 6.0), "leaky_relu": (0.0,), "hard_tanh": (-1.0, 1.0),
    "hard_sigmoid": (-3.0, 3.0), "prelu": (0.0,), "selu": (0.0,), "hard_silu": (-3.0, 3.0),
    "sparse_sigmoid": (-1.0, 1.0),
}
# Orders 2 and 3: where f' has a kink (f'' jumps, f''' is a Dirac delta there) or jumps itself;
# also elu and celu (alpha = 1: f' is continuous at 0, f'' is not), relu_squared (f' = 2 max(x, 0)
# has its kink at 0), sparse_plus (at +-1) and softsign (f'' = -2 sign(x) / (1 + |x|)^3 at 0).
# The conventions of the first derivative carry over (the outer piece: REF23's value there; for
# softsign the x < 0 side, as for the relu family).
KINKS23: dict[str, tuple[float, ...]] = {
    **KINKS, "elu": (0.0,), "celu": (0.0,), "sparse_plus": (-1.0, 1.0), "softsign": (0.0,),
    "relu_squared": (0.0,),
}
CONVENTIONAL23 = tuple(KINKS23)


def kinks(name: str, order: int) -> tuple[float, ...]:
    """The inputs where the derivative of this order is a convention (none for order 0)."""
    return () if order == 0 else KINKS.get(name, ()) if order == 1 else KINKS23.get(name, ())


# Interior zeros (x0 != 0) of f, f', f'' and f''', located by mpmath at import: within
# ZERO_WINDOW of x0 the error of that order is measured in units of ulp(1) (absolute), see RULE.
# Keyed by (name, order); order 1 may be looked up as True too (True == 1).
ZERO_WINDOW = 0.25
_ZERO_GUESS: dict[tuple[str, int], tuple[float, ...]] = {
    ("gelu", 1): (-0.75,), ("gelu_approx", 1): (-0.75,), ("silu", 1): (-1.28,),
    ("mish", 1): (-1.19,),
    # orders 2 and 3, from a scan of [-30, 30] for sign changes (tests/test_accuracy.py redoes it)
    ("sigmoid", 3): (-1.317, 1.317), ("tanh", 3): (-0.658, 0.658),
    ("gelu", 2): (-1.414, 1.414), ("gelu", 3): (-2.0, 2.0),
    ("gelu_approx", 2): (-1.415, 1.415), ("gelu_approx", 3): (-2.015, 2.015),
    ("silu", 2): (-2.399, 2.399), ("silu", 3): (-3.435, 3.435),
    ("mish", 2): (-2.255, 1.495), ("mish", 3): (-3.265, -0.085, 2.115),
    # quick_gelu(x) = silu(1.702 x) / 1.702: silu's zeros over 1.702
    ("quick_gelu", 1): (-0.752,), ("quick_gelu", 2): (-1.41, 1.41),
    ("quick_gelu", 3): (-2.018, 2.018),
}


def _nth(name: str, order: int) -> Callable[[MPF], MPF]:
    """x -> the order-th derivative of the reference (0 <= order <= 3)."""
    if order <= 1:
        return lambda t: REF[name](t)[order]
    return lambda t: REF23[name](t)[order - 2]


def _zeros() -> dict[tuple[str, int], tuple[float, ...]]:
    out: dict[tuple[str, int], tuple[float, ...]] = {("hard_silu", 1): (-1.5,)}
    with mp.workdps(30):
        for (name, order), guesses in _ZERO_GUESS.items():
            f = _nth(name, order)
            out[(name, order)] = tuple(float(mp.findroot(f, mpf(x0))) for x0 in guesses)
    return out


ZEROS = _zeros()

RULE = f"""\
- The reference is mpmath at {DPS} significant digits, on the exact value of each float input.
- ULP error of a result y against the true value t in a dtype with p significand bits:
  |y - t| / ulp(t), where ulp(t) = 2^(max(e, emin) - p + 1), e the exponent of t rounded to
  nearest in that dtype (so a subnormal t has the ulp of the smallest subnormal), and ulp(0) is
  the smallest subnormal (a true zero must come out as a zero).
- Near an interior zero x0 != 0 of the quantity measured, f, f', f'' or f''' (the first
  derivatives of gelu, gelu_approx, silu, mish, hard_silu and quick_gelu; the second and third derivatives
  of the smooth functions, e.g. gelu'' at +-sqrt(2)), that is for |x - x0| <= {ZERO_WINDOW},
  relative accuracy is ill-conditioned: there the error is |y - t| / max(ulp(t), ulp(1)), the
  absolute error in units of ulp(1). The zeros at x = 0 and the exponentially small tails are
  measured relative, by the ULP rule.
- A true value that rounds past the largest finite value (selu(x) for x just below the largest
  value) is exact as the infinity of its sign; a finite result there is measured in the ulp of
  the top binade (the largest finite value is then about 1/2 ulp off). Any other non-finite
  result where the truth is finite is counted (column `nonfin`) and its error is infinite.
- At the kinks of the piecewise functions (x exactly 0 for relu etc., see KINKS; for the second
  and third derivatives also 0 for elu, celu, softsign and relu_squared, +-1 for sparse_plus)
  the derivative is a convention, not a value: those points are left out of the derivative
  statistics, and the number of disagreements with kaun's convention is given instead (column
  `kink`)."""


# -- encoding the truth -------------------------------------------------------------------------

_EXP_CLAMP = 4000  # |exponent| past every dtype: clamping it changes no measured error


def _encode(v: MPF) -> tuple[float, float, int]:
    """v = (hi + lo) * 2^k with 1 <= |hi + lo| < 2, or (0, 0, 0) for v = 0."""
    if v == 0:
        return 0.0, 0.0, 0
    m, e = mp.frexp(v)  # v = m 2^e, 1/2 <= |m| < 1
    f = 2 * m
    hi = float(f)
    lo = float(f - hi)
    k = int(e) - 1
    if k < -_EXP_CLAMP:
        return 0.0, 0.0, 0  # far below every dtype's smallest subnormal: an exact zero to them
    return hi, lo, min(k, _EXP_CLAMP)


@dataclass
class Ref:
    """The truth at each input, encoded: value = (hi + lo) * 2^k."""

    hi: np.ndarray
    lo: np.ndarray
    k: np.ndarray

    def approx(self) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.ldexp(self.hi, np.clip(self.k, -1100, 1100).astype(np.int32))


def evaluate(names: tuple[str, ...], xs: np.ndarray) -> dict[str, tuple[Ref, Ref]]:
    """The reference (value, derivative) for each function at each float64 input (slow: mpmath)."""
    n = len(xs)
    buf = {nm: np.zeros((2, 3, n)) for nm in names}
    with mp.workdps(DPS):
        _C.get()
        for i, xf in enumerate(xs.tolist()):
            x = mpf(xf)
            for nm in names:
                v, d = REF[nm](x)
                buf[nm][0, :, i] = _encode(v)
                buf[nm][1, :, i] = _encode(d)
    out = {}
    for nm, b in buf.items():
        out[nm] = tuple(Ref(b[j, 0], b[j, 1], b[j, 2].astype(np.int64)) for j in (0, 1))
    return out  # type: ignore[return-value]


# The second and third derivatives: each smooth formula is evaluated at DPS and at DPS + 20 digits
# and the two must agree to AGREE digits, else it is evaluated again at twice the precision (up to
# 8 DPS) and compared with the previous result. What a formula loses to cancellation at x it loses
# at every precision: two results that agree to AGREE digits have lost at most DPS - AGREE
# digits, so the more precise one keeps >= AGREE + 20 = 45, more than the 32 of the encoding.
AGREE = 25


class NoConvergence(ArithmeticError):
    """A reference formula whose value does not settle as the precision rises (a bug in it)."""


def _agree(a: Pair, b: Pair) -> bool:
    tol = mpf(10) ** -AGREE
    return all(u == v or abs(u - v) <= tol * max(abs(u), abs(v)) for u, v in zip(a, b, strict=True))


def _checked(fn: Callable[[MPF], Pair], xf: float) -> Pair:
    """fn at the float xf, to >= 45 correct digits (see AGREE)."""
    dps = DPS
    with mp.workdps(dps):
        a = fn(mpf(xf))
    for nxt in (DPS + 20, 2 * DPS, 4 * DPS, 8 * DPS):
        with mp.workdps(nxt):
            b = fn(mpf(xf))
            if _agree(a, b):
                return b
        a, dps = b, nxt
    raise NoConvergence(f"{fn.__name__}({xf!r}) does not settle up to {dps} digits: {a}")


def evaluate23(names: tuple[str, ...], xs: np.ndarray) -> dict[str, tuple[Ref, Ref]]:
    """The reference (f'', f''') for each function at each float64 input (slow: mpmath)."""
    n = len(xs)
    buf = {nm: np.zeros((2, 3, n)) for nm in names}
    with mp.workdps(DPS):
        for i, xf in enumerate(xs.tolist()):
            for nm in names:
                if nm in PIECEWISE:
                    d2, d3 = REF23[nm](mpf(xf))
                else:
                    d2, d3 = _checked(REF23[nm], xf)
                buf[nm][0, :, i] = _encode(d2)
                buf[nm][1, :, i] = _encode(d3)
    out = {}
    for nm, b in buf.items():
        out[nm] = tuple(Ref(b[j, 0], b[j, 1], b[j, 2].astype(np.int64)) for j in (0, 1))
    return out  # type: ignore[return-value]


# -- the error ----------------------------------------------------------------------------------


def ulp_error(y: np.ndarray, ref: Ref, dtype: str, xs: np.ndarray | None = None,
              zeros: tuple[float, ...] = ()) -> np.ndarray:
    """ULP error of y (any float array, read as float64) against ref, in ``dtype`` (see RULE).

    Non-finite results where the truth rounds to a finite value give inf.
    """
    fm = FMT[dtype]
    y = np.asarray(y, dtype=np.float64)
    zero = ref.hi == 0.0
    # exponent of the truth rounded to p bits: one more when the significand rounds up to 2
    thr = 2.0 - math.ldexp(1.0, -fm.p)
    a = np.abs(ref.hi)
    if fm.p < 53:
        up = (a > thr) | ((a == thr) & (ref.lo * np.sign(ref.hi) >= 0))
    else:
        up = a >= 2.0
    kr = ref.k + up
    # ulp(t) = 2^ke; past the largest finite value the top binade's ulp goes on
    ke = np.clip(kr, fm.emin, fm.emax) - (fm.p - 1)
    ke = np.where(zero, fm.emin - fm.p + 1, ke)
    overflow = ~zero & (kr > fm.emax)
    with np.errstate(all="ignore"):
        sh = (ref.k - ke).astype(np.int64)
        shc = np.clip(sh, -1200, 1200).astype(np.int32)
        kec = np.clip(-ke, -1200, 1200).astype(np.int32)
        ys = np.ldexp(y, kec)
        err = np.abs((ys - np.ldexp(ref.hi, shc)) - np.ldexp(ref.lo, shc))
        if xs is not None and zeros:
            near = np.zeros(y.shape, bool)
            for x0 in zeros:
                near |= np.abs(xs - x0) <= ZERO_WINDOW
            # absolute error in units of ulp(1) = 2^(1-p) where that is larger than ulp(t)
            big = near & (ke < 1 - fm.p)
            e1 = np.abs(y - ref.approx()) / fm.eps
            err = np.where(big, e1, err)
    err = np.where(np.isnan(err), np.inf, err)
    # true values that round past the largest finite value: the right infinity is exact, and a
    # finite result is measured in the top binade's ulp (the largest value is about 1/2 ulp off)
    ok_inf = overflow & np.isinf(y) & (np.sign(y) == np.sign(ref.hi))
    err = np.where(ok_inf, 0.0, err)
    err = np.where(~ok_inf & ~np.isfinite(y), np.inf, err)
    return err


def nonfinite(y: np.ndarray, ref: Ref, dtype: str) -> np.ndarray:
    """Mask of non-finite results where the truth rounds to a finite value of dtype."""
    fm = FMT[dtype]
    finite_truth = (ref.hi == 0.0) | (ref.k < fm.emax) | (
        (ref.k == fm.emax) & (np.abs(ref.hi) < 2.0 - math.ldexp(1.0, -fm.p)))
    return finite_truth & ~np.isfinite(np.asarray(y, dtype=np.float64))


def kink_mask(name: str, xs: np.ndarray, order: int = 1) -> np.ndarray:
    m = np.zeros(xs.shape, bool)
    for k in kinks(name, order):
        m |= xs == k
    return m


# -- the inputs ---------------------------------------------------------------------------------


def all_finite(dtype: str) -> np.ndarray:
    """Every finite value of a 16-bit dtype, as float64 (both zeros once)."""
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    with np.errstate(all="ignore"):
        v = bits.view(FMT[dtype].np).astype(np.float64)
    return np.unique(v[np.isfinite(v)])


def _neighbours(t: type, pts: list[float], k: int) -> list[float]:
    out = []
    with np.errstate(all="ignore"):
        for p in pts:
            a = t(p)
            if not np.isfinite(a):
                continue
            lo = hi = a
            out.append(float(a))
            for _ in range(k):
                lo = np.nextafter(lo, t(-np.inf))
                hi = np.nextafter(hi, t(np.inf))
                out += [float(lo), float(hi)]
    return out


def special_points(dtype: str) -> list[float]:
    """Kinks, branch points of kaun's formulas, the thresholds where exp overflows or
    underflows, the derivative zeros, the ends of the range."""
    fm = FMT[dtype]
    big, tiny, eps = fm.big, fm.tiny, fm.eps
    small = math.ldexp(1.0, fm.emin)
    pts = [0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -1.5, 2.0, -2.0, 0.5, -0.5, 40.0, -40.0, 1e4, -1e4,
           8.0, -8.0, 26.0, -26.0, 27.0, -27.0]
    for c in (1.0, 8.0, 26.0, 27.0):  # erfc's branch points, for gelu's x / sqrt(2)
        pts += [c * math.sqrt(2.0), -c * math.sqrt(2.0)]
    for e in (math.log(big), math.log(small), math.log(tiny)):  # exp thresholds
        for s in (1.0, 0.5, 2.0):
            pts += [e * s, -e * s]
    pts += [math.sqrt(big), -math.sqrt(big), big ** (1 / 3), -(big ** (1 / 3)), big, -big,
            tiny, -tiny, small, -small, eps, -eps, big / 1.0507009873554805,
            math.sqrt(math.sqrt(big)), -math.sqrt(math.sqrt(big))]
    for (_, _d), zs in ZEROS.items():
        pts += list(zs)
    return _neighbours(fm.np.type, pts, 3)


def grid(dtype: str, quick: bool = False) -> np.ndarray:
    """The inputs for one dtype, sorted, unique, as float64.

    float16/bfloat16: every finite value (quick: every 8th, with the special points).
    float32/float64: >= 20,000 points (quick: ~2,500): random bit patterns (uniform over the
    exponents, so subnormal, tiny, normal and huge magnitudes alike), a few values in every
    binade of both signs, a dense linear grid over [-30, 30], the tails where exp under- and
    overflows, and every special point with its 3 neighbours on each side.
    """
    fm = FMT[dtype]
    t = fm.np.type
    sp = np.asarray(special_points(dtype))
    if fm.p <= 11:
        v = all_finite(dtype)
        if quick:
            v = np.concatenate([v[::8], sp])
    else:
        rng = np.random.default_rng(1234 + fm.p)
        div = 8 if quick else 1
        ui = np.uint32 if fm.p == 24 else np.uint64
        nb = 32 if fm.p == 24 else 64
        bits = rng.integers(0, 2**nb - 1, size=10000 // div, dtype=np.uint64, endpoint=True)
        with np.errstate(all="ignore"):
            rnd = bits.astype(ui).view(t).astype(np.float64)
        binades = np.arange(fm.emin - fm.p + 1, fm.emax + 1)
        step = 4 if quick else 1
        mant = np.array([1.0, 1.5, 1.2345678901234567]) if not quick else np.array([1.0, 1.5])
        logs = np.ldexp(mant[None, :], binades[::step, None]).ravel()
        logs = np.concatenate([logs, -logs])
        lin = np.linspace(-30.0, 30.0, 6001 // div)
        lo_exp = math.log(fm.tiny) - 5.0  # the left tail, down to where exp(x) underflows
        tails = np.concatenate([np.linspace(lo_exp, -30.0, 3000 // div),
                                np.linspace(30.0, -lo_exp, 1000 // div)])
        with np.errstate(all="ignore"):
            v = np.concatenate([rnd, logs, lin, tails, sp]).astype(t).astype(np.float64)
    v = v[np.isfinite(v)]
    return np.unique(v)


def cast(xs: np.ndarray, dtype: str) -> np.ndarray:
    return xs.astype(FMT[dtype].np)


# -- the gated family: up * act(gate) --------------------------------------------------------------
#
# swiglu, geglu, geglu_approx, reglu in their two-array form f(gate=g, up=u) = u * act(g). The
# reference of each is the activation's own (REF, at the gate) times the exact up, a float of at
# most 6 significant bits (UPS): the product of it with the encoded act (hi + lo, about 106 bits)
# is formed without rounding but for lo's last bit, so the product's truth keeps the encoding's
# own 2^-105 (``times``; ``times_mp`` is the same in mpmath, the check of it).

GATED = {"swiglu": "silu", "geglu": "gelu", "geglu_approx": "gelu_approx", "reglu": "relu"}
# the up of each pair: a few magnitudes of both signs, exact in every dtype (6 bits at most)
UPS = (1.0, -0.75, 1.3125 * 2.0**-8, -1.15625 * 2.0**8)


def gated_pairs(dtype: str, quick: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(gate, up) as float64: every gate of grid(dtype, quick) with every up of UPS."""
    g = grid(dtype, quick)
    return np.repeat(g, len(UPS)), np.tile(np.asarray(UPS), len(g))


def times(ref: Ref, up: np.ndarray) -> Ref:
    """The encoded truth of up * t for the encoded truth t (ref), up with <= 6 significant bits:
    up = m 2^(e - 5) with an integer m < 64; hi m exact as a double-double (Dekker's product with
    Veltkamp's split of hi; m needs no split), lo m rounded once (2^-53 of 2^-53), renormalized."""
    mu, e = np.frexp(np.asarray(up, np.float64))  # up = mu 2^e, 1/2 <= |mu| < 1
    m = mu * 64.0  # up = m 2^(e - 6)
    if not np.all(m == np.round(m)):
        raise ValueError("times: up must have at most 6 significant bits")
    hi, lo = ref.hi, ref.lo
    c = hi * 134217729.0  # 2^27 + 1
    a1 = c - (c - hi)
    a2 = hi - a1
    p = hi * m
    err = (a1 * m - p) + a2 * m  # hi m = p + err exactly
    s = err + lo * m
    h = p + s
    lw = s - (h - p)
    fr, ex = np.frexp(h)  # h = fr 2^ex: (h + lw) 2^(1 - ex) has 1 <= |.| < 2 (to the last bit)
    sh = (1 - ex).astype(np.int32)
    zero = (hi == 0.0) | (m == 0.0)
    with np.errstate(all="ignore"):
        nh = np.where(zero, 0.0, np.ldexp(h, sh))
        nl = np.where(zero, 0.0, np.ldexp(lw, sh))
    nk = np.where(zero, 0, ref.k + e - 6 + ex - 1).astype(np.int64)
    return Ref(nh, nl, nk)


def times_mp(ref: Ref, up: np.ndarray) -> Ref:
    """times in mpmath (slow: the check of times)."""
    n = len(up)
    out = np.zeros((3, n))
    with mp.workdps(DPS):
        for i, (h, lo, k, u) in enumerate(zip(ref.hi.tolist(), ref.lo.tolist(), ref.k.tolist(),
                                              up.tolist(), strict=True)):
            if h == 0.0 or u == 0.0:
                continue
            out[:, i] = _encode(mp.ldexp((mpf(h) + mpf(lo)) * mpf(u), int(k)))
    return Ref(out[0], out[1], out[2].astype(np.int64))


def gated_reference(act: Ref, dact: Ref, up: np.ndarray) -> tuple[Ref, Ref, Ref]:
    """(value, d/dgate, d/dup) = (up act(gate), up act'(gate), act(gate)) at the pairs, from the
    activation's (value, derivative) at their gates."""
    return times(act, up), times(dact, up), act


def repeat(ref: Ref, n: int) -> Ref:
    """Each point's truth n times in a row (the gates of gated_pairs)."""
    return Ref(np.repeat(ref.hi, n), np.repeat(ref.lo, n), np.repeat(ref.k, n))
