"""Derivatives through torch autograd, torch.func, torch.compile and JAX, and A.derivative."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import kaun.activation as A

ELEMENTWISE = [n for n in A.names() if n not in ("prelu", "glu", "swish", "hard_swish")]
SMOOTH = ["sigmoid", "tanh", "softplus", "log_sigmoid", "softsign", "gelu", "gelu_approx",
          "silu", "mish", "squareplus", "elu", "selu", "celu"]
# Points away from every kink, both signs, some in the tails.
POINTS = np.array([-7.3, -3.4, -2.2, -1.3, -0.7, -0.2, 0.3, 0.6, 1.4, 2.3, 3.6, 6.1, 8.2])


def f(name: str) -> Any:
    return getattr(A, name)


@pytest.mark.parametrize("name", ELEMENTWISE + ["prelu", "glu"])
def test_torch_gradcheck_and_gradgradcheck(name: str) -> None:
    x = torch.tensor(POINTS, dtype=torch.float64, requires_grad=True)
    if name == "prelu":
        a = torch.tensor([0.2, 0.3], dtype=torch.float64, requires_grad=True)
        xs = x[:12].reshape(6, 2).detach().requires_grad_()
        assert torch.autograd.gradcheck(lambda x, a: A.prelu(x, a), (xs, a))
        assert torch.autograd.gradgradcheck(lambda x, a: A.prelu(x, a), (xs, a))
        return
    if name == "glu":
        xs = x[:12].reshape(3, 4).detach().requires_grad_()
        for inp, ax in ((xs, 1), (xs.T.detach().requires_grad_(), 0)):
            assert torch.autograd.gradcheck(lambda x, ax=ax: A.glu(x, axis=ax), (inp,))
            assert torch.autograd.gradgradcheck(lambda x, ax=ax: A.glu(x, axis=ax), (inp,))
        return
    fn = f(name)
    assert torch.autograd.gradcheck(fn, (x,))
    if name in ("relu", "relu6", "hard_tanh", "leaky_relu", "hard_sigmoid", "sparse_sigmoid"):
        return  # piecewise constant derivative: the second derivative is 0 without a graph
    assert torch.autograd.gradgradcheck(fn, (x,))


@pytest.mark.parametrize("name", ELEMENTWISE + ["prelu", "glu"])
def test_jax_check_grads_order_2(name: str) -> None:
    x = jnp.asarray(POINTS[:12], dtype=jnp.float64)
    if name == "prelu":
        a = jnp.asarray([0.2, 0.3])
        check_grads(lambda x, a: A.prelu(x, a), (x.reshape(6, 2), a), order=2, modes=("fwd", "rev"))
        return
    if name == "glu":
        check_grads(lambda x: A.glu(x, axis=0), (x.reshape(4, 3),), order=2, modes=("fwd", "rev"))
        return
    check_grads(f(name), (x,), order=2, modes=("fwd", "rev"))


# The derivative at each breakpoint (CONVENTIONS "Derivatives").
KINKS = [
    ("relu", 0.0, {}, 0.0),
    ("leaky_relu", 0.0, {}, 0.01),
    ("leaky_relu", 0.0, {"negative_slope": 0.2}, 0.2),
    ("elu", 0.0, {"alpha": 0.5}, 0.5),
    ("selu", 0.0, {}, 1.0507009873554805 * 1.6732632423543772),
    ("celu", 0.0, {"alpha": 2.0}, 1.0),
    ("relu6", 0.0, {}, 0.0),
    ("relu6", 6.0, {}, 0.0),
    ("hard_tanh", -1.0, {}, 0.0),
    ("hard_tanh", 1.0, {}, 0.0),
    ("hard_sigmoid", -3.0, {}, 0.0),
    ("hard_sigmoid", 3.0, {}, 0.0),
    ("hard_silu", -3.0, {}, 0.0),
    ("hard_silu", 3.0, {}, 1.0),
    ("sparse_sigmoid", -1.0, {}, 0.0),
    ("sparse_sigmoid", 1.0, {}, 0.0),
    ("sparse_plus", -1.0, {}, 0.0),
    ("sparse_plus", 1.0, {}, 1.0),
    ("squareplus", 0.0, {"b": 0.0}, 0.0),
]


@pytest.mark.parametrize("name,x0,kw,want", KINKS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_derivative_at_kinks(name: str, x0: float, kw: dict[str, float], want: float, dtype: str) -> None:
    fn = f(name)
    xt = torch.tensor([x0], dtype=getattr(torch, dtype), requires_grad=True)
    (gt,) = torch.autograd.grad(fn(xt, **kw).sum(), xt)
    gj = jax.grad(lambda v: fn(v, **kw))(jnp.asarray(x0, dtype=dtype))
    gn = A.derivative(fn)(np.array([x0], dtype=dtype), **kw)
    for g in (float(gt[0]), float(gj), float(gn[0])):
        assert g == pytest.approx(want, rel=1e-6)
    xj = jnp.asarray([x0], dtype=dtype)
    assert float(jax.jit(jax.vmap(jax.grad(lambda v: fn(v, **kw))))(xj)[0]) == pytest.approx(want, rel=1e-6)


def test_prelu_kink_and_alpha_gradient() -> None:
    x = torch.tensor([[-2.0, 0.0, 3.0], [-1.0, -4.0, 5.0]], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([[0.1], [0.2]], dtype=torch.float64, requires_grad=True)
    gx, ga = torch.autograd.grad(A.prelu(x, a).sum(), (x, a))
    assert gx.tolist() == [[0.1, 0.1, 1.0], [0.2, 0.2, 1.0]]
    assert ga.shape == a.shape and ga.flatten().tolist() == [-2.0, -5.0]
    gjx, gja = jax.grad(lambda x, a: A.prelu(x, a).sum(), argnums=(0, 1))(
        jnp.asarray(x.detach().numpy()), jnp.asarray(a.detach().numpy())
    )
    np.testing.assert_array_equal(np.asarray(gjx), gx.numpy())
    np.testing.assert_array_equal(np.asarray(gja), ga.numpy())
    dx, da = A.derivative(A.prelu)(x.detach().numpy(), a.detach().numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(dx, gx.numpy())
    np.testing.assert_array_equal(da, ga.numpy())


TORCH_EQUIV = {
    "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu6": F.relu6,
    "leaky_relu": F.leaky_relu, "hard_tanh": F.hardtanh, "hard_sigmoid": F.hardsigmoid,
    "elu": F.elu, "selu": F.selu, "celu": F.celu, "gelu": F.gelu,
    "gelu_approx": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu, "mish": F.mish,
    "softplus": F.softplus, "softsign": F.softsign, "log_sigmoid": F.logsigmoid,
    "hard_silu": F.hardswish,
}


@pytest.mark.parametrize("name", sorted(TORCH_EQUIV))
def test_derivative_equals_torch_autograd(name: str) -> None:
    """On a grid with every kink, the derivative equals torch's own (where torch is accurate)."""
    grid = np.concatenate([np.linspace(-8, 8, 161), [-3, -1, 0, 1, 3, 6]])
    x = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
    (ours,) = torch.autograd.grad(f(name)(x).sum(), x)
    (theirs,) = torch.autograd.grad(TORCH_EQUIV[name](x).sum(), x)
    # torch's float64 hardsigmoid gradient uses a float32 1/6 (peers.md): compare loosely there.
    tol = 1e-7 if name == "hard_sigmoid" else 1e-12
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=tol, atol=tol)


