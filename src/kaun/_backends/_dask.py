"""Dask: lazy and chunk-wise; each chunk goes through the backend of the chunk's own library
(NumPy's compiled kernels for NumPy chunks), so a Dask array gives NumPy's bits."""

from __future__ import annotations

import functools
from typing import Any

import dask.array as da
import numpy as np

from .._core import Entry, halves, lookup
from ._generic import GenericBackend
from ._numpy import glu_pair


def _chunk_backend(meta: Any) -> Any:
    from . import generic_backend, numpy_backend

    return numpy_backend() if isinstance(meta, np.ndarray) else generic_backend()


# module-level, by the entry's key: what a Dask graph carries must pickle (to distributed workers)
def _value(block: Any, key: str, p: tuple[float, ...]) -> Any:
    return _chunk_backend(block).elementwise(lookup(key), block, p)


def _deriv(block: Any, key: str, p: tuple[float, ...], order: int) -> Any:
    return _chunk_backend(block).derivative(lookup(key), block, p, order)


def _glu(a: Any, b: Any, key: str) -> Any:
    if isinstance(a, np.ndarray):
        return glu_pair(lookup(key), a, b)
    return _chunk_backend(a).formula(lookup(key), "value", (a, b), ())


class DaskBackend(GenericBackend):
    name = "dask"

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        f = functools.partial(_value, key=entry.key, p=p)
        return da.map_blocks(f, x, dtype=x.dtype, meta=x._meta)  # type: ignore[no-untyped-call]

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        f = functools.partial(_deriv, key=entry.key, p=p, order=order)
        return da.map_blocks(f, x, dtype=x.dtype, meta=x._meta)  # type: ignore[no-untyped-call]

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        """The halves' chunks side by side, each pair through the chunk library's kernel (as
        ``glu`` of the whole array in NumPy, bitwise)."""
        a, b = halves(x, ax)
        return self.gated(entry, a, b)

    def gated(self, entry: Entry, a: Any, b: Any) -> Any:
        """Chunk by chunk, each pair through the chunk library's kernel."""
        b = b.rechunk(a.chunks)  # (map_blocks pairs blocks by position only)
        f = functools.partial(_glu, key=entry.key)
        return da.map_blocks(f, a, b, dtype=a.dtype, meta=a._meta)  # type: ignore[no-untyped-call]
