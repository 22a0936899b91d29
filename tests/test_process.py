"""The process around the calls: the kernel cache on disk, fork, warnings as errors, the
interpreter's global state, the instruction-set levels. Each case runs in a fresh Python process
(its own cache folder and environment), as a user's program would meet it.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from bits import bits

from kaun import _kernels as K

needs_kernels = pytest.mark.skipif(not K.enabled(), reason="no C compiler: no compiled kernels")


def py(code: str, tmp: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """code in a fresh interpreter with the cache in tmp/cache (and env added)."""
    e = {**os.environ, "KAUN_CACHE_DIR": str(tmp / "cache"), **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=e, check=False)


# -- the cache on disk ------------------------------------------------------------------------------

GELU = """
import warnings, numpy as np, kaun.activation as A
x = np.linspace(-4, 4, 1001).astype(np.float32)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    y = A.gelu(x)
from kaun import _kernels as K
print(K._ORIGIN.get("gelu-float32"), len(w), [str(m.message) for m in w])
np.save(r"{out}", y)
"""


@needs_kernels
@pytest.mark.parametrize("damage", ["truncated", "zeroed", "empty"])
def test_a_damaged_cached_library_is_rebuilt_not_loaded(tmp_path: Path, damage: str) -> None:
    """A cached library cut short (a crash before its data reached the disk) crashed the next
    process with SIGBUS; now its trailer does not match, and it is built again, once."""
    r = py(GELU.replace("{out}", str(tmp_path / "a.npy")), tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("compiled 0"), r.stderr
    (lib,) = (tmp_path / "cache").glob("gelu-float32-*.so")
    data = lib.read_bytes()
    lib.write_bytes({"truncated": data[:1000], "zeroed": bytes(len(data)), "empty": b""}[damage])
    r = py(GELU.replace("{out}", str(tmp_path / "b.npy")), tmp_path)
    assert r.returncode == 0, (r.returncode, r.stderr)  # (was -7: SIGBUS)
    assert r.stdout.startswith("compiled 0"), r.stdout  # built again, no warning
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    assert lib.read_bytes() == data  # the same library again
    r = py(GELU.replace("{out}", str(tmp_path / "c.npy")), tmp_path)
    assert r.stdout.startswith("cache 0"), r.stdout  # and found whole by the next process


@needs_kernels
def test_a_library_is_sealed_and_written_whole(tmp_path: Path) -> None:
    """Every library kaun writes ends with its SHA-256 trailer, is private to its user, and no
    build folder is left behind."""
    r = py(GELU.replace("{out}", str(tmp_path / "a.npy")), tmp_path)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "cache"
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    libs = list(d.iterdir())
    assert libs and all(f.suffix == ".so" for f in libs), libs
    for f in libs:
        assert K._sealed(f), f
        assert not stat.S_IMODE(f.stat().st_mode) & 0o077, f


@needs_kernels
@pytest.mark.parametrize("what", ["folder", "library"])
def test_a_cache_others_can_write_is_refused(tmp_path: Path, what: str) -> None:
    """kaun loads code from its cache: a folder or library that another user can write is
    refused with a warning that says why (as ssh refuses such a key), and the formulas serve."""
    r = py(GELU.replace("{out}", str(tmp_path / "a.npy")), tmp_path)
    assert r.returncode == 0, r.stderr
    d = tmp_path / "cache"
    target = d if what == "folder" else next(d.glob("gelu-float32-*.so"))
    target.chmod(stat.S_IMODE(target.stat().st_mode) | stat.S_IWOTH)
    r = py(GELU.replace("{out}", str(tmp_path / "b.npy")), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "writable by others" in r.stdout, r.stdout
    # the formula's result: within the bound of the kernel's
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.allclose(a, b, rtol=4e-7, atol=1e-30)
    r = py("import kaun.activation as A; print(A.info()['why'])", tmp_path)
    if what == "folder":  # (a library of another function still serves: the status says so)
        assert "writable by others" in r.stdout, r.stdout + r.stderr


def test_clear_deletes_only_what_kaun_wrote(tmp_path: Path) -> None:
    """``kaun-activation cache --clear`` deleted the whole folder, a user's files in it too."""
    d = tmp_path / "cache"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    (d / "sub").mkdir()
    (d / "mine.so").write_bytes(b"not kaun's")
    kaun_files = ["gelu-float32-0123456789abcdef01234567.so",
                  "runtime-abi3-omp-0123456789abcdef01234567.so"]
    for f in kaun_files:
        (d / f).write_bytes(b"x")
    (d / ".build-abc123").mkdir()
    r = subprocess.run([sys.executable, "-m", "kaun.cli", "cache", "--clear"], capture_output=True,
                       text=True, env={**os.environ, "KAUN_CACHE_DIR": str(d)}, check=False)
    assert r.returncode == 0, r.stderr
    assert "deleted 2 kernel libraries" in r.stdout, r.stdout
    assert sorted(f.name for f in d.iterdir()) == ["mine.so", "notes.txt", "sub"]
    # a folder that only kaun used goes
    e = tmp_path / "empty-after"
    e.mkdir()
    (e / kaun_files[0]).write_bytes(b"x")
    subprocess.run([sys.executable, "-m", "kaun.cli", "cache", "--clear"], check=True,
                   capture_output=True, env={**os.environ, "KAUN_CACHE_DIR": str(e)})
    assert not e.exists()


