"""A.get and A.names: functions by name, aliases of other libraries, bound hyper-parameters."""

from __future__ import annotations

import functools

import jax.nn
import numpy as np
import pytest
import torch

import kaun.activation as A
from kaun.activation._defs import ENTRIES
from kaun.activation._defs import EXTRAS as EXTRA_ENTRIES
from kaun.activation._registry import ALIASES

SPEC_ORDER = [
    "relu", "sigmoid", "tanh", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "prelu",
    "elu", "selu", "celu", "gelu", "gelu_approx", "silu", "swish", "hard_silu", "hard_swish",
    "mish", "softplus", "softsign", "squareplus", "log_sigmoid", "glu", "sparse_plus",
    "sparse_sigmoid",
]
EXTRAS = ["swiglu", "geglu", "geglu_approx", "reglu", "relu_squared", "quick_gelu"]
X = np.linspace(-4.0, 4.0, 17)


def test_names_are_the_spec_in_order() -> None:
    assert A.names() == SPEC_ORDER
    helpers = ("derivative", "get", "names", "info")
    assert [n for n in A.__all__ if n not in helpers][:len(SPEC_ORDER)] == SPEC_ORDER
    assert [n for n in A.__all__ if n not in helpers][len(SPEC_ORDER):] == EXTRAS
    assert A.names(extras=True) == SPEC_ORDER + EXTRAS
    assert A.names() is not A.names()  # a fresh list: callers may change it
    got = A.names()
    got.clear()
    assert len(A.names()) == 25


@pytest.mark.parametrize("name", SPEC_ORDER)
def test_get_returns_the_public_function(name: str) -> None:
    assert A.get(name) is getattr(A, name)


def test_spec_aliases_are_the_same_objects() -> None:
    assert A.get("swish") is A.silu is A.swish
    assert A.get("hard_swish") is A.hard_silu is A.hard_swish


def test_spelling_is_forgiven() -> None:
    assert A.get("GELU") is A.gelu
    assert A.get("  leaky-relu ") is A.leaky_relu
    assert A.get("Log-Sigmoid") is A.log_sigmoid
    assert A.get("GELU_APPROX") is A.gelu_approx


def test_every_alias_points_at_a_function() -> None:
    for alias, target in ALIASES.items():
        assert target in ENTRIES or target in EXTRA_ENTRIES, alias
        assert alias == alias.strip().lower().replace("-", "_"), alias  # reachable by get()
        assert alias != target, alias
        assert A.get(alias) is A.get(target), alias


# torch.nn's activation classes: their lower-cased names reach the same function.
TORCH_CLASSES = {
    "ReLU": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU6": "relu6",
    "LeakyReLU": "leaky_relu", "Hardtanh": "hard_tanh", "Hardsigmoid": "hard_sigmoid",
    "PReLU": "prelu", "ELU": "elu", "SELU": "selu", "CELU": "celu", "GELU": "gelu",
    "SiLU": "silu", "Hardswish": "hard_silu", "Mish": "mish", "Softplus": "softplus",
    "Softsign": "softsign", "LogSigmoid": "log_sigmoid", "GLU": "glu",
}


@pytest.mark.parametrize(("cls", "name"), TORCH_CLASSES.items())
def test_torch_class_names(cls: str, name: str) -> None:
    assert hasattr(torch.nn, cls)
    fn = A.get(cls)
    assert fn is getattr(A, name)
    if name == "prelu":
        return
    x = torch.tensor(X)
    if name == "glu":
        x = x[:16]
    theirs = getattr(torch.nn, cls)()(x)
    np.testing.assert_allclose(fn(x).numpy(), theirs.numpy(), rtol=1e-12, atol=1e-12)


