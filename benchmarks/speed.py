"""Speed of kaun.activation beside its peers, in one run, and the memory torch saves for backward.

For every function in float32, at 2^10 elements (call overhead) and 2^24 elements (memory
bandwidth), forward and forward+backward:

* kaun on NumPy, beside a naive NumPy formula (the textbook one, no care for tails);
* kaun on torch eager, beside torch.nn.functional (a composite of torch ops where torch has no
  such function: squareplus, sparse_plus, sparse_sigmoid; softsign is one in torch itself);
* kaun on JAX under jax.jit, beside jax.nn under jax.jit (forward+backward: one jitted vjp);
* kaun and torch's op under torch.compile(fullgraph=True), for a subset (``--compile``);
* a copy of the same array: np.copyto into a preallocated out (one read, one write: the floor),
  and allocating copies in torch (clone) and JAX (jitted copy), the floor for a fresh output.

Each configuration runs its contestants interleaved (one call of each in turn, ``--repeats``
times) and takes medians, so that load on the machine hits them alike. Small arrays are timed
over a loop of calls calibrated to about 2 ms. Ratios are taken within the same interleaved
group only. The run writes ``docs/speed.md`` (``--out``) and prints the same tables.

Usage:
    .venv/bin/python benchmarks/speed.py            # full run (~10 minutes on 2 cores)
    .venv/bin/python benchmarks/speed.py --quick    # 12 functions, 2^22, fewer repeats (~2 min)
    .venv/bin/python benchmarks/speed.py --functions gelu,silu --compile all
"""

from __future__ import annotations

import argparse
import math
import os
import platform
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
COMPILE_SUBSET = ["sigmoid", "mish", "squareplus"]
# torch.nn.functional lacks these: the peer is a composite of torch operations.
TORCH_COMPOSITE = {"squareplus", "sparse_plus", "sparse_sigmoid", "softsign", *VARIANTS}
SELU_A, SELU_L = 1.6732632423543772848, 1.0507009873554804934
ALPHA = 0.25  # prelu's alpha (an array of shape (1,))
FAILED: dict[str, str] = {}  # torch.compile failures: "function, contestant" -> error
CURRENT = [""]  # the function being measured
BUDGET = 5.0  # seconds of timed rounds per function at the large size (at least 3 rounds)


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
            try:
                t = time.perf_counter()
                fn()  # warm up: jit compilation, caches
                first[label] = time.perf_counter() - t
            except Exception as e:  # torch.compile of a function it cannot trace
                if not label.startswith("compile"):
                    raise
                msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
                FAILED.setdefault(f"{CURRENT[0]}, {label}", msg)
                del self.fns[label]
                continue
            n = 1
            if self.small:
                t = time.perf_counter()
                fn()
                one = max(time.perf_counter() - t, 1e-7)
                n = max(1, min(20000, int(2e-3 / one)))
            self.loops[label] = n
            self.samples[label] = []
        # Slow contestants (a large array through a long formula) get fewer rounds, at least 3:
        # the whole run must fit in about 10 minutes on 2 cores.
        rounds = self.repeats
        if not self.small:
            per_round = sum(v for k, v in first.items() if not k.startswith(("jax", "compile")))
            rounds = max(3, min(self.repeats, int(self.budget / max(per_round, 1e-9))))
        self.rounds = rounds
        for r in range(rounds):
            for label, fn in self.fns.items():
                n = self.loops[label]
                if r == 0 and not self.small and first[label] > 0.5 and not label.startswith(
                        ("jax", "compile")):
                    self.samples[label].append(first[label])  # a slow eager call: no warm-up
                    continue
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


