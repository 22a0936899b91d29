"""kaun's Triton kernels on a CUDA GPU: their bits against the CPU kernels, then their speed and
peak memory against torch's own ops, in one run; writes docs/gpu.md naming the GPU.

1. Bits: every function (the spec's 25 and the gated family), float32, bfloat16, float16 and
   float64, the value and the gradient (one backward), on the accuracy grid (tests/bits.grid): the
   GPU's result against the C kernel's on the same input, element by element.
2. Speed: 2^20, 2^24 and 2^27 elements, float32 and bfloat16, forward and forward + backward,
   kaun beside torch's op (torch.nn.functional; a composite of torch ops where torch has none, and
   torch's silu as the price of one pass for those), CUDA events, medians of interleaved rounds.
   At 2^27 each forward kernel's bandwidth (one read, one write) against a device copy's.
3. Peak memory of forward + backward (torch.cuda.max_memory_allocated above the inputs).

Usage (a GPU machine; about 3 minutes on an H100):
    .venv/bin/python benchmarks/gpu.py                 # writes docs/gpu.md
    .venv/bin/python benchmarks/gpu.py --quick         # 8 functions, float32 only
    KAUN_TRITON=interpret .venv/bin/python benchmarks/gpu.py --smoke   # CPU: the script's own test
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import kaun.activation as A
from kaun._kernels import gpu as G

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from bits import bits, grid, to_torch  # noqa: E402
from speed import TORCH_COMPOSITE, torch_peer  # noqa: E402

GATED = ["swiglu", "geglu", "reglu"]
FUNCS = [n for n in A.names() if n not in ("swish", "hard_swish", "prelu")] + GATED
QUICK = ["sigmoid", "tanh", "elu", "gelu", "gelu_approx", "silu", "mish", "softplus"]
DT = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
      "float64": torch.float64}


def kaun_fn(name: str) -> Callable[[Any], Any]:
    f = getattr(A, name)
    if name in ("glu", *GATED):
        return lambda x: f(x, axis=-1)
    return f  # type: ignore[no-any-return]


def peer_fn(name: str) -> Callable[[Any], Any]:
    import torch.nn.functional as F

    gated = {"swiglu": F.silu, "geglu": F.gelu, "reglu": F.relu}
    if name in gated:
        act = gated[name]
        return lambda x: (lambda a, b: a * act(b))(*x.chunk(2, -1))
    return torch_peer(name)


@contextlib.contextmanager
def _interpreting(on: bool) -> Any:
    """CPU tensors through the Triton interpreter (on) or the C kernels (off), for a while."""
    old = G.INTERPRET
    G.INTERPRET = on
    try:
        yield
    finally:
        G.INTERPRET = old


# -- 1. bits ------------------------------------------------------------------------------------


def bit_check(dev: str, names: list[str], dtypes: list[str]) -> tuple[int, int, list[str]]:
    """(cells, cells equal, the differing cells): the value and the gradient of each function
    and dtype on the grid, the GPU against the CPU."""
    cells = same = 0
    differ = []
    for dt in dtypes:
        x_cpu = to_torch(grid(dt, 1 << 12), dt)
        if x_cpu.numel() % 2:
            x_cpu = x_cpu[:-1]
        g_cpu = torch.flip(x_cpu, [0])
        for name in names:
            f = kaun_fn(name)
            out = {}
            for d, interp in (("cpu", False), (dev, G.INTERPRET)):
                # the reference: the C kernels (a CPU tensor kept off the Triton kernels under
                # --smoke, where the device is the CPU under the interpreter)
                with _interpreting(interp):
                    x = x_cpu.to(d).requires_grad_()
                    y = f(x)
                    (gx,) = torch.autograd.grad(y, x, g_cpu.to(d)[: y.numel()].reshape(y.shape))
                out[d + str(interp) if d == "cpu" else d] = (y.detach().cpu(), gx.cpu())
            out = dict(zip(("cpu", dev), out.values(), strict=True))
            for part, a, b in zip(("value", "grad"), out["cpu"], out[dev], strict=True):
                cells += 1
                if np.array_equal(bits(a), bits(b)):
                    same += 1
                else:
                    differ.append(f"{name}/{dt}/{part}: {int((bits(a) != bits(b)).sum())} elements")
    return cells, same, differ


# -- 2. speed -----------------------------------------------------------------------------------


def _time(dev: str, fns: list[Callable[[], Any]], rounds: int, reps: int) -> list[float]:
    """Median seconds per call of each fn, interleaved, CUDA events (wall clock on the CPU)."""
    for fn in fns:
        fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            if dev == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for _ in range(reps):
                    fn()
                b.record()
                b.synchronize()
                out[i].append(a.elapsed_time(b) / 1e3 / reps)
            else:
                t = time.perf_counter()
                for _ in range(reps):
                    fn()
                out[i].append((time.perf_counter() - t) / reps)
    return [statistics.median(v) for v in out]


def _copy(x: Any) -> Callable[[], Any]:
    """A device copy into a preallocated tensor: one read, one write (the floor)."""
    y = torch.empty_like(x)
    return lambda: y.copy_(x)


def fwd(f: Callable[[Any], Any], x: Any) -> Callable[[], Any]:
    def run() -> Any:
        with torch.no_grad():
            return f(x)

    return run


def fwd_bwd(f: Callable[[Any], Any], x: Any, g: Any) -> Callable[[], Any]:
    xg = x.detach().requires_grad_()

    def run() -> Any:
        y = f(xg)
        return torch.autograd.grad(y, xg, g[: y.numel()].view(y.shape))

    return run


def peak(dev: str, fn: Callable[[], Any]) -> int:
    """Bytes allocated at the peak of one call, above what was allocated before it."""
    if dev != "cuda":
        return 0
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    r = fn()
    torch.cuda.synchronize()
    del r
    return int(torch.cuda.max_memory_allocated() - base)


def geomean(v: list[float]) -> float:
    return math.exp(sum(map(math.log, v)) / len(v)) if v else float("nan")


def speed(dev: str, names: list[str], sizes: list[int], dtypes: list[str], rounds: int,
          reps: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    copy_bw: dict[tuple[int, str], float] = {}
    for dt in dtypes:
        for n in sizes:
            torch.manual_seed(0)
            x = (torch.randn(n, device=dev) * 3).to(DT[dt])
            g = torch.randn(n, device=dev).to(DT[dt])
            (t_copy,) = _time(dev, [_copy(x)], rounds, reps)
            copy_bw[n, dt] = 2 * n * x.element_size() / t_copy
            silu = peer_fn("silu")
            (t_silu,) = _time(dev, [fwd(silu, x)], rounds, reps)
            (t_silu_b,) = _time(dev, [fwd_bwd(silu, x, g)], rounds, reps)
            for name in names:
                k, p = kaun_fn(name), peer_fn(name)
                tf = _time(dev, [fwd(k, x), fwd(p, x)], rounds, reps)
                tb = _time(dev, [fwd_bwd(k, x, g), fwd_bwd(p, x, g)], rounds, reps)
                mk, mp = peak(dev, fwd_bwd(k, x, g)), peak(dev, fwd_bwd(p, x, g))
                out_n = n // 2 if name in ("glu", *GATED) else n
                bw = (n + out_n) * x.element_size() / tf[0]
                rows.append({"name": name, "dtype": dt, "n": n, "fwd": tf[0] / tf[1],
                             "fwdbwd": tb[0] / tb[1], "t_fwd_us": tf[0] * 1e6,
                             "bw": bw / copy_bw[n, dt], "mem": (mk, mp),
                             "lacks": name in TORCH_COMPOSITE,
                             "vs_silu": (tf[0] / t_silu, tb[0] / t_silu_b)})
    return {"rows": rows, "copy_bw": copy_bw}


# -- report -------------------------------------------------------------------------------------


def report(dev_name: str, bitres: tuple[int, int, list[str]], sp: dict[str, Any],
           sizes: list[int]) -> str:
    cells, same, differ = bitres
    rows = sp["rows"]
    lines = [
        "# kaun on the GPU",
        "",
        f"Written by `benchmarks/gpu.py` on **{dev_name}**, torch {torch.__version__}. Ratios are "
        "kaun's time over torch's op in the same run (below 1: kaun is faster); CUDA events, "
        "medians of interleaved rounds.",
        "",
        f"**Bits**: {same} of {cells} cells (function x dtype x value/gradient, on the accuracy "
        "grid) are bitwise the CPU kernels' result." + ("" if not differ else
                                                        " Differing: " + "; ".join(differ[:10])),
        "",
    ]
    targets = []
    for dt in sorted({r["dtype"] for r in rows}):
        head = " | ".join(f"2^{int(math.log2(n))} fwd | fwd+bwd" for n in sizes)
        lines += [f"## {dt}", "",
                  f"| function | {head} | bandwidth (2^27) | peak mem fwd+bwd kaun/torch |",
                  "|---|" + "---|---|" * len(sizes) + "---|---|"]
        names = list(dict.fromkeys(r["name"] for r in rows if r["dtype"] == dt))
        for name in names:
            rs = {r["n"]: r for r in rows if r["dtype"] == dt and r["name"] == name}
            big = rs[max(sizes)]
            mk, mp = big["mem"]
            cells_ = " | ".join(f"{rs[n]['fwd']:.2f} | {rs[n]['fwdbwd']:.2f}" for n in sizes)
            lines.append(f"| {name}{' *' if big['lacks'] else ''} | {cells_} | {big['bw']:.0%} | "
                         f"{mk / 2**20:.0f} / {mp / 2**20:.0f} MiB |")
        lines.append("")
        for n in sizes:
            rs = [r for r in rows if r["dtype"] == dt and r["n"] == n and not r["lacks"]]
            for mode in ("fwd", "fwdbwd"):
                gm, worst = geomean([r[mode] for r in rs]), max(rs, key=lambda r: r[mode])
                limit = 1.5 if n <= 1 << 20 else 1.0
                targets.append((f"{dt} 2^{int(math.log2(n))} {mode} geomean <= {limit}",
                                f"{gm:.2f}", gm <= limit))
                if n > 1 << 20:
                    targets.append((f"{dt} 2^{int(math.log2(n))} {mode} none above 1.2",
                                    f"{worst['name']} {worst[mode]:.2f}", worst[mode] <= 1.2))
        big = [r for r in rows if r["dtype"] == dt and r["n"] == max(sizes)]
        low = min(big, key=lambda r: r["bw"])
        targets.append((f"{dt} 2^{int(math.log2(max(sizes)))} bandwidth >= 85 % of a copy",
                        f"lowest {low['name']} {low['bw']:.0%}", low["bw"] >= 0.85))
        lack = [r for r in big if r["lacks"]]
        if lack:
            w = max(lack, key=lambda r: r["vs_silu"][1])
            targets.append((f"{dt} functions torch lacks <= torch's silu",
                            f"worst {w['name']} {w['vs_silu'][0]:.2f} fwd, {w['vs_silu'][1]:.2f} fwd+bwd",
                            max(w["vs_silu"]) <= 1.0))
        mem = max(big, key=lambda r: r["mem"][0] / max(r["mem"][1], 1))
        targets.append((f"{dt} peak memory of fwd+bwd <= torch's",
                        f"worst {mem['name']} {mem['mem'][0] / 2**20:.0f} / {mem['mem'][1] / 2**20:.0f} MiB",
                        mem["mem"][0] <= mem["mem"][1]))
    targets.append(("bits equal the CPU kernels'", f"{same}/{cells}", same == cells))
    lines += ["## Targets (issue 19)", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets]
    lines += ["", "`*`: torch has no such op; its peer is a composite of torch operations.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true",
                    help="on the CPU under KAUN_TRITON=interpret, tiny sizes, nothing written")
    ap.add_argument("--out", default=str(ROOT / "docs" / "gpu.md"))
    a = ap.parse_args(argv)
    if a.smoke:
        if G.mode() != "interpret":
            raise SystemExit("--smoke runs under KAUN_TRITON=interpret")
        dev, dev_name = "cpu", "the CPU (Triton's interpreter: a smoke test, not a measurement)"
        names, sizes, rounds, reps = ["gelu", "elu", "sparse_plus", "swiglu"], [1 << 12], 1, 1
        dtypes = ["float32", "bfloat16"]
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: this benchmark needs a GPU (see --smoke)")
        dev, dev_name = "cuda", torch.cuda.get_device_name()
        names = QUICK if a.quick else FUNCS
        sizes, rounds, reps = [1 << 20, 1 << 24, 1 << 27], 5, 10
        dtypes = ["float32"] if a.quick else ["float32", "bfloat16"]
    t = time.perf_counter()
    bitres = bit_check(dev, names, dtypes if a.smoke else ["float32", "bfloat16", "float16", "float64"])
    print(f"bits: {bitres[1]}/{bitres[0]} cells equal ({time.perf_counter() - t:.0f} s)", flush=True)
    sp = speed(dev, names, sizes, dtypes, rounds, reps)
    text = report(dev_name, bitres, sp, sizes)
    print(text)
    if not a.smoke:
        Path(a.out).write_text(text)
        print(f"wrote {a.out} ({time.perf_counter() - t:.0f} s)")
    return 0 if bitres[1] == bitres[0] else 1


if __name__ == "__main__":
    sys.exit(main())
