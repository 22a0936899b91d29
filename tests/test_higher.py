"""Second and third derivatives: one formula per order, reached by every route.

* ``A.derivative(f, order=n)`` (n = 2, 3) on NumPy, Dask and torch runs the same compiled kernel:
  bitwise the same; torch's double and triple backward give those bits too.
* ``torch.func`` (``hessian``, ``jacfwd(jacrev)``, ``grad(grad)``) and JAX (nested ``grad``,
  ``jvp``, ``hessian``, ``jax.experimental.jet``) reach the same formulas (same bits on JAX).
* Kinks: the conventions' outer piece (docs/conventions.md); no NaN where the truth is finite,
  NaN in gives NaN out for the smooth functions; the limits at +-inf.
* The accuracy of orders 2 and 3 against mpmath is asserted in test_accuracy.py.
"""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from bits import bits as _bits
from bits import grid, to_torch
from jax.experimental import jet

import kaun.activation as A
from kaun import _kernels as K
from kaun._core import ENTRIES

jax.config.update("jax_enable_x64", True)

ELEMENTWISE = [n for n, e in ENTRIES.items() if e.kind == "elementwise"]
SMOOTH = [n for n, e in ENTRIES.items() if e.smooth]
PARAMS: dict[str, list[dict[str, float]]] = {
    "leaky_relu": [{"negative_slope": -0.3}, {"negative_slope": 0.0}],
    "hard_sigmoid": [{"alpha": 0.3, "beta": 0.2}],
    "elu": [{"alpha": 2.5}],
    "celu": [{"alpha": 0.7}, {"alpha": 2.0}],
    "squareplus": [{"b": 0.0}, {"b": 9.0}],
}
CASES = [(n, {}) for n in ELEMENTWISE] + [(n, kw) for n, kws in PARAMS.items() for kw in kws]
IDS = [f"{n}{kw or ''}" for n, kw in CASES]
DTYPES = ["float16", "bfloat16", "float32", "float64"]

needs_kernels = pytest.mark.skipif(not K.enabled(), reason="no C compiler: no compiled kernels")


def _grads(fn: Any, x: torch.Tensor, n: int, **kw: Any) -> list[torch.Tensor]:
    """f', ..., f^(n) of an elementwise function by nested torch.autograd.grad (the last one
    without create_graph: the backward's vjp kernel)."""
    x = x.clone().requires_grad_()
    y, out = fn(x, **kw), []
    for k in range(n):
        if y.requires_grad:
            (y,) = torch.autograd.grad(y, x, torch.ones_like(y), create_graph=k < n - 1)
        else:  # torch's own backward of relu6, hardtanh, leaky_relu: a constant (its derivative 0)
            y = torch.zeros_like(y)
        out.append(y)
    return out


