"""Which backend serves an input: found once per type, without importing any framework.

A framework is only looked at when it is already in ``sys.modules`` (an array of it cannot exist
otherwise), so ``import kaun.activation`` imports neither torch nor jax.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar, cast

import numpy as np

from .._core import ALL, FAST, LRU, Entry, dtype_name
from ._params import axis as check_axis
from ._params import check_dtype, hyper, real

T = TypeVar("T")

_CACHE: dict[type, Any] = {}
_PY_SCALARS = (int, float, bool, complex, list, tuple)


def _never() -> bool:
    return False


# Whether torch.compile (dynamo) is tracing this call: torch.compiler.is_dynamo_compiling (False
# in eager, at the cost of a call; True to dynamo) once a torch tensor has been seen. A trace
# skips the caches below (keyed by what the caller chooses, they change as eager calls come and
# go): read in a trace, each change would fail dynamo's guards on them and recompile the traced
# function (8 eager calls with new hyper-parameter values failed a fullgraph torch.compile);
# the checked path traces to the same graph.
_tracing: Any = _never


def _find(t: type, x: Any) -> Any:
    from .. import _backends as B

    root = t.__module__.partition(".")[0]
    if root == "numpy" or isinstance(x, (np.ndarray, np.generic)):  # subclasses from anywhere
        return B.numpy_backend()
    if "torch" in sys.modules and isinstance(x, sys.modules["torch"].Tensor):
        global _tracing
        _tracing = sys.modules["torch"].compiler.is_dynamo_compiling
        return B.torch_backend()
    if "jax" in sys.modules and isinstance(x, sys.modules["jax"].Array):
        return B.jax_backend()
    if "dask.array" in sys.modules and isinstance(x, sys.modules["dask.array"].Array):
        return B.dask_backend()
    if issubclass(t, _PY_SCALARS):
        return B.python_backend()
    if hasattr(x, "__array_namespace__"):
        return B.generic_backend()
    return None


def backend_of(qualname: str, x: Any, arg: str = "x") -> Any:
    t = type(x)
    be = _CACHE.get(t)
    if be is None:
        be = _find(t, x)
        if be is None:
            hint = ""
            if t.__module__.partition(".")[0] == "keras":  # a symbolic KerasTensor
                hint = f"; on Keras's symbolic tensors use kaun.keras.{qualname.rpartition('.')[2]}"
            raise TypeError(
                f"{qualname}: {arg} must be an array (NumPy, PyTorch, JAX, Dask, CuPy or any "
                f"Array API array) or a real number, got {t.__name__}{hint}"
            )
        _CACHE[t] = be  # one atomic store: racing threads at worst both compute the same answer
    return be


def prepare(entry: Entry, x: Any, arg: str = "x") -> tuple[Any, Any]:
    """(backend, x as an array of that backend), dtype checked; errors name the argument."""
    be = backend_of(entry.qualname, x, arg)
    if be.converts:
        x = be.convert(entry, x)
    check_dtype(entry.qualname, dtype_name(x.dtype), entry.ints, arg)
    if be.check is not None:  # (torch: a sparse or nested tensor, before its shape is read)
        be.check(entry.qualname, x, arg)
    return be, x


_F32_RANGE = (1.1754943508222875e-38, 3.4028234663852886e38)  # smallest normal, largest finite


def check_float32_range(entry: Entry, x: Any, p: tuple[float, ...]) -> None:
    """Half precision and float32 compute in float32: a hyper-parameter that float32 cannot hold
    (it would become inf or 0 there, and inf * 0 = NaN) is refused rather than silently changed."""
    if dtype_name(x.dtype) == "float64":
        return
    lo, hi = _F32_RANGE
    for (n, _), v in zip(entry.params, p, strict=True):
        if v != 0.0 and not lo <= abs(v) <= hi:
            raise ValueError(
                f"{entry.qualname}: {n}={v!r} is outside float32's range ({lo:.4g} to {hi:.4g} in "
                f"magnitude), in which {dtype_name(x.dtype)} input is computed"
            )


_FAST_MAX = FAST  # fast callables kept per entry (Entry.fast, an LRU)


def _touch(cache: LRU, key: Any) -> None:
    """key made the most recently used of a full LRU (another thread may have evicted it)."""
    try:
        cache.move_to_end(key)
    except KeyError:
        pass


def _cacheable(params: tuple[Any, ...]) -> bool:
    """Hyper-parameters that identify their checked values by equality: nonzero Python floats
    (True == 1.0 and 0.0 == -0.0 would otherwise share a key), within float32's range (so that
    no dtype needs the range check of ``check_float32_range``)."""
    lo, hi = _F32_RANGE
    for v in params:
        if type(v) is not float or not lo <= abs(v) <= hi:
            return False
    return True


def apply(entry: Entry, x: T, params: tuple[Any, ...]) -> T:
    # The fast path: a backend's callable for this array type and these hyper-parameters, stored
    # after a call that passed every check; it re-checks only what varies per array (the dtype)
    # and returns None to send the call down the checked path below.
    key = (type(x), params)
    fast = entry.fast
    # (_tracing first: under dynamo a hyper-parameter may be symbolic, and _cacheable's test of
    # it would break the graph, leaving the rest of this function to a frame of its own)
    cache = not _tracing() and (not params or _cacheable(params))
    f = fast.get(key) if cache else None
    if f is not None:
        y = f(x)
        if y is not None:
            if len(fast) >= _FAST_MAX:  # (LRU.hit, inlined: recency matters once full)
                _touch(fast, key)
            return y  # type: ignore[no-any-return]
    be, a = prepare(entry, x)
    if params:
        p = hyper(entry, params)
        check_float32_range(entry, a, p)
    else:
        p = ()
    y = be.elementwise(entry, a, p)
    if f is None and a is x and cache:
        g = be.fast(entry, p)
        if g is not None:
            fast.put(key, g)
    return cast(T, y)


def apply_prelu(entry: Entry, x: T, alpha: Any) -> T:
    return cast(T, _prelu(entry, x, alpha))


# (type(x), type(alpha), dtypes, shapes) that passed prelu's checks -> backend: the checks
# depend on nothing else
_PRELU_OK = LRU(_FAST_MAX)


def _prelu(entry: Entry, x: Any, alpha: Any) -> Any:
    key: Any = None
    be: Any = None
    try:
        if not _tracing():
            key = (type(x), type(alpha), x.dtype, alpha.dtype, x.shape, alpha.shape)
            be = _PRELU_OK.get(key)
            if be is not None and len(_PRELU_OK) >= _FAST_MAX:  # (LRU.hit, inlined)
                _touch(_PRELU_OK, key)
    except (AttributeError, TypeError, RuntimeError):  # a number alpha, an unhashable shape
        key = None  # (RuntimeError: a nested torch tensor has no shape)
    if be is not None:
        return be.prelu(entry, x, alpha)
    be, x = prepare(entry, x)
    if not hasattr(alpha, "shape") or isinstance(alpha, np.generic):
        p = (real(entry.qualname, "alpha", alpha),)
        PRELU_SCALAR = ALL["prelu_scalar"]
        check_float32_range(PRELU_SCALAR, x, p)
        return be.elementwise(PRELU_SCALAR, x, p)
    abe = backend_of(entry.qualname, alpha, "alpha")
    if abe is not be:
        raise TypeError(
            f"{entry.qualname}: alpha must be a Python number or an array of the same library as "
            f"x ({be.name}), got {type(alpha).__module__}.{type(alpha).__name__}"
        )
    if be.check is not None:
        be.check(entry.qualname, alpha, "alpha")
    if dtype_name(alpha.dtype) != dtype_name(x.dtype):  # (by name: a byte order does not count)
        raise TypeError(
            f"{entry.qualname}: alpha must have x's dtype {dtype_name(x.dtype)}, got "
            f"{dtype_name(alpha.dtype)}; cast it first"
        )
    xs, as_ = tuple(x.shape), tuple(alpha.shape)
    if len(as_) > len(xs) or any(a not in (1, d) for a, d in zip(as_[::-1], xs[::-1], strict=False)):
        raise ValueError(
            f"{entry.qualname}: alpha of shape {as_} does not broadcast to x's shape {xs}"
        )
    if key is not None and not be.converts:
        _PRELU_OK.put(key, be)
    return be.prelu(entry, x, alpha)


def apply_glu(entry: Entry, x: T, axis: Any) -> T:
    return cast(T, _glu(entry, x, axis))


# (type(x), dtype, shape, axis) that passed glu's checks -> (backend, axis as a non-negative int)
_GLU_OK = LRU(_FAST_MAX)


def _glu(entry: Entry, x: Any, axis: Any) -> Any:
    key: Any = None
    if type(axis) is int and not _tracing():  # (True == 1: a bool axis takes the checked path)
        try:
            key = (type(x), x.dtype, x.shape, axis)
            hit = _GLU_OK.get(key)
            if hit is not None and len(_GLU_OK) >= _FAST_MAX:  # (LRU.hit, inlined)
                _touch(_GLU_OK, key)
        except (AttributeError, TypeError, RuntimeError):  # not an array, an unhashable shape
            key = hit = None
        if hit is not None:
            return hit[0].glu(entry, x, hit[1])
    be, x = prepare(entry, x)
    ax = check_axis(entry.qualname, axis, len(x.shape))
    n = x.shape[ax]
    if n is None or n % 2:
        raise ValueError(
            f"{entry.qualname}: the size {n} of axis {axis} does not split into two equal halves"
        )
    if key is not None and not be.converts:
        _GLU_OK.put(key, (be, ax))
    return be.glu(entry, x, ax)



def apply_gated(entry: Entry, x: T | None, axis: Any, gate: T | None, up: T | None) -> T:
    """A gated function (swiglu, geglu, ...) in either call form: ``x`` split along ``axis``
    (``first * act(second)``, as glu), or two arrays by name, ``up * act(gate)``."""
    q = entry.qualname
    if gate is None and up is None:
        if x is None:
            raise TypeError(f"{q}: pass x (split in two along axis) or both gate= and up=")
        return cast(T, _glu(entry, x, axis))
    if x is not None:
        raise TypeError(f"{q}: pass either x (split in two along axis) or gate= and up=, not both")
    if gate is None or up is None:
        missing = "gate" if gate is None else "up"
        raise TypeError(f"{q}: {missing}= is missing (gate= and up= go together)")
    if type(axis) is not int or axis != -1:
        raise TypeError(f"{q}: axis is for the split form (x); with gate= and up= leave it out")
    key: Any = None
    ua: Any = up
    ga: Any = gate
    hit = None
    try:  # the checks depend on nothing else (torch's dense layout: checked by its backend)
        if not _tracing():
            key = (type(ua), type(ga), ua.dtype, ga.dtype, ua.shape, ga.shape,
                   getattr(ua, "device", None), getattr(ga, "device", None))
            hit = _PAIR_OK.hit(key)
    except (AttributeError, TypeError, RuntimeError):  # a number or list, an unhashable shape
        key = hit = None
    if hit is not None:
        return cast(T, hit.gated(entry, up, gate))
    be, u, g = check_pair(entry, gate, up)
    if key is not None and not be.converts:
        _PAIR_OK.put(key, be)
    return cast(T, be.gated(entry, u, g))


# (types, dtypes, shapes and devices of up and gate) that passed the checks -> backend
_PAIR_OK = LRU(_FAST_MAX)


def check_pair(entry: Entry, gate: Any, up: Any) -> tuple[Any, Any, Any]:
    """(backend, up, gate) as arrays of that backend, after the checks of the two-array form:
    the same library, dtype, shape and device; errors name the argument."""
    q = entry.qualname
    be, u = prepare(entry, up, "up")
    bg, g = prepare(entry, gate, "gate")
    if bg.name != be.name:  # (a Python number or list beside a NumPy array: both NumPy)
        raise TypeError(
            f"{q}: gate and up must be arrays of the same library, got {be.name} (up) and "
            f"{bg.name} (gate)"
        )
    if dtype_name(g.dtype) != dtype_name(u.dtype):
        raise TypeError(
            f"{q}: gate and up must have the same dtype, got {dtype_name(g.dtype)} (gate) and "
            f"{dtype_name(u.dtype)} (up); cast one first"
        )
    if tuple(g.shape) != tuple(u.shape):
        raise ValueError(
            f"{q}: gate and up must have the same shape, got {tuple(g.shape)} (gate) and "
            f"{tuple(u.shape)} (up)"
        )
    dg, du = getattr(g, "device", None), getattr(u, "device", None)
    if str(dg) != str(du):
        raise ValueError(f"{q}: gate and up must be on the same device, got {dg} (gate) and {du} (up)")
    return be, u, g
