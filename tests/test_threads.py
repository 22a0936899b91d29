"""How many threads the compiled kernels run on (kaun._kernels.threads): each rule in a fresh
process with its environment variables set, as a user sets them; a worker pool's threads (Dask's
threaded scheduler, distributed's workers, concurrent.futures, multiprocessing's ThreadPool);
the cgroup CPU quota, read from real files laid out as cgroup v1 and v2 lay them out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaun._kernels.threads import cgroup_cpus, cpus

CPUS, CPUS_WHY = cpus().count, cpus().reason  # what this machine allows (affinity and quota): the automatic count

# Prints, as JSON: describe() and the counts a NumPy call (K.threads()) and a torch tensor
# (K.torch_threads(7): torch's count were 7) get on the main thread, after SETUP; and the
# warnings that gave.
PROBE = """
import json, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    from kaun import _kernels as K
    {setup}
    n = K.threads()
    torch_n = K.torch_threads(7)
    from kaun._kernels.threads import describe
    d = describe()
print(json.dumps({{"n": n, "torch": torch_n, "count": d.count, "reason": d.reason,
                  "warnings": [str(w.message) for w in caught]}}))
"""

FORK = """
import os
pid = os.fork()
if pid == 0:
    n = K.threads(); t = K.torch_threads(7)
    os._exit(10 * n + t)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 11, os.waitstatus_to_exitcode(status)
"""


def _env(**kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KAUN_NUM_THREADS", "OMP_NUM_THREADS")}
    return {**env, **kw}


def _probe(setup: str = "", **env: str) -> dict[str, Any]:
    code = PROBE.format(setup=setup.replace("\n", "\n    "))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       env=_env(**env), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.splitlines()[-1])  # type: ignore[no-any-return]


TORCH_1 = "import torch; torch.set_num_threads(1)"

# (environment, setup code, count for NumPy, count for torch (given 7), words of the reason)
RULES: dict[str, tuple[dict[str, str], str, int, int, str]] = {
    "automatic": ({}, "", CPUS, 7, CPUS_WHY),
    "KAUN_NUM_THREADS": ({"KAUN_NUM_THREADS": "3"}, "", 3, 3, "KAUN_NUM_THREADS=3"),
    "KAUN_NUM_THREADS=auto": ({"KAUN_NUM_THREADS": "auto"}, "", CPUS, 7, CPUS_WHY),
    "OMP_NUM_THREADS=1": ({"OMP_NUM_THREADS": "1"}, "", 1, 7, "OMP_NUM_THREADS=1"),
    "OMP_NUM_THREADS list": ({"OMP_NUM_THREADS": "3,2"}, "", 3, 7, "OMP_NUM_THREADS=3,2"),
    "KAUN_NUM_THREADS over OMP": ({"KAUN_NUM_THREADS": "2", "OMP_NUM_THREADS": "1"}, "", 2, 2,
                                  "KAUN_NUM_THREADS=2"),
    "torch's setting": ({}, TORCH_1, 1, 7, "torch.get_num_threads()"),
    "OMP over torch": ({"OMP_NUM_THREADS": "3"}, TORCH_1, 3, 7, "OMP_NUM_THREADS=3"),
    "forked": ({"KAUN_NUM_THREADS": "3"}, FORK, 3, 3, "KAUN_NUM_THREADS=3"),
}


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rule_in_a_fresh_process(rule: str) -> None:
    env, setup, n, torch_n, words = RULES[rule]
    if setup == FORK and not hasattr(os, "fork"):
        pytest.skip("no fork")
    got = _probe(setup, **env)
    assert (got["n"], got["torch"]) == (n, torch_n), got
    assert got["count"] == n and words in got["reason"], got
    assert got["warnings"] == [], got


def test_the_cli_says_the_count_and_why() -> None:
    r = subprocess.run([sys.executable, "-m", "kaun.cli", "cache"], capture_output=True, text=True,
                       check=False, env=_env(OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert "threads:  1 (OMP_NUM_THREADS=1) for a NumPy or Dask call" in r.stdout, r.stdout


@pytest.mark.parametrize("name,value", [("KAUN_NUM_THREADS", "banana"), ("KAUN_NUM_THREADS", "0"),
                                        ("KAUN_NUM_THREADS", "-2"), ("OMP_NUM_THREADS", "many")])
def test_a_bad_value_warns_and_is_ignored(name: str, value: str) -> None:
    """A value the variable does not take: a RuntimeWarning that names the variable, the value
    and what it takes; the count is then chosen as if it were unset."""
    got = _probe(**{name: value})
    assert got["n"] == got["count"] == CPUS, got
    takes = "a positive integer or 'auto'" if name == "KAUN_NUM_THREADS" else "a positive integer"
    assert len(got["warnings"]) == 1, got
    assert f"{name}={value!r}" in got["warnings"][0] and takes in got["warnings"][0], got


POOLS = """
import concurrent.futures, json, multiprocessing.pool, threading
from distributed import Client
from kaun import _kernels as K
from kaun._kernels.threads import describe

out = {"main": K.threads()}
with concurrent.futures.ThreadPoolExecutor(2) as ex:
    out["ThreadPoolExecutor"] = ex.submit(K.threads).result()
    out["ThreadPoolExecutor reason"] = ex.submit(describe).result().reason
