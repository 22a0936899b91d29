"""kaun's torch operator (kaun._kernels.torchops): the C++ path of eager CPU calls.

* It serves: a plain CPU tensor's call goes through it (its autograd node is C++'s), bitwise the
  Python path's value, first derivative and, through ``kaun::grad``, second and third.
* It steps aside where the Python path must serve (subclasses, non-contiguous tensors, torch.func,
  forward-mode AD, tracing, torch.compile), and those calls give the same bits.
* It is optional: ``KAUN_TORCH_OPS=0`` and an absent library give the Python path; a process that
  finds none builds it in the background and no call waits for it.

(conftest.py builds it before the suite: every other test's eager CPU calls take it too.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bits import bits, grid, np_dtype, to_torch

import kaun.activation as A
from kaun._backends import _torch as BT
from kaun._core import ALL, ENTRIES
from kaun._kernels import torchops as TO

ELEMENTWISE = [n for n, e in ENTRIES.items() if e.kind == "elementwise"]
PARAMS: dict[str, dict[str, float]] = {"elu": {"alpha": 2.5}, "leaky_relu": {"negative_slope": 0.0},
                                       "celu": {"alpha": 0.7}, "squareplus": {"b": 9.0}}
# (relu, relu6, hard_tanh and leaky_relu with a nonzero slope are torch's own ops: not kaun's)
CASES = [(n, {}) for n in ELEMENTWISE if n not in ("relu", "relu6", "hard_tanh", "leaky_relu")]
CASES += list(PARAMS.items())
IDS = [f"{n}{kw or ''}" for n, kw in CASES]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
OP_NODE = "torch::autograd::CppNode<kaun::Act>"
SRC = str(Path(__file__).resolve().parents[1] / "src")


def node(y: torch.Tensor) -> str:
    """The name of y's autograd node (a C++ node's ``name()``; a Python Function's class)."""
    n = y.grad_fn.name
    return str(n() if callable(n) else n)


def test_it_is_loaded() -> None:
    assert TO.ext() is not None, TO.why()
    assert TO.why() == ""


def _python_path(name: str, kw: dict[str, Any], x: torch.Tensor) -> tuple[Any, ...]:
    """Value and derivatives 1-3 (times a cotangent) by the Python path's Functions."""
    entry = ALL[ENTRIES[name].key]
    p = tuple(float(kw.get(n, d)) for n, d in entry.params)
    h = BT._hex(p)
    xg = x.clone().requires_grad_()
    y = BT._FNS[0][0].apply(xg, entry.key, h)
    return y, *_derivs(y, xg)


def _derivs(y: torch.Tensor, xg: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for k in range(3):
        if not y.requires_grad:
            break
        g = torch.linspace(-2.0, 2.0, y.numel(), dtype=torch.float64).to(y.dtype).reshape(y.shape)
        (y,) = torch.autograd.grad(y, xg, g, create_graph=k < 2)
        out.append(y)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("name", "kw"), CASES, ids=IDS)
def test_bitwise_the_python_path(name: str, kw: dict[str, Any], dtype: str) -> None:
    x = to_torch(grid(dtype, 1 << 12), dtype)
    fn = getattr(A, name)
    xg = x.clone().requires_grad_()
    y = fn(xg, **kw)
    ref = _python_path(name, kw, x)
    assert node(y) == OP_NODE
    mine = [y, *_derivs(y, xg)]
    assert len(mine) == len(ref)
    for a, b in zip(mine, ref, strict=True):
        np.testing.assert_array_equal(bits(a), bits(b))
    with torch.no_grad():
        np.testing.assert_array_equal(bits(fn(x, **kw)), bits(ref[0]))


