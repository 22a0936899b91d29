"""Dask: lazy and chunk-wise; each chunk goes through kaun on the chunk's own library."""

from __future__ import annotations

from typing import Any

import dask.array as da

from .._core import Entry, halves
from ..activation._derivative import derivative
from ._generic import GenericBackend
from ._numpy import glu_pair


class DaskBackend(GenericBackend):
    name = "dask"

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        kw = {n: v for (n, _), v in zip(entry.params, p, strict=True)}
        return da.map_blocks(  # type: ignore[no-untyped-call]
            entry.fn, x, dtype=x.dtype, meta=x._meta, **kw
        )

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        fn: Any = entry.fn  # set when the entry is registered
        d = derivative(fn)
        kw = {n: v for (n, _), v in zip(entry.params, p, strict=True)}
        return da.map_blocks(d, x, dtype=x.dtype, meta=x._meta, **kw)  # type: ignore[no-untyped-call]

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        """The halves' chunks side by side, each pair through NumPy's kernel (as ``glu`` of the
        whole array in NumPy, bitwise)."""
        a, b = halves(x, ax)
        b = b.rechunk(a.chunks)  # (map_blocks pairs blocks by position only)
        return da.map_blocks(  # type: ignore[no-untyped-call]
            lambda a, b: glu_pair(entry, a, b), a, b, dtype=x.dtype, meta=x._meta
        )
