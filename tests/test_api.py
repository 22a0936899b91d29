"""The public face: names, signatures, aliases, laziness, and the results the issues name."""

from __future__ import annotations

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest

import kaun.activation as A

SPEC = [
    "relu", "sigmoid", "tanh", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "prelu",
    "elu", "selu", "celu", "gelu", "gelu_approx", "silu", "swish", "hard_silu", "hard_swish",
    "mish", "softplus", "softsign", "squareplus", "log_sigmoid", "glu", "sparse_plus",
    "sparse_sigmoid",
]
# beyond the spec (kaun.activation._core.EXTRAS): in __all__, listed by names(extras=True) only
EXTRAS = ["swiglu", "geglu", "geglu_approx", "reglu", "relu_squared", "quick_gelu"]
DEFAULTS = {
    "leaky_relu": {"negative_slope": 0.01},
    "hard_sigmoid": {"alpha": 1 / 6, "beta": 0.5},
    "elu": {"alpha": 1.0},
    "celu": {"alpha": 1.0},
    "squareplus": {"b": 4.0},
    "glu": {"axis": -1},
}


def test_exactly_the_spec_functions() -> None:
    assert set(SPEC) <= set(A.__all__)
    assert set(A.__all__) - set(SPEC) == {"derivative", "get", "names", "info", *EXTRAS}
    assert A.names() == SPEC
    assert A.names(extras=True) == SPEC + EXTRAS


def test_aliases_are_the_same_objects() -> None:
    assert A.swish is A.silu
    assert A.hard_swish is A.hard_silu


@pytest.mark.parametrize("name", SPEC)
def test_signature(name: str) -> None:
    sig = inspect.signature(getattr(A, name))
    params = list(sig.parameters.values())
    assert params[0].name == "x" and params[0].kind is inspect.Parameter.POSITIONAL_ONLY
    rest = {p.name: p for p in params[1:]}
    if name == "prelu":
        assert list(rest) == ["alpha"] and rest["alpha"].default is inspect.Parameter.empty
        return
    assert {k: p.default for k, p in rest.items()} == DEFAULTS.get(name, {})
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest.values())
    doc = getattr(A, name).__doc__
    assert doc and "Derivative" in doc and ">>>" in doc


