"""The GPU kernels (kaun._kernels.gpu, the Triton lowering), checked without a GPU.

* Under Triton's interpreter (NumPy arithmetic, a true fma) every kernel gives bitwise the C
  kernel's result: every elementwise entry and form, float16/bfloat16/float32/float64, orders
  0-3, value and vjp, on tests/bits.grid; glu's halves along every axis and the gated pair, in
  place and chunked.
* The torch adapter's dispatch: ``KAUN_TRITON=interpret`` sends CPU tensors through the Triton
  kernels (the path CUDA tensors take), with autograd to the third order: the same bits as the
  C kernels.
* Ahead of time, for sm_80 and sm_90 (Triton's compiler and the ptxas of its wheel): a sample of
  kernels compiles here, and its PTX holds no approximate or flush-to-zero arithmetic and no
  float add or multiply that ptxas may contract. (``make gpu-check``: every kernel.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from bits import bits, grid, to_torch

import kaun.activation  # noqa: F401 (fills the registry)
from kaun import _kernels as K
from kaun._backends import _torch as T
from kaun._core import ALL, Entry
from kaun._kernels import gpu as G

# triton is a test dependency (the Makefile installs it): its absence fails the run
import triton  # noqa: F401  isort: skip

pytestmark = pytest.mark.skipif(not K.enabled(), reason="no C compiler: no C kernels to compare")

ELEMENTWISE = [e for e in ALL.values() if e.kind == "elementwise"]
GLU = [e for e in ALL.values() if e.kind == "glu"]


def _both(e: Entry, p: tuple[float, ...], io: str) -> tuple[Any, Any]:
    c = K.compiled(e, p, io)
    k = G.compiled(e, p, io, interpret=True)
    assert c is not None and k is not None
    return c, k


@pytest.mark.parametrize("io", K.IO)
def test_every_kernel_gives_the_c_kernels_bits(io: str) -> None:
    """All (entry, form, order, value/vjp) cells of one I/O dtype: 0 differing elements."""
    x = to_torch(grid(io, 1 << 10), io)
    g = torch.flip(x, [0])  # a cotangent of every magnitude too
    cells, differ = 0, []
    for e in ELEMENTWISE:
        for p in e.forms_params():
            c, k = _both(e, p, io)
            for order in range(4):
                fc = (c.value, c.vjp) if order == 0 else c.order(order)
                fk = (k.value, k.vjp) if order == 0 else k.order(order)
                for which in (0,) if order == 0 else (0, 1):
                    args = (x,) if which == 0 else (x, g)
                    yc, yk = T._run(fc[which], c, *args), T._run(fk[which], k, *args)
                    cells += 1
                    n = int((bits(yc) != bits(yk)).sum())
                    if n:
                        differ.append((e.key, p, order, "vjp" if which else "f", n))
    assert cells > 100
    assert differ == [], f"{len(differ)} of {cells} cells differ: {differ[:10]}"


@pytest.mark.parametrize("io", ["float32", "bfloat16", "float64"])
@pytest.mark.parametrize("e", GLU, ids=lambda e: e.key)
def test_glu_kind_rows_every_axis_and_the_pair(e: Entry, io: str) -> None:
    """The rows layout: glu's halves along each axis (value and both halves' gradients), and
    the two-tensor form, contiguous and as two chunks of one tensor (read in place)."""
    c, k = _both(e, (), io)
    rng = np.random.default_rng(1)
    x = to_torch((rng.normal(0, 3, (4, 6, 10))).astype(np.float32).astype(
        np.dtype("float64") if io == "float64" else np.float32), "float32")
    x = x.to({"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}[io])
    for ax in range(3):
        g = torch.flip(T._glu_run(c.value, c, x, ax), [0]).contiguous()
        for fn, kn, cot in ((c.value, k.value, None), (c.vjp, k.vjp, g)):
            assert np.array_equal(bits(T._glu_run(fn, c, x, ax, cot)),
                                  bits(T._glu_run(kn, k, x, ax, cot))), (ax, cot is None)
    up, gate = torch.chunk(x, 2, -1)  # rows 10 apart, 5 long: read in place
    for a, b in ((up, gate), (up.contiguous(), gate.contiguous())):
        g = torch.ones_like(a) * 0.75
        assert np.array_equal(bits(T._pair_run(c.value, c, a, b)), bits(T._pair_run(k.value, k, a, b)))
        for yc, yk in zip(T._pair_run(c.vjp, c, a, b, g), T._pair_run(k.vjp, k, a, b, g), strict=True):
            assert np.array_equal(bits(yc), bits(yk))


def test_a_hyper_parameter_is_a_run_time_scalar() -> None:
    """Two values of elu's alpha: one generated module, results that follow the value."""
    e = ALL["elu"]
    x = torch.linspace(-3, 1, 101)
    ys = []
    for alpha in (0.5, 0.7):
        k = G.compiled(e, (alpha,), "float32", interpret=True)
        c = K.compiled(e, (alpha,), "float32")
        assert k is not None and c is not None
        ys.append(T._run(k.value, k, x))
        assert np.array_equal(bits(ys[-1]), bits(T._run(c.value, c, x)))
    assert not torch.equal(ys[0], ys[1])
    assert len({key for key in G._MODULES if key[0] == "elu" and key[2] == "float32" and not key[3]}) == 1


