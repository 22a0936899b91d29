"""Two spirals: a small MLP trained with several kaun activations, in PyTorch and in JAX + optax.

    python examples/spirals.py            # 7 activations, 500 full-batch Adam steps each
    python examples/spirals.py --quick    # fewer steps and activations (the test runs this)

The data are made here: two interleaved spirals of 2-d points with Gaussian noise, split into a
training and a test set. The network is 2 -> 32 -> 32 -> 1 with the same kaun activation after
both hidden layers, trained on the logistic loss; the script prints the test accuracy of each
activation in each framework. The activations are the kaun functions themselves: called on
torch tensors in ``forward`` (autograd through kaun's derivatives) and on jax arrays inside
``jax.jit`` (kaun's custom_jvp). If optax is not installed, the JAX part uses plain Adam written
out below and says so.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import kaun.activation as A

ACTIVATIONS = ["relu", "leaky_relu", "gelu", "silu", "mish", "squareplus", "tanh"]
QUICK = ["relu", "gelu", "mish"]
HIDDEN = 32
LR = 2e-2


def make_spirals(n: int = 300, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test): ``n`` points per spiral, half of them for testing."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n)) * 3.0 * math.pi  # denser near the centre
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3.0 * math.pi)
    x = np.concatenate([arm, -arm]) + noise * rng.standard_normal((2 * n, 2)) / 3.0
    y = np.concatenate([np.zeros(n), np.ones(n)])
    order = rng.permutation(2 * n)
    x, y = x[order].astype(np.float32), y[order].astype(np.float32)
    half = n
    return x[:half], y[:half], x[half:], y[half:]


def init_params(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal weights, zero biases, for 2 -> 32 -> 32 -> 1 (the same start for both)."""
    rng = np.random.default_rng(seed)
    sizes = [2, HIDDEN, HIDDEN, 1]
    return [
        ((rng.standard_normal((a, b)) * math.sqrt(2.0 / a)).astype(np.float32),
         np.zeros(b, np.float32))
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


# ---- PyTorch -----------------------------------------------------------------------------------


def train_torch(act: Callable[..., Any], data: tuple[np.ndarray, ...], steps: int) -> float:
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)  # small matrices: threads cost more than they give
    xtr, ytr, xte, yte = (torch.from_numpy(a) for a in data)
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for wb in init_params(1) for p in wb]

    def net(x: Any) -> Any:
        w1, b1, w2, b2, w3, b3 = params
        h = act(x @ w1 + b1)
        h = act(h @ w2 + b2)
        return (h @ w3 + b3)[:, 0]

    opt = torch.optim.Adam(params, lr=LR)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(net(xtr), ytr)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float(((net(xte) > 0).float() == yte).float().mean())


# ---- JAX + optax -------------------------------------------------------------------------------


def _adam(lr: float) -> Any:
    """optax.adam, or the same update written out when optax is missing."""
    try:
        optax: Any = importlib.import_module("optax")
    except ImportError:
        optax = None
    if optax is not None:
        return optax.adam(lr), optax.apply_updates
    import jax
    import jax.numpy as jnp

    b1, b2, eps = 0.9, 0.999, 1e-8

    class Adam:
        def init(self, params: Any) -> Any:
            zeros = jax.tree.map(jnp.zeros_like, params)
            return (jnp.zeros((), jnp.int32), zeros, zeros)

        def update(self, grads: Any, state: Any, params: Any = None) -> Any:
            t, m, v = state
            t = t + 1
            m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
            v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
            c1, c2 = 1 - b1**t, 1 - b2**t
            upd = jax.tree.map(lambda m, v: -lr * (m / c1) / (jnp.sqrt(v / c2) + eps), m, v)
            return upd, (t, m, v)

    def apply_updates(p: Any, u: Any) -> Any:
        return jax.tree.map(lambda a, b: a + b, p, u)

    return Adam(), apply_updates


def train_jax(act: Callable[..., Any], data: tuple[np.ndarray, ...], steps: int) -> float:
    import jax
    import jax.numpy as jnp

    xtr, ytr, xte, yte = (jnp.asarray(a) for a in data)
    params = [(jnp.asarray(w), jnp.asarray(b)) for w, b in init_params(1)]
    opt, apply_updates = _adam(LR)

    def net(params: Any, x: Any) -> Any:
        (w1, b1), (w2, b2), (w3, b3) = params
        h = act(x @ w1 + b1)
        h = act(h @ w2 + b2)
        return (h @ w3 + b3)[:, 0]

    def loss(params: Any) -> Any:
        z = net(params, xtr)
        # the logistic loss, stably, with kaun's own log_sigmoid: -log sigmoid(+-z)
        return -jnp.mean(ytr * A.log_sigmoid(z) + (1 - ytr) * A.log_sigmoid(-z))

    @jax.jit
    def train(params: Any) -> Any:
        def step(_: Any, carry: Any) -> Any:
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return apply_updates(params, updates), state

        return jax.lax.fori_loop(0, steps, step, (params, opt.init(params)))[0]

    params = train(params)
    return float(jnp.mean((net(params, xte) > 0) == (yte > 0.5)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps and activations")
    p.add_argument("--steps", type=int, help="Adam steps per run (default 500, quick 150)")
    p.add_argument("--activations", nargs="+", metavar="NAME", help="kaun functions to compare")
    args = p.parse_args(argv)
    steps = args.steps or (150 if args.quick else 500)
    names = args.activations or (QUICK if args.quick else ACTIVATIONS)
    data = make_spirals()
    if importlib.util.find_spec("optax") is not None:
        jax_label = "jax+optax"
    else:
        jax_label = "jax (plain Adam: optax is not installed)"
    print(f"two spirals: {len(data[0])} training and {len(data[2])} test points; "
          f"MLP 2-{HIDDEN}-{HIDDEN}-1, Adam lr={LR}, {steps} full-batch steps")
    print(f"{'activation':<12}  {'torch':>6}  {'jax':>6}  seconds   ({jax_label})")
    for name in names:
        act = A.get(name)
        t0 = time.perf_counter()
        acc_t = train_torch(act, data, steps)
        acc_j = train_jax(functools.partial(act), data, steps)
        dt = time.perf_counter() - t0
        print(f"{name:<12}  {acc_t:6.3f}  {acc_j:6.3f}  {dt:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
