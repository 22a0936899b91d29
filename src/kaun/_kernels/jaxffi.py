"""kaun's compiled kernels as an XLA FFI custom call, for ``jax.jit`` on the CPU (issue 22).

``jaxffi.cpp`` is one handler, ``kaun_ffi_call``, that runs one of kaun's C kernels over a buffer
(the kernel named by its library's file name, a content hash, and its symbol: no address in the
HLO, so an executable that JAX's persistent compilation cache hands to another process still
finds its kernel). It is compiled by the system's C++ compiler (``$KAUN_CXX``, else c++, g++ or
clang++) against jaxlib's FFI headers (``jax.ffi.include_dir()``, header-only: about 2 s) into
kaun's private cache, named by a hash of the source, jaxlib's version and the flags, sealed and
renamed into place as the C kernels are, checked (sealed, private) before it is loaded, and
registered with ``jax.ffi.register_ffi_target(..., platform="cpu")``.

Optional at run time: ``$KAUN_JAX_FFI=0``, ``$KAUN_KERNELS=0``, no ``jax.ffi``, no C++ compiler or a
failed build (one RuntimeWarning) leave JAX on the formulas' lowering. ``why_not()`` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from .. import _core
from . import HERE, PREBUILT, _fsync_dir, _private_file, _sealed, seal
from . import _cache as _cache_folder

SOURCE = HERE / "jaxffi.cpp"
TARGET = "kaun_ffi_call"  # the custom call's target name (XLA's registry, per process)
VERSION = 2  # jaxffi.cpp's kaun_ffi_version: its operands and attributes
CXXFLAGS = ("-O2", "-fPIC", "-shared", "-std=c++17", "-fno-math-errno")
_lock = threading.Lock()
_state: dict[str, Any] = {}


def cxx() -> str | None:
    """The C++ compiler: ``$KAUN_CXX``, else the first of c++, g++, clang++ on PATH."""
    want = os.environ.get("KAUN_CXX")
    if want:
        return shutil.which(want)
    return next((p for p in map(shutil.which, ("c++", "g++", "clang++")) if p), None)


def _jaxlib() -> tuple[str, str] | None:
    """(jaxlib's version, the FFI headers' folder), or None where this jax has no ``jax.ffi``
    or its headers."""
    try:
        import jax.ffi
        import jaxlib
    except ImportError:
        return None
    if not hasattr(jax.ffi, "include_dir") or not hasattr(jax.ffi, "register_ffi_target"):
        return None
    inc = jax.ffi.include_dir()
    if not (Path(inc) / "xla" / "ffi" / "api" / "ffi.h").is_file():
        return None
    return str(getattr(jaxlib, "__version__", "?")), inc


def why_not() -> str | None:
    """Why JAX's CPU lowering cannot take the FFI kernels here (before any build), or None."""
    from . import enabled

    if os.environ.get("KAUN_JAX_FFI", "1") == "0":
        return "KAUN_JAX_FFI=0"
    if not enabled():
        return "no compiled kernels (KAUN_KERNELS=0, or no C compiler and no prebuilt ones)"
    if _jaxlib() is None:
        return "this jaxlib has no jax.ffi or no FFI headers"
    if cxx() is None:
        want = os.environ.get("KAUN_CXX")
        return f"KAUN_CXX={want!r} names no program" if want else "no C++ compiler (c++, g++, clang++)"
    return None


def library_name() -> str:
    """The handler library's file name: a hash of its source, jaxlib's version and the flags."""
    info = _jaxlib()
    version = info[0] if info else "?"
    text = "\n".join((" ".join(CXXFLAGS), version, SOURCE.read_text()))
    return f"jaxffi-{hashlib.sha256(text.encode()).hexdigest()[:24]}.so"


def build() -> Path:
    """The handler library, from the cache or compiled into it (RuntimeError where it cannot)."""
    info = _jaxlib()
    if info is None:
        raise RuntimeError("this jaxlib has no jax.ffi or no FFI headers")
    d = _cache_folder()
    lib = d / library_name()
    if lib.exists():
        why = _private_file(lib)
        if why is not None:
            raise RuntimeError(f"refusing to load {why}; delete it or the cache")
        if _sealed(lib):
            return lib
        lib.unlink(missing_ok=True)  # truncated or damaged: built again
    cc = cxx()
    if cc is None:
        raise RuntimeError("no C++ compiler (set KAUN_CXX, or install c++, g++ or clang++)")
    with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
        out = Path(tmp) / "lib.so"
        # (-isystem: the headers' own warnings are not ours)
        cmd = [cc, *CXXFLAGS, "-isystem", info[1], "-o", str(out), str(SOURCE)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or [""])[-1]
            raise RuntimeError(f"the C++ compiler {cc} failed (exit {r.returncode}): {last[:200]}")
        seal(out)
        with open(out, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(out, 0o700)
        os.replace(out, lib)  # atomic: a racing process finds a whole library or none
        _fsync_dir(d)
    return lib


def load() -> Any | None:
    """The handler, built, loaded and registered with XLA once per process; None where it cannot
    be (``state()`` says why)."""
    if "lib" in _state:
        return _state["lib"]
    with _lock:
        if "lib" in _state:
            return _state["lib"]
        lib, why, failed = None, why_not(), False
        if why is None:
            try:
                lib = _register(build())
            except (RuntimeError, OSError) as e:
                why, failed = f"the FFI handler could not be built or loaded: {e}", True
        _state["why"] = why
        _state["lib"] = lib
    if failed:
        warnings.warn(f"kaun: {why}; jax.jit on the CPU takes the formulas", RuntimeWarning, stacklevel=3)
    return lib


def _register(path: Path) -> Any:
    import jax.ffi

    from . import _state as kstate
    from . import cache_dir, isa, runtime

    lib = ctypes.CDLL(str(path))
    if int(lib.kaun_ffi_version()) != VERSION:
        raise RuntimeError(f"{path.name} is version {lib.kaun_ffi_version()}, not {VERSION}")
    runtime()  # (raises RuntimeError where it cannot be built)
    rt = ctypes.CDLL(str(kstate["runtime_path"]))  # (loaded already: the same handle)
    run = ctypes.cast(rt.kaun_run_flat, ctypes.c_void_p).value
    lib.kaun_ffi_init.argtypes = [ctypes.c_void_p]
    lib.kaun_ffi_add_dir.argtypes = [ctypes.c_char_p]
    lib.kaun_ffi_init(run)
    for d in (PREBUILT / isa(), cache_dir()):
        lib.kaun_ffi_add_dir(os.fsencode(str(d)))
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.kaun_ffi_call),  # type: ignore[no-untyped-call]
                               platform="cpu")
    _state["rt"] = rt
    return lib


