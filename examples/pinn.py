"""A physics-informed network in float64: 1-D Poisson u'' = f, with kaun activations, in PyTorch and JAX.

    python examples/pinn.py            # 6 activations, Adam then L-BFGS
    python examples/pinn.py --quick    # fewer steps, tanh only (the test runs this)

The problem: u''(x) = f(x) on [-1, 1] with u(-1) = u(1) = 0 and f(x) = -(k pi)^2 sin(k pi x), whose
solution is u*(x) = sin(k pi x) (k = 1 unless --k says otherwise). The network is
u(x) = (1 - x^2) N(x), which meets the boundary conditions by construction, with N an MLP
1 -> 32 -> 32 -> 1 in float64 with the same kaun activation after both hidden layers. It is trained
on the physics alone, the mean of ((u'' - f) / (k pi)^2)^2 at 64 collocation points, and never sees
a value of u*.

The loss holds u'', so each training step differentiates the activation three times: twice for
u'' (``torch.autograd.grad(..., create_graph=True)`` twice; ``jax.grad(jax.grad(u))`` under
``jax.vmap``), once more for the gradient in the weights. Both frameworks start from the same
weights and points. Training is Adam, then L-BFGS (``torch.optim.LBFGS`` and ``optax.lbfgs``, both
with a strong-Wolfe line search). Without optax, the JAX part runs the plain Adam written out in
spirals.py for all its steps, and says so.

Each row gives the loss and the largest error |u - u*| on 1001 points of [-1, 1], before -> after
training, then the largest error of the trained u'' relative to max |f| (rel|u_xx-f|) and the
seconds taken (JAX's include compiling, most of them in the quick run).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from spirals import _adam  # examples/ is on the path of a script run from it: the same Adam

import kaun.activation as A

# smooth kaun functions: a network of a piecewise-linear one (relu, hard_tanh, ...) has u'' = 0
SMOOTH = ["tanh", "sigmoid", "silu", "swish", "gelu", "gelu_approx", "mish", "softplus", "squareplus",
          "log_sigmoid"]
ACTIVATIONS = ["tanh", "sigmoid", "silu", "gelu", "softplus", "mish"]
QUICK = ["tanh"]
HIDDEN = 32
LR = 1e-2
N_COLLOCATION = 64  # the midpoints of 64 equal cells of [-1, 1]
N_TEST = 1001

Result = tuple[float, float, float, float, float]  # loss, max|u - u*| before; loss, max|u - u*|, rel|u''-f| after


def exact(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, f = u''): u = sin(k pi x)."""
    w = k * math.pi
    u = np.sin(w * x)
    return u, -(w * w) * u


def collocation() -> np.ndarray:
    return -1.0 + (2.0 * np.arange(N_COLLOCATION) + 1.0) / N_COLLOCATION


