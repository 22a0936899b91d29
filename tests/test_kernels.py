"""The kernel layer's promises, as a user sees them.

* NumPy, Dask and torch CPU tensors run the same compiled kernel: bitwise the same results for
  every function, hyper-parameter variant and dtype, values and derivatives; whatever the thread
  count and the memory layout.
* Where no kernel serves (``KAUN_KERNELS=0``, no compiler), the formulas serve within the same
  bounds. (That every torch path a non-CPU tensor takes is sync-free, and that inference mode,
  no_grad and autocast give the kernel's bits, is tested cell by cell in test_contexts.py: the
  ``meta`` device and ``FakeTensorMode`` raise on ``.item()``, ``nonzero`` and boolean indexing.)
* Start-up: ``import kaun.activation`` compiles and imports nothing heavy; the first call takes at
  most 0.5 s with a warm cache and 5 s cold; ``kaun-activation build``/``cache`` manage it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import torch
from bits import bits as _bits
from bits import grid as _grid
from bits import np_dtype as _np_dtype
from bits import to_torch as _torch

import kaun.activation as A
from kaun import _kernels as K
from kaun._core import ALL, ENTRIES

DTYPES = ["float16", "bfloat16", "float32", "float64"]
ELEMENTWISE = [n for n, e in ENTRIES.items() if e.kind == "elementwise"]
# hyper-parameters beside the defaults: the other variants of the formulas
PARAMS: dict[str, list[dict[str, float]]] = {
    "leaky_relu": [{"negative_slope": -0.3}, {"negative_slope": 0.0}],
    "hard_sigmoid": [{"alpha": 0.3, "beta": 0.2}, {"alpha": 0.0, "beta": 0.3}, {"alpha": -0.4, "beta": 0.2}],
    "elu": [{"alpha": 2.5}],
    "celu": [{"alpha": 0.7}, {"alpha": 2.0}],
    "squareplus": [{"b": 0.0}, {"b": 9.0}],
}
CASES = [(n, {}) for n in ELEMENTWISE] + [(n, kw) for n, kws in PARAMS.items() for kw in kws]
IDS = [f"{n}{kw or ''}" for n, kw in CASES]

needs_kernels = pytest.mark.skipif(not K.enabled(), reason="no C compiler: no compiled kernels")


# -- one kernel for NumPy, Dask and torch ---------------------------------------------------------


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_numpy_dask_and_torch_agree_bitwise(name: str, kw: dict[str, float], dtype: str) -> None:
    fn = getattr(A, name)
    x = _grid(dtype)
    ref = _bits(fn(x, **kw))
    dref = _bits(A.derivative(fn)(x, **kw))
    chunks = da.from_array(x, chunks=x.size // 3)
    assert np.array_equal(_bits(fn(chunks, **kw).compute()), ref)
    assert np.array_equal(_bits(A.derivative(fn)(chunks, **kw).compute()), dref)
    t = _torch(x, dtype)
    assert np.array_equal(_bits(fn(t, **kw)), ref)
    with torch.no_grad():
        assert np.array_equal(_bits(fn(t.clone().requires_grad_(), **kw)), ref)
    assert np.array_equal(_bits(A.derivative(fn)(t, **kw)), dref)
    # autograd: the forward, and the backward's vjp kernel (g = 1: g f'(x) rounded once is f'(x));
    # torch's own backward of the relu family (delegated) says what it likes at NaN, which the
    # conventions leave open for piecewise functions
    tr = t.clone().requires_grad_()
    y = fn(tr, **kw)
    (g,) = torch.autograd.grad(y, tr, torch.ones_like(y))
    assert np.array_equal(_bits(y), ref)
    keep = slice(None) if ENTRIES[name].smooth else ~np.isnan(x.astype(np.float64))
    assert np.array_equal(_bits(g)[keep], dref[keep])


@needs_kernels
@pytest.mark.parametrize("dtype", DTYPES)
def test_glu_and_prelu_agree_bitwise(dtype: str) -> None:
    x = _grid(dtype)[: 40000].reshape(100, 400)
    for ax in (0, 1, -1):
        ref = _bits(A.glu(x, axis=ax))
        assert np.array_equal(_bits(A.glu(_torch(x, dtype), axis=ax)), ref)
        assert np.array_equal(_bits(A.glu(da.from_array(x, chunks=(30, 70)), axis=ax).compute()), ref)
    alpha = np.linspace(-1, 1, 400).astype(_np_dtype(dtype))
    assert np.array_equal(_bits(A.prelu(_torch(x, dtype), _torch(alpha, dtype))), _bits(A.prelu(x, alpha)))
    assert np.array_equal(_bits(A.prelu(_torch(x, dtype), 0.3)), _bits(A.prelu(x, 0.3)))


@needs_kernels
@pytest.mark.parametrize("name", ["gelu", "sigmoid", "mish", "squareplus", "elu", "glu"])
def test_threads_and_layouts_do_not_change_bits(name: str) -> None:
    """One thread or several, C or Fortran order, channels-last or a strided view: the same bits
    element for element; a dense layout is kept (as torch's own ops keep it)."""
    fn = getattr(A, name)
    x = torch.from_numpy(_grid("float32", 1 << 17)[: 1 << 18].reshape(16, 64, 16, 16))
    ref = fn(x)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fn(x)
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(_bits(one), _bits(ref))
    cl = x.contiguous(memory_format=torch.channels_last)
    y = fn(cl)
    assert np.array_equal(_bits(y), _bits(ref))
    if name != "glu":
        assert y.is_contiguous(memory_format=torch.channels_last)
    view = x[:, :, ::2]  # not dense: computed on a contiguous copy
    assert np.array_equal(_bits(fn(view)), _bits(fn(view.contiguous())))
    xn = x.numpy()
    assert np.array_equal(_bits(fn(np.asfortranarray(xn))), _bits(fn(xn)))
    if name != "glu":
        assert fn(np.asfortranarray(xn)).flags.f_contiguous


@needs_kernels
def test_the_input_is_never_written() -> None:
    for name in ("gelu", "mish", "glu", "softplus"):
        fn = getattr(A, name)
        t = torch.randn(1 << 16, requires_grad=True)
        g = torch.randn(1 << 15 if name == "glu" else 1 << 16)
        tb, gb = t.detach().clone(), g.clone()
        fn(t).backward(g)
        assert torch.equal(t.detach(), tb) and torch.equal(g, gb)
        xn = tb.numpy().copy()
        xn.flags.writeable = False  # a write would raise
        fn(xn), A.derivative(fn)(xn) if name != "glu" else None


# -- the formulas where no kernel serves ------------------------------------------------------------


FALLBACK = """
import numpy as np, torch, kaun.activation as A
from kaun import _kernels as K
assert not K.enabled()
x = np.linspace(-30, 30, 20001).astype(np.float32)
for name in ("gelu", "sigmoid", "mish", "squareplus", "elu", "softplus", "tanh"):
    f = getattr(A, name)
    np.save(f"{OUT}/{name}.npy", np.stack([f(x), A.derivative(f)(x), f(torch.from_numpy(x)).numpy()]))
print("ok")
"""


@needs_kernels
def test_without_kernels_the_formulas_serve_within_the_bound(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", FALLBACK.replace("{OUT}", str(tmp_path))],
                       capture_output=True, text=True, check=False,
                       env={**os.environ, "KAUN_KERNELS": "0"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    x = np.linspace(-30, 30, 20001).astype(np.float32)
    for name in ("gelu", "sigmoid", "mish", "squareplus", "elu", "softplus", "tanh"):
        f = getattr(A, name)
        v, d, t = np.load(tmp_path / f"{name}.npy")
        for got, want, ulps in ((v, f(x), 8), (t, f(x), 8), (d, A.derivative(f)(x), 32)):
            # each within the documented bound of the truth (4 ulp, derivatives 16): twice that
            # apart at most, in ulps of float32 (of 1 where the value is below 1)
            u = np.spacing(np.maximum(np.abs(want), 1.0).astype(np.float32)).astype(np.float64)
            assert np.all(np.abs(got.astype(np.float64) - want) <= ulps * u), name


def test_a_missing_compiler_falls_back(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", "import numpy as np, kaun.activation as A; from kaun import _kernels as K; "
         "assert not K.enabled(); print(A.gelu(np.array([-1.0, 1.0], np.float32)))"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "KAUN_CC": "no-such-compiler", "KAUN_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[-0.15865526  0.8413447 ]"


def test_a_failing_compiler_warns_and_falls_back(tmp_path: Path) -> None:
    code = ("import warnings, numpy as np, kaun.activation as A\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    y = A.gelu(np.array([-1.0, 1.0], np.float32))\n"
            "print(y, [str(m.message)[:60] for m in w])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env={**os.environ, "KAUN_CC": "false", "KAUN_CACHE_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("[-0.15865526  0.8413447 ]")
    assert "kaun: compiled kernels unavailable for gelu" in r.stdout


# -- start-up and the cache -------------------------------------------------------------------------


def test_import_is_light() -> None:
    code = ("import sys, kaun.activation; "
            "print(sorted(m for m in ('torch', 'jax', 'kaun._kernels', 'kaun._ir') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


FIRST_CALL = """
import time, numpy as np
t = time.perf_counter()
import kaun.activation as A
A.sigmoid(np.ones(8, np.float32))
print(time.perf_counter() - t)
"""


@needs_kernels
def test_first_call_warm_and_cold(tmp_path: Path) -> None:
    env = {**os.environ, "KAUN_CACHE_DIR": str(tmp_path)}

    def first() -> float:
        r = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True,
                           check=True, env=env)
        return float(r.stdout)

    cold = first()
    assert any(tmp_path.glob("sigmoid-float32-*.so"))
    warm = min(first() for _ in range(3))
    assert cold <= 5.0, f"cold first call {cold:.2f} s"
    assert warm <= 0.5, f"warm first call {warm:.2f} s"


@needs_kernels
def test_cli_builds_and_clears_the_cache(tmp_path: Path) -> None:
    # (the torch operator's build: tests/test_torchops.py)
    env = {**os.environ, "KAUN_CACHE_DIR": str(tmp_path / "c"), "KAUN_TORCH_OPS": "0"}
    exe = [sys.executable, "-m", "kaun.cli"]
    r = subprocess.run([*exe, "build", "--dtypes", "float32"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    # one library per function and form (forms that generate the same code share one), and for
    # the elementwise functions one more of the orders 2 and 3; and the runtime
    libs = [f.name for f in (tmp_path / "c").glob("*.so")]
    n = len(libs) - 1
    assert r.stdout.startswith(f"{n} kernel libraries in {tmp_path / 'c'}")
    for e in ALL.values():
        assert any(f.startswith(f"{e.key}-float32-") for f in libs), e.key
        if e.kind == "elementwise":
            assert any(f.startswith(f"{e.key}-float32-high-") for f in libs), e.key
    assert n >= len({(e.key, e.variant(p)) for e in ALL.values() for p in e.forms_params()})
    r = subprocess.run([*exe, "cache"], capture_output=True, text=True, env=env)
    assert f"({n + 1} kernel libraries" in r.stdout and "serve NumPy, Dask and torch CPU" in r.stdout
    r = subprocess.run([*exe, "cache", "--clear"], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and not (tmp_path / "c").exists()
    r = subprocess.run([*exe, "cache"], capture_output=True, text=True,
                       env={**env, "KAUN_KERNELS": "0"})
    assert "no compiled kernels here: the formulas serve every array (KAUN_KERNELS=0)" in r.stdout
    r = subprocess.run([*exe, "build", "--dtypes", "int8"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "--dtypes must be among" in r.stderr


def test_build_without_a_compiler_says_what_to_do() -> None:
    """build_all refuses clearly without a compiler (the CLI says what to do)."""
    r = subprocess.run([sys.executable, "-m", "kaun.cli", "build"], capture_output=True, text=True,
                       env={**os.environ, "KAUN_CC": "no-such-compiler"})
    assert r.returncode == 2 and "no C compiler found (set KAUN_CC" in r.stderr


def test_kernel_code_never_imports_the_public_package() -> None:
    """The layout has no import cycle: kaun._core imports nothing of kaun; the kernel layer and
    the backends import kaun.activation nowhere."""
    src = Path(A.__file__).resolve().parents[1]
    # the leaves: _core imports only _dual (forward-mode differentiation of its formulas), which
    # imports only _special, which imports nothing of kaun
    for leaf, allowed in (("_core.py", "from ._dual import"), ("_dual.py", "from . import _special"),
                          ("_special.py", None)):
        text = (src / leaf).read_text()
        imports = [ln.strip() for ln in text.splitlines()
                   if ln.lstrip().startswith(("from .", "import kaun", "from kaun"))]
        assert (all(ln.startswith(allowed) for ln in imports) if allowed else not imports), (leaf, imports)
    for f in [*(src / "_kernels").glob("*.py"), *(src / "_backends").glob("*.py"), src / "_ir.py"]:
        text = f.read_text()
        assert "activation" not in "\n".join(
            ln for ln in text.splitlines() if ln.lstrip().startswith(("from ", "import "))
        ), f.name


def test_every_form_is_declared() -> None:
    """Entry.forms reaches every form that prep can select (what is compiled by
    ``kaun-activation build`` and lowered at the torch adapter's import, so that torch.compile
    never needs to build one): the forms of hyper-parameters across their whole range."""
    vals = [0.0, -0.0, 5e-324, 1e-300, 1e-30, 1e-6, 0.1, 0.3, 0.5, 1.0, 2.0, 3.7, 1e30, 1e300,
            -1e-300, -0.2, -1.0, -3.7, -1e30]
    rng = np.random.default_rng(0)
    for e in ALL.values():
        if not e.params or e.kind == "glu":
            continue
        declared = {e.variant(p) for p in e.forms_params()}
        for _ in range(400):
            p = tuple(float(v) for v in rng.choice(vals, size=len(e.params)))
            try:
                if e.check is not None:
                    e.check(e.qualname, p)
            except ValueError:
                continue  # refused before any formula runs
            assert e.variant(p) in declared, (e.key, p, e.variant(p))