GLU = [e.key for e in ALL.values() if e.kind == "glu"]
GLU_NODE = "torch::autograd::CppNode<kaun::Glu>"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", GLU)
def test_glu_bitwise_the_python_path(name: str, dtype: str) -> None:
    """glu and the gated family (split form) along each axis: value, gradient and the second
    derivative (kaun::glu_grad) the Python path's bits."""
    v = grid(dtype, 1 << 11)[: 2 * 3 * 4 * 150]
    x = to_torch(v, dtype).reshape(4, 6, 150)
    fn = getattr(A, name)
    for ax in (0, 1, 2, -1):
        xg = x.clone().requires_grad_()
        y = fn(xg, axis=ax)
        assert node(y) == GLU_NODE
        a = ax % 3
        xr = x.clone().requires_grad_()
        ref = BT._GLU[name][0].apply(xr, a)
        assert node(ref) != GLU_NODE
        mine, theirs = [y, *_derivs(y, xg)[:2]], [ref, *_derivs(ref, xr)[:2]]
        for p, q in zip(mine, theirs, strict=True):
            np.testing.assert_array_equal(bits(p), bits(q))
        with torch.no_grad():
            np.testing.assert_array_equal(bits(fn(x, axis=ax)), bits(ref))


@pytest.mark.parametrize("dtype", DTYPES)
def test_prelu_bitwise_the_python_path(dtype: str) -> None:
    """prelu with an alpha tensor (broadcast, learnable): torch's kernels in a C++ node; value,
    both gradients and the second derivatives (kaun::prelu_grad) the Python path's bits."""
    v = [-2.0, -1.0, -0.0, 0.0, 1.0, 3.0, np.inf, -np.inf, np.nan, 1e-3, -7.5, 0.5]
    x0 = to_torch(np.array(v * 4).astype(np_dtype(dtype)), dtype).reshape(4, 1, 12)
    g = to_torch(np.linspace(-1.0, 2.0, 48).astype(np_dtype(dtype)), dtype)
    for shape in ((12,), (1, 12), (4, 1, 1), (1,)):
        a0 = to_torch(np.linspace(-0.5, 0.75, int(np.prod(shape))).astype(np_dtype(dtype)), dtype).reshape(shape)

        def run(f: Any, a0: torch.Tensor = a0) -> tuple[str, list[torch.Tensor]]:
            x, a = x0.clone().requires_grad_(), a0.clone().requires_grad_()
            y = f(x, a)
            gy = g.reshape(y.shape)
            gx, ga = torch.autograd.grad(y, (x, a), gy, create_graph=True)
            h = torch.autograd.grad(gx.sum() + 3 * ga.sum(), (x, a), materialize_grads=True)
            once = torch.autograd.grad(f(x, a), (x, a), gy)
            return node(y), [y, gx, ga, *h, *once]

        mine_node, mine = run(A.prelu)
        ref_node, ref = run(lambda x, a: BT._PRELU[0].apply(x, a))
        assert mine_node == "torch::autograd::CppNode<kaun::Prelu>" and ref_node != mine_node
        for p, q in zip(mine, ref, strict=True):
            np.testing.assert_array_equal(bits(p), bits(q))


def test_the_op_is_the_path_of_plain_eager_calls() -> None:
    x = torch.randn(300, requires_grad=True)
    assert node(A.silu(x)) == OP_NODE
    with torch.inference_mode():
        y = A.silu(x.detach())
        assert y.is_inference()
    # the checked path (hyper-parameters outside the fast path's cache) takes it too
    assert node(A.elu(x, alpha=2)) == OP_NODE
    # a second backward through a C++ node that freed its saved tensor: torch's own error
    y = A.silu(x)
    y.sum().backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.sum().backward()


def _python_node(y: torch.Tensor) -> bool:
    return y.grad_fn is not None and node(y) != OP_NODE