def init_params(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Glorot-normal weights, zero biases, for 1 -> 32 -> 32 -> 1 (the same start for both)."""
    rng = np.random.default_rng(seed)
    sizes = [1, HIDDEN, HIDDEN, 1]
    return [(rng.standard_normal((a, b)) * math.sqrt(2.0 / (a + b)), np.zeros(b))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def errors(u: np.ndarray, uxx: np.ndarray, k: int) -> tuple[float, float]:
    """max |u - u*| and max |u'' - f| / max |f| on the test grid."""
    ue, f = exact(np.linspace(-1.0, 1.0, N_TEST), k)
    return float(np.max(np.abs(u - ue))), float(np.max(np.abs(uxx - f)) / np.max(np.abs(f)))


# ---- PyTorch -----------------------------------------------------------------------------------


def train_torch(act: Callable[..., Any], k: int, adam: int, lbfgs: int) -> Result:
    import torch

    torch.set_num_threads(1)  # small matrices: threads cost more than they give
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for wb in init_params(1) for p in wb]
    scale = (k * math.pi) ** 2
    xc = torch.from_numpy(collocation())[:, None].requires_grad_(True)
    fc = torch.from_numpy(exact(collocation(), k)[1])[:, None]
    xt = torch.linspace(-1.0, 1.0, N_TEST, dtype=torch.float64)[:, None].requires_grad_(True)

    def u(x: Any) -> Any:
        w1, b1, w2, b2, w3, b3 = params
        h = act(x @ w1 + b1)
        h = act(h @ w2 + b2)
        return (1.0 - x * x) * (h @ w3 + b3)

    def u_uxx(x: Any, create_graph: bool = True) -> tuple[Any, Any]:
        """u and u'' at the points x (n, 1): u_i depends on x_i alone, so the gradient of the sum is u'."""
        y = u(x)
        (dy,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        (d2y,) = torch.autograd.grad(dy.sum(), x, create_graph=create_graph)
        return y, d2y

    def loss_fn() -> Any:
        return torch.mean(((u_uxx(xc)[1] - fc) / scale) ** 2)

    def test() -> tuple[float, float]:
        ut, uxx = u_uxx(xt, create_graph=False)
        return errors(ut.detach().numpy()[:, 0], uxx.numpy()[:, 0], k)

    loss0, err0 = loss_fn().item(), test()[0]
    opt = torch.optim.Adam(params, lr=LR)
    for _ in range(adam):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    if lbfgs:
        # one step() runs all the iterations; max_eval is a cap it does not reach (~1.1 per iteration)
        lb = torch.optim.LBFGS(params, lr=1.0, max_iter=lbfgs, max_eval=2 * lbfgs, history_size=50,
                               tolerance_grad=0.0, tolerance_change=0.0, line_search_fn="strong_wolfe")

        def closure() -> Any:
            lb.zero_grad()
            loss = loss_fn()
            loss.backward()
            return loss

        lb.step(closure)
    return (loss0, err0, loss_fn().item(), *test())


# ---- JAX (+ optax) ------------------------------------------------------------------------------


def train_jax(act: Callable[..., Any], k: int, adam: int, lbfgs: int) -> Result:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    params = [(jnp.asarray(a), jnp.asarray(b)) for a, b in init_params(1)]
    scale = (k * math.pi) ** 2
    xc = jnp.asarray(collocation())
    fc = jnp.asarray(exact(collocation(), k)[1])
    xt = jnp.linspace(-1.0, 1.0, N_TEST)

    def u(params: Any, x: Any) -> Any:
        """u at one point x (a scalar); vmap maps it over many."""
        (w1, b1), (w2, b2), (w3, b3) = params
        h = act(x * w1[0] + b1)
        h = act(h @ w2 + b2)
        return (1.0 - x * x) * (h @ w3[:, 0] + b3[0])

    u_many = jax.vmap(u, (None, 0))
    uxx_many = jax.vmap(jax.grad(jax.grad(u, 1), 1), (None, 0))

    def loss(params: Any) -> Any:
        return jnp.mean(((uxx_many(params, xc) - fc) / scale) ** 2)

    @jax.jit
    def u_uxx(params: Any) -> Any:
        return loss(params), u_many(params, xt), uxx_many(params, xt)

    def test(params: Any) -> tuple[float, float, float]:
        value, ut, uxx = u_uxx(params)
        return (float(value), *errors(np.asarray(ut), np.asarray(uxx), k))

    loss0, err0, _ = test(params)  # untrained
    opt, apply_updates = _adam(LR)
    optax: Any = None
    if importlib.util.find_spec("optax") is not None:
        import optax
    else:
        adam, lbfgs = adam + lbfgs, 0

    @jax.jit
    def train(params: Any) -> Any:
        def step(_: Any, carry: Any) -> Any:
            params, state = carry
            grads = jax.grad(loss)(params)
            updates, state = opt.update(grads, state, params)
            return apply_updates(params, updates), state

        params = jax.lax.fori_loop(0, adam, step, (params, opt.init(params)))[0]
        if lbfgs:
            lb = optax.lbfgs(memory_size=50)  # with optax's zoom line search (strong Wolfe)
            value_and_grad = optax.value_and_grad_from_state(loss)

            def lstep(_: Any, carry: Any) -> Any:
                params, state = carry
                value, grads = value_and_grad(params, state=state)
                updates, state = lb.update(grads, state, params, value=value, grad=grads, value_fn=loss)
                return optax.apply_updates(params, updates), state

            params = jax.lax.fori_loop(0, lbfgs, lstep, (params, lb.init(params)))[0]
        return params

    return (loss0, err0, *test(train(params)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer steps, tanh only")
    p.add_argument("--adam", type=int, help="Adam steps (default 1000, quick 200)")
    p.add_argument("--lbfgs", type=int, help="L-BFGS iterations after Adam (default 500, quick 100)")
    p.add_argument("--k", type=int, default=1, help="the solution is sin(k pi x) (default 1)")
    p.add_argument("--activations", "--activation", nargs="+", metavar="NAME", choices=SMOOTH,
                   help=f"kaun functions to compare, among {', '.join(SMOOTH)}")
    args = p.parse_args(argv)
    adam = args.adam if args.adam is not None else (200 if args.quick else 1000)
    lbfgs = args.lbfgs if args.lbfgs is not None else (100 if args.quick else 500)
    names = args.activations or (QUICK if args.quick else ACTIVATIONS)
    if importlib.util.find_spec("optax") is not None:
        jax_label = "jax+optax"
    else:
        jax_label = f"jax (plain Adam for all {adam + lbfgs} steps: optax is not installed)"
    kpi = "pi" if args.k == 1 else f"{args.k} pi"
    print(f"Poisson u'' = f on [-1, 1], u* = sin({kpi} x): u = (1 - x^2) MLP 1-{HIDDEN}-{HIDDEN}-1(x) "
          f"in float64, {N_COLLOCATION} collocation points, Adam lr={LR} x {adam}, then L-BFGS x {lbfgs}")
    print(f"{'activation':<12}  {'framework':<9}  {'loss':>7}  {'max|u-u*|':>9}  ->  {'loss':>7}  {'max|u-u*|':>9}  "
          f"{'rel|u_xx-f|':>11}  seconds   ({jax_label})")
    for name in names:
        act = A.get(name)
        for label, train in (("torch", train_torch), ("jax", train_jax)):
            t0 = time.perf_counter()
            loss0, err0, loss, err, err_xx = train(act, args.k, adam, lbfgs)
            dt = time.perf_counter() - t0
            print(f"{name:<12}  {label:<9}  {loss0:7.1e}  {err0:9.1e}  ->  {loss:7.1e}  {err:9.1e}  {err_xx:11.1e}  "
                  f"{dt:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
