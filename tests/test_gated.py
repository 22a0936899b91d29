"""The functions beyond the spec: the gated family (swiglu, geglu, geglu_approx, reglu) in both
call forms, and relu_squared and quick_gelu.

Values and derivatives against mpmath within docs/accuracy.md's bounds (the reference's ULP rule,
benchmarks/_reference.py), on every backend of the ``xp`` fixture; NumPy, Dask and torch CPU
bitwise the same; the two call forms the same; the conventions at the kink and at infinity; the
errors; what torch's autograd saves; the input never written to; kaun.nn's modules.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import dask.array as da
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import Backend
from mp_reference import R
from mpmath import mp, mpf

import kaun.activation as A
import kaun.nn as KN

GATED = ["swiglu", "geglu", "geglu_approx", "reglu"]
ELEMENTWISE = ["relu_squared", "quick_gelu"]
ACT = {"swiglu": "silu", "geglu": "gelu", "geglu_approx": "gelu_approx", "reglu": "relu"}
# torch's composite of each, as users write it: up * act(gate)
COMPOSITE = {
    "swiglu": lambda g, u: F.silu(g) * u,
    "geglu": lambda g, u: F.gelu(g) * u,
    "geglu_approx": lambda g, u: F.gelu(g, approximate="tanh") * u,
    "reglu": lambda g, u: F.relu(g) * u,
}
FLOATS = ["float16", "bfloat16", "float32", "float64"]



def _np_dtype(dtype: str) -> Any:
    import ml_dtypes

    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)


# -- the reference -----------------------------------------------------------------------------


def _act_ref(name: str, x: Any) -> tuple[Any, Any]:
    """(act(x), act'(x)) in mpmath."""
    if name == "relu":
        return (x, mpf(1)) if x > 0 else (mpf(0), mpf(0))
    return R.REF[name](x)  # type: ignore[no-any-return]


def _elementwise_ref(name: str, x: Any) -> tuple[Any, Any]:
    if name == "relu_squared":
        return (x * x, 2 * x) if x > 0 else (mpf(0), mpf(0))
    k = mpf("1.702")
    s, sn = R._sig(k * x), R._sig(-k * x)
    return x * s, s * (1 + k * x * sn)


def _refs(vals: list[Any]) -> Any:
    enc = [R._encode(v) for v in vals]
    return R.Ref(np.array([e[0] for e in enc]), np.array([e[1] for e in enc]),
                 np.array([e[2] for e in enc]))


def _grid(dtype: str) -> np.ndarray:
    """About 200 inputs: a fine grid near 0, both tails (exp's thresholds, past them), tiny and
    huge magnitudes; as the dtype holds them."""
    big = float(np.finfo(_np_dtype(dtype)).max) if dtype != "bfloat16" else 3.38e38
    mid = np.linspace(-12.0, 12.0, 97)
    tiny = np.array([1e-30, 1e-12, 1e-7, 1e-4, 0.01, 0.3])
    tails = np.array([15.0, 17.5, 20.0, 27.0, 40.0, 88.0, 104.0, 150.0, 700.0, 740.0, 1e4, 1e30,
                      1e200, big])
    xs = np.concatenate([mid, tiny, -tiny, tails, -tails, [0.0]])
    with np.errstate(all="ignore"):
        xs = xs.astype(_np_dtype(dtype)).astype(np.float64)
    return np.unique(xs[np.isfinite(xs)])


# the value half: small numbers of both signs (the ULP rule near the derivative's zeros measures
# the absolute error in ulp(1); with |up| <= 3 that is at most 2 bits looser)
UPS = np.array([1.0, -0.75, 3.0, -2.5, 0.3125])


@functools.cache
def gated_reference(name: str, dtype: str) -> tuple[np.ndarray, np.ndarray, tuple[Any, ...]]:
    """(up, gate, (value, d/dup, d/dgate) as references) at the grid."""
    gate = _grid(dtype)
    up = np.resize(UPS, gate.shape).astype(_np_dtype(dtype)).astype(np.float64)
    v, du, dg = [], [], []
    with mp.workdps(R.DPS):
        for a, b in zip(up.tolist(), gate.tolist(), strict=True):
            f, d = _act_ref(ACT[name], mpf(b))
            v.append(mpf(a) * f)
            du.append(f)
            dg.append(mpf(a) * d)
    return up, gate, (_refs(v), _refs(du), _refs(dg))


@functools.cache
def elementwise_reference(name: str, dtype: str) -> tuple[np.ndarray, tuple[Any, ...]]:
    x = _grid(dtype)
    v, d = [], []
    with mp.workdps(R.DPS):
        for b in x.tolist():
            fv, fd = _elementwise_ref(name, mpf(b))
            v.append(fv)
            d.append(fd)
    return x, (_refs(v), _refs(d))


ZEROS = {  # the zeros of each derivative (where the ULP rule measures absolute error)
    ("swiglu", 1): R.ZEROS[("silu", 1)], ("geglu", 1): R.ZEROS[("gelu", 1)],
    ("geglu_approx", 1): R.ZEROS[("gelu_approx", 1)], ("reglu", 1): (),
    ("quick_gelu", 1): (R.ZEROS[("silu", 1)][0] / 1.702,), ("relu_squared", 1): (),
}


def _bad(y: np.ndarray, ref: Any, dtype: str, xs: np.ndarray, bound: float,
         zeros: tuple[float, ...] = (), skip: np.ndarray | None = None) -> list[str]:
    err = R.ulp_error(np.asarray(y, np.float64), ref, dtype, xs, zeros)
    if skip is not None:
        err = np.where(skip, 0.0, err)
    return [f"x={xs[i]!r}: got {y[i]!r}, {err[i]:.3g} ulp > {bound}"
            for i in np.flatnonzero(~(err <= bound))][:5]


def _bounds(dtype: str) -> tuple[float, float]:
    return R.TARGET[dtype]  # type: ignore[no-any-return]


def _flushed(xs: np.ndarray, ref: Any, dtype: str) -> np.ndarray:
    """Inputs or results that are subnormal: XLA on CPU flushes them (docs/accuracy.md)."""
    small = math.ldexp(1.0, R.FMT[dtype].emin)
    r = ref.approx()
    return ((np.abs(xs) < small) & (xs != 0)) | ((np.abs(r) < small) & (r != 0))


# -- values on every backend, both forms ---------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", GATED)
def test_gated_values(xp: Backend, name: str, dtype: str) -> None:
    if dtype not in xp.dtypes:
        pytest.skip(f"{xp} has no {dtype}")
    up, gate, (ref, _, _) = gated_reference(name, dtype)
    f = getattr(A, name)
    x = xp.asarray(np.stack([up, gate]), dtype)  # axis 0: first = up, second = gate
    y_split = xp.read(xp.call(lambda t: f(t, axis=0), x))[0]
    u, g = xp.asarray(up, dtype), xp.asarray(gate, dtype)
    if xp.jit:
        y_pair = np.asarray(jax.jit(lambda g, u: f(gate=g, up=u))(g, u)).astype(np.float64)
    else:
        y_pair = xp.read(f(gate=g, up=u))
    skip = _flushed(gate, ref, dtype) if xp.name.startswith("jax") else None
    bound = _bounds(dtype)[0]
    assert not _bad(y_split, ref, dtype, gate, bound, skip=skip)
    assert not _bad(y_pair, ref, dtype, gate, bound, skip=skip)
    if not xp.name.startswith("jax"):
        np.testing.assert_array_equal(y_split, y_pair)  # the same formula, bit for bit


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_values(xp: Backend, name: str, dtype: str) -> None:
    if dtype not in xp.dtypes:
        pytest.skip(f"{xp} has no {dtype}")
    x, (ref, _) = elementwise_reference(name, dtype)
    y = xp.read(xp.call(getattr(A, name), xp.asarray(x, dtype)))
    skip = _flushed(x, ref, dtype) if xp.name.startswith("jax") else None
    assert not _bad(y, ref, dtype, x, _bounds(dtype)[0], skip=skip)


# -- derivatives: NumPy's explicit ones, torch's autograd, JAX's grad ----------------------------


def _gated_grads(backend: str, name: str, up: np.ndarray, gate: np.ndarray,
                 dtype: str) -> tuple[np.ndarray, np.ndarray]:
    f = getattr(A, name)
    if backend == "numpy":
        x = np.stack([up, gate]).astype(_np_dtype(dtype))
        d = A.derivative(f)(x, np.ones_like(x[:1]), axis=0)
        return np.asarray(d[0], np.float64), np.asarray(d[1], np.float64)
    if backend == "torch":
        t = {n: getattr(torch, n) for n in FLOATS}[dtype]
        u = torch.tensor(up).to(t).requires_grad_(True)
        g = torch.tensor(gate).to(t).requires_grad_(True)
        du, dg = torch.autograd.grad(f(gate=g, up=u).sum(), (u, g))
        return du.double().numpy(), dg.double().numpy()
    uj, gj = jnp.asarray(up.astype(_np_dtype(dtype))), jnp.asarray(gate.astype(_np_dtype(dtype)))
    du, dg = jax.grad(lambda u, g: f(gate=g, up=u).astype(jnp.float64).sum(), (0, 1))(uj, gj)
    return np.asarray(du, np.float64), np.asarray(dg, np.float64)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", GATED)
def test_gated_derivatives(backend: str, name: str, dtype: str) -> None:
    up, gate, (_, ref_du, ref_dg) = gated_reference(name, dtype)
    du, dg = _gated_grads(backend, name, up, gate, dtype)
    bound = _bounds(dtype)[1]
    skip_u = _flushed(gate, ref_du, dtype) if backend == "jax" else None
    skip_g = _flushed(gate, ref_dg, dtype) if backend == "jax" else None
    assert not _bad(du, ref_du, dtype, gate, bound, skip=skip_u)
    assert not _bad(dg, ref_dg, dtype, gate, bound, ZEROS[(name, 1)], skip=skip_g)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_derivatives(backend: str, name: str, dtype: str) -> None:
    x, (_, ref) = elementwise_reference(name, dtype)
    f = getattr(A, name)
    if backend == "numpy":
        d = np.asarray(A.derivative(f)(x.astype(_np_dtype(dtype))), np.float64)
    elif backend == "torch":
        t = torch.tensor(x).to(getattr(torch, dtype)).requires_grad_(True)
        (d,) = torch.autograd.grad(f(t).sum(), t)
        d = d.double().numpy()
    else:
        xj = jnp.asarray(x.astype(_np_dtype(dtype)))
        d = np.asarray(jax.grad(lambda v: f(v).astype(jnp.float64).sum())(xj), np.float64)
    skip = _flushed(x, ref, dtype) if backend == "jax" else None
    assert not _bad(d, ref, dtype, x, _bounds(dtype)[1], ZEROS[(name, 1)], skip=skip)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_higher_orders_against_mpmath(name: str) -> None:
    """Orders 2 and 3 (written for relu_squared's second; by kaun._dual otherwise) against
    mpmath's derivatives of the reference, float64, away from relu_squared's kink."""
    x = np.concatenate([np.linspace(-8.0, 8.0, 41), [-30.0, 25.0]])
    x = x[x != 0.0]
    with mp.workdps(40):
        want = {k: np.array([float(mp.diff(lambda v: _elementwise_ref(name, v)[0], mpf(float(v)), k))
                             for v in x]) for k in (2, 3)}
    for k in (2, 3):
        got = np.asarray(A.derivative(getattr(A, name), order=k)(x))
        np.testing.assert_allclose(got, want[k], rtol=1e-12, atol=1e-14)
        # torch's double and triple backward reach the same formulas
        t = torch.tensor(x, requires_grad=True)
        y = getattr(A, name)(t).sum()
        for _ in range(k):
            (y,) = torch.autograd.grad(y, t, create_graph=True)
            y = y.sum() if _ < k - 1 else y
        np.testing.assert_allclose(y.detach().numpy(), want[k], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", GATED)
def test_gradcheck_both_forms(name: str) -> None:
    """First and second order (torch: the vjp kernel, then autograd of the derivative formula;
    JAX: the primitive's JVP) against finite differences, float64, away from reglu's kink."""
    f = getattr(A, name)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, dtype=torch.float64, generator=gen).requires_grad_(True)
    g = torch.randn(4, 5, dtype=torch.float64, generator=gen).requires_grad_(True)
    u = torch.randn(4, 5, dtype=torch.float64, generator=gen).requires_grad_(True)
    for ax in (0, 1, -1) if x.shape[0] % 2 == 0 else (1, -1):
        assert torch.autograd.gradcheck(lambda t, ax=ax: f(t, axis=ax), (x,))
        assert torch.autograd.gradgradcheck(lambda t, ax=ax: f(t, axis=ax), (x,))
    assert torch.autograd.gradcheck(lambda g, u: f(gate=g, up=u), (g, u))
    assert torch.autograd.gradgradcheck(lambda g, u: f(gate=g, up=u), (g, u))
    from jax.test_util import check_grads

    check_grads(lambda t: f(t, axis=1), (jnp.asarray(x.detach().numpy()),), order=2,
                modes=("fwd", "rev"))
    check_grads(lambda g, u: f(gate=g, up=u),
                (jnp.asarray(g.detach().numpy()), jnp.asarray(u.detach().numpy())), order=2,
                modes=("fwd", "rev"))


# -- bitwise: NumPy == Dask == torch CPU, both forms; and torch's composite ----------------------


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", GATED)
def test_bitwise_numpy_dask_torch(name: str, dtype: str) -> None:
    f = getattr(A, name)
    rng = np.random.default_rng(7)
    xn = (rng.standard_normal((6, 40)) * 4).astype(_np_dtype(dtype))
    t = getattr(torch, dtype)
    want = f(xn, axis=1)
    up, gate = xn[:, :20], xn[:, 20:]
    xt = torch.from_numpy(xn.astype(np.float64)).to(t)
    same = [
        f(da.from_array(xn, chunks=(4, 7)), axis=1).compute(),
        f(gate=da.from_array(gate, chunks=(2, 5)), up=da.from_array(up, chunks=(3, 20))).compute(),
        f(gate=gate, up=up),
        f(gate=np.ascontiguousarray(gate), up=np.asfortranarray(up)),
        f(xt, axis=1).to(torch.float64).numpy(),
        f(xt.requires_grad_(True), axis=1).detach().to(torch.float64).numpy(),
        f(gate=xt[:, 20:], up=xt[:, :20]).detach().to(torch.float64).numpy(),
        f(np.ascontiguousarray(xn.T), axis=0).T,
    ]
    w = np.asarray(want).astype(np.float64)
    for i, y in enumerate(same):
        np.testing.assert_array_equal(np.asarray(y).astype(np.float64), w, err_msg=str(i))
    # the backward kernel (torch CPU) equals the explicit vjp of NumPy to the rounding of g * d
    xg = xt.detach().clone().requires_grad_(True)
    gy = torch.from_numpy(rng.standard_normal((6, 20))).to(t)
    (gx,) = torch.autograd.grad(f(xg, axis=1), xg, gy)
    gn = A.derivative(f)(xn, gy.to(torch.float64).numpy().astype(_np_dtype(dtype)), axis=1)
    tol = {"float16": 1e-3, "bfloat16": 8e-3, "float32": 1e-6, "float64": 1e-14}[dtype]
    np.testing.assert_allclose(gx.to(torch.float64).numpy(), np.asarray(gn).astype(np.float64),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("name", GATED)
def test_matches_torch_composite_and_glu_order(name: str) -> None:
    """``f(gate=g, up=u)`` is ``act(g) * u`` (Hugging Face's layout); the split form takes the
    halves in ``torch.nn.functional.glu``'s order, value first (Megatron's chunk, gate first,
    is ``f(gate=x[0], up=x[1])``)."""
    f = getattr(A, name)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 16, dtype=torch.float64, generator=gen) * 3
    first, second = x.chunk(2, dim=-1)
    want = COMPOSITE[name](second, first)
    torch.testing.assert_close(f(x), want, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(f(gate=second, up=first), want, rtol=1e-13, atol=1e-15)
    chunks = torch.chunk(x, 2, -1)  # Megatron-LM: act(x[0]) * x[1]
    torch.testing.assert_close(f(gate=chunks[0], up=chunks[1]), COMPOSITE[name](chunks[0], chunks[1]),
                               rtol=1e-13, atol=1e-15)
    if name == "swiglu":  # glu is the sigmoid-gated member, in the same order
        torch.testing.assert_close(A.glu(x), F.glu(x), rtol=1e-13, atol=1e-15)


def test_elementwise_match_their_definitions() -> None:
    x = torch.linspace(-9.0, 9.0, 301, dtype=torch.float64)
    torch.testing.assert_close(A.relu_squared(x), torch.relu(x) ** 2, rtol=1e-15, atol=0.0)
    torch.testing.assert_close(A.quick_gelu(x), x * torch.sigmoid(1.702 * x), rtol=1e-14, atol=1e-300)


# -- conventions: the kink, infinity, NaN -------------------------------------------------------


def test_reglu_and_relu_squared_at_the_kink() -> None:
    """reglu's d/dgate at gate = 0 is 0 (relu's, as torch's autograd of relu(g) * u gives);
    relu_squared's second derivative at 0 is 0, its first 0."""
    g = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    u = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64, requires_grad=True)
    dg, du = torch.autograd.grad(A.reglu(gate=g, up=u).sum(), (g, u))
    g2 = g.detach().clone().requires_grad_(True)
    dg2, _ = torch.autograd.grad((F.relu(g2) * u).sum(), (g2, u))
    assert dg.tolist() == dg2.tolist() == [0.0, 0.0, 0.0] and du.tolist() == [0.0, 0.0, 0.0]
    zero = np.zeros(1)
    assert A.derivative(A.relu_squared)(zero)[0] == 0.0
    assert A.derivative(A.relu_squared, order=2)(zero)[0] == 0.0
    assert A.derivative(A.relu_squared, order=2)(np.ones(1))[0] == 2.0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", GATED)
def test_limits_at_infinity_and_nan(name: str, dtype: str) -> None:
    """One input infinite, the other finite: the limit along it; NaN in, NaN out."""
    inf, nan = np.inf, np.nan
    up = np.array([inf, inf, -inf, inf, 0.0, 2.0, -2.0, nan, 1.0, inf], dtype)
    gate = np.array([-300.0, 300.0, -300.0, 0.0, inf, inf, -inf, 1.0, nan, nan], dtype)
    relu = name == "reglu"
    want = np.array([0.0 if relu else -inf, inf, 0.0 if relu else inf, 0.0, 0.0, inf, 0.0, nan,
                     nan, nan], dtype)
    f = getattr(A, name)
    for y in (f(gate=gate, up=up), f(np.stack([up, gate]), axis=0)[0],
              f(gate=torch.from_numpy(gate), up=torch.from_numpy(up)).numpy(),
              np.asarray(f(gate=jnp.asarray(gate), up=jnp.asarray(up)))):
        np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_infinity_and_nan(name: str) -> None:
    x = np.array([-np.inf, np.inf, np.nan, -1e300, 1e300])
    y = getattr(A, name)(x)
    big = np.inf if name == "relu_squared" else 1e300  # (1e300^2 overflows, as it must)
    assert y[0] == 0.0 and y[1] == np.inf and np.isnan(y[2]) and y[3] == 0.0 and y[4] == big
    d = A.derivative(getattr(A, name))(x)
    assert d[0] == 0.0 and np.isnan(d[2]) and np.all(np.isfinite(d[[0, 3]]))


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GATED)
def test_errors_name_the_function_and_the_argument(name: str) -> None:
    f = getattr(A, name)
    q = f"kaun.activation.{name}"
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=rf"{q}: the size 3 of axis -1 does not split"):
        f(x)
    with pytest.raises(ValueError, match=rf"{q}:.*axis"):
        f(x, axis=2)
    with pytest.raises(TypeError, match=rf"{q}: pass either x .* not both"):
        f(x, gate=x, up=x)
    with pytest.raises(TypeError, match=rf"{q}: up= is missing"):
        f(gate=x)
    with pytest.raises(TypeError, match=rf"{q}: gate= is missing"):
        f(up=x)
    with pytest.raises(TypeError, match=rf"{q}: pass x .* or both gate= and up="):
        f()
    with pytest.raises(TypeError, match=rf"{q}: axis is for the split form"):
        f(gate=x, up=x, axis=0)
    with pytest.raises(ValueError, match=rf"{q}: gate and up must have the same shape, got \(2, 3\) "
                       r"\(gate\) and \(3, 2\) \(up\)"):
        f(gate=x, up=x.T.copy())
    with pytest.raises(TypeError, match=rf"{q}: gate and up must have the same dtype, got float32"):
        f(gate=x.astype(np.float32), up=x)
    with pytest.raises(TypeError, match=rf"{q}: gate must have a real floating dtype, got int64"):
        f(gate=np.ones(3, np.int64), up=np.ones(3))
    with pytest.raises(TypeError, match=rf"{q}: up must be an array"):
        f(gate=x, up="x")
    with pytest.raises(TypeError, match=rf"{q}: gate and up must be arrays of the same library"):
        f(gate=torch.ones(2, 3, dtype=torch.float64), up=x)
    with pytest.raises(ValueError, match=rf"{q}: gate and up must be on the same device"):
        f(gate=torch.ones(3, device="meta"), up=torch.ones(3))
    with pytest.raises(TypeError):  # two positional arrays: nobody swaps gate and up
        f(x, x)  # type: ignore[misc]
    t = torch.ones(2, 3)
    f(gate=t, up=t)  # (a checked call first: the next ones hit the cache of checked shapes)
    with pytest.raises(TypeError, match=rf"{q}: gate must be a dense tensor"):
        f(gate=t.to_sparse(), up=t)
    with pytest.raises(TypeError, match=rf"{q}: up must be a dense tensor"):
        f(gate=t, up=t.to_sparse())


