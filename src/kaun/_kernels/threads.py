"""How many threads a compiled kernel runs on, and why (``describe()`` says both).

NumPy and Dask arrays (``threads()``), the first rule that applies:

1. **after a fork**: 1, in a process forked from one that imported the kernel layer (GNU
   OpenMP's threads do not survive ``fork()``: a child that enters a parallel region hangs;
   torch's DataLoader workers run one thread for the same reason);
2. **``KAUN_NUM_THREADS``**: a positive integer, always obeyed (the one way to ask for more than
   one thread inside a worker pool); ``auto`` or unset: the rules below. Any other value is
   ignored with a RuntimeWarning that names the variable and what it takes;
3. **a worker pool's thread**: 1. The pool is the parallelism already (Dask's threaded scheduler
   runs one task per core; a distributed worker one per thread), and every calling thread opens an
   OpenMP team of its own: 8 Dask threads on 2 cores were 8 teams, 20 OS threads, contending
   for 2 cores. A pool's thread is recognized by the loop it runs: ``concurrent.futures``'
   ``ThreadPoolExecutor`` (Dask's threaded scheduler, ``asyncio.to_thread``, ``loop.
   run_in_executor``), ``distributed``'s worker threads, ``multiprocessing.pool.ThreadPool``
   (joblib's threading backend). Other threads (``threading.Thread``) follow the rules below;
4. **``OMP_NUM_THREADS``**: a positive integer, or a list (``4,2``: its first, the outermost
   level, as OpenMP reads it); any other value ignored with a RuntimeWarning (NumPy's BLAS and
   torch read the same variable; Dask's nanny sets it to 1 in its worker processes);
5. **torch's setting**, ``torch.get_num_threads()``, where torch is imported (its OpenMP pool is
   the one kaun's kernels run on: see runtime.c);
6. **the CPUs this process may use**: its affinity mask (``taskset``, ``docker --cpuset-cpus``)
   and its cgroup's CPU quota (``docker --cpus``, Kubernetes' CPU limit: cgroup v2's ``cpu.max``,
   v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``, rounded up), whichever is smaller.

torch CPU tensors (``torch_threads(torch.get_num_threads())``): torch's own count, as torch's
ops on the same tensors use, except for rules 1 and 2.

The environment is read once per process (as OpenMP and torch read it, at start); torch's
setting and the calling thread are looked at on each call. The count a kernel call uses only
matters from ``2 * GRAIN`` elements (runtime.c: fewer than GRAIN a thread run on one), so the
adapters ask only then.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "KAUN_NUM_THREADS"
CGROUP = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")

# (module, name) of the functions that a worker pool's threads run (Thread's target)
POOL_LOOPS = frozenset({
    ("concurrent.futures.thread", "_worker"),  # ThreadPoolExecutor and its subclasses (Dask's)
    ("distributed.threadpoolexecutor", "_worker"),  # dask.distributed's worker threads
    ("multiprocessing.pool", "worker"),  # multiprocessing.pool.ThreadPool
})


@dataclass(frozen=True)
class Choice:
    """A thread count and the rule that gave it."""

    count: int
    reason: str

    def __str__(self) -> str:
        return f"{self.count} ({self.reason})"


_state: dict[str, Any] = {}  # "forked": True in a forked child; "env", "cpus": read once
_local = threading.local()  # .pool: whether the calling thread is a worker pool's


def _positive(name: str, value: str, list_ok: bool) -> int | None:
    """The count a variable asks for, or None (unset, empty, ``auto``, or a bad value: warned)."""
    v = value.strip()
    if v == "" or (name == ENV and v.lower() == "auto"):
        return None
    first = v.split(",")[0].strip() if list_ok else v
    try:
        n = int(first)
    except ValueError:
        n = 0
    if n >= 1:
        return n
    takes = ("a positive integer or 'auto'" if name == ENV else
             "a positive integer, or a comma-separated list of them")
    warnings.warn(f"kaun: ignoring {name}={value!r}: it takes {takes}", RuntimeWarning,
                  stacklevel=4)
    return None


def _env() -> tuple[int | None, int | None]:
    """(KAUN_NUM_THREADS, OMP_NUM_THREADS) as counts (None: not given), read once."""
    e = _state.get("env")
    if e is None:
        e = _state["env"] = (
            _positive(ENV, os.environ.get(ENV, ""), False),
            _positive("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", ""), True),
        )
    return e


def _quota_v2(f: Path) -> float | None:
    """cgroup v2's ``cpu.max``: "QUOTA PERIOD" (microseconds) or "max PERIOD" (no limit)."""
    parts = f.read_text().split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    return int(parts[0]) / int(parts[1])


