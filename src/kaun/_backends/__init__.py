"""Thin adapters that evaluate the formulas of ``kaun.activation._defs`` on each framework.

Each adapter module imports its framework at module level and is itself imported only when an
array of that framework arrives (see ``kaun.activation._dispatch``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MADE: dict[str, Any] = {}


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    """Build a backend on first use (a plain dict, not functools.cache: torch.compile traces
    through dispatch and warns about lru_cache-wrapped calls)."""

    def get() -> Any:
        be = _MADE.get(make.__name__)
        if be is None:
            be = _MADE.setdefault(make.__name__, make())
        return be

    get.__name__ = make.__name__
    return get


@_once
def numpy_backend() -> Any:
    from ._numpy import NumpyBackend

    return NumpyBackend()


@_once
def python_backend() -> Any:
    from ._numpy import PythonBackend

    return PythonBackend()


@_once
def torch_backend() -> Any:
    from ._torch import TorchBackend

    return TorchBackend()


@_once
def jax_backend() -> Any:
    from ._jax import JaxBackend

    return JaxBackend()


@_once
def dask_backend() -> Any:
    from ._dask import DaskBackend

    return DaskBackend()


@_once
def generic_backend() -> Any:
    from ._generic import GenericBackend

    return GenericBackend()
