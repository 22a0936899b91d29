"""Checking hyper-parameters and dtypes; every message names the function and the argument."""

from __future__ import annotations

import math
import numbers
from typing import Any

from .._core import FLOAT_NAMES, INT_NAMES


def check_dtype(qualname: str, name: str, ints: bool, arg: str = "x") -> None:
    if name in FLOAT_NAMES or (ints and name in INT_NAMES):
        return
    wanted = "a real numeric dtype" if ints else "a real floating dtype"
    hint = "cast it first" if name in INT_NAMES or name == "bool" else "use float16, bfloat16, float32 or float64"
    raise TypeError(f"{qualname}: {arg} must have {wanted}, got {name}; {hint}")


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


def prelu_layer(who: str, num_parameters: Any, init: Any, channel_axis: Any) -> tuple[int, float, int]:
    """The checked arguments of a learnable PReLU (kaun.nn, kaun.flax, kaun.equinox):
    (num_parameters, init, channel_axis); errors name the layer ``who``."""
    if isinstance(num_parameters, bool) or not isinstance(num_parameters, numbers.Integral):
        raise TypeError(f"{who}: num_parameters must be an int, got {type(num_parameters).__name__}")
    if num_parameters < 1:
        raise ValueError(f"{who}: num_parameters must be >= 1, got {num_parameters}")
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"{who}: channel_axis must be an int, got {type(channel_axis).__name__}")
    return int(num_parameters), real(who, "init", init), int(channel_axis)


def prelu_alpha_shape(who: str, num_parameters: int, channel_axis: int,
                      shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape that a learnable PReLU's alpha of shape (num_parameters,) takes to broadcast
    along ``channel_axis`` of an input of ``shape``: () for one parameter."""
    if num_parameters == 1:
        return ()
    nd = len(shape)
    if not -nd <= channel_axis < nd:
        raise ValueError(
            f"{who}: channel_axis {channel_axis} is out of range for an input of {nd} dimension(s)"
        )
    ax = channel_axis % nd
    if shape[ax] != num_parameters:
        raise ValueError(
            f"{who}: the input has {shape[ax]} channels on axis {channel_axis}, the module "
            f"{num_parameters} parameters"
        )
    return (num_parameters,) + (1,) * (nd - 1 - ax)


def gated_mlp(who: str, sizes: dict[str, Any], activation: Any) -> tuple[tuple[int, ...], str]:
    """The checked arguments of a gated MLP block (kaun.flax, kaun.equinox, kaun.keras): the
    sizes as ints (each positive) and the canonical name of the gated ``activation`` (swiglu,
    geglu, geglu_approx, reglu or glu, by name or alias); errors name the layer ``who``."""
    import kaun.activation as A

    out = []
    for arg, v in sizes.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{who}: {arg} must be a positive int, got {v!r}")
        out.append(int(v))
    try:
        entry = getattr(A.get(activation), "_kaun_entry", None) if isinstance(activation, str) else None
    except ValueError:
        entry = None
    if entry is None or entry.kind != "glu":
        raise ValueError(f"{who}: activation must be a gated function (swiglu, geglu, "
                         f"geglu_approx, reglu, glu), got {activation!r}")
    return tuple(out), str(entry.name)
