"""Checking hyper-parameters and dtypes; every message names the function and the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._core import FLOAT_NAMES, INT_NAMES


def check_dtype(qualname: str, name: str, ints: bool) -> None:
    if name in FLOAT_NAMES or (ints and name in INT_NAMES):
        return
    wanted = "a real numeric dtype" if ints else "a real floating dtype"
    hint = "cast it first" if name in INT_NAMES or name == "bool" else "use float16, bfloat16, float32 or float64"
    raise TypeError(f"{qualname}: x must have {wanted}, got {name}; {hint}")


def real(qualname: str, arg: str, v: Any) -> float:
    """A finite real hyper-parameter, as a Python float."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or hasattr(v, "shape") and getattr(v, "shape", ()) != ():
        raise TypeError(
            f"{qualname}: {arg} must be a real number (a Python float), got {type(v).__name__}"
        )
    try:
        f = float(v)
    except OverflowError:  # an int beyond the float range, 10**400
        f = math.inf
    if not math.isfinite(f):
        raise ValueError(f"{qualname}: {arg} must be finite, got {f}")
    return f


def hyper(entry: Any, values: tuple[Any, ...]) -> tuple[float, ...]:
    """Validated hyper-parameters of an entry, as Python floats."""
    q = entry.qualname
    p = tuple(real(q, n, v) for (n, _), v in zip(entry.params, values, strict=True))
    if entry.check is not None:
        entry.check(q, p)
    return p


def axis(qualname: str, ax: Any, ndim: int) -> int:
    if isinstance(ax, bool) or not isinstance(ax, numbers.Integral):
        raise TypeError(f"{qualname}: axis must be an int, got {type(ax).__name__}")
    a = int(ax)
    if not -ndim <= a < ndim:
        raise ValueError(
            f"{qualname}: axis {a} is out of range for an array of {ndim} dimension(s)"
        )
    return a % ndim
