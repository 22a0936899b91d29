"""Arrays for the bitwise tests (test_kernels.py, test_higher.py): a grid over every magnitude of
a dtype, and the bits of a NumPy or torch result."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import torch


def np_dtype(name: str) -> Any:
    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def grid(dtype: str, n: int = 1 << 15) -> np.ndarray:
    """Every magnitude of the dtype, both signs, the exp thresholds and the special values; more
    than a thread's share of elements, so the kernels run split among threads."""
    fi = ml_dtypes.finfo(np_dtype(dtype))
    rng = np.random.default_rng(7)
    lo, hi = np.log(float(fi.smallest_normal)), np.log(float(fi.max))
    v = np.concatenate([
        np.exp(rng.uniform(lo, hi, n)) * rng.choice([-1.0, 1.0], n), rng.normal(0.0, 4.0, n),
        np.linspace(-120.0, 120.0, 2001), np.linspace(-800.0, 800.0, 2001),
        [0.0, -0.0, np.inf, -np.inf, np.nan, float(fi.max), -float(fi.max), float(fi.smallest_normal),
         -1.0, 1.0, -3.0, 3.0, 6.0],
    ])
    with np.errstate(over="ignore"):
        return v.astype(np_dtype(dtype))


def bits(a: Any) -> np.ndarray:
    """The bits of a NumPy or torch array, every NaN made one NaN (its sign and payload are
    not part of any promise)."""
    a = a.detach().numpy() if isinstance(a, torch.Tensor) and a.dtype != torch.bfloat16 else a
    if isinstance(a, torch.Tensor):  # bfloat16: through its bits
        a = a.detach().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    a = np.asarray(a)
    nan = np.isnan(a.astype(np.float64))
    u = a.view(np.uint16 if a.itemsize == 2 else np.uint32 if a.itemsize == 4 else np.uint64).copy()
    u[nan] = 0
    return u


def to_torch(v: np.ndarray, dtype: str) -> torch.Tensor:
    if dtype == "bfloat16":
        return torch.from_numpy(v.view(np.int16).copy()).view(torch.bfloat16)
    return torch.from_numpy(v.copy())
