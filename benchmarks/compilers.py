"""Which compiler turns kaun's formulas into fast kernels: the measurement behind docs/design.md.

For float32 sigmoid and gelu at 2^16 and 2^22 elements, in one run, interleaved, medians, each
a ratio to torch's own eager op on the same tensor:

* kaun: the formula traced to a graph, lowered to C, compiled by the system's cc (-O3,
  -march=native), run by the OpenMP runtime (what kaun ships);
* Inductor: the same formula in torch operations under ``torch.compile`` (what kaun gives
  inside a user's compiled model), and its time to compile;
* numba: ``@njit(parallel=True)`` loops over the textbook formula with ``math.exp`` /
  ``math.erfc`` (numba has no vector math library here: a scalar libm call per element), if
  numba is installed (``.venv/bin/pip install numba``);
* a call's fixed cost at 2^10 for each.

Usage: ``.venv/bin/python benchmarks/compilers.py`` (about 2 minutes): prints a Markdown table and
writes it into docs/design.md between its ``compilers`` markers (``--out ''`` to leave it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import kaun.activation as A
from kaun._backends import _torch as KT
from kaun._core import ALL


def _median(f: Callable[[], Any], reps: int) -> float:
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _numba() -> dict[str, Any] | None:
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(parallel=True, fastmath=False)
    def sigmoid(x: Any, y: Any) -> None:  # pragma: no cover (compiled)
        for i in numba.prange(x.size):
            y[i] = 1.0 / (1.0 + math.exp(-x[i]))

    @numba.njit(parallel=True, fastmath=False)
    def gelu(x: Any, y: Any) -> None:  # pragma: no cover (compiled)
        for i in numba.prange(x.size):
            y[i] = 0.5 * x[i] * math.erfc(-x[i] * 0.7071067811865476)

    return {"sigmoid": sigmoid, "gelu": gelu}


BEGIN = "<!-- compilers: written by benchmarks/compilers.py -->"
END = "<!-- compilers: end -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/design.md", help="page with the compilers markers")
    args = ap.parse_args()
    torch.set_num_threads(2)
    nb = _numba()
    rows = []
    for name, peer in (("sigmoid", torch.sigmoid), ("gelu", torch.nn.functional.gelu)):
        e = ALL[name]
        # the formula in torch operations, as kaun gives it to torch.compile
        formula = torch.compile(lambda t, e=e: KT._work(e, "value", (t,), e.prep((), 32)))
        t0 = time.perf_counter()
        formula(torch.randn(1 << 10))
        compile_s = time.perf_counter() - t0
        nbf = nb[name] if nb else None
        if nbf is not None:
            t0 = time.perf_counter()
            nbf(np.ones(8, np.float32), np.empty(8, np.float32))
            numba_s = time.perf_counter() - t0
        for lg in (10, 16, 22):
            x = torch.randn(1 << lg) * 3
            xn = x.numpy()
            yn = np.empty_like(xn)
            reps = 2000 if lg == 10 else (300 if lg == 16 else 30)
            kf = getattr(A, name)
            runs: dict[str, Callable[[], Any]] = {
                "torch": lambda p=peer, x=x: p(x),
                "kaun": lambda f=kf, x=x: f(x),
                "inductor": lambda f=formula, x=x: f(x),
            }
            if nbf is not None:
                runs["numba"] = lambda f=nbf, a=xn, b=yn: f(a, b)
            got: dict[str, list[float]] = {k: [] for k in runs}
            for _ in range(3):  # interleaved rounds
                for k, f in runs.items():
                    got[k].append(_median(f, reps))
            m = {k: statistics.median(v) for k, v in got.items() if v}
            rows.append((name, lg, m, compile_s, numba_s if nbf is not None else float("nan")))
    out = ["| function | size | torch op (us) | kaun C / torch | Inductor / torch | numba / torch |",
           "|---|---|---|---|---|---|"]
    for name, lg, m, _, _ in rows:
        nbr = f"{m['numba'] / m['torch']:.2f}" if "numba" in m else "not installed"
        out.append(f"| {name} | 2^{lg} | {m['torch'] * 1e6:.1f} | {m['kaun'] / m['torch']:.2f} | "
                   f"{m['inductor'] / m['torch']:.2f} | {nbr} |")
    out.append("")
    for name, _, _, cs, ns in rows[::3]:
        out.append(f"- first call of {name}: Inductor compiles {cs:.1f} s, numba "
                   f"{'-' if math.isnan(ns) else f'{ns:.1f} s'}")
    out.append(f"- measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by "
               "`.venv/bin/python benchmarks/compilers.py` (numba: `.venv/bin/pip install numba`)")
    text = "\n".join(out)
    print(text)
    if args.out:
        with open(args.out) as fh:
            page = fh.read()
        if BEGIN in page and END in page:
            head, rest = page.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            with open(args.out, "w") as fh:
                fh.write(f"{head}{BEGIN}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
