"""Flax NNX: kaun functions inside nnx.Modules under nnx.jit, nnx.grad and nnx.vmap, and the
learnable ``kaun.flax.PReLU`` (an nnx.Param: state, nnx.split / nnx.merge, nnx.Optimizer,
checkpointing as a pure dict, jax.export)."""

from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from activations import X, act, close, vjp_ref
from flax import nnx

import kaun.activation as A
import kaun.flax as KF
from kaun._core import ENTRIES


class Scaled(nnx.Module):
    """f(scale * x): a learnable scale (ones) in front of a kaun function."""

    def __init__(self, name: str, n: int) -> None:
        self.scale = nnx.Param(jnp.ones((n,), jnp.float32))
        self.f = act(name)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.f(self.scale[...] * x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(ENTRIES))
def test_function_in_an_nnx_module_under_jit_grad_vmap(name: str) -> None:
    model = Scaled(name, X.size)
    x = jnp.asarray(X)
    eager = np.asarray(model(x))
    np.testing.assert_array_equal(eager, np.asarray(act(name)(x)))
    jitted = nnx.jit(lambda m, v: m(v))(model, x)
    assert close(jitted, eager, 4)
    # d/dscale of sum(f(scale * x)) at scale = 1: x * f'(x) (the vjp for glu and prelu)
    grads = nnx.grad(lambda m: m(x).sum())(model)
    g = np.ones(eager.shape, np.float32)
    assert close(grads["scale"][...], vjp_ref(name, X, g) * X, 16)
    xs = jnp.stack([x, -x, 0.5 * x])
    batched = nnx.vmap(lambda m, v: m(v), in_axes=(None, 0))(model, xs)
    for i in range(3):
        assert close(batched[i], model(xs[i]), 4)


def test_in_nnx_sequential() -> None:
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Linear(2, 16, rngs=rngs), A.silu,
                           nnx.Linear(16, 16, rngs=rngs), functools.partial(A.leaky_relu, negative_slope=0.2),
                           KF.PReLU(16), nnx.Linear(16, 1, rngs=rngs))
    x = jnp.ones((4, 2), jnp.float32)
    y = nnx.jit(lambda m, v: m(v))(model, x)
    assert y.shape == (4, 1)
    grads = nnx.grad(lambda m: (m(x) ** 2).mean())(model)
    assert all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(grads))


# ---- kaun.flax.PReLU ------------------------------------------------------------------------------


def test_prelu_parameter_and_values() -> None:
    m = KF.PReLU(num_parameters=3)
    (alpha,) = jax.tree.leaves(nnx.state(m, nnx.Param))
    assert alpha.shape == (3,) and alpha.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(alpha), [0.25, 0.25, 0.25])
    x = jnp.array([[-4.0, 2.0, -8.0], [1.0, -1.0, 0.0]], jnp.float32)  # channels last
    np.testing.assert_array_equal(np.asarray(m(x)), [[-1.0, 2.0, -2.0], [1.0, -0.25, 0.0]])
    half = m(x.astype(jnp.float16))
    assert half.dtype == jnp.float16  # alpha cast to the input's dtype
    assert KF.PReLU(init=0.1, param_dtype=jnp.float64).alpha[...].dtype == jnp.float64
    assert KF.PReLU(dtype=jnp.float16)(x).dtype == jnp.float16
    first = KF.PReLU(num_parameters=2, channel_axis=0)(x[:2, :2].T)
    np.testing.assert_array_equal(np.asarray(first), [[-1.0, 1.0], [2.0, -0.25]])


def test_prelu_gradient_of_alpha_is_kauns() -> None:
    m = KF.PReLU(num_parameters=3)
    x = jnp.array([[-4.0, 2.0, -8.0], [1.0, -1.0, -0.5]], jnp.float32)
    g = nnx.grad(lambda m: m(x).sum())(m)
    np.testing.assert_array_equal(np.asarray(g["alpha"][...]), [-4.0, -1.0, -8.5])


def test_prelu_split_merge_and_checkpoint() -> None:
    m = KF.PReLU(num_parameters=4, init=0.5)
    graphdef, state = nnx.split(m)
    again = nnx.merge(graphdef, state)
    x = jnp.linspace(-2.0, 2.0, 8, dtype=jnp.float32).reshape(2, 4)
    np.testing.assert_array_equal(np.asarray(again(x)), np.asarray(m(x)))
    # checkpoint as a pure dict through msgpack, into a fresh module of another init
    blob = flax.serialization.msgpack_serialize(nnx.to_pure_dict(state))
    fresh = KF.PReLU(num_parameters=4, init=0.0)
    gd2, st2 = nnx.split(fresh)
    nnx.replace_by_pure_dict(st2, flax.serialization.msgpack_restore(blob))
    restored = nnx.merge(gd2, st2)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(m(x)))