def test_python_numbers_and_lists() -> None:
    assert A.swiglu([1.0, 0.0]).tolist() == [0.0]
    np.testing.assert_array_equal(A.geglu(gate=[1.0, -1.0], up=np.array([2.0, 2.0])),
                                  A.geglu(np.array([2.0, 2.0, 1.0, -1.0])))


# -- torch: what autograd saves; the input untouched ---------------------------------------------


def _saved(fn: Any, *ts: torch.Tensor) -> list[torch.Tensor]:
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(*ts)
    y.sum().backward()
    return saved


@pytest.mark.parametrize("name", GATED)
def test_autograd_saves_only_the_inputs(name: str) -> None:
    f = getattr(A, name)
    x = torch.randn(8, 64, requires_grad=True)
    saved = _saved(lambda t: f(t), x)
    assert len(saved) == 1 and saved[0].data_ptr() == x.data_ptr()
    g, u = (torch.randn(8, 32, requires_grad=True) for _ in range(2))
    saved = _saved(lambda g, u: f(gate=g, up=u), g, u)
    assert len(saved) == 2 and {s.data_ptr() for s in saved} == {g.data_ptr(), u.data_ptr()}
    # torch's composite keeps more: the gate, the activation's output and the up projection
    g2, u2 = (t.detach().clone().requires_grad_(True) for t in (g, u))
    assert len(_saved(COMPOSITE[name], g2, u2)) > 2