def state(load_now: bool = False) -> dict[str, Any]:
    """What jax.jit on the CPU lowers kaun's primitives to, and why (``kaun.activation.info()
    ["jax"]``): ``path`` "ffi" (the values of ``functions`` and the derivatives of
    ``derivatives`` run the compiled kernels through the custom call; the others the formulas),
    "formulas" (``why``), "pending" (jax not imported yet: the first jax.jit on the CPU loads the
    handler, building it first where it must; ``load_now`` does that here), or None where jax is
    not installed. Imports jax and loads the handler only where jax is imported already."""
    import importlib.util
    import sys

    if importlib.util.find_spec("jax") is None:
        return {"path": None, "why": "jax is not installed", "functions": [], "derivatives": []}
    if os.environ.get("KAUN_JAX_FFI", "1") == "0":
        return {"path": "formulas", "why": "KAUN_JAX_FFI=0", "functions": [], "derivatives": []}
    if "lib" not in _state and not load_now and "jax" not in sys.modules:
        return {"path": "pending", "why": "jax is not imported yet: its first jax.jit on the CPU "
                "loads the FFI handler (built first where it must be; `kaun-activation build` "
                "builds it ahead)", "functions": [], "derivatives": []}
    lib = load()
    if lib is None:
        return {"path": "formulas", "why": _state.get("why"), "functions": [], "derivatives": []}
    if not FFI_FUNCTIONS | FFI_DERIVATIVES:
        return {"path": "formulas", "why": "the formulas, fused by XLA, are faster for every function "
                "(docs/jax.md)", "functions": [], "derivatives": []}
    return {"path": "ffi", "why": None, "functions": sorted(FFI_FUNCTIONS),
            "derivatives": sorted(FFI_DERIVATIVES)}


def kernel(entry: _core.Entry, structure: tuple[Any, ...], io: str, k: int) -> tuple[str, str] | None:
    """(library file name, symbol) of the kernel of order k of ``entry`` for prepared arguments
    of that structure and I/O dtype ``io`` (built and loaded first), or None where none serves."""
    from . import _PATHS, _load, codegen

    if load() is None:
        return None
    prec = codegen.PREC[codegen.WORK[io]]
    want = entry.structure(structure)
    for p in entry.forms_params():  # (a kernel depends on the form only: any p of the form)
        if entry.structure(entry.prep(p, prec)) == want:
            break
    else:
        return None
    high = k >= 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the formula serves, and the NumPy path warns itself)
        table = _load(entry, p, io, high)
    path = _PATHS.get((entry.key, entry.variant(p), io, high))
    if table is None or path is None:
        return None
    return path.name, f"k_{_core.ORDERS[k]}"


# What jax.jit on the CPU lowers to the FFI kernels, chosen by benchmarks/jax_ffi.py (docs/jax.md):
# the value (order 0) of FFI_FUNCTIONS, the derivatives (orders 1-3) of FFI_DERIVATIVES; the rest
# keeps the formula, which XLA fuses with its neighbours. A derivative is multiplied by the
# cotangent: fused, that product is free; after a custom call it is another pass over memory
# (forward + backward of most functions ran slower through the FFI, bare and in an MLP layer),
# but for gelu_approx, whose formula XLA runs 3-4x slower than the kernel. The value: the
# custom call where the kernel ran faster than the formula at 2^22 in two runs; the formula for
# the cheap piecewise functions (relu, leaky_relu, hard_sigmoid, hard_silu, sparse_plus,
# sparse_sigmoid: XLA's loop as fast or faster), tanh, gelu and squareplus (no clear winner).
FFI_FUNCTIONS: frozenset[str] = frozenset({
    "sigmoid", "relu6", "hard_tanh", "elu", "selu", "celu", "gelu_approx", "silu", "mish",
    "softplus", "softsign", "log_sigmoid"})
FFI_DERIVATIVES: frozenset[str] = frozenset({"gelu_approx"})