def test_steps_aside_where_the_python_path_serves() -> None:
    x = torch.randn(64, 8, dtype=torch.float64)
    ref = A.gelu(x)

    def close(a: torch.Tensor, b: torch.Tensor) -> None:
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-300)

    # non-contiguous, a subclass (nn.Parameter), a negated view
    xt = x.t().contiguous().t().requires_grad_()
    assert not xt.is_contiguous()
    assert _python_node(A.gelu(xt))
    # nn.Parameter is a plain tensor to C++ (its subclass only keeps Module bookkeeping), on the
    # checked path and the fast one alike; another subclass keeps its own semantics
    p = torch.nn.Parameter(x.clone())
    assert node(A.gelu(p)) == OP_NODE and node(A.gelu(p)) == OP_NODE

    class Sub(torch.Tensor):
        pass

    s = x.clone().as_subclass(Sub).requires_grad_()
    assert _python_node(A.gelu(s)) and _python_node(A.gelu(s))
    close(A.gelu(s).as_subclass(torch.Tensor), ref)  # (the formula in torch operations)
    neg = torch._neg_view(-x)
    np.testing.assert_array_equal(bits(A.gelu(neg)), bits(ref))
    # torch.func and forward-mode AD: the formulas in torch operations (not the kernels'
    # bits: within their bounds of them)

    close(torch.func.vmap(A.gelu)(x), ref)
    g = torch.func.grad(lambda v: A.gelu(v).sum())(x)
    xg = x.clone().requires_grad_()
    A.gelu(xg).sum().backward()
    close(g, xg.grad)
    import torch.autograd.forward_ad as fwAD

    with fwAD.dual_level():
        d = fwAD.make_dual(x, torch.ones_like(x))
        y, t = fwAD.unpack_dual(A.gelu(d))
    assert y.grad_fn is None
    close(y, ref)
    close(t, xg.grad)
    # (torch.jit.trace: tests/test_contexts.py, whose every context runs with the op loaded)


NATIVE = {"relu": (lambda x: torch.relu(x), {}), "relu6": (lambda x: torch.nn.functional.relu6(x), {}),
          "hard_tanh": (lambda x: torch.nn.functional.hardtanh(x), {}),
          "leaky_relu": (lambda x: torch.nn.functional.leaky_relu(x, 0.3), {"negative_slope": 0.3})}


@pytest.mark.parametrize("name", list(NATIVE))
def test_native_ops_are_torchs_own_through_the_operator(name: str) -> None:
    """relu, relu6, hard_tanh and leaky_relu are torch's ops: the operator's ``native`` calls
    them through torch's dispatcher after its checks (autograd and modes see torch's op), and
    steps aside (None) for what the Python path must see: a subclass, a sparse or integer tensor,
    a TorchFunctionMode of the user's."""
    from torch.overrides import TorchFunctionMode

    ext = TO.ext()
    kind = BT._NATIVE_KIND[name]
    s = NATIVE[name][1].get("negative_slope", 0.0)
    x = torch.randn(4, 300, dtype=torch.float64) * 8
    for dt in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        xd = x.to(dt)
        np.testing.assert_array_equal(bits(ext.native(xd, kind, s)), bits(NATIVE[name][0](xd)))
    xr = x.clone().requires_grad_()
    y = ext.native(xr, kind, s)
    assert y.grad_fn is not None and y.grad_fn.name() == NATIVE[name][0](xr).grad_fn.name()

    class Sub(torch.Tensor):
        pass

    for other in (x.as_subclass(Sub), x.to_sparse(), x.long(), x.to(torch.float8_e4m3fn)):
        assert ext.native(other, kind, s) is None
    with pytest.raises(TypeError, match="dtype"):  # (kaun's error, after warm calls too)
        getattr(A, name)(x.to(torch.float8_e4m3fn), **NATIVE[name][1])
    seen: list[Any] = []

    class Log(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            seen.append(func)
            return func(*args, **(kwargs or {}))

    fn = getattr(A, name)
    for _ in range(3):  # (the fast path is stored by the first call)
        fn(x, **NATIVE[name][1])
    with Log():
        assert ext.native(x, kind, s) is None
        y = fn(x, **NATIVE[name][1])
    assert seen, "the user's TorchFunctionMode saw no call"
    np.testing.assert_array_equal(bits(y), bits(NATIVE[name][0](x)))
    with pytest.raises(ValueError, match="no such native"):
        ext.native(x, 99, 0.0)


# dynamo's own warning about how it calls an autograd.Function (see test_contexts.py)
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_compile_sees_no_op() -> None:
    x = torch.randn(256, generator=torch.Generator().manual_seed(3), requires_grad=True)
    f = torch.compile(lambda v: A.silu(v) * 2.0, fullgraph=True, backend="aot_eager")
    y = f(x)
    y.sum().backward()
    ref = x.detach().clone().requires_grad_()
    (A.silu(ref) * 2.0).sum().backward()
    # (compiled: the formula, fused by Inductor; within a few ulp of the kernel)
    np.testing.assert_allclose(y.detach().numpy(), (A.silu(x.detach()) * 2.0).numpy(), rtol=4e-6)
    np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=4e-6)


