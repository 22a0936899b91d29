"""What the framework tests (test_flax.py, test_equinox.py) share: each function with
hyper-parameters off their defaults, kaun's explicit vector-Jacobian product as the reference for a
framework's gradient, and a comparison in float32 ulps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

import kaun.activation as A

KW: dict[str, dict[str, Any]] = {
    "leaky_relu": {"negative_slope": 0.2}, "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
    "elu": {"alpha": 1.5}, "celu": {"alpha": 0.7}, "squareplus": {"b": 2.5},
}
X = np.concatenate([np.linspace(-6.0, 6.0, 13), [-40.0, -0.3, 0.7]]).astype(np.float32)  # 16


def act(name: str) -> Callable[[Any], Any]:
    if name == "prelu":
        return functools.partial(A.prelu, alpha=0.3)
    return functools.partial(getattr(A, name), **KW.get(name, {}))


def vjp_ref(name: str, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dx for the cotangent g, by kaun's explicit derivatives on NumPy."""
    d = A.derivative(getattr(A, name))
    if name == "prelu":
        return np.asarray(d(x, 0.3, g)[0])
    if name == "glu":
        return np.asarray(d(x, g))
    return np.asarray(g * d(x, **KW.get(name, {})))


def close(a: Any, b: Any, ulps: float, floor: float = 1e-30) -> bool:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    tol = ulps * np.spacing(np.maximum(np.abs(b), floor).astype(np.float32)).astype(np.float64)
    return bool(np.all(np.abs(a - b) <= tol))