class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.l1 = nnx.Linear(2, 32, rngs=rngs)
        self.act = KF.PReLU(num_parameters=32)
        self.l2 = nnx.Linear(32, 32, rngs=rngs)
        self.l3 = nnx.Linear(32, 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.act(A.gelu(self.l1(x)))
        return self.l3(A.squareplus(self.l2(h), b=1.0))  # type: ignore[no-any-return]


def test_training_with_nnx_optimizer_and_jax_export() -> None:
    rng = np.random.default_rng(0)
    xt = jnp.asarray(rng.uniform(-2, 2, size=(256, 2)).astype(np.float32))
    yt = jnp.sin(2 * xt[:, :1]) * xt[:, 1:] + 0.5 * xt[:, :1]
    model = MLP(nnx.Rngs(0))
    opt = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model: MLP, opt: nnx.Optimizer[MLP]) -> jax.Array:
        loss, grads = nnx.value_and_grad(lambda m: ((m(xt) - yt) ** 2).mean())(model)
        opt.update(model, grads)
        return loss

    losses = [float(step(model, opt)) for _ in range(150)]
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    assert float(jnp.abs(model.act.alpha[...] - 0.25).max()) > 1e-3  # alpha learned

    # the trained model as a serialized XLA program (jax.export), run again after a round trip
    # (its parameters as a pure dict: jax.export serializes plain pytrees)
    graphdef, state = nnx.split(model)
    params = nnx.to_pure_dict(state)

    def apply(params: Any, x: jax.Array) -> jax.Array:
        st = jax.tree.map(lambda v: v, state)
        nnx.replace_by_pure_dict(st, params)
        return nnx.merge(graphdef, st)(x)  # type: ignore[no-any-return]

    exp = jax.export.export(jax.jit(apply))(params, jax.ShapeDtypeStruct((8, 2), jnp.float32))
    back = jax.export.deserialize(exp.serialize())
    np.testing.assert_array_equal(np.asarray(back.call(params, xt[:8])), np.asarray(model(xt[:8])))


def test_prelu_errors_name_the_module() -> None:
    with pytest.raises(TypeError, match="kaun.flax.PReLU: num_parameters must be an int"):
        KF.PReLU(num_parameters=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kaun.flax.PReLU: num_parameters must be >= 1"):
        KF.PReLU(num_parameters=0)
    with pytest.raises(ValueError, match="kaun.flax.PReLU: init must be finite"):
        KF.PReLU(init=float("inf"))
    with pytest.raises(ValueError, match="kaun.flax.PReLU: the input has 2 channels on axis -1"):
        KF.PReLU(num_parameters=3)(jnp.ones((4, 2)))


@pytest.mark.parametrize("activation", ["swiglu", "geglu", "geglu_approx", "reglu"])
def test_gated_mlp_forward_grad_jit(activation: str) -> None:
    """kaun.flax.GatedMLP: down(act(gate_up(x))) of its nnx.Linear layers, under nnx.jit and
    nnx.grad (the gradient reaches both kernels)."""
    model = KF.GatedMLP(8, 16, activation, rngs=nnx.Rngs(0))
    assert model.gate_up.kernel[...].shape == (8, 32) and model.down.kernel[...].shape == (16, 8)
    assert model.gate_up.bias is None and model.down.bias is None
    x = jax.random.normal(jax.random.key(1), (4, 3, 8), jnp.float32)
    y = model(x)
    assert y.shape == (4, 3, 8)
    want = A.get(activation)(x @ model.gate_up.kernel[...]) @ model.down.kernel[...]
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert close(nnx.jit(lambda m, v: m(v))(model, x), np.asarray(y), 4)
    grads = nnx.jit(nnx.grad(lambda m, v: (m(v) ** 2).sum()))(model, x)
    for g in (grads["gate_up"]["kernel"][...], grads["down"]["kernel"][...]):
        assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0
    gx = jax.grad(lambda v: model(v).sum())(x)  # and to the input
    assert gx.shape == x.shape and np.all(np.isfinite(np.asarray(gx)))


def test_gated_mlp_options_and_errors() -> None:
    model = KF.GatedMLP(4, 6, "SwiGLU", use_bias=True, rngs=nnx.Rngs(0))
    assert model.activation == "swiglu" and model.gate_up.bias[...].shape == (12,)
    with pytest.raises(ValueError, match="kaun.flax.GatedMLP: activation must be a gated"):
        KF.GatedMLP(4, 6, "gelu", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kaun.flax.GatedMLP: hidden must be a positive int"):
        KF.GatedMLP(4, 0, rngs=nnx.Rngs(0))
