"""The gated family on torch CPU against the composite users write (issue 20's targets).

For swiglu, geglu, geglu_approx and reglu, float32, at 2^16 and 2^22 elements per half: the time
of the forward and of forward + backward of kaun's two call forms (``f(gate=g, up=u)``, and one
tensor split in two, ``f(x)``) against ``act(g) * u`` in torch (``F.silu``, ``F.gelu``,
``F.gelu(approximate="tanh")``, ``F.relu``), as ratios (below 1: kaun is faster), each the best of
several repeats; and the bytes that autograd saves for the backward (``saved_tensors_hooks``).

    .venv/bin/python benchmarks/gated.py                  # all four, 2^16 and 2^22
    .venv/bin/python benchmarks/gated.py --sizes 16 --repeat 3 swiglu
    .venv/bin/python benchmarks/gated.py --mlp         # the saved bytes of the MLP block

``--mlp``: the bytes that autograd saves for the backward of the gated MLP block (8 x 512 tokens,
model dimension 512, hidden 2048, float32), ``kaun.nn.GatedMLP`` against the same block written
with torch's composite (Hugging Face LLaMA's ``down(act(gate(x)) * up(x))``), counted by
``saved_tensors_hooks`` over distinct storages, the weights left out (both hold the same): what
the backward keeps alive between forward and backward, the bulk of a training step's peak.

Timings on a shared machine are noisy: run it on an idle one and keep the best of a few runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import kaun.activation as A

COMPOSITE: dict[str, Callable[[Any, Any], Any]] = {
    "swiglu": lambda g, u: F.silu(g) * u,
    "geglu": lambda g, u: F.gelu(g) * u,
    "geglu_approx": lambda g, u: F.gelu(g, approximate="tanh") * u,
    "reglu": lambda g, u: F.relu(g) * u,
}


def best(fn: Callable[[], Any], repeat: int) -> float:
    """The best time of one call, in seconds (calls repeated to fill ~50 ms per sample)."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(0.05 / one))
    out = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        out = min(out, (time.perf_counter() - t0) / n)
    return out


def saved_bytes(fn: Callable[..., Any], *ts: torch.Tensor) -> int:
    """The bytes of the tensors autograd saves for fn's backward (distinct storages)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*ts)
    return sum(seen.values())


def run(name: str, log2: int, repeat: int) -> dict[str, Any]:
    """Times (seconds) of the composite and of kaun's two forms, forward and forward + backward,
    and the saved bytes of the pair form over the composite's."""
    f = getattr(A, name)
    comp = COMPOSITE[name]
    n = 1 << log2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2 * n, generator=gen)
    u, g = (t.clone() for t in x.chunk(2))
    gy = torch.randn(n, generator=gen)
    ug, gg, xg = (t.clone().requires_grad_(True) for t in (u, g, x))
    r = {"name": name, "log2": log2}
    # interleaved: each contestant once per round, the best of the rounds
    fns = {
        "f_comp": lambda: comp(g, u), "f_pair": lambda: f(gate=g, up=u), "f_split": lambda: f(x),
        "b_comp": lambda: torch.autograd.grad(comp(gg, ug), (gg, ug), gy),
        "b_pair": lambda: torch.autograd.grad(f(gate=gg, up=ug), (gg, ug), gy),
        "b_split": lambda: torch.autograd.grad(f(xg), (xg,), gy),
    }
    best_of = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            best_of[k] = min(best_of[k], best(fn, 1))
    r.update(best_of)
    r["saved"] = saved_bytes(lambda g, u: f(gate=g, up=u), gg, ug) / saved_bytes(comp, gg, ug)
    return r


def row(r: dict[str, Any]) -> str:
    return (f"| {r['name']} | 2^{r['log2']} | {r['f_comp'] * 1e6:.0f} | {r['f_pair'] / r['f_comp']:.2f} | "
            f"{r['f_split'] / r['f_comp']:.2f} | {r['b_comp'] * 1e6:.0f} | {r['b_pair'] / r['b_comp']:.2f} | "
            f"{r['b_split'] / r['b_comp']:.2f} | {r['saved']:.2f} |")


