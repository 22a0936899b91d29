"""Values and derivatives against mpmath at the points where activations break, on every backend
and dtype; and what comes back is the same kind of array, shape, dtype and device."""

from __future__ import annotations

from typing import Any

import jax
import ml_dtypes
import numpy as np
import pytest
import torch
from _reference import REF  # benchmarks/_reference.py, via conftest
from mpmath import mp, mpf

import kaun.activation as A

NAMES = [n for n in A.names() if n not in ("prelu", "glu", "swish", "hard_swish")]
KINKS = [-6.0, -3.0, -1.0, 0.0, 1.0, 3.0, 6.0]
MAGS = [1.0, 20.0, 89.0, 710.0, 1e4, 1e20]
# Targets of issue 4: value <= 1 ulp (half) / 4 ulp; derivative <= 2 ulp (half) / 16 ulp.
VALUE_ULP = {"float16": 1.0, "bfloat16": 1.0, "float32": 4.0, "float64": 4.0}
DERIV_ULP = {"float16": 2.0, "bfloat16": 2.0, "float32": 16.0, "float64": 16.0}


def _np_dtype(d: str) -> Any:
    return np.dtype(ml_dtypes.bfloat16) if d == "bfloat16" else np.dtype(d)


def points(dtype: str) -> np.ndarray:
    fi = ml_dtypes.finfo(_np_dtype(dtype))
    big, tiny, sub = float(fi.max), float(fi.tiny), float(fi.smallest_subnormal)
    mags = [0.0, sub, tiny] + [m for m in MAGS if m < big] + [big]
    v = sorted({s * m for m in mags for s in (1.0, -1.0)} | set(KINKS))
    return np.array(v + [np.inf, -np.inf, np.nan], dtype=np.float64).astype(_np_dtype(dtype))


def _ulps(y: np.ndarray, ref: np.ndarray, dtype: str, flush: bool) -> np.ndarray:
    """|y - ref| in ulps of ref in dtype (ulp(r) = 2^(floor(log2 |r|) - p + 1), at least the
    smallest subnormal)."""
    dt = _np_dtype(dtype)
    fi = ml_dtypes.finfo(dt)
    _, e = np.frexp(np.abs(ref))
    ulp = np.maximum(np.ldexp(1.0, e - (fi.nmant + 1)), float(fi.smallest_subnormal))
    err = np.abs(y - ref)
    if flush:  # XLA on the CPU flushes subnormal results to zero
        err = np.where(np.abs(ref) < float(fi.tiny), np.maximum(err - float(fi.tiny), 0.0), err)
    return err / ulp


