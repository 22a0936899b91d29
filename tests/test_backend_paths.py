"""The fast paths of the backends give what the formula path gives.

torch serves a call in one of three ways (see ``kaun._backends._torch``): torch's own op, a
forward without autograd (temporaries overwritten in place, torch's kernel with the tail
recomputed), or an ``autograd.Function``. Each must agree with the formula of ``_defs`` evaluated
plainly: bitwise where the formula itself is evaluated (in place or not), within a few ulps where
torch's own kernel serves. NumPy and JAX must equal their plain evaluation of the formula.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from _reference import ZERO_WINDOW, ZEROS  # benchmarks/ (on sys.path by conftest)

import kaun.activation as A
from kaun._backends import _jax as KJ
from kaun._backends import _numpy as KN
from kaun._backends import _torch as KT
from kaun.activation._defs import ENTRIES

DTYPES = ["float32", "float64", "float16", "bfloat16"]
ELEMENTWISE = [n for n, e in ENTRIES.items() if e.kind == "elementwise"]
# Parameters beside the defaults, to reach the other branches (celu with alpha != 1 is not
# torch's own op, squareplus with b = 0 is relu).
PARAMS: dict[str, list[dict[str, float]]] = {
    "leaky_relu": [{"negative_slope": -0.3}],
    "hard_sigmoid": [{"alpha": 0.3, "beta": 0.2}],
    "elu": [{"alpha": 2.5}],
    "celu": [{"alpha": 0.7}],
    "squareplus": [{"b": 0.0}, {"b": 9.0}],
}
CASES = [(n, {}) for n in ELEMENTWISE] + [(n, kw) for n, kws in PARAMS.items() for kw in kws]
# served (in part) by torch's own kernels, or in float64 for float32 and half (KT._WIDE)
NATIVE = set(KT._FULL) | set(KT._FWD) | set(KT._WIDE)
# torch's kernel against our formula, each within the accuracy bound of the truth (value 4 ulp;
# derivative: silu' on torch is 8.2 ulp off in float32, the formula 6.9): at most their sum apart
NATIVE_ULPS = 8.0
NATIVE_DULPS = 16.0


def _grid(dtype: str, n: int = 1 << 15) -> np.ndarray:
    """Every magnitude of the dtype, both signs, the exp thresholds, the specials; at least
    ``KT.INPLACE_MIN`` elements so that the in-place path is the one taken."""
    fi = torch.finfo(getattr(torch, dtype))
    rng = np.random.default_rng(7)
    lo, hi = np.log(float(fi.tiny)), np.log(float(fi.max))
    mags = np.exp(rng.uniform(lo, hi, n))
    v = np.concatenate([
        mags * rng.choice([-1.0, 1.0], n), rng.normal(0.0, 4.0, n),
        np.linspace(-120.0, 120.0, 2001), np.linspace(-800.0, 800.0, 2001),
        [0.0, -0.0, np.inf, -np.inf, np.nan, float(fi.max), -float(fi.max), float(fi.tiny),
         -1.0, 1.0, -3.0, 3.0, 6.0],
    ])
    assert v.size >= min(KT.INPLACE_MIN, n)
    return v


def _t(v: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(v).to(getattr(torch, dtype))


def _ulps(a: torch.Tensor, b: torch.Tensor, nan_free: bool = False,
          near: torch.Tensor | None = None) -> float:
    """max |a - b| in units of eps * |b| (subnormals: of the smallest normal's eps); where
    ``near`` (next to an interior zero of b, where relative error is ill-conditioned), in units
    of eps * max(|b|, 2)."""
    fi = torch.finfo(a.dtype)
    a64, b64 = a.detach().double(), b.detach().double()
    unit = torch.clamp(b64.abs(), min=float(fi.smallest_normal)) * fi.eps
    if near is not None:
        unit = torch.where(near, torch.clamp(b64.abs(), min=2.0) * fi.eps, unit)
    d = (a64 - b64).abs() / unit
    same = (a64 == b64) | (torch.isnan(a64) & torch.isnan(b64))
    d = torch.where(same, 0.0, d)
    if nan_free:
        d = torch.where(torch.isnan(b64), 0.0, d)
    return float(d.max())


def _bitwise(a: torch.Tensor, b: torch.Tensor) -> bool:
    same = (a == b) | (torch.isnan(a) & torch.isnan(b))
    signs = torch.signbit(a) == torch.signbit(b)
    return bool((same & (signs | torch.isnan(a))).all())


# -- torch: the in-place evaluator ------------------------------------------------------------


def test_inplace_reuse_is_active() -> None:
    """The reference counts of a temporary can be told from a named value on this interpreter
    (else the fast path silently falls back to plain evaluation)."""
    assert KT._RC_BIN and KT._RC_RBIN and KT._RC_FN
    x = torch.randn(KT.INPLACE_MIN)
    seen: list[int] = []

    def f(o: Any, x: Any) -> Any:
        t = o.exp(x) * 2.0  # a named temporary: must not be overwritten by what follows
        seen.append(t.t.data_ptr())
        u = (t + 1.0) * 3.0  # (t + 1.0) is fresh, then reused by * 3.0
        return o.where(x > 0.0, u, t)

    y = KT._wrapped(f, x, ())
    torch.testing.assert_close(y, torch.where(x > 0, (torch.exp(x) * 2 + 1) * 3, torch.exp(x) * 2))
    assert y.data_ptr() != seen[0]  # t (named) was not written over
    before = x.clone()
    KT._wrapped(f, x, ())
    assert _bitwise(x, before)  # the input is never written


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{kw or ''}" for n, kw in CASES])
def test_torch_inplace_formula_is_bitwise_the_formula(name: str, kw: dict[str, float],
                                                      dtype: str) -> None:
    e = ENTRIES[name]
    p = tuple(kw.get(k, d) for k, d in e.params)
    x = _t(_grid(dtype), dtype)
    before = x.clone()
    assert _bitwise(KT._work_fast(e.value, x, *p), KT._work(e.value, x, *p)), "value"
    assert _bitwise(KT._dwork_fast(e.deriv, x, *p), KT._dwork(e.deriv, x, *p)), "derivative"
    assert _bitwise(x, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_inplace_prelu_and_glu(dtype: str) -> None:
    v = _grid(dtype)
    x = _t(v[: v.size // 2 * 2].reshape(-1, 2), dtype)
    a = _t(np.array([0.2, -1.5]), dtype)
    pe, ge = ENTRIES["prelu"], ENTRIES["glu"]
    for args in ((x, a), (x[:, 0], x[:, 1])):
        e = pe if args[1] is a else ge
        want = KT._work(e.value, args[0], _wide(args[1]))
        assert _bitwise(KT._work_fast(e.value, *args), want), e.name
    # the public functions without autograd take these paths
    assert _bitwise(A.prelu(x, a), KT._work(pe.value, x, _wide(a)))
    xt = x.T.contiguous()
    assert _bitwise(A.glu(xt, axis=0), KT._work(ge.value, xt[0], _wide(xt[1])))


def _wide(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in KT._HALF else t


# -- torch: the public paths ------------------------------------------------------------------


def _grad(fn: Any, x: torch.Tensor, g: torch.Tensor, create_graph: bool) -> tuple[Any, Any]:
    xr = x.clone().requires_grad_()
    y = fn(xr)
    (gx,) = torch.autograd.grad(y, xr, g, create_graph=create_graph)
    return y.detach(), gx.detach()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{kw or ''}" for n, kw in CASES])
def test_torch_no_grad_autograd_and_formula_agree(name: str, kw: dict[str, float],
                                                  dtype: str) -> None:
    """No-grad fast path, autograd path (backward with and without a graph) and the formula."""
    e = ENTRIES[name]
    p = tuple(kw.get(k, d) for k, d in e.params)
    fn = getattr(A, name)
    x = _t(_grid(dtype), dtype)
    g = torch.from_numpy(np.random.default_rng(3).uniform(0.5, 2.0, x.numel())).to(x.dtype)
    formula = KT._work(e.value, x, *p)
    deriv = KT._scaled(g, KT._dwork(e.deriv, x, *p))

    plain = fn(x, **kw)
    with torch.no_grad():
        off = fn(x.clone().requires_grad_(), **kw)
    y1, g1 = _grad(lambda v: fn(v, **kw), x, g, create_graph=False)
    y2, g2 = _grad(lambda v: fn(v, **kw), x, g, create_graph=True)

    assert _bitwise(plain, off) and _bitwise(plain, y1) and _bitwise(y1, y2)
    zeros = ZEROS.get((name, True), ())
    near = torch.zeros(x.shape, dtype=torch.bool)
    for x0 in zeros:
        near |= (x.double() - x0).abs() <= ZERO_WINDOW
    if name in KT._BWD:  # torch's kernels in a backward without a graph, the formula with one
        assert _ulps(g1, g2, near=near) <= NATIVE_DULPS
    else:
        assert _bitwise(g1, g2)
    wide = KT._wide(name, x, p)
    wide_d = KT._wide_d(name, x, p)
    if wide_d:
        # float64 evaluation, rounded once: against the shared formula in float64, rounded
        # (the float32 formula itself is 5 ulp off at gelu(-1.179): not the reference here)
        d64 = (g.double() * KT._work(e.deriv, x.double(), *p)).to(x.dtype)
        assert _ulps(g1, d64) <= 1.0 and _ulps(g2, d64) <= 1.0
    if wide:
        assert _ulps(plain, KT._work(e.value, x.double(), *p).to(x.dtype)) <= 1.0
    elif name in NATIVE:
        assert _ulps(plain, formula) <= NATIVE_ULPS
        # torch's own backward at a NaN input of a piecewise function: anything (CONVENTIONS)
        keep = ~torch.isnan(x) if not e.smooth else torch.ones_like(x, dtype=torch.bool)
        if not wide_d:
            assert _ulps(g1[keep], deriv[keep], near=near[keep]) <= NATIVE_DULPS
    else:
        assert _bitwise(plain, formula)
        assert _bitwise(g1, deriv)


@pytest.mark.parametrize("name", ["sigmoid", "silu", "mish", "log_sigmoid", "gelu", "softplus"])
def test_torch_native_tails_are_the_formula(name: str) -> None:
    """Where torch's kernel underflows (its tail), the formula's value is what comes back."""
    x = torch.tensor([-90.0, -100.0, -103.0, -20.0, -16.0, -700.0, -740.0])
    for dt in (torch.float32, torch.float64):
        xs = x.to(dt)
        y = getattr(A, name)(xs)
        want = KT._work(ENTRIES[name].value, xs)
        assert _ulps(y, want) <= NATIVE_ULPS, (dt, y, want)


def test_torch_forward_ad_and_functorch_keep_tangents() -> None:
    """A dual tensor does not require grad: the no-grad path must not drop its tangent."""
    import torch.autograd.forward_ad as fwAD

    x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    for name in ("sigmoid", "gelu", "elu", "mish", "softsign"):
        fn = getattr(A, name)
        d = torch.from_numpy(A.derivative(fn)(x.numpy()))
        with fwAD.dual_level():
            y = fn(fwAD.make_dual(x, torch.ones_like(x)))
            t = fwAD.unpack_dual(y).tangent
        torch.testing.assert_close(t, d)
        torch.testing.assert_close(torch.func.vmap(fn)(x.reshape(11, 1)).reshape(11), fn(x))
        torch.testing.assert_close(torch.func.vmap(torch.func.grad(fn))(x), d)
        _, tj = torch.func.jvp(fn, (x,), (torch.ones_like(x),))
        torch.testing.assert_close(tj, d)


def test_torch_backward_leaves_inputs_and_grads_alone() -> None:
    x = torch.randn(KT.INPLACE_MIN * 2, requires_grad=True)
    g = torch.randn(KT.INPLACE_MIN * 2)
    xb, gb = x.detach().clone(), g.clone()
    for name in ("sigmoid", "gelu", "tanh", "mish", "squareplus", "glu"):
        y = getattr(A, name)(x)
        y.backward(g[: y.numel()])
        assert _bitwise(x.detach(), xb) and _bitwise(g, gb), name
        x.grad = None


def test_torch_inference_mode() -> None:
    with torch.inference_mode():
        x = torch.randn(KT.INPLACE_MIN)
        for name in ("gelu", "sigmoid", "elu"):
            assert _bitwise(getattr(A, name)(x), getattr(A, name)(x.clone()))


def test_torch_selu_top_tail_is_finite() -> None:
    """torch's float32 lambda is rounded up: its selu gives inf at 3.2386221e38, where the true
    value (3.40282349e38) is float32's largest. kaun's (torch's elu, lambda rounded down) does not,
    keeps torch's negative side bitwise, and still overflows where the truth does."""
    x = torch.tensor([3.2386222e38, 3.3e38, float("inf"), -1.0, -20.0, 0.5])
    y = A.selu(x)
    assert _bitwise(y, KT._work(ENTRIES["selu"].value, x))
    assert torch.isinf(torch.nn.functional.selu(x[:1])).all()  # torch's own: the case exists
    assert bool(torch.isfinite(y[0])) and float(y[0]) > 3.4028e38 and torch.isinf(y[1:3]).all()
    assert _bitwise(y[3:5], torch.nn.functional.selu(x[3:5]))
    xr = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(A.selu(xr).sum(), xr)
    assert _ulps(g, KT._dwork(ENTRIES["selu"].deriv, x)) <= 1.0


DTENSOR_FAST_PATHS = """
import torch, torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, Shard, distribute_tensor
import kaun.activation as A
from kaun._backends import _torch as KT
from _reference import ZERO_WINDOW, ZEROS
dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
try:
    mesh = init_device_mesh("cpu", (1,))
    n = KT.INPLACE_MIN * 2
    plain = torch.cat([torch.linspace(-120, 120, n - 2), torch.tensor([-740.0, 90.0])])
    for dt in (torch.float32, torch.float64, torch.bfloat16):
        p = plain.to(dt)
        for name in ("sigmoid", "log_sigmoid", "silu", "mish", "gelu", "gelu_approx", "tanh",
                     "squareplus", "softsign"):
            f = getattr(A, name)
            x = distribute_tensor(p, mesh, [Shard(0)]).requires_grad_()
            y = f(x)
            assert isinstance(y, DTensor), name
            (gx,) = torch.autograd.grad(y, x, torch.ones_like(y))
            pr = p.clone().requires_grad_()
            (gp,) = torch.autograd.grad(f(pr), pr, torch.ones_like(pr))
            assert torch.equal(y.full_tensor(), f(p)), (name, dt)
            # atol: a few units in the last place of a subnormal; next to an interior zero of
            # the derivative (where relative error is ill-conditioned), of 1
            fi = torch.finfo(dt)
            near = torch.zeros(p.shape, dtype=torch.bool)
            for x0 in ZEROS.get((name, True), ()):
                near |= (p.double() - x0).abs() <= ZERO_WINDOW
            atol = torch.where(near, 8 * fi.eps, 4 * fi.smallest_normal * fi.eps).double()
            d = (gx.full_tensor().double() - gp.double()).abs()
            ok = (d <= atol + 1e-5 * gp.double().abs()) | (gx.full_tensor().isnan() & gp.isnan())
            assert bool(ok.all()), (name, dt)
            with torch.no_grad():
                assert torch.equal(f(x).full_tensor(), f(p)), (name, dt)
    print("ok")
finally:
    dist.destroy_process_group()
"""


def test_torch_subclass_takes_the_plain_paths() -> None:
    """A tensor subclass (DTensor: no storage of its own, no boolean indexing) skips the
    in-place, storage and masked-tail fast paths, on arrays large enough to take them, and gets
    the same values as a plain tensor (gradients: torch's kernels against the formula, close)."""
    bench = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
    r = subprocess.run([sys.executable, "-W", "error", "-c", DTENSOR_FAST_PATHS],
                       capture_output=True, text=True, check=False,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": bench})
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"


# -- NumPy and JAX ----------------------------------------------------------------------------


def _np(v: np.ndarray, dtype: str) -> np.ndarray:
    import ml_dtypes

    return v.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{kw or ''}" for n, kw in CASES])
def test_numpy_is_the_formula(name: str, kw: dict[str, float], dtype: str) -> None:
    e = ENTRIES[name]
    p = tuple(kw.get(k, d) for k, d in e.params)
    x = _np(_grid(dtype), dtype)
    before = x.copy()
    with np.errstate(all="ignore"):
        if dtype in ("float16", "bfloat16"):
            want = e.value(KN.NumpyOps(), x.astype(np.float32), *p).astype(x.dtype)
            dwant = e.deriv(KN.NumpyOps(), x.astype(np.float32), *p).astype(x.dtype)
        else:
            want, dwant = e.value(KN.NumpyOps(), x, *p), e.deriv(KN.NumpyOps(), x, *p)
    got = getattr(A, name)(x, **kw)
    dgot = A.derivative(getattr(A, name))(x, **kw)
    assert got.dtype == x.dtype and dgot.dtype == x.dtype
    if dtype == "float32" and name in KN._WIDE and (name != "squareplus" or p[0] > 0.0):
        # float32 through a float64 evaluation rounded once: the formula in float64, rounded
        with np.errstate(all="ignore"):
            ref = e.value(KN.NumpyOps(), x.astype(np.float64), *p).astype(np.float32)
        assert _ulps(torch.from_numpy(got), torch.from_numpy(ref)) <= 1.0
    else:
        np.testing.assert_array_equal(got.astype(np.float64), want.astype(np.float64))
    np.testing.assert_array_equal(dgot.astype(np.float64), dwant.astype(np.float64))
    np.testing.assert_array_equal(x.astype(np.float64), before.astype(np.float64))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}{kw or ''}" for n, kw in CASES])
def test_jax_is_the_jitted_formula(name: str, kw: dict[str, float], dtype: str) -> None:
    """kaun's primal (jitted, custom_jvp) is the formula jitted plainly; its gradient under
    vmap(grad) is the derivative formula jitted plainly (XLA may fuse the product by the
    cotangent 1 differently: within 1 ulp where the derivative is a normal number)."""
    e = ENTRIES[name]
    p = tuple(kw.get(k, d) for k, d in e.params)
    fn = getattr(A, name)
    x = jnp.asarray(_grid(dtype, 1 << 12)).astype(dtype)
    want = jax.jit(lambda u: KJ._work(e.value, u, *p))(x)
    dwant = jax.jit(lambda u: KJ._work(e.deriv, u, *p))(x)
    got = fn(x, **kw)
    assert got.dtype == x.dtype
    assert np.array_equal(np.asarray(got), np.asarray(want), equal_nan=True)
    assert np.array_equal(np.asarray(jax.jit(lambda u: fn(u, **kw))(x)), np.asarray(got),
                          equal_nan=True)
    dgot = jax.vmap(jax.grad(lambda u: fn(u, **kw)))(x)
    tg, tdw = (torch.from_numpy(np.asarray(a).astype(np.float32)).to(getattr(torch, dtype))
               for a in (dgot, dwant))
    keep = (tdw.abs() >= torch.finfo(tdw.dtype).smallest_normal) & torch.isfinite(tdw)
    assert _ulps(tg[keep], tdw[keep]) <= 1.0


# torch's dynamo instantiates autograd.Function internally under a DeprecationWarning that it
# means to silence (catch_warnings(record=True) does not override the "error" filter).
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
@pytest.mark.parametrize("name", ["sigmoid", "log_sigmoid", "elu", "celu", "mish", "squareplus",
                                  "softsign", "prelu", "glu"])
def test_torch_compile_fullgraph_takes_the_traceable_path(name: str) -> None:
    """Under torch.compile the fast paths step aside (no in-place temporaries, no
    value-dependent tails): values and gradients equal eager ones within the native tolerance."""
    torch._dynamo.reset()
    a = torch.tensor([0.25])
    fn = (lambda x: A.prelu(x, a)) if name == "prelu" else (
        (lambda x: A.celu(x, alpha=0.7)) if name == "celu" else getattr(A, name))
    x = torch.linspace(-100.0, 100.0, 4 * 101).reshape(4, 101)[:, :100].contiguous()
    fn(x)  # kaun's dispatch cache filled eagerly (its first call is not traceable: see report)
    compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")
    xc, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
    yc, ye = compiled(xc), fn(xe)
    g = torch.linspace(0.5, 2.0, yc.numel()).reshape(yc.shape)
    (gc,) = torch.autograd.grad(yc, xc, g)
    (ge,) = torch.autograd.grad(ye, xe, g)
    assert _ulps(yc, ye) <= NATIVE_ULPS and _ulps(gc, ge) <= NATIVE_ULPS
    with torch.no_grad():
        assert _ulps(compiled(x), fn(x)) <= NATIVE_ULPS


@pytest.mark.parametrize("name", ["gelu", "gelu_approx", "squareplus", "mish"])
def test_torch_float64_route_in_threads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The float64 evaluation in chunks taken by several threads (forced here with small
    chunks): bitwise the one-thread result, forward and backward, with the input requiring grad
    (grad mode is per thread) and inside no_grad."""
    x = _t(_grid("float32", 1 << 16), "float32")  # at least INPLACE_MIN elements
    g = torch.from_numpy(np.random.default_rng(5).uniform(0.5, 2.0, x.numel()).astype(np.float32))
    fn = getattr(A, name)
    plain = fn(x)
    _, want = _grad(fn, x, g, create_graph=False)
    monkeypatch.setattr(KT, "_CHUNK", 1 << 9)
    monkeypatch.setattr(KT, "_threads", lambda: 3)
    assert _bitwise(fn(x), plain)
    with torch.no_grad():
        assert _bitwise(fn(x.clone().requires_grad_()), plain)
    y, got = _grad(fn, x, g, create_graph=False)
    assert _bitwise(y, plain) and _bitwise(got, want)