@pytest.mark.parametrize("name", GATED + ELEMENTWISE)
def test_input_never_written(name: str) -> None:
    f = getattr(A, name)
    x = torch.randn(6, 10, dtype=torch.float32, requires_grad=True)
    keep = x.detach().clone()
    xn = keep.numpy().copy()
    f(x).sum().backward()
    f(xn)
    A.derivative(f)(xn, np.ones((6, 5), np.float32)) if name in GATED else A.derivative(f)(xn)
    assert torch.equal(x.detach(), keep) and np.array_equal(xn, keep.numpy())
    if name in GATED:
        g, u = x[:, :5].detach().clone().requires_grad_(True), x[:, 5:].detach().clone().requires_grad_(True)
        gk, uk = g.detach().clone(), u.detach().clone()
        f(gate=g, up=u).sum().backward()
        assert torch.equal(g.detach(), gk) and torch.equal(u.detach(), uk)


# -- kaun.nn ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "name"), [(KN.SwiGLU, "swiglu"), (KN.GeGLU, "geglu"),
                                           (KN.GeGLUApprox, "geglu_approx"), (KN.ReGLU, "reglu")])
def test_gated_modules(cls: Any, name: str) -> None:
    f = getattr(A, name)
    x = torch.randn(4, 6)
    assert KN.MODULES[name] is cls and repr(cls()) == f"kaun.nn.{cls.__name__}(axis=-1)"
    assert torch.equal(cls()(x), f(x)) and torch.equal(cls(dim=0)(x), f(x, axis=0))
    assert torch.equal(cls()(gate=x, up=x * 2), f(gate=x, up=x * 2))
    assert list(cls().parameters()) == [] and cls().state_dict() == {}
    with pytest.raises(TypeError, match=rf"kaun.activation.{name}: axis must be an int"):
        cls(axis=1.5)
    with pytest.raises(TypeError, match="give axis or dim"):
        cls(axis=0, dim=1)