# jax.nn's function names (also the spellings that differ from the spec: soft_sign, ...).
JAX_NAMES = {
    "relu": "relu", "sigmoid": "sigmoid", "relu6": "relu6", "leaky_relu": "leaky_relu",
    "hard_tanh": "hard_tanh", "hard_sigmoid": "hard_sigmoid", "elu": "elu", "selu": "selu",
    "celu": "celu", "silu": "silu", "swish": "silu", "hard_silu": "hard_silu",
    "hard_swish": "hard_silu", "mish": "mish", "softplus": "softplus", "soft_sign": "softsign",
    "squareplus": "squareplus", "log_sigmoid": "log_sigmoid", "glu": "glu",
    "sparse_plus": "sparse_plus", "sparse_sigmoid": "sparse_sigmoid",
}


@pytest.mark.parametrize(("jname", "name"), JAX_NAMES.items())
def test_jax_nn_names(jname: str, name: str) -> None:
    theirs = getattr(jax.nn, jname)
    fn = A.get(jname)
    assert fn is getattr(A, name)
    x = X[:16] if name == "glu" else X
    np.testing.assert_allclose(
        np.asarray(fn(x)), np.asarray(theirs(x)), rtol=1e-6, atol=1e-7
    )


def test_gelu_tanh_aliases() -> None:
    for alias in ["gelu_tanh", "approximate_gelu", "gelu_new", "gelu_pytorch_tanh"]:
        assert A.get(alias) is A.gelu_approx
    np.testing.assert_allclose(
        A.get("gelu_tanh")(X),
        torch.nn.functional.gelu(torch.tensor(X), approximate="tanh").numpy(),
        rtol=1e-12, atol=1e-15,
    )


def test_bound_hyper_parameters() -> None:
    f = A.get("leaky_relu", negative_slope=0.2)
    assert isinstance(f, functools.partial)
    np.testing.assert_array_equal(f(X), A.leaky_relu(X, negative_slope=0.2))
    assert not np.array_equal(f(X), A.leaky_relu(X))
    g = A.get("LeakyReLU", negative_slope=0.2)
    np.testing.assert_array_equal(g(X), f(X))
    np.testing.assert_array_equal(
        A.get("hard_sigmoid", alpha=0.25)(X), A.hard_sigmoid(X, alpha=0.25, beta=0.5)
    )
    np.testing.assert_array_equal(A.get("prelu", alpha=0.3)(X), A.prelu(X, 0.3))
    np.testing.assert_array_equal(A.get("glu", axis=0)(X[:16].reshape(4, 4)),
                                  A.glu(X[:16].reshape(4, 4), axis=0))
    # checked when called, with the function's own message
    with pytest.raises(ValueError, match=r"kaun.activation.squareplus: b must be >= 0"):
        A.get("squareplus", b=-1.0)(X)


def test_wrong_hyper_parameter_names() -> None:
    with pytest.raises(TypeError, match=r"kaun.activation.get: relu takes no hyper-parameters"):
        A.get("relu", alpha=1.0)
    with pytest.raises(TypeError, match=r"leaky_relu takes \['negative_slope'\], got \['slope'\]"):
        A.get("leaky_relu", slope=0.1)


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown activation 'gleu'; did you mean 'glu'"):
        A.get("gleu")
    with pytest.raises(ValueError, match=r"unknown activation 'softmax'"):
        A.get("softmax")
    with pytest.raises(ValueError, match=r"unknown activation 'xyzzy'$"):
        A.get("xyzzy")
    with pytest.raises(TypeError, match=r"kaun.activation.get: name must be a str, got int"):
        A.get(3)  # type: ignore[arg-type]


# Every function with hyper-parameters, configured away from its defaults.
CONFIGURED: dict[str, dict[str, object]] = {
    "leaky_relu": {"negative_slope": 0.2},
    "hard_sigmoid": {"alpha": 0.25, "beta": 0.4},
    "elu": {"alpha": 0.5},
    "celu": {"alpha": 2.0},
    "squareplus": {"b": 1.5},
    "glu": {"axis": 0},
    "prelu": {"alpha": 0.3},
}


