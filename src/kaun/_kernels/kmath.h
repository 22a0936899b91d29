/* kmath.h: the helpers of kaun's compiled kernels: bit casts, NaN-keeping max and min, lane-mask
 * selects, the exact product error, and the half-precision loads and stores.
 *
 * The elementary functions (exp, expm1, log1p, tanh) are not here: they are formulas in
 * kaun/_elementary.py, printed into each translation unit (codegen.prelude) as k_expf, k_exp, ...,
 * the same formulas that the Triton lowering prints for the GPU.
 *
 * Everything here is branch-free, so that gcc and clang vectorize the loops that inline it.
 */
#ifndef KAUN_KMATH_H
#define KAUN_KMATH_H

#include <stdint.h>
#include <string.h>

/* Every fused multiply-add is written out (__builtin_fma), and the C is compiled with
   -ffp-contract=off: the compiler fuses nothing else, so the results are IEEE's, the same bits on
   every machine. Where the CPU has FMA (x86-64-v3 and v4, aarch64) each is one instruction; below
   x86-64-v3 it is the C library's fma (correctly rounded in software: the same bits, slower). */

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