@pytest.mark.parametrize(("cls", "name"), [(KN.ReLUSquared, "relu_squared"),
                                           (KN.QuickGELU, "quick_gelu")])
def test_elementwise_modules(cls: Any, name: str) -> None:
    x = torch.randn(4, 6)
    assert KN.MODULES[name] is cls and repr(cls()) == f"kaun.nn.{cls.__name__}()"
    assert torch.equal(cls()(x), getattr(A, name)(x))


# -- torch: the halves of one tensor read in place; the contexts -------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_torch_views_read_in_place_bitwise(dtype: torch.dtype) -> None:
    """Megatron's chunk (two views along the last axis), transposed views, an expanded (stride 0)
    up: the same bits as contiguous copies, values and both gradients."""
    x = (torch.randn(3, 5, 74, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
         * 3).to(dtype)
    gate, up = torch.chunk(x, 2, -1)
    want = A.swiglu(gate=gate.contiguous(), up=up.contiguous())
    assert torch.equal(A.swiglu(gate=gate, up=up), want)
    assert torch.equal(A.swiglu(gate=gate, up=up.contiguous()), want)
    assert torch.equal(A.swiglu(gate=gate.transpose(0, 1), up=up.transpose(0, 1)),
                       want.transpose(0, 1))
    row = up[0, 0].contiguous()
    assert torch.equal(A.swiglu(gate=gate, up=row.expand(3, 5, 37)),
                       A.swiglu(gate=gate.contiguous(), up=row.expand(3, 5, 37).contiguous()))
    xs = x.clone().requires_grad_(True)
    g2, u2 = torch.chunk(xs, 2, -1)
    gc, uc = (t.detach().clone().requires_grad_(True) for t in (gate, up))
    gy = torch.randn(want.shape, dtype=torch.float64).to(dtype)
    (gx,) = torch.autograd.grad(A.swiglu(gate=g2, up=u2), (xs,), gy)
    dg, du = torch.autograd.grad(A.swiglu(gate=gc, up=uc), (gc, uc), gy)
    assert torch.equal(gx, torch.cat([dg, du], -1))


# dynamo builds an autograd.Function of its own under a DeprecationWarning (torch 2.13)
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_contexts_two_array_form() -> None:
    """torch.compile (fullgraph), torch.func.grad and vmap, forward-mode AD; jax.jit, vmap."""
    gen = torch.Generator().manual_seed(2)
    g, u = (torch.randn(4, 6, dtype=torch.float64, generator=gen) for _ in range(2))
    want = F.silu(g) * u
    f = torch.compile(lambda g, u: A.swiglu(gate=g, up=u), fullgraph=True)
    torch.testing.assert_close(f(g, u), want)
    torch.testing.assert_close(torch.func.vmap(lambda g, u: A.swiglu(gate=g, up=u))(g, u), want)
    dg, du = torch.func.grad(lambda g, u: A.swiglu(gate=g, up=u).sum(), argnums=(0, 1))(g, u)
    torch.testing.assert_close(du, F.silu(g))
    import torch.autograd.forward_ad as fwad

    with fwad.dual_level():
        t = fwad.unpack_dual(A.swiglu(gate=fwad.make_dual(g, torch.ones_like(g)), up=u)).tangent
    torch.testing.assert_close(t, dg)
    gj, uj = jnp.asarray(g.numpy()), jnp.asarray(u.numpy())
    for y in (jax.jit(lambda g, u: A.swiglu(gate=g, up=u))(gj, uj),
              jax.vmap(lambda g, u: A.swiglu(gate=g, up=u))(gj, uj)):
        np.testing.assert_allclose(np.asarray(y), want.numpy(), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "dask"])
