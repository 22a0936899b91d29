"""Speed of kaun.activation beside its peers, in one run, and the memory torch saves for backward.

Every function in float32, at five sizes, each a group of contestants timed interleaved (one call
of each in turn, medians over rounds; ratios only within a group):

* 2^10 elements (the cost of a call): kaun on torch eager, no-grad forward and forward+backward,
  beside torch's op, with each call's time in microseconds;
* 2^16 (cache-resident: the arithmetic), 2^20 and 2^22 (the arithmetic and memory bandwidth): torch
  eager forward and forward+backward beside torch.nn.functional (a composite of torch ops where
  torch has no such function: squareplus, sparse_plus, sparse_sigmoid, hard_sigmoid with another
  alpha; and, for those, torch's silu, the price of one pass); at 2^22 also NumPy beside the naive
  textbook formula, JAX under jax.jit beside jax.nn (forward+backward: one jitted vjp), and
  np.copyto into a preallocated array (one read and one write: the floor);
* 2^24 (a fresh 64 MiB output is mapped and page-faulted on every call, for every library: a
  row of the cost of memory, not arithmetic): torch forward, and torch's clone.

The run writes ``docs/speed.md`` (``--out``) with the issue's targets and each miss, prints the
same, and rewrites the README's speed table between its markers.

Usage:
    .venv/bin/python benchmarks/speed.py            # full run (about 2 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py --quick    # 12 functions, 3 rounds (under a minute)
    .venv/bin/python benchmarks/speed.py --functions gelu,silu
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.special

import kaun.activation as A

# Rows for hyper-parameters other than the defaults, where torch has no op: name -> (kaun's
# function, its keywords).
VARIANTS = {"hard_sigmoid(alpha=0.2)": ("hard_sigmoid", {"alpha": 0.2})}
ALL = [n for n in A.names() if n not in ("swish", "hard_swish")] + list(VARIANTS)
QUICK = ["relu", "sigmoid", "tanh", "elu", "gelu", "gelu_approx", "silu", "mish", "softplus",
         "softsign", "squareplus", "sparse_plus"]
# torch.nn.functional lacks these: the peer is a composite of torch operations.
TORCH_COMPOSITE = {"squareplus", "sparse_plus", "sparse_sigmoid", "softsign", *VARIANTS}
SELU_A, SELU_L = 1.6732632423543772848, 1.0507009873554804934
ALPHA = 0.25  # prelu's alpha (an array of shape (1,))
BUDGET = 8.0  # seconds of timed rounds per group at the large sizes (at least 5 rounds)


# -- peers ------------------------------------------------------------------------------------


def naive_numpy(name: str) -> Callable[..., Any]:
    """The textbook formula in NumPy (SciPy's erf for gelu)."""
    e, t, c = np.exp, np.tanh, np.clip
    k = math.sqrt(2 / math.pi)
    table: dict[str, Callable[..., Any]] = {
        "relu": lambda x: np.maximum(x, 0),
        "sigmoid": lambda x: 1 / (1 + e(-x)),
        "tanh": lambda x: t(x),
        "relu6": lambda x: np.minimum(np.maximum(x, 0), 6),
        "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
        "hard_tanh": lambda x: c(x, -1, 1),
        "hard_sigmoid": lambda x: c(x / 6 + 0.5, 0, 1),
        "prelu": lambda x, a: np.where(x >= 0, x, a * x),
        "elu": lambda x: np.where(x > 0, x, e(x) - 1),
        "selu": lambda x: SELU_L * np.where(x > 0, x, SELU_A * (e(x) - 1)),
        "celu": lambda x: np.maximum(x, 0) + np.minimum(0, e(x) - 1),
        "gelu": lambda x: 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2))),
        "gelu_approx": lambda x: 0.5 * x * (1 + t(k * (x + 0.044715 * x**3))),
        "silu": lambda x: x / (1 + e(-x)),
        "hard_silu": lambda x: x * c(x / 6 + 0.5, 0, 1),
        "mish": lambda x: x * t(np.log1p(e(x))),
        "softplus": lambda x: np.log1p(e(x)),
        "softsign": lambda x: x / (1 + np.abs(x)),
        "squareplus": lambda x: 0.5 * (x + np.sqrt(x * x + 4)),
        "log_sigmoid": lambda x: -np.log1p(e(-x)),
        "glu": lambda x: x[: x.shape[0] // 2] / (1 + e(-x[x.shape[0] // 2:])),
        "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x >= 1, x, 0.25 * (x + 1) ** 2)),
        "sparse_sigmoid": lambda x: c(0.5 * (x + 1), 0, 1),
        "hard_sigmoid(alpha=0.2)": lambda x: c(0.2 * x + 0.5, 0, 1),
    }
    return table[name]


