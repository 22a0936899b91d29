"""``kaun-activation``: list, evaluate and plot kaun's activation functions.

    kaun-activation list
    kaun-activation eval gelu -1 0 1 --dtype float32
    kaun-activation eval leaky_relu -2 3 --param negative_slope=0.2 --derivative
    kaun-activation eval gelu 0 1.4142 --order 2      # the second derivative
    kaun-activation plot gelu silu --derivative -o act.png
    kaun-activation gallery -o docs/gallery.png
    kaun-activation build              # compile every function's kernels (and the torch operator)
                                       # ahead, into the cache
    kaun-activation cache [--clear]    # which kernels serve here and where they are, or delete them

Also ``python -m kaun.cli``. Plots need matplotlib (``pip install 'kaun[plot]'``).
Exit status: 0 on success, 2 on bad usage or bad input (the message names the problem).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import kaun.activation as A
from kaun._core import ENTRIES, EXTRAS, Entry
from kaun.activation._registry import ALIASES

PROG = "kaun-activation"
DTYPES = ("float16", "bfloat16", "float32", "float64")
BACKENDS = ("numpy", "torch", "jax")
# Hyper-parameters a plot needs that have no default (prelu's alpha is required).
PLOT_DEFAULTS: dict[str, dict[str, float]] = {"prelu": {"alpha": 0.25}}
# Plot ranges that show the function's shape better than the default (-5, 5).
PLOT_RANGES: dict[str, tuple[float, float]] = {"relu6": (-3.0, 9.0)}
DEFAULT_RANGE = (-5.0, 5.0)


class CLIError(Exception):
    """Bad usage or bad input: reported on stderr with exit status 2."""


# ---- the pieces, reused by kaun.demo and docs/build.py -------------------------------------------


def canonical(name: str) -> str:
    """The name of the function that ``name`` (or an alias of another library) stands for."""
    fn = A.get(name)
    entry: Entry = fn._kaun_entry  # type: ignore[attr-defined]
    return entry.name


def entry_of(name: str) -> Entry:
    n = canonical(name)
    return ENTRIES[n] if n in ENTRIES else EXTRAS[n]


def same_as(name: str) -> str | None:
    """For the spec's own aliases (swish, hard_swish): the function they are."""
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key) if key in A.names() and key not in ENTRIES else None


def defaults_text(entry: Entry) -> str:
    if entry.kind == "prelu":
        return "alpha (required: a number or an array)"
    return ", ".join(f"{n}={v!r}" for n, v in entry.params) or "-"


def list_text() -> str:
    """The table that ``kaun-activation list`` prints: name, formula, defaults (the spec's 25,
    then the functions beyond it)."""
    rows = [("name", "formula", "defaults")]
    for name in A.names(extras=True):
        alias = same_as(name)
        if alias is not None:
            rows.append((name, f"= {alias}", ""))
            continue
        e = entry_of(name)
        rows.append((name, e.formula, defaults_text(e)))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}".rstrip() for a, b, c in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def parse_params(items: Sequence[str]) -> dict[str, float | int]:
    """``["negative_slope=0.2", "axis=0"]`` -> ``{"negative_slope": 0.2, "axis": 0}``."""
    out: dict[str, float | int] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"--param takes NAME=VALUE, got {item!r}")
        try:
            out[key] = int(text)
        except ValueError:
            try:
                out[key] = float(text)
            except ValueError:
                raise CLIError(f"--param {key}: {text!r} is not a number") from None
    return out


def _numpy_dtype(dtype: str) -> Any:
    if dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise CLIError("bfloat16 with NumPy needs ml_dtypes (pip install ml_dtypes)") from None
        return ml_dtypes.bfloat16
    return np.dtype(dtype)


def _to_backend(values: np.ndarray, dtype: str, backend: str) -> Any:
    if backend == "numpy":
        return values.astype(_numpy_dtype(dtype))
    if backend == "torch":
        try:
            import torch
        except ImportError:
            raise CLIError("--backend torch: torch is not installed") from None
        return torch.tensor(values, dtype=getattr(torch, dtype))
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise CLIError("--backend jax: jax is not installed") from None
    if dtype == "float64":
        config: Any = jax.config
        config.update("jax_enable_x64", True)
    return jnp.asarray(values, dtype=getattr(jnp, dtype))


