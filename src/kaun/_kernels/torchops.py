"""kaun's CPU kernels as a torch operator, with its autograd in C++ (``torchops.cpp``).

An eager call on a plain CPU tensor then goes from Python into C++ once: the checks, the output's
allocation, the kernel, and where a gradient is wanted torch's dispatcher and a C++ autograd node
whose backward runs the vjp kernel (about 1 us of fixed cost a call and 20 us for a forward and
backward at 2^10 elements, against 3-5 us and 40 us through Python's ``autograd.Function``).
Everything else (torch.compile, torch.func, forward-mode AD, tracing, subclasses, non-contiguous
tensors, second and third derivatives) takes the Python path, as it did before.

The library is compiled against the installed torch, with the system's C++ compiler, into kaun's
cache (``kaun.activation`` caches: see ``kaun._kernels``), named by a hash of its source, torch's
version and C++ ABI and Python's version: ``kaun-activation build`` builds it ahead; otherwise
the first call of a process that finds none starts a build in the background (another process,
which finishes even if this one exits) and the Python path serves until it is there: no call
waits for a compiler. ``$KAUN_TORCH_OPS``: ``0`` never uses it, ``load`` uses a built one but
never starts a build, anything else (the default) both. No C++ compiler, no torch headers, a
failed build: the Python path, and ``kaun-activation cache`` says why.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from . import HERE, _cache, _fsync_dir, _private_file, _sealed, seal
from .threads import torch_threads

SOURCE = HERE / "torchops.cpp"
FLAGS = ("-O2", "-fPIC", "-shared", "-std=c++20", "-fvisibility=hidden", "-w")
MODULE = "_kaun_torchops"

_lock = threading.Lock()
_state: dict[str, Any] = {}


def mode() -> str:
    """``$KAUN_TORCH_OPS``: "off" (0), "load" (use a built library, never build) or "on"."""
    v = os.environ.get("KAUN_TORCH_OPS", "1").strip().lower()
    return "off" if v in ("0", "off", "false", "no") else "load" if v == "load" else "on"


def cxx() -> str | None:
    """The C++ compiler: ``$KAUN_CXX``, else the first of c++, g++, clang++ on PATH."""
    want = os.environ.get("KAUN_CXX")
    if want:
        return shutil.which(want)
    return next((p for p in map(shutil.which, ("c++", "g++", "clang++")) if p), None)


def _torch_paths() -> tuple[list[str], list[str], str]:
    import torch
    from torch.utils import cpp_extension

    libs = cpp_extension.library_paths()
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return cpp_extension.include_paths(), libs, f"-D_GLIBCXX_USE_CXX11_ABI={abi}"


def _python_include() -> str | None:
    import sysconfig

    inc = sysconfig.get_paths().get("include")
    return inc if inc and os.path.exists(os.path.join(inc, "Python.h")) else None


def name() -> str:
    """The library's file name: a hash of what its bits depend on."""
    import torch

    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), (HERE / "kargs.h").read_bytes(), torch.__version__.encode(),
                 str(torch._C._GLIBCXX_USE_CXX11_ABI).encode(), sys.version.encode(),
                 " ".join(FLAGS).encode()):
        h.update(part + b"\0")
    version = torch.__version__.split("+")[0]
    return f"torchops-{version}-{h.hexdigest()[:24]}.so"


def path() -> Path:
    from . import cache_dir

    return cache_dir() / name()


def build() -> Path:
    """The library, compiled into the cache now unless it is there (a sealed, private file);
    RuntimeError where it cannot be (no C++ compiler, no headers, the compiler's error). Two
    processes building at once: the second waits for the first (a lock file) and finds it."""
    import fcntl

    d = _cache()
    out = d / name()
    with open(d / ".build-torchops_lock", "a") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        if out.exists() and _private_file(out) is None and _sealed(out):
            return out
        out.unlink(missing_ok=True)
        cc = cxx()
        if cc is None:
            raise RuntimeError("no C++ compiler (set KAUN_CXX, or install c++, g++ or clang++)")
        pyinc = _python_include()
        if pyinc is None:
            raise RuntimeError("no Python headers (Python.h): install python3-dev")
        incs, libs, abi = _torch_paths()
        if not os.path.exists(os.path.join(incs[0], "torch", "library.h")):
            raise RuntimeError(f"torch's C++ headers are missing from {incs[0]}")
        with tempfile.TemporaryDirectory(dir=d, prefix=".build-") as tmp:
            lib = Path(tmp) / "lib.so"
            cmd = [cc, *FLAGS, abi, f"-I{HERE}", *(f"-I{i}" for i in incs), f"-I{pyinc}",
                   "-o", str(lib), str(SOURCE), *(f"-L{p}" for p in libs),
                   *(f"-Wl,-rpath,{p}" for p in libs), "-lc10", "-ltorch", "-ltorch_cpu",
                   "-ltorch_python"]
            r = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                err = [ln for ln in r.stderr.splitlines() if "error" in ln][:1] or r.stderr.splitlines()[-1:]
                raise RuntimeError(f"the C++ compiler {cc} failed (exit {r.returncode}): "
                                   f"{(err or [''])[0][:300]}")
            seal(lib)
            with open(lib, "rb") as f:
                os.fsync(f.fileno())
            os.chmod(lib, 0o700)
            os.replace(lib, out)
            _fsync_dir(d)
        return out