@pytest.mark.parametrize("name", GATED)
def test_explicit_vjp_of_both_forms(backend: str, name: str) -> None:
    """``derivative(f)(x, g, axis=)`` (split) and ``derivative(f)(g, gate=, up=)`` (the pair
    (dL/dgate, dL/dup)) agree with each other and with torch's autograd."""
    f = getattr(A, name)
    rng = np.random.default_rng(11)
    up, gate, cot = (rng.standard_normal((3, 4)) * 3 for _ in range(3))
    make = {"numpy": np.asarray, "torch": torch.from_numpy, "jax": jnp.asarray,
            "dask": lambda a: da.from_array(a, chunks=2)}[backend]
    read = {"numpy": np.asarray, "torch": lambda t: t.numpy(), "jax": np.asarray,
            "dask": lambda a: a.compute()}[backend]
    d_gate, d_up = A.derivative(f)(make(cot), gate=make(gate), up=make(up))
    dx = read(A.derivative(f)(make(np.concatenate([up, gate], 1)), make(cot), axis=1))
    gt, ut = torch.tensor(gate, requires_grad=True), torch.tensor(up, requires_grad=True)
    want_g, want_u = torch.autograd.grad(COMPOSITE[name](gt, ut), (gt, ut), torch.tensor(cot))
    for got, want in ((read(d_gate), want_g), (read(d_up), want_u), (dx[:, 4:], want_g),
                      (dx[:, :4], want_u)):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-13, atol=1e-13)
    with pytest.raises(TypeError, match="takes \\(g, gate=, up=\\)"):
        A.derivative(f)(make(cot), make(cot), gate=make(gate), up=make(up))
    with pytest.raises(ValueError, match="order 2 is for the elementwise functions"):
        A.derivative(f, order=2)


