"""Thin adapters that evaluate the formulas of ``kaun.activation._defs`` on each framework.

Each adapter module imports its framework at module level and is itself imported only when an
array of that framework arrives (see ``kaun.activation._dispatch``).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def numpy_backend() -> Any:
    from ._numpy import NumpyBackend

    return NumpyBackend()


@functools.cache
def python_backend() -> Any:
    from ._numpy import PythonBackend

    return PythonBackend()


@functools.cache
def torch_backend() -> Any:
    from ._torch import TorchBackend

    return TorchBackend()


@functools.cache
def jax_backend() -> Any:
    from ._jax import JaxBackend

    return JaxBackend()


@functools.cache
def dask_backend() -> Any:
    from ._dask import DaskBackend

    return DaskBackend()


@functools.cache
def generic_backend() -> Any:
    from ._generic import GenericBackend

    return GenericBackend()
