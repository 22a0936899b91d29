"""kaun.activation in Flax NNX: a learnable PReLU, ``kaun.flax.PReLU``, and the gated MLP block,
``kaun.flax.GatedMLP``.

The functions themselves are plain callables on JAX arrays: pass them where Flax takes an
activation (``nnx.Sequential(nnx.Linear(2, 64, rngs=rngs), A.gelu, ...)``, a module's
``__call__``), with hyper-parameters bound by ``functools.partial``; they run under ``nnx.jit``,
``nnx.grad``, ``nnx.vmap`` and the JAX transformations like any JAX function. This module imports
flax (and jax); ``import kaun.activation`` does not.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

import kaun.activation as A
from kaun.activation._params import gated_mlp, prelu_alpha_shape, prelu_layer

__all__ = ["GatedMLP", "PReLU"]


class PReLU(nnx.Module):
    """``kaun.activation.prelu`` with a learnable alpha: ``max(0, x) + alpha * min(0, x)``.

    Args:
        num_parameters: 1 (one alpha for every element) or the number of channels (one alpha
            per channel, broadcast along ``channel_axis``).
        init: the initial value of alpha (default 0.25, as ``kaun.nn.PReLU`` and torch;
            ``nnx.PReLU`` starts at 0.01).
        channel_axis: the axis of the input that holds the channels (default -1: Flax's
            channels-last layout). Only used when ``num_parameters > 1``.
        dtype: the dtype of the computation (default: the input's; alpha is cast to it).
        param_dtype: the dtype of alpha (default float32).

    ``alpha`` is an ``nnx.Param`` of shape ``(num_parameters,)``: it is in ``nnx.state(model,
    nnx.Param)``, goes through ``nnx.split`` / ``nnx.merge`` and is updated by
    ``nnx.Optimizer``; its gradient is kaun's (``min(0, x)``, summed over the broadcast axes).
    """

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        channel_axis: int = -1,
        *,
        dtype: Any = None,
        param_dtype: Any = jnp.float32,
    ) -> None:
        n, value, axis = prelu_layer("kaun.flax.PReLU", num_parameters, init, channel_axis)
        self.num_parameters = n
        self.channel_axis = axis
        self.dtype = dtype
        self.alpha = nnx.Param(jnp.full((n,), value, dtype=param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.dtype is not None:
            x = jnp.asarray(x, self.dtype)
        shape = prelu_alpha_shape("kaun.flax.PReLU", self.num_parameters, self.channel_axis,
                                  tuple(x.shape))
        alpha = jnp.asarray(self.alpha[...], x.dtype).reshape(shape)
        out: jax.Array = A.prelu(x, alpha)
        return out


class GatedMLP(nnx.Module):
    """The gated MLP block of today's language models, as ``kaun.nn.GatedMLP``:
    ``down(act(gate_up(x)))``.

    Args:
        dim: the input's (and the output's) last dimension.
        hidden: the width of the gated layer.
        activation: the gated function, "swiglu" (default), "geglu", "geglu_approx", "reglu" or
            "glu" (kaun's names and aliases).
        use_bias: biases in both projections (default False, as LLaMA).
        rngs: the ``nnx.Rngs`` of the two ``nnx.Linear`` layers.
        dtype, param_dtype: passed to both ``nnx.Linear`` layers.

    ``gate_up`` is one ``nnx.Linear(dim, 2 * hidden)`` holding both projections, the up half
    first and the gate second (the split form's order, ``first * act(second)``); ``down`` an
    ``nnx.Linear(hidden, dim)``. The activation is kaun's function on the last axis, with kaun's
    gradient.
    """

    def __init__(self, dim: int, hidden: int, activation: str = "swiglu", *,
                 use_bias: bool = False, rngs: nnx.Rngs, dtype: Any = None,
                 param_dtype: Any = jnp.float32) -> None:
        (dim, hidden), name = gated_mlp("kaun.flax.GatedMLP", {"dim": dim, "hidden": hidden},
                                        activation)
        self.activation = name
        kw: dict[str, Any] = {"use_bias": use_bias, "dtype": dtype, "param_dtype": param_dtype,
                              "rngs": rngs}
        self.gate_up = nnx.Linear(dim, 2 * hidden, **kw)
        self.down = nnx.Linear(hidden, dim, **kw)

    def __call__(self, x: jax.Array) -> jax.Array:
        out: jax.Array = self.down(A.get(self.activation)(self.gate_up(x), axis=-1))
        return out
