"""Threads and repetition: the functions called from 8 threads at once on shared inputs give the
serial results, starting from a cold dispatch cache; 10^5 calls do not grow memory."""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import kaun.activation as A
from kaun import _backends
from kaun.activation import _dispatch

jax.config.update("jax_enable_x64", True)

THREADS = 8
ROUNDS = 3  # each thread runs every function this many times, in its own shuffled order
KW: dict[str, dict[str, Any]] = {
    "leaky_relu": {"negative_slope": 0.2},
    "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
    "elu": {"alpha": 0.7},
    "celu": {"alpha": 1.5},
    "squareplus": {"b": 2.0},
}


def _values(n: int = 512) -> np.ndarray:
    rng = np.random.default_rng(7)
    v = rng.standard_normal(n) * np.exp(rng.uniform(-10, 10, n))
    v[:8] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, -3.0, 6.0]
    return v


LIBS: dict[str, tuple[Callable[[np.ndarray], Any], Callable[[Any], np.ndarray]]] = {
    "numpy": (lambda a: a, np.asarray),
    "torch": (torch.from_numpy, lambda y: y.detach().numpy()),
    "jax": (jnp.asarray, np.asarray),
}


def _calls(make: Callable[[np.ndarray], Any]) -> list[tuple[str, Callable[[], Any]]]:
    """(label, thunk) for every function on shared float32 and float64 inputs (and prelu with a
    shared alpha array, glu along both axes of a 2-d input)."""
    out: list[tuple[str, Callable[[], Any]]] = []
    for dt in (np.float32, np.float64):
        x = make(_values().astype(dt))
        x2 = make(_values().astype(dt).reshape(16, 32))
        alpha = make(np.linspace(-1, 1, 32).astype(dt))
        for name in A.names():
            fn = getattr(A, name)
            label = f"{name}/{np.dtype(dt).name}"
            if name == "prelu":
                out.append((label, lambda fn=fn, x=x: fn(x, 0.25)))
                out.append((label + "/array", lambda fn=fn, x2=x2, a=alpha: fn(x2, a)))
            elif name == "glu":
                out.append((label, lambda fn=fn, x2=x2: fn(x2)))
                out.append((label + "/axis0", lambda fn=fn, x2=x2: fn(x2, axis=0)))
            else:
                kw = KW.get(name, {})
                out.append((label, lambda fn=fn, x=x, kw=kw: fn(x, **kw)))
    return out


def _cold() -> None:
    """Forget which backend serves which type (kaun.activation._dispatch._CACHE), and any
    per-entry cache that the torch adapter keeps (functools caches, if it has them), so that
    the threads race to fill them. (JAX's compiled functions stay: recompiling 25 functions in
    8 threads would take minutes.)"""
    _dispatch._CACHE.clear()
    torch_mod = getattr(_backends, "_torch", None)
    for attr in dir(torch_mod) if torch_mod is not None else ():
        f = getattr(torch_mod, attr)
        if callable(f) and hasattr(f, "cache_clear") and getattr(f, "__module__", "") == torch_mod.__name__:
            f.cache_clear()


@pytest.mark.parametrize("lib", list(LIBS))
def test_threads_give_the_serial_results(lib: str) -> None:
    make, read = LIBS[lib]
    calls = _calls(make)
    serial = {label: read(f()).copy() for label, f in calls}
    _cold()
    barrier = threading.Barrier(THREADS)
    errors: list[str] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        order = [c for _ in range(ROUNDS) for c in calls]
        random.Random(seed).shuffle(order)
        barrier.wait()
        for label, f in order:
            try:
                got = read(f())
                ok = got.dtype == serial[label].dtype and np.array_equal(
                    got, serial[label], equal_nan=True
                )
                if not ok:
                    with lock:
                        errors.append(f"thread {seed}: {label} differs from the serial result")
            except Exception as e:  # noqa: BLE001 - a failure in a thread must reach the test
                with lock:
                    errors.append(f"thread {seed}: {label} raised {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, "\n".join(errors[:20])


def test_torch_autograd_in_threads() -> None:
    """Backward through kaun's autograd Functions from 8 threads gives the serial gradients."""
    x0 = torch.from_numpy(_values(256))
    names = [n for n in A.names() if n not in ("prelu", "glu")]

    def grads() -> dict[str, np.ndarray]:
        out = {}
        for n in names:
            x = x0.clone().requires_grad_(True)
            getattr(A, n)(x, **KW.get(n, {})).sum().backward()
            assert x.grad is not None
            out[n] = x.grad.numpy().copy()
        return out

    serial = grads()
    _cold()
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = grads()
        except Exception as e:  # noqa: BLE001
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i, r in enumerate(results):
        assert isinstance(r, dict), f"thread {i}: {r!r}"
        for n in names:
            assert np.array_equal(r[n], serial[n], equal_nan=True), f"thread {i}: grad of {n}"


def test_repeated_calls_do_not_grow_memory() -> None:
    """10^5 calls on a small NumPy array: 400 of each of the 25 functions, then 30000 each of
    relu, sigmoid and leaky_relu (the dispatch and validation path that every function shares;
    the cheap ones, so that the test stays under a minute with tracemalloc on). The memory that
    tracemalloc sees after them is within 64 KiB of what it saw after a warm-up (results are
    dropped at once; anything kept per call, a cache keyed on the array or on the call, would
    grow by at least ~100 bytes x 10^5 = 10 MB)."""
    x = np.linspace(-5, 5, 8, dtype=np.float32)
    alpha = np.full(8, 0.1, np.float32)
    fs: list[Callable[[], Any]] = []
    for name in A.names():
        fn = getattr(A, name)
        if name == "prelu":
            fs.append(lambda fn=fn: fn(x, alpha))
        else:
            kw = KW.get(name, {})
            fs.append(lambda fn=fn, kw=kw: fn(x, **kw))
    cheap = [
        lambda: A.relu(x),
        lambda: A.sigmoid(x),
        lambda: A.leaky_relu(x, negative_slope=0.2),
    ]

    def run(n: int, group: list[Callable[[], Any]]) -> int:
        for _ in range(n):
            for f in group:
                f()
        return n * len(group)

    run(10, fs)  # warm-up: imports, caches, NumPy's own first-call allocations
    gc.collect()
    tracemalloc.start()
    try:
        run(10, fs)
        run(10, cheap)
        gc.collect()
        before = tracemalloc.take_snapshot()
        calls = run(400, fs) + run(30000, cheap)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert calls == 10**5
    stats = after.compare_to(before, "lineno")
    grown = sum(s.size_diff for s in stats)
    top = "\n".join(str(s) for s in stats[:5])
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 10^5 calls:\n{top}"