@pytest.mark.parametrize("name", GATED)
def test_gated_mlp_block(name: str) -> None:
    """GatedMLP equals the composite with the same weights (Hugging Face LLaMA's layout), values
    and gradients; its activation saves only its input."""
    torch.manual_seed(0)
    m = KN.GatedMLP(16, 24, name).double()
    assert isinstance(m.act, KN.MODULES[name]) and m.gate_up.weight.shape == (48, 16)
    assert "(act): kaun.nn." + type(m.act).__name__ + "(axis=-1)" in repr(m)
    up_w, gate_w = m.gate_up.weight.detach().chunk(2)
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    up_proj, gate_proj = (torch.nn.Linear(16, 24, bias=False).double() for _ in range(2))
    with torch.no_grad():
        up_proj.weight.copy_(up_w)
        gate_proj.weight.copy_(gate_w)

    def hf(x: torch.Tensor) -> torch.Tensor:
        return m.down(COMPOSITE[name](gate_proj(x), up_proj(x)))

    torch.testing.assert_close(m(x), hf(x), rtol=1e-13, atol=1e-13)
    xa, xb = (x.clone().requires_grad_(True) for _ in range(2))
    (ga,) = torch.autograd.grad(m(xa).sum(), xa)
    (gb,) = torch.autograd.grad(hf(xb).sum(), xb)
    torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-12)
    h = m.gate_up(x).detach().requires_grad_(True)
    assert len(_saved(m.act, h)) == 1
    with pytest.raises(ValueError, match="activation must be a gated function"):
        KN.GatedMLP(4, 8, "silu")
    with pytest.raises(ValueError, match="hidden must be a positive int"):
        KN.GatedMLP(4, 0)


