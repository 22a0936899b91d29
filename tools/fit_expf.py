"""Fit the polynomial of kmath.h's float exp and expm1 (kf_em1_q).

exp(r) - 1 - r = r^2 q(r) on |r| <= ln2/2 (plus the slack of the rounded reduction), q of degree
``--degree`` (4 by default: 5 coefficients), minimizing the relative error of expm1(r) =
r + r^2 q(r) (which also bounds that of exp) by least squares with iterative reweighting
(Lawson), against mpmath at 40 digits. Coefficients are rounded to float32 one at a time, from
the lowest, refitting the rest after each rounding.

Run: ``.venv/bin/python tools/fit_expf.py`` (a few seconds).
"""

from __future__ import annotations

import argparse
import math

import mpmath as mp
import numpy as np


def fit(degree: int, lo: float, hi: float) -> tuple[list[float], float]:
    mp.mp.dps = 40
    r = np.concatenate([np.linspace(lo, hi, 8001), np.linspace(-1e-3, 1e-3, 401)])
    r = r[r != 0.0]
    em1 = np.array([float(mp.expm1(mp.mpf(v))) for v in r])
    target = np.array([float((mp.expm1(mp.mpf(v)) - mp.mpf(v)) / mp.mpf(v) ** 2) for v in r])
    fixed: list[float] = []
    for _ in range(degree + 1):
        w = np.ones_like(r)
        free = degree + 1 - len(fixed)
        base = sum(c * r**i for i, c in enumerate(fixed)) if fixed else np.zeros_like(r)
        cols = np.vstack([r ** (len(fixed) + i) for i in range(free)]).T
        scale = r**2 / np.abs(em1)  # relative error of expm1 = r^2 (q - target) / expm1
        for _ in range(30):
            sol, *_ = np.linalg.lstsq(cols * (w * scale)[:, None], (target - base) * w * scale, rcond=None)
            err = (base + cols @ sol - target) * scale
            w = w * (1 + 10 * np.abs(err) / np.abs(err).max())
        fixed.append(float(np.float32(sol[0])))
    q = np.float32(0)
    for c in reversed(fixed):  # the float32 Horner of kmath.h, without fma: an upper bound
        q = np.float32(q * r.astype(np.float32) + np.float32(c))
    y = r.astype(np.float32) + np.float32(r.astype(np.float32) ** 2) * q
    return fixed, float(np.max(np.abs(y / em1 - 1)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--degree", type=int, default=4)
    a = ap.parse_args()
    h = math.log(2) / 2 * (1 + 2**-10)
    coefs, err = fit(a.degree, -h, h)
    print("q coefficients, lowest first:", coefs)
    print(f"max relative error of expm1(r) in float32 arithmetic: {err:.2e} ({err / 2**-24:.2f} x 2^-24)")


if __name__ == "__main__":
    main()
