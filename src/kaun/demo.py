"""``python -m kaun.demo`` (``make demo``): every function on every backend, then the gallery.

For each of the 25 functions, the values at a few points in float32 on NumPy, PyTorch, JAX, Dask
and array-api-strict (a backend that is not installed is skipped with a note), the largest
difference from NumPy's values in float32 ULPs, and then ``docs/gallery.png``: every function
and its derivative.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import kaun.activation as A

POINTS = (-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 10.0)
PRELU_ALPHA = 0.25

Maker = Callable[[np.ndarray], Any]


def _backends() -> tuple[list[tuple[str, Maker]], list[str]]:
    """([(name, numpy float32 array -> that backend's array)], [notes on the missing ones])."""
    have: list[tuple[str, Maker]] = [("numpy", lambda a: a)]
    notes: list[str] = []

    def missing(name: str, module: str) -> bool:
        if importlib.util.find_spec(module) is None:
            notes.append(f"{name}: not installed, skipped")
            return True
        return False

    if not missing("torch", "torch"):
        import torch

        have.append(("torch", lambda a: torch.from_numpy(a.copy())))
    if not missing("jax", "jax"):
        import jax.numpy as jnp

        have.append(("jax", lambda a: jnp.asarray(a)))
    if not missing("dask", "dask"):
        import dask.array

        da: Any = dask.array
        have.append(("dask", lambda a: da.from_array(a, chunks=max(1, a.size // 2))))
    if not missing("array-api-strict", "array_api_strict"):
        import array_api_strict as xps

        have.append(("array-api-strict", lambda a: xps.asarray(a)))
    return have, notes


def _read(y: Any) -> np.ndarray:
    if hasattr(y, "compute"):
        y = y.compute()
    if hasattr(y, "detach"):
        y = y.detach()
    if type(y).__module__.startswith("array_api_strict"):
        return np.from_dlpack(y)
    return np.asarray(y)


def _call(name: str, x: Any) -> Any:
    fn = A.get(name)
    return fn(x, PRELU_ALPHA) if name == "prelu" else fn(x)


def table(points: Sequence[float] = POINTS) -> str:
    """The values of every function on every installed backend, as text."""
    backends, notes = _backends()
    x32 = np.asarray(points, dtype=np.float32)
    width = max(len(n) for n, _ in backends)
    out = [f"kaun.activation, float32, at x = {x32.tolist()}"]
    out += [f"  note: {n}" for n in notes]
    opts: dict[str, Any] = {"precision": 6, "max_line_width": 200, "floatmode": "maxprec"}
    for name in A.names():
        entry = A.get(name)._kaun_entry  # type: ignore[attr-defined]
        extra = f" (alpha={PRELU_ALPHA})" if entry.kind == "prelu" else ""
        extra += " (halves of x)" if entry.kind == "glu" else ""
        same = f"  [= {entry.name}]" if entry.name != name else ""
        out.append(f"\n{name}{extra}: {entry.formula}{same}")
        ref: np.ndarray | None = None
        for bname, make in backends:
            y = _read(_call(name, make(x32)))
            diff = ""
            if ref is None:
                ref = y
            else:
                err = np.abs(y.astype(np.float64) - ref.astype(np.float64))
                ulps = float(np.nanmax(err / np.spacing(np.abs(ref)).astype(np.float64)))
                diff = f"   {ulps:g} ulp from numpy"
            out.append(f"  {bname:<{width}}  {np.array2string(y, **opts)}{diff}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kaun.demo", description=__doc__)
    p.add_argument("--gallery", default=os.path.join("docs", "gallery.png"),
                   help="where to draw every function and its derivative "
                   "(default docs/gallery.png)")
    p.add_argument("--no-gallery", action="store_true", help="only print the values")
    args = p.parse_args(argv)
    print(table())
    if args.no_gallery:
        return 0
    from .cli import CLIError, gallery

    try:
        os.makedirs(os.path.dirname(args.gallery) or ".", exist_ok=True)
        gallery(args.gallery)
    except CLIError as e:
        print(f"\ngallery skipped: {e}")
        return 0
    print(f"\nwrote {args.gallery}: every function (solid) and its derivative (dashed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