def _reference(name: str, xs: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(f, f') rounded to float64, with results past the dtype's largest finite value as inf.
    At +-inf, the limit: the reference at +-1e300, where every function is at its limit."""
    mp.dps = 50
    fi = ml_dtypes.finfo(_np_dtype(dtype))
    ovf = float(fi.max) * (1.0 + 2.0 ** -(fi.nmant + 1)) if dtype != "float64" else np.inf
    f, d = [], []
    for v in xs.astype(np.float64):
        if np.isnan(v):
            f.append(np.nan), d.append(np.nan)
            continue
        fv, dv = REF[name](mpf(float(np.sign(v)) * 1e300 if np.isinf(v) else float(v)))
        fv, dv = float(fv), float(dv)
        if np.isinf(v):
            fv = np.copysign(np.inf, fv) if abs(fv) > 1e200 else 0.0 if abs(fv) < 1e-200 else fv
        f.append(fv if abs(fv) < ovf else np.copysign(np.inf, fv)), d.append(dv)
    return np.array(f), np.array(d)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_values_at_the_breaking_points(xp, name: str, dtype: str) -> None:  # type: ignore[no-untyped-def]
    if dtype not in xp.dtypes:
        pytest.skip(f"{xp} has no {dtype}")
    xs = points(dtype)
    with np.errstate(all="ignore"):
        want, _ = _reference(name, xs, dtype)
    x = xp.make(xs.astype(np.float64), dtype)
    y = xp.call(getattr(A, name), x)
    assert xp.kind(y) and xp.dtype_of(y) == dtype and tuple(y.shape) == xs.shape
    got = xp.read(y)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), (xs[np.isnan(got) != nan], got[np.isnan(got) != nan])
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf])
    fin = ~nan & ~inf
    err = _ulps(got[fin], want[fin], dtype, flush=xp.name.startswith("jax"))
    worst = int(np.argmax(err)) if err.size else 0
    assert err.max(initial=0) <= VALUE_ULP[dtype], (
        f"{name} {dtype} {xp}: {err[worst]:.3g} ulp at x={xs[fin][worst]!r}: "
        f"got {got[fin][worst]!r}, want {want[fin][worst]!r}"
    )


def _autodiff(backend: str, name: str, xs: np.ndarray, dtype: str) -> np.ndarray:
    fn = getattr(A, name)
    if backend == "torch":
        x = torch.from_numpy(xs.astype(np.float64)).to(getattr(torch, dtype)).requires_grad_()
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        return g.to(torch.float64).numpy()
    if backend == "jax":
        x = jax.numpy.asarray(xs.astype(_np_dtype(dtype)))
        return np.asarray(jax.vmap(jax.grad(fn))(x)).astype(np.float64)
    return np.asarray(A.derivative(fn)(xs.astype(_np_dtype(dtype)))).astype(np.float64)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", NAMES)
def test_derivatives_at_the_breaking_points(backend: str, name: str, dtype: str) -> None:
    xs = points(dtype)
    xs = xs[np.isfinite(xs.astype(np.float64))]
    xs = xs[~np.isin(xs.astype(np.float64), KINKS)]  # kink values: see test_grads
    if backend == "jax":  # XLA on the CPU reads subnormal inputs as 0 (DAZ): leave them out
        xs = xs[np.abs(xs.astype(np.float64)) >= float(ml_dtypes.finfo(_np_dtype(dtype)).tiny)]
    with np.errstate(all="ignore"):
        _, want = _reference(name, xs, dtype)
    got = _autodiff(backend, name, xs, dtype)
    assert np.isfinite(got).all(), xs[~np.isfinite(got)]
    err = _ulps(got, want, dtype, flush=backend == "jax")
    worst = int(np.argmax(err))
    assert err.max() <= DERIV_ULP[dtype], (
        f"{name}' {dtype} {backend}: {err[worst]:.3g} ulp at x={xs[worst]!r}: "
        f"got {got[worst]!r}, want {want[worst]!r}"
    )


@pytest.mark.parametrize("name", NAMES + ["prelu", "glu"])
def test_kind_shape_dtype_device_preserved(xp, name: str) -> None:  # type: ignore[no-untyped-def]
    vals = np.linspace(-3, 3, 24).reshape(2, 3, 4)
    for dtype in xp.dtypes:
        x = xp.make(vals, dtype)
        if name == "prelu":
            y = xp.call(A.prelu, x, 0.1)
            shape = (2, 3, 4)
        elif name == "glu":
            y = xp.call(A.glu, x, axis=-1)
            shape = (2, 3, 2)
        else:
            y = xp.call(getattr(A, name), x)
            shape = (2, 3, 4)
        assert xp.kind(y), type(y)
        assert xp.dtype_of(y) == dtype and tuple(y.shape) == shape
        if hasattr(x, "device") and not xp.name.startswith("jax"):
            assert y.device == x.device
        if xp.name == "dask":
            assert y.npartitions == x.npartitions or name == "glu"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", [0.1, 0.3, 3.7])
def test_celu_with_other_alpha(backend: str, dtype: str, alpha: float) -> None:
    """exp amplifies the rounding of x/alpha by |x/alpha|; kaun carries it (was 54 ulp)."""
    mp.dps = 40
    xs = (-np.geomspace(1e-3, 100 * alpha, 200)).astype(dtype)
    fi = ml_dtypes.finfo(_np_dtype(dtype))
    xs = xs[np.exp(xs.astype(np.float64) / alpha) > float(fi.tiny)]  # keep results normal (XLA)
    want = np.array([float(alpha * mp.expm1(mpf(float(v)) / alpha)) for v in xs])
    dwant = np.array([float(mp.exp(mpf(float(v)) / alpha)) for v in xs])
    if backend == "numpy":
        got, dgot = A.celu(xs, alpha=alpha), A.derivative(A.celu)(xs, alpha=alpha)
    elif backend == "torch":
        t = torch.tensor(xs, requires_grad=True)
        y = A.celu(t, alpha=alpha)
        (g,) = torch.autograd.grad(y.sum(), t)
        got, dgot = y.detach().numpy(), g.numpy()
    else:
        xj = jax.numpy.asarray(xs)
        got = np.asarray(A.celu(xj, alpha=alpha))
        dgot = np.asarray(jax.vmap(jax.grad(lambda v: A.celu(v, alpha=alpha)))(xj))
    bound = 5.0 if backend == "jax" else 4.0  # XLA's expm1 is ~1 ulp looser than libm's
    assert _ulps(got.astype(np.float64), want, dtype, False).max() <= bound
    assert _ulps(dgot.astype(np.float64), dwant, dtype, False).max() <= DERIV_ULP[dtype]
