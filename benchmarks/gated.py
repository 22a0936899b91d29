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


def run(name: str, log2: int, repeat: int) -> str:
    f = getattr(A, name)
    comp = COMPOSITE[name]
    n = 1 << log2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2 * n, generator=gen)
    u, g = (t.clone() for t in x.chunk(2))
    gy = torch.randn(n, generator=gen)
    ug, gg, xg = (t.clone().requires_grad_(True) for t in (u, g, x))

    t_comp = best(lambda: comp(g, u), repeat)
    t_pair = best(lambda: f(gate=g, up=u), repeat)
    t_split = best(lambda: f(x), repeat)
    b_comp = best(lambda: torch.autograd.grad(comp(gg, ug), (gg, ug), gy), repeat)
    b_pair = best(lambda: torch.autograd.grad(f(gate=gg, up=ug), (gg, ug), gy), repeat)
    b_split = best(lambda: torch.autograd.grad(f(xg), (xg,), gy), repeat)
    s_comp = saved_bytes(comp, gg, ug)
    s_pair = saved_bytes(lambda g, u: f(gate=g, up=u), gg, ug)
    return (f"| {name} | 2^{log2} | {t_comp * 1e6:.0f} | {t_pair / t_comp:.2f} | "
            f"{t_split / t_comp:.2f} | {b_comp * 1e6:.0f} | {b_pair / b_comp:.2f} | "
            f"{b_split / b_comp:.2f} | {s_pair / s_comp:.2f} |")


def mlp_saved(name: str, tokens: int = 8 * 512, dim: int = 512, hidden: int = 2048) -> str:
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

    ours, theirs = activations(m), activations(composite)
    return (f"| {name} | {theirs / 2**20:.1f} | {ours / 2**20:.1f} | {ours / theirs:.2f} |")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"some of {', '.join(COMPOSITE)} (default: all)")
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 22], help="log2 of each half")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--mlp", action="store_true", help="the saved bytes of the MLP block only")
    args = p.parse_args(argv)
    bad = [n for n in args.names if n not in COMPOSITE]
    if bad:
        p.error(f"unknown {bad}; choose from {', '.join(COMPOSITE)}")
    if args.mlp:
        print("| activation | composite block saves (MiB) | GatedMLP saves (MiB) | ratio |")
        print("|---|---|---|---|")
        for name in args.names or list(COMPOSITE):
            print(mlp_saved(name))
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print("| function | per half | composite fwd (us) | pair fwd | split fwd | composite "
          "fwd+bwd (us) | pair fwd+bwd | split fwd+bwd | saved bytes (pair / composite) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.names or list(COMPOSITE):
        for log2 in args.sizes:
            print(run(name, log2, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
