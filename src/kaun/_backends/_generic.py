"""Any Array API namespace (array-api-strict, CuPy, ...), through array-api-compat."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from .._core import INT_NAMES, dtype_name
from ._base import Backend


class GenericOps:
    """The formula vocabulary on one namespace; scalars in ``where`` become arrays of x's dtype."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        for n in ("exp", "expm1", "log1p", "tanh", "sqrt", "abs"):
            setattr(self, n, getattr(xp, n))
        self.exp_normal = xp.exp

    def where(self, c: Any, a: Any, b: Any) -> Any:
        like = b if hasattr(b, "dtype") else a
        if not hasattr(a, "dtype"):
            a = self.xp.asarray(a, dtype=like.dtype, device=device(like))
        if not hasattr(b, "dtype"):
            b = self.xp.asarray(b, dtype=like.dtype, device=device(like))
        return self.xp.where(c, a, b)

    def clip(self, x: Any, lo: Any, hi: Any) -> Any:
        return self.xp.clip(x, min=lo, max=hi)

    def mask(self, c: Any, like: Any) -> Any:
        return self.xp.astype(c, like.dtype)

    def big(self, x: Any) -> float:
        return float(self.xp.finfo(x.dtype).max)

    def prec(self, x: Any) -> int:
        return 64 if x.dtype == self.xp.float64 else 32


class GenericBackend(Backend):
    name = "array-api"
    f32 = None  # each namespace's own float32 (see astype)

    def __init__(self) -> None:
        self._ops: dict[int, GenericOps] = {}

    def ops(self, x: Any) -> Any:
        xp = array_namespace(x)
        o = self._ops.get(id(xp))
        if o is None:
            o = self._ops.setdefault(id(xp), GenericOps(xp))
        return o

    def formula(self, entry: Any, which: str, xs: tuple[Any, ...], p: tuple[float, ...]) -> Any:
        # Libraries built on NumPy (array-api-strict) warn where a formula's discarded branch
        # overflows; those values never reach the result.
        with np.errstate(all="ignore"):
            return super().formula(entry, which, xs, p)

    def derivative(self, entry: Any, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        if entry.ints and dtype_name(x.dtype) in INT_NAMES:  # relu's: no float literal in sight
            xp = array_namespace(x)
            return xp.astype(x > 0, x.dtype) if order == 1 else xp.zeros_like(x)
        return super().derivative(entry, x, p, order)

    def astype(self, x: Any, dtype: Any) -> Any:
        if not hasattr(x, "dtype"):
            return x
        xp = array_namespace(x)
        return xp.astype(x, xp.float32 if dtype is None else dtype)