def _extremes(dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        big, tiny = 3.3895e38, 1e-38
    else:
        fi = np.finfo(dtype)
        big, tiny = float(fi.max), float(fi.tiny)
    vals = [0.0, tiny, 1e-3, 0.5, 1.0, 3.0, 6.0, 9.0, 17.5, 20.0, 30.0, 89.0, 100.0, 147.9,
            256.0, 710.0, 1e4, 1e19, 1e20, 1e30, 1e154, 1e200, big]
    v = np.array([s * a for a in vals for s in (1.0, -1.0) if a <= big], dtype=np.float64)
    return v


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_no_nan_gradient_where_finite(name: str, dtype: str) -> None:
    vals = _extremes(dtype)
    xt = torch.tensor(vals).to(getattr(torch, dtype)).requires_grad_()
    (gt,) = torch.autograd.grad(f(name)(xt).sum(), xt)
    assert torch.isfinite(gt).all(), (name, dtype, vals[~torch.isfinite(gt).numpy()])
    xj = jnp.asarray(vals).astype(dtype)
    gj = jax.vmap(jax.grad(f(name)))(xj)
    assert np.isfinite(np.asarray(gj, dtype=np.float64)).all(), (name, dtype)
    if name in SMOOTH:  # second order too
        gg = jax.vmap(jax.grad(jax.grad(f(name))))(xj)
        assert np.isfinite(np.asarray(gg, dtype=np.float64)).all(), (name, dtype)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "softplus", "log_sigmoid", "softsign", "gelu",
                                  "gelu_approx", "silu", "mish", "squareplus"])
