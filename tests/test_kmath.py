"""The elementary functions of the compiled kernels (kaun/_elementary.py, printed as C) and the
half-precision loads and stores of kmath.h, against references over the whole range of each dtype.

Each function is compiled through the kernel layer itself (a one-operation formula), so what is
tested is what the activations' kernels inline. float32: 2^22 random bit patterns (every
exponent) plus dense grids where the functions change form, against float64 NumPy (exact to far
below a float32 ulp); float64: against mpmath. float16 and bfloat16: every value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import mpmath as mp
import numpy as np
import pytest

from kaun import _kernels as K
from kaun._backends._numpy import run
from kaun._core import Entry

pytestmark = pytest.mark.skipif(not K.enabled(), reason="no C compiler: no compiled kernels")

# worst error in ulps over the whole range, as measured here (the bound each test asserts)
BOUND32 = {"exp": 1.0, "expm1": 1.55, "log1p": 1.0, "tanh": 2.6, "sqrt": 0.5}
BOUND64 = {"exp": 1.0, "expm1": 2.0, "log1p": 1.0, "tanh": 2.5}


def _compiled(name: str, f: Callable[..., Any], io: str) -> Callable[[np.ndarray], np.ndarray]:
    e = Entry(f"kmath_{name}", "test", name, f, f, key=f"kmath_{name}")
    c = K.compiled(e, (), io)
    assert c is not None
    return lambda x: run(c.value, c, x)


def _op(name: str) -> Callable[..., Any]:
    return lambda o, x: getattr(o, name)(x)


def _ulps(y: np.ndarray, ref: np.ndarray, dtype: Any) -> np.ndarray:
    """|y - ref| in ulps of ref as dtype rounds it (the smallest subnormal's spacing below);
    0 where both agree, including NaN and a ref beyond dtype's range that y gives as inf."""
    fi = np.finfo(dtype)
    with np.errstate(all="ignore"):
        r = ref.astype(dtype)
        u = np.maximum(np.spacing(np.abs(r)).astype(np.float64), float(fi.smallest_subnormal))
        d = np.abs(y.astype(np.float64) - ref) / u
    same = (y == r) | (np.isnan(y) & np.isnan(ref))
    return np.where(same, 0.0, d)


def _grid32() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**32, 1 << 22, dtype=np.uint64).astype(np.uint32).view(np.float32)
    dense = [np.linspace(-110, 100, 200001), np.linspace(-1, 1, 200001), np.linspace(-30, 30, 200001),
             [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.72284, -87.33654, -103.97, -1.0,
              1e-30, -1e-30, 1e-45, -1e-45]]
    return np.concatenate([x, *[np.asarray(d, np.float32) for d in dense]])


REF64 = {"exp": np.exp, "expm1": np.expm1, "log1p": np.log1p, "tanh": np.tanh, "sqrt": np.sqrt}


@pytest.mark.parametrize("name", list(BOUND32))
def test_float32_over_the_whole_range(name: str) -> None:
    x = _grid32()
    y = _compiled(name, _op(name), "float32")(x)
    with np.errstate(all="ignore"):
        ref = REF64[name](x.astype(np.float64))
    e = _ulps(y, ref, np.float32)
    assert (np.isnan(y) == np.isnan(ref)).all()
    assert e.max() <= BOUND32[name], f"{name}: {e.max():.3f} ulp at {x[np.argmax(e)]!r}"
    # signed zeros and tiny inputs come back as they went in where f(x) = x to the last bit
    if name in ("expm1", "log1p", "tanh", "sqrt"):
        z = np.array([0.0, -0.0, 1e-40, -1e-40], np.float32)[: 2 if name == "sqrt" else 4]
        assert np.array_equal(_compiled(name, _op(name), "float32")(z).view(np.uint32), z.view(np.uint32))


MP64 = {"exp": mp.exp, "expm1": mp.expm1, "log1p": mp.log1p, "tanh": mp.tanh}