def _run(code: str, **env: str) -> dict[str, Any]:
    e = {**os.environ, "PYTHONPATH": SRC, **env}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env=e, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


CHILD = """
import json, time, torch
import kaun.activation as A
from kaun._kernels import torchops as TO
def node(y):
    n = y.grad_fn.name
    return n() if callable(n) else n
x = torch.randn(4096, requires_grad=True)
t = time.perf_counter()
y = A.gelu(x)
first = time.perf_counter() - t
out = {"first_node": node(y), "first_s": first, "why": TO.why(),
       "building": bool(TO._state.get("building")) and not TO._state.get("built")}
if {wait}:
    out["waited"] = TO.wait(600) is not None
    out["why_after"] = TO.why()
    out["later_node"] = node(A.gelu(x))
    out["equal"] = bool(torch.equal(A.gelu(x), y))
print(json.dumps(out))
"""


def test_turned_off() -> None:
    out = _run(CHILD.replace("{wait}", "False"), KAUN_TORCH_OPS="0")
    assert out["first_node"] != OP_NODE
    assert out["why"] == "KAUN_TORCH_OPS=0"


def test_built_in_the_background_while_the_python_path_serves(tmp_path: Path) -> None:
    """A process that finds no library starts its build in another process and goes on: its
    first call does not wait (the Python path serves it); once the build is done the op serves,
    with the same bits."""
    cache = tmp_path / "cache"
    out = _run(CHILD.replace("{wait}", "True"), KAUN_TORCH_OPS="1", KAUN_CACHE_DIR=str(cache))
    assert out["first_node"] != OP_NODE
    assert out["building"], out
    assert out["waited"], out["why_after"]
    assert out["later_node"] == OP_NODE
    assert out["equal"]
    assert (cache / TO.name()).exists()
    # a later process of the same cache loads it at once; one that may not build (load) as well
    again = _run(CHILD.replace("{wait}", "False"), KAUN_TORCH_OPS="load", KAUN_CACHE_DIR=str(cache))
    assert again["first_node"] == OP_NODE, again["why"]


def test_a_damaged_library_is_not_loaded(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    good = TO.path()
    data = good.read_bytes()
    (cache / TO.name()).write_bytes(data[: len(data) // 2])
    os.chmod(cache / TO.name(), 0o700)
    out = _run(CHILD.replace("{wait}", "False"), KAUN_TORCH_OPS="load", KAUN_CACHE_DIR=str(cache))
    assert out["first_node"] != OP_NODE
    assert "not built" in out["why"]


def test_no_cxx_compiler(tmp_path: Path) -> None:
    out = _run(CHILD.replace("{wait}", "False"), KAUN_TORCH_OPS="1",
               KAUN_CACHE_DIR=str(tmp_path / "c"), KAUN_CXX="no-such-compiler")
    assert out["first_node"] != OP_NODE
    assert "no C++ compiler" in out["why"]
