"""Property-based tests (Hypothesis) of every activation, on every backend and float dtype.

Inputs are drawn from the whole range of the dtype: subnormals, +-0, +-inf, NaN, huge and tiny
magnitudes, and values near the breakpoints. Each property states its bound next to it; the
bounds are in units of the dtype's machine epsilon ``eps`` (ulp of 1) or of its smallest
subnormal ``sub``.

Runs are reproducible (``derandomize=True``, no example database). The number of examples is set
per backend (see ``EXAMPLES``) so that the whole file runs in well under two minutes: JAX compiles
once per (function, dtype, shape), so JAX backends get one shape per test and fewer examples.

Shapes have at least one axis here: 0-d inputs are in tests/test_adversarial.py (BUG-4 there).
JAX on CPU flushes subnormal inputs and results to zero (XLA's default), so for JAX the
subnormal slack of a bound is the smallest normal number instead (see ``floor``).
Known bugs that a property would hit are excluded where they would be drawn, with a comment
naming the pinned test in tests/test_adversarial.py (BUG-2, BUG-6).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import ml_dtypes
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kaun.activation as A
from kaun.activation._defs import SELU_ALPHA, SELU_LAMBDA

ALL = A.names()  # the 25 names of the spec, swish and hard_swish included
EXAMPLES = {"numpy": 50, "torch": 40, "array-api-strict": 20, "dask": 10, "jax": 12, "jax-jit": 6}
SHAPES = [(1,), (7,), (64,), (4, 8), (2, 3, 1, 2)]
JAX_SHAPES = [(16,)]  # one shape: each new shape costs a compilation per function and dtype


def _settings(xp: Any, scale: float = 1.0) -> Any:
    return settings(
        max_examples=max(5, int(EXAMPLES[xp.name] * scale)),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


# -- dtypes and values ---------------------------------------------------------------------------


def np_dtype(name: str) -> Any:
    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


@functools.cache
def finfo(name: str) -> Any:
    return ml_dtypes.finfo(ml_dtypes.bfloat16) if name == "bfloat16" else np.finfo(name)


def eps(name: str) -> float:
    return float(finfo(name).eps)


def sub(name: str) -> float:
    return float(finfo(name).smallest_subnormal)


def big(name: str) -> float:
    return float(finfo(name).max)


def to_dtype(v: np.ndarray, name: str) -> np.ndarray:
    """v (float64) rounded to dtype ``name`` and back to float64 (overflow gives inf)."""
    with np.errstate(all="ignore"):
        return np.asarray(v, np.float64).astype(np_dtype(name)).astype(np.float64)


WIDTH = {"float16": 16, "bfloat16": 32, "float32": 32, "float64": 64}


@functools.cache
def specials(name: str) -> tuple[float, ...]:
    f = finfo(name)
    s, t, m = float(f.smallest_subnormal), float(f.smallest_normal), float(f.max)
    base = [0.0, 1.0, 3.0, 6.0, 0.5, 1.5, 2.5, 20.0, 40.0, 88.0, 100.0, 710.0, 1e4, 1e19, 1e30]
    vals = [s, 2 * s, t, t * (1 - 2 * float(f.eps)), m, m / 2, math.sqrt(m), 1 / s if s > 0 else 1.0]
    vals += base
    out = []
    for v in vals:
        out += [v, -v]
    out += [math.inf, -math.inf, math.nan]
    with np.errstate(all="ignore"):
        return tuple(float(v) for v in to_dtype(np.array(out), name))


def element(name: str) -> st.SearchStrategy[float]:
    w = WIDTH[name]
    return st.one_of(
        st.floats(width=w, allow_nan=True, allow_infinity=True, allow_subnormal=True),
        st.sampled_from(specials(name)),
        st.floats(-8.0, 8.0, width=w),
        st.floats(-120.0, 120.0, width=w),
    )


def shapes_for(xp: Any) -> list[tuple[int, ...]]:
    return JAX_SHAPES if xp.name.startswith("jax") else SHAPES


@st.composite
def inputs(draw: Any, xp: Any, finite: bool = False, shapes: Any = None) -> tuple[str, np.ndarray]:
    """(dtype name, float64 values exactly representable in that dtype, of a drawn shape)."""
    name = draw(st.sampled_from(xp.dtypes))
    shape = draw(st.sampled_from(shapes or shapes_for(xp)))
    n = math.prod(shape)
    el = element(name)
    if finite:
        el = el.filter(math.isfinite)
    vals = to_dtype(np.array(draw(st.lists(el, min_size=n, max_size=n)), np.float64), name)
    if finite:  # rounding to bfloat16 may overflow
        vals = np.clip(vals, -big(name), big(name))
    return name, vals.reshape(shape)


# -- calling --------------------------------------------------------------------------------------


@functools.cache
def _jitted(fn: Callable[..., Any], kw: tuple[tuple[str, Any], ...]) -> Any:
    return jax.jit(functools.partial(fn, **dict(kw)))


def make(xp: Any, vals: np.ndarray, name: str) -> Any:
    with np.errstate(all="ignore"):
        return xp.asarray(vals, name)


def call(xp: Any, fn: Callable[..., Any], x: Any, *args: Any, **kw: Any) -> Any:
    """fn(x, *args, **kw) on backend xp; under jax-jit one cached jit per (fn, args, kw).

    NumPy's default floating-point error state is restored around the call, so that a warning
    from kaun surfaces (as an error) even where the test's own arithmetic silences them."""
    with np.errstate(divide="warn", over="warn", invalid="warn", under="ignore"):
        return _call(xp, fn, x, *args, **kw)


