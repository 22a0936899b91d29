"""The elementary functions of kaun's kernels (exp, expm1, log1p, tanh), written once, as formulas.

Each is a formula over the graph vocabulary (``kaun._ir``): IEEE basic operations, explicit fused
multiply-adds, selects, and the integer operations of the working width that reach a float's bits
(``o.bits``, shifts, masks, ``o.from_bits``). Traced once per working precision, a formula is a
graph that every kernel lowering prints as a function of its own: C (``kaun._kernels.codegen``:
``k_expf``, ``k_exp``, ...), Triton (``kaun._kernels.triton``). So the CPU and the GPU compute the
same operations in the same order and give the same bits; no lowering calls a library's exp.
(The array lowering, ``kaun._ir.python_source``, keeps ``o.exp``: NumPy's, torch's or XLA's.)
``exp_normal`` is exp restricted to x <= 0 and normal results, for the formulas that scale a
result back into range themselves (see its docstring); the array libraries' exp serves it there.

Every function is branch-free (selects only, no float-to-integer conversion of a value that can be
out of range): C compilers vectorize the loops that inline them. Each handles NaN (NaN out), +-inf
(the limit), signed zeros and subnormal inputs and results. Accuracy, against mpmath over the whole
finite range (tests/test_kmath.py): exp and expm1 within 1 ulp, log1p within 1 ulp, tanh within
2 ulp, in float32 and float64.

Method (the usual one of vector math libraries): exp reduces x = k ln2 + r with |r| <= ln2/2
(Cody and Waite's two-part ln2), evaluates a polynomial for exp(r) and scales by 2^k, built from the
bits of k; 2^k is applied as two factors so that subnormal results are rounded once. expm1 writes
expm1(x) = 2^k (expm1(r) + (1 - 2^-k)), exact for k = 0 and free of cancellation elsewhere. log1p
follows FDLIBM's s_log1p.c: u = 1 + x with its rounding carried as a correction, u = 2^e m with m in
[sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = f / (2 + f). tanh is -t / (2 + t) with
t = expm1(-2|x|), the sign of x restored.

The float64 log1p polynomial is FDLIBM's (s_log1p.c 1.3 95/01/18), with this notice:
  Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
  Developed at SunSoft, a Sun Microsystems, Inc. business.
  Permission to use, copy, modify, and distribute this software is freely granted,
  provided that this notice is preserved.
The float exp polynomial is a minimax fit (tools/fit_expf.py); the float log1p and the double exp
polynomials are Taylor series, truncated where the next term is below 2^-30 (float) or 2^-60
(double) of the result. Float32 constants are written as the float32 values themselves (hex).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from . import _ir

INF = float("inf")
NAN = float("nan")

# -- float32 ------------------------------------------------------------------------------------

F_SHIFT = 12582912.0  # 1.5 * 2^23: x + F_SHIFT rounds x to an integer
F_LOG2E = float.fromhex("0x1.715476p+0")  # 1.44269502f
F_LN2_HI = 0.693145751953125  # 16 bits: k * F_LN2_HI is exact for |k| < 256
F_LN2_LO = float.fromhex("0x1.7f7d1cp-20")  # 1.42860677e-06f
# (exp(r) - 1 - r) / r^2 for |r| <= ln2/2: a degree-4 minimax fit (tools/fit_expf.py)
F_EM1_Q = tuple(float.fromhex(h) for h in (
    "0x1.6b9f52p-10", "0x1.122558p-7", "0x1.5556fp-5", "0x1.5554b4p-3", "0x1.fffffep-2"))
# log1p's atanh series in z = s^2: 2/11, 2/9, 2/7, 2/5, 2/3 as float32
F_LG = tuple(float.fromhex(h) for h in (
    "0x1.745d18p-3", "0x1.c71c72p-3", "0x1.24924ap-2", "0x1.99999ap-2", "0x1.555556p-1"))
F_SQRT_HALF_BITS = 0x3F3504F3  # sqrt(1/2) as float32
F_EXP_NORMAL_LO = float.fromhex("-0x1.5d589ep+6")  # the least float32 x with exp(x) >= 2^-126

# -- float64 ------------------------------------------------------------------------------------

D_SHIFT = 6755399441055744.0  # 1.5 * 2^52
D_LOG2E = 1.4426950408889634
D_LN2_HI = 6.93147180369123816490e-01  # 32 bits
D_LN2_LO = 1.90821492927058770002e-10
# (exp(r) - 1 - r) / r^2 for |r| <= 0.35: Taylor to r^13/13! (next term 2^-62 relative)
D_EM1_Q = (1.6059043836821613e-10, 2.08767569878681e-09, 2.505210838544172e-08,
           2.755731922398589e-07, 2.7557319223985893e-06, 2.48015873015873e-05,
           1.984126984126984e-04, 1.388888888888889e-03, 8.333333333333333e-03,
           4.1666666666666664e-02, 1.6666666666666666e-01, 0.5)
# FDLIBM's Lg7 .. Lg1
D_LG = (1.479819860511658591e-01, 1.531383769920937332e-01, 1.818357216161805012e-01,
        2.222219843214978396e-01, 2.857142874366239149e-01, 3.999999999940941908e-01,
        6.666666666666735130e-01)
D_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD
D_EXP_NORMAL_LO = float.fromhex("-0x1.6232bdd7abcd2p+9")  # the least double with exp(x) >= 2^-1022


def _horner(o: Any, x: Any, coefs: tuple[float, ...]) -> Any:
    """coefs[0] x^n + ... + coefs[n] by fused multiply-adds."""
    q = o.fma(x, coefs[0], coefs[1])
    for c in coefs[2:]:
        q = o.fma(x, q, c)
    return q


def _bits_const(v: float, prec: int) -> int:
    import struct

    return int.from_bytes(struct.pack("<f" if prec == 32 else "<d", v), "little")


def _reduce(o: Any, x: Any, prec: int) -> tuple[Any, Any]:
    """(r, ki): x = k ln2 + r, |r| <= ln2/2 (+ a little), ki = k as an integer of the working
    width (for |x| < 2^22 in float32; the callers clamp or select beyond)."""
    shift, log2e, hi, lo = ((F_SHIFT, F_LOG2E, F_LN2_HI, F_LN2_LO) if prec == 32
                            else (D_SHIFT, D_LOG2E, D_LN2_HI, D_LN2_LO))
    z = o.fma(x, log2e, shift)
    k = z - shift
    r = o.fma(k, -hi, x)
    r = o.fma(k, -lo, r)
    return r, o.isub(o.bits(z), _bits_const(shift, prec))


def _pow2(o: Any, ki: Any, prec: int) -> tuple[Any, Any]:
    """2^k as two normal factors (a, b), a * b = 2^k, for -252 <= k <= 254 (float32) or
    -2044 <= k <= 2046 (float64)."""
    if prec == 32:
        k1 = o.sar(ki, 1)
        bias, m = 127, 23
    else:  # (logical shifts: AVX2 has no 64-bit arithmetic shift)
        k1 = o.isub(o.shr(o.iadd(ki, 4096), 1), 2048)
        bias, m = 1023, 52
    a = o.from_bits(o.shl(o.iadd(k1, bias), m))
    b = o.from_bits(o.shl(o.iadd(o.isub(ki, k1), bias), m))
    return a, b


def _em1_q(o: Any, r: Any, prec: int) -> Any:
    return _horner(o, r, F_EM1_Q if prec == 32 else D_EM1_Q)


def _exp_r(o: Any, x: Any, prec: int) -> tuple[Any, Any]:
    """(p, ki): exp(x) = p 2^k, p = exp(r) = 1 + r (1 + r q), for x in the reduction's range."""
    r, ki = _reduce(o, x, prec)
    return o.fma(r, o.fma(r, _em1_q(o, r, prec), 1.0), 1.0), ki


