"""kaun on a real dask.distributed cluster: many chunks, lazy until compute, equal to NumPy.

The cluster runs on loopback only (host 127.0.0.1, no dashboard), with two single-threaded
workers. With ``processes=False`` the workers are threads of this process, so a ``map_blocks``
side effect (a counter) is visible here: it shows that building ``A.gelu(x)`` computes nothing,
and that ``.compute()`` runs each chunk exactly once. A second test uses worker processes, where
each chunk is pickled to another interpreter that imports kaun by itself.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

import dask.array
import distributed
import numpy as np
import pytest

import kaun.activation as A

# dask and distributed have no type annotations: seen as Any, which mypy --strict accepts
da: Any = dask.array
Client: Any = distributed.Client
LocalCluster: Any = distributed.LocalCluster

CHUNKS = 64
N = CHUNKS * 1000
FUNCS: list[tuple[str, dict[str, Any], str]] = [
    ("gelu", {}, "float32"),
    ("gelu", {}, "float64"),
    ("silu", {}, "float32"),
    ("mish", {}, "float64"),
    ("softplus", {}, "float32"),
    ("leaky_relu", {"negative_slope": 0.2}, "float64"),
    ("squareplus", {"b": 2.0}, "float32"),
    ("hard_sigmoid", {}, "float64"),
    ("log_sigmoid", {}, "float32"),
    ("celu", {"alpha": 0.5}, "float64"),
]


# Even without a dashboard, the scheduler serves its health and metrics routes over HTTP, on port
# 8787 of every interface unless told otherwise; with 8787 taken (another cluster on this machine)
# it moves and warns, an error here. A free port on loopback avoids both the fixed port and the
# exposure. The scheduler and worker ports are free ports already (LocalCluster's default 0).
_NO_FIXED_PORT = {"dashboard_address": "127.0.0.1:0"}


def _data() -> np.ndarray:
    rng = np.random.default_rng(6)
    x = rng.standard_normal(N) * 8.0
    x[:4] = [0.0, -0.0, 1e30, -1e30]
    return x


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        # threads need the in-process transport by default, which takes no host; TCP on
        # loopback keeps the scheduler and workers talking over 127.0.0.1 as a real cluster.
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
        scheduler_kwargs=_NO_FIXED_PORT,
    )
    c = Client(cluster, set_as_default=False)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


# Chunks seen, per test. The graph is pickled to the scheduler even with thread workers, so the
# counter is a module-level function (pickled by reference: the workers, threads of this
# process, find this very module and its counts) rather than an object holding a lock.
_SEEN: dict[str, int] = {}
_LOCK = threading.Lock()


def _count(block: np.ndarray, key: str) -> np.ndarray:
    with _LOCK:
        _SEEN[key] = _SEEN.get(key, 0) + 1
    return block


def test_cluster_is_on_loopback(client: Any) -> None:
    info = client.scheduler_info()
    assert len(info["workers"]) == 2
    for addr in [client.scheduler.address, *info["workers"]]:
        assert "127.0.0.1" in addr, addr


@pytest.mark.parametrize(("name", "params", "dtype"), FUNCS, ids=[f"{f}-{d}" for f, _, d in FUNCS])
def test_lazy_and_equal_to_numpy(
    client: Any, name: str, params: dict[str, Any], dtype: str
) -> None:
    fn = A.get(name)
    xn = _data().astype(dtype)
    key = f"{name}-{dtype}"
    _SEEN[key] = 0
    # meta given, so that dask does not call the counter on an empty array to infer it
    meta = np.empty((0,), dtype=xn.dtype)
    x = da.from_array(xn, chunks=N // CHUNKS).map_blocks(_count, key=key, dtype=xn.dtype, meta=meta)
    assert x.numblocks == (CHUNKS,)

    y = fn(x, **params)
    dy = A.derivative(fn)(x, **params)
    # Still a graph: nothing has run, and the result keeps the chunks and the dtype.
    assert isinstance(y, da.Array) and isinstance(dy, da.Array)
    assert _SEEN[key] == 0
    assert y.chunks == x.chunks and y.dtype == xn.dtype and dy.dtype == xn.dtype
    assert len(y.__dask_graph__()) >= 2 * CHUNKS  # one task per chunk for kaun, one for input

    got, dgot = client.compute([y, dy], sync=True)
    assert _SEEN[key] == CHUNKS  # each input chunk once, shared by y and dy, in the cluster
    want = fn(xn, **params)
    dwant = A.derivative(fn)(xn, **params)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dgot, dwant)


def test_glu_and_prelu_over_chunks(client: Any) -> None:
    xn = _data().reshape(CHUNKS, -1)
    x = da.from_array(xn, chunks=(1, -1))  # 64 chunks along axis 0; glu splits axis 1
    y = A.glu(x, axis=1)
    assert isinstance(y, da.Array)
    np.testing.assert_array_equal(client.compute(y, sync=True), A.glu(xn, axis=1))

    alpha = np.linspace(0.0, 0.5, xn.shape[1])
    p = A.prelu(x, da.from_array(alpha, chunks=-1))
    assert isinstance(p, da.Array) and p.shape == xn.shape
    np.testing.assert_array_equal(client.compute(p, sync=True), A.prelu(xn, alpha))


def test_worker_processes() -> None:
    """Chunks pickled to two worker processes, which import kaun themselves."""
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs=_NO_FIXED_PORT,
        ) as cluster,
        Client(cluster, set_as_default=False) as c,
    ):
        xn = _data()
        x = da.from_array(xn, chunks=N // CHUNKS)
        fns = [A.gelu, A.mish, A.softplus]
        got = c.compute([f(x) for f in fns], sync=True)
        for f, g in zip(fns, got, strict=True):
            np.testing.assert_array_equal(g, f(xn), err_msg=f.__name__)
        # the work ran in two other processes, which imported kaun to do it
        pids = c.run(os.getpid)
        assert len(pids) == 2 and os.getpid() not in pids.values()
        imported = c.run(lambda: "kaun.activation" in sys.modules)
        assert any(imported.values()), imported