def _call(xp: Any, fn: Callable[..., Any], x: Any, *args: Any, **kw: Any) -> Any:
    if xp.jit and not args:
        return _jitted(fn, tuple(sorted(kw.items())))(x)
    if xp.jit:  # array arguments (prelu's alpha) are traced too
        return jax.jit(lambda x, *a: fn(x, *a, **kw))(x, *args)
    return fn(x, *args, **kw)


def run(xp: Any, fname: str, vals: np.ndarray, dtype: str, **kw: Any) -> np.ndarray:
    """Apply A.<fname> to vals made as an xp array of dtype; check the contract; return float64."""
    fn = getattr(A, fname)
    x = make(xp, vals, dtype)
    y = call(xp, fn, x, **kw)
    assert xp.kind(y), f"{fname}: {type(y)} returned for a {xp.name} input"
    assert xp.dtype_of(y) == dtype, f"{fname}: dtype {xp.dtype_of(y)} for {dtype} input"
    assert tuple(y.shape) == tuple(vals.shape) or fname == "glu", f"{fname}: shape {y.shape}"
    return xp.read(y)


def assert_close(
    got: np.ndarray, want: np.ndarray, dtype: str, ulps: float, atol: Any = 0.0, what: str = ""
) -> None:
    """got (a result in dtype, as float64) is want (float64, rounded here to dtype) within
    ``ulps * eps * |want| + atol``; NaN where want is NaN; infinities equal, except that a
    rounding at the overflow threshold may give inf on one side and the largest finite value on
    the other."""
    want = to_dtype(want, dtype)
    gn, wn = np.isnan(got), np.isnan(want)
    assert np.array_equal(gn, wn), f"{what}: NaN at {np.flatnonzero(gn != wn)}: {got[gn != wn]} vs {want[gn != wn]}"
    ok = gn.copy()
    m = big(dtype) * (1 - 2 * eps(dtype))
    gi, wi = np.isinf(got), np.isinf(want)
    ok |= gi & wi & (np.sign(got) == np.sign(want))
    ok |= gi & ~wi & (np.abs(want) >= m) & (np.sign(got) == np.sign(want))
    ok |= wi & ~gi & (np.abs(got) >= m) & (np.sign(got) == np.sign(want))
    fin = ~(gn | gi | wi)
    with np.errstate(all="ignore"):
        err = np.abs(got - want)
        tol = ulps * eps(dtype) * np.abs(want) + atol
    ok |= fin & (err <= tol)
    bad = np.flatnonzero(~ok)
    assert bad.size == 0, (
        f"{what} ({dtype}): {bad.size} values off; first: got {got.flat[bad[0]]!r}, "
        f"want {want.flat[bad[0]]!r}, err {np.ravel(err)[bad[0]]!r}, "
        f"tol {np.ravel(np.broadcast_to(tol, got.shape))[bad[0]]!r}"
    )


