"""Accuracy of kaun.activation against mpmath, beside torch.nn.functional, jax.nn and naive NumPy.

    .venv/bin/python benchmarks/accuracy.py            # everything, writes docs/accuracy.md
    .venv/bin/python benchmarks/accuracy.py --quick    # a smaller grid (development)
    .venv/bin/python benchmarks/accuracy.py --functions gelu silu --dtypes float32
    .venv/bin/python benchmarks/accuracy.py --orders 2 3 --out /tmp/a.md  # 2nd and 3rd only

For every function (hyper-parameters at their defaults; prelu with alpha = 0.25), every dtype and
every library, the error in ULPs of the output dtype of the value and of the derivative (kaun's
via ``A.derivative(f)`` on NumPy and through autodiff on torch and JAX; the peers' through
autodiff; naive NumPy's from the textbook formula of f'), over every finite float16 and bfloat16
value and >= 20,000 float32 and float64 values over the whole finite range. The rule is stated in
``_reference.RULE``. The mpmath reference is cached in benchmarks/.cache/ (a rerun takes a few
minutes; the first run about ten on two cores).

The second and third derivatives (``--orders 2 3``) in float32 and float64: kaun's by
``A.derivative(f, order=n)`` on NumPy and through nested autodiff on torch and JAX, the peers'
through nested autodiff, against closed forms of f'' and f''' (``_reference.REF23``, cached in
files of their own: about 3.5 minutes more the first time on two cores, under a minute after).

glu is not measured: it is ``first * sigmoid(second)`` through the same sigmoid formula and one
multiplication, so its error is that of sigmoid plus half an ulp.

Beyond the spec (``A.names(extras=True)``): relu_squared and quick_gelu are measured like the
elementwise functions above (marked as extras in the tables); the gated family (swiglu, geglu,
geglu_approx, reglu) has a section of its own: the two-array form ``f(gate=g, up=u)`` at (gate,
up) pairs (every gate of the grid with each up of ``_reference.UPS``), the value and both partial
derivatives, kaun on NumPy (its explicit vjp), torch and JAX (autodiff), beside the composites
``F.silu(g) * u`` etc. and jax.nn's. Its reference is the activation's cached one times the exact
up (seconds), so it adds no mpmath time.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing as mp_
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _reference as R  # noqa: E402

CACHE = HERE / ".cache"
DOC = HERE.parent / "docs" / "accuracy.md"

TARGET = R.TARGET
LIBS = ("kaun/numpy", "kaun/torch", "kaun/jax", "torch", "jax", "numpy-naive")
KAUN = LIBS[:3]
ORDERS = (0, 1, 2, 3)
LIBS23 = LIBS[:5]  # orders 2 and 3: no naive NumPy
DTYPES23 = ("float32", "float64")  # orders 2 and 3: no half precision
TARGET23 = 16.0  # kaun's target for orders 2 and 3, in float32 and float64
ALL = (*R.ELEMENTWISE, *R.GATED)  # the elementwise functions (the extras last), the gated family


# -- the reference, cached ----------------------------------------------------------------------


def _key(xs: np.ndarray) -> str:
    return hashlib.sha1(xs.tobytes()).hexdigest()[:16]


def _work(args: tuple[tuple[str, ...], np.ndarray, bool]) -> dict[str, Any]:
    names, xs, high = args
    out = (R.evaluate23 if high else R.evaluate)(names, xs)
    return {n: [(r.hi, r.lo, r.k) for r in out[n]] for n in names}


def _cache_file(n: str, key: str, high: bool) -> Path:
    # orders 2 and 3 in files of their own: the value/derivative files stay valid
    if high:
        return CACHE / f"ref23-v{R.REF23_VERSION}-{n}-{key}.npz"
    return CACHE / f"ref-v{R.REF_VERSION}-{n}-{key}.npz"


def references(names: tuple[str, ...], xs: np.ndarray, procs: int, high: bool = False
               ) -> dict[str, tuple[R.Ref, R.Ref]]:
    """The reference for each function at xs, from the cache or computed (in procs processes):
    (f, f'), or with high (f'', f''')."""
    CACHE.mkdir(exist_ok=True)
    key = _key(xs)
    out: dict[str, tuple[R.Ref, R.Ref]] = {}
    missing = []
    for n in names:
        f = _cache_file(n, key, high)
        if f.exists():
            z = np.load(f)
            out[n] = (R.Ref(z["vh"], z["vl"], z["vk"]), R.Ref(z["dh"], z["dl"], z["dk"]))
        else:
            missing.append(n)
    if missing:
        t0 = time.time()
        chunks = np.array_split(xs, max(1, procs * 8))
        todo = [(tuple(missing), c, high) for c in chunks if len(c)]
        if procs > 1:
            with mp_.get_context("fork").Pool(procs) as pool:
                parts = pool.map(_work, todo)
        else:
            parts = [_work(t) for t in todo]
        for n in missing:
            cols = [np.concatenate([p[n][j][i] for p in parts]) for j in (0, 1) for i in (0, 1, 2)]
            vh, vl, vk, dh, dl, dk = cols
            np.savez(_cache_file(n, key, high), vh=vh, vl=vl, vk=vk, dh=dh, dl=dl, dk=dk)
            out[n] = (R.Ref(vh, vl, vk), R.Ref(dh, dl, dk))
        what = "orders 2 and 3" if high else "value and derivative"
        print(f"  reference ({what}): {len(missing)} function(s) x {len(xs)} points in "
              f"{time.time() - t0:.0f} s", flush=True)
    return out


# -- the libraries ------------------------------------------------------------------------------

_SELU_A = 1.6732632423543772848170429916717
_SELU_L = 1.0507009873554804934193349852946
_C = 0.7978845608028654


def _naive(name: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """Textbook formulas of f and f', in numpy (scipy for erf), in the input dtype."""
    import scipy.special as ss

    def sig(x: Any) -> Any:
        return 1 / (1 + np.exp(-x))

    def sp(x: Any) -> Any:
        return np.log(1 + np.exp(x))

    def gelu_t(x: Any) -> Any:
        return np.tanh(_C * (x + 0.044715 * x**3))

    f: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
        "relu": (lambda x: np.maximum(x, 0), lambda x: (x > 0) * 1.0),
        "sigmoid": (sig, lambda x: sig(x) * (1 - sig(x))),
        "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
        "relu6": (lambda x: np.minimum(np.maximum(x, 0), 6), lambda x: ((x > 0) & (x < 6)) * 1.0),
        "leaky_relu": (lambda x: np.where(x >= 0, x, 0.01 * x), lambda x: np.where(x > 0, 1, 0.01)),
        "hard_tanh": (lambda x: np.clip(x, -1, 1), lambda x: ((x > -1) & (x < 1)) * 1.0),
        "hard_sigmoid": (lambda x: np.clip(x / 6 + 0.5, 0, 1),
                         lambda x: ((x > -3) & (x < 3)) / 6.0),
        "prelu": (lambda x: np.where(x >= 0, x, 0.25 * x), lambda x: np.where(x > 0, 1, 0.25)),
        "elu": (lambda x: np.where(x > 0, x, np.exp(x) - 1),
                lambda x: np.where(x > 0, 1, np.exp(x))),
        "selu": (lambda x: _SELU_L * np.where(x > 0, x, _SELU_A * (np.exp(x) - 1)),
                 lambda x: _SELU_L * np.where(x > 0, 1, _SELU_A * np.exp(x))),
        "celu": (lambda x: np.where(x > 0, x, np.exp(x) - 1),
                 lambda x: np.where(x > 0, 1, np.exp(x))),
        "gelu": (lambda x: 0.5 * x * (1 + ss.erf(x / np.sqrt(2))),
                 lambda x: 0.5 * (1 + ss.erf(x / np.sqrt(2)))
                 + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)),
        "gelu_approx": (lambda x: 0.5 * x * (1 + gelu_t(x)),
                        lambda x: 0.5 * (1 + gelu_t(x)) + 0.5 * x * (1 - gelu_t(x) ** 2)
                        * _C * (1 + 3 * 0.044715 * x * x)),
        "silu": (lambda x: x * sig(x), lambda x: sig(x) * (1 + x * (1 - sig(x)))),
        "hard_silu": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
                      lambda x: np.where(x <= -3, 0, np.where(x >= 3, 1, x / 3 + 0.5))),
        "mish": (lambda x: x * np.tanh(sp(x)),
                 lambda x: np.tanh(sp(x)) + x * (1 - np.tanh(sp(x)) ** 2) * sig(x)),
        "softplus": (sp, sig),
        "softsign": (lambda x: x / (1 + np.abs(x)), lambda x: 1 / (1 + np.abs(x)) ** 2),
        "squareplus": (lambda x: 0.5 * (x + np.sqrt(x * x + 4)),
                       lambda x: 0.5 * (1 + x / np.sqrt(x * x + 4))),
        "log_sigmoid": (lambda x: -np.log(1 + np.exp(-x)), lambda x: 1 - sig(x)),
        "sparse_plus": (lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, 0.25 * (x + 1) ** 2)),
                        lambda x: np.clip(0.5 * (x + 1), 0, 1)),
        "sparse_sigmoid": (lambda x: np.clip(0.5 * (x + 1), 0, 1),
                           lambda x: ((x > -1) & (x < 1)) * 0.5),
        "relu_squared": (lambda x: np.maximum(x, 0) ** 2, lambda x: 2 * np.maximum(x, 0)),
        "quick_gelu": (lambda x: x * sig(1.702 * x),
                       lambda x: sig(1.702 * x) * (1 + 1.702 * x * (1 - sig(1.702 * x)))),
    }
    return f[name]


