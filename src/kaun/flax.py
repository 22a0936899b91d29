"""kaun.activation in Flax NNX: a learnable PReLU, ``kaun.flax.PReLU``.

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
from kaun.activation._params import prelu_alpha_shape, prelu_layer

__all__ = ["PReLU"]


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
