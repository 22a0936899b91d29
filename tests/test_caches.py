"""Caches keyed by what a caller chooses (hyper-parameter values, shapes) stay bounded and keep
serving new keys (kaun._core.LRU): the dispatch fast paths, the checked prelu and glu calls and
the compiled kernels' table evict the least recently used past their bound; torch.compile's
traces do not depend on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kaun.activation as A
from kaun import _kernels as K
from kaun._core import ALL, FAST, LRU
from kaun.activation import _dispatch


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