def torch_peer(name: str) -> Callable[..., Any]:
    import torch
    import torch.nn.functional as F

    table: dict[str, Callable[..., Any]] = {
        "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu6": F.relu6,
        "leaky_relu": lambda x: F.leaky_relu(x, 0.01), "hard_tanh": F.hardtanh,
        "hard_sigmoid": F.hardsigmoid, "prelu": F.prelu, "elu": F.elu, "selu": F.selu,
        "celu": F.celu, "gelu": F.gelu, "gelu_approx": lambda x: F.gelu(x, approximate="tanh"),
        "silu": F.silu, "hard_silu": F.hardswish, "mish": F.mish, "softplus": F.softplus,
        "softsign": F.softsign, "log_sigmoid": F.logsigmoid, "glu": lambda x: F.glu(x, -1),
        "squareplus": lambda x: 0.5 * (x + torch.sqrt(x * x + 4.0)),
        "sparse_plus": lambda x: torch.where(
            x <= -1.0, 0.0, torch.where(x >= 1.0, x, 0.25 * (x + 1.0) ** 2)),
        "sparse_sigmoid": lambda x: 0.5 * torch.clamp(x + 1.0, 0.0, 2.0),
        "hard_sigmoid(alpha=0.2)": lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0),
    }
    return table[name]


def jax_peer(name: str) -> Callable[..., Any]:
    import jax.nn as nn
    import jax.numpy as jnp

    table: dict[str, Callable[..., Any]] = {
        "tanh": jnp.tanh, "leaky_relu": lambda x: nn.leaky_relu(x, 0.01),
        "prelu": lambda x, a: jnp.where(x >= 0, x, a * x),  # jax.nn has none
        "gelu": lambda x: nn.gelu(x, approximate=False),
        "gelu_approx": lambda x: nn.gelu(x, approximate=True), "softsign": nn.soft_sign,
        "glu": lambda x: nn.glu(x, -1),
        "hard_sigmoid(alpha=0.2)": lambda x: jnp.clip(0.2 * x + 0.5, 0.0, 1.0),
    }
    return table.get(name) or getattr(nn, name)


# -- timing -----------------------------------------------------------------------------------


class Group:
    """Contestants timed interleaved; medians of per-call seconds."""

    def __init__(self, repeats: int, small: bool, budget: float = 8.0) -> None:
        self.repeats, self.small, self.budget = repeats, small, budget
        self.fns: dict[str, Callable[[], Any]] = {}
        self.loops: dict[str, int] = {}
        self.samples: dict[str, list[float]] = {}

    def add(self, label: str, fn: Callable[[], Any] | None) -> None:
        if fn is not None:
            self.fns[label] = fn

    def run(self) -> dict[str, float]:
        first: dict[str, float] = {}
        for label, fn in list(self.fns.items()):
            t = time.perf_counter()
            fn()  # warm up: jit compilation, caches
            first[label] = time.perf_counter() - t
            # each sample a loop of calls of about 2 ms (small arrays) or 10 ms (large ones): a
            # sample so long that a passing hiccup of the shared machine moves it little
            t = time.perf_counter()
            fn()
            one = max(time.perf_counter() - t, 1e-7)
            n = max(1, min(20000, int((2e-3 if self.small else 1e-2) / one)))
            self.loops[label] = n
            self.samples[label] = []
        # Slow contestants (a large array through a long formula) get fewer rounds, at least 5:
        # the whole run must fit in about 10 minutes on 2 cores.
        rounds = self.repeats
        if not self.small:
            per_round = sum(max(v, 1e-2) for k, v in first.items() if not k.startswith("jax"))
            rounds = max(5, min(self.repeats, int(self.budget / max(per_round, 1e-9))))
        self.rounds = rounds
        order = list(self.fns)
        shuffle = random.Random(len(order)).shuffle  # (seeded: the same run, the same orders)
        for _ in range(rounds):
            shuffle(order)  # a contestant's place in a round costs it (up to 10%): vary it
            for label in order:
                fn, n = self.fns[label], self.loops[label]
                time.sleep(1e-3)  # lets torch's OpenMP threads stop spinning before the next one
                t = time.perf_counter()
                for _ in range(n):
                    fn()
                self.samples[label].append((time.perf_counter() - t) / n)
        return {k: statistics.median(v) for k, v in self.samples.items()}