def mlp_saved(name: str, tokens: int = 8 * 512, dim: int = 512,
              hidden: int = 2048) -> tuple[int, int]:
    """The bytes autograd saves for the backward of the composite block and of GatedMLP."""
    import kaun.nn as KN

    m = KN.GatedMLP(dim, hidden, name)
    gate, up = (torch.nn.Linear(dim, hidden, bias=False) for _ in range(2))
    weights = {p.untyped_storage().data_ptr() for p in [*m.parameters(), *gate.parameters(),
                                                         *up.parameters()]}
    x = torch.randn(tokens, dim, requires_grad=True)

    def composite(x: torch.Tensor) -> torch.Tensor:
        return m.down(COMPOSITE[name](gate(x), up(x)))

    def activations(fn: Callable[[torch.Tensor], Any]) -> int:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            st = t.untyped_storage()
            if st.data_ptr() not in weights:
                seen[st.data_ptr()] = st.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(x)
        return sum(seen.values())

    return activations(composite), activations(m)


PEAK = r"""
import sys, torch, torch.nn.functional as F, kaun.nn as KN
from gated import COMPOSITE
name, variant, tokens, dim, hidden = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.manual_seed(0)
m = KN.GatedMLP(dim, hidden, name)
gate, up = (torch.nn.Linear(dim, hidden, bias=False) for _ in range(2))
if variant == "kaun":
    block = m
else:
    def block(x):
        return m.down(COMPOSITE[name](gate(x), up(x)))
x = torch.randn(tokens, dim, requires_grad=True)


def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


def step():
    block(x).sum().backward()


step()  # (first calls: kernels loaded, lazy initialization done)
for p in [x, *m.parameters(), *gate.parameters(), *up.parameters()]:
    p.grad = None
step()  # (the gradients' memory now held, as in a training loop that zeroes them)
open("/proc/self/clear_refs", "w").write("5")  # reset the peak resident set to the current one
base = rss("VmRSS")
step()
print(rss("VmHWM") - base)
"""


def mlp_peak(name: str, variant: str, tokens: int = 8 * 512, dim: int = 512,
             hidden: int = 2048) -> int:
    """Peak memory of one forward + backward of the block, in bytes: the growth of the resident
    set's high-water mark (Linux's VmHWM, reset by /proc/self/clear_refs) over the resident set
    before the step, in a fresh process, after two steps that load everything and allocate the
    gradients; malloc's mmap threshold fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_) so that every
    tensor's memory is mapped when allocated and unmapped when freed."""
    import os
    import subprocess
    import sys

    here = str(Path(__file__).resolve().parent)  # (the child imports this file as `gated`)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536",
           "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", PEAK, name, variant, str(tokens), str(dim),
                        str(hidden)], capture_output=True, text=True, env=env, check=True)
    return int(r.stdout.split()[-1])