def test_import_leaves_torch_and_jax_out() -> None:
    code = (
        "import sys, numpy as np, kaun.activation as A; A.gelu(np.ones(3)); A.glu(np.ones(4));"
        "A.gelu(1.0); A.derivative(A.mish)(np.ones(2));"
        "bad = [m for m in ('torch', 'jax', 'jaxlib', 'dask', 'scipy', 'keras', 'flax', 'equinox',"
        " 'onnx', 'onnxruntime', 'onnxscript', 'optax') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("module", "allowed"), [
    ("kaun.flax", {"jax", "jaxlib", "flax", "optax"}),
    ("kaun.equinox", {"jax", "jaxlib", "equinox"}),
    ("kaun.nn", {"torch"}),
])
def test_each_adapter_imports_only_its_framework(module: str, allowed: set[str]) -> None:
    """kaun.flax, kaun.equinox, kaun.nn: their framework, none of the others (kaun.keras imports
    keras and its backend, which Keras chooses)."""
    frameworks = {"torch", "jax", "jaxlib", "keras", "flax", "equinox", "onnx", "onnxruntime",
                  "onnxscript", "optax"}
    code = (f"import sys, {module};"
            f"print(sorted(m for m in {sorted(frameworks)!r} if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(eval(r.stdout))  # noqa: S307 (our own printed list)
    assert loaded - allowed == set(), loaded


def test_kaun_keras_imports_keras_with_its_backend_only() -> None:
    code = ("import os, sys; os.environ['KERAS_BACKEND'] = 'jax'; import kaun.keras;"
            "bad = [m for m in ('torch', 'flax', 'equinox', 'onnx', 'onnxruntime') if m in sys.modules];"
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_doctests() -> None:
    import doctest

    from kaun.activation import _defs, _derivative, _registry

    for mod in (_defs, _derivative, _registry):
        r = doctest.testmod(mod, extraglobs={"A": A, "np": np}, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert r.attempted > 0 and r.failed == 0, mod.__name__


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_issue_examples(xp, dtype: str) -> None:  # type: ignore[no-untyped-def]
    if dtype not in xp.dtypes:
        pytest.skip(f"{xp} has no {dtype}")
    tol = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 1e-6, "float64": 1e-15}[dtype]

    def check(fn, vals, want, **kw):  # type: ignore[no-untyped-def]
        y = xp.call(fn, xp.asarray(vals, dtype), **kw)
        assert xp.kind(y) and xp.dtype_of(y) == dtype
        np.testing.assert_allclose(xp.read(y), want, rtol=tol, atol=tol)

    check(A.hard_sigmoid, [-3, -1, 0, 1, 3], [0, 1 / 3, 0.5, 2 / 3, 1])
    check(A.sparse_sigmoid, [-2, -0.5, 0.5, 2], [0, 0.25, 0.75, 1])
    check(A.glu, [1, 2, -1, 0], [_sig(-1), 1])


def test_issue_examples_float32_tails(xp) -> None:  # type: ignore[no-untyped-def]
    f32 = "float32"

    def one(fn, v):  # type: ignore[no-untyped-def]
        return float(xp.read(xp.call(fn, xp.asarray([v], f32)))[0])

    assert one(A.softplus, 1000.0) == 1000.0
    assert one(A.log_sigmoid, -1000.0) == -1000.0
    assert one(A.gelu, -10.0) == pytest.approx(-7.619853e-23, rel=1e-5)
    assert one(A.squareplus, -1e4) == pytest.approx(1e-4, rel=1e-6)


def test_python_numbers_and_lists() -> None:
    y = A.sigmoid(0.0)  # a NumPy scalar, as np.exp(0.0) gives (docs/conventions.md)
    assert type(y) is np.float64 and y == 0.5
    assert type(A.relu(3)) is np.int64
    y = A.softplus([1, 2, 3])
    assert y.dtype == np.float64
    r = A.relu([-1, 2])
    assert r.dtype.kind == "i" and r.tolist() == [0, 2]


def test_fast_path_keeps_every_check() -> None:
    """A second call takes the per-type fast path (``_dispatch.apply``): what the first call
    checked must still be checked, and results must equal the checked path's."""
    import torch

    from kaun.activation._defs import ENTRIES

    x = torch.tensor([-2.0, -0.0, 0.0, 3.0])
    for _ in range(2):
        A.leaky_relu(x, negative_slope=0.2)
        A.relu(x)
    assert ENTRIES["leaky_relu"].fast and ENTRIES["relu"].fast
    with pytest.raises(TypeError, match="negative_slope"):
        A.leaky_relu(x, negative_slope=True)  # True == 1.0, but not a real number here
    # a zero slope is never cached: -0.0 and 0.0 give their own signed zeros
    for s in (0.0, -0.0, 0.0):
        got = A.leaky_relu(x, negative_slope=s)
        want = A.leaky_relu(x.numpy(), negative_slope=s)
        assert np.array_equal(np.signbit(got.numpy()), np.signbit(want))
    # the dtype is checked on every call
    assert A.relu(torch.tensor([-1, 2])).tolist() == [0, 2]
    with pytest.raises(TypeError, match="kaun.activation.sigmoid"):
        A.sigmoid(x)
        A.sigmoid(torch.tensor([1, 2]))
    # a float64 call does not open the door to a float32-range error
    A.elu(x.double(), alpha=1e300)
    A.elu(x.double(), alpha=1e300)
    with pytest.raises(ValueError, match="alpha"):
        A.elu(x, alpha=1e300)
