"""NumPy: the formulas on NumPy's ufuncs, with floating-point warnings silenced (the formulas
produce inf or NaN only in branches that ``where`` discards)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..activation._entry import Entry
from ..activation._params import dtype_name
from ._base import HALF, Backend


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


# Large arrays are evaluated in blocks of this many elements: a formula's temporaries then stay
# in the CPU's cache (128 KiB each in float32) instead of each making a pass through memory, and
# the same few blocks are recycled by the allocator. The result is bitwise the same.
# Formulas of one or two operations gain nothing from blocks (they cost one more copy).
CHUNK = 1 << 15
_LIGHT = frozenset({"relu", "tanh", "relu6", "hard_tanh", "leaky_relu", "prelu", "elu", "selu",
                    "celu", "hard_sigmoid", "sparse_sigmoid"})


def _same_kind(x: Any, y: Any) -> Any:
    """A NumPy scalar for a NumPy scalar, an ndarray for an ndarray (ufuncs turn 0-d arrays into
    scalars)."""
    if isinstance(y, tuple):
        return tuple(_same_kind(x, v) for v in y)
    if isinstance(x, np.generic):
        return y[()] if isinstance(y, np.ndarray) else y
    return y if isinstance(y, np.ndarray) else np.asarray(y)


class NumpyBackend(Backend):
    name = "numpy"
    o = NumpyOps()
    f32 = np.float32

    def work(self, f: Any, x: Any, *args: Any) -> Any:
        with np.errstate(all="ignore"):
            return _same_kind(x, super().work(f, x, *args))

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if x.size >= 2 * CHUNK and x.flags.c_contiguous and entry.name not in _LIGHT:
            with np.errstate(all="ignore"):
                return self._blocks(entry.value, x, p)
        return self.work(entry.value, x, *p)

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if x.size >= 2 * CHUNK and x.flags.c_contiguous:
            with np.errstate(all="ignore"):
                return self._blocks(entry.deriv, x, p)
        return self.work(entry.deriv, x, *p)

    def _blocks(self, f: Any, x: Any, args: tuple[Any, ...]) -> Any:
        flat = x.reshape(-1)
        half = dtype_name(x.dtype) in HALF
        out: Any = None
        for i in range(0, flat.size, CHUNK):
            c = flat[i : i + CHUNK]
            y = f(self.o, c.astype(np.float32) if half else c, *args)
            if out is None:  # the formula's result dtype (float32 for a half derivative)
                dt = x.dtype if half else np.result_type(y)
                out = np.empty(flat.size, dtype=dt)
            out[i : i + CHUNK] = y
        return out.reshape(x.shape)


class PythonBackend(NumpyBackend):
    """Python numbers and nested lists, turned into NumPy arrays first."""

    converts = True

    def convert(self, entry: Entry, x: Any) -> Any:
        try:
            a = np.asarray(x)
        except ValueError as e:  # a ragged nested list
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got a ragged nested list"
            ) from e
        if a.dtype.kind in "iu" and not entry.ints:
            a = a.astype(np.float64)
        elif a.dtype.kind not in "biufc":
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got {type(x).__name__} that NumPy reads as {a.dtype}"
            )
        return a
