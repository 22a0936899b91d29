"""kaun.activation in Equinox: a learnable PReLU, ``kaun.equinox.PReLU``, and the gated MLP
block, ``kaun.equinox.GatedMLP``.

The functions themselves are plain callables on JAX arrays: pass them where Equinox takes an
activation (``eqx.nn.MLP(..., activation=A.mish)``, a module's ``__call__``), with
hyper-parameters bound by ``functools.partial``; they run under ``eqx.filter_jit``,
``eqx.filter_grad``, ``jax.vmap`` and the JAX transformations like any JAX function. This module
imports equinox (and jax); ``import kaun.activation`` does not.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

import kaun.activation as A
from kaun.activation._params import gated_mlp, prelu_alpha_shape, prelu_layer

__all__ = ["GatedMLP", "PReLU"]


class PReLU(eqx.Module):
    """``kaun.activation.prelu`` with a learnable alpha: ``max(0, x) + alpha * min(0, x)``.

    Args:
        num_parameters: 1 (one alpha for every element) or the number of channels (one alpha
            per channel, broadcast along ``channel_axis``).
        init: the initial value of alpha (default 0.25, as ``eqx.nn.PReLU`` and torch).
        channel_axis: the axis of the input that holds the channels (default 0: Equinox's
            layers take one example, channels first, and are ``jax.vmap``-ed over a batch).
            Only used when ``num_parameters > 1``.
        dtype: the dtype of alpha (default: JAX's default float, float32 or with x64 float64).

    ``alpha`` is a JAX array leaf of shape ``(num_parameters,)`` (the trainable part of the
    module: ``eqx.filter(model, eqx.is_inexact_array)``); ``num_parameters`` and
    ``channel_axis`` are static fields. It is cast to the input's dtype in ``__call__``; its
    gradient is kaun's (``min(0, x)``, summed over the broadcast axes).
    """

    alpha: jax.Array
    num_parameters: int = eqx.field(static=True)
    channel_axis: int = eqx.field(static=True)

    def __init__(self, num_parameters: int = 1, init: float = 0.25, channel_axis: int = 0, *,
                 dtype: Any = None) -> None:
        n, value, axis = prelu_layer("kaun.equinox.PReLU", num_parameters, init, channel_axis)
        self.num_parameters = n
        self.channel_axis = axis
        self.alpha = jnp.full((n,), value, dtype=dtype if dtype is not None else jnp.asarray(0.0).dtype)

    def __call__(self, x: jax.Array, *, key: Any = None) -> jax.Array:
        """``key`` is accepted and unused (the convention of Equinox's layers)."""
        shape = prelu_alpha_shape("kaun.equinox.PReLU", self.num_parameters, self.channel_axis,
                                  tuple(x.shape))
        out: jax.Array = A.prelu(x, self.alpha.astype(x.dtype).reshape(shape))
        return out


class GatedMLP(eqx.Module):
    """The gated MLP block of today's language models, as ``kaun.nn.GatedMLP``:
    ``down(act(gate_up(x)))``.

    Args:
        dim: the input's (and the output's) last dimension.
        hidden: the width of the gated layer.
        activation: the gated function, "swiglu" (default), "geglu", "geglu_approx", "reglu" or
            "glu" (kaun's names and aliases).
        use_bias: biases in both projections (default False, as LLaMA).
        key: the ``jax.random`` key of the two ``eqx.nn.Linear`` layers (keyword only).
        dtype: the dtype of their weights (default: JAX's default float).

    ``gate_up`` is one ``eqx.nn.Linear(dim, 2 * hidden)`` holding both projections, the up half
    first and the gate second (the split form's order, ``first * act(second)``); ``down`` an
    ``eqx.nn.Linear(hidden, dim)``. As Equinox's layers it takes one example, shape ``(dim,)``,
    and is ``jax.vmap``-ed over a batch; ``activation`` is a static field.
    """

    gate_up: eqx.nn.Linear
    down: eqx.nn.Linear
    activation: str = eqx.field(static=True)

    def __init__(self, dim: int, hidden: int, activation: str = "swiglu", *,
                 use_bias: bool = False, key: Any, dtype: Any = None) -> None:
        (dim, hidden), name = gated_mlp("kaun.equinox.GatedMLP", {"dim": dim, "hidden": hidden},
                                        activation)
        k1, k2 = jax.random.split(key)
        self.activation = name
        self.gate_up = eqx.nn.Linear(dim, 2 * hidden, use_bias=use_bias, key=k1, dtype=dtype)
        self.down = eqx.nn.Linear(hidden, dim, use_bias=use_bias, key=k2, dtype=dtype)

    def __call__(self, x: jax.Array, *, key: Any = None) -> jax.Array:
        """``key`` is accepted and unused (the convention of Equinox's layers)."""
        out: jax.Array = self.down(A.get(self.activation)(self.gate_up(x), axis=-1))
        return out
