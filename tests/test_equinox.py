"""Equinox: kaun functions inside eqx.Modules under eqx.filter_jit, eqx.filter_grad and jax.vmap,
``eqx.nn.MLP(activation=...)``, and the learnable ``kaun.equinox.PReLU`` (an array leaf, static
fields; training with optax, eqx.tree_serialise_leaves, jax.export)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from activations import X, act, close, vjp_ref

import kaun.activation as A
import kaun.equinox as KE
from kaun._core import ENTRIES


class Scaled(eqx.Module):
    """f(scale * x): a learnable scale (ones) in front of a kaun function (a static field)."""

    scale: jax.Array
    f: Callable[[Any], Any] = eqx.field(static=True)

    def __init__(self, name: str, n: int) -> None:
        self.scale = jnp.ones((n,), jnp.float32)
        self.f = act(name)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.f(self.scale * x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", list(ENTRIES))
def test_function_in_an_eqx_module_under_jit_grad_vmap(name: str) -> None:
    model = Scaled(name, X.size)
    x = jnp.asarray(X)
    eager = np.asarray(model(x))
    np.testing.assert_array_equal(eager, np.asarray(act(name)(x)))
    assert close(eqx.filter_jit(lambda m, v: m(v))(model, x), eager, 4)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m, v: m(v).sum()))(model, x)
    g = np.ones(eager.shape, np.float32)
    assert close(grads.scale, vjp_ref(name, X, g) * X, 16)
    xs = jnp.stack([x, -x, 0.5 * x])
    batched = jax.vmap(model)(xs)
    for i in range(3):
        assert close(batched[i], model(xs[i]), 4)


def test_eqx_nn_mlp_with_kaun_activations() -> None:
    xs = jnp.ones((4, 2), jnp.float32)
    for activation in (A.mish, functools.partial(A.leaky_relu, negative_slope=0.2), A.gelu):
        mlp = eqx.nn.MLP(2, 1, 16, 2, activation=activation, key=jax.random.key(0))
        y = jax.vmap(mlp)(xs)
        assert y.shape == (4, 1)
        grads = eqx.filter_grad(lambda m, v: jax.vmap(m)(v).sum())(mlp, xs)
        leaves = jax.tree.leaves(eqx.filter(grads, eqx.is_inexact_array))
        assert leaves and all(np.all(np.isfinite(np.asarray(v))) for v in leaves)


# ---- kaun.equinox.PReLU ---------------------------------------------------------------------------


def test_prelu_leaf_and_values() -> None:
    m = KE.PReLU(num_parameters=3)
    (alpha,) = jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))
    assert alpha.shape == (3,)
    np.testing.assert_array_equal(np.asarray(alpha), [0.25, 0.25, 0.25])
    x = jnp.array([[-4.0, 2.0], [2.0, -8.0], [1.0, -1.0]], jnp.float32)  # (channels, length)
    np.testing.assert_array_equal(np.asarray(m(x)), [[-1.0, 2.0], [2.0, -2.0], [1.0, -0.25]])
    assert m(x.astype(jnp.float16)).dtype == jnp.float16
    last = KE.PReLU(num_parameters=2, channel_axis=-1)(x)
    np.testing.assert_array_equal(np.asarray(last), [[-1.0, 2.0], [2.0, -2.0], [1.0, -0.25]])
    scalar = KE.PReLU(init=0.5)
    np.testing.assert_array_equal(np.asarray(scalar(jnp.array([-2.0, 3.0]))), [-1.0, 3.0])


def test_prelu_gradient_of_alpha_is_kauns() -> None:
    m = KE.PReLU(num_parameters=2)
    x = jnp.array([[-4.0, 2.0, -8.0], [1.0, -1.0, -0.5]], jnp.float32)  # channels first
    g = eqx.filter_grad(lambda m: m(x).sum())(m)
    np.testing.assert_array_equal(np.asarray(g.alpha), [-12.0, -1.5])


class Net(eqx.Module):
    l1: eqx.nn.Linear
    act: KE.PReLU
    l2: eqx.nn.Linear
    l3: eqx.nn.Linear

    def __init__(self, key: jax.Array) -> None:
        k1, k2, k3 = jax.random.split(key, 3)
        self.l1 = eqx.nn.Linear(2, 32, key=k1)
        self.act = KE.PReLU(num_parameters=32)
        self.l2 = eqx.nn.Linear(32, 32, key=k2)
        self.l3 = eqx.nn.Linear(32, 1, key=k3)

    def __call__(self, x: jax.Array) -> jax.Array:
        h = self.act(A.gelu(self.l1(x)))
        return self.l3(A.squareplus(self.l2(h), b=1.0))


def test_training_serialise_and_jax_export(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xt = jnp.asarray(rng.uniform(-2, 2, size=(256, 2)).astype(np.float32))
    yt = jnp.sin(2 * xt[:, :1]) * xt[:, 1:] + 0.5 * xt[:, :1]
    model = Net(jax.random.key(0))
    opt = optax.adam(1e-2)
    state = opt.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model: Net, state: Any) -> tuple[Net, Any, jax.Array]:
        loss, grads = eqx.filter_value_and_grad(
            lambda m: ((jax.vmap(m)(xt) - yt) ** 2).mean())(model)
        updates, state = opt.update(grads, state, model)
        return eqx.apply_updates(model, updates), state, loss

    losses = []
    for _ in range(150):
        model, state, loss = step(model, state)
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])
    assert float(jnp.abs(model.act.alpha - 0.25).max()) > 1e-3  # alpha learned

    path = tmp_path / "net.eqx"
    eqx.tree_serialise_leaves(path, model)
    loaded = eqx.tree_deserialise_leaves(path, Net(jax.random.key(1)))
    want = np.asarray(jax.vmap(model)(xt[:8]))
    np.testing.assert_array_equal(np.asarray(jax.vmap(loaded)(xt[:8])), want)

    params, static = eqx.partition(model, eqx.is_inexact_array)

    def apply(params: Any, x: jax.Array) -> jax.Array:
        return jax.vmap(eqx.combine(params, static))(x)

    leaves, tree = jax.tree.flatten(params)
    exp = jax.export.export(jax.jit(lambda ls, x: apply(jax.tree.unflatten(tree, ls), x)))(
        leaves, jax.ShapeDtypeStruct((8, 2), jnp.float32))
    back = jax.export.deserialize(exp.serialize())
    np.testing.assert_array_equal(np.asarray(back.call(leaves, xt[:8])), want)


def test_prelu_errors_name_the_module() -> None:
    with pytest.raises(TypeError, match="kaun.equinox.PReLU: channel_axis must be an int"):
        KE.PReLU(channel_axis=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kaun.equinox.PReLU: num_parameters must be >= 1"):
        KE.PReLU(num_parameters=-1)
    with pytest.raises(ValueError, match="kaun.equinox.PReLU: the input has 4 channels on axis 0"):
        KE.PReLU(num_parameters=3)(jnp.ones((4, 2)))


@pytest.mark.parametrize("activation", ["swiglu", "geglu", "geglu_approx", "reglu"])
def test_gated_mlp_forward_grad_jit(activation: str) -> None:
    """kaun.equinox.GatedMLP: down(act(gate_up(x))) of its eqx.nn.Linear layers, one example
    (jax.vmap over a batch), under eqx.filter_jit and eqx.filter_grad."""
    model = KE.GatedMLP(8, 16, activation, key=jax.random.key(0))
    assert model.gate_up.weight.shape == (32, 8) and model.down.weight.shape == (8, 16)
    assert model.gate_up.bias is None and model.down.bias is None
    x = jax.random.normal(jax.random.key(1), (5, 8), jnp.float32)
    y = jax.vmap(model)(x)
    assert y.shape == (5, 8)
    want = A.get(activation)(x @ model.gate_up.weight.T) @ model.down.weight.T
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), rtol=1e-5, atol=1e-6)
    assert close(eqx.filter_jit(lambda m, v: jax.vmap(m)(v))(model, x), np.asarray(y), 4)
    grads = eqx.filter_jit(eqx.filter_grad(lambda m, v: (jax.vmap(m)(v) ** 2).sum()))(model, x)
    for g in (grads.gate_up.weight, grads.down.weight):
        assert np.all(np.isfinite(np.asarray(g))) and np.abs(np.asarray(g)).max() > 0
    gx = jax.grad(lambda v: model(v).sum())(x[0])
    assert gx.shape == (8,) and np.all(np.isfinite(np.asarray(gx)))


def test_gated_mlp_options_and_errors() -> None:
    model = KE.GatedMLP(4, 6, "gegluapprox", use_bias=True, key=jax.random.key(0))
    assert model.activation == "geglu_approx" and model.gate_up.bias is not None
    assert model.gate_up.bias.shape == (12,)
    with pytest.raises(ValueError, match="kaun.equinox.GatedMLP: activation must be a gated"):
        KE.GatedMLP(4, 6, "relu", key=jax.random.key(0))
    with pytest.raises(ValueError, match="kaun.equinox.GatedMLP: dim must be a positive int"):
        KE.GatedMLP(True, 6, key=jax.random.key(0))  # type: ignore[arg-type]