def block_jax(f: Callable[[], Any]) -> Callable[[], Any]:
    def g() -> Any:
        return f().block_until_ready()

    return g


def fn_kw(name: str) -> Callable[..., Any]:
    if name in VARIANTS:
        base, kw = VARIANTS[name]
        f = getattr(A, base)
        return lambda x: f(x, **kw)
    return getattr(A, name)


# -- one function ----------------------------------------------------------------------------


SIZES = (10, 16, 20, 22, 24)


def measure(name: str, lg: int, repeats: int) -> dict[str, float]:
    """Median seconds per call of each contestant at 2^lg elements (see the module's docstring)."""
    import jax
    import jax.numpy as jnp
    import torch

    n = 1 << lg
    small = lg <= 16
    rng = np.random.default_rng(0)
    xn = (rng.standard_normal(n) * 3).astype(np.float32)
    gn = rng.standard_normal(n // 2 if name == "glu" else n).astype(np.float32)
    xt, gt = torch.from_numpy(xn.copy()), torch.from_numpy(gn)
    kf = fn_kw(name)
    tf = torch_peer(name)
    if name == "prelu":
        at = torch.full((1,), ALPHA)
        k_t, p_t = (lambda x: kf(x, at)), (lambda x: tf(x, at))
    else:
        k_t, p_t = kf, tf

    g = Group(repeats, small, BUDGET)
    with torch.no_grad():
        x_ng = xt.clone()
        g.add("torch kaun", lambda: k_t(x_ng))
        g.add("torch peer", lambda: p_t(x_ng))
        if name in TORCH_COMPOSITE:
            g.add("torch silu", lambda: torch.nn.functional.silu(x_ng))
    xr = xt.clone().requires_grad_()

    def fwd_bwd(f: Callable[..., Any]) -> Callable[[], Any]:
        def go() -> Any:
            xr.grad = None
            f(xr).backward(gt)
            return xr.grad

        return go

    if lg in (10, 16, 20, 22):
        g.add("torch kaun fb", fwd_bwd(k_t))
        g.add("torch peer fb", fwd_bwd(p_t))
        if name in TORCH_COMPOSITE:
            g.add("torch silu fb", fwd_bwd(torch.nn.functional.silu))
    if lg == 22:
        out = np.empty_like(xn)
        an = np.full(1, ALPHA, np.float32)
        nf = naive_numpy(name)
        g.add("np.copyto", lambda: np.copyto(out, xn))
        g.add("np kaun", (lambda: kf(xn, an)) if name == "prelu" else (lambda: kf(xn)))
        g.add("np naive", (lambda: nf(xn, an)) if name == "prelu" else (lambda: nf(xn)))
        xj, gj = jnp.asarray(xn), jnp.asarray(gn)
        jf = jax_peer(name)
        if name == "prelu":
            aj = jnp.full((1,), ALPHA, jnp.float32)
            k_j, p_j = (lambda x: kf(x, aj)), (lambda x: jf(x, aj))
        else:
            k_j, p_j = kf, jf
        jk, jp = jax.jit(k_j), jax.jit(p_j)
        g.add("jax kaun", block_jax(lambda: jk(xj)))
        g.add("jax peer", block_jax(lambda: jp(xj)))
        jkb = jax.jit(lambda x, g: jax.vjp(k_j, x)[1](g)[0])
        jpb = jax.jit(lambda x, g: jax.vjp(p_j, x)[1](g)[0])
        g.add("jax kaun fb", block_jax(lambda: jkb(xj, gj)))
        g.add("jax peer fb", block_jax(lambda: jpb(xj, gj)))
    if lg == 24:
        g.add("torch clone", lambda: x_ng.clone())
    return g.run()


# -- memory saved for backward -----------------------------------------------------------------


def saved_for_backward(name: str, n: int = 1 << 16) -> tuple[tuple[int, int], tuple[int, int]]:
    """(count, bytes) of the tensors autograd saves: kaun's function, torch's."""
    import torch

    x = torch.randn(n, requires_grad=True)
    a = torch.full((1,), ALPHA, requires_grad=True)
    res = []
    for f in (fn_kw(name), torch_peer(name)):
        saved: list[int] = []

        def pack(t: torch.Tensor, saved: list[int] = saved) -> torch.Tensor:
            saved.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = f(x, a) if name == "prelu" else f(x)
        del y
        res.append((len(saved), sum(saved)))
    return res[0], res[1]


# -- report -----------------------------------------------------------------------------------


def gmean(v: list[float]) -> float:
    v = [a for a in v if a > 0 and math.isfinite(a)]
    return math.exp(sum(math.log(a) for a in v) / len(v)) if v else float("nan")


def ratio_gm(res: dict[str, dict[str, float]], a: str, b: str, sel: list[str]) -> float:
    """Geometric mean over the functions sel of the ratio of contestants a and b."""
    return gmean([res[n][a] / res[n][b] for n in sel if a in res[n] and b in res[n]])


def fmt(r: float) -> str:
    if not math.isfinite(r):
        return "-"
    return f"{r:.2f}" if r < 10 else f"{r:.1f}" if r < 100 else f"{r:.0f}"


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def cpe(res: dict[str, float], label: str, lg: int, ghz: float) -> float:
    """Cycles per element of a contestant on the 2 cores (both busy: cycles of 2 cores / n)."""
    return res[label] * ghz * 1e9 * 2 / (1 << lg)


Over = tuple[str, int, str, float]  # (function, log2 size, contestant, ratio to torch's op)


def targets(res: dict[int, dict[str, dict[str, float]]], names: list[str]) -> tuple[list[str], list[Over]]:
    """(the targets table, the rows above 1.2x torch's op)."""
    native = [n for n in names if n not in TORCH_COMPOSITE]
    rows: list[str] = []
    over: list[Over] = []

    def line(text: str, value: str, ok: bool) -> None:
        rows.append(f"| {text} | {value} | {'met' if ok else '**missed**'} |")

    for lg in (22, 16):
        r = res[lg]
        for lab, head in (("torch kaun", "forward"), ("torch kaun fb", "forward + backward")):
            peer = lab.replace("kaun", "peer")
            gm = ratio_gm(r, lab, peer, native)
            worst = max(native, key=lambda n: r[n][lab] / r[n][peer])
            w = r[worst][lab] / r[worst][peer]
            line(f"2^{lg}, torch eager {head}: geomean of {len(native)} <= 1.0x torch's op", fmt(gm), gm <= 1.0)
            line(f"2^{lg}, torch eager {head}: no function above 1.5x (worst: {worst})", fmt(w), w <= 1.5)
            for nm in native:
                v = r[nm][lab] / r[nm][peer]
                if v > 1.2:
                    over.append((nm, lg, lab, v))
        comp = [n for n in names if n in TORCH_COMPOSITE]
        if comp:
            worst_c = max(comp, key=lambda n: r[n]["torch kaun"] / r[n]["torch silu"])
            wc = r[worst_c]["torch kaun"] / r[worst_c]["torch silu"]
            line(f"2^{lg}, functions torch lacks: at most 1.0x torch's silu, forward (worst: {worst_c})",
                 fmt(wc), wc <= 1.0)
            worst_cb = max(comp, key=lambda n: r[n]["torch kaun fb"] / r[n]["torch silu fb"])
            wcb = r[worst_cb]["torch kaun fb"] / r[worst_cb]["torch silu fb"]
            line(f"2^{lg}, functions torch lacks: at most 1.0x torch's silu, forward + backward "
                 f"(worst: {worst_cb})", fmt(wcb), wcb <= 1.0)
    r10 = res[10]
    worst10 = max(native, key=lambda n: r10[n]["torch kaun"] / r10[n]["torch peer"])
    w10 = r10[worst10]["torch kaun"] / r10[worst10]["torch peer"]
    above = [n for n in native if r10[n]["torch kaun"] / r10[n]["torch peer"] > 1.5]
    line(f"2^10, no-grad forward: every function <= 1.5x torch's op (worst: {worst10}; above: "
         f"{', '.join(above) or 'none'})", fmt(w10), w10 <= 1.5)
    gm10 = ratio_gm(r10, "torch kaun fb", "torch peer fb", native)
    line(f"2^10, forward + backward: geomean of {len(native)} <= 1.2x torch's op", fmt(gm10), gm10 <= 1.2)
    r20 = res[20]
    for lab, head in (("torch kaun", "forward"), ("torch kaun fb", "forward + backward")):
        peer = lab.replace("kaun", "peer")
        gm = ratio_gm(r20, lab, peer, native)
        line(f"2^20, torch eager {head}: geomean of {len(native)} <= 0.9x torch's op", fmt(gm), gm <= 0.9)
        for nm in ("silu", "gelu"):
            if nm in r20:
                v = r20[nm][lab] / r20[nm][peer]
                line(f"2^20, torch eager {head}: {nm} <= 1.0x torch's op", fmt(v), v <= 1.0)
    r22 = res[22]
    gm_np = ratio_gm(r22, "np kaun", "np naive", names)
    worst_np = max(names, key=lambda n: r22[n]["np kaun"] / r22[n]["np naive"])
    line("2^22, NumPy: geomean <= 0.5x the naive formula", fmt(gm_np), gm_np <= 0.5)
    wn = r22[worst_np]["np kaun"] / r22[worst_np]["np naive"]
    line(f"2^22, NumPy: no function above 1.0x (worst: {worst_np})", fmt(wn), wn <= 1.0)
    for lab, head in (("jax kaun", "forward"), ("jax kaun fb", "forward + backward")):
        gm = ratio_gm(r22, lab, lab.replace("kaun", "peer"), names)
        line(f"2^22, jax.jit {head}: geomean <= 1.05x jax.nn", fmt(gm), gm <= 1.05)
    return ["| target | measured | |", "|---|---|---|", *rows], over


def size_table(r: dict[str, dict[str, float]], lg: int, names: list[str]) -> str:
    cols: list[tuple[str, str, str]] = [("torch fwd kaun/op", "torch kaun", "torch peer")]
    if lg in (10, 16, 20, 22):
        cols.append(("torch fwd+bwd kaun/op", "torch kaun fb", "torch peer fb"))
    if lg == 22:
        cols += [("NumPy kaun/naive", "np kaun", "np naive"), ("NumPy kaun/copy", "np kaun", "np.copyto"),
                 ("jax.jit fwd kaun/jax.nn", "jax kaun", "jax peer"),
                 ("jax.jit fwd+bwd kaun/jax.nn", "jax kaun fb", "jax peer fb")]
    if lg == 24:
        cols.append(("torch fwd kaun/clone", "torch kaun", "torch clone"))
    rows, gms = [], []
    for nm in names:
        rr = r[nm]
        cells = [fmt(rr[a] / rr[b]) if a in rr and b in rr else "-" for _, a, b in cols]
        extra = (f" (c; kaun/silu {fmt(rr['torch kaun'] / rr['torch silu'])})"
                 if nm in TORCH_COMPOSITE and "torch silu" in rr else "")
        us = [f"{rr['torch kaun'] * 1e6:.1f}"]
        if lg == 10:  # the fixed cost of a call, kaun and torch, in microseconds
            us += [f"{rr['torch peer'] * 1e6:.1f}", f"{rr['torch kaun fb'] * 1e6:.1f}",
                   f"{rr['torch peer fb'] * 1e6:.1f}"]
        rows.append([nm + extra, *cells, *us])
    native = [n for n in names if n not in TORCH_COMPOSITE]
    for _, a, b in cols:
        sel = native if a.startswith("torch") else names
        gms.append(f"**{fmt(ratio_gm(r, a, b, sel))}**")
    us_heads = ["kaun torch fwd (us)"]
    if lg == 10:
        us_heads += ["torch op fwd (us)", "kaun fwd+bwd (us)", "torch op fwd+bwd (us)"]
    rows.append(["**geomean** (torch: the functions torch has)", *gms, *[""] * len(us_heads)])
    return table(["function", *[h for h, _, _ in cols], *us_heads], rows)


def _jax_path() -> str:
    from kaun._kernels import jaxffi

    st = jaxffi.state()
    if st and st.get("path") == "ffi":
        return ("the compiled kernels as an XLA FFI custom call for the values of "
                f"{', '.join(sorted(jaxffi.FFI_FUNCTIONS))} and the derivatives of "
                f"{', '.join(sorted(jaxffi.FFI_DERIVATIVES))}, kaun's formulas through XLA for the rest")
    return f"kaun's formulas through XLA ({(st or {}).get('why')})"


def _torchops_loaded() -> bool:
    from kaun._kernels import torchops

    return torchops.ext() is not None


def cpu_ghz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(ln.split(":")[1]) for ln in f if ln.startswith("cpu MHz")]
        return (sum(mhz) / len(mhz)) / 1000 if mhz else float("nan")
    except OSError:
        return float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="12 functions, 3 rounds")
    ap.add_argument("--functions", help="comma-separated names (default: all)")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", default="docs/speed.md")
    ap.add_argument("--readme", default="README.md",
                    help="README whose speed table a full run rewrites ('' to leave it)")
    args = ap.parse_args(argv)

    t0 = time.time()
    import jax
    import torch

    from kaun._kernels import torchops

    torchops.wait(600)  # (a build this process started in the background: waited for)

    names = args.functions.split(",") if args.functions else (QUICK if args.quick else ALL)
    for nm in names:
        if nm not in ALL:
            ap.error(f"unknown function {nm!r}; choose from {', '.join(ALL)}")
    repeats = args.repeats or (3 if args.quick else 7)
    np.seterr(all="ignore")
    res: dict[int, dict[str, dict[str, float]]] = {lg: {} for lg in SIZES}
    mem: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    # sizes outermost: every torch-only group (2^10, 2^16) runs before any JAX code, whose XLA
    # threads keep the cores busy for a while after a call (measured: 2^16 ratios moved 30%)
    for lg in SIZES:
        t = time.time()
        for nm in names:
            res[lg][nm] = measure(nm, lg, repeats * 3 if lg <= 16 else repeats)
        print(f"  2^{lg}: {time.time() - t:.1f} s", file=sys.stderr, flush=True)
    for nm in names:
        mem[nm] = saved_for_backward(nm)
    elapsed = time.time() - t0
    ghz = cpu_ghz()
    tgt, over = targets(res, names)

    cmd = "benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    parts = [
        "# Speed of kaun.activation beside its peers",
        "",
        f"Generated by `.venv/bin/python {cmd.strip()}` in {elapsed:.0f} s "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or '?'}, "
        f"{ghz:.2f} GHz as /proc/cpuinfo reports it); Python {platform.python_version()}, NumPy "
        f"{np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads), jax "
        f"{jax.__version__}; float32, input standard normal times 3.",
        "",
        "Each ratio compares medians of contestants timed interleaved in one group (same function, "
        f"same size; {repeats} rounds at 2^22 and 2^24 (at least 5 where one round takes over "
        f"{BUDGET / repeats:.1f} s), each sample a loop of calls of about 10 ms; {repeats * 3} "
        "rounds at 2^10 and 2^16, each sample a loop of about 2 ms; 2^20 as 2^22), in a random order per round "
        "(seeded); the sizes in turn, 2^10 and 2^16 before any JAX code runs (XLA's threads stay "
        "busy a while after a call). kaun's NumPy and torch CPU calls run its compiled kernels "
        "(one pass, on torch's OpenMP threads); eager torch CPU calls enter them through kaun's C++ "
        f"operator ({'loaded' if _torchops_loaded() else 'NOT loaded: the Python path'}); jax.jit "
        f"runs {_jax_path()} (docs/jax.md). "
        "(c): torch has no such "
        "function and the peer is a composite of torch operations; the issue's mark for those is "
        "torch's silu at the same size (one pass). Forward+backward is `f(x).backward(g)` and one "
        "jitted `jax.vjp`. The machine is shared and noisy: compare ratios, not absolute times.",
        "",
        "## Targets",
        "",
        *tgt,
        "",
    ]
    if over:
        parts += ["Functions above 1.2x torch's op in a row above, and the cost, in cycles per "
                  "element (both cores), of kaun against torch:", ""]
        for nm, lg, lab, v in over:
            r = res[lg][nm]
            head = "forward + backward" if lab.endswith("fb") else "forward"
            parts.append(f"- {nm} at 2^{lg}, {head}: {fmt(v)}x torch's op: {cpe(r, lab, lg, ghz):.1f} "
                         f"against {cpe(r, lab.replace('kaun', 'peer'), lg, ghz):.1f}")
        parts.append("")
    for lg, what in ((22, "arithmetic and memory bandwidth"), (20, "arithmetic, 4 MiB in and out"),
                     (16, "cache-resident: the arithmetic"), (10, "the cost of a call"),
                     (24, "a fresh output page-faulted on every call")):
        parts += [f"## 2^{lg} elements ({what})", "", size_table(res[lg], lg, names), ""]
    parts += ["## Memory saved for backward (torch, per input element of float32)", "",
              "Tensors packed by `torch.autograd.graph.saved_tensors_hooks` during the forward "
              "of a 2^16-element input: how many, and their bytes per input element (4 = one "
              "float32 tensor of the input's size; a saved input costs nothing extra while the "
              "caller keeps it, a saved output or temporary does).", ""]
    rows = [[nm, f"{k[0]}", f"{k[1] / (1 << 16):.2f}", f"{p[0]}", f"{p[1] / (1 << 16):.2f}"]
            for nm, (k, p) in mem.items()]
    parts += [table(["function", "kaun count", "kaun B/elt", "torch count", "torch B/elt"], rows), ""]
    text = "\n".join(parts)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text)
    if args.readme and set(names) == set(ALL):
        update_readme(args.readme, headline(res, names))
    return 0