@pytest.mark.parametrize("name", GATED + ELEMENTWISE)
def test_signature_and_kinds(name: str) -> None:
    """x positional-only; the gated ones' axis, gate and up keyword-only; float dtypes only;
    masked arrays keep their mask (the gated: masked where either input is)."""
    import inspect

    f = getattr(A, name)
    params = list(inspect.signature(f).parameters.values())
    assert params[0].name == "x" and params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    rest = {p.name: p.default for p in params[1:]}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:])
    assert rest == ({"axis": -1, "gate": None, "up": None} if name in GATED else {})
    assert "Derivative" in (f.__doc__ or "") and ">>>" in (f.__doc__ or "")
    with pytest.raises(TypeError, match=rf"kaun.activation.{name}: x must have a real floating"):
        f(np.arange(4))
    m = np.ma.MaskedArray(np.arange(4.0), mask=[False, True, False, False])
    if name in GATED:
        assert f(m).mask.tolist() == [False, True]
        assert f(gate=m[:2], up=m[2:]).mask.tolist() == [False, True]
    else:
        assert f(m).mask.tolist() == [False, True, False, False]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", ["swiglu", "geglu"])
def test_gated_mlp_inplace_backward(name: str, dtype: torch.dtype) -> None:
    """GatedMLP's backward writes the activation's gradient over gate_up's output: the same
    gradients, bitwise, as the usual backward; a second backward says why it cannot run; a
    graph being built (create_graph) or a forward hook that may hold gate_up's output takes the
    usual backward."""
    torch.manual_seed(0)
    m = KN.GatedMLP(16, 32, name, dtype=dtype)
    usual = KN.GatedMLP(16, 32, name, dtype=dtype, inplace_backward=False)
    usual.load_state_dict(m.state_dict())
    assert "inplace_backward=False" in repr(usual) and "inplace_backward" not in repr(m)
    x = torch.randn(4, 7, 16, dtype=dtype, requires_grad=True)
    ga = torch.autograd.grad(m(x).square().sum(), [x, *m.parameters()])
    gb = torch.autograd.grad(usual(x).square().sum(), [x, *usual.parameters()])
    for a, b in zip(ga, gb, strict=True):
        assert torch.equal(a, b)
    y = m(x).sum()
    y.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="inplace_backward=False"):
        y.backward()
    # create_graph: the usual backward (a double backward through it works)
    (g1,) = torch.autograd.grad(m(x).sum(), x, create_graph=True)
    (g2,) = torch.autograd.grad(usual(x).sum(), x, create_graph=True)
    assert torch.equal(g1, g2)
    g1.sum().backward()
    # a forward hook that keeps gate_up's output: it stays intact
    kept: list[torch.Tensor] = []
    hook = m.gate_up.register_forward_hook(lambda mod, i, o: kept.append(o))
    m(x).sum().backward()
    assert torch.equal(kept[0], m.gate_up(x))
    hook.remove()


