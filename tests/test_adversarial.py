"""Adversarial inputs, table-driven: every function x every bad or odd input.

Each case builds an input (and hyper-parameters) and states what every function must do with it:
give the right result (same kind of array, same dtype and shape, the same values as on a clean
contiguous copy or a stated reference), or raise the documented ``TypeError``/``ValueError``
whose message names the function (``kaun.activation.<name>``) and the argument. Anything else
(another exception, a changed dtype, a written-to input) fails. The cases loop over the functions
inside one test, and a failure lists every function that broke.

Known bugs of kaun found by these tests are pinned by ``xfail(strict=True)`` tests at the end,
each named ``test_bug_<n>_...`` with the bug and a proposed fix in its docstring: when the bug is
fixed the test passes, strict xfail turns that into a failure, and the marker is to be removed.
"""

from __future__ import annotations

import decimal
import fractions
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import array_api_strict
import dask.array as da
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
import torch

import kaun.activation as A
from kaun.activation._defs import SELU_ALPHA, SELU_LAMBDA

jax.config.update("jax_enable_x64", True)

NAMES = A.names()
FLOAT_ONLY = [n for n in NAMES if n != "relu"]
HYPER = {  # the keyword hyper-parameters, with a valid value each
    "leaky_relu": {"negative_slope": 0.2},
    "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
    "elu": {"alpha": 0.7},
    "celu": {"alpha": 0.7},
    "squareplus": {"b": 2.0},
}


def qual(name: str) -> str:
    """The name that messages use (swish is silu, hard_swish is hard_silu)."""
    return f"kaun.activation.{getattr(A, name)._kaun_entry.name}"


def call(name: str, x: Any, **kw: Any) -> Any:
    """A.<name>(x, **kw), with prelu's required alpha defaulted to 0.25."""
    fn = getattr(A, name)
    if name == "prelu":
        alpha = kw.pop("alpha", 0.25)
        return fn(x, alpha, **kw)
    return fn(x, **kw)


# -- snapshots, comparisons ---------------------------------------------------------------------


def snapshot(x: Any) -> Any:
    """The bytes of an array input (C order), to prove it was not written to."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if x.numel() else b""
    if isinstance(x, np.ndarray | np.generic):
        return np.ascontiguousarray(x).tobytes()
    if isinstance(x, jax.Array):
        return np.asarray(x).tobytes()
    if isinstance(x, list | tuple):
        return repr(x)
    return None


def to_np(y: Any) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        if y.dtype == torch.bfloat16:
            return y.detach().cpu().float().numpy().astype(ml_dtypes.bfloat16)
        return y.detach().cpu().numpy()
    if isinstance(y, da.Array):
        return np.asarray(y.compute())
    if type(y).__module__.startswith("array_api_strict"):
        return np.asarray(y._array)
    return np.asarray(y)


def lib(y: Any) -> str:
    if isinstance(y, torch.Tensor):
        return "torch"
    if isinstance(y, jax.Array):
        return "jax"
    if isinstance(y, da.Array):
        return "dask"
    if type(y).__module__.startswith("array_api_strict"):
        return "array-api-strict"
    if isinstance(y, np.ndarray | np.generic):
        return "numpy"
    return "python"


def dname(y: Any) -> str:
    d = y.dtype
    return getattr(d, "name", None) or str(d).rsplit(".", 1)[-1]


def finfo(dtype: Any) -> Any:
    return ml_dtypes.finfo(dtype) if np.dtype(dtype) == ml_dtypes.bfloat16 else np.finfo(dtype)


def close(a: np.ndarray, b: np.ndarray, flush: bool, ulps: float = 2.0) -> bool:
    """Same shape and dtype; integers equal; floats: NaN where NaN, the same infinities, and
    finite values within ``ulps`` ulp (relative, eps * |b|) plus an absolute floor for subnormal
    results: ``ulps`` subnormals, or for JAX (which flushes subnormals to zero) the smallest
    normal number of the working dtype (float32 for half precision).

    Not bitwise: NumPy and PyTorch evaluate exp, expm1, log1p on contiguous and strided arrays
    (and on 0-d, 1-d and n-d ones) along different code paths (SIMD or not) that differ by an
    ulp; the layout tests check that kaun adds nothing to that."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "iub":
        return bool(np.array_equal(a, b))
    fi = finfo(a.dtype)
    floor = ulps * float(fi.smallest_subnormal)
    if flush:
        floor = float((np.finfo(np.float64) if a.dtype == np.float64 else np.finfo(np.float32)).smallest_normal)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isnan(a64), np.isnan(b64)):
        return False
    inf = np.isinf(a64) | np.isinf(b64)
    if not np.array_equal(a64[inf], b64[inf]):
        return False
    m = ~(np.isnan(a64) | inf)
    return bool((np.abs(a64[m] - b64[m]) <= ulps * float(fi.eps) * np.abs(b64[m]) + floor).all())


# -- the table ----------------------------------------------------------------------------------

Expect = Any  # "ok" | (exception type, argument name)


@dataclass
class Case:
    """One odd input. ``make()`` builds (x, kw) fresh for each function; ``expect(name)`` is
    "ok" or (TypeError | ValueError, argument); ``ref(name, x, kw)`` is the expected result
    (an array of the output's library; default: the function on a clean contiguous copy)."""

    id: str
    make: Callable[[], tuple[Any, dict[str, Any]]]
    expect: Callable[[str], Expect]
    ref: Callable[[str, Any, dict[str, Any]], Any] | None = None
    names: list[str] = field(default_factory=lambda: list(NAMES))
    out_lib: str | None = None  # the library of the result, if not the input's
    out_dtype: str | None = None  # the dtype of the result, if not the input's


VALS = [-np.inf, -1e30, -100.0, -6.0, -3.0, -1.0, -0.5, -1e-40, -0.0, 0.0, 1e-40, 0.5, 1.0, 3.0,
        6.0, 100.0, 1e30, np.inf, np.nan, 2.5, -2.5, 7.0, -7.0, 40.0]  # 24 values: even for glu


def vals(dtype: Any, shape: tuple[int, ...] = (24,)) -> np.ndarray:
    with np.errstate(all="ignore"):
        v = np.resize(np.array(VALS), shape).astype(dtype)
    return v


def ok(_: str) -> Expect:
    return "ok"


def type_x(_: str) -> Expect:
    return (TypeError, "x")


def relu_only(name: str) -> Expect:
    return "ok" if name == "relu" else (TypeError, "x")


def glu_axis(name: str) -> Expect:
    return (ValueError, "axis") if name == "glu" else "ok"


