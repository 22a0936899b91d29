"""One ``xp`` fixture over every backend the test environment must have.

Every backend is imported unconditionally: one that cannot be imported fails the run instead of
being skipped silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import array_api_strict
import dask
import dask.array as da
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

from kaun._kernels import torchops as _torchops

jax.config.update("jax_enable_x64", True)
dask.config.set(scheduler="synchronous")

# kaun's torch operator (kaun._kernels.torchops): built here, before any test, so that every
# eager CPU call of the suite takes it (a failed build fails the run); the processes that tests
# start use it but never start a build of their own in the background (KAUN_TORCH_OPS=load;
# tests/test_torchops.py tries the background build on purpose)
os.environ["KAUN_TORCH_OPS"] = "load"
_torchops.build()

FLOATS = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Backend:
    """How to make, call and read back arrays of one framework."""

    name: str
    dtypes: tuple[str, ...]
    make: Callable[[np.ndarray, str], Any]
    read: Callable[[Any], np.ndarray]
    kind: Callable[[Any], bool]
    jit: bool = False

    def asarray(self, values: Any, dtype: str) -> Any:
        return self.make(np.asarray(values, dtype=np.float64), dtype)

    def call(self, fn: Callable[..., Any], x: Any, *args: Any, **kw: Any) -> Any:
        if self.jit:
            return jax.jit(lambda x: fn(x, *args, **kw))(x)
        return fn(x, *args, **kw)

    def dtype_of(self, x: Any) -> str:
        d = x.dtype
        return getattr(d, "name", str(d).rsplit(".", 1)[-1])

    def __str__(self) -> str:
        return self.name


def _np_dtype(name: str) -> Any:
    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def _read_np(x: Any) -> np.ndarray:
    return np.asarray(x).astype(np.float64) if np.asarray(x).dtype.kind in "fV" else np.asarray(x)


_TORCH = {n: getattr(torch, n) for n in FLOATS}

BACKENDS = [
    Backend(
        "numpy", FLOATS,
        lambda a, d: a.astype(_np_dtype(d)),
        _read_np,
        lambda y: isinstance(y, np.ndarray),
    ),
    Backend(
        "torch", FLOATS,
        lambda a, d: torch.from_numpy(a).to(_TORCH[d]),
        lambda y: y.detach().to(torch.float64).numpy() if y.is_floating_point() else y.numpy(),
        lambda y: isinstance(y, torch.Tensor),
    ),
    Backend(
        "jax", FLOATS,
        lambda a, d: jnp.asarray(a.astype(_np_dtype(d))),
        lambda y: np.asarray(y).astype(np.float64),
        lambda y: isinstance(y, jax.Array),
    ),
    Backend(
        "jax-jit", FLOATS,
        lambda a, d: jnp.asarray(a.astype(_np_dtype(d))),
        lambda y: np.asarray(y).astype(np.float64),
        lambda y: isinstance(y, jax.Array),
        jit=True,
    ),
    Backend(
        "dask", FLOATS,
        lambda a, d: da.from_array(a.astype(_np_dtype(d)), chunks=max(1, (a.shape[0] + 2) // 3) if a.ndim else ()),
        lambda y: _read_np(y.compute()),
        lambda y: isinstance(y, da.Array),
    ),
    Backend(
        "array-api-strict", ("float32", "float64"),
        lambda a, d: array_api_strict.asarray(a, dtype=getattr(array_api_strict, d)),
        lambda y: np.asarray(y._array).astype(np.float64),
        lambda y: type(y).__module__.startswith("array_api_strict"),
    ),
]


@pytest.fixture(params=BACKENDS, ids=str)
def xp(request: pytest.FixtureRequest) -> Backend:
    return request.param


# The mpmath reference lives with the accuracy benchmark (one copy, shared with the tests).
import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

_sys.path.insert(0, str(_Path(__file__).resolve().parents[1] / "benchmarks"))
