"""Every context a user calls an activation in: one matrix, every function x every context.

Each cell calls a function (with a non-default hyper-parameter where it has one) in one context
and checks the result against the plain eager call on the same input: bitwise where the context
promises the same computation (modes, threads, layouts, hooks), within the documented bound
where it computes by another path (torch.compile, torch.export, torch.func and torch.jit.trace
take the formula in torch operations; JAX transformations rebatch XLA's computation); gradients
where the context differentiates, and the input left untouched. The cell ids read
``context-function``; ``pytest tests/test_contexts.py -q -rA`` lists the matrix.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.utils.checkpoint import checkpoint

import kaun.activation as A
import kaun.nn as KN
from kaun._core import ENTRIES

# -- the functions, each with a non-default hyper-parameter where it has one -----------------------

KW: dict[str, dict[str, Any]] = {
    "leaky_relu": {"negative_slope": 0.2}, "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
    "elu": {"alpha": 1.5}, "celu": {"alpha": 0.7}, "squareplus": {"b": 2.5}, "glu": {"axis": 0},
}
NAMES = list(ENTRIES)  # the 23 distinct functions (swish and hard_swish are silu and hard_silu)
SMOOTH = {n for n, e in ENTRIES.items() if e.smooth}
F32 = np.finfo(np.float32)


def _values(n: int = 64) -> np.ndarray:
    """A float32 (n/8, 8) input: both signs, both tails, the kinks (0, +-1, +-3, 6)."""
    v = np.concatenate([np.linspace(-9.0, 9.0, n - 16),
                        [-40.0, -20.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 20.0, 40.0,
                         -1e-3, 1e-3, -7.5, 7.5]])
    return v.astype(np.float32).reshape(-1, 8)


def call(name: str, x: Any, alpha: Any = None) -> Any:
    """name's function on x, with its hyper-parameters; prelu with a per-column alpha."""
    f = getattr(A, name)
    if name == "prelu":
        return f(x, alpha if alpha is not None else _alpha(x))
    return f(x, **KW.get(name, {}))


def _alpha(x: Any) -> Any:
    a = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    if isinstance(x, torch.Tensor):
        return torch.from_numpy(a).to(x.dtype)
    if isinstance(x, jax.Array) or "jax" in type(x).__module__:
        return jnp.asarray(a, dtype=x.dtype)
    return a.astype(x.dtype)


def bits(a: Any) -> np.ndarray:
    a = np.asarray(a.detach() if isinstance(a, torch.Tensor) else a)
    out = a.astype(np.float32).view(np.uint32).copy()
    out[np.isnan(a.astype(np.float32))] = 0
    return out


def close(a: Any, b: Any, ulps: float, floor: float = 1e-30) -> bool:
    """|a - b| <= ulps float32 ulps of max(|b|, floor) (NaN where both are)."""
    a = np.asarray(a.detach() if isinstance(a, torch.Tensor) else a, np.float64)
    b = np.asarray(b.detach() if isinstance(b, torch.Tensor) else b, np.float64)
    tol = ulps * np.spacing(np.maximum(np.abs(b), floor).astype(np.float32)).astype(np.float64)
    return bool(np.all((np.abs(a - b) <= tol) | (np.isnan(a) & np.isnan(b))))


