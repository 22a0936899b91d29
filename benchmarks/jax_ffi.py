"""JAX on the CPU: kaun's kernels as an XLA FFI custom call, beside kaun's formula lowering and jax.nn.

For each elementwise function that jax.nn has a peer for (benchmarks/speed.py's ``jax_peer``),
float32, under ``jax.jit`` on the CPU:

* the bare function at 2^22 elements, forward and forward + backward (one jitted ``jax.vjp``):
  kaun through the FFI (the compiled C kernel, one custom call per order, on XLA's thread),
  kaun's formula (jax.numpy, fused by XLA: today's lowering) and jax.nn;
* an MLP layer, ``act(x @ W1) @ W2`` (8 x 128 tokens, 512 -> 2048 -> 512), forward and forward +
  backward (the vjp in x, W1 and W2), with each of the three: a custom call cannot fuse with its
  neighbours (the matmul's output is written, then read by the kernel), the formula can.

Each group's contestants are compiled ahead (``jax.jit(...).lower(...).compile()``, the FFI's
lowering checked in the HLO) and timed interleaved, medians of rounds (speed.py's ``Group``).
Ratios only within a group: the machine is shared and noisy.

Usage:
    .venv/bin/python benchmarks/jax_ffi.py                  # every function, bare and MLP
    .venv/bin/python benchmarks/jax_ffi.py --functions gelu,silu --no-mlp
    .venv/bin/python benchmarks/jax_ffi.py --out docs/jax.md   # rewrites its measured section
"""

from __future__ import annotations

import argparse
import datetime
import math
import platform
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import Group, fmt, gmean, jax_peer  # noqa: E402

import kaun.activation as A  # noqa: E402
from kaun._core import ENTRIES  # noqa: E402
from kaun._kernels import jaxffi  # noqa: E402

EVERY = frozenset(k for k, e in ENTRIES.items() if e.kind == "elementwise")


def names() -> list[str]:
    out = []
    for n, e in ENTRIES.items():
        if e.kind != "elementwise" or n == "prelu":
            continue
        try:
            jax_peer(n)
        except AttributeError:
            continue
        out.append(n)
    return out


def compiled(fn: Any, args: tuple[Any, ...], ffi: bool | None | str) -> Any:
    """fn jitted and compiled ahead, with kaun's FFI lowering for every order (True), for none
    (False), as chosen ("chosen": jaxffi.FFI_FUNCTIONS and FFI_DERIVATIVES), or jax.nn's (None:
    no kaun inside)."""
    keep = jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES
    if ffi != "chosen":
        jaxffi.FFI_FUNCTIONS = jaxffi.FFI_DERIVATIVES = EVERY if ffi else frozenset()
    jax.clear_caches()  # (JAX keeps the inner jitted functions' lowering: lower them again)
    try:
        lowered = jax.jit(fn).lower(*args)
    finally:
        jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES = keep
    if isinstance(ffi, bool) and (jaxffi.TARGET in lowered.as_text()) != ffi:
        raise SystemExit(f"the lowering is not the one asked for (ffi={ffi})")
    return lowered.compile()


def blocked(f: Any, *args: Any) -> Any:
    def g() -> Any:
        return jax.block_until_ready(f(*args))

    return g


def bare(name: str, repeats: int, budget: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.standard_normal(1 << 22) * 3).astype(np.float32))
    g = jnp.asarray(rng.standard_normal(1 << 22).astype(np.float32))
    k, p = getattr(A, name), jax_peer(name)

    def fb(f: Any) -> Any:
        return lambda x, g: jax.vjp(f, x)[1](g)[0]

    grp = Group(repeats, small=False, budget=budget)
    for lab, fn, mode in (("ffi", k, True), ("formula", k, False), ("chosen", k, "chosen"),
                          ("jax.nn", p, None)):
        f1, f2 = compiled(fn, (x,), mode), compiled(fb(fn), (x, g), mode)
        grp.add(f"{lab} fwd", blocked(f1, x))
        grp.add(f"{lab} fb", blocked(f2, x, g))
    return grp.run()


TOKENS, DIM, HIDDEN = 8 * 128, 512, 2048


def mlp(name: str, repeats: int, budget: float) -> dict[str, float]:
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((TOKENS, DIM)).astype(np.float32))
    w1 = jnp.asarray((rng.standard_normal((DIM, HIDDEN)) / math.sqrt(DIM)).astype(np.float32))
    w2 = jnp.asarray((rng.standard_normal((HIDDEN, DIM)) / math.sqrt(HIDDEN)).astype(np.float32))
    g = jnp.asarray(rng.standard_normal((TOKENS, DIM)).astype(np.float32))
    k, p = getattr(A, name), jax_peer(name)

    def layer(act: Any) -> Any:
        return lambda x, w1, w2: act(x @ w1) @ w2

    def fb(act: Any) -> Any:
        return lambda x, w1, w2, g: jax.vjp(layer(act), x, w1, w2)[1](g)

    grp = Group(repeats, small=False, budget=budget)
    for lab, fn, mode in (("ffi", k, True), ("formula", k, False), ("chosen", k, "chosen"),
                          ("jax.nn", p, None)):
        grp.add(f"{lab} fwd", blocked(compiled(layer(fn), (x, w1, w2), mode), x, w1, w2))
        grp.add(f"{lab} fb", blocked(compiled(fb(fn), (x, w1, w2, g), mode), x, w1, w2, g))
    return grp.run()