def quiet(f: Callable[..., None]) -> Callable[..., None]:
    """Run a property with NumPy's floating-point warnings off for the test's own arithmetic
    (kaun's calls get them back: see ``call``)."""

    @functools.wraps(f)
    def g(*a: Any, **k: Any) -> None:
        with np.errstate(all="ignore"):
            f(*a, **k)

    return g


def kw_for(fname: str) -> dict[str, Any]:
    return {"alpha": 0.25} if fname == "prelu" else {}


# -- 1. the contract: type, shape, dtype, NaN in = NaN out, input unchanged -------------------------


def _snapshot(xp: Any, x: Any) -> bytes:
    if xp.name == "torch":
        return x.detach().clone().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
    if xp.name == "numpy":
        return x.tobytes()
    return b""


def test_contract(xp: Any) -> None:
    """Every function: same kind of array, shape and dtype as the input; NaN exactly where the
    input is NaN (no NaN from a non-NaN input, +-inf included); the input is not written to."""

    @_settings(xp)
    @given(inputs(xp))
    @quiet
    def prop(drawn: tuple[str, np.ndarray]) -> None:
        dtype, vals = drawn
        nan_in = np.isnan(vals)
        for fname in ALL:
            if fname == "glu":
                continue
            x = make(xp, vals, dtype)
            before = _snapshot(xp, x)
            y = call(xp, getattr(A, fname), x, **kw_for(fname))
            assert xp.kind(y), f"{fname}: got {type(y)}"
            assert xp.dtype_of(y) == dtype, f"{fname}: dtype {xp.dtype_of(y)} for {dtype}"
            assert tuple(y.shape) == vals.shape, f"{fname}: shape {tuple(y.shape)} for {vals.shape}"
            assert _snapshot(xp, x) == before, f"{fname}: the input was modified"
            out = xp.read(y)
            bad = np.isnan(out) != nan_in
            assert not bad.any(), f"{fname}({dtype}) at x = {vals[bad]}: {out[bad]}"

    prop()


def test_contract_glu(xp: Any) -> None:
    """glu: kind, dtype, shape (the split axis halved); NaN where a half is NaN or a = +-inf
    meets b = -inf (inf * 0, undefined), and nowhere else (a = +-inf with a finite b whose
    sigmoid underflows to 0 gives a: BUG-7, fixed)."""
    shapes = [(16,)] if xp.name.startswith("jax") else [(2,), (8,), (4, 6), (2, 2, 4)]

    @_settings(xp)
    @given(inputs(xp, shapes=shapes), st.integers(-3, 2))
    @quiet
    def prop(drawn: tuple[str, np.ndarray], ax: int) -> None:
        dtype, vals = drawn
        ax = ax % vals.ndim
        if vals.shape[ax] % 2:
            ax = vals.ndim - 1
        y = call(xp, A.glu, make(xp, vals, dtype), axis=ax)
        assert xp.kind(y) and xp.dtype_of(y) == dtype
        a, b = np.split(vals, 2, axis=ax)
        assert tuple(y.shape) == a.shape
        out = xp.read(y)
        may_nan = np.isnan(a) | np.isnan(b) | (np.isinf(a) & np.isneginf(b))
        must_nan = np.isnan(a) | np.isnan(b) | (np.isinf(a) & np.isneginf(b))
        got = np.isnan(out)
        assert not (got & ~may_nan).any(), f"glu NaN at a={a[got & ~may_nan]}, b={b[got & ~may_nan]}"
        assert not (must_nan & ~got).any(), f"glu not NaN at a={a[must_nan & ~got]}"

    prop()


# -- 2. identities ------------------------------------------------------------------------------------


FLUSH = {"jax", "jax-jit"}


def floor(xp: Any, dtype: str) -> float:
    """The magnitude below which results may be lost: the smallest subnormal of the dtype, or
    for JAX (XLA on CPU flushes subnormals to zero, inputs and results) the smallest normal
    number of the working dtype (float32 for half precision)."""
    if xp.name in FLUSH:
        return float(finfo("float64" if dtype == "float64" else "float32").smallest_normal)
    return sub(dtype)


def _tiny(xp: Any, vals: np.ndarray, dtype: str, k: float = 4.0) -> np.ndarray:
    """Absolute slack for results in the subnormal range: k * floor * max(|x|, 1)."""
    return k * floor(xp, dtype) * np.maximum(np.abs(np.nan_to_num(vals, posinf=0, neginf=0)), 1.0)