# -- one formula per order, the same bits by every route ------------------------------------------


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_orders_2_and_3_agree_bitwise(name: str, kw: dict[str, float], dtype: str) -> None:
    fn = getattr(A, name)
    x = grid(dtype, 4096)
    finite = ~np.isnan(x.astype(np.float64))
    # torch's own backward of its delegated ops (relu family) says what it likes at NaN
    keep = slice(None) if ENTRIES[name].smooth else finite
    g = _grads(fn, to_torch(x, dtype), 3, **kw)
    for order in (2, 3):
        ref = _bits(A.derivative(fn, order=order)(x, **kw))
        chunks = da.from_array(x, chunks=x.size // 3)
        assert np.array_equal(_bits(A.derivative(fn, order=order)(chunks, **kw).compute()), ref)
        assert np.array_equal(_bits(A.derivative(fn, order=order)(to_torch(x, dtype), **kw)), ref)
        assert np.array_equal(_bits(g[order - 1])[keep], ref[keep]), f"torch backward of order {order}"


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_torch_func_reaches_the_formulas(name: str) -> None:
    """hessian (forward over reverse), grad of grad, and jacrev of jacrev: the formula of order 2
    (and 3) in torch operations, within a few ulp of the kernel (a compiler may contract
    differently); the backward's Functions run under vmap."""
    fn = getattr(A, name)
    x = torch.linspace(-9.0, 9.0, 37, dtype=torch.float64) + 0.01
    f = torch.func
    d2 = torch.from_numpy(A.derivative(fn, order=2)(x.numpy()))
    d3 = torch.from_numpy(A.derivative(fn, order=3)(x.numpy()))
    # (absolute next to the zeros of the second and third derivatives: a few ulp of 1 there)
    tol = {"rtol": 1e-14, "atol": 1e-15}
    torch.testing.assert_close(f.vmap(f.hessian(fn))(x), d2, **tol)
    torch.testing.assert_close(f.vmap(f.grad(f.grad(fn)))(x), d2, **tol)
    torch.testing.assert_close(torch.einsum("iii->i", f.jacfwd(f.jacrev(fn))(x)), d2, **tol)
    torch.testing.assert_close(f.vmap(f.grad(f.grad(f.grad(fn))))(x), d3, **tol)
    torch.testing.assert_close(f.vmap(f.jacrev(f.jacrev(f.jacrev(fn))))(x), d3, **tol)
    torch.testing.assert_close(f.vmap(f.jacfwd(f.grad(f.grad(fn))))(x), d3, **tol)


def test_torch_forward_over_forward_is_torchs_known_zero() -> None:
    """torch 2.13: forward-over-forward through any autograd.Function gives 0
    (pytorch/pytorch#197867), for kaun's as for a one-line Function; docs/conventions.md says so
    and points to hessian / grad of grad. This fails once torch fixes it: then say so there."""

    class Square(torch.autograd.Function):
        @staticmethod
        def forward(x: torch.Tensor) -> torch.Tensor:
            return x * x

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)
            ctx.save_for_forward(*inputs)

        @staticmethod
        def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
            return 2 * ctx.saved_tensors[0] * g

        @staticmethod
        def jvp(ctx: Any, t: torch.Tensor) -> torch.Tensor:
            return 2 * ctx.saved_tensors[0] * t

    def second(fn: Any, x: torch.Tensor) -> torch.Tensor:
        one = torch.ones_like(x)
        return torch.func.jvp(lambda t: torch.func.jvp(fn, (t,), (one,))[1], (x,), (one,))[1]

    x = torch.tensor([0.5, 1.5], dtype=torch.float64)
    assert torch.equal(second(Square.apply, x), torch.zeros_like(x))  # torch's, not kaun's
    assert torch.equal(second(A.gelu, x), torch.zeros_like(x))


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_jax_nested_grad_jvp_hessian_and_jet(name: str) -> None:
    fn = getattr(A, name)
    x = jnp.linspace(-9.0, 9.0, 37) + 0.01
    d = [None] + [np.asarray(A.derivative(fn, order=k)(x)) for k in (1, 2, 3)]
    # the formulas of A.derivative on JAX arrays, through grad, jvp and hessian (XLA compiles each
    # program on its own and may contract a product into an fma differently: within an ulp or two)
    same = {"rtol": 1e-15, "atol": 1e-300}
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.grad(jax.grad(fn)))(x)), d[2], **same)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(jax.grad(jax.grad(jax.grad(fn)))))(x)), d[3],
                               **same)
    np.testing.assert_allclose(np.asarray(jax.vmap(jax.hessian(fn))(x)), d[2], **same)
    one = jnp.ones_like(x)
    jj = jax.jvp(lambda t: jax.jvp(fn, (t,), (one,))[1], (x,), (one,))[1]
    np.testing.assert_allclose(np.asarray(jj), d[2], **same)
    # Taylor mode: jet's terms for x(t) = x + t are f', f'', f''' (jet scales by factorials in
    # float64 through exp(lgamma): within a few ulp), and the fourth order is autodiff's
    y, terms = jet.jet(fn, (x,), ((one, 0 * one, 0 * one, 0 * one),))
    assert np.array_equal(np.asarray(y), np.asarray(fn(x)))
    for k in (1, 2, 3):
        np.testing.assert_allclose(np.asarray(terms[k - 1]), d[k], rtol=4e-16 * 8, atol=1e-300)
    d4 = jax.vmap(jax.grad(jax.grad(jax.grad(jax.grad(fn)))))(x)
    np.testing.assert_allclose(np.asarray(terms[3]), np.asarray(d4), rtol=1e-13, atol=1e-14)
    # under jit, and in float32
    y32, t32 = jax.jit(lambda v: jet.jet(fn, (v,), ((jnp.ones_like(v), jnp.zeros_like(v)),)))(
        x.astype(jnp.float32))
    np.testing.assert_allclose(np.asarray(t32[1]), np.asarray(A.derivative(fn, order=2)(x.astype(jnp.float32))),
                               rtol=4e-6, atol=1e-30)