def grad_ref(name: str, x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """dL/dx for the cotangent g, by kaun's explicit derivatives (NumPy)."""
    d = A.derivative(getattr(A, name))
    if name == "prelu":
        return d(x, _alpha(x), g)[0]
    if name == "glu":
        return d(x, g, axis=0)
    return g * d(x, **KW.get(name, {}))


def _t(v: np.ndarray, **kw: Any) -> torch.Tensor:
    return torch.from_numpy(v.copy()).requires_grad_(kw.get("requires_grad", False))


# -- torch: modes, threads, layouts, hooks ------------------------------------------------------------


def _eager(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = _t(_values())
    return x, call(name, x)


TORCH_MODES: dict[str, Callable[[str], None]] = {}


def torch_mode(f: Callable[[str], None]) -> Callable[[str], None]:
    TORCH_MODES[f.__name__] = f
    return f


@torch_mode
def no_grad(name: str) -> None:
    x, ref = _eager(name)
    with torch.no_grad():
        assert np.array_equal(bits(call(name, x.clone().requires_grad_())), bits(ref))


@torch_mode
def inference_mode(name: str) -> None:
    for shape in ((8, 8), (1 << 15, 8)):  # small, and past the size where paths change
        x = torch.randn(*shape) * 4
        ref = call(name, x)
        with torch.inference_mode():
            xi = x.clone()
            y = call(name, xi)
        assert np.array_equal(bits(y), bits(ref)) and torch.equal(xi, x)


@torch_mode
def enable_grad_in_no_grad(name: str) -> None:
    x, ref = _eager(name)
    with torch.no_grad(), torch.enable_grad():
        xr = x.clone().requires_grad_()
        y = call(name, xr)
        (gx,) = torch.autograd.grad(y, xr, torch.ones_like(y))
    assert np.array_equal(bits(y), bits(ref))
    assert close(gx, grad_ref(name, x.numpy(), np.ones(tuple(y.shape), np.float32)), 4)


@torch_mode
def autocast_bfloat16(name: str) -> None:
    x, ref = _eager(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = call(name, x)  # not an autocast op: float32 in, float32 out, the same bits
    assert y.dtype == torch.float32 and np.array_equal(bits(y), bits(ref))


@torch_mode
def autocast_float16(name: str) -> None:
    x, ref = _eager(name)
    with torch.autocast("cpu", dtype=torch.float16):
        y = call(name, x)
    assert y.dtype == torch.float32 and np.array_equal(bits(y), bits(ref))


@torch_mode
def checkpoint_nonreentrant(name: str) -> None:
    x, ref = _eager(name)
    xr = x.clone().requires_grad_()
    y = checkpoint(lambda t: call(name, t), xr, use_reentrant=False)
    g = torch.linspace(0.5, 1.5, y.numel()).reshape(y.shape)
    y.backward(g)
    assert np.array_equal(bits(y), bits(ref))
    assert close(xr.grad, grad_ref(name, x.numpy(), g.numpy()), 4)


@torch_mode
def anomaly_detection(name: str) -> None:
    x, ref = _eager(name)
    xr = x.clone().requires_grad_()
    with warnings.catch_warnings():  # torch's notice that the mode is on
        warnings.filterwarnings("ignore", "Anomaly Detection has been enabled", UserWarning)
        with torch.autograd.detect_anomaly():
            y = call(name, xr)
            y.sum().backward()
    assert np.array_equal(bits(y), bits(ref)) and torch.isfinite(xr.grad).all()


@torch_mode
def deterministic_algorithms(name: str) -> None:
    x, ref = _eager(name)
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        xr = x.clone().requires_grad_()
        y = call(name, xr)
        y.sum().backward()
    finally:
        torch.use_deterministic_algorithms(before)
    assert np.array_equal(bits(y), bits(ref))


@torch_mode
def one_thread(name: str) -> None:
    x = torch.randn(1 << 15, 8) * 4
    ref = call(name, x)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = call(name, x)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(bits(y), bits(ref))


@torch_mode
def channels_last_and_strided(name: str) -> None:
    x4 = torch.from_numpy(np.resize(_values(), (4, 8, 6, 6)).astype(np.float32))
    if name == "prelu":
        a = torch.linspace(-0.5, 0.5, 8).reshape(8, 1, 1)
        ref, y = A.prelu(x4, a), A.prelu(x4.contiguous(memory_format=torch.channels_last), a)
    else:
        ref, y = call(name, x4), call(name, x4.contiguous(memory_format=torch.channels_last))
        if name != "glu":
            assert y.is_contiguous(memory_format=torch.channels_last)
    assert np.array_equal(bits(y), bits(ref))
    x, _ = _eager(name)
    view = x.t()  # (8, 8): not contiguous
    assert np.array_equal(bits(call(name, view)), bits(call(name, view.contiguous())))


@torch_mode
def hook_on_output(name: str) -> None:
    x, ref = _eager(name)
    xr = x.clone().requires_grad_()
    y = call(name, xr)
    seen: list[torch.Tensor] = []
    y.register_hook(lambda g: seen.append(g) or g * 2.0)
    y.backward(torch.ones_like(y))
    assert len(seen) == 1 and np.array_equal(bits(y), bits(ref))
    assert close(xr.grad, grad_ref(name, x.numpy(), 2 * np.ones(tuple(y.shape), np.float32)), 4)


@torch_mode
def meta_device(name: str) -> None:
    """Forward, backward, double backward: shapes only, and no value read back (a .item(), a
    nonzero or a boolean index raises on meta)."""
    for dt in (torch.float32, torch.float16, torch.float64):
        x = torch.empty(64, 8, device="meta", dtype=dt, requires_grad=True)
        alpha = torch.empty(8, device="meta", dtype=dt, requires_grad=True) if name == "prelu" else None
        y = call(name, x, alpha)
        assert y.device.type == "meta" and y.dtype == dt
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        assert g.shape == x.shape and g.device.type == "meta"
        if name in SMOOTH:
            (g2,) = torch.autograd.grad(g.sum(), x)
            assert g2.shape == x.shape
        with torch.no_grad():
            assert call(name, x, alpha).device.type == "meta"


@torch_mode
def fake_tensor_mode(name: str) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.randn(64, 8, requires_grad=True)
        y = call(name, x)
        y.sum().backward()
        assert x.grad is not None and x.grad.shape == x.shape


@torch_mode
def jit_trace(name: str) -> None:
    """torch.jit.trace records the formula's torch operations (a kernel's call would be invisible
    to it): the traced function gives the eager values within the bound, saves and loads."""
    x, ref = _eager(name)
    alpha = _alpha(x)
    with warnings.catch_warnings():
        # torch 2.13 deprecates torch.jit; glu's halves (sizes) make torch's TracerWarning
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        f = torch.jit.trace(lambda t: call(name, t, alpha), x.clone())
        traced = torch.jit.trace(KN_model(name, alpha), x.clone())
        buf = io.BytesIO()
        torch.jit.save(traced, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
    assert close(f(x), ref, 8)
    assert close(loaded(x), ref, 8)


@torch_mode
def make_fx_real(name: str) -> None:
    """make_fx with real tensors (a TorchDispatchMode on plain tensors) records the formula's
    torch operations: a kernel's call would leave only its empty output in the graph. Each call
    twice (the second would take a fast path stored by the first), no grad and grad."""
    from torch.fx.experimental.proxy_tensor import make_fx

    x, ref = _eager(name)
    alpha = _alpha(x)
    for req in (False, True):
        xr = x.detach().clone().requires_grad_(req)
        for _ in range(2):
            g = make_fx(lambda t: call(name, t, alpha))(xr)
            ops = {n.target for n in g.graph.nodes if n.op == "call_function"}
            assert ops - {torch.ops.aten.empty_like.default, torch.ops.aten.detach.default}, ops
            assert close(g(x), ref, 8)


@torch_mode
def dispatch_mode(name: str) -> None:
    """A TorchDispatchMode of the user's (a logger, FlopCounterMode) sees the operations of every
    call, forward and backward, and the values are the eager ones within the bound."""
    from torch.utils._python_dispatch import TorchDispatchMode

    seen: list[Any] = []

    class Log(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x, ref = _eager(name)
    alpha = _alpha(x)
    for req in (False, True):
        xr = x.detach().clone().requires_grad_(req)
        for _ in range(2):
            seen.clear()
            with Log():
                y = call(name, xr, alpha)
            assert set(seen) - {torch.ops.aten.empty_like.default}, seen
            assert close(y.detach(), ref, 8)


def KN_model(name: str, alpha: Any = None) -> torch.nn.Module:
    class M(torch.nn.Module):
        def forward(self, t: torch.Tensor) -> torch.Tensor:
            return call(name, t, alpha)  # type: ignore[no-any-return]

    return M()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("context", list(TORCH_MODES))
def test_torch(context: str, name: str) -> None:
    TORCH_MODES[context](name)


# -- torch: tracing compilers, run once over every function ----------------------------------------


def _all(t: torch.Tensor) -> dict[str, torch.Tensor]:
    return {n: call(n, t) for n in NAMES}


@pytest.fixture(scope="module", params=["default", "fullgraph", "dynamic"])
def compiled(request: pytest.FixtureRequest) -> tuple[str, dict[str, torch.Tensor], torch.Tensor]:
    torch._dynamo.reset()
    kw = {"default": {}, "fullgraph": {"fullgraph": True}, "dynamic": {"dynamic": True}}[request.param]
    f = torch.compile(_all, **kw)
    x = _t(_values(), requires_grad=True)
    out = f(x)
    sum(v.sum() for v in out.values()).backward()  # type: ignore[union-attr]
    return request.param, out, x.grad  # type: ignore[return-value]


# dynamo builds an autograd.Function of its own under a DeprecationWarning (torch 2.13)
DYNAMO_FN = "ignore:.*should not be instantiated:DeprecationWarning"


@pytest.mark.filterwarnings(DYNAMO_FN)
@pytest.mark.parametrize("name", NAMES)
def test_torch_compile(compiled: tuple[str, dict[str, torch.Tensor], torch.Tensor], name: str) -> None:
    mode, out, _ = compiled
    x, ref = _eager(name)
    assert close(out[name], ref, 8), mode


@pytest.mark.filterwarnings(DYNAMO_FN)
def test_torch_compile_gradient(compiled: tuple[str, dict[str, torch.Tensor], torch.Tensor]) -> None:
    """One backward through every function's compiled graph: the sum of their gradients."""
    _, out, g = compiled
    x = _values()
    want = sum(grad_ref(n, x, np.ones(tuple(out[n].shape), np.float32)) for n in NAMES)
    assert close(g, want, 64)


class _AllModule(torch.nn.Module):
    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(call(n, t) for n in NAMES)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    x = _t(_values())
    ep = torch.export.export(_AllModule(), (x,))
    path = tmp_path_factory.mktemp("export") / "all.pt2"
    torch.export.save(ep, path)
    return ep.module()(x), torch.export.load(path).module()(x)


@pytest.mark.filterwarnings(DYNAMO_FN)
@pytest.mark.parametrize("name", NAMES)
def test_torch_export_run_save_load(exported: tuple[Any, Any], name: str) -> None:
    x, ref = _eager(name)
    i = NAMES.index(name)
    assert close(exported[0][i], ref, 8) and close(exported[1][i], ref, 8)


# -- torch.func --------------------------------------------------------------------------------------


def _scalar_in(name: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """A function of a (16,) tensor that torch.func can differentiate (glu over its halves)."""
    x = torch.linspace(-4, 4, 16)
    if name == "glu":
        return (lambda t: A.glu(t, axis=0)), x
    if name == "prelu":
        return (lambda t: A.prelu(t, torch.tensor(0.3))), x
    return (lambda t: call(name, t)), x


FUNC: dict[str, Callable[[str], None]] = {}


def func_context(f: Callable[[str], None]) -> Callable[[str], None]:
    FUNC[f.__name__] = f
    return f


def _dref(name: str, x: torch.Tensor) -> np.ndarray:
    """d/dx_i of sum(f(x)), explicitly."""
    f, _ = _scalar_in(name)
    xr = x.clone().requires_grad_()
    y = f(xr)
    (g,) = torch.autograd.grad(y.sum(), xr)
    return g.numpy()


def _d2ref(name: str, x: torch.Tensor) -> np.ndarray:
    """d/dx_j of sum_i d/dx_i sum(f(x)), by eager double backward."""
    f, _ = _scalar_in(name)
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(f(xr).sum(), xr, create_graph=True)
    if not g.requires_grad:  # piecewise linear: no second-order graph, the derivative is 0
        return np.zeros(tuple(x.shape), np.float32)
    (g2,) = torch.autograd.grad(g.sum(), xr)
    return g2.numpy()


@func_context
def func_grad(name: str) -> None:
    f, x = _scalar_in(name)
    g = torch.func.grad(lambda t: f(t).sum())(x)
    assert close(g, _dref(name, x), 16)


@func_context
def func_grad_of_grad(name: str) -> None:
    f, x = _scalar_in(name)
    gg = torch.func.grad(lambda t: torch.func.grad(lambda u: f(u).sum())(t).sum())(x)
    # (second derivatives: autodiff of the derivative formula, in another order of operations;
    # their accuracy is not yet a documented bound: within 16 ulps of 1)
    assert close(gg, _d2ref(name, x), 16, floor=1.0)


@func_context
def func_vmap(name: str) -> None:
    f, x = _scalar_in(name)
    xs = torch.stack([x, -x, x / 2])
    y = torch.func.vmap(f)(xs)
    for i in range(3):
        assert close(y[i], f(xs[i]), 8)


@func_context
def func_jacrev_jacfwd(name: str) -> None:
    f, x = _scalar_in(name)
    jr = torch.func.jacrev(f)(x)
    jf = torch.func.jacfwd(f)(x)
    assert close(jr.sum(0), _dref(name, x), 16) and close(jf, jr, 16)


@func_context
def func_hessian(name: str) -> None:
    f, x = _scalar_in(name)
    h = torch.func.hessian(lambda t: f(t).sum())(x)
    assert h.shape == (16, 16) and close(h.sum(0), _d2ref(name, x), 16, floor=1.0)


@func_context
def func_jvp(name: str) -> None:
    f, x = _scalar_in(name)
    y, t = torch.func.jvp(f, (x,), (torch.ones_like(x),))
    assert close(y, f(x), 8)
    if name != "glu":  # (glu's tangent mixes the halves)
        assert close(t, _dref(name, x), 16)


@func_context
def func_functional_call(name: str) -> None:
    mods = {n: getattr(KN, c) for n, c in KN_CLASSES.items()}
    layer = mods[name](**({"axis": -1} if name == "glu" else KW.get(name, {})))
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), layer)
    params = dict(model.named_parameters())
    x = torch.randn(4, 8)
    y = torch.func.functional_call(model, params, (x,))
    assert close(y, model(x), 8)
    g = torch.func.grad(lambda p: torch.func.functional_call(model, p, (x,)).sum())(params)
    assert set(g) == set(params)


KN_CLASSES = {
    "relu": "ReLU", "sigmoid": "Sigmoid", "tanh": "Tanh", "relu6": "ReLU6", "leaky_relu": "LeakyReLU",
    "hard_tanh": "HardTanh", "hard_sigmoid": "HardSigmoid", "prelu": "PReLU", "elu": "ELU",
    "selu": "SELU", "celu": "CELU", "gelu": "GELU", "gelu_approx": "GELUApprox", "silu": "SiLU",
    "hard_silu": "HardSiLU", "mish": "Mish", "softplus": "Softplus", "softsign": "Softsign",
    "squareplus": "Squareplus", "log_sigmoid": "LogSigmoid", "glu": "GLU",
    "sparse_plus": "SparsePlus", "sparse_sigmoid": "SparseSigmoid",
}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("context", list(FUNC))
def test_torch_func(context: str, name: str) -> None:
    FUNC[context](name)


# -- torch: threads and worker processes ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "autograd"])
def test_torch_eight_threads_share_an_input(mode: str) -> None:
    x = torch.randn(1 << 15, 8) * 4
    serial = {n: bits(call(n, x)) for n in NAMES}
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for n in NAMES:
            if mode == "no_grad":
                with torch.no_grad():
                    y = call(n, x)
            elif mode == "inference_mode":
                with torch.inference_mode():
                    y = call(n, x)
            else:
                xr = x.clone().requires_grad_()
                y = call(n, xr)
                y.sum().backward()
            if not np.array_equal(bits(y), serial[n]):
                errors.append(n)

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, sorted(set(errors))


DATALOADER = """
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
from test_contexts import NAMES, call, bits, _values

class Every(torch.utils.data.Dataset):
    def __len__(self):
        return 4
    def __getitem__(self, i):
        x = torch.from_numpy(np.resize(_values(), (1 << 12, 8)) * (i + 1))
        return {{n: call(n, x) for n in NAMES}}

ds = Every()
parent = [ds[i] for i in range(len(ds))]  # kaun used here first (its kernels, torch's threads)
got = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
bad = [(i, n) for i, item in enumerate(got) for n in NAMES
       if not np.array_equal(bits(item[n]), bits(parent[i][n]))]
print("ok" if not bad else bad)
"""


def test_torch_dataloader_workers_after_use_in_the_parent() -> None:
    """Worker processes forked after kaun ran in the parent (a torch user's process, in a fresh
    interpreter: JAX, loaded in this one, warns at any fork): each computes every function, the
    same bits as the parent."""
    code = DATALOADER.format(tests=os.path.dirname(__file__))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout[-2000:], r.stderr[-3000:])


# -- JAX ---------------------------------------------------------------------------------------------------


def _jx(name: str) -> tuple[Callable[[Any], Any], jax.Array]:
    x = jnp.asarray(_values()[:, :8].reshape(-1)[:16], dtype=jnp.float64)
    if name == "glu":
        return (lambda t: A.glu(t, axis=0)), x
    if name == "prelu":
        return (lambda t: A.prelu(t, jnp.asarray(0.3, t.dtype))), x
    return (lambda t: call(name, t)), x


JAXC: dict[str, Callable[[str], None]] = {}


def jax_context(f: Callable[[str], None]) -> Callable[[str], None]:
    JAXC[f.__name__] = f
    return f


def _jgrad(name: str, x: Any) -> np.ndarray:
    f, _ = _jx(name)
    return np.asarray(jax.grad(lambda t: f(t).sum())(x))


@jax_context
def jax_jit(name: str) -> None:
    f, x = _jx(name)
    assert np.array_equal(np.asarray(jax.jit(f)(x)), np.asarray(f(x)))


@jax_context
def jax_vmap(name: str) -> None:
    f, x = _jx(name)
    xs = jnp.stack([x, -x])
    y = jax.vmap(f)(xs)
    assert close(y[1], f(-x), 8)


@jax_context
def jax_grad_jacfwd_jacrev(name: str) -> None:
    f, x = _jx(name)
    g = _jgrad(name, x)
    assert close(jax.jacfwd(f)(x).sum(0), g, 16) and close(jax.jacrev(f)(x).sum(0), g, 16)


@jax_context
def jax_hessian(name: str) -> None:
    f, x = _jx(name)
    h = jax.hessian(lambda t: f(t).sum())(x)
    gg = jax.grad(lambda t: jax.grad(lambda u: f(u).sum())(t).sum())(x)
    assert h.shape == (16, 16) and close(h.sum(0), gg, 16, floor=1.0)


@jax_context
def jax_checkpoint(name: str) -> None:
    f, x = _jx(name)
    g = jax.grad(lambda t: jax.checkpoint(f)(t).sum())(x)
    assert close(g, _jgrad(name, x), 1)


@jax_context
def jax_scan_and_cond(name: str) -> None:
    f, x = _jx(name)

    def body(c: Any, t: Any) -> tuple[Any, Any]:
        return c + f(t).sum(), f(t)

    _, ys = jax.lax.scan(body, 0.0, jnp.stack([x, x]))
    assert close(ys[1], f(x), 8)
    y = jax.lax.cond(True, f, lambda t: f(-t), x)
    assert close(y, f(x), 8)


@jax_context
def jax_debug_nans_and_infs(name: str) -> None:
    """No false alarm from a discarded branch (overflowing or NaN inside a where) on finite
    inputs, the extremes included."""
    f, _ = _jx(name)
    x = jnp.asarray([-1e300, -1e4, -40.0, -1.0, 0.0, 1.0, 40.0, 1e4, 1e300, -5e-324, 5e-324, 3.0,
                     -3.0, 6.0, -0.5, 0.5])
    with jax.debug_nans(True), jax.debug_infs(False):
        f(x)
        jax.grad(lambda t: f(t).sum())(x)
    if name not in ("relu", "relu6", "leaky_relu", "hard_tanh", "prelu", "elu", "selu", "celu",
                    "hard_silu", "softplus", "squareplus", "sparse_plus", "glu"):  # (inf at 1e300 is the value)
        with jax.debug_infs(True):
            f(x)


@jax_context
def jax_export(name: str) -> None:
    from jax import export

    f, x = _jx(name)
    exp = export.export(jax.jit(f))(jax.ShapeDtypeStruct(x.shape, x.dtype))
    back = export.deserialize(exp.serialize())
    # an exported module keeps the formula's lowering (it names no custom call), where jax.jit
    # on the CPU runs the compiled kernel for some functions (kaun._kernels.jaxffi): within
    # each other's bounds
    assert close(back.call(x), f(x), 4)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("context", list(JAXC))
def test_jax(context: str, name: str) -> None:
    JAXC[context](name)


JAX_SUBPROCESS = """
import os, sys, json
import numpy as np, jax, jax.numpy as jnp
sys.path.insert(0, {tests!r})
from test_contexts import NAMES, call, bits, _values
import kaun.activation as A
out = {{}}
x = jnp.asarray(_values().reshape(-1, 8)[:8], dtype=jnp.float32)
if {sharded}:
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = jax.make_mesh((4,), ("d",))
    xs = jax.device_put(x, NamedSharding(mesh, P("d")))
for n in NAMES:
    y = call(n, xs if {sharded} else x)
    assert y.dtype == jnp.float32, (n, y.dtype)
    if {sharded}:
        assert len(y.sharding.device_set) == 4, n
    out[n] = bits(np.asarray(y)).tolist()
    g = jax.grad(lambda t: call(n, t).sum())(x)
    assert bool(jnp.isfinite(g).all()), n
print(json.dumps(out))
"""


@pytest.mark.parametrize("setting", ["x64_off", "sharded_4_devices"])
def test_jax_in_a_fresh_process(setting: str) -> None:
    """jax_enable_x64 off (this test session has it on) and input sharded over 4 host devices:
    float32 stays float32, and the bits equal JAX's own in this process (float32 computation)."""
    import json

    sharded = setting == "sharded_4_devices"
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    if sharded:
        env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    code = JAX_SUBPROCESS.format(tests=os.path.dirname(__file__), sharded=sharded)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    x = jnp.asarray(_values().reshape(-1, 8)[:8], dtype=jnp.float32)
    for n in NAMES:
        assert close(np.array(got[n], np.uint32).view(np.float32), np.asarray(call(n, x)), 8), n


# -- NumPy: the kinds of arrays ---------------------------------------------------------------------------


def _np_ref(name: str) -> tuple[np.ndarray, np.ndarray]:
    x = _values()
    return x, call(name, x)


NPC: dict[str, Callable[[str], None]] = {}


def np_context(f: Callable[[str], None]) -> Callable[[str], None]:
    NPC[f.__name__] = f
    return f


@np_context
def read_only(name: str) -> None:
    x, ref = _np_ref(name)
    x.flags.writeable = False
    assert np.array_equal(bits(call(name, x)), bits(ref))


@np_context
def memmap(name: str) -> None:
    import tempfile

    x, ref = _np_ref(name)
    with tempfile.TemporaryDirectory() as d:
        m = np.memmap(os.path.join(d, "x.dat"), dtype=np.float32, mode="w+", shape=x.shape)
        m[:] = x
        y = call(name, m)
        assert type(y) is np.ndarray and np.array_equal(bits(y), bits(ref))  # as np.exp gives
        del m, y


@np_context
def big_endian(name: str) -> None:
    x, ref = _np_ref(name)
    y = call(name, x.astype(">f4"))
    assert np.array_equal(bits(y), bits(ref))


@np_context
def unaligned(name: str) -> None:
    x, ref = _np_ref(name)
    buf = np.zeros(x.nbytes + 1, np.uint8)
    u = buf[1:].view(np.float32).reshape(x.shape)
    u[:] = x
    assert not u.flags.aligned
    assert np.array_equal(bits(call(name, u)), bits(ref))


@np_context
def masked_array(name: str) -> None:
    x, ref = _np_ref(name)
    mask = np.zeros(x.shape, bool)
    mask[::3] = True
    y = call(name, np.ma.MaskedArray(x, mask=mask))
    assert isinstance(y, np.ma.MaskedArray)
    keep = ~np.ma.getmaskarray(y)
    assert np.array_equal(bits(np.ma.getdata(y))[keep], bits(ref)[keep])
    if name == "glu":  # masked where either half is
        assert np.array_equal(np.ma.getmaskarray(y), mask[:4] | mask[4:])
    else:
        assert np.array_equal(np.ma.getmaskarray(y), mask)


@np_context
def matrix_and_subclasses(name: str) -> None:
    x, ref = _np_ref(name)
    with warnings.catch_warnings():  # NumPy's notice that np.matrix is not recommended
        warnings.filterwarnings("ignore", "the matrix subclass", PendingDeprecationWarning)
        m = np.asmatrix(x)
        y = call(name, m)
    assert type(y) is np.matrix and np.array_equal(bits(np.asarray(y)), bits(ref))

    class Sub(np.ndarray):
        pass

    s = call(name, x.view(Sub))
    assert type(s) is Sub and np.array_equal(bits(np.asarray(s)), bits(ref))


@np_context
def scalars_and_0d(name: str) -> None:
    if name == "glu":  # (splits an axis: no 0-d or scalar input)
        return
    f = getattr(A, name)
    kw = {"alpha": 0.25} if name == "prelu" else KW.get(name, {})
    args = (kw.pop("alpha"),) if name == "prelu" else ()
    for v in (np.float32(-1.5), np.float64(2.0)):
        y = f(v, *args, **kw)
        assert type(y) is type(v), (name, type(y))  # a NumPy scalar in, one out (as ufuncs)
    z = f(np.array(-1.5, np.float32), *args, **kw)
    assert type(z) is np.ndarray and z.shape == ()  # a 0-d array stays one (the Array API's rule)
    p = f(-1.5, *args, **kw)
    assert type(p) is np.float64  # a Python number: a float64 NumPy scalar, as np.exp(-1.5)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("context", list(NPC))
def test_numpy(context: str, name: str) -> None:
    NPC[context](name)


# -- the command line in a pipeline ------------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    "list", "eval gelu " + " ".join(str(v) for v in range(3000)), "cache",
    "eval sigmoid 1 2 3 --derivative",
])
def test_cli_output_cut_by_the_reader(command: str) -> None:
    """``kaun-activation list | head -1``: the reader stops early; kaun ends quietly."""
    exe = f"{sys.executable} -m kaun.cli"
    r = subprocess.run(["bash", "-c", f"set -o pipefail; {exe} {command} | head -1"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert len(r.stdout.splitlines()) == 1
