/* kmath.h: the elementary functions of kaun's compiled kernels, float and double.
 *
 * Every function here is branch-free (selects only, no calls, no float-to-integer conversion
 * of a value that can be out of range), so that gcc and clang vectorize the loops that inline
 * them (8 floats or 4 doubles a step with AVX2). Each handles NaN (NaN out), +-inf (the limit),
 * signed zeros and subnormal inputs and results. Accuracy, measured against mpmath over the whole
 * finite range by tests/test_kmath.py: see the bound stated above each function.
 *
 * Method (the usual one of vector math libraries): exp reduces x = k ln2 + r with |r| <= ln2/2
 * (Cody and Waite's two-part ln2), evaluates a polynomial for exp(r) and scales by 2^k, built
 * from the bits of k; 2^k is applied as two factors so that subnormal results are rounded once.
 * expm1 writes expm1(x) = 2^k (expm1(r) + (1 - 2^-k)), exact for k = 0 and free of cancellation
 * elsewhere. log1p follows FDLIBM's s_log1p.c: u = 1 + x with its rounding carried as a
 * correction, u = 2^e m with m in [sqrt(1/2), sqrt(2)), log(m) = 2 atanh(s), s = f / (2 + f).
 * tanh is -t / (2 + t) with t = expm1(-2|x|), the sign of x restored.
 *
 * The float64 log1p polynomial is FDLIBM's (s_log1p.c 1.3 95/01/18), with this notice:
 *   Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
 *   Developed at SunSoft, a Sun Microsystems, Inc. business.
 *   Permission to use, copy, modify, and distribute this software is freely granted,
 *   provided that this notice is preserved.
 * The float exp polynomial is a minimax fit (tools/fit_expf.py); the float log1p and the double
 * exp polynomials are Taylor series, truncated where the next term is below 2^-30 (float) or
 * 2^-60 (double) of the result.
 */
#ifndef KAUN_KMATH_H
#define KAUN_KMATH_H

#include <stdint.h>
#include <string.h>

/* Every fused multiply-add is written out, and the C is compiled with -ffp-contract=off: the
   compiler fuses nothing else, so the results are IEEE's, the same bits on every machine. Where
   the CPU has FMA (x86-64-v3 and v4, aarch64) each is one instruction; below x86-64-v3 it is the
   C library's fma (correctly rounded in software: the same bits, 10-30x slower). */
#define KF_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#define KD_FMA(a, b, c) __builtin_fma((a), (b), (c))