with multiprocessing.pool.ThreadPool(2) as tp:
    out["ThreadPool"] = tp.apply(K.threads)
box = []
th = threading.Thread(target=lambda: box.append(K.threads()))
th.start()
th.join()
out["Thread"] = box[0]
with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
    out["distributed"] = c.submit(K.threads, pure=False).result()
print(json.dumps(out))
"""


@pytest.mark.parametrize("explicit", [None, "2"])
def test_a_worker_pools_threads_run_one_thread_each(explicit: str | None) -> None:
    """A thread of a worker pool runs its kernels on one thread (the pool is the parallelism);
    a thread of its own takes the automatic count; KAUN_NUM_THREADS overrides both."""
    env = {"KAUN_NUM_THREADS": explicit} if explicit else {}
    r = subprocess.run([sys.executable, "-c", POOLS], capture_output=True, text=True, check=False,
                       env=_env(**env), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.splitlines()[-1])
    pool = int(explicit) if explicit else 1
    own = int(explicit) if explicit else CPUS
    assert got["main"] == got["Thread"] == own, got
    assert got["ThreadPoolExecutor"] == got["ThreadPool"] == got["distributed"] == pool, got
    if not explicit:
        assert "worker pool's thread" in got["ThreadPoolExecutor reason"], got


DASK = """
import json, os, threading, time
import numpy as np, dask, dask.array as da
import kaun.activation as A
from kaun import _kernels as K

def count() -> int:
    return len(os.listdir("/proc/self/task"))

passed = []
def block(b):
    passed.append(K.threads())
    return A.gelu(b)

x = da.from_array(np.linspace(-3, 3, 32 * 65536, dtype=np.float32), chunks=65536)
before = count()
with dask.config.set(scheduler="threads", num_workers=8):
    x.map_blocks(block, dtype=np.float32, meta=np.empty(0, np.float32)).compute()
    y = A.gelu(x).compute()  # kaun's own Dask path
    after = count()
assert np.array_equal(y, A.gelu(x.compute()))
print(json.dumps({"passed": sorted(set(passed)), "grew": after - before}))
"""


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
@pytest.mark.parametrize("explicit", [None, "2"])
def test_dask_threads_do_not_each_open_a_team(explicit: str | None) -> None:
    """8 Dask worker threads on chunks large enough to split (2^16 elements each): each passes 1
    to the runtime, and the process holds the pool's 8 threads and no OpenMP team besides (each
    team's threads would stay, idle, after the compute). With KAUN_NUM_THREADS, its count."""
    from kaun import _kernels as K

    if not K.enabled():
        pytest.skip("no compiled kernels: no OpenMP teams")
    env = {"KAUN_NUM_THREADS": explicit} if explicit else {}
    r = subprocess.run([sys.executable, "-c", DASK], capture_output=True, text=True, check=False,
                       env=_env(**env), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout)
    if explicit:
        assert got["passed"] == [2], got
        return
    assert got["passed"] == [1], got
    assert got["grew"] <= 8, got  # the pool's threads, no team of their own


# -- the cgroup CPU quota, from files laid out as the kernel lays them out ----------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)


V1 = "12:cpuset:/\n4:cpu,cpuacct:{path}\n1:name=systemd:/\n"
V2 = "0::{path}\n"

# (the cgroup files, /proc/self/cgroup, the CPUs the quota allows)
QUOTAS: dict[str, tuple[dict[str, str], str, int | None]] = {
    "v2 no limit": ({"cpu.max": "max 100000\n"}, V2.format(path="/"), None),
    "v2 1.5 CPUs": ({"cpu.max": "150000 100000\n"}, V2.format(path="/"), 2),
    "v2 half a CPU": ({"cpu.max": "50000 100000\n"}, V2.format(path="/"), 1),
    "v2 a parent's limit": ({"cpu.max": "max 100000\n", "a/cpu.max": "100000 100000\n",
                             "a/b/cpu.max": "300000 100000\n"}, V2.format(path="/a/b"), 1),
    "v2 path not mounted": ({"cpu.max": "200000 100000\n"}, V2.format(path="/docker/0123"), 2),
    "v1 no limit": ({"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
                    V1.format(path="/"), None),
    "v1 3 CPUs": ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"},
                  V1.format(path="/"), 3),
    "v1 in a slice": ({"cpu/user.slice/cpu.cfs_quota_us": "250000\n",
                       "cpu/user.slice/cpu.cfs_period_us": "100000\n",
                       "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
                      V1.format(path="/user.slice"), 3),
    "no cgroup": ({}, "", None),
}


@pytest.mark.parametrize("case", list(QUOTAS))
def test_cgroup_quota(tmp_path: Path, case: str) -> None:
    files, proc, want = QUOTAS[case]
    _write(tmp_path / "fs", files)
    (tmp_path / "cgroup").write_text(proc)
    assert cgroup_cpus(tmp_path / "fs", tmp_path / "cgroup") == want
    # the count: the affinity's CPUs, or the quota where smaller
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    c = cpus(tmp_path / "fs", tmp_path / "cgroup")
    if want is not None and want < affinity:
        assert c.count == want and "quota" in c.reason
    else:
        assert c.count == affinity and "affinity" in c.reason
