"""silu and gelu at a model's MLP shape, 8 x 128 x 688 float32 (a small LLaMA's intermediate
activation, cache-resident), eager torch on the CPU: kaun against torch's own op, forward without
grad and forward + backward, ratios of medians timed interleaved (speed.py's ``Group``), with
torch's default thread count and with one thread.

Usage:
    .venv/bin/python benchmarks/mlp_shape.py [--functions silu,gelu,gelu_approx] [--repeats 21]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402  (the Group and the peers of benchmarks/speed.py)

SHAPE = (8, 128, 688)


def measure(name: str, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    x = torch.from_numpy((rng.standard_normal(SHAPE) * 3).astype(np.float32))
    g = torch.from_numpy(rng.standard_normal(SHAPE).astype(np.float32))
    kf, tf = speed.fn_kw(name), speed.torch_peer(name)
    grp = speed.Group(repeats, small=True)
    grp.add("kaun", lambda: kf(x))
    grp.add("torch", lambda: tf(x))
    xr = x.clone().requires_grad_()

    def fb(f: Any) -> Any:
        def go() -> Any:
            xr.grad = None
            f(xr).backward(g)
            return xr.grad

        return go

    grp.add("kaun fb", fb(kf))
    grp.add("torch fb", fb(tf))
    return grp.run()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--functions", default="silu,gelu,gelu_approx")
    ap.add_argument("--repeats", type=int, default=21)
    args = ap.parse_args(argv)
    default = torch.get_num_threads()
    print(f"shape {SHAPE} float32, torch {torch.__version__}; kaun / torch, medians of "
          f"{args.repeats} interleaved rounds\n")
    print("| function | threads | forward | forward + backward | kaun fwd (us) | torch fwd (us) |")
    print("|---|---|---|---|---|---|")
    for threads in sorted({default, 1}, reverse=True):
        torch.set_num_threads(threads)
        for name in args.functions.split(","):
            r = measure(name, args.repeats)
            print(f"| {name} | {threads} | {r['kaun'] / r['torch']:.2f} | "
                  f"{r['kaun fb'] / r['torch fb']:.2f} | {r['kaun'] * 1e6:.0f} | {r['torch'] * 1e6:.0f} |",
                  flush=True)
    torch.set_num_threads(default)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