def _start_background() -> None:
    """A build in another process (it outlives this one: the next process finds the library);
    this process loads it on its first call after the build ends."""
    code = "from kaun._kernels import torchops; torchops.build()"
    env = dict(os.environ, KAUN_TORCH_OPS="load")
    try:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                start_new_session=True)
    except OSError as e:
        _state["why"] = f"the background build could not start: {e}"
        return

    def wait() -> None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            last = [ln for ln in err.decode(errors="replace").splitlines() if ln.strip()][-1:]
            _state["why"] = f"the background build failed: {(last or ['?'])[0][:300]}"
        _state["built"] = True

    threading.Thread(target=wait, name="kaun-torchops-build", daemon=True).start()


def ext() -> Any:
    """The loaded extension, or None (not yet built, turned off, or failed: ``why()`` says).
    Cheap after the first call: a dict look-up."""
    e = _state.get("ext")
    if e is not None or _state.get("final"):
        return e
    if _state.get("building") and not _state.get("built"):
        return None
    with _lock:
        if "ext" in _state or _state.get("final"):
            return _state.get("ext")
        return _load()


def _load() -> Any:
    m = mode()
    if m == "off":
        _state.update(final=True, why="KAUN_TORCH_OPS=0")
        return None
    try:
        p = path()
        ready = p.exists() and _private_file(p) is None and _sealed(p)
    except (OSError, RuntimeError) as e:
        _state.update(final=True, why=str(e))
        return None
    if not ready:
        if _state.get("built"):  # (the background build ended without a library)
            _state.update(final=True)
            _state.setdefault("why", "the background build left no library")
            return None
        if m == "load":
            _state.update(final=True, why="not built (KAUN_TORCH_OPS=load: no build started)")
            return None
        if cxx() is None:
            _state.update(final=True, why="no C++ compiler (set KAUN_CXX, or install c++, g++ or clang++)")
            return None
        if not _state.get("building"):
            _state["building"] = True
            _state["why"] = "being built in the background"
            _start_background()
        return None
    try:
        mod = _import(p)
    except Exception as exc:  # noqa: BLE001 (an unloadable library: the Python path serves)
        _state.update(final=True, why=f"{p.name} could not be loaded: {exc}")
        return None
    _state.update(ext=mod, final=True, why="")
    return mod


def _import(p: Path) -> Any:
    import ctypes

    import torch

    from . import runtime

    loader = importlib.machinery.ExtensionFileLoader(MODULE, str(p))
    spec = importlib.util.spec_from_file_location(MODULE, p, loader=loader)
    if spec is None:
        raise ImportError(f"cannot import {p}")
    e = importlib.util.module_from_spec(spec)
    loader.exec_module(e)
    if e.abi() != _abi():
        raise ImportError(f"ABI {e.abi()}, not {_abi()}")
    rt = runtime()
    lib = ctypes.CDLL(rt.__file__) if hasattr(rt, "__file__") else rt  # (the ctypes runtime is a CDLL)
    e.init(ctypes.cast(lib.kaun_run_flat, ctypes.c_void_p).value,
           ctypes.cast(lib.kaun_run_rows, ctypes.c_void_p).value)
    _fix_threads(e)
    # kaun::grad, kaun::glu_grad, kaun::prelu_grad: the first derivative times a cotangent, differentiable further
    # (the backward of a C++ node while a graph of the backward is built): the Python path's
    from .._backends import _torch as BT

    lib_impl = torch.library.Library("kaun", "IMPL")  # type: ignore[no-untyped-call]
    lib_impl.impl("grad", BT.grad_by_table, "CompositeImplicitAutograd")  # type: ignore[no-untyped-call]
    lib_impl.impl("glu_grad", BT.glu_grad_by_table, "CompositeImplicitAutograd")  # type: ignore[no-untyped-call]
    lib_impl.impl("prelu_grad", BT.prelu_grad, "CompositeImplicitAutograd")  # type: ignore[no-untyped-call]
    _state["impl"] = lib_impl  # (kept: the registration lives as long as the Library object)
    return e


def _abi() -> int:
    from . import ABI

    return ABI


def _fix_threads(e: Any) -> None:
    """kaun's rule for a torch tensor's threads (threads.torch_threads) in C++: torch's count,
    1 in a forked child, ``$KAUN_NUM_THREADS`` where set."""
    e.fix_threads(torch_threads(0))


def _forked() -> None:
    e = _state.get("ext")
    if e is not None:
        e.fix_threads(1)
    _state.pop("building", None)  # (the parent's waiting thread is not in the child)
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forked)


def why() -> str:
    """Why the extension does not serve ("" where it does)."""
    ext()
    return str(_state.get("why", ""))


def wait(timeout: float = 300.0) -> Any:
    """The extension, after waiting up to ``timeout`` seconds for a background build (tests)."""
    import time

    end = time.monotonic() + timeout
    ext()  # (starts the build where none is there)
    while _state.get("building") and not _state.get("built") and time.monotonic() < end:
        time.sleep(0.1)
    return ext()


def describe() -> str:
    """What serves eager torch CPU calls, for ``kaun.activation.info()`` and ``kaun-activation
    cache``; starts no build."""
    import importlib.util as iu

    if "torch" not in sys.modules and iu.find_spec("torch") is None:
        return "torch is not installed"
    e = _state.get("ext")
    if e is not None:
        return f"the C++ operator ({e.__file__})"
    if mode() == "off":
        return "the Python path (KAUN_TORCH_OPS=0)"
    try:
        p = path()
        if p.exists() and _private_file(p) is None and _sealed(p):
            return f"the C++ operator, once loaded ({p})"
    except (OSError, RuntimeError) as exc:
        return f"the Python path ({exc})"
    why_not = _state.get("why") or ("no C++ compiler" if cxx() is None else
                                    "not built yet: `kaun-activation build` builds it, or the "
                                    "first call starts its build in the background")
    return f"the Python path ({why_not})"