def r(res: dict[str, float], a: str, b: str) -> float:
    return res[a] / res[b] if a in res and b in res else float("nan")


def report(fns: list[str], bare_res: dict[str, dict[str, float]],
           mlp_res: dict[str, dict[str, float]]) -> str:
    cols = [("FFI", "ffi"), ("formula (XLA-fused)", "formula"), ("as chosen", "chosen")]
    head = ("| function | " + " | ".join(f"fwd {c} / jax.nn" for c, _ in cols) + " | "
            + " | ".join(f"fwd+bwd {c} / jax.nn" for c, _ in cols) + " | jax.nn fwd (ms) | jax.nn fwd+bwd (ms) |")
    lines = ["The bare function, 2^22 elements, float32, `jax.jit` on the CPU; each ratio a median of "
             "interleaved runs (FFI: every order through the custom call; formula: none; as chosen: "
             "`jaxffi.FFI_FUNCTIONS` and `FFI_DERIVATIVES`):", "", head, "|" + "---|" * (head.count("|") - 1)]
    for n in fns:
        b = bare_res[n]
        cells = [fmt(r(b, f"{c} {d}", f"jax.nn {d}")) for d in ("fwd", "fb") for _, c in cols]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {b['jax.nn fwd'] * 1e3:.2f} | {b['jax.nn fb'] * 1e3:.2f} |")

    def gm(res: dict[str, dict[str, float]], a: str, c: str) -> str:
        return fmt(gmean([r(res[n], a, c) for n in res]))

    def worst(res: dict[str, dict[str, float]], a: str, c: str) -> str:
        w = max(res, key=lambda n: r(res[n], a, c))
        return f"{fmt(r(res[w], a, c))} ({w})"

    for lab, how in (("geomean", gm), ("worst", worst)):
        cells = [how(bare_res, f"{c} {d}", f"jax.nn {d}") for d in ("fwd", "fb") for _, c in cols]
        lines.append(f"| **{lab}** | " + " | ".join(cells) + " | | |")
    if mlp_res:
        mcols = cols
        head = ("| function | " + " | ".join(f"fwd {c} / jax.nn" for c, _ in mcols) + " | "
                + " | ".join(f"fwd+bwd {c} / jax.nn" for c, _ in mcols) + " | jax.nn fwd (ms) | jax.nn fwd+bwd (ms) |")
        lines += ["", f"The MLP layer `act(x @ W1) @ W2`, x {TOKENS} x {DIM}, W1 {DIM} x {HIDDEN}, W2 "
                  f"{HIDDEN} x {DIM}, float32, `jax.jit` (forward + backward: the vjp in x, W1, W2):", "",
                  head, "|" + "---|" * (head.count("|") - 1)]
        for n, m in mlp_res.items():
            cells = [fmt(r(m, f"{c} {d}", f"jax.nn {d}")) for d in ("fwd", "fb") for _, c in mcols]
            ms = f" | {m['jax.nn fwd'] * 1e3:.1f} | {m['jax.nn fb'] * 1e3:.1f} |"
            lines.append(f"| {n} | " + " | ".join(cells) + ms)
        for lab, how in (("geomean", gm), ("worst", worst)):
            cells = [how(mlp_res, f"{c} {d}", f"jax.nn {d}") for d in ("fwd", "fb") for _, c in mcols]
            lines.append(f"| **{lab}** | " + " | ".join(cells) + " | | |")
    return "\n".join(lines)


BEGIN, END = "<!-- jax_ffi: written by benchmarks/jax_ffi.py -->", "<!-- jax_ffi: end -->"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--functions", default="", help="comma-separated (default: every one with a jax.nn peer)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=4.0, help="seconds of timed rounds per group")
    ap.add_argument("--no-mlp", action="store_true")
    ap.add_argument("--out", default=None, help="rewrite the measured section of this markdown file")
    a = ap.parse_args(argv)
    if jaxffi.load() is None:
        print(f"the FFI does not serve here: {jaxffi.state()['why']}")
        return 1
    fns = [n for n in a.functions.split(",") if n] or names()
    bare_res, mlp_res = {}, {}
    for n in fns:
        bare_res[n] = bare(n, a.repeats, a.budget)
        print(n, {k: f"{v * 1e3:.2f} ms" for k, v in bare_res[n].items()}, flush=True)
    if not a.no_mlp:
        for n in fns:
            mlp_res[n] = mlp(n, a.repeats, a.budget)
            print(n, "mlp", {k: f"{v * 1e3:.1f} ms" for k, v in mlp_res[n].items()}, flush=True)
    text = report(fns, bare_res, mlp_res)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text += (f"\n\nMeasured {when} on {platform.machine()}, {jax.device_count()} CPU device, "
             f"jax {jax.__version__}, by `.venv/bin/python benchmarks/jax_ffi.py"
             f"{' --functions ' + a.functions if a.functions else ''}{' --no-mlp' if a.no_mlp else ''}"
             f" --out docs/jax.md`.")
    print(text)
    if a.out:
        p = Path(a.out)
        doc = p.read_text()
        i, j = doc.index(BEGIN), doc.index(END)
        p.write_text(doc[:i + len(BEGIN)] + "\n" + text + "\n" + doc[j:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
