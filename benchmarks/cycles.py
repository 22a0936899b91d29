"""Arithmetic per element: kaun's kernels against torch's, in CPU cycles per element.

For the functions whose cost is arithmetic, not memory (silu, gelu, gelu_approx, sigmoid, tanh,
softplus, mish), at 2^18 and 2^20 float32 elements (cache-resident and L2/L3-resident here), on
one thread and on two: the forward (kaun's value kernel through ``A.f`` on a torch tensor,
no grad; torch's op) and the backward alone (kaun's vjp kernel, g f'(x) in one pass; torch's
``aten::*_backward`` op). Core-cycles per element = median wall time x the clock /proc/cpuinfo
reports x threads / elements; contestants interleaved, medians over rounds.

Usage:
    .venv/bin/python benchmarks/cycles.py [--rounds 15] [--out docs/cycles.md]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import kaun.activation as A
from kaun._backends import _torch as BT
from kaun._core import ALL

FUNCTIONS = ("silu", "gelu", "gelu_approx", "sigmoid", "tanh", "softplus", "mish")
ATEN = torch.ops.aten


def torch_ops(name: str) -> tuple[Callable[[Any], Any], Callable[[Any, Any, Any], Any]]:
    """(forward, backward(g, x, y)) of torch's own kernels."""
    return {
        "silu": (F.silu, lambda g, x, y: ATEN.silu_backward(g, x)),
        "gelu": (F.gelu, lambda g, x, y: ATEN.gelu_backward(g, x)),
        "gelu_approx": (lambda x: F.gelu(x, approximate="tanh"),
                        lambda g, x, y: ATEN.gelu_backward(g, x, approximate="tanh")),
        "sigmoid": (torch.sigmoid, lambda g, x, y: ATEN.sigmoid_backward(g, y)),
        "tanh": (torch.tanh, lambda g, x, y: ATEN.tanh_backward(g, y)),
        "softplus": (F.softplus, lambda g, x, y: ATEN.softplus_backward(g, x, 1.0, 20.0)),
        "mish": (F.mish, lambda g, x, y: ATEN.mish_backward(g, x)),
    }[name]


def ghz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("cpu MHz"):
                    return float(ln.split(":")[1]) / 1000
    except OSError:
        pass
    return float("nan")


def measure(name: str, lg: int, threads: int, rounds: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    n = 1 << lg
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.standard_normal(n) * 3).astype(np.float32))
    g = torch.from_numpy(rng.standard_normal(n).astype(np.float32))
    f = getattr(A, name)
    tf, tb = torch_ops(name)
    entry = ALL[name]
    p = tuple(v for _, v in entry.params)
    y = tf(x)
    fns = {
        "kaun fwd": lambda: f(x),
        "torch fwd": lambda: tf(x),
        "kaun bwd": lambda: BT._grad(entry, g, x, p, 1),
        "torch bwd": lambda: tb(g, x, y),
    }
    samples: dict[str, list[float]] = {k: [] for k in fns}
    with torch.no_grad():
        for fn in fns.values():
            fn()
        loops = max(1, int(2e-3 / max(1e-7, _once(fns["torch fwd"]))))
        for r in range(rounds):
            order = list(fns)
            order = order[r % len(order):] + order[:r % len(order)]
            for k in order:
                t = time.perf_counter()
                for _ in range(loops):
                    fns[k]()
                samples[k].append((time.perf_counter() - t) / loops)
    clock = ghz() * 1e9
    return {k: statistics.median(v) * clock * threads / n for k, v in samples.items()}


def _once(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def vector_width(name: str = "silu") -> str:
    """What the compiler emitted for name's float32 value kernel: the vector registers its code
    uses (objdump), e.g. zmm = 512-bit AVX-512."""
    import re
    import shutil
    import subprocess

    from kaun import _kernels as K

    K.compiled(ALL[name], (), "float32")
    libs = [p for p in K.cache_dir().glob(f"{name}-float32-*.so") if "-high-" not in p.name]
    tool = shutil.which("objdump")
    if not libs or tool is None:
        return "(objdump or the library not found)"
    lib = max(libs, key=lambda p: p.stat().st_mtime)
    out = subprocess.run([tool, "-d", "--no-show-raw-insn", str(lib)], capture_output=True, text=True).stdout
    body = out.split("<k_value>:", 1)[-1].split("\n\n", 1)[0]
    counts = {r: len(re.findall(rf"%{r}\d+", body)) for r in ("zmm", "ymm", "xmm")}
    return (f"{name}'s float32 value kernel ({lib.name}, level {K.isa()}) uses "
            + ", ".join(f"{v} {k}" for k, v in counts.items()) + " register operands")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--functions", default=",".join(FUNCTIONS))
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    rows = []
    for name in args.functions.split(","):
        for lg in (18, 20):
            for threads in (1, 2):
                r = measure(name, lg, threads, args.rounds)
                rows.append(f"| {name} | 2^{lg} | {threads} | {r['kaun fwd']:.2f} | {r['torch fwd']:.2f} | "
                            f"{r['kaun fwd'] / r['torch fwd']:.2f} | {r['kaun bwd']:.2f} | "
                            f"{r['torch bwd']:.2f} | {r['kaun bwd'] / r['torch bwd']:.2f} |")
                print(rows[-1], file=sys.stderr, flush=True)
    text = "\n".join([
        "# Arithmetic per element: kaun's kernels and torch's",
        "",
        f"Generated by `.venv/bin/python benchmarks/cycles.py` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}); {platform.machine()}, "
        f"{ghz():.2f} GHz as /proc/cpuinfo reports it, torch {torch.__version__}; float32, input "
        f"standard normal times 3; core-cycles per element (wall time x clock x threads / "
        f"elements), medians of {args.rounds} interleaved rounds. Backward: kaun's vjp kernel "
        "(g f'(x), one pass) against torch's `aten::*_backward`.",
        "",
        f"Vector width: {vector_width()} (zmm: 512-bit AVX-512, the widest this CPU has; the ymm "
        "and xmm ones are the loop's remainder and scalar tail).",
        "",
        "| function | elements | threads | kaun fwd | torch fwd | ratio | kaun bwd | torch bwd | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