def _to_numpy(y: Any) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu()
        if str(y.dtype) == "torch.bfloat16":
            y = y.float()
    return np.asarray(y)


def evaluate(
    name: str,
    values: Sequence[float],
    *,
    dtype: str = "float64",
    params: dict[str, float | int] | None = None,
    derivative: bool = False,
    backend: str = "numpy",
    order: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(x, f(x)) as NumPy arrays of ``dtype`` (bfloat16 read back as float32 outside NumPy); with
    ``derivative``, the derivative of that ``order`` (2 and 3: the elementwise functions)."""
    entry = entry_of(name)
    if derivative and order != 1 and entry.kind != "elementwise":
        raise CLIError(f"{entry.name}: --order {order} is for the elementwise functions")
    params = dict(params or {})
    fn = A.get(entry.name)
    x = _to_backend(np.asarray(values, dtype=np.float64), dtype, backend)
    if entry.kind == "prelu":
        if "alpha" not in params:
            raise CLIError("prelu needs its alpha: --param alpha=VALUE")
        alpha = params.pop("alpha")
        if params:
            raise CLIError(f"prelu takes only alpha, got {sorted(params)}")
        if derivative:
            g = x * 0 + 1
            y = A.derivative(fn)(x, alpha, g)[0]
        else:
            y = fn(x, alpha)
    elif entry.kind == "glu":
        if derivative:
            y = A.derivative(fn)(x, _glu_ones(fn, x, params), **params)
        else:
            y = fn(x, **params)
    else:
        y = A.derivative(fn, order=order)(x, **params) if derivative else fn(x, **params)
    return _to_numpy(x), _to_numpy(y)


def _glu_ones(fn: Any, x: Any, params: dict[str, float | int]) -> Any:
    """A cotangent of ones shaped like ``fn(x)`` (glu, swiglu, ...)."""
    y = fn(x, axis=int(params.get("axis", -1)))
    return y * 0 + 1


def curves(
    name: str, xs: np.ndarray, params: dict[str, float | int] | None = None
) -> tuple[np.ndarray, np.ndarray, str]:
    """(f(xs), f'(xs), label) in float64, for plots. glu is drawn along the diagonal [x, x]."""
    entry = entry_of(name)
    p: dict[str, float | int] = {**PLOT_DEFAULTS.get(entry.name, {}), **(params or {})}
    fn = A.get(entry.name)
    label = entry.name
    if entry.kind == "prelu":
        alpha = p["alpha"]
        y = fn(xs, alpha)
        dy = A.derivative(fn)(xs, alpha, np.ones_like(xs))[0]
        label = f"prelu (alpha={alpha:g})"
    elif entry.kind == "glu":
        pairs = np.stack([xs, xs], axis=-1)
        y = fn(pairs, axis=-1)[..., 0]
        dy = A.derivative(fn)(pairs, np.ones((xs.size, 1)), axis=-1).sum(axis=-1)
        label = ("glu([x, x]) = x * sigmoid(x)" if entry.name == "glu" else
                 f"{entry.name}([x, x]) = x * {entry.formula.split('(')[0].split()[-1]}(x)")
    else:
        y = fn(xs, **p)
        dy = A.derivative(fn)(xs, **p)
        shown = {k: v for k, v in p.items() if dict(entry.params).get(k) != v}
        if shown:
            label += " (" + ", ".join(f"{k}={v:g}" for k, v in shown.items()) + ")"
    return np.asarray(y, dtype=np.float64), np.asarray(dy, dtype=np.float64), label


def _figure_module() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise CLIError(
            "plotting needs matplotlib, which is not installed: pip install 'kaun[plot]'"
        ) from None
    return Figure


def _save(fig: Any, path: str) -> None:
    # No software/date metadata: the same figure gives the same bytes, so docs don't churn.
    fig.savefig(path, format="png", metadata={"Software": None})


def plot(
    names: Sequence[str],
    path: str,
    *,
    derivative: bool = False,
    params: dict[str, float | int] | None = None,
    xrange: tuple[float, float] | None = None,
    size: tuple[float, float] = (6.0, 4.0),
    dpi: int = 100,
) -> None:
    """Draw ``names`` (and their derivatives, dashed) on one set of axes, into ``path``."""
    Figure = _figure_module()
    params = dict(params or {})
    entries = [entry_of(n) for n in names]
    accepted = {k for e in entries for k, _ in e.params} | {
        "alpha" for e in entries if e.kind == "prelu"
    }
    unknown = set(params) - accepted
    if unknown:
        raise CLIError(f"no function named takes {sorted(unknown)}")
    lo, hi = xrange or (PLOT_RANGES.get(entries[0].name, DEFAULT_RANGE) if len(entries) == 1
                        else DEFAULT_RANGE)
    xs = np.linspace(lo, hi, 801)
    fig = Figure(figsize=size, dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    for i, e in enumerate(entries):
        own = {k: v for k, v in params.items() if k in dict(e.params) or
               (e.kind == "prelu" and k == "alpha")}
        y, dy, label = curves(e.name, xs, own)
        color = f"C{i}"
        ax.plot(xs, y, color=color, label=label)
        if derivative:
            ax.plot(xs, dy, color=color, linestyle="--", label=f"derivative of {e.name}")
    ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.8", linewidth=0.8, zorder=0)
    ax.set_xlabel("x")
    ax.set_xlim(lo, hi)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def gallery(path: str, *, columns: int = 5, dpi: int = 80) -> None:
    """Every function (solid) and its derivative (dashed), one panel each, into ``path``."""
    Figure = _figure_module()
    names = list(ENTRIES)
    rows = math.ceil(len(names) / columns)
    fig = Figure(figsize=(3.0 * columns, 2.4 * rows), dpi=dpi, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    aliases = {a: n for n in A.names() if (a := same_as(n)) is not None}
    for i, ax in enumerate(axes.flat):
        if i >= len(names):
            ax.set_axis_off()
            continue
        name = names[i]
        lo, hi = PLOT_RANGES.get(name, DEFAULT_RANGE)
        xs = np.linspace(lo, hi, 401)
        y, dy, label = curves(name, xs)
        ax.plot(xs, y, color="C0", label="f")
        ax.plot(xs, dy, color="C1", linestyle="--", label="f'")
        ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
        ax.axvline(0.0, color="0.8", linewidth=0.8, zorder=0)
        title = label if name not in aliases else f"{name} (= {aliases[name]})"
        ax.set_title(title, fontsize="small")
        ax.set_xlim(lo, hi)
        ax.tick_params(labelsize="x-small")
        ax.grid(True, alpha=0.3)
        if i == 0:
            ax.legend(loc="upper left", fontsize="x-small")
    fig.suptitle("kaun.activation: f (solid) and f' (dashed)")
    _save(fig, path)


# ---- the command line ----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="List, evaluate and plot kaun's activation functions."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="every function: name, formula, default hyper-parameters")

    ev = sub.add_parser("eval", help="evaluate a function (or its derivative) at some points")
    ev.add_argument("name", metavar="NAME")
    ev.add_argument("values", metavar="VALUES", nargs="+", help="points (nan, inf, -inf too)")
    ev.add_argument("--dtype", choices=DTYPES, default="float64")
    ev.add_argument("--backend", choices=BACKENDS, default="numpy")
    ev.add_argument("--param", action="append", default=[], metavar="K=V",
                    help="a hyper-parameter, e.g. negative_slope=0.2 (repeatable)")
    ev.add_argument("--derivative", action="store_true", help="the derivative instead")
    ev.add_argument("--order", type=int, choices=(1, 2, 3), default=None,
                    help="the derivative of this order instead (implies --derivative)")

    pl = sub.add_parser("plot", help="plot functions (and derivatives) into a PNG")
    pl.add_argument("names", metavar="NAME", nargs="+")
    pl.add_argument("-o", "--output", required=True, metavar="FILE.png")
    pl.add_argument("--derivative", action="store_true", help="also draw the derivatives")
    pl.add_argument("--param", action="append", default=[], metavar="K=V")
    pl.add_argument("--range", nargs=2, type=float, metavar=("LO", "HI"), dest="xrange")

    ga = sub.add_parser("gallery", help="every function and its derivative, in a grid")
    ga.add_argument("-o", "--output", required=True, metavar="FILE.png")

    bu = sub.add_parser("build", help="compile every function's kernels (every form of its "
                        "hyper-parameters) and, where torch is installed, kaun's torch operator "
                        "into the cache, ahead of use")
    bu.add_argument("--dtypes", default=",".join(DTYPES),
                    help=f"comma-separated I/O dtypes (default: {','.join(DTYPES)})")
    bu.add_argument("--jobs", type=int, default=0, help="compilers at a time (default: one per CPU)")
    bu.add_argument("--gpu", metavar="ARCHS", default="",
                    help="instead, compile every GPU (Triton) kernel for these CUDA "
                    "architectures, comma-separated (sm_80,sm_90), without a GPU, and check its "
                    "PTX for approximate arithmetic (kept in Triton's cache, $TRITON_CACHE_DIR; "
                    "the runtime's JIT specializes its arguments and compiles its own on first "
                    "use)")

    ca = sub.add_parser("cache", help="where the compiled kernels are kept (or --clear them)")
    ca.add_argument("--clear", action="store_true", help="delete the kernel libraries kaun wrote there")
    return p


def build_text(dtypes: str, jobs: int, gpu: str = "") -> str:
    from kaun import _kernels as K

    want = tuple(d.strip() for d in dtypes.split(",") if d.strip())
    bad = [d for d in want if d not in DTYPES]
    if bad or not want:
        raise CLIError(f"build: --dtypes must be among {', '.join(DTYPES)}, got {dtypes!r}")
    import time

    t = time.perf_counter()
    if gpu:
        return _build_gpu(want, gpu, t)
    try:
        from kaun._core import ALL

        n = K.build_all(list(ALL.values()), want, jobs)
        n += _build_jax_ffi()
    except RuntimeError as e:
        raise CLIError(f"build: {e}") from None
    lines = [f"{n} kernel libraries in {K.cache_dir()} ({time.perf_counter() - t:.1f} s)"]
    import importlib.util

    if importlib.util.find_spec("torch") is not None:  # the torch operator (optional)
        from kaun._kernels import torchops

        if torchops.mode() == "off":
            lines.append("the torch operator: not built (KAUN_TORCH_OPS=0)")
            return "\n".join(lines)
        t = time.perf_counter()
        try:
            p = torchops.build()
            lines.append(f"the torch operator: {p} ({time.perf_counter() - t:.1f} s)")
        except RuntimeError as e:
            lines.append(f"the torch operator was not built ({e}): torch calls take the Python path")
    return "\n".join(lines)


def _build_jax_ffi() -> int:
    """JAX's FFI handler (kaun._kernels.jaxffi), where jax is importable and it may serve: 1
    built or found, else 0."""
    import importlib.util

    if importlib.util.find_spec("jax") is None:
        return 0
    from kaun._kernels import jaxffi

    if jaxffi.why_not() is not None:
        return 0
    jaxffi.build()
    return 1


def _build_gpu(dtypes: tuple[str, ...], gpu: str, t: float) -> str:
    import re
    import time

    from kaun._core import ALL
    from kaun._kernels import gpu as G

    archs = []
    for a in gpu.split(","):
        m = re.fullmatch(r"\s*(?:sm_?)?(\d{2,3})\s*", a)
        if not m:
            raise CLIError(f"build: --gpu takes CUDA architectures such as sm_80,sm_90, got {a!r}")
        archs.append(int(m.group(1)))
    if not G.available():
        raise CLIError("build: --gpu needs triton (pip install 'kaun[gpu]')")
    n, bad = G.build_all(list(ALL.values()), dtypes, tuple(archs),
                         progress=lambda s: print(f"  {s}", file=sys.stderr))
    import os

    where = os.environ.get("TRITON_CACHE_DIR") or "Triton's cache (~/.triton/cache)"
    lines = [f"{n} GPU kernels for {', '.join(f'sm_{a}' for a in archs)} in {where} "
             f"({time.perf_counter() - t:.1f} s); PTX with approximate, flush-to-zero or "
             f"contractible arithmetic: {len(bad)} kernels"]
    lines += [f"  {k}: {v[:3]}" for k, v in list(bad.items())[:20]]
    if bad:
        raise CLIError("\n".join(lines))
    return "\n".join(lines)


def cache_text(clear: bool) -> str:
    from kaun import _kernels as K

    if clear:
        n = K.clear_cache()
        return f"deleted {n} kernel libraries from {K.cache_dir()} (and nothing else there)"
    from kaun._kernels import jaxffi
    from kaun.activation import info

    st = info()
    i = st["cache"]
    if st["path"] == "formulas":
        lines = [f"no compiled kernels here: the formulas serve every array ({st['why']})"]
    else:
        who = "prebuilt kernels" if st["path"] == "prebuilt" else "kernels compiled on this machine"
        where = {"prebuilt": "prebuilt", "cache": "from the cache", "compiled": "compiled now"}
        lines = [f"{who} serve NumPy, Dask and torch CPU arrays (other torch devices but CUDA: the "
                 "formulas in torch operations)",
                 f"runtime:  {st['runtime']} ({where.get(st['runtime_origin'], '?')}; "
                 + ("OpenMP threads)" if st["openmp"] else "no OpenMP: one thread a call)")]
    refused = f" (refused: {i['refused']})" if i["refused"] else ""
    return "\n".join([
        *lines,
        f"threads:  {K.describe_threads()} for a NumPy or Dask call (torch: its own count)",
        f"level:    {st['isa']} (this CPU: {st['detected_isa']}; KAUN_ISA sets another)",
        f"prebuilt: {st['prebuilt'] or 'none for this machine in this installation'}",
        f"compiler: {st['compiler'] or '-'}",
        f"gpu:      {st['gpu']}",
        f"torch:    {st['torch_ops']}",
        f"jax:      {_jax_line(jaxffi.state(load_now=True))}",
        f"cache:    {i['dir']} ({i['libraries']} kernel libraries, {i['bytes'] / 2**20:.1f} MiB){refused}",
        "set KAUN_CACHE_DIR to move it; `kaun-activation cache --clear` deletes kaun's files in it",
    ])


def _jax_line(st: dict[str, Any]) -> str:
    if st["path"] == "ffi":
        return (f"jax.jit on the CPU runs the compiled kernels (an XLA FFI call, on XLA's thread) "
                f"for the value of {', '.join(st['functions'])} and the derivatives of "
                f"{', '.join(st['derivatives']) or 'none'}; the formulas fused by XLA for the others")
    if st["path"] in (None, "pending"):
        return st["why"]  # type: ignore[no-any-return]
    return f"the formulas through XLA ({st['why']})"


def _is_negative_number(token: str) -> bool:
    if not token.startswith("-") or token.startswith("--"):
        return False
    try:
        float(token)
    except ValueError:
        return False
    return True


def _eval_text(args: argparse.Namespace) -> str:
    try:
        values = [float(v) for v in args.values]
    except ValueError as e:
        raise CLIError(f"eval: VALUES must be numbers: {e}") from None
    params = parse_params(args.param)
    entry = entry_of(args.name)
    order = args.order or 1
    args.derivative = args.derivative or args.order is not None
    x, y = evaluate(args.name, values, dtype=args.dtype, params=params,
                    derivative=args.derivative, backend=args.backend, order=order)
    f = entry.name + "'" * order if args.derivative else entry.name
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    head = f"{f}({'x' + (', ' + shown if shown else '')})"
    title = f"# {head}, {args.dtype}, {args.backend}"
    if entry.kind == "glu" and not args.derivative:
        return f"{title}\nx = {x.tolist()}\n{head} = {y.tolist()}"
    xs = [str(v) for v in x.reshape(-1)]
    ys = [str(v) for v in y.reshape(-1)]
    w = max(1, *(len(s) for s in xs))
    lines = [title, f"{'x':>{w}}  {head}"]
    lines += [f"{a:>{w}}  {b}" for a, b in zip(xs, ys, strict=True)]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    raw = list(sys.argv[1:] if argv is None else argv)
    # argparse takes "-inf" or "-1e3" for options: a leading space keeps them positional, and
    # float() ignores it.
    args_in = [" " + t if _is_negative_number(t) else t for t in raw]
    try:
        args = _parser().parse_args(args_in)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    try:
        if args.command == "list":
            print(list_text())
        elif args.command == "eval":
            print(_eval_text(args))
        elif args.command == "plot":
            plot(args.names, args.output, derivative=args.derivative,
                 params=parse_params(args.param),
                 xrange=tuple(args.xrange) if args.xrange else None)
            print(f"wrote {args.output}")
        elif args.command == "gallery":
            gallery(args.output)
            print(f"wrote {args.output}")
        elif args.command == "build":
            print(build_text(args.dtypes, args.jobs, args.gpu))
        elif args.command == "cache":
            print(cache_text(args.clear))
        sys.stdout.flush()  # (a closed pipe shows here, not at exit)
    except (CLIError, TypeError, ValueError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped (`kaun-activation list | head -3`): end quietly, as `ls | head` does;
        # stdout now goes nowhere so that the interpreter's final flush does not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
