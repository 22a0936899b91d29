"""Peak memory of every activation on a large float32 array, NumPy and PyTorch (CPU).

Each (library, function) runs in a fresh subprocess, one at a time: the child builds the input
(filled in chunks, so that building it needs no temporary), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), calls the function once, and reports the peak resident memory
above what it held just before the call (input included, nothing else allocated), in multiples
of the input's size. A fresh output is 1.0 (0.5 for glu); the rest is temporaries.

    .venv/bin/python benchmarks/large_arrays.py --size 26            # 2^26 elements (256 MiB)
    .venv/bin/python benchmarks/large_arrays.py --size 28            # 2^28 elements (1 GiB)
    .venv/bin/python benchmarks/large_arrays.py --size 26 --out docs/memory.md

Before each child the parent checks MemAvailable: a run whose expected peak does not fit is
skipped and marked so. The expected peak is (m + 2) x the input + 2 GiB, where m is the
function's multiple from a smaller run (``--prior``, the ``--json`` of that run) or else the
largest multiple seen so far; and each child runs under an address-space limit of what is
free minus 1 GiB, so that a misjudged one fails with MemoryError instead of exhausting the
machine. Linux only (VmHWM, clear_refs, RLIMIT_AS).

    .venv/bin/python benchmarks/large_arrays.py --size 26 --json /tmp/m26.json
    .venv/bin/python benchmarks/large_arrays.py --size 28 --prior /tmp/m26.json --out docs/memory.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GIB = 1 << 30


def _status(key: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise KeyError("MemAvailable")


def child(lib: str, name: str, n: int, threads: int) -> dict[str, Any]:
    """Runs in the subprocess: build x, call A.<name>(x) once, report the peak."""
    import gc

    import numpy as np

    import kaun.activation as A

    x = np.empty(n, np.float32)
    rng = np.random.default_rng(0)
    chunk = 1 << 20
    for i in range(0, n, chunk):
        x[i : i + chunk] = rng.standard_normal(min(chunk, n - i), dtype=np.float32) * 8
    arg: Any = x
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        arg = torch.from_numpy(x)  # shares x's memory
        # warm up the library and kaun's backend on a small array: their one-time allocations
        # are not the function's
        A.relu(torch.zeros(8))
    fn = getattr(A, name)
    kw: dict[str, Any] = {}
    small = arg[:8]
    if name == "prelu":
        fn(small, 0.25)
    else:
        fn(small)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark to the current RSS
    base = _status("VmRSS")
    t = time.perf_counter()
    y = fn(arg, 0.25) if name == "prelu" else fn(arg, **kw)
    dt = time.perf_counter() - t
    peak = _status("VmHWM")
    out_bytes = int(np.prod(tuple(y.shape))) * x.itemsize
    assert str(y.dtype).endswith("float32")
    return {
        "lib": lib,
        "fn": name,
        "n": n,
        "input_bytes": x.nbytes,
        "extra_bytes": peak - base,
        "extra_x": (peak - base) / x.nbytes,
        "output_x": out_bytes / x.nbytes,
        "seconds": dt,
    }


def run_child(lib: str, name: str, n: int, threads: int, timeout: float) -> dict[str, Any]:
    import resource

    cmd = [sys.executable, __file__, "--child", lib, name, "--n", str(n), "--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS=str(threads))
    limit = max(_mem_available() - GIB, GIB) + 4 * GIB  # + the libraries' address space

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, preexec_fn=cap)
    except subprocess.TimeoutExpired:
        return {"lib": lib, "fn": name, "error": f"timed out after {timeout:.0f} s"}
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]
        return {"lib": lib, "fn": name, "error": tail[0][:200]}
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


def render(rows: list[dict[str, Any]], args: argparse.Namespace, n: int, wall: float,
           prior: dict[tuple[str, str], float]) -> str:
    import numpy as np
    import torch

    names = list(dict.fromkeys(r["fn"] for r in rows))
    libs = list(dict.fromkeys(r["lib"] for r in rows))
    by = {(r["lib"], r["fn"]): r for r in rows}

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        if "error" in r:
            p = prior.get((r["lib"], r["fn"]))
            at = f"; {p:.2f} in the smaller run of --prior" if p is not None else ""
            return f"not run ({r['error']}{at})"
        return f"{r['extra_x']:.2f} ({r['seconds']:.2f} s)"

    lines = [
        "# Peak memory on a large array",
        "",
        f"Generated by `benchmarks/large_arrays.py --size {args.size}`: a float32 array of 2^{args.size} = "
        f"{n:,} elements ({n * 4 / GIB:.2f} GiB) through every function, each (library, function) in a "
        "fresh subprocess, one at a time.",
        "",
        "Each cell: the peak resident memory during the one call, above what the process held just "
        "before it (the input and the libraries), in multiples of the input's size, and the call's "
        "wall time. The output itself is 1.00 of that (0.50 for glu); the rest is temporaries. "
        "Measured with the kernel's peak-RSS mark (`VmHWM`, reset through `/proc/self/clear_refs` "
        "just before the call).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared with other jobs, so the times are "
        f"rough), {args.threads} torch thread(s); Python {platform.python_version()}, NumPy "
        f"{np.__version__}, torch {torch.__version__}. {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{wall / 60:.1f} min in all.",
        "",
        "Regenerate: `.venv/bin/python benchmarks/large_arrays.py --size 26 --json /tmp/m26.json`, then "
        f"`.venv/bin/python benchmarks/large_arrays.py --size {args.size} --prior /tmp/m26.json --json /tmp/m28.json "
        "--out docs/memory.md` (the smaller run predicts each function's peak, so that one that cannot fit "
        "in the free memory is skipped rather than run).",
        "",
        "| function | " + " | ".join(f"{lib}: extra peak x input (time)" for lib in libs) + " |",
        "|---|" + "---|" * len(libs),
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(cell(by.get((lib, name))) for lib in libs) + " |")
    ok = [r for r in rows if "error" not in r]
    if ok:
        worst = max(ok, key=lambda r: r["extra_x"])
        lines += [
            "",
            f"Largest: {worst['fn']} on {worst['lib']}, {worst['extra_x']:.2f} x the input "
            f"({worst['extra_bytes'] / GIB:.2f} GiB at this size).",
        ]
    for lib in libs:
        lr = [r for r in ok if r["lib"] == lib]
        if lr:
            xs = sorted(r["extra_x"] for r in lr)
            lines.append(
                f"{lib}: median {xs[len(xs) // 2]:.2f}, max {xs[-1]:.2f} x the input over {len(lr)} functions."
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=28, help="log2 of the number of elements (default 28: 1 GiB)")
    ap.add_argument("--libs", default="numpy,torch")
    ap.add_argument("--functions", default="", help="comma-separated subset (default: all 25)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per child")
    ap.add_argument("--out", default="", help="write the Markdown table here (e.g. docs/memory.md)")
    ap.add_argument("--json", default="", help="write the measurements here (JSON)")
    ap.add_argument("--prior", default="", help="the --json of a smaller run: per-function multiples")
    ap.add_argument("--render", default="", help="only re-render the --json of an earlier run (same --size)")
    ap.add_argument("--child", nargs=2, metavar=("LIB", "FN"), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.n, args.threads)))
        return

    sys.path.insert(0, str(ROOT / "src"))
    import kaun.activation as A

    n = 1 << args.size
    names = [s for s in args.functions.split(",") if s] or A.names()
    rows: list[dict[str, Any]] = []
    worst = 6.0  # a first guess of the largest multiple, before any measurement
    prior: dict[tuple[str, str], float] = {}
    if args.prior:
        for r in json.loads(Path(args.prior).read_text()):
            if "extra_x" in r:
                prior[(r["lib"], r["fn"])] = r["extra_x"]
    t0 = time.time()
    if args.render:
        rows = json.loads(Path(args.render).read_text())
        names = []
    for lib in args.libs.split(","):
        for name in names:
            need = (prior.get((lib, name), worst) + 2) * n * 4 + 2 * GIB
            avail = _mem_available()
            if avail < need:
                r = {"lib": lib, "fn": name,
                     "error": f"skipped: {avail / GIB:.1f} GiB free < {need / GIB:.1f} GiB needed"}
            else:
                r = run_child(lib, name, n, args.threads, args.timeout)
            rows.append(r)
            if "error" not in r:
                worst = max(worst, r["extra_x"])
                print(f"{lib:6s} {name:15s} extra peak {r['extra_x']:5.2f} x input  "
                      f"{r['seconds']:7.2f} s", flush=True)
            else:
                print(f"{lib:6s} {name:15s} {r['error']}", flush=True)
    if args.json and not args.render:
        Path(args.json).write_text(json.dumps(rows + [{"wall": time.time() - t0}], indent=1))
    wall = next((r["wall"] for r in rows if "wall" in r), time.time() - t0)
    rows = [r for r in rows if "fn" in r]
    text = render(rows, args, n, wall, prior)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