def test_jet_on_glu_and_prelu() -> None:
    x = jnp.linspace(-3.0, 3.0, 8)
    one = jnp.ones_like(x)
    for fn in (lambda v: A.glu(v), lambda v: A.prelu(v, 0.25), lambda v: A.prelu(v, jnp.full((8,), 0.3))):
        y, (t1, t2) = jet.jet(fn, (x,), ((one, 0 * one),))
        j1 = jax.jvp(fn, (x,), (one,))[1]
        j2 = jax.jvp(lambda v, fn=fn: jax.jvp(fn, (v,), (one,))[1], (x,), (one,))[1]
        np.testing.assert_allclose(np.asarray(t1), np.asarray(j1), rtol=1e-15)
        np.testing.assert_allclose(np.asarray(t2), np.asarray(j2), rtol=1e-13, atol=1e-15)


# -- conventions at kinks, limits, NaN ----------------------------------------------------------

# (function, hyper-parameters, x, f''(x), f'''(x)): the outer piece at each breakpoint
KINKS = [
    ("relu", {}, 0.0, 0.0, 0.0), ("relu6", {}, 6.0, 0.0, 0.0), ("leaky_relu", {}, 0.0, 0.0, 0.0),
    ("hard_tanh", {}, 1.0, 0.0, 0.0), ("hard_sigmoid", {}, -3.0, 0.0, 0.0),
    ("sparse_sigmoid", {}, 1.0, 0.0, 0.0), ("squareplus", {"b": 0.0}, 0.0, 0.0, 0.0),
    ("elu", {"alpha": 2.5}, 0.0, 2.5, 2.5), ("celu", {"alpha": 2.0}, 0.0, 0.5, 0.25),
    ("selu", {}, 0.0, 1.7580993408473766, 1.7580993408473766),
    ("hard_silu", {}, -3.0, 0.0, 0.0), ("hard_silu", {}, 3.0, 0.0, 0.0), ("hard_silu", {}, 0.0, 1 / 3, 0.0),
    ("sparse_plus", {}, -1.0, 0.0, 0.0), ("sparse_plus", {}, 1.0, 0.0, 0.0), ("sparse_plus", {}, 0.0, 0.5, 0.0),
    ("softsign", {}, 0.0, 2.0, 6.0),
]


