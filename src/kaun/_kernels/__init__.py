"""Compiled kernels: each entry's formulas as one fused, vectorized, multi-threaded C loop.

``compiled(entry, p, io)`` gives the kernels that compute ``entry``'s value, derivative and
vector-Jacobian product for hyper-parameters ``p`` and I/O dtype ``io``, or None where no compiled
kernel can serve (no prebuilt library and no C compiler, ``KAUN_KERNELS=0``, a failed build): the
caller then evaluates the formula with array operations, within the same documented bounds.

How a kernel comes to be: the entry's formula is traced (``kaun._ir``) once per working precision
and order, lowered to C (``codegen``), and the kernels of one entry, variant and I/O dtype are one
shared library, named by a hash of its source, the headers, the flags and the instruction-set
level it is compiled for (``isa()``: x86-64-v2, v3 or v4, armv8-a; ``$KAUN_ISA`` overrides). Where
a library comes from, in this order:

* **prebuilt**: a wheel built with ``KAUN_PREBUILT`` carries every library of every level in
  ``kaun/_kernels/prebuilt`` (``build_all`` into that folder; see setup.py);
* **the cache**, compiled here on an earlier call: ``$KAUN_CACHE_DIR``, else
  ``$XDG_CACHE_HOME/kaun``, else ``~/.cache/kaun``; created private, and refused (with a warning
  that says why) where another user could write it or a library in it;
* **compiled now** by the system's C compiler (``$KAUN_CC``, else ``cc``, ``gcc`` or ``clang``)
  into the cache, written to a temporary file, flushed to disk and renamed into place.

Every library ends with a trailer (a SHA-256 of the rest and a magic word), checked before it is
loaded: a truncated or damaged file is deleted and built again once, never loaded (a truncated
ELF file kills the process with SIGBUS). ``kaun-activation build`` builds every library ahead;
``kaun-activation cache`` says which path serves, ``--clear`` deletes what kaun wrote there.

The same bits on every machine: the C is compiled with ``-ffp-contract=off`` (no product and sum
fused behind the formula's back) and kmath.h's fused multiply-adds are explicit, so every level
gives bitwise the same results, whatever the vector width or the compiler: with FMA (x86-64-v3
and v4, aarch64) each fma is one instruction; below x86-64-v3 it is the C library's software fma,
correctly rounded too (the same bits, 10-30x slower: tests/test_process.py).

A compilation that fails says so once (a RuntimeWarning) and that entry's calls take the formula.

``runtime.c`` (built the same way, or prebuilt) runs a kernel over an array, split among threads.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import re
import shutil
import stat
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
PREBUILT = HERE / "prebuilt"
IO = ("float16", "bfloat16", "float32", "float64")
ORDERS = ("value", "deriv", "vjp")
# orders 2 and 3 (elementwise entries): a second library, built on first use
HIGH = ("deriv2", "vjp2", "deriv3", "vjp3")
# the formula (kaun._core.ORDERS) that each kernel computes (a vjp: times the cotangent)
_FORMULA = {"value": "value", "deriv": "deriv", "vjp": "deriv", "deriv2": "deriv2", "vjp2": "deriv2",
            "deriv3": "deriv3", "vjp3": "deriv3"}
GRAIN = 16384  # runtime.c's KAUN_GRAIN: fewer elements than this a thread run on one
FLAGS = ("-O3", "-fPIC", "-shared", "-pthread", "-std=gnu11", "-fno-math-errno",
         "-fno-trapping-math", "-ffp-contract=off", "-fno-semantic-interposition")
# the instruction-set levels a library is compiled for, best first, per machine architecture,
# with the CPU features (as Linux's /proc/cpuinfo names them) each needs beyond the one below
LEVELS: dict[str, tuple[tuple[str, frozenset[str]], ...]] = {
    "x86_64": (
        ("x86-64-v4", frozenset("avx512f avx512bw avx512cd avx512dq avx512vl".split())),
        ("x86-64-v3", frozenset("avx avx2 bmi1 bmi2 f16c fma abm movbe xsave".split())),
        ("x86-64-v2", frozenset("cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3".split())),
        ("x86-64", frozenset()),
    ),
    "aarch64": (("armv8-a", frozenset()),),
}
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
ABI, MAX_P = codegen.ABI, codegen.MAX_P  # kargs.h's
# a library's trailer: SHA-256 of everything before it, then this word
_MAGIC = b"KAUNSUM1"
# what kaun writes in a cache folder (what `cache --clear` may delete): libraries, build folders
# (and the torch adapter's lowered formulas, a marshalled module: kaun._backends._torch)
_OURS = re.compile(
    r"^[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*-[0-9a-f]{24}\.(so|marshal)$|^\.build-[A-Za-z0-9_]+$")

_lock = threading.RLock()
_LIBS: dict[Any, Any] = {}  # (entry key, variant, io) -> {order: function pointer} or None
_PATHS: dict[Any, Path] = {}  # the same keys -> the library loaded (jaxffi names it in its calls)
_state: dict[str, Any] = {}
_ORIGIN: dict[str, str] = {}  # library stem -> "prebuilt", "cache" or "compiled"


def enabled() -> bool:
    """Whether compiled kernels may serve: not turned off, and a prebuilt library set for this
    machine or a C compiler to build one."""
    return os.environ.get("KAUN_KERNELS", "1") != "0" and (compiler() is not None or prebuilt())


def prebuilt() -> bool:
    """Whether this installation carries prebuilt libraries for this machine's level."""
    return (PREBUILT / isa()).is_dir()


