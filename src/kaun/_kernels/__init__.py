"""Compiled kernels: each entry's formulas as one fused, vectorized, multi-threaded C loop.

``compiled(entry, p, io)`` gives the kernels that compute ``entry``'s value, derivative and
vector-Jacobian product for hyper-parameters ``p`` and I/O dtype ``io``, or None where no compiled
kernel can serve (no C compiler, ``KAUN_KERNELS=0``, a failed build): the caller then evaluates
the formula with array operations, within the same documented bounds.

How a kernel comes to be: the entry's formula is traced (``kaun._ir``) once per working precision
and order, lowered to C (``codegen``), and the three kernels of one entry, variant and I/O dtype are
compiled into one shared library by the system's C compiler (``$KAUN_CC``, else
``cc``, ``gcc`` or ``clang``) with ``-O3 -march=native``. The library is kept in an on-disk cache,
named by a hash of its source, the headers, the flags, the compiler and the CPU, so a later
process only loads it:

* where: ``$KAUN_CACHE_DIR``, else ``$XDG_CACHE_HOME/kaun``, else ``~/.cache/kaun``;
* clear it: delete that folder (or ``kaun-activation cache --clear``);
* build it ahead: ``kaun-activation build`` (every form of every function, four dtypes).

A compilation that fails says so once (a RuntimeWarning) and that entry's calls take the formula.

``runtime.c`` (built the same way) runs a kernel over an array, split among threads.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import _ir
from .._core import LRU, Entry
from . import codegen
from . import threads as _threads

HERE = Path(__file__).resolve().parent
IO = ("float16", "bfloat16", "float32", "float64")
ORDERS = ("value", "deriv", "vjp")
# orders 2 and 3 (elementwise entries): a second library, built on first use
HIGH = ("deriv2", "vjp2", "deriv3", "vjp3")
# the formula (kaun._core.ORDERS) that each kernel computes (a vjp: times the cotangent)
_FORMULA = {"value": "value", "deriv": "deriv", "vjp": "deriv", "deriv2": "deriv2", "vjp2": "deriv2",
            "deriv3": "deriv3", "vjp3": "deriv3"}
GRAIN = 16384  # runtime.c's KAUN_GRAIN: fewer elements than this a thread run on one
FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-pthread", "-std=gnu11",
         "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-fno-semantic-interposition")

_lock = threading.RLock()
_LIBS: dict[Any, Any] = {}  # (entry key, variant, io) -> {order: function pointer} or None
_state: dict[str, Any] = {}


def enabled() -> bool:
    return os.environ.get("KAUN_KERNELS", "1") != "0" and compiler() is not None


def cache_dir() -> Path:
    d = os.environ.get("KAUN_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kaun"


def compiler() -> str | None:
    """The C compiler's path: ``$KAUN_CC``, else the first of cc, gcc, clang on PATH."""
    if "cc" not in _state:
        cc = os.environ.get("KAUN_CC")
        found = shutil.which(cc) if cc else next(
            (p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)
        _state["cc"] = found
    return _state["cc"]  # type: ignore[no-any-return]


def _machine() -> str:
    """What the compiled code depends on besides its source: the compiler, the CPU, the flags and
    the headers."""
    if "machine" not in _state:
        cc = compiler() or ""
        st = os.stat(os.path.realpath(cc)) if cc else None
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
        except OSError:
            cpu = platform.processor()
        # and the headers every library includes
        headers = "".join((HERE / h).read_text() for h in ("kmath.h", "kargs.h"))
        _state["machine"] = "\n".join(
            (os.path.realpath(cc), f"{st.st_size if st else 0}:{st.st_mtime_ns if st else 0}",
             platform.machine(), cpu, " ".join(FLAGS), headers))
    return _state["machine"]  # type: ignore[no-any-return]


def _build(stem: str, src: str, extra: tuple[str, ...] = ()) -> Path:
    """The shared library of C source ``src``, from the cache or compiled into it."""
    key = hashlib.sha256((_machine() + " ".join(extra) + "\n" + src).encode()).hexdigest()[:24]
    d = cache_dir()
    lib = d / f"{stem}-{key}.so"
    if lib.exists():
        return lib
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler")
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
        c = Path(tmp) / f"{stem}.c"
        c.write_text(src)
        out = Path(tmp) / "lib.so"
        cmd = [cc, *FLAGS, *extra, f"-I{HERE}", "-o", str(out), str(c)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
        os.replace(out, lib)  # atomic: a racing process finds a whole library or none
    return lib


def _python_headers() -> str | None:
    inc = sysconfig.get_paths().get("include")
    return inc if inc and os.path.exists(os.path.join(inc, "Python.h")) else None


def _openmp(stem: str, src: str, extra: tuple[str, ...]) -> Path:
    """The library built with OpenMP where the compiler has it (see runtime.c), else without."""
    try:
        return _build(stem, src, (*extra, "-fopenmp"))
    except RuntimeError:
        return _build(stem, src, extra)


def runtime() -> Any:
    """The runtime (built on first use): a CPython extension where Python's headers exist, else
    the same C through ctypes. Either way ``kaun_run_flat(fn, x, g, y, n, p, np, nthreads)`` and
    ``kaun_run_rows(fn, a, b, g, y, y2, rows, len, astride, gstride, ostride, p, np, nthreads)``
    (see runtime.c) take Python ints: addresses (None for none), counts."""
    rt = _state.get("rt")
    if rt is None:
        with _lock:
            rt = _state.get("rt")
            if rt is None:
                rt = _load_runtime()
                _state["rt"] = rt
    return rt


def _load_runtime() -> Any:
    src = (HERE / "runtime.c").read_text()
    inc = _python_headers()
    if inc is not None and os.environ.get("KAUN_CTYPES") != "1":
        extra = ["-DKAUN_PYTHON", f"-I{inc}"]
        if sys.platform == "darwin":
            extra += ["-undefined", "dynamic_lookup"]
        try:
            path = _openmp(f"runtime-py{sys.version_info[0]}{sys.version_info[1]}", src, tuple(extra))
            loader = importlib.machinery.ExtensionFileLoader("_kaunrt", str(path))
            spec = importlib.util.spec_from_file_location("_kaunrt", path, loader=loader)
            if spec is not None:
                mod = importlib.util.module_from_spec(spec)
                loader.exec_module(mod)
                return mod
        except (RuntimeError, ImportError, OSError):
            pass
    rt = ctypes.CDLL(str(_openmp("runtime", src, ())))
    rt.kaun_run_flat.argtypes = [
        ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_int64, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    rt.kaun_run_flat.restype = None
    rt.kaun_run_rows.argtypes = [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 5 + [
        ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    rt.kaun_run_rows.restype = None
    return rt


def glu_rows(shape: tuple[int, ...], ax: int) -> tuple[int, int]:
    """(rows, length): a C-contiguous array of this shape seen as (rows, 2, length), the two
    halves along axis ax side by side in each row (what ``kaun_run_rows`` takes for glu)."""
    rows = length = 1
    for d in shape[:ax]:
        rows *= d
    for d in shape[ax + 1:]:
        length *= d
    return rows, length * (shape[ax] // 2)


def _specs(entry: Entry, p: tuple[float, ...], io: str, high: bool = False) -> list[codegen.Spec]:
    """The kernels of one entry, hyper-parameters and I/O dtype, traced in its working precision:
    value, derivative and vjp, or (``high``) the derivatives of order 2 and 3 and their vjps."""
    prec = codegen.PREC[codegen.WORK[io]]
    a = entry.prep(p, prec)
    out = []
    graphs: dict[str, _ir.Graph] = {}
    for order in HIGH if high else ORDERS:
        which = _FORMULA[order]
        if which not in graphs:
            graphs[which] = _ir.trace(entry.formula_of(which), entry.nin, a, prec)
        out.append(codegen.Spec(f"k_{order}", graphs[which], io, order))
    return out


def _load(entry: Entry, p: tuple[float, ...], io: str, high: bool = False) -> dict[str, int] | None:
    """The kernels of one entry, variant and I/O dtype (``high``: of orders 2 and 3): compiled and
    loaded once per process."""
    key = (entry.key, entry.variant(p), io, high)
    if key in _LIBS:
        return _LIBS[key]  # type: ignore[no-any-return]
    with _lock:
        if key in _LIBS:
            return _LIBS[key]  # type: ignore[no-any-return]
        table: dict[str, int] | None
        try:
            runtime()
            specs = _specs(entry, p, io, high)
            stem = f"{entry.key}-{io}" + ("-high" if high else "")
            lib = ctypes.CDLL(str(_build(stem, codegen.source(specs))))
            table = {s.name[2:]: ctypes.cast(getattr(lib, s.name), ctypes.c_void_p).value or 0
                     for s in specs}
            _state.setdefault("keep", []).append(lib)
        except (RuntimeError, OSError) as e:
            _warn(f"kaun: compiled kernels unavailable for {entry.name} ({e}); "
                  "using the formula in array operations")
            table = None
        _LIBS[key] = table
        return table


def _warn(msg: str) -> None:
    warnings.warn(msg.splitlines()[0], RuntimeWarning, stacklevel=4)


class Compiled:
    """The kernels of one entry for one set of hyper-parameters and one I/O dtype: function
    pointers ``value``, ``deriv``, ``vjp``, and the address ``p`` of the run-time scalars (a C
    array of ``np`` doubles). ``order(k)``: the pair (f^(k), g f^(k)) for k = 1, 2, 3 (2 and 3
    compiled on first use), or None where they cannot be."""

    __slots__ = ("value", "deriv", "vjp", "p", "np", "_buf", "_high", "_key")

    def __init__(self, table: dict[str, int], scalars: tuple[float, ...], key: Any = None) -> None:
        self.value, self.deriv, self.vjp = table["value"], table["deriv"], table["vjp"]
        self.np = len(scalars)
        self._buf = (ctypes.c_double * max(1, len(scalars)))(*scalars)
        self.p = ctypes.addressof(self._buf)
        self._high: dict[str, int] | None = None
        self._key = key  # (entry, p, io): what the high orders are built for

    def order(self, k: int) -> tuple[int, int] | None:
        if k == 1:
            return self.deriv, self.vjp
        if self._high is None:
            entry, p, io = self._key
            if entry.kind != "elementwise":
                return None
            t = _load(entry, p, io, high=True)
            if t is None:
                return None
            self._high = t
        return self._high[f"deriv{k}"], self._high[f"vjp{k}"]


_MAX_COMPILED = 512  # distinct (entry, hyper-parameters, dtype) kept, the least recently used evicted
_COMPILED = LRU(_MAX_COMPILED)
_ABSENT = object()


def compiled(entry: Entry, p: tuple[float, ...], io: str) -> Compiled | None:
    """The kernels for ``entry`` at hyper-parameters ``p`` and I/O dtype ``io``, or None where no
    compiled kernel serves (see the module's docstring). Kernels depend on the hyper-parameters'
    variant only (see ``Entry.prep``): their values are run-time scalars."""
    # (-0.0 == 0.0, but the sign of a zero hyper-parameter can matter to a formula)
    key = (entry.key, io, p) if all(p) else (entry.key, io, tuple(v.hex() for v in p))
    hit = _COMPILED.hit(key, _ABSENT)
    if hit is not _ABSENT:
        return hit  # type: ignore[no-any-return]
    c = None
    table = _load(entry, p, io) if enabled() else None
    if table is not None:
        prec = codegen.PREC[codegen.WORK[io]]
        c = Compiled(table, tuple(v for v in entry.prep(p, prec) if isinstance(v, float)),
                     (entry, p, io))
    _COMPILED.put(key, c)
    return c


def _forked() -> None:
    # GNU libgomp's threads do not survive fork(): a child that enters a parallel region hangs.
    # (torch's DataLoader sets one thread in its workers for the same reason.)
    _threads.after_fork()
    _state["forked"] = True


os.register_at_fork(after_in_child=_forked)


# how many threads a kernel call runs on, and why: see threads.py
torch_threads = _threads.torch_threads
threads = _threads.threads
describe_threads = _threads.describe


def build_all(entries: list[Entry], dtypes: tuple[str, ...] = IO, jobs: int = 0,
              progress: Callable[[str], None] | None = None) -> int:
    """Compile every form of every entry (``Entry.forms_params``) for ``dtypes``, and the runtime,
    into the cache, ``jobs`` compilers at a time (0: one per CPU); the number of libraries built or
    found. Raises RuntimeError where a compilation fails."""
    from concurrent.futures import ThreadPoolExecutor

    if compiler() is None:
        raise RuntimeError("no C compiler found (set KAUN_CC, or install cc, gcc or clang)")
    runtime()
    work = {}
    for e in entries:
        for p in e.forms_params():
            for io in dtypes:
                for high in (False, True) if e.kind == "elementwise" else (False,):
                    stem = f"{e.key}-{io}" + ("-high" if high else "")
                    src = codegen.source(_specs(e, p, io, high))
                    work[stem, src] = (stem, src)  # (the cache names a library by both)

    def one(item: tuple[str, str]) -> str:
        _build(*item)
        if progress:
            progress(item[0])
        return item[0]

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        return len(list(pool.map(one, work.values())))


def cache_info() -> dict[str, Any]:
    """Where the cache is, what it holds, and whether compiled kernels serve in this process."""
    d = cache_dir()
    libs = list(d.glob("*.so")) if d.exists() else []
    why = None
    if os.environ.get("KAUN_KERNELS", "1") == "0":
        why = "KAUN_KERNELS=0"
    elif compiler() is None:
        why = "no C compiler (set KAUN_CC, or install cc, gcc or clang)"
    return {"dir": str(d), "libraries": len(libs), "bytes": sum(f.stat().st_size for f in libs),
            "compiler": compiler(), "enabled": why is None, "why_not": why}


def clear_cache() -> int:
    """Delete the cache folder; the number of libraries it held. (A process that loaded them
    keeps its copies; later ones compile again.)"""
    d = cache_dir()
    n = len(list(d.glob("*.so"))) if d.exists() else 0
    shutil.rmtree(d, ignore_errors=True)
    return n