def _id_sigmoid_sym(xp: Any, d: str, v: np.ndarray) -> None:
    # sigmoid(-x) = 1 - sigmoid(x), absolute error <= 2 eps (both sides in [0, 1])
    lhs = run(xp, "sigmoid", -v, d)
    rhs = 1 - run(xp, "sigmoid", v, d)
    assert_close(lhs, rhs, d, 0, 2 * eps(d), "sigmoid(-x) = 1 - sigmoid(x)")


def _id_log_sigmoid(xp: Any, d: str, v: np.ndarray) -> None:
    # log_sigmoid(x) = -softplus(-x), within 1 ulp
    assert_close(run(xp, "log_sigmoid", v, d), -run(xp, "softplus", -v, d), d, 1, _tiny(xp, v, d),
                 "log_sigmoid(x) = -softplus(-x)")


def _id_silu(xp: Any, d: str, v: np.ndarray) -> None:
    # silu(x) = x * sigmoid(x), finite x: 3 eps relative + 4 sub * |x| (subnormal sigmoid)
    v = v[np.isfinite(v)]
    assert_close(run(xp, "silu", v, d), v * run(xp, "sigmoid", v, d), d, 3, _tiny(xp, v, d),
                 "silu(x) = x * sigmoid(x)")
    assert A.swish is A.silu


def _id_selu(xp: Any, d: str, v: np.ndarray) -> None:
    # selu(x) = lambda * elu(x, alpha=alpha_selu), finite x: 3 eps relative
    v = v[np.isfinite(v)]
    rhs = SELU_LAMBDA * run(xp, "elu", v, d, alpha=SELU_ALPHA)
    assert_close(run(xp, "selu", v, d), rhs, d, 3, _tiny(xp, v, d), "selu = lambda * elu(alpha_selu)")


def _id_celu_elu(xp: Any, d: str, v: np.ndarray) -> None:
    # celu(x, alpha=1) = elu(x, alpha=1), exactly
    assert_close(run(xp, "celu", v, d, alpha=1.0), run(xp, "elu", v, d, alpha=1.0), d, 0, 0.0,
                 "celu(x, 1) = elu(x, 1)")


def _id_hard_silu(xp: Any, d: str, v: np.ndarray) -> None:
    # hard_silu(x) = x * hard_sigmoid(x), finite x: 2 eps relative
    v = v[np.isfinite(v)]
    assert_close(run(xp, "hard_silu", v, d), v * run(xp, "hard_sigmoid", v, d), d, 2, _tiny(xp, v, d),
                 "hard_silu(x) = x * hard_sigmoid(x)")
    assert A.hard_swish is A.hard_silu


def _id_sparse(xp: Any, d: str, v: np.ndarray) -> None:
    # sparse_sigmoid = derivative of sparse_plus: A.derivative gives it exactly; and a central
    # difference of sparse_plus (float64, |x| <= 1e3, h = 1e-6) agrees within 1e-6.
    got = xp.read(A.derivative(A.sparse_plus)(make(xp, v, d)))
    assert_close(got, run(xp, "sparse_sigmoid", v, d), d, 0, 0.0, "sparse_plus' = sparse_sigmoid")
    if d == "float64":
        w = v[np.isfinite(v) & (np.abs(v) <= 1e3)]
        h = 1e-6
        fd = (run(xp, "sparse_plus", w + h, d) - run(xp, "sparse_plus", w - h, d)) / (2 * h)
        assert np.allclose(fd, run(xp, "sparse_sigmoid", w, d), rtol=0, atol=1e-6)


def _id_odd_parts(xp: Any, d: str, v: np.ndarray) -> None:
    # f(x) - f(-x) = x for softplus, silu, gelu, gelu_approx, squareplus, sparse_plus, relu,
    # hard_silu (finite x): |error| <= 4 eps (|x| + 2)
    v = v[np.isfinite(v)]
    for f in ("softplus", "silu", "gelu", "gelu_approx", "squareplus", "sparse_plus", "relu",
              "hard_silu"):
        lhs = run(xp, f, v, d) - run(xp, f, -v, d)
        assert_close(lhs, v, d, 4, 8 * eps(d), f"{f}(x) - {f}(-x) = x")