@pytest.mark.parametrize("name", list(BOUND64))
def test_float64_against_mpmath(name: str) -> None:
    mp.mp.dps = 40
    rng = np.random.default_rng(1)
    n = 1500
    x = np.concatenate([
        np.exp(rng.uniform(-700, 709, n)) * rng.choice([-1.0, 1.0], n), rng.uniform(-40, 40, n),
        rng.uniform(-1, 1, n), np.linspace(-745, 710, n), [0.0, -0.0, 5e-324, 709.78, -708.4, -745.1],
    ])
    if name == "log1p":
        x = x[x > -1.0]
    y = _compiled(name, _op(name), "float64")(x)
    worst, at = 0.0, 0.0
    for xi, yi in zip(x, y, strict=True):
        r = MP64[name](mp.mpf(float(xi)))
        rf = float(r)
        if rf == 0.0 or not np.isfinite(rf):
            assert yi == rf, (name, xi, yi, rf)
            continue
        e = float(abs(mp.mpf(float(yi)) - r) / max(np.spacing(abs(rf)), 2.0**-1074))
        if e > worst:
            worst, at = e, float(xi)
    assert worst <= BOUND64[name], f"{name}: {worst:.3f} ulp at {at!r}"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_loads_and_stores_every_value(dtype: str) -> None:
    """Every bit pattern read into float32 exactly and written back rounded to nearest even, as
    NumPy (float16) and ml_dtypes (bfloat16) convert: an identity formula gives the input back
    (NaN as a NaN), and x * 0.7 in float32 rounds once."""
    dt = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.float16
    x = np.arange(1 << 16, dtype=np.uint16).view(dt)
    same = _compiled("ident", lambda o, x: x * 1.0, dtype)(x)
    nan = np.isnan(x.astype(np.float32))
    assert np.array_equal(same[~nan].view(np.uint16), x[~nan].view(np.uint16))
    assert np.isnan(same[nan].astype(np.float32)).all()
    y = _compiled("scale", lambda o, x: x * 0.7, dtype)(x)
    with np.errstate(invalid="ignore"):
        want = (x.astype(np.float32) * np.float32(0.7)).astype(dt)
    ok = (y.view(np.uint16) == want.view(np.uint16)) | (nan & np.isnan(y.astype(np.float32)))
    assert ok.all(), x[~ok][:5]


def test_shifts_take_constant_amounts_below_the_width() -> None:
    """A variable shift, or one past the width, is undefined in C and differs between the
    lowerings: the graph refuses it."""
    from kaun import _ir

    def f(o: Any, x: Any, n: Any) -> Any:
        return o.from_bits(o.shl(o.bits(x), n))

    _ir.trace(lambda o, x: f(o, x, 31), 1, (), 32)
    for n in (32, -1, True, 1.0):
        with pytest.raises(TypeError, match="constant shift"):
            _ir.trace(lambda o, x, n=n: f(o, x, n), 1, (), 32)


@pytest.mark.parametrize("io", ["float32", "float64"])
def test_exp_normal_is_exp_where_that_is_normal_and_0_below(io: str) -> None:
    """exp_normal (one scale factor, for x <= 0: kaun._special.exp_neg's) gives exp's bits wherever
    exp(x) is a normal number, 0 wherever it is not, and NaN for NaN."""
    dt = np.dtype(io)
    if io == "float32":
        x = _grid32().astype(np.float32)
    else:
        rng = np.random.default_rng(2)
        bits = rng.integers(0, 2**63, 1 << 20, dtype=np.uint64) | np.uint64(1 << 63)  # x <= 0
        x = np.concatenate([bits.view(np.float64), np.linspace(-760.0, 0.0, 400001),
                            [-0.0, 0.0, -np.inf, np.nan, -708.3964185322641, -708.3964185322642]])
    x = x[~(x > 0.0)]
    e = _compiled("exp", _op("exp"), io)(x)
    n = _compiled("exp_normal", _op("exp_normal"), io)(x)
    want = np.where(np.abs(e) >= np.finfo(dt).tiny, e, dt.type(0.0))
    same = (n.view(f"u{dt.itemsize}") == want.view(f"u{dt.itemsize}")) | (np.isnan(n) & np.isnan(e))
    assert same.all(), f"{io}: {(~same).sum()} differ, first at x = {x[~same][0]!r}"
    assert (n[x < (-88.0 if io == "float32" else -709.0)] == 0.0).all()
    assert np.isnan(n[np.isnan(x)]).all()


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_exp_tail_takes_any_factor_and_sign(dt: Any) -> None:
    """elu's, selu's and celu's derivatives scale exp(-z) by a factor of the user's (alpha up to
    the dtype's largest) and, for celu with a negative alpha, take z < 0: exp_neg's general form
    (exp_normal's 0 below the normal range, or its single scale factor, would be wrong there)."""
    import kaun.activation as A

    x = np.array([-50.0, -100.0, -152.0, -200.0, -700.0, -800.0], dt)
    with np.errstate(over="ignore"):
        want_celu = np.exp(-x.astype(np.float64)).astype(dt)  # celu'(x) = exp(x / alpha), alpha -1
    got = A.derivative(A.celu)(x, alpha=-1.0)
    assert np.array_equal(got, want_celu), (got, want_celu)
    big = float(np.finfo(dt).max) / 4
    want_elu = np.array([float(mp.mpf(big) * mp.exp(mp.mpf(float(v)))) for v in x]).astype(dt)
    got = A.derivative(A.elu)(x, alpha=big)
    assert np.all(np.abs(got - want_elu) <= 2 * np.spacing(np.abs(want_elu))), (got, want_elu)
    assert got[2] > 0 if dt == np.float32 else got[-1] > 0