def copy_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    """The function on a clean, contiguous, writable copy of the same library."""
    if isinstance(x, torch.Tensor):
        return call(name, x.detach().clone().contiguous(), **kw)
    if isinstance(x, np.ndarray):
        return call(name, np.array(x, order="C", copy=True), **kw)
    return call(name, x, **kw)


def relib(like: Any, a: np.ndarray) -> Any:
    """The NumPy array a as an array of like's library."""
    if isinstance(like, torch.Tensor):
        if a.dtype == ml_dtypes.bfloat16:
            return torch.from_numpy(a.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(np.array(a))
    if isinstance(like, jax.Array):
        return jnp.asarray(a)
    return a


def flat_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    """The function, in x's own library, on a contiguous copy of x reshaped to 1-d (to 2-d:
    (others, last axis) for glu), reshaped back."""
    a = np.array(to_np(x), copy=True)
    shape = a.shape
    if name == "glu":
        n = shape[-1] if a.ndim else 1
        r = to_np(call(name, relib(x, a.reshape(math.prod(shape[:-1]), n) if a.ndim else a), **kw))
        return r.reshape(shape[:-1] + (shape[-1] // 2,))
    return to_np(call(name, relib(x, a.reshape(-1)), **kw)).reshape(shape)


def relu_int_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    a = to_np(x)
    return np.maximum(a, np.zeros((), a.dtype))


def f64_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    """Python numbers and lists: the function on np.asarray(x, float64) (int64 for relu of ints)."""
    a = np.asarray(x)
    if not (name == "relu" and a.dtype.kind in "iu"):
        a = a.astype(np.float64)
    return call(name, a, **kw)


CASES: list[Case] = []


def case(*a: Any, **k: Any) -> None:
    CASES.append(Case(*a, **k))


# A. dtypes -------------------------------------------------------------------------------------

INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def _int_vals(d: str) -> np.ndarray:
    i = np.iinfo(d)
    return np.array([i.min, -1 if i.min < 0 else 0, 0, 1, 7, i.max] * 2, dtype=d)


for _d in INTS:
    def _mk(d: str = _d) -> tuple[Any, dict[str, Any]]:
        return _int_vals(d), {}

    case(f"numpy-{_d}", _mk, relu_only, relu_int_ref)

for _d, _v in [
    ("bool", np.array([True, False, True, False])),
    ("complex64", np.array([1 + 1j, -1, 0, 2], np.complex64)),
    ("complex128", np.array([1 + 1j, -1, 0, 2], np.complex128)),
    ("object-floats", np.array([1.0, -2.0, 0.5, 3.0], dtype=object)),
    ("longdouble", np.array([1.0, -2.0, 0.5, 3.0], dtype=np.longdouble)),
    ("datetime64", np.array(["2020-01-01", "2021-01-01"], dtype="datetime64[D]")),
    ("timedelta64", np.array([1, -2], dtype="timedelta64[s]")),
    ("str-array", np.array(["1.0", "2.0"])),
    ("bytes-array", np.array([b"1", b"2"])),
    ("structured", np.zeros(2, dtype=[("a", "f4"), ("b", "f4")])),
]:
    case(f"numpy-{_d}", lambda v=_v: (v.copy(), {}), type_x)

for _d in INTS:  # (torch 2.13 has no clamp for uint16, uint32, uint64: relu is a copy there)
    case(f"torch-{_d}", lambda d=_d: (torch.from_numpy(_int_vals(d)), {}), relu_only, relu_int_ref)
for _d in ["bool", "complex64", "complex128"]:
    case(f"torch-{_d}", lambda d=_d: (torch.ones(4, dtype=getattr(torch, d)), {}), type_x)
for _d in ["int8", "int32", "int64", "uint8", "uint32"]:
    case(f"jax-{_d}", lambda d=_d: (jnp.asarray(np.array([0, 1, 5, 3], dtype=d)), {}),
         relu_only, relu_int_ref)
for _d in ["bool", "complex64"]:
    case(f"jax-{_d}", lambda d=_d: (jnp.ones(4, dtype=d), {}), type_x)
case("array-api-strict-int32", lambda: (array_api_strict.asarray([-3, 0, 2, 9], dtype=array_api_strict.int32), {}),
     relu_only, relu_int_ref)
case("array-api-strict-bool", lambda: (array_api_strict.asarray([True, False]), {}), type_x)
case("dask-int64", lambda: (da.from_array(np.array([-3, 0, 2, 9]), chunks=2), {}), relu_only, relu_int_ref)
case("dask-bool", lambda: (da.from_array(np.array([True, False]), chunks=1), {}), type_x)
case("numpy-float32-big-endian", lambda: (vals(">f4"), {}), ok, flat_ref, out_dtype="float32")

INT_LIBS: dict[str, Callable[[np.ndarray], Any]] = {
    "numpy": lambda a: a,
    "torch": torch.from_numpy,
    "jax": jnp.asarray,
    "dask": lambda a: da.from_array(a, chunks=5),
    "array-api-strict": array_api_strict.asarray,
}


@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("lib_name", list(INT_LIBS))
def test_relu_every_integer_dtype(lib_name: str, dtype: str) -> None:
    """relu (the one function with ``ints``) takes every integer dtype on every backend, and so
    do its derivatives: 1 for x > 0 else 0, then 0, in x's dtype and library."""
    a = _int_vals(dtype)
    want = {0: np.maximum(a, np.zeros((), dtype)), 1: (a > 0).astype(dtype),
            2: np.zeros_like(a), 3: np.zeros_like(a)}
    for order, w in want.items():
        f = A.relu if order == 0 else A.derivative(A.relu, order=order)
        x = INT_LIBS[lib_name](a)
        y = f(x)
        assert lib(y) == lib_name and dname(y) == dtype, (order, type(y), y.dtype)
        got = to_np(y)
        assert np.array_equal(got, w), (order, got, w)
        assert np.array_equal(to_np(x), a)  # (not written to)


# B. Python objects -------------------------------------------------------------------------------

for _id, _v in [("str", "1.0"), ("None", None), ("bytes", b"12"), ("dict", {"a": 1.0}),
                ("object", object()), ("set", {1.0, 2.0}), ("py-bool", True),
                ("py-complex", 1 + 2j), ("mixed-list", [1.0, "a"]), ("list-with-None", [1.0, None]),
                ("bool-list", [True, False]), ("complex-list", [1j, 2.0]),
                ("decimal", decimal.Decimal("1.5")), ("fraction", fractions.Fraction(1, 3))]:
    # ("ragged-list", [[1.0, 2.0], [3.0]]) belongs here: BUG-1, see test_bug_1_ragged_list
    case(f"python-{_id}", lambda v=_v: (v, {}), type_x)
case("python-int", lambda: (3, {}), glu_axis, f64_ref, out_lib="numpy",
     out_dtype=None)
case("python-float", lambda: (-2.5, {}), glu_axis, f64_ref, out_lib="numpy")
case("python-list-floats", lambda: ([-2.0, 0.5, 1.0, 40.0], {}), ok, f64_ref, out_lib="numpy")
case("python-list-ints", lambda: ([-2, 0, 1, 40], {}), ok, f64_ref, out_lib="numpy")
case("python-nested-ints", lambda: ([[-2, 0], [1, 40]], {}), ok, f64_ref, out_lib="numpy")
case("python-tuple", lambda: ((-2.0, 0.5), {}), ok, f64_ref, out_lib="numpy")
case("python-big-int", lambda: (10**400, {}), type_x,
     names=[n for n in NAMES if n != "glu"])
case("numpy-float32-scalar", lambda: (np.float32(-1.5), {}), glu_axis, flat_ref)
case("numpy-int64-scalar", lambda: (np.int64(-3), {}),
     lambda n: "ok" if n == "relu" else (TypeError, "x"), relu_int_ref, names=[n for n in NAMES if n != "glu"])

# C. shapes ---------------------------------------------------------------------------------------

for _lib, _mkarr in [
    ("numpy", lambda a: a),
    ("torch", lambda a: torch.from_numpy(a)),
    ("jax", lambda a: jnp.asarray(a)),
]:
    case(f"{_lib}-0d", lambda m=_mkarr: (m(np.array(-1.5, np.float32)), {}), glu_axis, flat_ref)
    case(f"{_lib}-empty", lambda m=_mkarr: (m(np.zeros((0,), np.float32)), {}), ok, flat_ref)
    case(f"{_lib}-empty-3d", lambda m=_mkarr: (m(np.zeros((3, 0, 2), np.float64)), {}), ok, flat_ref)
    case(f"{_lib}-7d", lambda m=_mkarr: (m(vals(np.float32, (2, 1, 3, 1, 2, 1, 4))), {}), ok, flat_ref)
    case(f"{_lib}-float16-7d", lambda m=_mkarr: (m(vals(np.float16, (1, 2, 1, 3, 1, 2, 2))), {}), ok, flat_ref)

# D. layouts and views ----------------------------------------------------------------------------


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


for _dt in (np.float32, np.float64, np.float16):
    _n = np.dtype(_dt).name
    case(f"numpy-{_n}-strided", lambda d=_dt: (vals(d, (48,))[::2], {}), ok, copy_ref)
    case(f"numpy-{_n}-negative-stride", lambda d=_dt: (vals(d)[::-1], {}), ok, copy_ref)
    case(f"numpy-{_n}-fortran", lambda d=_dt: (np.asfortranarray(vals(d, (4, 6))), {}), ok, copy_ref)
    case(f"numpy-{_n}-transposed", lambda d=_dt: (vals(d, (6, 4)).T, {}), ok, copy_ref)
    case(f"numpy-{_n}-read-only", lambda d=_dt: (_ro(vals(d)), {}), ok, copy_ref)
    case(f"numpy-{_n}-broadcast-zero-stride",
         lambda d=_dt: (np.broadcast_to(vals(d, (6,)), (4, 6)), {}), ok, copy_ref)
    case(f"numpy-{_n}-sliding-window",
         lambda d=_dt: (np.lib.stride_tricks.sliding_window_view(vals(d, (9,)), 4), {}), ok, copy_ref)
case("numpy-bfloat16-strided", lambda: (vals(ml_dtypes.bfloat16, (48,))[::2], {}), ok, copy_ref)
case("numpy-unaligned", lambda: (np.frombuffer(b"\0" + vals(np.float64).tobytes(), np.float64, 24, 1), {}),
     ok, copy_ref)

for _dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
    _n = str(_dt).rsplit(".", 1)[-1]

    def _t(d: Any = _dt, shape: tuple[int, ...] = (24,)) -> Any:
        return torch.from_numpy(vals(np.float64, shape)).to(d)

    case(f"torch-{_n}-expand", lambda t=_t: (t(shape=(6,)).expand(4, 6), {}), ok, copy_ref)
    case(f"torch-{_n}-T", lambda t=_t: (t(shape=(6, 4)).T, {}), ok, copy_ref)
    case(f"torch-{_n}-flip", lambda t=_t: (t().flip(0), {}), ok, copy_ref)
    case(f"torch-{_n}-strided", lambda t=_t: (t(shape=(48,))[::2], {}), ok, copy_ref)
    case(f"torch-{_n}-as-strided-zero",
         lambda t=_t: (t(shape=(6,)).as_strided((3, 6), (0, 1)), {}), ok, copy_ref)
    case(f"torch-{_n}-channels-last",
         lambda t=_t: (t(shape=(1, 2, 3, 4)).contiguous(memory_format=torch.channels_last), {}),
         ok, copy_ref)
    case(f"torch-{_n}-requires-grad", lambda t=_t: (t().requires_grad_(True), {}), ok, copy_ref)
case("torch-float32-offset-view", lambda: (torch.from_numpy(vals(np.float32, (30,)))[3:27], {}), ok, copy_ref)

# E. prelu's alpha ----------------------------------------------------------------------------------

P = ["prelu"]
x32 = lambda: vals(np.float32, (4, 6))  # noqa: E731
for _id, _mk, _exp in [
    ("alpha-torch-for-numpy", lambda: (x32(), {"alpha": torch.full((6,), 0.1)}), (TypeError, "alpha")),
    ("alpha-jax-for-numpy", lambda: (x32(), {"alpha": jnp.full((6,), 0.1, jnp.float32)}), (TypeError, "alpha")),
    ("alpha-numpy-for-torch", lambda: (torch.from_numpy(x32()), {"alpha": np.full((6,), 0.1, np.float32)}),
     (TypeError, "alpha")),
    ("alpha-jax-for-torch", lambda: (torch.from_numpy(x32()), {"alpha": jnp.full((6,), 0.1, jnp.float32)}),
     (TypeError, "alpha")),
    ("alpha-numpy-for-jax", lambda: (jnp.asarray(x32()), {"alpha": np.full((6,), 0.1, np.float32)}),
     (TypeError, "alpha")),
    ("alpha-float64-for-float32", lambda: (x32(), {"alpha": np.full((6,), 0.1)}), (TypeError, "alpha")),
    ("alpha-float16-for-float32", lambda: (x32(), {"alpha": np.full((6,), 0.1, np.float16)}), (TypeError, "alpha")),
    ("alpha-torch-float64-for-float32",
     lambda: (torch.from_numpy(x32()), {"alpha": torch.full((6,), 0.1, dtype=torch.float64)}), (TypeError, "alpha")),
    ("alpha-int-array", lambda: (x32(), {"alpha": np.ones(6, np.int32)}), (TypeError, "alpha")),
    ("alpha-bool-array", lambda: (x32(), {"alpha": np.ones(6, bool)}), (TypeError, "alpha")),
    ("alpha-shape-mismatch", lambda: (x32(), {"alpha": np.full((4,), 0.1, np.float32)}), (ValueError, "alpha")),
    ("alpha-rank-too-high", lambda: (x32(), {"alpha": np.full((1, 1, 6), 0.1, np.float32)}), (ValueError, "alpha")),
    ("alpha-would-grow-x", lambda: (vals(np.float32, (1, 6)), {"alpha": np.full((4, 1), 0.1, np.float32)}),
     (ValueError, "alpha")),
    ("alpha-for-0d-x", lambda: (np.array(-1.0, np.float32), {"alpha": np.full((1,), 0.1, np.float32)}),
     (ValueError, "alpha")),
    ("alpha-torch-shape-mismatch", lambda: (torch.from_numpy(x32()), {"alpha": torch.full((5,), 0.1)}),
     (ValueError, "alpha")),
    ("alpha-nan", lambda: (x32(), {"alpha": math.nan}), (ValueError, "alpha")),
    ("alpha-inf", lambda: (x32(), {"alpha": math.inf}), (ValueError, "alpha")),
    ("alpha-np-nan", lambda: (x32(), {"alpha": np.float64("nan")}), (ValueError, "alpha")),
    ("alpha-huge-int", lambda: (x32(), {"alpha": 10**400}), (ValueError, "alpha")),
    ("alpha-bool", lambda: (x32(), {"alpha": True}), (TypeError, "alpha")),
    ("alpha-str", lambda: (x32(), {"alpha": "0.1"}), (TypeError, "alpha")),
    ("alpha-None", lambda: (x32(), {"alpha": None}), (TypeError, "alpha")),
    ("alpha-list", lambda: (x32(), {"alpha": [0.1] * 6}), (TypeError, "alpha")),
    ("alpha-complex", lambda: (x32(), {"alpha": 0.1j}), (TypeError, "alpha")),
]:
    case(f"prelu-{_id}", _mk, lambda n, e=_exp: e, names=P)


def _prelu_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    a = np.asarray(to_np(kw["alpha"]), np.float64)
    xv = to_np(x).astype(np.float64)
    with np.errstate(all="ignore"):
        return np.where(xv > 0, xv, a * xv).astype(to_np(x).dtype.newbyteorder("="))  # native


for _id, _mk in [
    ("alpha-row", lambda: (x32(), {"alpha": np.linspace(-1, 1, 6, dtype=np.float32)})),
    ("alpha-column", lambda: (x32(), {"alpha": np.linspace(0, 1, 4, dtype=np.float32).reshape(4, 1)})),
    ("alpha-0d-array", lambda: (x32(), {"alpha": np.array(0.3, np.float32)})),
    ("alpha-with-nan", lambda: (x32(), {"alpha": np.array([np.nan, 1, 2, 3, 4, 5], np.float32)})),
    ("alpha-np-float32-scalar", lambda: (x32(), {"alpha": np.float32(0.3)})),
    ("alpha-fraction", lambda: (x32(), {"alpha": fractions.Fraction(1, 4)})),
    ("alpha-int", lambda: (x32(), {"alpha": 2})),
    ("alpha-torch-row", lambda: (torch.from_numpy(x32()), {"alpha": torch.linspace(-1, 1, 6)})),
    ("alpha-jax-row", lambda: (jnp.asarray(x32()), {"alpha": jnp.linspace(-1, 1, 6, dtype=jnp.float32)})),
    ("alpha-float16", lambda: (vals(np.float16, (4, 6)), {"alpha": np.full((6,), 0.3, np.float16)})),
    ("alpha-native-for-big-endian-x", lambda: (vals(">f4", (4, 6)), {"alpha": np.linspace(-1, 1, 6, dtype="<f4")})),
    ("alpha-big-endian-for-native-x", lambda: (x32(), {"alpha": np.linspace(-1, 1, 6, dtype=">f4")})),
    ("alpha-big-endian-column", lambda: (x32(), {"alpha": np.linspace(0, 1, 4, dtype=">f4").reshape(4, 1)})),
]:
    case(f"prelu-{_id}", _mk, ok, _prelu_ref, names=P)


_ORDERS = [f"{o}f{n}" for n in (2, 4, 8) for o in "<>"]


@pytest.mark.parametrize("xd", _ORDERS)
@pytest.mark.parametrize("ad", _ORDERS)
def test_prelu_alpha_dtype_ignores_byte_order(xd: str, ad: str) -> None:
    """prelu's alpha must have x's dtype, whatever the byte order of either: the same dtype in
    another byte order is that dtype (a native result, the bits of the native call); another
    dtype is a TypeError naming the two, never two identical names."""
    x = vals(xd, (4, 6))
    alpha = np.linspace(-1, 1, 6).astype(ad)
    if np.dtype(xd).name == np.dtype(ad).name:
        y = A.prelu(x, alpha)
        want = A.prelu(x.astype(np.dtype(xd).newbyteorder("=")), alpha.astype(np.dtype(ad).newbyteorder("=")))
        assert y.dtype.isnative and y.dtype == want.dtype
        assert y.tobytes() == want.tobytes()
        return
    with pytest.raises(TypeError, match=rf"kaun\.activation\.prelu: alpha must have x's dtype "
                       rf"{np.dtype(xd).name}, got {np.dtype(ad).name}; cast it first"):
        A.prelu(x, alpha)

# F. hyper-parameters ----------------------------------------------------------------------------

for _fn, _params in HYPER.items():
    for _p in _params:
        def _bad(v: Any, f: str = _fn, p: str = _p) -> Callable[[], tuple[Any, dict[str, Any]]]:
            return lambda: (vals(np.float32), {**HYPER[f], p: v})

        for _id, _v, _exp in [
            ("nan", math.nan, ValueError), ("inf", math.inf, ValueError), ("-inf", -math.inf, ValueError),
            ("np-nan", np.float32("nan"), ValueError), ("huge-int", 10**400, ValueError),
            ("True", True, TypeError), ("np-bool", np.bool_(False), TypeError), ("str", "0.5", TypeError),
            ("None", None, TypeError), ("complex", 0.5 + 0j, TypeError), ("list", [0.5], TypeError),
            ("np-array-1d", np.array([0.5]), TypeError), ("np-array-0d", np.array(0.5), TypeError),
            ("torch-0d", torch.tensor(0.5), TypeError), ("jax-0d", jnp.array(0.5), TypeError),
            ("decimal", decimal.Decimal("0.5"), TypeError),
        ]:
            case(f"{_fn}-{_p}-{_id}", _bad(_v), lambda n, e=_exp, p=_p: (e, p), names=[_fn])

        def _good_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
            return call(name, x, **{k: float(v) for k, v in kw.items()})

        for _id, _v in [("int", 2), ("np-int64", np.int64(2)), ("np-float32", np.float32(0.375)),
                        ("fraction", fractions.Fraction(3, 8)), ("negative", -0.5), ("zero", 0.0)]:
            if (_fn, _id) in {("celu", "zero"), ("squareplus", "negative")}:
                continue
            case(f"{_fn}-{_p}-{_id}", _bad(_v), ok, _good_ref, names=[_fn])
case("celu-alpha-zero", lambda: (vals(np.float32), {"alpha": 0.0}), lambda n: (ValueError, "alpha"), names=["celu"])
case("celu-alpha-minus-zero", lambda: (vals(np.float32), {"alpha": -0.0}), lambda n: (ValueError, "alpha"),
     names=["celu"])
case("squareplus-b-negative", lambda: (vals(np.float32), {"b": -1e-300}), lambda n: (ValueError, "b"),
     names=["squareplus"])
case("squareplus-b-zero-is-relu", lambda: (vals(np.float32), {"b": 0.0}), ok,
     lambda n, x, kw: A.relu(x), names=["squareplus"])
for _fn in NAMES:
    if _fn in ("prelu",):
        continue
    case(f"{_fn}-unknown-keyword", lambda: (vals(np.float32), {"slope_typo": 0.1}),
         lambda n: (TypeError, "slope_typo"), names=[_fn])

# G. glu ------------------------------------------------------------------------------------------

G = ["glu"]
for _id, _mk, _exp in [
    ("odd-size", lambda: (vals(np.float32, (3,)), {}), (ValueError, "axis")),
    ("odd-size-axis0", lambda: (vals(np.float32, (3, 4)), {"axis": 0}), (ValueError, "axis")),
    ("axis-out-of-range", lambda: (vals(np.float32, (4,)), {"axis": 1}), (ValueError, "axis")),
    ("axis-negative-out-of-range", lambda: (vals(np.float32, (4,)), {"axis": -2}), (ValueError, "axis")),
    ("axis-7-on-7d", lambda: (vals(np.float32, (2,) * 7), {"axis": 7}), (ValueError, "axis")),
    ("0d", lambda: (np.array(1.0, np.float32), {}), (ValueError, "axis")),
    ("0d-axis0", lambda: (np.array(1.0, np.float32), {"axis": 0}), (ValueError, "axis")),
    ("axis-bool", lambda: (vals(np.float32, (4,)), {"axis": True}), (TypeError, "axis")),
    ("axis-float", lambda: (vals(np.float32, (4,)), {"axis": 0.0}), (TypeError, "axis")),
    ("axis-None", lambda: (vals(np.float32, (4,)), {"axis": None}), (TypeError, "axis")),
    ("axis-str", lambda: (vals(np.float32, (4,)), {"axis": "0"}), (TypeError, "axis")),
    ("axis-tuple", lambda: (vals(np.float32, (4,)), {"axis": (0,)}), (TypeError, "axis")),
    ("torch-odd", lambda: (torch.ones(5), {}), (ValueError, "axis")),
    ("torch-0d", lambda: (torch.tensor(1.0), {}), (ValueError, "axis")),
    ("torch-axis-out-of-range", lambda: (torch.ones(2, 4), {"axis": 2}), (ValueError, "axis")),
    ("jax-odd", lambda: (jnp.ones(5), {}), (ValueError, "axis")),
    ("jax-0d", lambda: (jnp.array(1.0), {}), (ValueError, "axis")),
    ("dask-odd", lambda: (da.ones(5, chunks=2), {}), (ValueError, "axis")),
    ("array-api-strict-odd", lambda: (array_api_strict.ones(5), {}), (ValueError, "axis")),
    ("python-odd-list", lambda: ([1.0, 2.0, 3.0], {}), (ValueError, "axis")),
]:
    case(f"glu-{_id}", _mk, lambda n, e=_exp: e, names=G)


def _glu_ref(name: str, x: Any, kw: dict[str, Any]) -> Any:
    a = to_np(x)
    ax = kw.get("axis", -1)
    h1, h2 = np.split(a.astype(np.float64), 2, axis=ax)
    return (h1 * A.sigmoid(h2)).astype(a.dtype)


for _id, _mk in [
    ("axis0", lambda: (vals(np.float64, (4, 3)), {"axis": 0})),
    ("axis-np-int64", lambda: (vals(np.float64, (4, 3)), {"axis": np.int64(0)})),
    ("axis-minus-7d", lambda: (vals(np.float64, (1, 2, 1, 2, 1, 4, 1)), {"axis": -2})),
    ("size-two", lambda: (np.array([-3.0, 2.0]), {})),
    ("empty-axis", lambda: (np.zeros((3, 0)), {"axis": 1})),
    ("empty-other-axis", lambda: (np.zeros((0, 4)), {"axis": 1})),
    ("strided", lambda: (vals(np.float64, (4, 12))[:, ::2], {"axis": 1})),
]:
    case(f"glu-{_id}", _mk, ok, _glu_ref, names=G)


# -- the test ---------------------------------------------------------------------------------------


def _check(c: Case, name: str) -> str | None:
    """None if A.<name> does what case c states, else a description of what went wrong."""
    x, kw = c.make()
    expect = c.expect(name)
    before = snapshot(x)
    try:
        with np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"):
            y = call(name, x, **kw)
            if isinstance(y, da.Array):
                y.compute()
    except (TypeError, ValueError) as e:
        if expect == "ok":
            return f"raised {type(e).__name__}: {e}"
        etype, arg = expect
        msg = str(e)
        if type(e) is not etype:
            return f"raised {type(e).__name__} instead of {etype.__name__}: {msg}"
        fname = qual(name)
        # Python's own TypeError for a keyword the signature lacks says "silu() got an
        # unexpected keyword argument 'slope_typo'": it names the function that way.
        named = fname in msg or f"{fname.rsplit('.', 1)[1]}()" in msg
        if not named or arg not in msg:
            return f"message does not name {fname} and {arg!r}: {msg}"
        return None
    except Exception as e:  # noqa: BLE001 - any other exception is the failure being tested
        return f"raised {type(e).__name__} (not TypeError/ValueError): {e}"
    finally:
        if snapshot(x) != before:
            return "modified its input"  # noqa: B012
    if expect != "ok":
        return f"returned {type(y).__name__} instead of raising {expect[0].__name__}"
    want_lib = c.out_lib or lib(x)
    if lib(y) != want_lib:
        return f"returned a {lib(y)} {type(y).__name__} for a {lib(x)} input"
    in_dtype = c.out_dtype or (dname(x) if hasattr(x, "dtype") else None)
    if in_dtype is not None and dname(y) != in_dtype:
        return f"returned dtype {dname(y)} for dtype {in_dtype}"
    if c.ref is not None:
        want = c.ref(name, x, kw)
        got = to_np(y)
        wa = to_np(want)
        if c.out_dtype:
            wa = wa.astype(c.out_dtype)
        if not close(got, wa, flush=lib(y) == "jax"):
            return (f"wrong result: {got.ravel()[:8]} (shape {got.shape}, {got.dtype}) != "
                    f"{wa.ravel()[:8]} (shape {wa.shape}, {wa.dtype})")
    return None


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_case(c: Case) -> None:
    failures = {}
    for name in c.names:
        err = _check(c, name)
        if err is not None:
            failures[name] = err
    assert not failures, "\n".join(f"{n}: {e}" for n, e in failures.items())


def test_case_count() -> None:
    """The table covers every function on the generic cases (a guard against a typo that
    silently empties it)."""
    assert len(CASES) > 200
    assert sum(len(c.names) for c in CASES) > 1500
    for n in NAMES:
        assert sum(n in c.names for c in CASES) >= 60, n


# -- inputs passed as temporaries -----------------------------------------------------------------


VIEWS = {
    "slice": lambda b: b[2:22],
    "reshape": lambda b: b.reshape(4, 6),
    "transpose": lambda b: b.reshape(4, 6).T,
    "strided": lambda b: b[::2],
    "head": lambda b: b[:12],
}


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("view", list(VIEWS))
def test_temporary_views_are_not_written_through(lib: str, view: str) -> None:
    """A view created in the call expression (``f(base[2:22])``) is a temporary that only the
    call holds, but its memory is base's: whatever kaun does with temporaries (reusing them in
    place) must not write into base. Results equal those on a copy (2 ulp)."""
    for dt in (np.float32, np.float16):
        base_np = vals(dt)
        base: Any = torch.from_numpy(base_np.copy()) if lib == "torch" else base_np.copy()
        before = snapshot(base)
        bad = {}
        for name in NAMES:
            if name == "glu":
                y = A.glu(VIEWS[view](base))
            else:
                y = call(name, VIEWS[view](base))
            if snapshot(base) != before:
                bad[name] = "wrote into the base array"
                base = torch.from_numpy(base_np.copy()) if lib == "torch" else base_np.copy()
                continue
            ref = copy_ref(name, VIEWS[view](base), {})
            if not close(to_np(y), to_np(ref), flush=False):
                bad[name] = "result differs from the one on a copy"
        assert not bad, (np.dtype(dt).name, bad)


# -- torch's lazy negation -----------------------------------------------------------------------

# A real tensor can carry torch's negative bit: its memory holds -v and torch's own ops read v.
NEG_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "neg_view": lambda t: torch._neg_view(-t),
    # the imaginary part of a conjugated complex tensor (public API): a view of memory -t
    "conj_imag": lambda t: torch.complex(torch.zeros_like(t), -t).conj().imag,
}


def _same_bits(a: Any, b: Any) -> bool:
    """The same dtype, shape and bits (signed zeros included); NaN where NaN, of any payload
    (torch's own ops, which read the bit, may change a NaN's payload)."""
    a, b = a.detach().resolve_neg(), b.detach().resolve_neg()
    if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a.isnan(), b.isnan()):
        return False
    a, b = a.masked_fill(a.isnan(), 0), b.masked_fill(b.isnan(), 0)
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("view", list(NEG_VIEWS))
def test_torch_negative_bit(view: str, dtype: torch.dtype) -> None:
    """A tensor with the negative bit set (``x.is_neg()``) holds -v in memory and reads as v;
    kaun's kernels read memory, so they must see v: every function, its derivatives (orders 1
    to 3, glu's and prelu's vjp), prelu with a tensor alpha that has the bit too, twice (the
    second call takes the fast path), and the backward with such a cotangent give the bits of
    the same call on the resolved tensor."""
    if view == "conj_imag" and dtype in (torch.float16, torch.bfloat16):
        pytest.skip("complex half is experimental in torch, no complex bfloat16")
    t = torch.from_numpy(vals(np.float64, (4, 6))).to(dtype)
    nv = NEG_VIEWS[view](t)
    assert nv.is_neg() and _same_bits(nv, t)
    alpha = torch.linspace(-1, 1, 6, dtype=torch.float64).to(dtype)
    alpha_nv = NEG_VIEWS[view](alpha)
    g = torch.from_numpy(np.resize(np.linspace(-3, 3, 7), (4, 6))).to(dtype)
    g_half = g[:, :3].contiguous()
    bad = {}
    for name in NAMES:
        f = getattr(A, name)
        calls: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Any]]
        if name == "prelu":
            calls = {
                "value": lambda x, a, g: A.prelu(x, a),
                "vjp": lambda x, a, g: A.derivative(A.prelu)(x, a, g),
                "value-number-alpha": lambda x, a, g: A.prelu(x, 0.25),
            }
        elif name == "glu":
            calls = {
                "value": lambda x, a, g: A.glu(x),
                "vjp": lambda x, a, g: A.derivative(A.glu)(x, g[:, :3]),
            }
        else:
            calls = {"value": lambda x, a, g, f=f: f(x)}
            for k in (1, 2, 3):
                calls[f"order {k}"] = lambda x, a, g, f=f, k=k: A.derivative(f, order=k)(x)
        for what, fn in calls.items():
            for i in range(2):
                got, want = fn(nv, alpha_nv, NEG_VIEWS[view](g)), fn(t, alpha, g)
                got_t = got if isinstance(got, tuple) else (got,)
                want_t = want if isinstance(want, tuple) else (want,)
                if not all(_same_bits(a, b) for a, b in zip(got_t, want_t, strict=True)):
                    bad[f"{name} {what} (call {i + 1})"] = (got, want)
        # autograd: an input with the bit (made from a leaf), a cotangent with the bit
        grads = []
        for x_of, g_of in [(NEG_VIEWS[view], NEG_VIEWS[view]), (lambda v: v, lambda v: v)]:
            leaf = t.clone().requires_grad_(True)
            a_leaf = alpha.clone().requires_grad_(True)
            x = x_of(leaf)
            if name == "prelu":
                y = A.prelu(x, x_of(a_leaf))
            else:
                y = f(x)
            y.backward(g_of(g_half if name == "glu" else g))
            grads.append((leaf.grad, a_leaf.grad if name == "prelu" else None))
        (gx, ga), (wx, wa) = grads
        if not _same_bits(gx, wx) or (name == "prelu" and not _same_bits(ga, wa)):
            bad[f"{name} backward"] = (gx, wx)
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