def test_nan_gives_nan_derivative(name: str) -> None:
    x = torch.tensor([float("nan")], dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(f(name)(x).sum(), x)
    assert torch.isnan(g).all()
    assert np.isnan(float(jax.grad(f(name))(jnp.float32(np.nan))))
    assert np.isnan(A.derivative(f(name))(np.array([np.nan]))).all()


@pytest.mark.parametrize("name", ELEMENTWISE + ["prelu", "glu"])
def test_backward_saves_one_input_sized_tensor(name: str) -> None:
    x = torch.randn(4096, dtype=torch.float32, requires_grad=True)
    saved: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = A.prelu(x, torch.tensor([0.2])) if name == "prelu" else f(name)(x)
    big = [t for t in saved if t.numel() >= x.numel() // 2]
    assert sum(t.numel() for t in big) <= x.numel(), (name, [t.shape for t in saved])
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_torch_func_transforms(name: str) -> None:
    x = torch.tensor(POINTS, dtype=torch.float64)
    fn = f(name)
    per = torch.func.vmap(torch.func.grad(fn))(x)
    d = torch.from_numpy(A.derivative(fn)(POINTS))
    torch.testing.assert_close(per, d)
    _, tangent = torch.func.jvp(fn, (x,), (torch.ones_like(x),))
    torch.testing.assert_close(tangent, d)


@pytest.mark.parametrize("name", ELEMENTWISE + ["prelu", "glu"])
# dynamo builds an autograd.Function of its own under a DeprecationWarning (torch 2.13)
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_torch_compile_fullgraph(name: str) -> None:
    torch._dynamo.reset()
    x = torch.tensor(POINTS[:12], dtype=torch.float32).reshape(3, 4).requires_grad_()
    if name == "prelu":
        a = torch.tensor([0.25], requires_grad=True)

        def fn(x: torch.Tensor) -> torch.Tensor:
            return A.prelu(x, a)
    else:
        fn = f(name)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    y = compiled(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    xe = x.detach().requires_grad_()
    ye = fn(xe)
    (ge,) = torch.autograd.grad(ye.sum(), xe)
    torch.testing.assert_close(y, ye)
    torch.testing.assert_close(g, ge)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_explicit_derivative_against_finite_differences(name: str) -> None:
    x = POINTS
    h = 1e-6
    fd = (f(name)(x + h) - f(name)(x - h)) / (2 * h)
    np.testing.assert_allclose(A.derivative(f(name))(x), fd, rtol=1e-6, atol=1e-8)


def test_glu_vjp_matches_autograd() -> None:
    x = np.random.default_rng(0).normal(size=(3, 4))
    g = np.random.default_rng(1).normal(size=(3, 2))
    xt = torch.tensor(x, requires_grad=True)
    (want,) = torch.autograd.grad(A.glu(xt), xt, torch.tensor(g))
    np.testing.assert_allclose(A.derivative(A.glu)(x, g), want.numpy(), rtol=1e-14)
    g0 = np.ones((3, 4))[:, :4]
    x0 = np.random.default_rng(2).normal(size=(6, 4))
    xt0 = torch.tensor(x0, requires_grad=True)
    (want0,) = torch.autograd.grad(A.glu(xt0, axis=0), xt0, torch.tensor(g0))
    np.testing.assert_allclose(A.derivative(A.glu)(x0, g0, axis=0), want0.numpy(), rtol=1e-14)