def arch() -> str:
    m = platform.machine().lower()
    return _ARCH.get(m, m)


def _cpu_features() -> set[str] | None:
    """The CPU's features as Linux names them (macOS's sysctl mapped to those names), or None
    where they cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((ln for ln in f if ln.startswith(("flags", "Features"))), "")
        return set(line.partition(":")[2].split())
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            r = subprocess.run(["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
                               capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        names = {w.lower().replace(".", "_") for w in r.stdout.split()}
        rename = {"avx2_0": "avx2", "bmi1": "bmi1", "lzcnt": "abm", "fma": "fma", "sse4_1": "sse4_1",
                  "sse4_2": "sse4_2", "cx16": "cx16", "popcnt": "popcnt", "movbe": "movbe",
                  "f16c": "f16c", "osxsave": "xsave", "lahf": "lahf_lm", "avx1_0": "avx"}
        return {rename.get(n, n) for n in names} | ({"lahf_lm"} if names else set())
    return None


def detected_isa() -> str:
    """The best level of LEVELS that this CPU has every feature of (the baseline where the
    features cannot be read)."""
    levels = LEVELS.get(arch())
    if levels is None:
        return "native"  # an architecture kaun has no levels for: the compiler's own target
    feats = _cpu_features()
    if feats is None:
        return levels[-1][0]
    for i, (name, _) in enumerate(levels):
        if all(need <= feats for _, need in levels[i:]):
            return name
    return levels[-1][0]


def isa() -> str:
    """The level kernels are compiled for and loaded at: ``$KAUN_ISA`` (one of this
    architecture's levels, not above the CPU's), else ``detected_isa()``."""
    if "isa" not in _state:
        best = detected_isa()
        want = os.environ.get("KAUN_ISA")
        names = [n for n, _ in LEVELS.get(arch(), ())]
        if want and want not in names:
            _state["isa"] = best
            _warn(f"kaun: KAUN_ISA={want!r} is not a level of {arch()} ({', '.join(names) or 'none'}); "
                  f"using {best}")
        elif want and best in names and names.index(want) < names.index(best):
            _state["isa"] = best
            _warn(f"kaun: KAUN_ISA={want!r} is above this CPU's level {best} (it would crash on an "
                  f"illegal instruction); using {best}")
        else:
            _state["isa"] = want or best
    return _state["isa"]  # type: ignore[no-any-return]


def _march(level: str) -> tuple[str, ...]:
    if level == "native":
        return ()
    return (f"-march={level}", "-mtune=generic") if level.startswith("x86-64") else (f"-march={level}",)


def cache_dir() -> Path:
    d = os.environ.get("KAUN_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kaun"


def compiler() -> str | None:
    """The C compiler's path: ``$KAUN_CC``, else the first of cc, gcc, clang on PATH. A
    ``$KAUN_CC`` that names no program says so (a RuntimeWarning), once."""
    if "cc" not in _state:
        cc = os.environ.get("KAUN_CC")
        found = shutil.which(cc) if cc else next(
            (p for p in map(shutil.which, ("cc", "gcc", "clang")) if p), None)
        _state["cc"] = found  # (before the warning: under -W error it raises)
        if cc and found is None:
            _warn(f"kaun: KAUN_CC={cc!r} is not a program on PATH: no kernel can be compiled here "
                  "(prebuilt ones still serve; unset KAUN_CC to use cc, gcc or clang)")
    return _state["cc"]  # type: ignore[no-any-return]


def _key(stem: str, src: str, level: str, defines: tuple[str, ...]) -> str:
    """What a library's name hashes: its source, the headers it includes, the flags and the
    level it is compiled for (not the compiler: with contraction off the bits are IEEE's)."""
    headers = "".join((HERE / h).read_text() for h in ("kmath.h", "kargs.h"))
    text = "\n".join((" ".join(FLAGS), level, " ".join(defines), headers, src))
    return f"{stem}-{hashlib.sha256(text.encode()).hexdigest()[:24]}.so"


def _sealed(path: Path) -> bool:
    """Whether the file at path is a whole library as kaun wrote it (its trailer's SHA-256
    matches)."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    n = len(_MAGIC) + 32
    return (len(data) > n and data[-len(_MAGIC):] == _MAGIC
            and hashlib.sha256(data[:-n]).digest() == data[-n:-len(_MAGIC)])


def seal(path: Path) -> None:
    """Append the trailer that ``_sealed`` checks (the dynamic loader ignores bytes past the
    segments an ELF or Mach-O file declares)."""
    data = path.read_bytes()
    with open(path, "ab") as f:
        f.write(hashlib.sha256(data).digest() + _MAGIC)


def _private_dir(d: Path) -> str | None:
    """Why folder d may not hold libraries this process loads (another user owns it or can
    write it), or None where it may."""
    try:
        st = d.stat()
    except OSError as e:
        return f"cannot read {d}: {e.strerror}"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"{d} belongs to another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{d} is writable by others (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w it)"
    return None


def _private_file(f: Path) -> str | None:
    st = f.stat()
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"{f} belongs to another user (uid {st.st_uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{f} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _cache() -> Path:
    """The cache folder, created private (0700), or RuntimeError saying why it is refused."""
    d = cache_dir()
    if not d.exists():
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
    why = _private_dir(d)
    if why is not None:
        raise RuntimeError(f"the kernel cache is refused: {why}; set KAUN_CACHE_DIR to a folder of your own")
    return d


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # (not on every OS)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _compile(cc: str, src: str, out: Path, args: tuple[str, ...]) -> None:
    c = out.with_suffix(".c")
    c.write_text(src)
    cmd = [cc, *FLAGS, *args, f"-I{HERE}", "-o", str(out), str(c), "-lm"]  # (fma below x86-64-v3)
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        last = r.stderr.strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"the C compiler {cc} failed (exit {r.returncode}){': ' if last[0] else ''}"
                           f"{last[0][:200]}\n{' '.join(cmd)}\n{r.stderr[-4000:]}")


def _build(stem: str, src: str, defines: tuple[str, ...] = (), level: str | None = None,
           includes: tuple[str, ...] = (), into: Path | None = None) -> Path:
    """The shared library of C source ``src`` for ``level`` (default: ``isa()``): prebuilt, from
    the cache, or compiled into the cache (``into``: into that folder, for the wheel). A
    library whose trailer does not match is deleted and compiled again."""
    level = level or isa()
    name = _key(stem, src, level, defines)
    if into is None:
        pre = PREBUILT / level / name
        if pre.exists() and _sealed(pre):
            _ORIGIN[stem] = "prebuilt"
            return pre
        d = _cache()
    else:
        d = into
        d.mkdir(parents=True, exist_ok=True)
        ready = cache_dir() / name  # (the same library, compiled here before: copied)
        if ready.exists() and _private_file(ready) is None and _sealed(ready):
            shutil.copyfile(ready, d / name)
            os.chmod(d / name, 0o755)
            return d / name
    lib = d / name
    if lib.exists():
        if into is None:
            why = _private_file(lib)
            if why is not None:
                raise RuntimeError(f"refusing to load {why}; delete it or the cache")
        if _sealed(lib):
            _ORIGIN.setdefault(stem, "cache")
            return lib
        lib.unlink(missing_ok=True)  # truncated or damaged: built again below
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (set KAUN_CC, or install cc, gcc or clang)")
    with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
        out = Path(tmp) / "lib.so"
        _compile(cc, src, out, (*_march(level), *defines, *includes))
        seal(out)
        with open(out, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(out, 0o755 if into is not None else 0o700)
        os.replace(out, lib)  # atomic: a racing process finds a whole library or none
        _fsync_dir(d)
    _ORIGIN[stem] = "compiled"
    return lib


def _python_headers() -> str | None:
    inc = sysconfig.get_paths().get("include")
    return inc if inc and os.path.exists(os.path.join(inc, "Python.h")) else None


# the CPython extension's build: the stable ABI of Python 3.11, so one library serves 3.11 and on
PY_DEFINES = ("-DKAUN_PYTHON", "-DPy_LIMITED_API=0x030B0000")
# the runtime is compiled for the baseline of its architecture (it only splits the work)
RUNTIME_VARIANTS = (  # (stem, defines, OpenMP): the order in which they are tried
    ("runtime-abi3-omp", (*PY_DEFINES, "-fopenmp"), True),
    ("runtime-abi3", PY_DEFINES, False),
    ("runtime-omp", ("-fopenmp",), True),
    ("runtime", (), False),
)


def _baseline() -> str:
    levels = LEVELS.get(arch())
    return levels[-1][0] if levels else "native"


def runtime() -> Any:
    """The runtime (built on first use): a CPython extension where Python's headers exist (or
    prebuilt), else the same C through ctypes. Either way ``kaun_run_flat(fn, x, g, y, n, p, np,
    nthreads)`` and ``kaun_run_rows(fn, a, b, g, y, y2, rows, len, astride, gstride, ostride, p,
    np, nthreads)`` (see runtime.c) take Python ints: addresses (None for none), counts."""
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
    errors = []
    for stem, defines, _ in RUNTIME_VARIANTS:
        py = "-DKAUN_PYTHON" in defines
        if py and os.environ.get("KAUN_CTYPES") == "1":
            continue
        includes = (f"-I{inc}",) if py and inc else ()
        if py and sys.platform == "darwin":
            includes += ("-undefined", "dynamic_lookup")
        if py and inc is None and not (PREBUILT / _baseline()).is_dir():
            continue
        try:
            path = _build(stem, src, defines, _baseline(), includes)
            rt = _import_ext(path) if py else _ctypes_runtime(path)
            _state["runtime_path"] = path
        except (RuntimeError, ImportError, OSError) as e:
            errors.append(f"{stem}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            continue
        if int(rt.kaun_abi_version()) != ABI:
            errors.append(f"{stem}: ABI {rt.kaun_abi_version()}, not {ABI}")
            continue
        omp = bool(rt.kaun_openmp())
        _state["runtime"] = (stem, _ORIGIN.get(stem, "?"), omp)
        if not omp:
            _warn("kaun: the kernels' runtime has no OpenMP here ("
                  + ("; ".join(errors) or "KAUN_CTYPES=1") + "): every kernel runs on the calling thread")
        return rt
    causes = {e.partition(": ")[2] for e in errors}
    raise RuntimeError(causes.pop() if len(causes) == 1 else "no runtime could be built or loaded ("
                       + "; ".join(errors) + ")")


def _import_ext(path: Path) -> Any:
    loader = importlib.machinery.ExtensionFileLoader("_kaunrt", str(path))
    spec = importlib.util.spec_from_file_location("_kaunrt", path, loader=loader)
    if spec is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _ctypes_runtime(path: Path) -> Any:
    rt = ctypes.CDLL(str(path))
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
        table: dict[str, int] | None = None
        error = None
        try:
            runtime()
            specs = _specs(entry, p, io, high)
            stem = f"{entry.key}-{io}" + ("-high" if high else "")
            src = codegen.source(specs)
            path = _build(stem, src)
            try:
                lib = ctypes.CDLL(str(path))
            except OSError:
                if PREBUILT in path.parents:
                    raise
                # whole, but the loader refuses it (made for another machine): once more
                path.unlink(missing_ok=True)
                lib = ctypes.CDLL(str(_build(stem, src)))
            table = {s.name[2:]: ctypes.cast(getattr(lib, s.name), ctypes.c_void_p).value or 0
                     for s in specs}
            _PATHS[key] = Path(lib._name)
            _state.setdefault("keep", []).append(lib)
        except (RuntimeError, OSError) as e:
            error = e
        # (remembered before the warning: under -W error the warning raises, and the next call
        # must not run the compiler again)
        _LIBS[key] = table
    if error is not None:
        _warn(f"kaun: compiled kernels unavailable for {entry.name} ({error}); "
              "using the formula in array operations")
    return table


def _warn(msg: str) -> None:
    warnings.warn(msg.splitlines()[0], RuntimeWarning, stacklevel=4)


class KernelSet:
    """What the C kernels (``Compiled``) and the Triton ones (``gpu.Kernels``) of one entry,
    hyper-parameters and I/O dtype share: ``value``, ``deriv``, ``vjp``, and ``order(k)``: the
    pair (f^(k), g f^(k)) for k = 1, 2, 3 (2 and 3 built on first use, by ``_load_high``), or
    None where they cannot be."""

    deriv: Any
    vjp: Any
    _high: dict[str, Any] | None
    _key: Any

    def _load_high(self, entry: Entry, p: tuple[float, ...], io: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def order(self, k: int) -> tuple[Any, Any] | None:
        if k == 1:
            return self.deriv, self.vjp
        if self._high is None:
            entry, p, io = self._key
            if entry.kind != "elementwise":
                return None
            t = self._load_high(entry, p, io)
            if t is None:
                return None
            self._high = t
        return self._high[f"deriv{k}"], self._high[f"vjp{k}"]


class Compiled(KernelSet):
    """The kernels of one entry for one set of hyper-parameters and one I/O dtype: function
    pointers ``value``, ``deriv``, ``vjp``, and the address ``p`` of the run-time scalars (a C
    array of ``np`` doubles); ``order(k)`` (``KernelSet``)."""

    __slots__ = ("value", "deriv", "vjp", "p", "np", "scalars", "_buf", "_high", "_key")

    def __init__(self, table: dict[str, int], scalars: tuple[float, ...], key: Any = None) -> None:
        if len(scalars) > MAX_P:  # (runtime.c copies at most MAX_P; a kernel would read past them)
            raise ValueError(f"{len(scalars)} run-time scalars, more than the kernels' {MAX_P}")
        self.value, self.deriv, self.vjp = table["value"], table["deriv"], table["vjp"]
        self.np = len(scalars)
        self.scalars = scalars
        self._buf = (ctypes.c_double * max(1, len(scalars)))(*scalars)
        self.p = ctypes.addressof(self._buf)
        self._high: dict[str, int] | None = None
        self._key = key  # (entry, p, io): what the high orders are built for

    def _load_high(self, entry: Entry, p: tuple[float, ...], io: str) -> dict[str, Any] | None:
        return _load(entry, p, io, high=True)


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
    # A thread of the parent that held the lock (compiling a kernel) does not exist in the
    # child: the child gets a lock of its own, or its first call that needs a kernel waits
    # forever. (What that thread was building is built again, by the child, if it needs it.)
    global _lock
    _lock = threading.RLock()
    # GNU libgomp's threads do not survive fork(): a child that enters a parallel region hangs.
    # (torch's DataLoader sets one thread in its workers for the same reason.)
    _threads.after_fork()


os.register_at_fork(after_in_child=_forked)


# how many threads a kernel call runs on, and why: see threads.py
torch_threads = _threads.torch_threads
threads = _threads.threads
describe_threads = _threads.describe


def _work(entries: list[Entry], dtypes: tuple[str, ...]) -> list[tuple[str, str]]:
    """(stem, source) of every library of every form of ``entries`` for ``dtypes``."""
    work = {}
    for e in entries:
        for p in e.forms_params():
            for io in dtypes:
                for high in (False, True) if e.kind == "elementwise" else (False,):
                    stem = f"{e.key}-{io}" + ("-high" if high else "")
                    src = codegen.source(_specs(e, p, io, high))
                    work[stem, src] = (stem, src)  # (a library is named by both)
    return list(work.values())


def build_all(entries: list[Entry], dtypes: tuple[str, ...] = IO, jobs: int = 0,
              progress: Callable[[str], None] | None = None, levels: tuple[str, ...] = (),
              into: Path | None = None) -> int:
    """Compile every form of every entry (``Entry.forms_params``) for ``dtypes``, and the runtime,
    into the cache (``into``: into that folder, a level's subfolder each, as a wheel carries
    them), for ``levels`` (default: this machine's), ``jobs`` compilers at a time (0: one per
    CPU); the number of libraries built or found. Raises RuntimeError where a compilation
    fails."""
    from concurrent.futures import ThreadPoolExecutor

    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set KAUN_CC, or install cc, gcc or clang)")
    levels = levels or (isa(),)
    items: list[tuple[str, str, tuple[str, ...], str, tuple[str, ...]]] = []
    if into is None:
        runtime()
    else:
        src = (HERE / "runtime.c").read_text()
        inc = _python_headers()
        for stem, defines, _ in RUNTIME_VARIANTS:
            py = "-DKAUN_PYTHON" in defines
            if py and inc is None:
                raise RuntimeError("Python's headers (Python.h) are needed to prebuild the runtime")
            items.append((stem, src, defines, _baseline(), (f"-I{inc}",) if py else ()))
    for level in levels:
        items += [(stem, src, (), level, ()) for stem, src in _work(entries, dtypes)]

    def one(item: tuple[str, str, tuple[str, ...], str, tuple[str, ...]]) -> str:
        stem, src, defines, level, includes = item
        _build(stem, src, defines, level, includes, None if into is None else into / level)
        if progress:
            progress(stem)
        return stem

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        return len(list(pool.map(one, items)))


def _ours(d: Path) -> list[Path]:
    """What kaun wrote in folder d: its libraries and build folders, nothing else."""
    if not d.is_dir():
        return []
    return [f for f in d.iterdir() if _OURS.match(f.name)]


def cache_info() -> dict[str, Any]:
    """Where the cache is and what it holds."""
    d = cache_dir()
    libs = [f for f in _ours(d) if f.suffix == ".so"]
    return {"dir": str(d), "libraries": len(libs), "bytes": sum(f.stat().st_size for f in libs),
            "compiler": compiler(), "refused": _private_dir(d) if d.exists() else None}


def status(probe: Entry) -> dict[str, Any]:
    """Which path serves NumPy, Dask and torch CPU arrays on this machine, and why: tried, not
    assumed (the runtime and the float32 kernels of ``probe``, an entry that every prebuilt set
    has, are loaded, built first where they must be)."""
    out: dict[str, Any] = {"isa": isa(), "detected_isa": detected_isa(), "arch": arch(),
                           "compiler": compiler(), "prebuilt": str(PREBUILT / isa()) if prebuilt() else None,
                           "cache": cache_info()}
    if os.environ.get("KAUN_KERNELS", "1") == "0":
        out.update(path="formulas", why="KAUN_KERNELS=0")
        return out
    if not enabled():
        cc = os.environ.get("KAUN_CC")
        fix = f"KAUN_CC={cc!r} names no program" if cc else "set KAUN_CC, or install cc, gcc or clang"
        out.update(path="formulas", why=f"no prebuilt kernels for this machine ({isa()}) and no C "
                   f"compiler ({fix})")
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            runtime()
            c = compiled(probe, (), "float32")
        except RuntimeError as e:
            c, caught = None, [*caught, warnings.WarningMessage(str(e), RuntimeWarning, "", 0)]
    if c is None:
        why = "; ".join(str(w.message) for w in caught) or "the kernels could not be loaded"
        out.update(path="formulas", why=why)
        return out
    stem, origin, omp = _state["runtime"]
    kernel = _ORIGIN.get(f"{probe.key}-float32", "cache")
    out.update(path={"prebuilt": "prebuilt", "cache": "compiled here", "compiled": "compiled here"}[kernel],
               why=None, runtime=stem, runtime_origin=origin, openmp=omp)
    return out


def clear_cache() -> int:
    """Delete what kaun wrote in the cache folder (its libraries and build folders; the folder
    too where nothing else is left in it); the number of libraries deleted. (A process that
    loaded them keeps its copies; later ones compile again.)"""
    d = cache_dir()
    n = 0
    for f in _ours(d):
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
            n += 1
    try:
        d.rmdir()  # only if empty
    except OSError:
        pass
    return n