def exp(o: Any, x: Any) -> Any:
    """exp, within 1 ulp, subnormal results rounded once."""
    prec = o.prec(x)
    if prec == 64:
        x = o.clip(x, -746.0, 710.0)
    p, ki = _exp_r(o, x, prec)
    s1, s2 = _pow2(o, ki, prec)
    y = (p * s1) * s2
    if prec == 64:
        return y
    # past the range where the reduction is valid (0 or inf already), a select
    y = o.where(x > 100.0, INF, y)
    return o.where(x < -110.0, 0.0, y)


def exp_normal(o: Any, x: Any) -> Any:
    """exp(x) for x <= 0 (or NaN), within 1 ulp where exp(x) is a normal number, and 0 where it
    is not (x < ln 2^-126 in float32, ln 2^-1022 in float64): 2^k is one factor, p 2^k one
    product, and no select guards the overflow that x <= 0 cannot reach. Equal to exp's bits
    wherever that is normal, and cheaper by a third: ``kaun._special.exp_neg`` takes it for a
    factor that it scales back by a constant, which makes any subnormal result 0 anyway."""
    prec = o.prec(x)
    p, ki = _exp_r(o, x, prec)  # (k >= -126 or -1022 where the select keeps the product)
    bias, m, lo = (127, 23, F_EXP_NORMAL_LO) if prec == 32 else (1023, 52, D_EXP_NORMAL_LO)
    y = p * o.from_bits(o.shl(o.iadd(ki, bias), m))
    return o.where(x < lo, 0.0, y)