def measure(name: str, n: int, repeats: int, compile_: bool) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import torch

    small = n <= 1 << 16
    CURRENT[0] = name
    rng = np.random.default_rng(0)
    xn = (rng.standard_normal(n) * 3).astype(np.float32)
    out = np.empty_like(xn)
    gn = rng.standard_normal(n // 2 if name == "glu" else n).astype(np.float32)
    xt, gt = torch.from_numpy(xn.copy()), torch.from_numpy(gn)
    xj, gj = jnp.asarray(xn), jnp.asarray(gn)
    kf = fn_kw(name)
    nf, tf, jf = naive_numpy(name), torch_peer(name), jax_peer(name)
    if name == "prelu":
        an, at, aj = (np.full(1, ALPHA, np.float32), torch.full((1,), ALPHA),
                      jnp.full((1,), ALPHA, jnp.float32))
        k_np, k_t, k_j = (lambda x: kf(x, an)), (lambda x: kf(x, at)), (lambda x: kf(x, aj))
        n_np, p_t, p_j = (lambda x: nf(x, an)), (lambda x: tf(x, at)), (lambda x: jf(x, aj))
    else:
        k_np = k_t = k_j = kf
        n_np, p_t, p_j = nf, tf, jf

    g = Group(repeats, small, BUDGET)
    g.add("np.copyto", lambda: np.copyto(out, xn))
    g.add("np kaun", lambda: k_np(xn))
    g.add("np naive", lambda: n_np(xn))
    g.add("torch clone", lambda: xt.clone())
    g.add("torch kaun", lambda: k_t(xt))
    g.add("torch peer", lambda: p_t(xt))
    jcopy = jax.jit(lambda x: jnp.copy(x))
    g.add("jax copy", block_jax(lambda: jcopy(xj)))
    jk, jp = jax.jit(k_j), jax.jit(p_j)
    g.add("jax kaun", block_jax(lambda: jk(xj)))
    g.add("jax peer", block_jax(lambda: jp(xj)))

    xr = xt.clone().requires_grad_()

    def fwd_bwd(f: Callable[..., Any]) -> Callable[[], Any]:
        def go() -> Any:
            xr.grad = None
            f(xr).backward(gt)
            return xr.grad

        return go

    g.add("torch kaun fb", fwd_bwd(k_t))
    g.add("torch peer fb", fwd_bwd(p_t))
    jkb = jax.jit(lambda x, g: jax.vjp(k_j, x)[1](g)[0])
    jpb = jax.jit(lambda x, g: jax.vjp(p_j, x)[1](g)[0])
    g.add("jax kaun fb", block_jax(lambda: jkb(xj, gj)))
    g.add("jax peer fb", block_jax(lambda: jpb(xj, gj)))
    if compile_:
        k_t(xt)  # fill kaun's dispatch cache before tracing
        ck = torch.compile(lambda x: k_t(x), fullgraph=True, dynamic=False)
        cp = torch.compile(lambda x: p_t(x), fullgraph=True, dynamic=False)
        g.add("compile kaun", lambda: ck(xt))
        g.add("compile peer", lambda: cp(xt))
        g.add("compile kaun fb", fwd_bwd(ck))
        g.add("compile peer fb", fwd_bwd(cp))
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


COLS = [  # (heading, numerator, denominator)
    ("np kaun/naive", "np kaun", "np naive"),
    ("np kaun/copy", "np kaun", "np.copyto"),
    ("torch kaun/peer", "torch kaun", "torch peer"),
    ("torch kaun/copy", "torch kaun", "np.copyto"),
    ("torch peer/copy", "torch peer", "np.copyto"),
    ("jax kaun/jax.nn", "jax kaun", "jax peer"),
    ("jax kaun/copy", "jax kaun", "np.copyto"),
]
COLS_FB = [
    ("torch kaun/peer", "torch kaun fb", "torch peer fb"),
    ("torch kaun/copy", "torch kaun fb", "np.copyto"),
    ("torch peer/copy", "torch peer fb", "np.copyto"),
    ("jax kaun/jax.nn", "jax kaun fb", "jax peer fb"),
    ("jax kaun/copy", "jax kaun fb", "np.copyto"),
]
COLS_C = [
    ("fwd kaun/peer", "compile kaun", "compile peer"),
    ("fwd kaun/copy", "compile kaun", "np.copyto"),
    ("fwd+bwd kaun/peer", "compile kaun fb", "compile peer fb"),
    ("fwd+bwd kaun/copy", "compile kaun fb", "np.copyto"),
]


def ratio_table(res: dict[str, dict[str, float]], cols: list[tuple[str, str, str]],
                names: list[str]) -> tuple[str, dict[str, float]]:
    rows, gm = [], {}
    for name in names:
        r = res[name]
        rows.append([name + (" (c)" if name in TORCH_COMPOSITE else "")] + [
            fmt(r[a] / r[b]) if a in r and b in r else "-" for _, a, b in cols])
    for h, a, b in cols:
        gm[h] = gmean([res[nm][a] / res[nm][b] for nm in names if a in res[nm] and b in res[nm]])
    rows.append(["**geomean**"] + [f"**{fmt(gm[h])}**" for h, _, _ in cols])
    return table(["function"] + [h for h, _, _ in cols], rows), gm


def time_table(res: dict[str, dict[str, float]], names: list[str], labels: list[str]) -> str:
    rows = [[nm] + [f"{res[nm][lb] * 1e6:.1f}" if lb in res[nm] else "-" for lb in labels]
            for nm in names]
    return table(["function"] + labels, rows)


def targets(big: dict[str, dict[str, float]], small: dict[str, dict[str, float]],
            names: list[str]) -> list[str]:
    out = []

    native = [n for n in names if n not in TORCH_COMPOSITE]
    checks = [
        ("torch eager fwd <= 1.1x torch's op (geomean, functions torch has)",
         ratio_gm(big, "torch kaun", "torch peer", native), 1.1),
        ("torch eager fwd+bwd <= 1.0x torch's op (geomean)",
         ratio_gm(big, "torch kaun fb", "torch peer fb", native), 1.0),
        ("JAX jit fwd <= 1.05x jax.nn (geomean)", ratio_gm(big, "jax kaun", "jax peer", names), 1.05),
        ("JAX jit fwd+bwd <= 1.05x jax.nn (geomean)",
         ratio_gm(big, "jax kaun fb", "jax peer fb", names), 1.05),
        ("NumPy fwd <= 1.0x the naive formula (geomean)",
         ratio_gm(big, "np kaun", "np naive", names), 1.0),
        ("2^10: torch fwd overhead <= 1.5x torch's op (geomean)",
         ratio_gm(small, "torch kaun", "torch peer", native), 1.5),
    ]
    for text, v, lim in checks:
        out.append(f"| {text} | {fmt(v)} | {'met' if v <= lim else '**missed**'} |")
    for n in sorted(TORCH_COMPOSITE & set(names)):
        v = big[n]["torch kaun"] / big[n]["torch peer"]
        vb = big[n]["torch kaun fb"] / big[n]["torch peer fb"]
        ok = v < 1.0 and vb < 1.0
        out.append(f"| faster than torch's composite: {n} (fwd, fwd+bwd) | {fmt(v)}, {fmt(vb)} | "
                   f"{'met' if ok else '**missed**'} |")
    return ["| target | measured | |", "|---|---|---|", *out]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="12 functions, 2^22, 3 repeats")
    ap.add_argument("--functions", help="comma-separated names (default: all 23)")
    ap.add_argument("--compile", choices=("none", "subset", "all"), default=None,
                    help=f"torch.compile rows: none, subset ({', '.join(COMPILE_SUBSET)}; the "
                    "default, none with --quick) or all")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--big", type=int, default=None, help="log2 of the large size (24; 22 quick)")
    ap.add_argument("--out", default="docs/speed.md")
    ap.add_argument("--readme", default="README.md",
                    help="README whose speed table a full run rewrites ('' to leave it)")
    args = ap.parse_args(argv)

    t0 = time.time()
    import jax
    import torch

    names = args.functions.split(",") if args.functions else (QUICK if args.quick else ALL)
    for nm in names:
        if nm not in ALL:
            ap.error(f"unknown function {nm!r}; choose from {', '.join(ALL)}")
    big_log = args.big or (22 if args.quick else 24)
    repeats = args.repeats or (3 if args.quick else 5)
    mode = args.compile or ("none" if args.quick else "subset")
    compiled = {"none": [], "subset": COMPILE_SUBSET, "all": ALL}[mode]
    np.seterr(all="ignore")

    big: dict[str, dict[str, float]] = {}
    small: dict[str, dict[str, float]] = {}
    mem: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {}
    for nm in names:
        t = time.time()
        small[nm] = measure(nm, 1 << 10, repeats * 3, nm in compiled)
        big[nm] = measure(nm, 1 << big_log, repeats, nm in compiled)
        mem[nm] = saved_for_backward(nm)
        torch._dynamo.reset()
        print(f"  {nm}: {time.time() - t:.1f} s", file=sys.stderr, flush=True)
    elapsed = time.time() - t0

    cmd = "benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    parts = [
        "# Speed of kaun.activation beside its peers",
        "",
        f"Generated by `.venv/bin/python {cmd.strip()}` in {elapsed:.0f} s "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores ({platform.processor() or '?'}); "
        f"Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), jax {jax.__version__}; float32. NumPy runs one "
        "thread; torch and XLA use their default thread pools.",
        "",
        "Every ratio is a ratio of medians of interleaved runs in the same group (same function, "
        f"same size; at 2^{big_log} {repeats} rounds, 3 where one round takes over "
        f"{BUDGET / repeats:.1f} s; at 2^10 {repeats * 3} rounds, each a loop of calls of about "
        "2 ms; the first call of each, which compiles, is not counted, except for an eager call "
        "over 0.5 s; a 1 ms pause before each sample lets torch's OpenMP threads stop spinning, "
        "which would otherwise steal the 2 cores from the next contestant). *copy* is `np.copyto` "
        "into a preallocated array: one read and one write "
        "of the array, the floor for any elementwise function; torch's `clone` and a jitted "
        "`jnp.copy` are the floor for a function that allocates its output (see the last "
        "table). (c): torch has no such function and the peer is a composite of torch "
        "operations (softsign is one inside torch too). jax.nn has no prelu: its peer is "
        "`jnp.where(x >= 0, x, a * x)`. `hard_sigmoid(alpha=0.2)`: a non-default "
        "hyper-parameter, where torch has no op (peers `torch.clamp(0.2 x + 0.5, 0, 1)`, "
        "`jnp.clip`). Forward+backward is `f(x).backward(g)` in torch and one "
        "jitted `jax.vjp` in JAX. NumPy has no backward. Input: standard normal values times 3, "
        "so no element lies in a tail where kaun's torch paths hand elements to the formula "
        "(a min/max reduction finds them; inputs there cost more).",
        "",
        "Where kaun's torch eager path costs more than torch's op, and why: gelu and "
        "gelu_approx in float32 are computed in float64 (torch's float32 kernels are wrong by "
        "up to 1.7e7 ulp; a float64 `erfc` is a scalar loop); sigmoid's and tanh's backward "
        "use 4 passes (`sigmoid(-|x|)`, `1/cosh^2`) where torch's one pass `y (1 - y)` cancels "
        "to 0; glu's backward likewise; the tail checks cost one reduction (about a tenth of a "
        "pass). At 2^10 elements the cost is Python: dispatch (~1 us), the tail check (~3 us, "
        "a kernel launch) and, on formula paths, one small torch call per operation.",
        "",
        "The machine is shared and noisy: ratios within a row are meaningful, absolute times "
        "vary by 2x between runs.",
        "",
        "## Targets",
        "",
        *targets(big, small, names),
        "",
        f"## Forward, 2^{big_log} elements (memory bandwidth)",
        "",
    ]
    tb, _ = ratio_table(big, COLS, names)
    parts += [tb, "", f"## Forward+backward, 2^{big_log} elements", ""]
    tb, _ = ratio_table(big, COLS_FB, names)
    parts += [tb, "", "## Forward, 2^10 elements (call overhead)", ""]
    tb, _ = ratio_table(small, COLS, names)
    parts += [tb, "", "## Forward+backward, 2^10 elements", ""]
    tb, _ = ratio_table(small, COLS_FB, names)
    parts += [tb, ""]
    cn = [n for n in names if n in compiled]
    if cn:
        parts += [f"## torch.compile(fullgraph=True), 2^{big_log} elements (functions: "
                  f"{', '.join(cn)}; `--compile all` for every one)", ""]
        tb, _ = ratio_table(big, COLS_C, cn)
        parts += [tb, "", "## torch.compile, 2^10 elements", ""]
        tb, _ = ratio_table(small, COLS_C, cn)
        parts += [tb, ""]
    if FAILED:
        parts += ["torch.compile failed (so those cells are empty):", ""]
        parts += [f"- {k}: `{v[:200]}`" for k, v in FAILED.items()]
        parts += [""]
    parts += ["## Memory saved for backward (torch, per input element of float32)", "",
              "Tensors packed by `torch.autograd.graph.saved_tensors_hooks` during the forward "
              "of a 2^16-element input: how many, and their bytes per input element (4 = one "
              "float32 tensor of the input's size; a saved input costs nothing extra while the "
              "caller keeps it, a saved output or temporary does).", ""]
    rows = [[nm, f"{k[0]}", f"{k[1] / (1 << 16):.2f}", f"{p[0]}", f"{p[1] / (1 << 16):.2f}"]
            for nm, (k, p) in mem.items()]
    parts += [table(["function", "kaun count", "kaun B/elt", "torch count", "torch B/elt"], rows),
              ""]
    labels = ["np.copyto", "torch clone", "jax copy", "np kaun", "np naive", "torch kaun",
              "torch peer", "jax kaun", "jax peer"]
    parts += [f"## Absolute medians, microseconds per call, 2^{big_log} elements", "",
              time_table(big, names, labels), "",
              "## Absolute medians, microseconds per call, 2^10 elements", "",
              time_table(small, names, labels), ""]
    text = "\n".join(parts)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text)
    if args.readme and set(names) == set(ALL) and big_log == 24:
        update_readme(args.readme, headline(big, small, names))
    return 0