# -- fork, warnings as errors, global state ----------------------------------------------------------

FORK = """
import os, sys, threading, time, numpy as np
import kaun.activation as A
from kaun import _kernels as K
from kaun._core import ALL
A.sigmoid(np.ones(4, np.float32))  # the runtime, loaded before
started = threading.Event()
def compile_in_a_thread():
    with K._lock:  # what _load holds while the compiler runs
        started.set()
        K.compiled(ALL["gelu"], (), "float64")
        time.sleep(1.0)
t = threading.Thread(target=compile_in_a_thread)
t.start()
started.wait()
pid = os.fork()
if pid == 0:  # the child's first call that needs a kernel
    y = A.mish(np.linspace(-1, 1, 9, dtype=np.float32))
    os._exit(0 if np.isfinite(y).all() else 1)
_, status = os.waitpid(pid, 0)
t.join()
print("child", os.waitstatus_to_exitcode(status))
"""


@needs_kernels
def test_fork_while_another_thread_compiles(tmp_path: Path) -> None:
    """The child of a fork taken while a thread held the compile lock waited forever for it."""
    try:
        r = py(FORK, tmp_path, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the forked child deadlocked on the compile lock")
    assert r.returncode == 0 and r.stdout.strip() == "child 0", (r.stdout, r.stderr)


def test_failing_compiler_under_warnings_as_errors(tmp_path: Path) -> None:
    """With ``-W error::RuntimeWarning`` and no working compiler, every call ran the compiler
    again and raised: the failure is now remembered before the warning, which raises once."""
    code = """
    import time, numpy as np, kaun.activation as A
    x = np.ones(8, np.float32)
    try:
        A.gelu(x)
        print("no warning")
    except RuntimeWarning as e:
        print("first:", e)
    t = time.perf_counter()
    for _ in range(20):
        y = A.gelu(x)
    print("then", round(float(y[0]), 6), time.perf_counter() - t < 2.0)
    """
    r = py(code, tmp_path, KAUN_CC="false", PYTHONWARNINGS="error::RuntimeWarning")
    assert r.returncode == 0, r.stderr
    first, then = r.stdout.splitlines()
    assert first.startswith("first: kaun: compiled kernels unavailable for gelu (the C compiler"), first
    assert then == "then 0.841345 True", r.stdout


def test_a_misspelt_kaun_cc_says_so(tmp_path: Path) -> None:
    r = py("import numpy as np, kaun.activation as A; A.gelu(np.ones(3, np.float32))", tmp_path,
           KAUN_CC="gccc")
    assert r.returncode == 0, r.stderr
    assert "KAUN_CC='gccc' is not a program on PATH" in r.stderr, r.stderr


def test_import_leaves_the_decimal_context_alone() -> None:
    """Importing kaun set the importing thread's decimal precision to 50 (from 28)."""
    code = ("import decimal; before = decimal.getcontext().prec; import kaun.activation, kaun.nn; "
            "print(before, decimal.getcontext().prec)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["28", "28"]


# -- the instruction-set levels and the same bits ------------------------------------------------------

LEVEL_RUN = """
import numpy as np, kaun.activation as A
from kaun import _kernels as K
from bits import grid
print(K.isa())
out = {}
for name in ("gelu", "silu", "mish", "softplus", "tanh", "elu", "gelu_approx", "log_sigmoid"):
    f = getattr(A, name)
    for dt in ("float32", "float64"):
        x = grid(dt)
        out[f"{name}-{dt}"] = f(x)
        out[f"{name}-{dt}-d"] = A.derivative(f)(x)
np.savez(r"{out}", **out)
"""


def _levels_here() -> list[str]:
    names = [n for n, _ in K.LEVELS.get(K.arch(), ())]
    best = K.detected_isa()
    return names[names.index(best):] if best in names else []


@needs_kernels
@pytest.mark.skipif(K.arch() != "x86_64", reason="the x86-64 levels")
def test_every_level_gives_the_same_bits(tmp_path: Path) -> None:
    """-march=native and -ffp-contract=fast made the bits depend on the machine (an x86-64-v2
    build differed in 18 % of gelu's float32 outputs), and kmath.h's non-FMA branches were never
    compiled by a test (they lost up to 1245 ulp next to the zeros of mish', gelu', silu').
    Now contraction is off and every fma is explicit: x86-64-v2 (the C library's fma), v3 (AVX2)
    and v4 (AVX-512) give the same bits, values and derivatives, float32 and float64."""
    levels = [lv for lv in _levels_here() if lv != "x86-64"]
    if len(levels) < 2:
        pytest.skip("one level on this CPU")
    here = Path(__file__).parent
    got = {}
    for lv in levels:
        r = py(LEVEL_RUN.replace("{out}", str(tmp_path / f"{lv}.npz")), tmp_path, timeout=600,
               KAUN_ISA=lv, PYTHONPATH=os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")]))
        assert r.returncode == 0 and r.stdout.split() == [lv], (r.stdout, r.stderr)
        got[lv] = np.load(tmp_path / f"{lv}.npz")
    ref = got[levels[0]]
    for lv in levels[1:]:
        for k in ref.files:
            assert np.array_equal(bits(got[lv][k]), bits(ref[k])), (lv, k)


def test_kaun_isa_above_the_cpu_is_refused(tmp_path: Path) -> None:
    names = [n for n, _ in K.LEVELS.get(K.arch(), ())]
    best = K.detected_isa()
    if best not in names or names.index(best) == 0:
        pytest.skip("this CPU has the best level")
    r = py("from kaun import _kernels as K; print(K.isa())", tmp_path, KAUN_ISA=names[0])
    assert r.stdout.split() == [best] and "above this CPU's level" in r.stderr, (r.stdout, r.stderr)
    r = py("from kaun import _kernels as K; print(K.isa())", tmp_path, KAUN_ISA="pentium4")
    assert r.stdout.split() == [best] and "is not a level of" in r.stderr


def test_the_cache_key_is_the_level_not_the_cpu_flags() -> None:
    """The key hashed /proc/cpuinfo's whole flags line (a `hypervisor` flag made another
    machine); it is now the level the code is compiled for, with the source, headers and flags."""
    src = "int f(void) { return 1; }"
    assert K._key("t", src, "x86-64-v3", ()) == K._key("t", src, "x86-64-v3", ())
    assert K._key("t", src, "x86-64-v3", ()) != K._key("t", src, "x86-64-v4", ())
    assert K._key("t", src, "x86-64-v3", ()) != K._key("t", src, "x86-64-v3", ("-fopenmp",))
    levels = K.LEVELS.get(K.arch())
    if levels and K._cpu_features() is not None:
        feats = K._cpu_features() | {"hypervisor"}
        assert K.detected_isa() == next(
            lv for i, (lv, _) in enumerate(levels) if all(need <= feats for _, need in levels[i:]))


# -- the argument block --------------------------------------------------------------------------


def test_more_run_time_scalars_than_the_block_holds_are_refused() -> None:
    """runtime.c copies KAUN_MAX_P (8) scalars; a ninth would have been read past the block."""
    assert K.MAX_P == 8 and K.ABI >= 1
    table = {"value": 0, "deriv": 0, "vjp": 0}
    K.Compiled(table, tuple(float(i) for i in range(K.MAX_P)))
    with pytest.raises(ValueError, match="more than the kernels' 8"):
        K.Compiled(table, tuple(float(i) for i in range(K.MAX_P + 1)))
    from kaun import _ir
    from kaun._kernels import codegen

    def nine(o: object, x: object, *p: float) -> object:
        y = x
        for v in p:
            y = y * v  # type: ignore[operator]
        return y

    g = _ir.trace(nine, 1, tuple(float(i) for i in range(9)), 32)
    with pytest.raises(ValueError, match="kargs.h holds 8"):
        codegen.kernel(codegen.Spec("k_value", g, "float32", "value"))


@needs_kernels
def test_the_runtime_reports_its_abi_and_threading() -> None:
    rt = K.runtime()
    assert int(rt.kaun_abi_version()) == K.ABI
    stem, origin, omp = K._state["runtime"]
    assert bool(rt.kaun_openmp()) == omp and stem.startswith("runtime")


def test_the_lowered_formulas_are_cached_privately(tmp_path: Path) -> None:
    """The torch adapter's lowered formulas (one marshalled module in the cache folder) are
    written private whatever the umask, read back by the next process, and a damaged file is
    replaced, not loaded."""
    code = """
import os, torch
os.umask(0o002)
import kaun.activation as A
print(A.gelu(torch.ones(3)).sum().item())
"""
    r = py(code, tmp_path)
    assert r.returncode == 0, r.stderr
    files = list((tmp_path / "cache").glob("torch-formulas-*.marshal"))
    assert len(files) == 1
    f = files[0]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    before = f.stat().st_mtime_ns
    r = py(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f.stat().st_mtime_ns == before  # read, not written again
    f.write_bytes(b"\x00garbage")
    os.chmod(f, 0o600)
    r = py(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f.stat().st_size > 1000  # lowered again and written whole
