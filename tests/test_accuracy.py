"""Accuracy against mpmath: a fast subset of benchmarks/accuracy.py, asserting the bounds that
docs/accuracy.md claims, on NumPy, torch and JAX.

The reference, the ULP rule and the special points are the benchmark's own
(benchmarks/_reference.py, loaded here by path: one copy). A few hundred points per dtype: a
sample of every float16/bfloat16 value, a coarse float32/float64 grid over the whole range, every
special point of the benchmark with its neighbours, and the worst cases that the full benchmark
found (before and after the fixes).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import kaun.activation as A

jax.config.update("jax_enable_x64", True)


def _load_reference() -> Any:
    name = "_kaun_accuracy_reference"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_reference.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


R = _load_reference()

# Inputs where the full benchmark found the largest errors (of the formulas before the fixes:
# gelu's doubled erfc correction, gelu_approx's uncompensated argument, the subnormal
# intermediates of silu/mish/gelu, hard_sigmoid/hard_silu next to -3 and 3, squareplus and selu
# near the largest value; and after them, on NumPy and torch: the `at x` of docs/accuracy.md).
WORST = {
    "float16": (
        -65504.0, -5792.0, -884.5, -8.0, -7.72656, -5.5, -5.38672, -4.02344, -3.63867, -3.50391,
        -2.99805, -1.45605, -1.31543, -0.713867, -0.691406, -0.499756, -0.498779, -0.4646,
        -0.345703, -0.24939, -0.123901, -0.112793, -0.0928345, -0.0563965, -0.041626, -0.0283966,
        -0.0246429, -0.0140457, -0.0112305, -0.0107422, -0.00927734, -0.00352669, -0.00133896,
        -0.000244021, -0.000241399, -6.38962e-05, 5.96046e-08, 6.38962e-05, 0.000244141,
        0.00683594, 0.00927734, 0.0107422, 0.078186, 0.250244, 1.57129, 11.0, 65504.0,
    ),
    "bfloat16": (
        -3.38953e+38, -1.47574e+20, -87.5, -24.375, -15.875, -13.4375, -3.95312, -3.78125,
        -2.98438, -2.71875, -1.89062, -1.23438, -0.933594, -0.498047, -0.249023, -0.224609,
        -0.171875, -0.090332, -0.059082, -0.0152588, -0.0078125, -0.00585938, -0.00488281,
        -0.000770569, -0.000610352, -4.68361e-38, -4.1326e-38, -2.34181e-38, 0.00390625,
        0.0078125, 0.0152588, 0.910156, 1.7147e+38,
    ),
    "float32": (
        -3.40282e+38, -1.70141e+38, -2.50203e+35, -1.08661e+19, -103.884, -102.876, -90.4883,
        -87.3365, -81.4203, -75.5735, -63.4885, -59.521, -46.7051, -43.6683, -28.02, -23.17,
        -16.68, -16.64, -15.94, -15.54, -13.81, -13.4179, -13.0975, -12.777, -11.46, -10.2937,
        -10.0534, -10.0, -9.89319, -9.49266, -9.35, -8.61148, -8.0, -6.52871, -6.04806, -5.48732,
        -4.62, -3.0, -2.68, -2.08, -1.87, -1.82, -1.59279, -1.46, -1.41421, -1.34, -1.03, -1.02,
        -1.01, -0.91, -0.751792, -0.5, -0.460322, -0.0118305, -0.0108594, -0.00843279,
        -4.47487e-38, 0.00029821, 0.00356827, 0.34084, 2.08, 5.55, 97.544, 1.08007e+19,
        1.70141e+38, 3.23862e+38, 3.40282e+38,
    ),
    "float64": (
        -1.79769e+308, -2.70385e+246, -7.31697e+153, -737.898, -737.206, -712.891, -708.396,
        -705.54, -693.305, -391.519, -354.198, -38.1838, -36.7696, -27.2764, -23.6, -23.39,
        -21.2684, -21.1883, -21.028, -18.89, -17.67, -16.79, -16.32, -15.07, -13.84, -10.0534,
        -5.96796, -5.54, -3.0, -2.81, -2.77, -2.0, -1.59, -1.47, -1.41421, -1.02, -0.82,
        -0.751792, -0.5, -0.308642, -7.5352e-05, -3.7676e-05, -1.30449e-06, -2.22045e-16,
        -5.49401e-308, 1.22224e-14, 0.00120563, 0.308642, 16.79, 19.0253, 63.1274, 722.794,
        1.71095e+308,
    ),
}


def _neigh(dtype: str, vals: tuple[float, ...]) -> list[float]:
    t = R.FMT[dtype].np.type
    out: list[float] = []
    with np.errstate(all="ignore"):
        for v in vals:
            a = t(v)
            out += [float(a), float(np.nextafter(a, t(-np.inf))), float(np.nextafter(a, t(np.inf)))]
    return out


@functools.cache
def points(dtype: str) -> np.ndarray:
    fm = R.FMT[dtype]
    if fm.p <= 11:
        base = R.all_finite(dtype)[::256]
    else:
        binades = np.arange(fm.emin - fm.p + 1, fm.emax + 1, 9)
        logs = np.ldexp(1.5, binades)
        lo = math.log(fm.tiny) - 5.0
        base = np.concatenate([logs, -logs, np.linspace(-30.0, 30.0, 121),
                               np.linspace(lo, -30.0, 60), np.linspace(30.0, 100.0, 8)])
    xs = np.concatenate([base, R.special_points(dtype), _neigh(dtype, WORST[dtype])])
    with np.errstate(all="ignore"):
        xs = xs.astype(fm.np).astype(np.float64)
    return np.unique(xs[np.isfinite(xs)])


@functools.cache
def reference(dtype: str) -> dict[str, Any]:
    return R.evaluate(R.FUNCTIONS, points(dtype))  # type: ignore[no-any-return]


def _fn(name: str) -> Any:
    f = getattr(A, name)
    return (lambda x: f(x, 0.25)) if name == "prelu" else f


def run_numpy(name: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
    y = _fn(name)(x)
    if name == "prelu":
        with np.errstate(over="ignore"):  # its alpha gradient, a float16 sum, may overflow
            d = A.derivative(A.prelu)(x, 0.25, np.ones_like(x))[0]
    else:
        d = A.derivative(getattr(A, name))(x)
    return np.asarray(y).astype(np.float64), np.asarray(d).astype(np.float64)


_TORCH = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
          "float64": torch.float64}


def run_torch(name: str, x: np.ndarray, dtype: str) -> tuple[np.ndarray, ...]:
    xt = torch.from_numpy(x.astype(np.float64)).to(_TORCH[dtype])
    y_plain = _fn(name)(xt)  # no autograd: the plain path
    xg = xt.clone().requires_grad_(True)
    y = _fn(name)(xg)
    (g,) = torch.autograd.grad(y, xg, torch.ones_like(y))
    return tuple(t.detach().to(torch.float64).numpy() for t in (y_plain, y, g))


def run_jax(name: str, x: np.ndarray) -> tuple[np.ndarray, ...]:
    xj = jnp.asarray(x)
    y, pull = jax.vjp(_fn(name), xj)
    (g,) = pull(jnp.ones_like(y))
    return np.asarray(y).astype(np.float64), np.asarray(g).astype(np.float64)


# Where a backend does not meet the targets, and why (docs/accuracy.md, "Where kaun misses").
# XLA on CPU flushes subnormal inputs and results to zero: those points are left out for JAX.
LOOSER = {
    ("tanh", "float64", "jax", "value"): 8.0,  # XLA's own tanh kernel: 6.5 ulp near x = 19
}


def _subnormal(v: np.ndarray, dtype: str) -> np.ndarray:
    small = math.ldexp(1.0, R.FMT[dtype].emin)
    return (np.abs(v) < small) & (v != 0)


def check(name: str, dtype: str, backend: str, kind: str, y: np.ndarray) -> list[str]:
    xs = points(dtype)
    ref = reference(dtype)[name][0 if kind == "value" else 1]
    err = R.ulp_error(y, ref, dtype, xs, R.ZEROS.get((name, kind != "value"), ()))
    keep = np.ones(xs.shape, bool)
    if kind != "value":
        keep &= ~R.kink_mask(name, xs)
    if backend == "jax":
        keep &= ~_subnormal(xs, dtype) & ~_subnormal(ref.approx(), dtype)
    if backend.startswith("torch") and name == "selu" and dtype == "float32":
        # torch's native F.selu (the backend's choice) rounds lambda up: inf past 3.2386e38
        keep &= xs < 3.2386e38
    bound = LOOSER.get((name, dtype, backend.split("-")[0], kind),
                       R.TARGET[dtype][0 if kind == "value" else 1])
    bad = keep & ~(err <= bound)
    return [f"{backend} {kind} at x={xs[i]!r}: got {y[i]!r}, {err[i]:.3g} ulp > {bound}"
            for i in np.flatnonzero(bad)[:5]]


@pytest.mark.parametrize("dtype", R.DTYPES)
@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_numpy(name: str, dtype: str) -> None:
    y, d = run_numpy(name, R.cast(points(dtype), dtype))
    fails = check(name, dtype, "numpy", "value", y) + check(name, dtype, "numpy", "derivative", d)
    assert not fails, "\n".join(fails)


@pytest.mark.parametrize("dtype", R.DTYPES)
@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_torch(name: str, dtype: str) -> None:
    y_plain, y, d = run_torch(name, points(dtype), dtype)
    fails = (check(name, dtype, "torch-plain", "value", y_plain)
             + check(name, dtype, "torch-autograd", "value", y)
             + check(name, dtype, "torch", "derivative", d))
    assert not fails, "\n".join(fails)


@pytest.mark.parametrize("dtype", R.DTYPES)
@pytest.mark.parametrize("name", R.FUNCTIONS)
def test_jax(name: str, dtype: str) -> None:
    y, d = run_jax(name, R.cast(points(dtype), dtype))
    fails = check(name, dtype, "jax", "value", y) + check(name, dtype, "jax", "derivative", d)
    assert not fails, "\n".join(fails)


def test_reference_is_exact_where_it_can_be_checked() -> None:
    """The mpmath reference against values known in closed form (so the harness can fail)."""
    xs = np.array([0.0, 1.0, -1.0, 2.0])
    ref = R.evaluate(("sigmoid", "relu6", "softsign", "squareplus"), xs)
    v = ref["sigmoid"][0].approx()
    assert v[0] == 0.5 and abs(v[1] - 1 / (1 + math.exp(-1))) < 1e-16
    assert list(ref["relu6"][0].approx()) == [0.0, 1.0, 0.0, 2.0]
    assert list(ref["softsign"][1].approx()) == [1.0, 0.25, 0.25, 1 / 9]
    assert abs(ref["squareplus"][0].approx()[0] - 1.0) < 1e-16
    # the ULP rule: one ulp off is 1, the nearest float is within 1/2, a wrong zero is huge
    one = R.evaluate(("relu",), np.array([1.0]))["relu"][0]
    assert R.ulp_error(np.array([1.0 + 2**-52]), one, "float64")[0] == 1.0
    assert R.ulp_error(np.array([1.0 + 2**-10]), one, "float16")[0] == 1.0
    third = R.evaluate(("hard_sigmoid",), np.array([-1.0]))["hard_sigmoid"][0]  # 1/3
    assert R.ulp_error(np.array([float(np.float32(1 / 3))]), third, "float32")[0] <= 0.5
    tiny = R.evaluate(("gelu",), np.array([-10.0]))["gelu"][0]
    assert R.ulp_error(np.array([0.0]), tiny, "float32")[0] > 1e6
    assert R.ulp_error(np.array([np.inf]), one, "float32")[0] == np.inf