def _id_symmetries(xp: Any, d: str, v: np.ndarray) -> None:
    # odd functions, exactly: tanh, softsign, hard_tanh; complements, within 2 eps absolute:
    # f(x) + f(-x) = 1 for sigmoid, hard_sigmoid, sparse_sigmoid
    for f in ("tanh", "softsign", "hard_tanh"):
        assert_close(run(xp, f, -v, d), -run(xp, f, v, d), d, 0, 0.0, f"{f}(-x) = -{f}(x)")
    for f in ("sigmoid", "hard_sigmoid", "sparse_sigmoid"):
        lhs = run(xp, f, v, d) + run(xp, f, -v, d)
        assert_close(lhs, np.where(np.isnan(v), np.nan, 1.0), d, 0, 2 * eps(d),
                     f"{f}(x) + {f}(-x) = 1")


def _id_squareplus_product(xp: Any, d: str, v: np.ndarray) -> None:
    # squareplus(x) * squareplus(-x) = b / 4 (b = 4 and b = 0.25), 4 eps relative, where both
    # factors are normal numbers
    for b in (4.0, 0.25):
        p, q = run(xp, "squareplus", v, d, b=b), run(xp, "squareplus", -v, d, b=b)
        m = np.isfinite(v) & (np.minimum(p, q) >= float(finfo(d).smallest_normal)) & np.isfinite(p * q)
        assert_close((p * q)[m], np.full(m.sum(), b / 4), d, 4, 0.0, f"squareplus product, b={b}")


def _id_tanh_sigmoid(xp: Any, d: str, v: np.ndarray) -> None:
    # tanh(x) = 2 sigmoid(2x) - 1, within 4 eps absolute (2x finite); sigmoid = exp(log_sigmoid),
    # within 4 eps (1 + |log_sigmoid|) relative
    w = v[np.isfinite(2 * v) & (np.abs(v) <= big(d) / 2)]
    rhs = 2 * run(xp, "sigmoid", 2 * w, d) - 1
    assert_close(run(xp, "tanh", w, d), rhs, d, 0, 4 * eps(d), "tanh(x) = 2 sigmoid(2x) - 1")
    ls = run(xp, "log_sigmoid", v, d)
    with np.errstate(all="ignore"):
        rel = 4 * eps(d) * (1 + np.abs(ls))
        ex = np.exp(ls)
    tol = np.where(np.isfinite(ls), rel * ex, 0.0) + _tiny(xp, v, d)
    assert_close(run(xp, "sigmoid", v, d), ex, d, 0, tol, "exp(log_sigmoid)")


IDENTITIES = {
    "sigmoid_symmetry": _id_sigmoid_sym,
    "log_sigmoid_softplus": _id_log_sigmoid,
    "silu_x_sigmoid": _id_silu,
    "selu_lambda_elu": _id_selu,
    "celu_elu": _id_celu_elu,
    "hard_silu_x_hard_sigmoid": _id_hard_silu,
    "sparse_sigmoid_derivative": _id_sparse,
    "odd_parts": _id_odd_parts,
    "symmetries": _id_symmetries,
    "squareplus_product": _id_squareplus_product,
    "tanh_sigmoid_exp": _id_tanh_sigmoid,
}


@pytest.mark.parametrize("identity", list(IDENTITIES))
def test_identity(xp: Any, identity: str) -> None:
    check = IDENTITIES[identity]

    @_settings(xp, 0.5)
    @given(inputs(xp))
    @quiet
    def prop(drawn: tuple[str, np.ndarray]) -> None:
        check(xp, drawn[0], drawn[1].ravel())

    prop()


def test_glu_identity(xp: Any) -> None:
    """glu(concat(a, b), axis) = a * sigmoid(b), finite a: 3 eps relative + 4 sub |a|."""
    shapes = [(16,)] if xp.name.startswith("jax") else [(2,), (8,), (6, 2), (2, 3, 4)]

    @_settings(xp, 0.5)
    @given(inputs(xp, shapes=shapes), st.integers(0, 2))
    @quiet
    def prop(drawn: tuple[str, np.ndarray], ax: int) -> None:
        d, v = drawn
        ax = ax % v.ndim
        if v.shape[ax] % 2:
            ax = v.ndim - 1
        a, b = np.split(v, 2, axis=ax)
        a = np.where(np.isfinite(a), a, 1.0)
        x = np.concatenate([a, b], axis=ax)
        with np.errstate(all="ignore"):
            want = a * run(xp, "sigmoid", b, d)
        got = xp.read(call(xp, A.glu, make(xp, x, d), axis=ax))
        assert_close(got, want, d, 3, _tiny(xp, a, d), "glu(concat(a, b)) = a * sigmoid(b)")

    prop()