static inline uint32_t kf_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float kf_from(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint64_t kd_bits(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }
static inline double kd_from(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }

/* max(x, lo) and min(x, hi) that keep a NaN x (fmax would drop it), as NumPy and torch do */
static inline float kf_max(float x, float lo) { return x < lo ? lo : x; }
static inline float kf_min(float x, float hi) { return x > hi ? hi : x; }
static inline double kd_max(double x, double lo) { return x < lo ? lo : x; }
static inline double kd_min(double x, double hi) { return x > hi ? hi : x; }
/* m ? a : b for a lane mask m (all ones or zero), bitwise */
static inline float kf_sel(uint32_t m, float a, float b) {
    return kf_from((kf_bits(a) & m) | (kf_bits(b) & ~m));
}
static inline double kd_sel(uint64_t m, double a, double b) {
    return kd_from((kd_bits(a) & m) | (kd_bits(b) & ~m));
}
static inline float kf_abs(float x) { return kf_from(kf_bits(x) & 0x7fffffffu); }
static inline double kd_abs(double x) { return kd_from(kd_bits(x) & 0x7fffffffffffffffull); }

/* a * b - fl(a * b), exactly: one fma */
static inline float kf_prod_err(float a, float b) { return __builtin_fmaf(a, b, -(a * b)); }
static inline double kd_prod_err(double a, double b) { return __builtin_fma(a, b, -(a * b)); }

/* ---- float ----------------------------------------------------------------------------- */

#define KF_SHIFT 12582912.0f            /* 1.5 * 2^23: x + KF_SHIFT rounds x to an integer */
#define KF_LOG2E 1.44269502f
#define KF_LN2_HI 0.693145751953125f    /* 16 bits: k * KF_LN2_HI is exact for |k| < 256 */
#define KF_LN2_LO 1.42860677e-06f

/* (k, r, ki): x = k ln2 + r, |r| <= 0.3466 + 2^-20, ki = k as an integer, for |x| < 2^22 */
#define KF_REDUCE(x, k, r, ki)                                  \
    float z_ = KF_FMA((x), KF_LOG2E, KF_SHIFT);                  \
    float k = z_ - KF_SHIFT;                                     \
    float r = KF_FMA(k, -KF_LN2_HI, (x));                        \
    r = KF_FMA(k, -KF_LN2_LO, r);                                \
    int32_t ki = (int32_t)(kf_bits(z_) - kf_bits(KF_SHIFT))

/* 2^k for -252 <= k <= 254 as two normal factors (a, b): a * b = 2^k (>> on a negative int32 is
   an arithmetic shift in gcc and clang) */
#define KF_POW2(ki, a, b)                                        \
    int32_t k1_ = (ki) >> 1;                                     \
    float a = kf_from((uint32_t)(k1_ + 127) << 23);              \
    float b = kf_from((uint32_t)((ki) - k1_ + 127) << 23)

/* (exp(r) - 1 - r) / r^2 for |r| <= ln2/2: a degree-4 minimax fit (tools/fit_expf.py), whose
   error is below that of its evaluation */
static inline float kf_em1_q(float r) {
    float q = KF_FMA(r, 0.0013871091650798917f, 0.008366268128156662f);
    q = KF_FMA(r, q, 0.041667431592941284f);
    q = KF_FMA(r, q, 0.1666654646396637f);
    return KF_FMA(r, q, 0.4999999701976776f);
}

/* exp: within 1 ulp, subnormal results rounded once. Past the range where the reduction is
   valid (and the result 0 or inf already), a select; NaN goes through the arithmetic. */
static inline float k_expf(float x) {
    KF_REDUCE(x, k, r, ki);
    float p = KF_FMA(r, KF_FMA(r, kf_em1_q(r), 1.0f), 1.0f);   /* 1 + r (1 + r q) */
    KF_POW2(ki, s1, s2);
    (void)k;
    float y = (p * s1) * s2;
    y = x > 100.0f ? __builtin_inff() : y;
    return x < -110.0f ? 0.0f : y;
}

/* expm1: within 1 ulp; x itself below 2^-25 in magnitude (signed zeros kept) */
static inline float k_expm1f(float x) {
    KF_REDUCE(x, k, r, ki);
    float em = KF_FMA(r, r * kf_em1_q(r), r);       /* expm1(r) = r + r (r q) */
    int32_t kc = ki < 30 ? ki : 30;                /* 1 - 2^-k is 1 in float past k = 24 */
    float c = 1.0f - kf_from((uint32_t)(127 - kc) << 23);
    KF_POW2(ki, s1, s2);
    (void)k;
    float y = ((em + c) * s1) * s2;
    y = kf_abs(x) < 0x1p-25f ? x : y;
    y = x > 100.0f ? __builtin_inff() : y;
    return x < -25.0f ? -1.0f : y;                  /* expm1(-25) is -1 in float */
}

/* tanh: within 2 ulp */
static inline float k_tanhf(float x) {
    float a = kf_abs(x);
    float t = k_expm1f(-2.0f * a);
    float y = -t / (2.0f + t);
    y = a < 0x1p-12f ? a : y;
    return kf_from(kf_bits(y) | (kf_bits(x) & 0x80000000u));
}

/* log1p: within 1 ulp */
static inline float k_log1pf(float x) {
    float u = 1.0f + x;
    /* the rounding of 1 + x, relative to u (FDLIBM) */
    float c = (u < 2.0f ? x - (u - 1.0f) : 1.0f - (u - x)) / u;
    uint32_t iu = kf_bits(u) + (0x3f800000u - 0x3f3504f3u);
    float e = (float)((int32_t)(iu >> 23) - 127);
    float f = kf_from((iu & 0x007fffffu) + 0x3f3504f3u) - 1.0f;  /* m - 1, m in [0.707, 1.414) */
    float s = f / (2.0f + f);
    float z = s * s;
    float R = z * KF_FMA(z, KF_FMA(z, KF_FMA(z, KF_FMA(z, 0.181818182f, 0.222222222f),
                                             0.285714286f), 0.4f), 0.666666667f);
    float hfsq = 0.5f * f * f;
    float y = e * KF_LN2_HI - ((hfsq - (s * (hfsq + R) + (e * KF_LN2_LO + c))) - f);
    y = kf_abs(x) < 0x1p-24f ? x : y;
    y = u == 0.0f ? -__builtin_inff() : y;
    y = u == __builtin_inff() ? u : y;
    return u < 0.0f ? __builtin_nanf("") : y;
}

/* ---- double ---------------------------------------------------------------------------- */

#define KD_SHIFT 6755399441055744.0     /* 1.5 * 2^52 */
#define KD_LOG2E 1.4426950408889634
#define KD_LN2_HI 6.93147180369123816490e-01   /* 32 bits */
#define KD_LN2_LO 1.90821492927058770002e-10

#define KD_REDUCE(x, k, r, ki)                                  \
    double z_ = KD_FMA((x), KD_LOG2E, KD_SHIFT);                 \
    double k = z_ - KD_SHIFT;                                    \
    double r = KD_FMA(k, -KD_LN2_HI, (x));                       \
    r = KD_FMA(k, -KD_LN2_LO, r);                                \
    int64_t ki = (int64_t)(kd_bits(z_) - kd_bits(KD_SHIFT))

/* 2^k for -2044 <= k <= 2046 as two normal factors; the shifts are logical (AVX2 has no
   64-bit arithmetic shift) */
#define KD_POW2(ki, a, b)                                        \
    int64_t k1_ = (int64_t)(((uint64_t)((ki) + 4096) >> 1)) - 2048; \
    double a = kd_from((uint64_t)(k1_ + 1023) << 52);            \
    double b = kd_from((uint64_t)((ki) - k1_ + 1023) << 52)

/* (exp(r) - 1 - r) / r^2 for |r| <= 0.35: Taylor to r^13/13! (next term 2^-62 relative) */
static inline double kd_em1_q(double r) {
    double q = KD_FMA(r, 1.6059043836821613e-10, 2.08767569878681e-09);
    q = KD_FMA(r, q, 2.505210838544172e-08);
    q = KD_FMA(r, q, 2.755731922398589e-07);
    q = KD_FMA(r, q, 2.7557319223985893e-06);
    q = KD_FMA(r, q, 2.48015873015873e-05);
    q = KD_FMA(r, q, 1.984126984126984e-04);
    q = KD_FMA(r, q, 1.388888888888889e-03);
    q = KD_FMA(r, q, 8.333333333333333e-03);
    q = KD_FMA(r, q, 4.1666666666666664e-02);
    q = KD_FMA(r, q, 1.6666666666666666e-01);
    return KD_FMA(r, q, 0.5);
}

static inline double k_exp(double x) {
    double xc = kd_min(kd_max(x, -746.0), 710.0);
    KD_REDUCE(xc, k, r, ki);
    double p = KD_FMA(r, KD_FMA(r, kd_em1_q(r), 1.0), 1.0);
    KD_POW2(ki, s1, s2);
    (void)k;
    return (p * s1) * s2;
}

static inline double k_expm1(double x) {
    double xc = kd_min(kd_max(x, -40.0), 710.0);   /* expm1(-40) is -1 in double */
    KD_REDUCE(xc, k, r, ki);
    double em = KD_FMA(r, r * kd_em1_q(r), r);
    int64_t kc = ki < 60 ? ki : 60;
    double c = 1.0 - kd_from((uint64_t)(1023 - kc) << 52);
    KD_POW2(ki, s1, s2);
    (void)k;
    double y = ((em + c) * s1) * s2;
    return kd_abs(x) < 0x1p-54 ? x : y;
}

static inline double k_tanh(double x) {
    double a = kd_abs(x);
    double t = k_expm1(-2.0 * a);
    double y = -t / (2.0 + t);
    y = a < 0x1p-27 ? a : y;
    return kd_from(kd_bits(y) | (kd_bits(x) & 0x8000000000000000ull));
}

static inline double k_log1p(double x) {
    double u = 1.0 + x;
    double c = (u < 2.0 ? x - (u - 1.0) : 1.0 - (u - x)) / u;
    uint64_t iu = kd_bits(u) + (0x3ff0000000000000ull - 0x3fe6a09e667f3bcdull);
    /* the exponent as a double without an int64 conversion: 2^52 + n has n in its low bits */
    double e = kd_from((iu >> 52) | 0x4330000000000000ull) - (0x1p52 + 1023.0);
    double f = kd_from((iu & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull) - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = KD_FMA(z, 1.479819860511658591e-01, 1.531383769920937332e-01);
    R = KD_FMA(z, R, 1.818357216161805012e-01);
    R = KD_FMA(z, R, 2.222219843214978396e-01);
    R = KD_FMA(z, R, 2.857142874366239149e-01);
    R = KD_FMA(z, R, 3.999999999940941908e-01);
    R = KD_FMA(z, R, 6.666666666666735130e-01);
    R = z * R;
    double hfsq = 0.5 * f * f;
    double y = e * KD_LN2_HI - ((hfsq - (s * (hfsq + R) + (e * KD_LN2_LO + c))) - f);
    y = kd_abs(x) < 0x1p-54 ? x : y;
    y = u == 0.0 ? -__builtin_inf() : y;
    y = u == __builtin_inf() ? u : y;
    return u < 0.0 ? __builtin_nan("") : y;
}

/* ---- storage conversions of half precision (computed in float, rounded once) -------------- */

/* float16 bits -> float, exactly (subnormals, infinities and NaN included) */
static inline float kf_from_f16(uint16_t h) {
    uint32_t em = (uint32_t)h & 0x7fffu;
    float normal = kf_from((em << 13) + 0x38000000u);          /* rebias the exponent */
    float sub = (float)(int32_t)em * 0x1p-24f;                   /* em * 2^-24, exact */
    float special = kf_from((em << 13) | 0x7f800000u);           /* inf, NaN */
    float v = em < 0x400u ? sub : (em >= 0x7c00u ? special : normal);
    return kf_from(kf_bits(v) | (((uint32_t)h & 0x8000u) << 16));
}

/* float -> float16 bits, rounded to nearest even (F. Giesen's float_to_half_fast3_rtne);
   NaN becomes the quiet NaN 0x7e00 with its sign */
static inline uint16_t kf_to_f16(float f) {
    uint32_t u = kf_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    uint32_t big = a > 0x7f800000u ? 0x7e00u : 0x7c00u;           /* NaN, or inf/overflow */
    /* a subnormal half: adding 0.5 aligns the bits, the FPU rounds */
    uint32_t sub = kf_bits(kf_from(a) + 0.5f) - 0x3f000000u;
    uint32_t nrm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;   /* rebias, round */
    uint32_t o = a >= 0x47800000u ? big : (a < 0x38800000u ? sub : nrm);
    return (uint16_t)(o | sign);
}

/* float -> bfloat16 bits, rounded to nearest even; NaN becomes torch's quiet NaN 0x7fc0 */
static inline uint16_t kf_to_bf16(float f) {
    uint32_t u = kf_bits(f);
    uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? 0x7fc0u : r);
}

#endif
