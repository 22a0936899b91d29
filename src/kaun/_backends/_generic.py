"""Any Array API namespace (array-api-strict, CuPy, ...), through array-api-compat."""

from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from ..activation._params import dtype_name
from ._base import HALF, Backend


class GenericOps:
    """The formula vocabulary on one namespace; scalars in ``where`` become arrays of x's dtype."""

    def __init__(self, xp: Any) -> None:
        self.xp = xp
        for n in ("exp", "expm1", "log1p", "tanh", "sqrt", "abs"):
            setattr(self, n, getattr(xp, n))

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

    def __init__(self) -> None:
        self._ops: dict[int, GenericOps] = {}

    def work(self, f: Any, x: Any, *args: Any) -> Any:
        xp = array_namespace(x)
        o = self._ops.get(id(xp))
        if o is None:
            o = self._ops.setdefault(id(xp), GenericOps(xp))
        # Libraries built on NumPy (array-api-strict, Dask's chunks) warn where a formula's
        # discarded branch overflows; those values never reach the result.
        with np.errstate(all="ignore"):
            if dtype_name(x.dtype) in HALF:
                return xp.astype(f(o, xp.astype(x, xp.float32), *args), x.dtype)
            return f(o, x, *args)

    def astype(self, x: Any, dtype: Any) -> Any:
        if not hasattr(x, "dtype"):
            return x
        return array_namespace(x).astype(x, dtype)