class Libs:
    """Evaluates f and f' of one function, in one library, on inputs of one dtype."""

    def __init__(self) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        import ml_dtypes
        import torch
        import torch.nn.functional as F

        import kaun.activation as A

        self.A, self.jax, self.jnp, self.torch, self.F = A, jax, jnp, torch, F
        self.tdt = {"float16": torch.float16, "bfloat16": torch.bfloat16,
                    "float32": torch.float32, "float64": torch.float64}
        self.ml = ml_dtypes
        jn = jax.nn
        self.jax_fns: dict[str, Callable[[Any], Any]] = {
            n: getattr(jn, n) for n in (
                "relu", "sigmoid", "tanh", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid",
                "elu", "selu", "celu", "silu", "hard_silu", "mish", "softplus", "squareplus",
                "log_sigmoid", "sparse_plus", "sparse_sigmoid")
        }
        self.jax_fns["gelu"] = lambda x: jn.gelu(x, approximate=False)
        self.jax_fns["gelu_approx"] = lambda x: jn.gelu(x, approximate=True)
        self.jax_fns["softsign"] = jn.soft_sign
        # the extras: as users write them (1.702 a Python float, so in the input dtype)
        self.jax_fns["relu_squared"] = lambda x: jn.relu(x) ** 2
        self.jax_fns["quick_gelu"] = lambda x: x * jn.sigmoid(1.702 * x)
        self.torch_fns: dict[str, Callable[[Any], Any]] = {
            "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu6": F.relu6,
            "leaky_relu": F.leaky_relu, "hard_tanh": F.hardtanh, "hard_sigmoid": F.hardsigmoid,
            "prelu": lambda x: F.prelu(x, torch.tensor([0.25], dtype=x.dtype)),
            "elu": F.elu, "selu": F.selu, "celu": F.celu, "gelu": F.gelu,
            "gelu_approx": lambda x: F.gelu(x, approximate="tanh"), "silu": F.silu,
            "hard_silu": F.hardswish, "mish": F.mish, "softplus": F.softplus,
            "softsign": F.softsign, "log_sigmoid": F.logsigmoid,
            "relu_squared": lambda x: torch.relu(x) ** 2,
            "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
        }
        # the gated family: the composites up * act(gate), as users write them
        self.torch_gated: dict[str, Callable[[Any, Any], Any]] = {
            "swiglu": lambda g, u: F.silu(g) * u,
            "geglu": lambda g, u: F.gelu(g) * u,
            "geglu_approx": lambda g, u: F.gelu(g, approximate="tanh") * u,
            "reglu": lambda g, u: F.relu(g) * u,
        }
        self.jax_gated: dict[str, Callable[[Any, Any], Any]] = {
            "swiglu": lambda g, u: jn.silu(g) * u,
            "geglu": lambda g, u: jn.gelu(g, approximate=False) * u,
            "geglu_approx": lambda g, u: jn.gelu(g, approximate=True) * u,
            "reglu": lambda g, u: jn.relu(g) * u,
        }
        self._jit: dict[tuple[Any, ...], Any] = {}

    def kaun_fn(self, name: str) -> Callable[[Any], Any]:
        fn = getattr(self.A, name)
        if name == "prelu":
            return lambda x: fn(x, 0.25)
        return fn  # type: ignore[no-any-return]

    def run(self, lib: str, name: str, xs: np.ndarray, dtype: str
            ) -> tuple[np.ndarray, np.ndarray] | None:
        """(f(x), f'(x)) as float64 arrays, or None where the library lacks the function."""
        x_np = R.cast(xs, dtype)
        with np.errstate(all="ignore"):
            if lib == "numpy-naive":
                f, d = _naive(name)
                xw = x_np.astype(np.float32) if dtype == "bfloat16" else x_np

                def rd(y: Any) -> np.ndarray:
                    y = np.broadcast_to(np.asarray(y), xw.shape)
                    return y.astype(R.FMT[dtype].np).astype(np.float64)

                return rd(f(xw)), rd(d(xw))
            if lib == "kaun/numpy":
                fn = self.kaun_fn(name)
                y = fn(x_np)
                if name == "prelu":
                    dy = self.A.derivative(self.A.prelu)(x_np, 0.25, np.ones_like(x_np))[0]
                else:
                    dy = self.A.derivative(getattr(self.A, name))(x_np)
                return np.asarray(y).astype(np.float64), np.asarray(dy).astype(np.float64)
        if lib in ("kaun/torch", "torch"):
            if lib == "torch" and name not in self.torch_fns:
                return None
            fn = self.kaun_fn(name) if lib == "kaun/torch" else self.torch_fns[name]
            t = self.torch
            xt = t.from_numpy(xs).to(self.tdt[dtype]).requires_grad_(True)
            y = fn(xt)
            (g,) = t.autograd.grad(y, xt, t.ones_like(y))
            return (y.detach().to(t.float64).numpy(), g.detach().to(t.float64).numpy())
        if lib in ("kaun/jax", "jax"):
            if lib == "jax" and name not in self.jax_fns:
                return None
            key = (lib, name)
            if key not in self._jit:
                fn = self.kaun_fn(name) if lib == "kaun/jax" else self.jax_fns[name]
                jax = self.jax

                def both(x: Any, fn: Any = fn) -> Any:
                    y, pull = jax.vjp(fn, x)
                    return y, pull(self.jnp.ones_like(y))[0]

                self._jit[key] = jax.jit(both)
            y, g = self._jit[key](self.jnp.asarray(x_np))
            return np.asarray(y).astype(np.float64), np.asarray(g).astype(np.float64)
        raise ValueError(lib)

    def run_high(self, lib: str, name: str, xs: np.ndarray, dtype: str, orders: tuple[int, ...]
                 ) -> dict[int, np.ndarray | str] | None:
        """{order: f^(order)(x) as float64, or the error message where the library cannot give
        it} for orders in (2, 3); None where the library lacks the function."""
        top = max(orders)
        out: dict[int, np.ndarray | str] = {}
        x_np = R.cast(xs, dtype)
        if lib == "kaun/numpy":
            for k in orders:
                try:
                    with np.errstate(all="ignore"):
                        if name == "prelu":  # its derivative is a vector-Jacobian product
                            y = self.A.derivative(self.A.prelu, order=k)(
                                x_np, 0.25, np.ones_like(x_np))[0]
                        else:
                            y = self.A.derivative(getattr(self.A, name), order=k)(x_np)
                    out[k] = np.asarray(y).astype(np.float64)
                except (TypeError, ValueError, NotImplementedError) as e:
                    out[k] = f"{type(e).__name__}: {e}"
            return out
        if lib in ("kaun/torch", "torch"):
            if lib == "torch" and name not in self.torch_fns:
                return None
            fn = self.kaun_fn(name) if lib == "kaun/torch" else self.torch_fns[name]
            t = self.torch
            xt = t.from_numpy(xs).to(self.tdt[dtype]).requires_grad_(True)
            g = fn(xt)
            for k in range(1, top + 1):
                try:
                    if g.requires_grad:  # (a constant derivative has no graph: its next is 0)
                        (g,) = t.autograd.grad(g.sum(), xt, create_graph=k < top,
                                               allow_unused=True, materialize_grads=True)
                    else:
                        g = t.zeros_like(xt)
                except RuntimeError as e:  # e.g. "derivative for ... is not implemented"
                    msg = f"RuntimeError: {str(e).splitlines()[0]}"
                    out.update({j: msg for j in orders if j >= k})
                    break
                if k in orders:
                    out[k] = g.detach().to(t.float64).numpy()
            return out
        if lib in ("kaun/jax", "jax"):
            if lib == "jax" and name not in self.jax_fns:
                return None
            key = (lib, name, top)
            if key not in self._jit:
                fn = self.kaun_fn(name) if lib == "kaun/jax" else self.jax_fns[name]
                jax = self.jax
                ds = [fn]
                for _ in range(top):  # nested reverse mode on a scalar, mapped over x
                    ds.append(jax.grad(ds[-1]))
                self._jit[key] = jax.jit(jax.vmap(lambda x, ds=ds: tuple(d(x) for d in ds[2:])))
            try:
                ys = self._jit[key](self.jnp.asarray(x_np))
            except Exception as e:  # noqa: BLE001 (a library that cannot trace an order)
                return {k: f"{type(e).__name__}: {str(e).splitlines()[0]}" for k in orders}
            return {k: np.asarray(ys[k - 2]).astype(np.float64) for k in orders}
        raise ValueError(lib)


    def run_gated(self, lib: str, name: str, gate: np.ndarray, up: np.ndarray, dtype: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(f, d/dgate, d/dup) of the two-array form f(gate=g, up=u) as float64 arrays: kaun on
        NumPy through its explicit vjp ``A.derivative(f)(ones, gate=g, up=u)``, the others
        through autodiff with a cotangent of ones."""
        g_np, u_np = R.cast(gate, dtype), R.cast(up, dtype)
        if lib == "kaun/numpy":
            f = getattr(self.A, name)
            with np.errstate(all="ignore"):
                y = f(gate=g_np, up=u_np)
                dg, du = self.A.derivative(f)(np.ones_like(g_np), gate=g_np, up=u_np)
            return tuple(np.asarray(a).astype(np.float64) for a in (y, dg, du))  # type: ignore
        if lib in ("kaun/torch", "torch"):
            t = self.torch
            if lib == "torch":
                fn = self.torch_gated[name]
            else:
                fk = getattr(self.A, name)

                def fn(g: Any, u: Any, fk: Any = fk) -> Any:
                    return fk(gate=g, up=u)
            gt = t.from_numpy(gate).to(self.tdt[dtype]).requires_grad_(True)
            ut = t.from_numpy(up).to(self.tdt[dtype]).requires_grad_(True)
            y = fn(gt, ut)
            dg, du = t.autograd.grad(y, (gt, ut), t.ones_like(y))
            return tuple(a.detach().to(t.float64).numpy() for a in (y, dg, du))  # type: ignore
        if lib in ("kaun/jax", "jax"):
            key = (lib, name, "gated")
            if key not in self._jit:
                if lib == "jax":
                    fn = self.jax_gated[name]
                else:
                    fk = getattr(self.A, name)

                    def fn(g: Any, u: Any, fk: Any = fk) -> Any:
                        return fk(gate=g, up=u)
                jax = self.jax

                def all3(g: Any, u: Any, fn: Any = fn) -> Any:
                    y, pull = jax.vjp(fn, g, u)
                    return (y, *pull(self.jnp.ones_like(y)))

                self._jit[key] = jax.jit(all3)
            out = self._jit[key](self.jnp.asarray(g_np), self.jnp.asarray(u_np))
            return tuple(np.asarray(a).astype(np.float64) for a in out)  # type: ignore
        raise ValueError(lib)


# -- statistics ---------------------------------------------------------------------------------


@dataclass
class Stat:
    max: float
    p999: float
    at: float  # x of the worst case
    y: float  # the result there
    t: float  # the truth there
    nonfin: int
    max_normal: float  # max over points whose input and truth are not subnormal (XLA's FTZ)
    kink: int = 0
    n: int = 0
    at_normal: float = float("nan")  # x of the largest error among the `max_normal` points
    idx: int = -1  # the index of the worst input (the gated family: its up)


def stat(err: np.ndarray, xs: np.ndarray, y: np.ndarray, ref: R.Ref, dtype: str,
         keep: np.ndarray, also: np.ndarray | None = None) -> Stat:
    """The statistics of err over keep; `normal` without the points whose input or truth is
    subnormal, nor those of the mask also (the gated family: a subnormal intermediate)."""
    e = err[keep]
    if e.size == 0:
        return Stat(0.0, 0.0, float("nan"), float("nan"), float("nan"), 0, 0.0)
    i = int(np.argmax(e))
    idx = np.flatnonzero(keep)[i]
    p = float(np.quantile(e, 0.999, method="higher"))
    fm = R.FMT[dtype]
    tv = ref.approx()
    small = fm.tiny * 2 ** (fm.p - 1)  # the smallest normal
    sub = ((np.abs(xs) < small) & (xs != 0)) | ((np.abs(tv) < small) & (tv != 0))
    if also is not None:
        sub |= also
    kn = keep & ~sub
    mn = err[kn]
    nf = int(R.nonfinite(y, ref, dtype)[keep].sum())
    atn = float(xs[np.flatnonzero(kn)[int(np.argmax(mn))]]) if mn.size else float("nan")
    return Stat(float(e[i]), p, float(xs[idx]), float(y[idx]), float(tv[idx]), nf,
                float(mn.max()) if mn.size else 0.0, n=int(e.size), at_normal=atn, idx=int(idx))


def measure(names: tuple[str, ...], dtypes: tuple[str, ...], quick: bool, procs: int
            ) -> dict[tuple[str, str, str], tuple[Stat, Stat] | None]:
    grids = {d: R.grid(d, quick) for d in dtypes}
    refs = {}
    for d in dtypes:
        print(f"{d}: {len(grids[d])} points", flush=True)
        refs[d] = references(names, grids[d], procs)
    libs = Libs()
    res: dict[tuple[str, str, str], tuple[Stat, Stat] | None] = {}
    for d in dtypes:
        xs = grids[d]
        for n in names:
            vref, dref = refs[d][n]
            kinks = R.kink_mask(n, xs)
            conv = None
            for lib in LIBS:
                out = libs.run(lib, n, xs, d)
                if out is None:
                    res[(n, d, lib)] = None
                    continue
                y, dy = out
                if conv is None:
                    conv = dy  # kaun/numpy's derivative: the convention at kinks
                ev = R.ulp_error(y, vref, d, xs, R.ZEROS.get((n, 0), ()))
                ed = R.ulp_error(dy, dref, d, xs, R.ZEROS.get((n, 1), ()))
                sv = stat(ev, xs, y, vref, d, np.ones(xs.shape, bool))
                sd = stat(ed, xs, dy, dref, d, ~kinks)
                sd.kink = int((kinks & (dy != conv)).sum())
                res[(n, d, lib)] = (sv, sd)
        print(f"  measured {d}", flush=True)
    return res


# Orders 2 and 3: {(function, dtype, library, order): Stat, or the library's error message where
# it cannot give that order, or None where it lacks the function}
Res23 = dict[tuple[str, str, str, int], Stat | str | None]


def measure23(names: tuple[str, ...], dtypes: tuple[str, ...], quick: bool, procs: int,
              orders: tuple[int, ...]) -> Res23:
    """The second and third derivatives (orders among 2, 3) in float32 and float64."""
    grids = {d: R.grid(d, quick) for d in dtypes}
    refs = {}
    for d in dtypes:
        print(f"{d}: {len(grids[d])} points (orders {', '.join(map(str, orders))})", flush=True)
        refs[d] = references(names, grids[d], procs, high=True)
    libs = Libs()
    res: Res23 = {}
    for d in dtypes:
        xs = grids[d]
        for n in names:
            raw = {lib: libs.run_high(lib, n, xs, d, orders) for lib in LIBS23}
            for k in orders:
                ref = refs[d][n][k - 2]
                kinks = R.kink_mask(n, xs, k)
                conv = (raw["kaun/numpy"] or {}).get(k)
                if not isinstance(conv, np.ndarray):  # without it, the reference's convention
                    conv = R.cast(ref.approx(), d).astype(np.float64)
                for lib in LIBS23:
                    out = raw[lib]
                    y = None if out is None else out[k]
                    if not isinstance(y, np.ndarray):
                        res[(n, d, lib, k)] = y  # None (no such function) or why it raised
                        continue
                    err = R.ulp_error(y, ref, d, xs, R.ZEROS.get((n, k), ()))
                    st = stat(err, xs, y, ref, d, ~kinks)
                    st.kink = int((kinks & (y != conv)).sum())
                    res[(n, d, lib, k)] = st
        print(f"  measured {d} (orders {', '.join(map(str, orders))})", flush=True)
    return res


# The gated family: {(function, dtype, library): (value, d/dgate, d/dup)}
ResG = dict[tuple[str, str, str], tuple[Stat, Stat, Stat]]
GATED_LIBS = LIBS[:5]  # kaun on NumPy, torch, JAX; torch's and jax's composites
GQ = ("value", "d/dgate", "d/dup")


def gated_target(dtype: str) -> tuple[float, float, float]:
    """kaun's bound for (value, d/dgate, d/dup): the activation's plus half an ulp for the
    products (value, d/dgate); d/dup is the activation's value itself."""
    tv, td = TARGET[dtype]
    return tv + 0.5, td + 0.5, tv


def gated_error(y: np.ndarray, ref: R.Ref, dtype: str, gate: np.ndarray, up: np.ndarray,
                zeros: tuple[float, ...]) -> np.ndarray:
    """The ULP rule; near the zeros of act' (d/dgate = up act'(gate)), the absolute rule scaled
    by up: |y - t| / max(ulp(t), ulp(up)), i.e. the rule on (y, t) / 2^e for up = m 2^e."""
    err = R.ulp_error(y, ref, dtype)
    if zeros:
        e = (np.frexp(up)[1] - 1).astype(np.int64)  # up = m 2^e, 1 <= |m| < 2
        with np.errstate(all="ignore"):
            ys = np.ldexp(y, (-e).astype(np.int32))
        es = R.ulp_error(ys, R.Ref(ref.hi, ref.lo, ref.k - e), dtype, gate, zeros)
        near = np.zeros(gate.shape, bool)
        for x0 in zeros:
            near |= np.abs(gate - x0) <= R.ZERO_WINDOW
        err = np.where(near, es, err)
    return err


def measure_gated(names: tuple[str, ...], dtypes: tuple[str, ...], quick: bool, procs: int
                  ) -> ResG:
    """swiglu, geglu, geglu_approx, reglu in their two-array form, at (gate, up) pairs."""
    acts = tuple(dict.fromkeys(R.GATED[n] for n in names))
    res: ResG = {}
    libs = Libs()
    nu = len(R.UPS)
    for d in dtypes:
        gate, up = R.gated_pairs(d, quick)
        print(f"{d}: {len(gate)} (gate, up) pairs", flush=True)
        refs = references(acts, R.grid(d, quick), procs)
        for n in names:
            act = R.GATED[n]
            av, ad = (R.repeat(r, nu) for r in refs[act])
            rv, rg, ru = R.gated_reference(av, ad, up)
            kinks = (gate == 0.0) if act == "relu" else np.zeros(gate.shape, bool)
            small = math.ldexp(1.0, R.FMT[d].emin)
            sub_v, sub_d = ((np.abs(t) < small) & (t != 0) for t in (av.approx(), ad.approx()))
            conv = None
            for lib in GATED_LIBS:
                y, dg, du = libs.run_gated(lib, n, gate, up, d)
                if conv is None:
                    conv = dg  # kaun/numpy's d/dgate: the convention at reglu's kink
                zs = R.ZEROS.get((act, 1), ())
                sts = (stat(gated_error(y, rv, d, gate, up, ()), gate, y, rv, d,
                            np.ones(gate.shape, bool), sub_v),
                       stat(gated_error(dg, rg, d, gate, up, zs), gate, dg, rg, d, ~kinks, sub_d),
                       stat(gated_error(du, ru, d, gate, up, ()), gate, du, ru, d,
                            np.ones(gate.shape, bool)))
                sts[1].kink = int((kinks & (dg != conv)).sum())
                for st in sts:  # the up of the worst pair, in place of its index
                    st.idx = -1 if st.idx < 0 else int(np.flatnonzero(up == up[st.idx])[0] % nu)
                res[(n, d, lib)] = sts
        print(f"  measured {d} (gated)", flush=True)
    return res


def _up(st: Stat) -> str:
    return "-" if st.idx < 0 else f"{R.UPS[st.idx]:.6g}"


def misses_gated(res: ResG, names: tuple[str, ...], dtypes: tuple[str, ...]
                 ) -> tuple[list[str], list[str]]:
    """(rows of real misses, rows of misses that vanish without the pairs with a subnormal
    gate, intermediate or result: the `normal` figure)."""
    out, ftz = [], []
    for n in names:
        for d in dtypes:
            for lib in KAUN:
                r = res.get((n, d, lib))
                if r is None:
                    continue
                for q, s, tgt in zip(GQ, r, gated_target(d), strict=True):
                    if s.max > tgt or s.nonfin:
                        row = (f"| {n} | {d} | {lib} | {q} | {fmt(s.max)} (target {tgt:g}) "
                               f"| {fx(s.at)} | {_up(s)} | {fmt(s.max_normal)} | {s.nonfin} |")
                        if s.max_normal <= tgt and not s.nonfin:
                            ftz.append(row)
                        else:
                            out.append(row)
    return out, ftz


def _doc_gated(res: ResG, names: tuple[str, ...], dtypes: tuple[str, ...]) -> list[str]:
    """The section of the gated family."""
    L: list[str] = ["## The gated family\n"]
    acts = ", ".join(f"{n} = up * {R.GATED[n]}(gate)" for n in names)
    counts = ", ".join(f"{d} {len(R.grid(d)) * len(R.UPS)}" for d in dtypes
                       if any((n, d, KAUN[0]) in res for n in names))
    tg = "; ".join(f"{d} {'/'.join(f'{t:g}' for t in gated_target(d))}" for d in dtypes)
    zs = "; ".join(f"{n} " + ", ".join(f"{z:.6g}" for z in R.ZEROS[(R.GATED[n], 1)])
                   for n in names if (R.GATED[n], 1) in R.ZEROS)
    L.append(
        f"Beyond the spec: {acts}, in their two-array form `f(gate=g, up=u)` (the split form "
        "`f(x, axis=-1)`, `first_half * act(second_half)`, is the same formula, bit for bit: "
        "tests/test_gated.py). Measured like the functions above: ULPs of the output dtype "
        "against mpmath, on (gate, up) pairs: every gate of the grid above (every finite "
        "float16/bfloat16 value; the >= 20,000 float32/float64 values over the whole finite "
        f"range) with each up in {', '.join(f'{u:g}' for u in R.UPS)} (exact in every dtype). "
        f"Pairs: {counts}. The reference: the activation's (value, derivative) of `REF`, exact "
        "at the gate, times the exact up (`_reference.times`).\n")
    L.append(
        "- Three quantities: the value `up * act(gate)`, `d/dgate = up * act'(gate)` and "
        "`d/dup = act(gate)`. kaun on NumPy: the value by `f(gate=g, up=u)`, both partial "
        "derivatives by its explicit vector-Jacobian product `A.derivative(f)(ones, gate=g, "
        "up=u)` (the pair `(dL/dgate, dL/dup)`); kaun on torch and on JAX through autodiff "
        "(`torch.autograd.grad` over (gate, up), `jax.vjp`); beside the composites as users "
        "write them, `F.silu(g) * u`, `F.gelu(g) * u`, `F.gelu(g, approximate=\"tanh\") * u`, "
        "`F.relu(g) * u` and jax.nn's `silu`, `gelu(approximate=False)`, "
        "`gelu(approximate=True)`, `relu`, times u (autodiff).")
    L.append(
        "- Targets for kaun: the product adds at most half an ulp to the activation's bound, so "
        "value and d/dgate <= the activation's value and derivative targets + 1/2; d/dup is the "
        f"activation's value itself, within its target (value/d/dgate/d/dup: {tg}); no "
        "non-finite result where the truth is finite.")
    L.append(
        f"- Near the interior zeros of act' ({zs}), |gate - x0| <= {R.ZERO_WINDOW}, d/dgate is "
        "measured by the absolute rule above scaled by up: |y - t| / max(ulp(t), ulp(up)). "
        "reglu's d/dgate at gate = 0 is a convention (up * relu'(0) = 0, kaun's): left out of "
        "the statistics, the disagreements with kaun/numpy counted in `kink`.")
    L.append(
        "- `normal`: without the pairs whose gate, whose true result or whose intermediate (act(gate) "
        "for the value, act'(gate) for d/dgate) is subnormal. A subnormal intermediate carries "
        "an absolute rounding (half the smallest subnormal), which the product with |up| > 1 "
        "turns into many ULPs of a result that is itself normal or larger; and XLA on CPU "
        "flushes it to zero (FTZ). `at gate`, `at up`: the pair of the largest error.\n")
    for j, q in enumerate(GQ):
        L.append(f"### Headline: worst {q} error (ULP), kaun vs torch vs jax (gated)\n")
        L.append("kaun: the worst of its NumPy, torch and JAX backends; on JAX (kaun and jax.nn "
                 "alike) the `normal` figure (see above): without the pairs with a subnormal "
                 "gate, intermediate or true value.\n")
        L.append("| function | " + " | ".join(f"{d} kaun | {d} torch | {d} jax" for d in dtypes)
                 + " |")
        L.append("|---" * (1 + 3 * len(dtypes)) + "|")
        for n in names:
            cells = []
            for d in dtypes:
                ks = [(lb, res.get((n, d, lb))) for lb in KAUN]
                cells.append(fmt(max((r[j].max_normal if lb == "kaun/jax" else r[j].max)
                                     for lb, r in ks if r is not None)))
                for lb in ("torch", "jax"):
                    r = res.get((n, d, lb))
                    cells.append("-" if r is None else
                                 fmt(r[j].max_normal if lb == "jax" else r[j].max))
            L.append(f"| {n} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("### Where kaun misses a target (gated)\n")
    ms, ftz = misses_gated(res, names, dtypes)
    hdr = ("| function | dtype | backend | what | max ULP | at gate | at up | normal | nonfin |\n"
           "|---|---|---|---|---|---|---|---|---|")
    if ms:
        L.append(hdr)
        L += ms
        L.append("")
        L.append(GATED_NOTE)
    else:
        L.append("Nowhere" + (", except at subnormal gates, intermediates or results (below)."
                              if ftz else "."))
    L.append("")
    if ftz:
        L.append("Only at the pairs with a subnormal gate, intermediate or result (without them, "
                 "column `normal`, each meets its target): on NumPy and torch the subnormal "
                 "intermediate's absolute rounding times |up| (see `normal` above); on JAX also "
                 "XLA's flush of subnormals to zero.\n")
        L.append(hdr)
        L += ftz
        L.append("")
    L.append("### Every function, dtype and library (gated)\n")
    L.append("| function | dtype | library | what | max | p99.9 | at gate | at up | normal | nonfin "
             "| kink |")
    L.append("|---" * 11 + "|")
    for n in names:
        for d in dtypes:
            for lb in GATED_LIBS:
                r = res.get((n, d, lb))
                if r is None:
                    continue
                for q, st in zip(GQ, r, strict=True):
                    kink = str(st.kink) if q == "d/dgate" else "-"
                    L.append(f"| {n} | {d} | {lb} | {q} | {fmt(st.max)} | {fmt(st.p999)} "
                             f"| {fx(st.at)} | {_up(st)} | {fmt(st.max_normal)} | {st.nonfin} "
                             f"| {kink} |")
    L.append("")
    return L


GATED_NOTE = (
    "Why, where `normal` is over the target too: the bound `act + 1/2` counts the activation's "
    "error in ULPs of act(gate), but the product's are ULPs of up * act(gate). An error of e ULP "
    "of act(gate) is e |up| ulp(act(gate)) / ulp(up act(gate)) ULP of the product: between e/2 "
    "and 2e, by where the two significands fall in their binades (up to 1.5 e for up = -0.75 = "
    "-1.5 * 2^-1), before the product's own rounding adds its 1/2. So gelu's 2.7 to 2.9 ULP "
    "(within its 4) give geglu 4.6 to 4.9 at up = -0.75, with kaun's result there exactly the "
    "rounded product of its gelu and up. Relative to the true value the product adds at most "
    "half an ulp's worth, 2^-p, to the activation's error; in ULPs of the product the bound that "
    "holds is 1.5 x the activation's + 1/2 for these ups (2 x in general).")


def console_gated(res: ResG, names: tuple[str, ...], dtypes: tuple[str, ...]) -> None:
    print("\nthe gated family: worst ULP value/d-dgate/d-dup")
    for n in names:
        for d in dtypes:
            cells = [f"{lb}=" + "/".join(fmt(s.max) for s in res[(n, d, lb)])
                     for lb in GATED_LIBS if (n, d, lb) in res]
            print(f"{n:15s} {d:8s} " + " ".join(cells))
    ms, ftz = misses_gated(res, names, dtypes)
    print(f"\n{len(ms)} miss(es) of kaun's gated targets (and {len(ftz)} on JAX only where the "
          "gate or the truth is subnormal):")
    for m in ms:
        print(m)


NOTES = {  # why kaun misses, where it does (shown only for the misses that the run finds)
    ("selu", "float32", "kaun/torch"):
        "kaun's torch backend serves selu with torch's own `F.selu` kernel, whose float32 lambda "
        "is rounded up: it returns inf for the few inputs in (3.2386e38, max] where the true value "
        "(and kaun's formula, on NumPy and JAX) is finite.",
    ("tanh", "float64", "kaun/jax"):
        "kaun's tanh value is the framework's own tanh, and XLA's float64 tanh is off by more "
        "than 4 ULP near x = 19 (NumPy's and torch's are not).",
}


# -- the report ---------------------------------------------------------------------------------


def _label(n: str) -> str:
    """A function's name in the headline tables: the extras marked."""
    return f"{n} *(extra)*" if n in R.EXTRAS else n


def fmt(v: float) -> str:
    if v != v:
        return "-"
    if v == float("inf"):
        return "inf"
    if v == 0:
        return "0"
    if v < 9.95:
        return f"{v:.2g}" if v >= 0.1 else f"{v:.1g}"
    if v < 1e4:
        return f"{v:.0f}"
    return f"{v:.1e}".replace("e+0", "e").replace("e+", "e")


def fx(v: float) -> str:
    return "-" if v != v else f"{v:.6g}"


def fy(v: float) -> str:  # a result: NaN is one
    return f"{v:.6g}"


def misses(res: dict[tuple[str, str, str], tuple[Stat, Stat] | None], names: tuple[str, ...],
           dtypes: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(rows of real misses, rows of misses of kaun/jax that vanish without subnormals)."""
    out, ftz = [], []
    for n in names:
        for d in dtypes:
            tv, td = TARGET[d]
            for lib in KAUN:
                r = res.get((n, d, lib))
                if r is None:
                    continue
                sv, sd = r
                for kind, s, tgt in (("value", sv, tv), ("derivative", sd, td)):
                    if s.max > tgt or s.nonfin:
                        row = (f"| {n} | {d} | {lib} | {kind} | {fmt(s.max)} (target {fmt(tgt)}) "
                               f"| {fx(s.at)} | {fmt(s.max_normal)} | {fx(s.at_normal)} "
                               f"| {s.nonfin} |")
                        if lib == "kaun/jax" and s.max_normal <= tgt and not s.nonfin:
                            ftz.append(row)
                        else:
                            out.append(row)
    return out, ftz


def write_doc(res: dict[tuple[str, str, str], tuple[Stat, Stat] | None], names: tuple[str, ...],
              dtypes: tuple[str, ...], quick: bool, secs: float, cmd: str,
              res23: Res23 | None = None, orders: tuple[int, ...] = ORDERS,
              resg: ResG | None = None, gnames: tuple[str, ...] = ()) -> str:
    import jax
    import torch

    L: list[str] = []
    L.append("# Accuracy of kaun.activation\n")
    L.append(f"Generated by `{cmd}` in {secs:.0f} s"
             f"{' (--quick: a smaller grid)' if quick else ''}, on {platform.machine()} "
             f"with numpy {np.__version__}, torch {torch.__version__}, jax {jax.__version__} "
             "(x64 enabled). Every figure below comes from that command; the reference is cached "
             "in benchmarks/.cache/.\n")
    L.append("Errors are in ULPs of the output dtype, against mpmath. Targets for kaun: value <= 1 "
             "ULP in float16/bfloat16 and <= 4 in float32/float64; derivative <= 2 and <= 16; "
             "second and third derivatives <= 16 in float32/float64; no non-finite result where "
             "the truth is finite.\n")
    L.append("## How it is measured\n")
    L.append("- Inputs: every finite float16 and bfloat16 value; for float32 and float64 a grid "
             "of >= 20,000 values over the whole finite range (random bit patterns, every binade "
             "of both signs, a dense grid over [-30, 30], the tails down to where exp underflows "
             "to zero, the kinks, the branch points of kaun's formulas, the exp overflow and "
             "underflow thresholds, sqrt and cube root of the largest value, with 3 neighbours "
             "on each side). Point counts: "
             + ", ".join(f"{d} {res_n}" for d, res_n in _counts(res, res23, names, dtypes)) + ".")
    L.append("- Libraries: kaun on NumPy (derivative by `A.derivative(f)`), on torch and on JAX "
             "(derivative through autodiff: `torch.autograd.grad`, `jax.vjp`); "
             "`torch.nn.functional` and `jax.nn` (autodiff); naive NumPy (the textbook formulas "
             "of f and f' in the input dtype, scipy's erf for gelu, bfloat16 in float32). The "
             "second and third derivatives: see their sections.")
    L.append("- Hyper-parameters at their defaults; prelu with alpha = 0.25 (a number for kaun, a "
             "one-element weight for torch; jax.nn has no prelu). glu is not measured: it is "
             "`first * sigmoid(second)` through kaun's sigmoid formula and one product, so its "
             "error is sigmoid's plus half an ulp.")
    L.append("- Beyond the spec's functions (`A.names(extras=True)`), marked *(extra)* in the "
             "headlines: relu_squared (`max(x, 0)^2`) and quick_gelu (`x * sigmoid(1.702 x)`, "
             "1.702 exact), with the same targets; their torch and jax peers are the "
             "compositions users write, `torch.relu(x)**2`, `x * torch.sigmoid(1.702 * x)` and "
             "the same with jax.nn (1.702 rounded to the input dtype there). The gated family "
             "(swiglu, geglu, geglu_approx, reglu): see [its section](#the-gated-family).")
    L.append("- Non-default hyper-parameters are not in these tables. One known weak spot there: "
             "celu's derivative `exp(x / alpha)` carries the rounding of `x / alpha`, amplified "
             "by `|x / alpha|` (tens of ULP in float32 for alpha < 1 and x near -10).")
    L.append(R.RULE)
    L.append("- `max`: the largest error; `p99.9`: its 99.9th percentile; `at x`: the input of "
             "the largest error; `normal`: the largest error over the points whose input and "
             "true value are not subnormal (XLA on CPU flushes subnormal inputs and results to "
             "zero, so JAX is also shown without them).\n")
    if res:
        L += _doc01(res, names, dtypes)
    if res23:
        L += _doc23(res23, names, dtypes, orders)
    if resg:
        L += _doc_gated(resg, gnames, dtypes)
    return "\n".join(L) + "\n"


def _doc01(res: dict[tuple[str, str, str], tuple[Stat, Stat] | None], names: tuple[str, ...],
           dtypes: tuple[str, ...]) -> list[str]:
    """The sections of the value and the first derivative."""
    L: list[str] = []
    # headline
    for kind, j in (("value", 0), ("derivative", 1)):
        L.append(f"## Headline: worst {kind} error (ULP), kaun vs torch vs jax\n")
        L.append("kaun: the worst of its NumPy, torch and JAX backends. On JAX (kaun on JAX and "
                 "jax.nn alike) without the points where the input or the true value is "
                 "subnormal, which XLA on CPU flushes to zero; the figures with them are in the "
                 "tables below. `-`: the library lacks the function. A non-finite result where "
                 "the truth is finite shows as inf.\n")
        hdr = "| function | " + " | ".join(f"{d} kaun | {d} torch | {d} jax" for d in dtypes)
        L.append(hdr + " |")
        L.append("|---" * (1 + 3 * len(dtypes)) + "|")
        for n in names:
            cells = []
            for d in dtypes:
                ks = [(lb, res[(n, d, lb)]) for lb in KAUN]
                cells.append(fmt(max((r[j].max_normal if lb == "kaun/jax" else r[j].max)
                                     for lb, r in ks if r is not None)))
                for lb in ("torch", "jax"):
                    r = res.get((n, d, lb))
                    v = "-" if r is None else fmt(r[j].max_normal if lb == "jax" else r[j].max)
                    cells.append(v)
            L.append(f"| {_label(n)} | " + " | ".join(cells) + " |")
        L.append("")
    L.append("## Where kaun misses a target\n")
    ms, ftz = misses(res, names, dtypes)
    hdr = ("| function | dtype | backend | what | max ULP | at x | normal | at x (normal) "
           "| nonfin |\n|---|---|---|---|---|---|---|---|---|")
    if ms:
        L.append("Why: see the notes below the table.\n")
        L.append(hdr)
        L += ms
    else:
        L.append("Nowhere, except JAX's flush of subnormals (below).")
    L.append("")
    for (n, d, lb), why in NOTES.items():
        if any(m.startswith(f"| {n} | {d} | {lb} |") for m in ms):
            L.append(f"- {n}, {d}, {lb}: {why}")
    L.append("")
    if ftz:
        L.append("### JAX: only where the input or the true value is subnormal\n")
        L.append("XLA on CPU flushes subnormal inputs and results to zero (FTZ/DAZ), so on JAX a "
                 "subnormal input reads as 0 and a subnormal result comes out as 0. Without those "
                 "points (column `normal`) each of these meets its target.\n")
        L.append(hdr)
        L += ftz
    L.append("")
    L.append("## Every function, dtype and library\n")
    for n in names:
        L.append(f"### {n}\n")
        L.append("| dtype | library | value max | p99.9 | at x | normal | nonfin | deriv max "
                 "| p99.9 | at x | normal | nonfin | kink |")
        L.append("|---" * 13 + "|")
        for d in dtypes:
            for lb in LIBS:
                r = res.get((n, d, lb))
                if r is None:
                    continue
                sv, sd = r
                L.append(f"| {d} | {lb} | {fmt(sv.max)} | {fmt(sv.p999)} | {fx(sv.at)} | "
                         f"{fmt(sv.max_normal)} | {sv.nonfin} | {fmt(sd.max)} | {fmt(sd.p999)} | "
                         f"{fx(sd.at)} | {fmt(sd.max_normal)} | {sd.nonfin} | {sd.kink} |")
        L.append("")
    return L


_ORDER_NAME = {2: ("Second derivative", "f''", "twice"), 3: ("Third derivative", "f'''", "three times")}


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _kaun23(res23: Res23, n: str, d: str, k: int) -> str:
    """kaun's worst over its backends (JAX without the subnormal points); '*' when one of them
    could not give this order."""
    vals, short = [], False
    for lb in KAUN:
        r = res23.get((n, d, lb, k))
        if isinstance(r, Stat):
            vals.append(r.max_normal if lb == "kaun/jax" else r.max)
        else:
            short = True
    if not vals:
        return "n/a"
    return fmt(max(vals)) + ("*" if short else "")


def _peer23(r: Stat | str | None, normal: bool) -> str:
    if r is None:
        return "-"
    if isinstance(r, str):
        return "n/a"
    return fmt(r.max_normal if normal else r.max)


NOTES23: dict[str, str] = {  # why kaun misses orders 2 and 3, where it does (shown only for those)
}


def misses23(res23: Res23, names: tuple[str, ...], dtypes: tuple[str, ...], k: int
             ) -> tuple[list[str], list[str], dict[tuple[str, str], list[str]]]:
    """(rows of real misses, rows of misses of kaun/jax that vanish without subnormals,
    {(backend, error message): ['function dtype', ...]} where a backend cannot give order k)."""
    out, ftz = [], []
    nope: dict[tuple[str, str], list[str]] = {}
    for n in names:
        for d in dtypes:
            for lib in KAUN:
                r = res23.get((n, d, lib, k))
                if r is None:
                    continue
                if isinstance(r, str):
                    nope.setdefault((lib, r), []).append(f"{n} {d}")
                    continue
                if r.max > TARGET23 or r.nonfin:
                    row = (f"| {n} | {d} | {lib} | {fmt(r.max)} (target {fmt(TARGET23)}) "
                           f"| {fx(r.at)} | {fy(r.y)} | {fy(r.t)} | {fmt(r.max_normal)} "
                           f"| {fx(r.at_normal)} | {r.nonfin} |")
                    if lib == "kaun/jax" and r.max_normal <= TARGET23 and not r.nonfin:
                        ftz.append(row)
                    else:
                        out.append(row)
    return out, ftz, nope


def _doc23(res23: Res23, names: tuple[str, ...], dtypes: tuple[str, ...],
           orders: tuple[int, ...]) -> list[str]:
    """The sections of the second and third derivatives."""
    L: list[str] = []
    dts = tuple(d for d in dtypes if d in DTYPES23)
    for k in (2, 3):
        if k not in orders:
            continue
        title, f, times = _ORDER_NAME[k]
        L.append(f"## {title}\n")
        zs = "; ".join(f"{n} " + ", ".join(f"{z:.6g}" for z in R.ZEROS[(n, k)])
                       for n in names if (n, k) in R.ZEROS)
        ks = "; ".join(f"{n} " + ", ".join(f"{z:g}" for z in R.kinks(n, k))
                       for n in names if R.kinks(n, k))
        L.append(
            f"{f} in float32 and float64, over the same grids as above (their special points "
            "include the interior zeros of f'' and f''', with 3 neighbours on each side). kaun on "
            f"NumPy by `A.derivative(f, order={k})`; kaun on torch and on JAX, "
            "`torch.nn.functional` and `jax.nn` through nested autodiff: "
            f"`torch.autograd.grad(..., create_graph=True)` {times} over the sum (the functions "
            "are elementwise), `jax.jit(jax.vmap(" + "jax.grad(" * k + "f" + ")" * k + "))`. "
            f"The reference: closed forms of {f} (`REF23` in benchmarks/_reference.py), each "
            f"evaluated at {R.DPS} and {R.DPS + 20} digits, which must agree to {R.AGREE} digits "
            f"(else at more). Target for kaun: <= {fmt(TARGET23)} ULP, no non-finite result "
            "where the truth is finite.\n")
        L.append(f"- Absolute rule (see above) within {R.ZERO_WINDOW} of the interior zeros of "
                 f"{f}: {zs or 'none'}.")
        L.append(
            f"- Kinks (left out of the statistics; column `kink`): {ks}. The conventions of the "
            "first derivative carry over: the outer piece (the x < 0 side at 0 for the relu "
            f"family, e.g. elu{f[1:]}(0) = 1 and relu{f[1:]} = 0 everywhere; the saturated side "
            f"at a bound, e.g. hard_silu{f[1:]}(+-3) = 0; softsign{f[1:]}(0) the x < 0 side too, "
            "where torch's autograd of |x| gives the mean of the sides). `kink` counts the "
            "disagreements with kaun/numpy there (with "
            "the outer piece where kaun/numpy cannot give this order).\n")
        L.append(f"### Headline: worst {f} error (ULP), kaun vs torch vs jax\n")
        L.append("kaun: the worst of its NumPy, torch and JAX backends (`*`: one of them could "
                 "not give this order, see below). On JAX without the points where the input or "
                 "the true value is subnormal (XLA on CPU flushes them to zero). `-`: the "
                 "library lacks the function; `n/a`: it raises at this order.\n")
        L.append("| function | " + " | ".join(f"{d} kaun | {d} torch | {d} jax" for d in dts)
                 + " |")
        L.append("|---" * (1 + 3 * len(dts)) + "|")
        for n in names:
            cells = []
            for d in dts:
                cells.append(_kaun23(res23, n, d, k))
                cells.append(_peer23(res23.get((n, d, "torch", k)), False))
                cells.append(_peer23(res23.get((n, d, "jax", k)), True))
            L.append(f"| {_label(n)} | " + " | ".join(cells) + " |")
        L.append("")
        L.append(f"### Where kaun misses the target ({f})\n")
        ms, ftz, nope = misses23(res23, names, dts, k)
        hdr = ("| function | dtype | backend | max ULP | at x | got | true | normal "
               "| at x (normal) | nonfin |\n|---|---|---|---|---|---|---|---|---|---|")
        if ms:
            L.append(hdr)
            L += ms
            L.append("")
            L += [f"- {n}: {why}" for n, why in NOTES23.items()
                  if any(m.startswith(f"| {n} |") for m in ms)]
        else:
            L.append("Nowhere, where kaun gives this order"
                     + (", except JAX's flush of subnormals (below)." if ftz else "."))
        L.append("")
        if nope:
            L.append(f"Where a kaun backend cannot give {f} (the call raises):\n")
            for (lb, msg), where in nope.items():
                L.append(f"- {lb}: `{_md(msg)}` for {len(where)} of {len(names) * len(dts)} "
                         f"(function, dtype): {', '.join(where)}")
            L.append("")
        if ftz:
            L.append(f"JAX, only where the input or the true value is subnormal ({f}):\n")
            L.append(hdr)
            L += ftz
            L.append("")
        L.append(f"### Every function, dtype and library ({f})\n")
        L.append("`got` and `true`: the result and the truth at the worst input.\n")
        L.append("| function | dtype | library | max | p99.9 | at x | got | true | normal "
                 "| at x (normal) | nonfin | kink |")
        L.append("|---" * 12 + "|")
        for n in names:
            for d in dts:
                for lb in LIBS23:
                    r = res23.get((n, d, lb, k))
                    if r is None:
                        continue
                    if isinstance(r, str):
                        L.append(f"| {n} | {d} | {lb} | n/a |" + " |" * 8)
                        continue
                    L.append(f"| {n} | {d} | {lb} | {fmt(r.max)} | {fmt(r.p999)} | {fx(r.at)} "
                             f"| {fy(r.y)} | {fy(r.t)} | {fmt(r.max_normal)} "
                             f"| {fx(r.at_normal)} | {r.nonfin} | {r.kink} |")
        L.append("")
    return L


def console23(res23: Res23, names: tuple[str, ...], dtypes: tuple[str, ...],
              orders: tuple[int, ...]) -> None:
    dts = tuple(d for d in dtypes if d in DTYPES23)
    ks = tuple(k for k in (2, 3) if k in orders)
    print(f"\norders {'/'.join(map(str, ks))}: worst ULP (n/a: the library raises)")
    for n in names:
        for d in dts:
            cells = []
            for lb in LIBS23:
                rs = [res23.get((n, d, lb, k)) for k in ks]
                if all(r is None for r in rs):
                    cells.append(f"{lb}=-")
                    continue
                cells.append(f"{lb}=" + "/".join(_peer23(r, False) for r in rs))
            print(f"{n:15s} {d:8s} " + " ".join(cells))
    for k in ks:
        ms, ftz, nope = misses23(res23, names, dts, k)
        print(f"\norder {k}: {len(ms)} miss(es) of kaun's target (and {len(ftz)} on JAX only "
              "where the input or the truth is subnormal):")
        for m in ms:
            print(m)
        for (lb, msg), where in nope.items():
            print(f"{lb} cannot give order {k} for {len(where)} (function, dtype): {msg}")
    for d in dts:  # exactly, for tests/test_accuracy.py's WORST2
        at = sorted({x for (_, d2, _, _), r in res23.items() if d2 == d and isinstance(r, Stat)
                     for x in (r.at, r.at_normal) if x == x})
        print(f"\nworst inputs, {d}: ({', '.join(map(repr, at))})")


def _counts(res: Any, res23: Res23 | None, names: tuple[str, ...], dtypes: tuple[str, ...]
            ) -> list[tuple[str, int]]:
    out = []
    for d in dtypes:
        r = res.get((names[0], d, "kaun/numpy")) if names else None
        n = r[0].n if r else 0
        if not n:  # only orders 2 and 3: every point but the kinks, so the largest count
            n = max((st.n for (_, d2, _, _), st in (res23 or {}).items()
                     if d2 == d and isinstance(st, Stat)), default=0)
        if n:
            out.append((d, n))
    return out


def console(res: dict[tuple[str, str, str], tuple[Stat, Stat] | None], names: tuple[str, ...],
            dtypes: tuple[str, ...]) -> None:
    for n in names:
        for d in dtypes:
            cells = []
            for lb in LIBS:
                r = res.get((n, d, lb))
                cells.append(f"{lb}={'-' if r is None else fmt(r[0].max) + '/' + fmt(r[1].max)}")
            print(f"{n:15s} {d:8s} " + " ".join(cells))
    ms, ftz = misses(res, names, dtypes)
    print(f"\n{len(ms)} miss(es) of kaun's targets (and {len(ftz)} on JAX only where the input "
          "or the truth is subnormal):")
    for m in ms:
        print(m)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller grid (development)")
    ap.add_argument("--functions", nargs="+", default=list(ALL), choices=ALL, metavar="NAME",
                    help="elementwise functions and the gated family (default all)")
    ap.add_argument("--dtypes", nargs="+", default=list(R.DTYPES), choices=R.DTYPES)
    ap.add_argument("--procs", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes for the mpmath reference (default 2)")
    ap.add_argument("--orders", nargs="+", type=int, default=list(ORDERS), choices=ORDERS,
                    help="0 the value, 1 the derivative (measured together), 2 and 3 the second "
                    "and third derivatives (float32 and float64 only); default all")
    ap.add_argument("--out", type=Path, default=None,
                    help="where to write the report (default docs/accuracy.md; a partial run "
                    "with --quick/--functions/--dtypes/--orders writes nothing unless given)")
    a = ap.parse_args(argv)
    t0 = time.time()
    chosen, dtypes = tuple(a.functions), tuple(a.dtypes)
    names = tuple(n for n in R.ELEMENTWISE if n in chosen)  # elementwise, in the tables' order
    gnames = tuple(n for n in R.GATED if n in chosen)
    orders = tuple(sorted(set(a.orders)))
    res: dict[tuple[str, str, str], tuple[Stat, Stat] | None] = {}
    res23: Res23 = {}
    resg: ResG = {}
    if (0 in orders or 1 in orders) and names:
        res = measure(names, dtypes, a.quick, a.procs)
        console(res, names, dtypes)
    if (0 in orders or 1 in orders) and gnames:
        resg = measure_gated(gnames, dtypes, a.quick, a.procs)
        console_gated(resg, gnames, dtypes)
    high = tuple(k for k in orders if k >= 2)
    dts23 = tuple(d for d in dtypes if d in DTYPES23)
    if high and dts23 and names:
        res23 = measure23(names, dts23, a.quick, a.procs, high)
        console23(res23, names, dts23, high)
    elif high and names:
        print(f"orders {high}: measured in {' and '.join(DTYPES23)} only, not in {dtypes}")
    full = (not a.quick and set(chosen) == set(ALL) and dtypes == R.DTYPES and orders == ORDERS)
    out = a.out if a.out is not None else (DOC if full else None)
    if out is not None:
        cmd = ".venv/bin/python benchmarks/accuracy.py" + (" " + " ".join(argv or sys.argv[1:])
                                                           if (argv or sys.argv[1:]) else "")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(write_doc(res, names, dtypes, a.quick, time.time() - t0, cmd.strip(),
                                 res23, orders, resg, gnames))
        print(f"wrote {out}")
    print(f"{time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
