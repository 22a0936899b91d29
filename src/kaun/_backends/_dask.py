"""Dask: lazy and chunk-wise; each chunk goes through kaun on the chunk's own library."""

from __future__ import annotations

from typing import Any

import dask.array as da

from ..activation._derivative import derivative
from ..activation._entry import Entry
from ._generic import GenericBackend


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
