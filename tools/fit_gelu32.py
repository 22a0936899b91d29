"""Fit the rational function of gelu's float32 formula (kaun.activation._defs, _G32_P/_G32_Q).

For t >= 0, Phi(-t) = exp(-t^2/2) R(t) with R the scaled Mills ratio, and

    R(t) = q(t) / (p(t) + s t q(t)),   s = sqrt(2 pi) rounded to float32,

with p of degree 4 and q of degree 5 (q(0) = 1). Written so, R's rounding errors in float32 are
damped where t is large (s t q dominates the denominator) and small where t is small (the
constant terms dominate): about 1.3 ulp, against 2.6 for a plain p/q. The fit is of
D(t) = 1/R(t) - s t = p(t) / q(t), by least squares on relative error with iterative reweighting
(Lawson), against mpmath at 50 digits on [0, 14.6] (past 14.6, t Phi(-t) is 0 in float32).
Every coefficient comes out positive, so float32 Horner has no cancellation.

Run: ``.venv/bin/python tools/fit_gelu32.py`` (about 20 s); it prints the coefficients rounded to
float32 and the fit's relative error.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np

T = 14.6
S = float(np.float32(math.sqrt(2 * math.pi)))


def main() -> None:
    mp.mp.dps = 50
    ts = np.concatenate([np.linspace(0, T, 6000), T * np.sort(np.random.default_rng(0).random(4000))])
    d = np.array([float(1 / (mp.ncdf(-mp.mpf(t)) * mp.exp(mp.mpf(t) ** 2 / 2)) - mp.mpf(S) * mp.mpf(t))
                  for t in ts])
    dp, dq = 4, 5
    w, qv = np.ones_like(ts), np.ones_like(ts)
    vp = np.vstack([ts**k for k in range(dp + 1)]).T
    vq = np.vstack([ts**k for k in range(1, dq + 1)]).T
    for _ in range(40):
        a = np.concatenate([vp, -(d[:, None] * vq)], axis=1)
        scale = w / (qv * np.abs(d))
        sol, *_ = np.linalg.lstsq(a * scale[:, None], d * scale, rcond=None)
        p, q = sol[: dp + 1], np.concatenate([[1.0], sol[dp + 1 :]])
        qv = np.polyval(q[::-1], ts)
        err = np.polyval(p[::-1], ts) / qv / d - 1
        w = w * (1 + 10 * np.abs(err) / np.abs(err).max())
    print("p =", tuple(float(np.float32(v)) for v in p))
    print("q =", tuple(float(np.float32(v)) for v in q))
    print(f"relative error of D: {np.abs(err).max():.2e}")


if __name__ == "__main__":
    main()