README_BEGIN = "<!-- speed: written by benchmarks/speed.py -->"
README_END = "<!-- speed: end -->"
SLOW_ON_TORCH = ("gelu", "gelu_approx")  # float32 through float64 on torch


def headline(big: dict[str, dict[str, float]], small: dict[str, dict[str, float]],
             names: list[str]) -> str:
    """The README's speed table: geometric means of this run."""
    def gm(res: dict[str, dict[str, float]], a: str, b: str, sel: list[str]) -> str:
        return fmt(ratio_gm(res, a, b, sel))

    native = [n for n in names if n not in TORCH_COMPOSITE]
    rest = [n for n in native if n not in SLOW_ON_TORCH]
    comp = sorted(TORCH_COMPOSITE & set(names))
    return "\n".join([
        "| float32, 2^24 elements | kaun / peer, forward | forward + backward |",
        "|---|---|---|",
        f"| torch eager, against torch's own ops (geomean of {len(native)}) | "
        f"{gm(big, 'torch kaun', 'torch peer', native)} | "
        f"{gm(big, 'torch kaun fb', 'torch peer fb', native)} |",
        f"| torch eager, the same without {' and '.join(SLOW_ON_TORCH)} | "
        f"{gm(big, 'torch kaun', 'torch peer', rest)} | "
        f"{gm(big, 'torch kaun fb', 'torch peer fb', rest)} |",
        f"| torch eager, against torch composites ({', '.join(comp)}) | "
        f"{gm(big, 'torch kaun', 'torch peer', comp)} | "
        f"{gm(big, 'torch kaun fb', 'torch peer fb', comp)} |",
        f"| `jax.jit`, against jax.nn (geomean of {len(names)}) | "
        f"{gm(big, 'jax kaun', 'jax peer', names)} | {gm(big, 'jax kaun fb', 'jax peer fb', names)} |",
        f"| NumPy, against the naive textbook formula | {gm(big, 'np kaun', 'np naive', names)} | - |",
        f"| torch eager at 2^10 elements (call overhead) | "
        f"{gm(small, 'torch kaun', 'torch peer', native)} | "
        f"{gm(small, 'torch kaun fb', 'torch peer fb', native)} |",
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