@pytest.mark.parametrize("name,kw,x0,d2,d3", KINKS, ids=[f"{k[0]}@{k[2]}" for k in KINKS])
def test_kinks_follow_the_conventions(name: str, kw: dict[str, float], x0: float, d2: float, d3: float) -> None:
    fn = getattr(A, name)
    x = np.array([x0])
    for order, want in ((2, d2), (3, d3)):
        assert A.derivative(fn, order=order)(x, **kw)[0] == pytest.approx(want, rel=1e-15)
    g = _grads(fn, torch.tensor(x), 3, **kw)
    assert [float(v.detach()) for v in g[1:]] == pytest.approx([d2, d3], rel=1e-15)

    def f(v: Any) -> Any:
        return fn(v, **kw)

    assert float(jax.grad(jax.grad(f))(x0)) == pytest.approx(d2, rel=1e-15)
    assert float(jax.grad(jax.grad(jax.grad(f)))(x0)) == pytest.approx(d3, rel=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_finite_where_the_truth_is_and_the_limits(name: str, dtype: str) -> None:
    """Every finite input of every magnitude gives a finite f'' and f''' (each is finite for every
    function); +-inf gives the limit (0 for all but the piecewise-linear ones' constant 0 too);
    NaN gives NaN for the smooth functions."""
    fn = getattr(A, name)
    x = grid(dtype, 4096)
    xf = x.astype(np.float64)
    for order in (2, 3):
        for be in ("numpy", "torch", "jax"):
            xb: Any = jnp.asarray(x) if be == "jax" else x if be == "numpy" else to_torch(x, dtype)
            y = A.derivative(fn, order=order)(xb)
            yf = (y.detach().to(torch.float64).numpy() if isinstance(y, torch.Tensor)
                  else np.asarray(y).astype(np.float64))
            fin = np.isfinite(xf)
            assert np.isfinite(yf[fin]).all(), (be, order, xf[fin][~np.isfinite(yf[fin])][:5])
            assert (yf[np.isinf(xf)] == 0).all(), (be, order)
            if ENTRIES[name].smooth:
                assert np.isnan(yf[np.isnan(xf)]).all(), (be, order)


def test_derivative_orders_are_checked() -> None:
    for bad in (0, 4, -1, 2.0, True, "2"):
        with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
            A.derivative(A.gelu, order=bad)  # type: ignore[arg-type]
    for fn in (A.glu, A.prelu):
        with pytest.raises(ValueError, match="order 2 is for the elementwise functions"):
            A.derivative(fn, order=2)
    assert A.derivative(A.gelu, order=2).__name__ == "d2_gelu"


def test_the_second_derivative_of_gelu_is_exact_at_its_zero() -> None:
    """gelu'' = phi(x) (2 - x^2) is 0 at sqrt(2): computed as (sqrt2 - |x|)(sqrt2 + |x|), the
    result keeps its relative precision next to the zero (a plain 2 - x^2 would not)."""
    import mpmath

    with mpmath.workdps(50):
        for x in (np.nextafter(math.sqrt(2.0), 2.0), np.nextafter(math.sqrt(2.0), 0.0)):
            xm = mpmath.mpf(float(x))
            want = mpmath.npdf(xm) * (2 - xm * xm)
            got = A.derivative(A.gelu, order=2)(np.array([x]))[0]
            assert abs(got - float(want)) <= 4 * abs(math.ulp(float(want)))
            gt = A.derivative(A.gelu, order=2)(torch.tensor([float(x)], dtype=torch.float64))[0]
            assert abs(float(gt) - float(want)) <= 4 * abs(math.ulp(float(want)))


@pytest.mark.parametrize("name", SMOOTH)
def test_the_fourth_order_is_autodiff_of_the_third(name: str) -> None:
    """Past the formulas: A.derivative(f, order=3) of a tensor that requires grad is
    differentiable (torch's autograd of the third's formula), as JAX's grad of it is."""
    fn = getattr(A, name)
    # (not at 0, where the fourth order of mish and softsign is autodiff's convention at a kink of
    # a clip or |x| in the third's formula, which torch and JAX do not share)
    x = (torch.linspace(-6.0, 6.0, 25, dtype=torch.float64) + 0.01).requires_grad_()
    d3 = A.derivative(fn, order=3)(x)
    (d4,) = torch.autograd.grad(d3.sum(), x)
    want = jax.vmap(jax.grad(jax.grad(jax.grad(jax.grad(fn)))))(jnp.asarray(x.detach().numpy()))
    np.testing.assert_allclose(d4.numpy(), np.asarray(want), rtol=1e-11, atol=1e-13)
    x2 = x.detach().clone().requires_grad_()
    y = fn(x2)
    for _ in range(3):
        (y,) = torch.autograd.grad(y.sum(), x2, create_graph=True)
    (g4,) = torch.autograd.grad(y.sum(), x2)
    np.testing.assert_allclose(g4.numpy(), np.asarray(want), rtol=1e-11, atol=1e-13)