def test_gated_mlp_peak_memory() -> None:
    """The issue's target, measured as benchmarks/gated.py measures it (the resident set's
    high-water mark of one forward + backward, fresh processes), at a quarter of its size:
    GatedMLP's peak <= 0.8x the composite block's."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import gated

    comp = gated.mlp_peak("swiglu", "composite", tokens=2048, dim=256, hidden=1024)
    ours = gated.mlp_peak("swiglu", "kaun", tokens=2048, dim=256, hidden=1024)
    assert comp > 16 * 2**20
    assert ours <= 0.8 * comp, (ours / 2**20, comp / 2**20)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_quick_gelu_orders_2_3_in_ulp(dtype: str) -> None:
    """quick_gelu's written orders 2 and 3 (silu's forms at the compensated 1.702 x) within the
    16-ulp target of docs/accuracy.md where they were off before: the positive and negative
    tails (e^(-1.702 |x|) small: the rounding of 1.702 x would cost 1.702 |x| / 2 ulp) and next
    to f''''s zero at 0 (relative error)."""
    x = np.array([1e-6, -3e-4, 0.01, -0.05, 0.3, -1.0, 9.19, -19.9, 40.0, -48.0, 53.9, 61.4],
                 dtype=np.float64)
    if dtype == "float64":
        x = np.concatenate([x, [300.0, -350.0, 419.6, 426.8]])
    x = x.astype(dtype).astype(np.float64)
    def ref_at(v: float, order: int) -> float:
        # f = silu(k x) / k, so f2 = k silu2(k x), f3 = k^2 silu3(k x); with s = sigmoid(y):
        # silu2 = s (1 - s) (2 + y (1 - 2 s)), silu3 = s (1 - s) (3 (1 - 2 s) + y (1 - 6 s (1 - s)))
        k = mpf("1.702")
        y = k * mpf(v)
        e = mp.exp(-y)
        s, sn = 1 / (1 + e), e / (1 + e)  # sigmoid(y) and 1 - sigmoid(y), neither cancelled
        if order == 2:
            return float(k * s * sn * (2 + y * (sn - s)))
        return float(k * k * s * sn * (3 * (sn - s) + y * (1 - 6 * s * sn)))

    with mp.workdps(80):
        for order in (2, 3):
            ref = np.array([ref_at(float(v), order) for v in x])
            got = np.asarray(A.derivative(A.quick_gelu, order=order)(x.astype(dtype)), np.float64)
            ulp = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
            err = np.abs(got - ref) / ulp
            assert err.max() <= 16, (order, x[np.argmax(err)], err.max())


def test_gated_mlp_replaced_activation_is_called() -> None:
    """A GatedMLP whose act was replaced (another function, another module) computes with the
    replacement, with and without a gradient: the in-place path is only for its own act."""
    torch.manual_seed(0)
    b = KN.GatedMLP(8, 16, "swiglu")
    b.act = KN.GeGLU()
    x = torch.randn(4, 8, requires_grad=True)
    want = b.down(b.act(b.gate_up(x)))
    assert torch.equal(b(x), want)
    b.act = torch.nn.Identity()  # (the shapes no longer fit down: torch says so)
    with pytest.raises(RuntimeError):
        b(x)