def expm1(o: Any, x: Any) -> Any:
    """expm1, within 1 ulp; x itself below 2^-25 (float32) or 2^-54 (float64) in magnitude."""
    prec = o.prec(x)
    xc = x if prec == 32 else o.clip(x, -40.0, 710.0)  # expm1(-40) is -1 in float64
    r, ki = _reduce(o, xc, prec)
    em = o.fma(r, r * _em1_q(o, r, prec), r)  # expm1(r) = r + r (r q)
    top, bias, m = (30, 127, 23) if prec == 32 else (60, 1023, 52)  # 1 - 2^-k is 1 past them
    kc = o.imin(ki, top)
    c = 1.0 - o.from_bits(o.shl(o.isub(bias, kc), m))
    s1, s2 = _pow2(o, ki, prec)
    y = ((em + c) * s1) * s2
    if prec == 64:
        return o.where(o.abs(x) < 2.0**-54, x, y)
    y = o.where(o.abs(x) < 2.0**-25, x, y)
    y = o.where(x > 100.0, INF, y)
    return o.where(x < -25.0, -1.0, y)  # expm1(-25) is -1 in float32


def tanh(o: Any, x: Any) -> Any:
    """tanh, within 2 ulp."""
    prec = o.prec(x)
    a = o.abs(x)
    t = o.expm1(-2.0 * a)
    y = -t / (2.0 + t)
    y = o.where(a < (2.0**-12 if prec == 32 else 2.0**-27), a, y)
    return o.from_bits(o.ior(o.bits(y), o.iand(o.bits(x), 1 << (prec - 1))))


def log1p(o: Any, x: Any) -> Any:
    """log1p, within 1 ulp."""
    prec = o.prec(x)
    u = 1.0 + x
    c = o.where(u < 2.0, x - (u - 1.0), 1.0 - (u - x)) / u  # the rounding of 1 + x, relative to u
    if prec == 32:
        sh, one, m, mant, lnhi, lnlo = F_SQRT_HALF_BITS, 0x3F800000, 23, 0x007FFFFF, F_LN2_HI, F_LN2_LO
    else:
        sh, one, m, mant, lnhi, lnlo = (D_SQRT_HALF_BITS, 0x3FF0000000000000, 52,
                                        0x000FFFFFFFFFFFFF, D_LN2_HI, D_LN2_LO)
    iu = o.iadd(o.bits(u), one - sh)
    if prec == 32:
        e = o.itof(o.isub(o.shr(iu, m), 127))
    else:  # the exponent as a double without an int64 conversion: 2^52 + n has n in its low bits
        e = o.from_bits(o.ior(o.shr(iu, m), 0x4330000000000000)) - (2.0**52 + 1023.0)
    f = o.from_bits(o.iadd(o.iand(iu, mant), sh)) - 1.0  # m - 1, m in [0.707, 1.414)
    s = f / (2.0 + f)
    z = s * s
    R = z * _horner(o, z, F_LG if prec == 32 else D_LG)
    hfsq = 0.5 * f * f
    y = e * lnhi - ((hfsq - (s * (hfsq + R) + (e * lnlo + c))) - f)
    y = o.where(o.abs(x) < (2.0**-24 if prec == 32 else 2.0**-54), x, y)
    y = o.where(u <= 0.0, -INF, y)
    y = o.where(u > o.big(u), u, y)
    return o.where(u < 0.0, NAN, y)


FORMULAS: dict[str, Callable[[Any, Any], Any]] = {
    "exp": exp, "exp_normal": exp_normal, "expm1": expm1, "log1p": log1p, "tanh": tanh}
# the order in which a lowering defines them (a later one may call an earlier one)
ORDER = ("exp", "exp_normal", "expm1", "log1p", "tanh")


@cache
def graph(name: str, prec: int) -> _ir.Graph:
    """The graph of the elementary function ``name`` in the working precision ``prec``."""
    return _ir.trace(FORMULAS[name], 1, (), prec)
