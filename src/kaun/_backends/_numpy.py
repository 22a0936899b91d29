"""NumPy: the formulas on NumPy's ufuncs, with floating-point warnings silenced (the formulas
produce inf or NaN only in branches that ``where`` discards)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..activation._entry import Entry
from ._base import Backend


class NumpyOps:
    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log1p = staticmethod(np.log1p)
    tanh = staticmethod(np.tanh)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    where = staticmethod(np.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return np.asarray(c).astype(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return float(np.finfo(x.dtype).max)

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == np.float64 else 32


class NumpyBackend(Backend):
    name = "numpy"
    o = NumpyOps()
    f32 = np.float32

    def work(self, f: Any, x: Any, *args: Any) -> Any:
        with np.errstate(all="ignore"):
            return super().work(f, x, *args)


class PythonBackend(NumpyBackend):
    """Python numbers and nested lists, turned into NumPy arrays first."""

    converts = True

    def convert(self, entry: Entry, x: Any) -> Any:
        a = np.asarray(x)
        if a.dtype.kind in "iu" and not entry.ints:
            a = a.astype(np.float64)
        elif a.dtype.kind not in "biufc":
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got {type(x).__name__} that NumPy reads as {a.dtype}"
            )
        return a