def test_prelu_is_leaky_relu(xp: Any) -> None:
    """prelu(x, s) = leaky_relu(x, negative_slope=s) = prelu(x, s as an array of x's dtype)
    (slopes exact in every dtype): within 1 ulp + 4 sub |x|, NaN where x is NaN."""

    @_settings(xp, 0.5)
    @given(inputs(xp), st.sampled_from([0.25, 0.5, 1.0, 2.0, -0.5, 0.01, 0.2]))
    @quiet
    def prop(drawn: tuple[str, np.ndarray], s: float) -> None:
        d, v = drawn
        lr = run(xp, "leaky_relu", v, d, negative_slope=s)
        assert_close(run(xp, "prelu", v, d, alpha=s), lr, d, 1, _tiny(xp, v, d), "prelu scalar")
        x = make(xp, v, d)
        alpha = make(xp, np.full(v.shape[-1:], s), d)
        y = xp.read(call(xp, A.prelu, x, alpha))
        assert_close(y, lr, d, 1, _tiny(xp, v, d), "prelu array")
        with np.errstate(all="ignore"):
            ref = np.where(v > 0, v, to_dtype(np.array(s), d) * v)
        fin = np.isfinite(v)
        assert_close(lr[fin], ref[fin], d, 1, _tiny(xp, v[fin], d), "leaky_relu definition")

    prop()


# -- 3. monotonicity ------------------------------------------------------------------------------------

MONOTONE: list[tuple[str, dict[str, Any]]] = [
    ("relu", {}), ("sigmoid", {}), ("tanh", {}), ("relu6", {}), ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.2}), ("hard_tanh", {}), ("hard_sigmoid", {}),
    ("hard_sigmoid", {"alpha": 0.2, "beta": 0.3}), ("prelu", {"alpha": 0.25}), ("elu", {}),
    ("elu", {"alpha": 0.5}), ("selu", {}), ("celu", {}), ("celu", {"alpha": 3.0}),
    ("softplus", {}), ("softsign", {}), ("squareplus", {}), ("squareplus", {"b": 0.0}),
    ("squareplus", {"b": 100.0}), ("log_sigmoid", {}), ("sparse_plus", {}), ("sparse_sigmoid", {}),
]
# Not monotone on the whole line, but non-decreasing on x >= 0.
MONOTONE_POSITIVE = ["gelu", "gelu_approx", "silu", "mish", "hard_silu"]


def test_monotone(xp: Any) -> None:
    """On sorted non-NaN inputs (+-inf included), the outputs never decrease."""

    @_settings(xp)
    @given(inputs(xp))
    @quiet
    def prop(drawn: tuple[str, np.ndarray]) -> None:
        d, v = drawn
        v = np.sort(v.ravel())  # NaN sorts last
        v = v[~np.isnan(v)]
        if v.size < 2:
            return
        for fname, kw in MONOTONE:
            if kw and xp.name in FLUSH and fname != "prelu":
                continue  # JAX: default hyper-parameters only (one compilation per value)
            y = run(xp, fname, v, d, **kw)
            drop = np.flatnonzero(np.diff(y) < 0)
            assert drop.size == 0, (
                f"{fname}{kw} ({d}) decreases: f({v[drop[0]]!r}) = {y[drop[0]]!r} > "
                f"f({v[drop[0] + 1]!r}) = {y[drop[0] + 1]!r}"
            )
        w = v[v >= 0]
        if w.size >= 2:
            for fname in MONOTONE_POSITIVE:
                y = run(xp, fname, w, d)
                drop = np.flatnonzero(np.diff(y) < 0)
                assert drop.size == 0, f"{fname} ({d}) decreases on x >= 0 at {w[drop[0]]!r}"

    prop()


# -- 4. bounds ------------------------------------------------------------------------------------------