def _bits(y: object) -> list[bytes]:
    ys = y if isinstance(y, tuple) else (y,)
    return [np.asarray(v.numpy() if isinstance(v, torch.Tensor) else v).tobytes() for v in ys]


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("name", list(CONFIGURED))
def test_derivative_of_a_configured_function(name: str, lib: str) -> None:
    """A.derivative(A.get(name, **params)) (and its orders 2 and 3) is the derivative with those
    hyper-parameters: the bits of A.derivative(f)(x, **params); a call's own keyword wins over
    the bound one, as for functools.partial."""
    kw = CONFIGURED[name]
    conf = A.get(name, **kw)
    fn = getattr(A, name)
    x = np.linspace(-4.0, 4.0, 16).reshape(4, 4)
    g = np.linspace(-1.0, 2.0, 8).reshape(2, 4)  # glu's cotangent (axis 0)
    alpha = np.full((4, 4), 0.3)
    if lib == "torch":
        x, g, alpha = torch.tensor(x), torch.tensor(g), torch.tensor(alpha)
    if name == "glu":
        got, want = A.derivative(conf)(x, g), A.derivative(fn)(x, g, axis=0)
        assert _bits(got) == _bits(want) != _bits(A.derivative(fn)(x, g.T.reshape(4, 2)))
        return
    if name == "prelu":
        assert _bits(A.derivative(conf)(x, x)) == _bits(A.derivative(fn)(x, 0.3, x))
        arr = A.derivative(A.get("prelu", alpha=alpha))
        assert _bits(arr(x, x)) == _bits(A.derivative(fn)(x, alpha, x))
        return
    for order in (1, 2, 3):
        got = A.derivative(conf, order=order)(x)
        want = A.derivative(fn, order=order)(x, **kw)
        assert _bits(got) == _bits(want), order
    assert _bits(A.derivative(conf)(x)) != _bits(A.derivative(fn)(x))  # the configuration counts
    other = {next(iter(kw)): 0.75}
    assert _bits(A.derivative(conf)(x, **other)) == _bits(A.derivative(fn)(x, **{**kw, **other}))


def test_derivative_of_a_partial_it_cannot_read() -> None:
    with pytest.raises(TypeError, match=r"derivative: fn binds \['slope'\], which kaun\.activation\."
                       r"leaky_relu does not take"):
        A.derivative(functools.partial(A.leaky_relu, slope=0.2))
    with pytest.raises(TypeError, match=r"derivative: fn must be one of kaun.activation's functions"):
        A.derivative(functools.partial(A.gelu, X))  # x bound: not a configuration
    with pytest.raises(TypeError, match=r"derivative: fn must be one of kaun.activation's functions"):
        A.derivative(functools.partial(np.tanh))
    with pytest.raises(ValueError, match=r"order 2 is for the elementwise functions"):
        A.derivative(A.get("glu", axis=0), order=2)


# Hugging Face's ACT2FN names (transformers.activations) for the functions beyond the spec, and
# the other spellings: gelu_new and gelu_pytorch_tanh are the tanh form, relu2 the squared relu
@pytest.mark.parametrize(("alias", "name"), [
    ("gelu_new", "gelu_approx"), ("gelu_pytorch_tanh", "gelu_approx"), ("quick_gelu", "quick_gelu"),
    ("relu2", "relu_squared"), ("squared_relu", "relu_squared"), ("Squared-ReLU", "relu_squared"),
    ("swiglu", "swiglu"), ("GeGLU", "geglu"), ("geglu_tanh", "geglu_approx"), ("ReGLU", "reglu"),
])
def test_extras_by_name(alias: str, name: str) -> None:
    assert A.get(alias) is getattr(A, name)


def test_extras_get_binds_axis_and_suggests() -> None:
    x = X[:16].reshape(4, 4)
    np.testing.assert_array_equal(A.get("swiglu", axis=0)(x), A.swiglu(x, axis=0))
    with pytest.raises(ValueError, match=r"did you mean 'swiglu'"):
        A.get("swiglue")