def _quota_v1(d: Path) -> float | None:
    """cgroup v1's ``cpu.cfs_quota_us`` (-1: no limit) over ``cpu.cfs_period_us``."""
    q = int((d / "cpu.cfs_quota_us").read_text())
    return None if q <= 0 else q / int((d / "cpu.cfs_period_us").read_text())


def cgroup_cpus(root: Path = CGROUP, proc: Path = PROC_CGROUP) -> int | None:
    """The CPUs that this process's cgroup quota allows, rounded up; None where no quota applies
    (or no cgroup can be read). The process's own cgroup (from ``proc``) and each one above it
    count, the strictest wins: a container sees its own cgroup at ``root`` itself, a process on a
    host under its path there."""
    try:
        lines = proc.read_text().splitlines()
    except OSError:
        lines = []
    where: list[tuple[Path, str]] = []  # (a hierarchy's mount, the process's path in it)
    for ln in lines:
        _, ctrl, path = ln.split(":", 2)
        if ctrl == "":
            where.append((root, path))  # v2: one hierarchy
        elif "cpu" in ctrl.split(","):
            where += [(root / m, path) for m in ("cpu", "cpu,cpuacct", "cpuacct,cpu")]
    if not where:  # no /proc: the hierarchies' roots
        where = [(root, "/"), (root / "cpu", "/"), (root / "cpu,cpuacct", "/")]
    limits = []
    for mount, path in where:
        d = mount / path.strip("/")
        for level in (d, *d.parents):
            try:
                level.relative_to(mount)
            except ValueError:
                break  # above the mount
            try:
                q = _quota_v2(level / "cpu.max") if mount == root else _quota_v1(level)
            except (OSError, ValueError):
                continue
            if q is not None:
                limits.append(max(1, math.ceil(q)))
    return min(limits) if limits else None


def cpus(root: Path = CGROUP, proc: Path = PROC_CGROUP) -> Choice:
    """The CPUs this process may use: its affinity, or its cgroup quota where that is smaller."""
    try:
        n = len(os.sched_getaffinity(0))
        what = "the CPUs this process may run on, its affinity"
    except (AttributeError, OSError):  # (no sched_getaffinity: macOS, Windows)
        n = os.cpu_count() or 1
        what = "the machine's CPUs"
    q = cgroup_cpus(root, proc)
    if q is not None and q < n:
        return Choice(q, f"the cgroup's CPU quota; {n} CPUs in the affinity")
    return Choice(n, what + ("" if q is None else f"; the cgroup's CPU quota allows {q}"))


def _cpus() -> Choice:
    c = _state.get("cpus")
    if c is None:
        c = _state["cpus"] = cpus()
    return c


def in_pool() -> bool:
    """Whether the calling thread is a worker pool's (see rule 3)."""
    p = getattr(_local, "pool", None)
    if p is None:
        fn = getattr(threading.current_thread(), "_target", None)
        p = _local.pool = (getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)) in POOL_LOOPS
    return p


def _choose() -> tuple[int, str]:
    """(count, which rule) for a NumPy or Dask call on this thread now."""
    if "forked" in _state:
        return 1, "fork"
    explicit, omp = _state.get("env") or _env()
    if explicit is not None:
        return explicit, "env"
    if in_pool():
        return 1, "pool"
    if omp is not None:
        return omp, "omp"
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return max(1, int(torch.get_num_threads())), "torch"
        except (AttributeError, TypeError, ValueError):  # (torch half imported)
            pass
    return _cpus().count, "cpus"


def threads() -> int:
    """The threads for a NumPy or Dask call on this thread (``describe()``'s count)."""
    return _choose()[0]


def describe() -> Choice:
    """The threads a NumPy or Dask call on this thread runs on now, and the rule that chose
    them (see the module's docstring)."""
    n, rule = _choose()
    if rule == "cpus":
        return _cpus()
    reason = {
        "fork": "a process forked after kaun's kernels loaded (OpenMP does not survive fork)",
        "env": f"{ENV}={n}",
        "pool": f"a worker pool's thread ({threading.current_thread().name}); {ENV} overrides",
        "omp": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '').strip()}",
        "torch": "torch.get_num_threads()",
    }[rule]
    return Choice(n, reason)


def torch_threads(n: int) -> int:
    """The threads for a torch tensor, given torch's count ``n`` (its pool is the one kaun's
    kernels run on): ``n``, but 1 in a forked child and ``$KAUN_NUM_THREADS`` where set."""
    if "forked" in _state:
        return 1
    e = _state.get("env") or _env()
    return e[0] or n


def after_fork() -> None:
    """In a forked child: one thread from now on (GNU libgomp's threads do not survive a fork)."""
    _state["forked"] = True