def doc(results: list[dict[str, Any]], mlp: list[tuple[str, float, float]],
        peaks: list[tuple[str, int, int]]) -> str:
    """docs/gated.md: the tables and the issue's targets."""
    head = ("| function | per half | composite fwd (us) | pair fwd | split fwd | composite "
            "fwd+bwd (us) | pair fwd+bwd | split fwd+bwd | saved bytes (pair / composite) |\n"
            "|---|---|---|---|---|---|---|---|---|")
    targets = []
    for r in results:
        lg, nm = r["log2"], r["name"]
        fb = max(r["b_pair"], r["b_split"]) / r["b_comp"]
        fw = max(r["f_pair"], r["f_split"]) / r["f_comp"]
        if lg >= 22:
            targets.append((f"{nm} 2^{lg} fwd+bwd <= 0.6x", f"{fb:.2f}", fb <= 0.6))
            targets.append((f"{nm} 2^{lg} fwd <= 0.8x", f"{fw:.2f}", fw <= 0.8))
        else:
            targets.append((f"{nm} 2^{lg} fwd and fwd+bwd <= 1.0x", f"{fw:.2f}, {fb:.2f}",
                            max(fw, fb) <= 1.0))
    for nm, comp, ours in peaks:
        targets.append((f"{nm} MLP block peak memory fwd+bwd <= 0.8x", f"{ours / comp:.2f}",
                        ours / comp <= 0.8))
    lines = [
        "# The gated family: speed and memory",
        "",
        f"Written by `benchmarks/gated.py --out docs/gated.md` (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, float32, CPU). Ratios are kaun's time over the "
        "composite users write (`F.silu(gate) * up`, ...), each the best of interleaved rounds "
        "(below 1: kaun is faster); the worse of kaun's two forms (`f(gate=, up=)` and the split "
        "`f(x)`) is what a target is checked against.",
        "",
        head, *[row(r) for r in results], "",
        "## The MLP block (8 x 512 tokens, model dimension 512, hidden 2048)",
        "",
        "Saved for backward (autograd's `saved_tensors_hooks`, distinct storages, weights left out):",
        "",
        "| activation | composite block saves (MiB) | GatedMLP saves (MiB) | ratio |", "|---|---|---|---|",
        *[f"| {n} | {c / 2**20:.1f} | {o / 2**20:.1f} | {o / c:.2f} |" for n, c, o in mlp], "",
        "Peak memory of one forward + backward, measured: the growth of the process's resident "
        "set high-water mark (Linux `VmHWM`, reset through `/proc/self/clear_refs`) over the "
        "resident set before the step, in a fresh process per row, after two steps (everything "
        "loaded, the gradients allocated as in a training loop), with malloc's mmap threshold "
        "fixed so that freed tensors leave the resident set:",
        "",
        "| activation | composite block (MiB) | GatedMLP (MiB) | ratio |", "|---|---|---|---|",
        *[f"| {n} | {c / 2**20:.1f} | {o / 2**20:.1f} | {o / c:.2f} |" for n, c, o in peaks], "",
        "## Targets (issue 20)", "", "| target | measured | met |", "|---|---|---|",
        *[f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets], "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"some of {', '.join(COMPOSITE)} (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 22], help="log2 of each half")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--mlp", action="store_true", help="the saved bytes of the MLP block only")
    p.add_argument("--out", default=None, help="write the whole report (all four, 2^16 and 2^22, "
                   "the MLP block's saved bytes and peak memory) here: docs/gated.md")
    args = p.parse_args(argv)
    bad = [n for n in args.names if n not in COMPOSITE]
    if bad:
        p.error(f"unknown {bad}; choose from {', '.join(COMPOSITE)}")
    names = args.names or list(COMPOSITE)
    if args.out:
        results = [run(n, lg, args.repeat) for n in names for lg in args.sizes]
        mlp = [(n, *mlp_saved(n)) for n in names]
        peaks = [(n, mlp_peak(n, "composite"), mlp_peak(n, "kaun")) for n in names]
        text = doc(results, mlp, peaks)
        Path(args.out).write_text(text)
        print(text)
        return 0
    if args.mlp:
        print("| activation | composite block saves (MiB) | GatedMLP saves (MiB) | ratio |")
        print("|---|---|---|---|")
        for name in names:
            _, theirs, ours = name, *mlp_saved(name)
            print(f"| {name} | {theirs / 2**20:.1f} | {ours / 2**20:.1f} | {ours / theirs:.2f} |")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print("| function | per half | composite fwd (us) | pair fwd | split fwd | composite "
          "fwd+bwd (us) | pair fwd+bwd | split fwd+bwd | saved bytes (pair / composite) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for log2 in args.sizes:
            print(row(run(name, log2, args.repeat)), flush=True)
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