README_BEGIN = "<!-- speed: written by benchmarks/speed.py -->"
README_END = "<!-- speed: end -->"


def headline(res: dict[int, dict[str, dict[str, float]]], names: list[str]) -> str:
    """The README's speed table: geometric means of this run."""
    native = [n for n in names if n not in TORCH_COMPOSITE]
    comp = sorted(TORCH_COMPOSITE & set(names))

    def gm(lg: int, a: str, b: str, sel: list[str]) -> str:
        return fmt(ratio_gm(res[lg], a, b, sel))

    return "\n".join([
        "| float32, kaun / peer (geomean) | 2^10 | 2^16 | 2^20 | 2^22 |",
        "|---|---|---|---|---|",
        f"| torch eager forward, against torch's own ops ({len(native)}) | "
        f"{gm(10, 'torch kaun', 'torch peer', native)} | {gm(16, 'torch kaun', 'torch peer', native)} | "
        f"{gm(20, 'torch kaun', 'torch peer', native)} | {gm(22, 'torch kaun', 'torch peer', native)} |",
        f"| torch eager forward + backward ({len(native)}) | "
        f"{gm(10, 'torch kaun fb', 'torch peer fb', native)} | "
        f"{gm(16, 'torch kaun fb', 'torch peer fb', native)} | {gm(20, 'torch kaun fb', 'torch peer fb', native)} | "
        f"{gm(22, 'torch kaun fb', 'torch peer fb', native)} |",
        f"| torch eager forward, functions torch lacks, against its silu ({len(comp)}) | "
        f"{gm(10, 'torch kaun', 'torch silu', comp)} | {gm(16, 'torch kaun', 'torch silu', comp)} | "
        f"{gm(20, 'torch kaun', 'torch silu', comp)} | {gm(22, 'torch kaun', 'torch silu', comp)} |",
        f"| `jax.jit` forward / forward + backward, against jax.nn ({len(names)}) | - | - | - | "
        f"{gm(22, 'jax kaun', 'jax peer', names)} / {gm(22, 'jax kaun fb', 'jax peer fb', names)} |",
        f"| NumPy, against the naive textbook formula ({len(names)}) | - | - | - | "
        f"{gm(22, 'np kaun', 'np naive', names)} |",
    ])


def update_readme(path: str, table: str) -> None:
    """Replace the block between the README's speed markers by table (left alone if absent)."""
    with open(path) as fh:
        text = fh.read()
    if README_BEGIN not in text or README_END not in text:
        print(f"{path}: no speed markers, left alone", file=sys.stderr)
        return
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    with open(path, "w") as fh:
        fh.write(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