def _lower_upper(fname: str, v: np.ndarray, d: str, fl: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed bounds that every output must satisfy (rounded to dtype where needed)."""
    inf = np.full(v.shape, np.inf)
    pos = np.maximum(np.nan_to_num(v, nan=-np.inf), 0.0)  # max(x, 0)
    table: dict[str, tuple[Any, Any]] = {
        "relu": (pos, inf),
        "sigmoid": (0.0, 1.0),
        "tanh": (-1.0, 1.0),
        "relu6": (0.0, 6.0),
        "hard_tanh": (-1.0, 1.0),
        "hard_sigmoid": (0.0, 1.0),
        "sparse_sigmoid": (0.0, 1.0),
        "softsign": (-1.0, 1.0),
        "softplus": (pos, inf),
        "squareplus": (pos, inf),
        "sparse_plus": (pos, inf),
        "log_sigmoid": (-inf, np.minimum(np.nan_to_num(v, nan=np.inf), 0.0)),
        "elu": (-1.0, inf),
        "celu": (-1.0, inf),
        "selu": (-SELU_LAMBDA * SELU_ALPHA, inf),
        # minima of the non-monotone ones, widened by one rounding
        "gelu": (-0.16997120747, inf),
        "gelu_approx": (-0.17004185, inf),
        "silu": (-0.27846454276, inf),
        "swish": (-0.27846454276, inf),
        "mish": (-0.30884, inf),
        "hard_silu": (-0.375, inf),
        "hard_swish": (-0.375, inf),
        "leaky_relu": (np.where(v > 0, v, 0.01 * v), np.where(v > 0, v, 0.0)),
        "prelu": (np.where(v > 0, v, 0.25 * v), np.where(v > 0, v, 0.0)),
    }
    lo, hi = table[fname]
    with np.errstate(all="ignore"):
        lo = np.broadcast_to(np.asarray(lo, np.float64), v.shape)
        hi = np.broadcast_to(np.asarray(hi, np.float64), v.shape)
        slack = 2 * eps(d)
        lo = to_dtype(lo, d)
        hi = to_dtype(hi, d)
        lo = np.where(np.isfinite(lo), lo - slack * np.abs(lo) - 2 * fl, lo)
        hi = np.where(np.isfinite(hi), hi + slack * np.abs(hi) + 2 * fl, hi)
    return lo, hi


def test_bounds(xp: Any) -> None:
    """sigmoid, hard_sigmoid, sparse_sigmoid in [0, 1]; tanh, hard_tanh, softsign in [-1, 1]
    (softsign strictly inside for |x| < 1/(4 eps)); relu6 in [0, 6]; softplus, squareplus,
    sparse_plus, relu >= max(x, 0); log_sigmoid <= min(x, 0); elu, celu >= -1; selu >=
    -lambda*alpha; leaky_relu, prelu between slope*x and 0 for x <= 0; gelu, gelu_approx, silu,
    mish, hard_silu above their minima. Slack: 2 eps relative + 2 sub (the rounding of a bound;
    for JAX, which flushes subnormals, 2 times the smallest normal number)."""

    @_settings(xp)
    @given(inputs(xp))
    @quiet
    def prop(drawn: tuple[str, np.ndarray]) -> None:
        d, v = drawn
        v = v.ravel()
        keep = ~np.isnan(v)
        for fname in ALL:
            if fname == "glu":
                continue
            y = run(xp, fname, v, d, **kw_for(fname))
            lo, hi = _lower_upper(fname, v, d, floor(xp, d))
            bad = keep & ~((y >= lo) & (y <= hi))
            assert not bad.any(), (
                f"{fname} ({d}): x = {v[bad][:3]}, y = {y[bad][:3]}, bounds {lo[bad][:3]}, {hi[bad][:3]}"
            )
        s = run(xp, "softsign", v, d)
        inner = keep & (np.abs(v) < 0.25 / eps(d))
        assert (np.abs(s[inner]) < 1).all(), "softsign reaches +-1 for a moderate x"
        sg = run(xp, "sigmoid", v, d)
        assert (sg[v >= 0] >= 0.5).all() and (sg[v < 0] <= 0.5).all(), "sigmoid vs 1/2"

    prop()


# -- 5. hyper-parameters --------------------------------------------------------------------------------


def test_hyper_parameters(xp: Any) -> None:
    """Random hyper-parameters of moderate size: no NaN from a non-NaN input, and the defining
    formulas hold: leaky_relu(x, s) = where(x > 0, x, s x) (1 ulp); elu(x, a) = x for x > 0;
    celu(x, a) = a * elu(x / a, 1) (4 eps relative); squareplus(x, b) >= max(x, 0) and b = 0 is
    relu exactly; hard_sigmoid(x, a, c) = clip(a x + c, 0, 1) (2 eps absolute)."""
    # Moderate values: a hyper-parameter outside the dtype's range is BUG-6 (adversarial tests).
    # JAX compiles once per hyper-parameter value, so it draws from a short list.
    if xp.name.startswith("jax"):
        slopes: Any = st.sampled_from([0.0, 1.0, -0.75, 3.5])
        pos: Any = st.sampled_from([1.0, 0.3, 7.0])
        bs: Any = st.sampled_from([0.0, 4.0, 0.02])
    else:
        slopes = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(1e-3, 50),
                           st.floats(-50, -1e-3))
        pos = st.one_of(st.sampled_from([1.0, 0.5, 2.0]), st.floats(1e-2, 50))
        bs = st.one_of(st.just(0.0), st.floats(1e-2, 50))

    @_settings(xp, 0.5)
    @given(inputs(xp), slopes, pos, bs, slopes, slopes)
    @quiet
    def prop(drawn: tuple[str, np.ndarray], s: float, a: float, b: float, ha: float, hb: float) -> None:
        d, v = drawn
        v = v.ravel()
        nan = np.isnan(v)
        fin = np.isfinite(v)
        # BUG-2 (see the adversarial tests): 0 * (-inf) = NaN in leaky_relu/prelu with slope 0
        # and in hard_sigmoid with alpha 0 at +-inf; those inputs are checked there.
        vi = v if s != 0.0 else np.where(np.isinf(v), 1.0, v)
        y = run(xp, "leaky_relu", vi, d, negative_slope=s)
        assert np.array_equal(np.isnan(y), np.isnan(vi)), f"leaky_relu slope {s}"
        sd = float(to_dtype(np.array(s), d if d != "float16" and d != "bfloat16" else "float32"))
        with np.errstate(all="ignore"):
            ref = np.where(vi > 0, vi, sd * vi)
        assert_close(y[fin], ref[fin], d, 1, _tiny(xp, v[fin], d), f"leaky_relu slope {s}")
        for fname, kw in (("elu", {"alpha": a}), ("celu", {"alpha": a}), ("squareplus", {"b": b})):
            y = run(xp, fname, v, d, **kw)
            assert np.array_equal(np.isnan(y), nan), f"{fname}{kw}: NaN from non-NaN"
            if fname == "elu":
                assert_close(y[v > 0], v[v > 0], d, 0, _tiny(xp, v[v > 0], d), "elu(x) = x, x > 0")
            if fname == "celu":
                ref = a * run(xp, "elu", to_dtype(v / a, d), d)
                m = fin & (np.abs(v) >= float(finfo(d).smallest_normal) * max(a, 1.0))
                m &= np.isfinite(to_dtype(v / a, d))  # the reference needs x / a in range
                assert_close(y[m], ref[m], d, 4, _tiny(xp, v[m], d), f"celu alpha {a}")
            if fname == "squareplus":
                assert (y[~nan] >= np.maximum(v[~nan], 0) - 2 * floor(xp, d)).all()
        assert np.array_equal(run(xp, "squareplus", v, d, b=0.0), run(xp, "relu", v, d), equal_nan=True)
        vh = v if ha != 0.0 else np.where(np.isinf(v), 1.0, v)  # BUG-2, see above
        y = run(xp, "hard_sigmoid", vh, d, alpha=ha, beta=hb)
        assert np.array_equal(np.isnan(y), np.isnan(vh)), f"hard_sigmoid alpha {ha}, beta {hb}"
        with np.errstate(all="ignore"):
            ref = np.clip(vh * ha + hb, 0, 1)
        m = np.isfinite(vh)
        tol = 2 * eps(d) * (1 + np.abs(vh * ha) + abs(hb))
        assert (np.abs(y[m] - ref[m]) <= tol[m]).all(), f"hard_sigmoid alpha {ha}, beta {hb}"

    prop()
