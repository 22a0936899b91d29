"""Caches keyed by what a caller chooses (hyper-parameter values, shapes) stay bounded and keep
serving new keys (kaun._core.LRU): JAX compiles one function per form, not per value; the
dispatch fast paths, the checked prelu and glu calls and the compiled kernels' table evict the
least recently used past their bound; torch.compile's traces do not depend on them."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import kaun.activation as A
from kaun import _kernels as K
from kaun._backends import _jax
from kaun._core import ALL, FAST, LRU
from kaun.activation import _dispatch

jax.config.update("jax_enable_x64", True)

_COMPILES = [0]
jax.monitoring.register_event_duration_secs_listener(
    lambda event, _secs, **kw: _COMPILES.__setitem__(
        0, _COMPILES[0] + (event == "/jax/core/compile/backend_compile_duration")))


def test_lru_keeps_the_bound_and_the_recently_used() -> None:
    c = LRU(4)
    for i in range(4):
        c.put(i, str(i))
    assert c.hit(0) == "0"  # full: 0 is now the most recent
    c.put(4, "4")  # evicts 1, the least recently used
    assert list(c) == [2, 3, 0, 4] and len(c) == 4
    assert c.hit(1) is None and c.hit(1, "none") == "none"
    for i in range(5, 100):
        c.put(i, str(i))
        assert len(c) == 4
    assert list(c) == [96, 97, 98, 99]
    c.put(97, "again")  # stored again: the most recent
    assert list(c) == [96, 98, 99, 97] and c[97] == "again"


# (function, hyper-parameter, 200 values of one form)
SWEEPS = [
    ("elu", "alpha", [0.5 + i / 1000 for i in range(200)]),
    ("leaky_relu", "negative_slope", [0.01 + i / 1000 for i in range(200)]),
    ("squareplus", "b", [1.0 + i / 100 for i in range(200)]),
    ("hard_sigmoid", "alpha", [0.1 + i / 1000 for i in range(200)]),
    ("celu", "alpha", [0.3 + i / 997 for i in range(40)]),  # static: 80 functions, bounded
]


def _held(name: str) -> list[Any]:
    return [k for k in _jax._JITTED if k[0] == name]


@pytest.mark.parametrize("name,param,values", SWEEPS, ids=[s[0] for s in SWEEPS])
def test_a_jax_sweep_compiles_once(name: str, param: str, values: list[float]) -> None:
    """200 values of a hyper-parameter, as values and second derivatives: no compilation after
    the first value (the values are run-time arguments of one jitted function per form and
    order), no jitted function more. celu, whose hyper-parameter stays a constant (see
    _jax._STATIC): at most _MAX_JITTED kept, and those forgotten are freed."""
    fn = getattr(A, name)
    x = jnp.linspace(-3, 3, 256, dtype=jnp.float32)
    d2 = A.derivative(fn, order=2)
    fn(x, **{param: values[0]}).block_until_ready()
    d2(x, **{param: values[0]}).block_until_ready()
    before, held = _COMPILES[0], _held(name)
    first = weakref.ref(_jax._JITTED[held[0]])
    outs = [(fn(x, **{param: v}), d2(x, **{param: v})) for v in values]
    jax.block_until_ready(outs)
    assert len({np.asarray(y).tobytes() for y, _ in outs}) == len(values)  # each value its own
    if name not in _jax._STATIC:
        assert _COMPILES[0] == before, f"{_COMPILES[0] - before} compilations in a sweep of 200"
        assert _held(name) == held
    else:
        assert len(_jax._JITTED) <= _jax._MAX_JITTED
        gc.collect()
        assert first() is None  # the first value's function, evicted, is gone


def test_no_formula_computes_on_hyper_parameters_alone() -> None:
    """JAX's run-time scalars are float32 where x64 is off, where a Python float is float64:
    arithmetic on hyper-parameters alone belongs in Entry.prep (squareplus's 2 b/4 and -6 b/4
    were in its derivatives' formulas), so that JAX computes the same bits either way."""
    from kaun import _ir
    from kaun._core import ORDERS

    for e in ALL.values():
        for p in e.forms_params():
            for prec in (32, 64):
                for which in ORDERS if e.kind == "elementwise" else ORDERS[:2]:
                    g = _ir.trace(e.formula_of(which), e.nin, e.prep(p, prec), prec)
                    ops = [n.op for n in g.nodes if n.kind == "s" and n.op != "param"]
                    assert not ops, (e.key, p, prec, which, ops)


def test_the_fast_path_serves_a_new_key_after_a_sweep() -> None:
    """A sweep of 100 values fills the fast callables (torch tensors); a new value still gets
    one, the bound holds, and a key used all along stays."""
    entry = ALL["elu"]
    entry.fast.clear()
    x = torch.linspace(-3, 3, 1024)
    hot = (torch.Tensor, (0.5,))
    for i in range(100):
        A.elu(x, alpha=0.5)
        A.elu(x, alpha=1.0 + i / 1000)
        assert len(entry.fast) <= FAST
    assert hot in entry.fast
    new = 7.25
    want = A.elu(x, alpha=new)
    assert (torch.Tensor, (new,)) in entry.fast
    assert torch.equal(A.elu(x, alpha=new), want)  # and served by it, the same bits
    assert len(entry.fast) == FAST


@pytest.mark.parametrize("which", ["prelu", "glu"])
def test_checked_calls_keep_new_shapes(which: str) -> None:
    """prelu's and glu's checked (shape, dtype) keys: past the bound, a new shape still enters
    and the oldest leaves."""
    cache = _dispatch._PRELU_OK if which == "prelu" else _dispatch._GLU_OK
    cache.clear()
    alpha = torch.tensor([0.25])
    for n in range(1, 2 * FAST + 1):
        x = torch.randn(2 * n)
        if which == "prelu":
            A.prelu(x, alpha)
        else:
            A.glu(x)
        assert len(cache) <= FAST
    shapes = [k[4] if which == "prelu" else k[2] for k in cache]
    assert shapes[-1] == torch.Size([4 * FAST]) and torch.Size([2]) not in shapes


@pytest.mark.skipif(not K.enabled(), reason="no compiled kernels")
def test_compiled_kernels_evict_the_least_recently_used() -> None:
    """A NumPy sweep of 600 values: the kernel table holds at most 512, and the value in use
    throughout keeps its kernel object (the table used to be emptied wholesale at 512)."""
    entry = ALL["elu"]
    x = np.linspace(-3, 3, 64, dtype=np.float32)
    A.elu(x, alpha=0.5)
    c0 = K.compiled(entry, (0.5,), "float32")
    for i in range(600):
        A.elu(x, alpha=1.0 + i / 1000)
        A.elu(x, alpha=0.5)
        assert len(K._COMPILED) <= K._MAX_COMPILED
    assert K.compiled(entry, (0.5,), "float32") is c0
    assert K.compiled(entry, (1.0 + 599 / 1000,), "float32") is not None


# dynamo builds an autograd.Function of its own under a DeprecationWarning (torch 2.13)
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_torch_compile_survives_eager_sweeps() -> None:
    """A fullgraph torch.compile'd function calling elu, between eager calls of elu with 12 new
    values: no recompilation (the dispatch caches are not part of what dynamo traces; it used to
    fail at the 8th)."""
    import torch._dynamo.utils as dynamo_utils

    torch._dynamo.reset()
    ALL["elu"].fast.clear()  # (room for new keys: a full dict never changed, before)
    x = torch.randn(64)
    f = torch.compile(lambda t: A.elu(t, alpha=0.5), fullgraph=True, backend="eager")
    want = f(x)
    graphs = dynamo_utils.counters["stats"]["unique_graphs"]
    for i in range(12):
        A.elu(x, alpha=1.0 + i)
        assert torch.equal(f(x), want)
    assert dynamo_utils.counters["stats"]["unique_graphs"] == graphs