DISPATCH = """
import numpy as np, torch, kaun.activation as A
from kaun._kernels import gpu as G
torch.manual_seed(0)
out = {}
x0 = torch.randn(6, 8, 10, dtype=torch.float32) * 3
for dt in (torch.float32, torch.bfloat16, torch.float64):
    fs = {"gelu": A.gelu, "mish": A.mish, "elu": lambda t: A.elu(t, alpha=0.7),
          "softplus": A.softplus, "glu1": lambda t: A.glu(t, axis=1),
          "swiglu": A.swiglu, "pair": lambda t: A.geglu(up=t.chunk(2, -1)[0], gate=t.chunk(2, -1)[1])}
    for name, f in fs.items():
        for layout in ("c", "t", "cl"):
            x = x0.to(dt)
            x = {"c": x, "t": x.transpose(0, 2), "cl": x[None].to(memory_format=torch.channels_last)[0]}[layout]
            x = x.detach().requires_grad_()
            y = f(x)
            g1, = torch.autograd.grad(y.sum(), x, create_graph=True)
            if name in ("glu1", "swiglu", "pair"):
                res = (y, g1)
            else:
                g2, = torch.autograd.grad(g1.sum(), x, create_graph=True)
                g3, = torch.autograd.grad(g2.sum(), x)
                res = (y, g1, g2, g3)
            with torch.no_grad():
                res += (f(x),)
            for i, r in enumerate(res):
                out[f"{name}|{dt}|{layout}|{i}"] = r.detach().float().numpy().copy()
np.savez(OUT, **out)
print("modules", len(G._MODULES))
"""


def test_dispatch_kaun_triton_interpret(tmp_path: Path) -> None:
    """KAUN_TRITON=interpret: every call on a CPU tensor takes the Triton kernels (as a CUDA
    tensor does), through the same autograd.Functions (orders 1-3), every layout: bitwise the C
    kernels' results."""
    def run(**env: str) -> tuple[dict[str, np.ndarray], str]:
        f = tmp_path / f"out{len(env)}.npz"
        e = {**os.environ, "KAUN_CACHE_DIR": str(tmp_path / "cache"), **env}
        e.pop("KAUN_TRITON", None) if not env else None
        r = subprocess.run([sys.executable, "-c", f"OUT = {str(f)!r}\n" + textwrap.dedent(DISPATCH)],
                           capture_output=True, text=True, env=e, timeout=600, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        d = np.load(f)
        return {k: d[k] for k in d.files}, r.stdout

    c, out_c = run()
    t, out_t = run(KAUN_TRITON="interpret")
    assert "modules 0" in out_c and "modules 0" not in out_t, (out_c, out_t)
    assert c.keys() == t.keys() and len(c) > 100
    differ = [k for k in c if not np.array_equal(c[k], t[k], equal_nan=True)]
    assert differ == []


def test_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    for v, m in (("0", "off"), ("off", "off"), ("interpret", "interpret"), ("", "gpu")):
        monkeypatch.setenv("KAUN_TRITON", v)
        assert G.mode() == m
    monkeypatch.setenv("KAUN_TRITON", "0")
    assert G.compiled(ALL["gelu"], (), "float32") is None
    monkeypatch.delenv("KAUN_TRITON")
    assert G.mode() == "gpu"


# -- ahead of time ------------------------------------------------------------------------------

# a sample: one kernel set per kind of arithmetic (the exp/expm1 family, log1p, tanh, the erfc
# pieces, sqrt, hyper-parameters, glu rows), each I/O dtype at least once
SAMPLE = [("gelu", "float32"), ("mish", "bfloat16"), ("elu", "float64"), ("gelu_approx", "float16"),
          ("softplus", "float32"), ("squareplus", "float64"), ("swiglu", "bfloat16")]


@pytest.mark.parametrize("arch", [80, 90])
def test_ahead_of_time_ptx_is_ieee(arch: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    found: dict[str, list[str]] = {}
    n = 0
    for name, io in SAMPLE:
        e = ALL[name]
        for kname, k in G.aot(e, e.forms_params()[0], io, arch).items():
            ptx = k.asm["ptx"]
            assert f".target sm_{arch}" in ptx and len(k.asm["cubin"]) > 1000
            assert ".rn.f" in ptx  # (float arithmetic, rounded to nearest)
            bad = G.inexact(ptx)
            if bad:
                found[f"{name}/{io}/{kname}"] = bad[:3]
            n += 1
    assert n >= 3 * len(SAMPLE)
    assert found == {}
    # Triton's cache keeps each kernel's PTX beside its binary
    assert list((tmp_path / "triton").rglob("*.ptx")) and list((tmp_path / "triton").rglob("*.cubin"))


def test_the_gpu_benchmark_runs(tmp_path: Path) -> None:
    """benchmarks/gpu.py (run on a GPU machine) in its smoke mode: the CPU under the
    interpreter, tiny sizes; its bit check compares the interpreter with the C kernels."""
    root = Path(__file__).resolve().parents[1]
    e = {**os.environ, "KAUN_CACHE_DIR": str(tmp_path / "cache"), "KAUN_TRITON": "interpret"}
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu.py"), "--smoke"],
                       capture_output=True, text=True, env=e, timeout=600, check=False)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "bits: 16/16 cells equal" in r.stdout
    assert "| bits equal the CPU kernels' | 16/16 | yes |" in r.stdout