# -- torch layouts other than dense ----------------------------------------------------------------


def _nested(layout: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda d: torch.nested.nested_tensor([d[0], d[1, :4]], layout=layout)


LAYOUTS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    "sparse_coo": (lambda d: d.to_sparse(), "to_dense()"),
    "sparse_csr": (lambda d: d.to_sparse_csr(), "to_dense()"),
    "sparse_csc": (lambda d: d.to_sparse_csc(), "to_dense()"),
    "sparse_bsr": (lambda d: d.to_sparse_bsr((2, 2)), "to_dense()"),
    "sparse_bsc": (lambda d: d.to_sparse_bsc((2, 2)), "to_dense()"),
    "mkldnn": (lambda d: d.to_mkldnn(), "to_dense()"),
    "nested-jagged": (_nested(torch.jagged), "values()"),
    "nested-strided": (_nested(torch.strided), "unbind()"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_torch_layouts_other_than_dense(layout: str) -> None:
    """A sparse, MKL-DNN or nested tensor (as x, or as prelu's alpha) is a TypeError that names
    the function, the argument and the way out (``x.to_dense()``, ``x.values()``), for every
    function and its derivative alike: also after a dense call of the same type and shape (the
    fast path and the caches of checked shapes must not serve it), and the input is untouched."""
    make, hint = LAYOUTS[layout]
    dense = torch.from_numpy(vals(np.float32, (4, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (torch: sparse CSR/BSR, nested are beta)
        x = make(dense)
    before = dense.clone()
    alpha = torch.full((6,), 0.25)
    bad = {}
    for name in NAMES:
        fn = getattr(A, name)
        calls: dict[str, Callable[[], Any]] = {"value": lambda fn=fn: call(fn.__name__, x)}
        if name == "prelu":
            calls["alpha tensor"] = lambda: A.prelu(x, alpha)
            calls["vjp"] = lambda: A.derivative(A.prelu)(x, alpha, dense)
        elif name == "glu":
            calls["vjp"] = lambda: A.derivative(A.glu)(x, dense[:, :3])
        else:
            calls["derivative"] = lambda fn=fn: A.derivative(fn)(x)
        for what, c in calls.items():
            for _ in range(2):
                call(name, dense)  # a dense call first: the fast path and the caches are warm
                if name == "prelu":
                    A.prelu(dense, alpha)
                try:
                    c()
                except TypeError as e:
                    msg = str(e)
                    if not (msg.startswith(f"{qual(name)}: x must be a dense tensor") and f"x.{hint}" in msg):
                        bad[f"{name} {what}"] = msg
                except Exception as e:  # noqa: BLE001 - anything else is the failure
                    bad[f"{name} {what}"] = f"{type(e).__name__}: {e}"
                else:
                    bad[f"{name} {what}"] = "no error"
    if layout.startswith("sparse") or layout == "mkldnn":  # a sparse alpha for a dense x
        a = make(torch.full((4, 6), 0.25))
        for f in (lambda: A.prelu(dense, a), lambda: A.derivative(A.prelu)(dense, a, dense)):
            with pytest.raises(TypeError, match=r"kaun\.activation\.prelu: alpha must be a dense tensor"):
                f()
    assert torch.equal(dense.isnan(), before.isnan()) and torch.equal(dense.nan_to_num(), before.nan_to_num())
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


# -- limits at +-inf --------------------------------------------------------------------------------

LIMITS = {  # (f(-inf), f(+inf)); prelu with alpha = 0.25
    "relu": (0.0, np.inf), "sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "relu6": (0.0, 6.0),
    "leaky_relu": (-np.inf, np.inf), "hard_tanh": (-1.0, 1.0), "hard_sigmoid": (0.0, 1.0),
    "prelu": (-np.inf, np.inf), "elu": (-1.0, np.inf), "selu": (-SELU_LAMBDA * SELU_ALPHA, np.inf),
    "celu": (-1.0, np.inf), "gelu": (0.0, np.inf), "gelu_approx": (0.0, np.inf),
    "silu": (0.0, np.inf), "swish": (0.0, np.inf), "hard_silu": (0.0, np.inf),
    "hard_swish": (0.0, np.inf), "mish": (0.0, np.inf), "softplus": (0.0, np.inf),
    "softsign": (-1.0, 1.0), "squareplus": (0.0, np.inf), "log_sigmoid": (-np.inf, 0.0),
    "sparse_plus": (0.0, np.inf), "sparse_sigmoid": (0.0, 1.0),
}
INF_INPUTS = {
    "numpy-float16": lambda: np.array([-np.inf, np.inf], np.float16),
    "numpy-bfloat16": lambda: np.array([-np.inf, np.inf], ml_dtypes.bfloat16),
    "numpy-float32": lambda: np.array([-np.inf, np.inf], np.float32),
    "numpy-float64": lambda: np.array([-np.inf, np.inf]),
    "torch-float32": lambda: torch.tensor([-np.inf, np.inf]),
    "torch-bfloat16": lambda: torch.tensor([-np.inf, np.inf], dtype=torch.bfloat16),
    "jax-float32": lambda: jnp.array([-np.inf, np.inf], jnp.float32),
    "jax-float64": lambda: jnp.array([-np.inf, np.inf]),
}


@pytest.mark.parametrize("kind", list(INF_INPUTS))
def test_limits_at_infinity(kind: str) -> None:
    """+-inf in gives the mathematical limit, rounded to the dtype (1 ulp); glu(inf, inf) =
    inf."""
    wrong = {}
    for name, (lo, hi) in LIMITS.items():
        x = INF_INPUTS[kind]()
        y = to_np(call(name, x)).astype(np.float64)
        want = np.array([lo, hi])
        with np.errstate(all="ignore"):
            want = want.astype(to_np(x).dtype).astype(np.float64)
        if not close(y, want, flush=False, ulps=1.0):
            wrong[name] = (y.tolist(), want.tolist())
    x = INF_INPUTS[kind]()
    g = to_np(A.glu(relib(x, np.repeat(to_np(x)[1:], 2))))
    if float(g[0]) != np.inf:
        wrong["glu(inf, inf)"] = g.tolist()
    assert not wrong, wrong


# -- bugs these tests found ------------------------------------------------------------------------
# Fixed ones keep their test.


def test_bug_1_ragged_list() -> None:
    """A ragged nested list raises NumPy's own ValueError ("setting an array element with a
    sequence...") that names neither the function nor x. Fix: in PythonBackend.convert
    (src/kaun/_backends/_numpy.py) wrap ``np.asarray(x)`` in ``try/except ValueError as e:``
    and raise ``TypeError(f"{entry.qualname}: x must be an array or a real number (or a nested
    list of them), got a ragged nested list") from e``."""
    failures = {n: _check(Case("ragged", lambda: ([[1.0, 2.0], [3.0]], {}), type_x), n) for n in NAMES}
    failures = {n: e for n, e in failures.items() if e}
    assert not failures, failures


@pytest.mark.parametrize(
    "name, x, kw, want",
    [
        ("leaky_relu", -np.inf, {"negative_slope": 0.0}, 0.0),
        ("prelu", -np.inf, {"alpha": 0.0}, 0.0),
        ("hard_sigmoid", np.inf, {"alpha": 0.0, "beta": 0.3}, 0.3),
        ("hard_sigmoid", -np.inf, {"alpha": 0.0, "beta": 0.3}, 0.3),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bug_2_zero_slope_at_infinity(name: str, x: float, kw: dict[str, Any], want: float, dtype: Any) -> None:
    """A zero slope times an infinite x gives NaN where the function is constant (its limit is
    0, resp. clip(beta, 0, 1)). Fix (src/kaun/activation/_defs.py): in _leaky_relu (which
    PRELU_SCALAR shares) and _prelu use ``negative_slope * _fin(o, x)``, so that +-inf becomes
    +-max (0 * max = 0, s * max overflows to the same inf for s != 0); in _hard_sigmoid
    evaluate u on ``_fin(o, x)`` too."""
    y = call(name, np.array([x], dtype), **kw)
    assert y[0] == want, f"{name}({x}, {kw}) = {y[0]}, want {want}"


def test_bug_4_numpy_0d_type() -> None:
    """A 0-d ndarray gives a NumPy scalar (np.float32, not np.ndarray) for some functions and a
    0-d ndarray for others; a NumPy scalar input likewise gives either. The same kind of array
    should come back: ndarray for ndarray, scalar for scalar. Fix: in NumpyBackend.work
    (src/kaun/_backends/_numpy.py) return ``y[()] if isinstance(x, np.generic) else
    np.asarray(y)``."""
    wrong = {}
    for n in NAMES:
        if n == "glu":
            continue
        y = call(n, np.array(0.5, np.float32))
        if type(y) is not np.ndarray:
            wrong[n + "(0-d array)"] = type(y).__name__
        y = call(n, np.float32(0.5))
        if not isinstance(y, np.generic):
            wrong[n + "(np.float32)"] = type(y).__name__
    assert not wrong, wrong


@pytest.mark.parametrize(
    "name, x, kw, want",
    [
        ("elu", 0.0, {"alpha": 1e300}, 0.0),
        ("leaky_relu", 0.0, {"negative_slope": 1e300}, 0.0),
        ("celu", -1.0, {"alpha": 1e300}, -1.0),
        ("celu", 0.0, {"alpha": 1e-300}, 0.0),
        ("squareplus", 1.0, {"b": 1e300}, 5e149),
        ("hard_sigmoid", 0.0, {"alpha": 1e-300, "beta": 0.5}, 0.5),
    ],
)
def test_bug_6_hyper_parameter_outside_dtype(name: str, x: float, kw: dict[str, Any], want: float) -> None:
    """A finite hyper-parameter beyond float32's range (1e300, or 1e-300 that rounds to 0)
    becomes inf or 0 in float32 arithmetic, and a finite x then gives NaN (inf * 0, 0 / 0).
    Fix: either reject such a value (ValueError: "alpha=1e300 is not representable in
    float32", in _dispatch.apply where the working dtype is known), or clamp it to the working
    dtype's finite range in _params.hyper; the expected values here are the clamped results:
    the mathematical value, rounded (or ValueError, then change this test)."""
    with pytest.raises(ValueError, match=rf"kaun\.activation\.{name}: .*outside float32's range"):
        call(name, np.array([x], np.float32), **kw)
    y = call(name, np.array([x], np.float64), **kw)  # float64 holds it: computed as asked
    assert not np.isnan(y[0]) and np.isclose(y[0], want, rtol=1e-6), f"{name}({x}, {kw}) = {y[0]}"


def test_bug_7_glu_infinite_gate_underflow(xp: Any) -> None:
    """glu with a = +-inf and a finite b whose sigmoid underflows to 0 gave inf * 0 = NaN; the
    limit is a (a times a positive number). Fixed in src/kaun/activation/_defs.py, _glu:
    ``o.where((|a| > max) & (b >= -max), a, a * sigmoid(b))``. b = -inf stays NaN (inf * 0:
    undefined). The derivative follows the same limit (_d_glu): d/db = a there."""
    for dtype in xp.dtypes:
        x = xp.asarray([np.inf, -np.inf, np.inf, 1.0, -1000.0, -1000.0, -np.inf, -88.0], dtype)
        y = xp.read(xp.call(A.glu, x))
        assert y[0] == np.inf and y[1] == -np.inf and np.isnan(y[2]), (dtype, y)
    x = np.array([np.inf, -np.inf, 1.0, -1000.0, -1000.0, 2.0], np.float32)
    d = A.derivative(A.glu)(x, np.ones(3, np.float32))
    s2 = 1 / (1 + np.exp(-2.0))
    assert d[3] == np.inf and d[4] == -np.inf and np.isclose(d[5], s2 * (1 - s2), rtol=1e-6), d
