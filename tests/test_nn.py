"""kaun.nn: one torch.nn.Module per function, calling kaun.activation."""

from __future__ import annotations

import copy
import inspect
import io
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

import kaun.activation as A
import kaun.nn as KN

# (module, the function call it must equal) for every module with non-default hyper-parameters
WITH_PARAMS: list[tuple[Any, Any]] = [
    (KN.LeakyReLU(negative_slope=0.2), lambda x: A.leaky_relu(x, negative_slope=0.2)),
    (KN.HardSigmoid(alpha=0.25, beta=0.4), lambda x: A.hard_sigmoid(x, alpha=0.25, beta=0.4)),
    (KN.ELU(alpha=0.5), lambda x: A.elu(x, alpha=0.5)),
    (KN.CELU(alpha=2.0), lambda x: A.celu(x, alpha=2.0)),
    (KN.Squareplus(b=1.5), lambda x: A.squareplus(x, b=1.5)),
    (KN.GLU(axis=0), lambda x: A.glu(x, axis=0)),
]


def _x(dtype: torch.dtype = torch.float64, shape: tuple[int, ...] = (4, 6)) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * 4).to(dtype)


def test_one_module_per_function() -> None:
    assert list(KN.MODULES) == A.names(extras=True)
    assert KN.Swish is KN.SiLU and KN.HardSwish is KN.HardSiLU
    for name, cls in KN.MODULES.items():
        assert issubclass(cls, torch.nn.Module)
        assert cls.__name__ in KN.__all__
        # the registry knows the class name too (A.get("LeakyReLU"), A.get("GELUApprox"), ...)
        assert A.get(cls.__name__) is A.get(name)


@pytest.mark.parametrize("name", [n for n in A.names() if n != "prelu"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_default_module_equals_function(name: str, dtype: torch.dtype) -> None:
    m = KN.MODULES[name]()
    x = _x(dtype)
    y = m(x)
    want = A.get(name)(x)
    assert y.dtype == dtype and y.shape == want.shape
    torch.testing.assert_close(y, want, rtol=0, atol=0)
    assert list(m.parameters()) == [] and m.state_dict() == {}


@pytest.mark.parametrize(("module", "fn"), WITH_PARAMS, ids=lambda v: type(v).__name__)
def test_hyper_parameters(module: torch.nn.Module, fn: Any) -> None:
    x = _x()
    torch.testing.assert_close(module(x), fn(x), rtol=0, atol=0)
    # the default module differs, so the parameter is really used
    default = type(module)()
    assert not torch.equal(default(x), module(x))


def test_repr() -> None:
    """A kaun.nn module prints as kaun's (``kaun.nn.SiLU()``), not as torch's namesake."""
    assert repr(KN.LeakyReLU(negative_slope=0.2)) == "kaun.nn.LeakyReLU(negative_slope=0.2)"
    assert repr(KN.LeakyReLU()) == "kaun.nn.LeakyReLU(negative_slope=0.01)"
    assert repr(KN.Squareplus(b=4.0)) == "kaun.nn.Squareplus(b=4.0)"
    assert repr(KN.HardSigmoid(alpha=0.2)) == "kaun.nn.HardSigmoid(alpha=0.2, beta=0.5)"
    assert repr(KN.ELU(alpha=2)) == "kaun.nn.ELU(alpha=2.0)"
    assert repr(KN.GLU(axis=-1)) == "kaun.nn.GLU(axis=-1)"
    assert repr(KN.GELU()) == "kaun.nn.GELU()" and repr(KN.GELUApprox()) == "kaun.nn.GELUApprox()"
    assert repr(KN.PReLU()) == "kaun.nn.PReLU(num_parameters=1, init=0.25, channel_axis=1)"
    assert repr(KN.Swish()) == "kaun.nn.SiLU()"  # (the same class)
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), KN.Mish())
    assert "(1): kaun.nn.Mish()" in repr(seq)

    class Mine(KN.SiLU):  # a subclass of the user's prints its own name, as torch's do
        pass

    assert repr(Mine()) == "Mine()"
    assert KN.LeakyReLU(negative_slope=0.3).negative_slope == 0.3


def test_bad_hyper_parameters_fail_at_construction() -> None:
    with pytest.raises(ValueError, match=r"squareplus: b must be >= 0"):
        KN.Squareplus(b=-1.0)
    with pytest.raises(ValueError, match=r"celu"):
        KN.CELU(alpha=0.0)
    with pytest.raises(ValueError, match=r"negative_slope must be finite"):
        KN.LeakyReLU(negative_slope=float("nan"))
    with pytest.raises(TypeError, match=r"leaky_relu: negative_slope must be a real number"):
        KN.LeakyReLU(negative_slope="0.2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"glu: axis must be an int"):
        KN.GLU(axis=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"PReLU: num_parameters must be an int"):
        KN.PReLU(num_parameters=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"PReLU: num_parameters must be >= 1"):
        KN.PReLU(num_parameters=0)
    with pytest.raises(ValueError, match=r"PReLU: init must be finite"):
        KN.PReLU(init=float("inf"))
    with pytest.raises(TypeError, match=r"PReLU: channel_axis must be an int"):
        KN.PReLU(channel_axis=None)  # type: ignore[arg-type]


def test_bad_input_is_kauns_error() -> None:
    with pytest.raises(TypeError, match=r"kaun.activation.gelu: x must have a real floating"):
        KN.GELU()(torch.arange(4))
    with pytest.raises(ValueError, match=r"glu"):
        KN.GLU()(torch.ones(3, 5))


def test_gradients_are_kauns_derivatives() -> None:
    x = _x().requires_grad_()
    for name in ["gelu", "mish", "squareplus", "hard_silu", "leaky_relu"]:
        x.grad = None
        KN.MODULES[name]()(x).sum().backward()
        assert x.grad is not None
        want = A.derivative(A.get(name))(x.detach())
        # bitwise where the backward is the derivative formula; hard_silu's is torch's own
        # kernel (x/3 + 1/2 against the formula's (2x + 3)/6): a few ulp, absolute near -1.5
        tol = 4 * torch.finfo(x.dtype).eps if name == "hard_silu" else 0.0
        torch.testing.assert_close(x.grad, want, rtol=tol, atol=tol)


def test_sequential_trains() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 16), KN.GELU(), torch.nn.Linear(16, 16),
        KN.LeakyReLU(negative_slope=0.1), torch.nn.Linear(16, 8), KN.GLU(axis=-1),
        torch.nn.Linear(4, 1),
    )
    x = torch.randn(64, 2)
    y = (x[:, :1] * x[:, 1:]).sign()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    first = last = 0.0
    for i in range(60):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        first = float(loss.detach()) if i == 0 else first
        last = float(loss.detach())
    assert last < 0.5 * first


# ---- PReLU -------------------------------------------------------------------------------------


def test_prelu_parameter() -> None:
    m = KN.PReLU(num_parameters=3, init=0.1)
    (p,) = list(m.parameters())
    assert p is m.weight and isinstance(p, torch.nn.Parameter)
    assert m.alpha is p  # kaun's name for it
    assert p.shape == (3,) and p.dtype == torch.float32
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.1))
    assert list(m.state_dict()) == ["weight"]  # torch's name
    with torch.no_grad():
        p.mul_(3.0)
    m.reset_parameters()
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.1))


@pytest.mark.parametrize(
    ("shape", "axis", "view"),
    [
        ((2, 3, 4, 5), 1, (3, 1, 1)),      # N, C, H, W
        ((2, 4, 5, 3), -1, (3,)),          # channels last
        ((2, 4, 5, 3), 3, (3,)),
        ((2, 3), 1, (3,)),
        ((3, 7), 0, (3, 1)),
    ],
)
def test_prelu_channels(shape: tuple[int, ...], axis: int, view: tuple[int, ...]) -> None:
    m = KN.PReLU(num_parameters=3, channel_axis=axis, dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    x = _x(torch.float64, shape).requires_grad_()
    y = m(x)
    alpha = m.weight.detach().reshape(view)
    torch.testing.assert_close(y, A.prelu(x.detach(), alpha), rtol=0, atol=0)
    g = torch.randn(shape, dtype=torch.float64)
    y.backward(g)
    # d/dalpha: min(0, x) * g summed over every axis but the channel axis
    ax = axis % len(shape)
    other = tuple(i for i in range(len(shape)) if i != ax)
    want = (torch.clamp(x.detach(), max=0) * g).sum(dim=other)
    assert m.weight.grad is not None
    torch.testing.assert_close(m.weight.grad, want)
    dx = torch.where(x.detach() > 0, torch.ones_like(g), alpha.expand(shape)) * g
    torch.testing.assert_close(x.grad, dx)


def test_prelu_single_parameter_any_shape() -> None:
    m = KN.PReLU()
    for shape in [(), (5,), (2, 3, 4)]:
        x = _x(torch.float32, shape) if shape else torch.tensor(-2.0)
        torch.testing.assert_close(m(x), A.prelu(x, 0.25), rtol=0, atol=0)
        assert m(x).shape == x.shape


def test_prelu_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"PReLU: the input has 4 channels on axis 1"):
        KN.PReLU(num_parameters=3)(torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"PReLU: channel_axis 1 is out of range"):
        KN.PReLU(num_parameters=3)(torch.ones(3))


def test_prelu_dtypes() -> None:
    m = KN.PReLU(num_parameters=2, channel_axis=-1)
    x16 = torch.tensor([[-2.0, -4.0], [1.0, 3.0]], dtype=torch.float16, requires_grad=True)
    y = m(x16)
    assert y.dtype == torch.float16
    y.sum().backward()
    assert m.weight.grad is not None and m.weight.grad.dtype == torch.float32
    torch.testing.assert_close(m.weight.grad, torch.tensor([-2.0, -4.0]))
    m64 = m.to(torch.float64)
    assert m64.weight.dtype == torch.float64 and m64.alpha is m64.weight
    assert m64(torch.ones(1, 2, dtype=torch.float64)).dtype == torch.float64


def test_prelu_state_dict_round_trip() -> None:
    m = KN.PReLU(num_parameters=4, init=0.2)
    with torch.no_grad():
        m.weight.mul_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = KN.PReLU(num_parameters=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh.weight, m.weight, rtol=0, atol=0)
    x = _x(torch.float32, (3, 4, 5))
    torch.testing.assert_close(fresh(x), m(x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="size mismatch"):
        KN.PReLU(num_parameters=3).load_state_dict(m.state_dict())


def test_sequential_state_dict_round_trip() -> None:
    def make() -> torch.nn.Sequential:
        return torch.nn.Sequential(
            torch.nn.Conv2d(1, 3, 3), KN.PReLU(3), torch.nn.Flatten(), KN.Squareplus(b=2.0)
        )

    torch.manual_seed(1)
    a = make()
    prelu = a[1]
    assert isinstance(prelu, KN.PReLU)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.05, 0.5, 0.9]))
    b = make()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
    assert set(a.state_dict()) == {"0.weight", "0.bias", "1.weight"}


def test_copy_and_pickle() -> None:
    x = _x()
    for m in [KN.LeakyReLU(negative_slope=0.3), KN.PReLU(2, channel_axis=0), KN.GLU(axis=1)]:
        for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
            assert repr(clone) == repr(m)
            xx = x[:2] if isinstance(m, KN.PReLU) else x
            torch.testing.assert_close(clone(xx), m(xx), rtol=0, atol=0)


def test_torch_is_only_imported_by_nn() -> None:
    code = (
        "import sys\n"
        "import kaun.activation, kaun.cli\n"
        "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'too early'\n"
        "import kaun.nn\n"
        "assert 'torch' in sys.modules\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_matches_torch_where_torch_has_the_function() -> None:
    x = _x()
    pairs = [
        (KN.GELU(), torch.nn.GELU()),
        (KN.GELUApprox(), torch.nn.GELU(approximate="tanh")),
        (KN.SiLU(), torch.nn.SiLU()),
        (KN.Mish(), torch.nn.Mish()),
        (KN.ELU(alpha=0.5), torch.nn.ELU(alpha=0.5)),
        (KN.CELU(alpha=2.0), torch.nn.CELU(alpha=2.0)),
        (KN.SELU(), torch.nn.SELU()),
        (KN.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
        (KN.GLU(axis=0), torch.nn.GLU(dim=0)),
    ]
    for ours, theirs in pairs:
        # the same function (constants, defaults, axis); torch's tails are less accurate
        # (gelu(-9) is -0.0 in torch, -1.1e-19 here), hence the absolute tolerance
        np.testing.assert_allclose(ours(x).numpy(), theirs(x).numpy(), rtol=1e-12, atol=1e-12)


# ---- a rename away from torch.nn ---------------------------------------------------------------

# torch.nn's name for each kaun.nn module that torch has (compared case-insensitively)
TORCH_NAMES = {
    n: t for n in KN.__all__ if n != "MODULES"
    for t in dir(torch.nn) if t.lower() == n.lower() and isinstance(getattr(torch.nn, t), type)
}
# the arguments of torch's constructors that kaun's do not take, and why (docs/frameworks.md)
NOT_TAKEN = {
    "Hardtanh": {"min_val", "max_val", "min_value", "max_value"},  # kaun's bounds are -1 and 1
    "Softplus": {"beta", "threshold"},  # kaun's is exact log(1 + exp(x)): no threshold
}


def test_torch_spellings_are_the_same_classes() -> None:
    assert TORCH_NAMES.keys() >= {"HardTanh", "HardSigmoid", "HardSwish", "GELU", "PReLU"}
    for ours, theirs in TORCH_NAMES.items():
        assert getattr(KN, theirs) is getattr(KN, ours), theirs
        assert theirs in KN.__all__, theirs
    assert KN.Hardtanh is KN.HardTanh and KN.Hardsigmoid is KN.HardSigmoid
    assert KN.Hardswish is KN.HardSwish is KN.HardSiLU


@pytest.mark.parametrize("name", sorted(set(TORCH_NAMES.values())))
def test_torch_constructor_arguments_are_taken(name: str) -> None:
    """Every argument of torch's constructor is one of kaun's, at the same position where kaun
    has no argument of its own before it, but those listed in NOT_TAKEN."""
    theirs = [p for p in inspect.signature(getattr(torch.nn, name).__init__).parameters.values()
              if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    ours = inspect.signature(getattr(KN, name).__init__).parameters
    missing = {p.name for p in theirs} - set(ours) - NOT_TAKEN.get(name, set())
    assert not missing, missing
    for p in theirs:
        if p.name in ours and (name, p.name) != ("GLU", "dim"):  # (GLU's dim: None, axis's -1)
            assert ours[p.name].default == p.default, (p.name, ours[p.name].default, p.default)


# (torch.nn class, arguments) built both ways: the same function, the input of kaun's untouched
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("ReLU", (), {"inplace": True}), ("ReLU", (True,), {}), ("ReLU6", (True,), {}),
    ("LeakyReLU", (0.2, True), {}), ("LeakyReLU", (), {"negative_slope": 0.3, "inplace": True}),
    ("ELU", (0.5, True), {}), ("CELU", (2.0,), {"inplace": True}), ("SELU", (True,), {}),
    ("SiLU", (), {"inplace": True}), ("Mish", (True,), {}), ("Hardswish", (True,), {}),
    ("Hardtanh", (), {"inplace": True}), ("Hardsigmoid", (), {"inplace": True}),
    ("GELU", (), {"approximate": "tanh"}), ("GELU", ("none",), {}), ("GLU", (), {"dim": 0}),
    ("GLU", (0,), {}), ("PReLU", (1, 0.1), {}), ("Sigmoid", (), {}), ("Tanh", (), {}),
    ("Softsign", (), {}), ("LogSigmoid", (), {}), ("Softplus", (), {}),
]


@pytest.mark.parametrize(("name", "args", "kw"), CALLS, ids=lambda v: repr(v))
def test_torch_modules_by_their_torch_arguments(name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    """torch.nn.<name>(*args, **kw) -> kaun.nn.<name>(*args, **kw): the same function (torch's
    tails are less accurate, hence the tolerance); inplace=True computes out of place, so that
    the input is never written to (torch's overwrites it) and autograd runs."""
    theirs, ours = getattr(torch.nn, name)(*args, **kw), getattr(KN, name)(*args, **kw)
    theirs = theirs.double()  # (PReLU's weight: kaun's is cast to the input's dtype, torch's not)
    x = _x()
    before = x.clone()
    want = theirs(x.clone())
    y = ours(x)
    assert torch.equal(x, before) and y.data_ptr() != x.data_ptr()
    np.testing.assert_allclose(y.detach().numpy(), want.detach().numpy(), rtol=1e-12, atol=1e-12)
    if kw.get("inplace") or any(a is True for a in args):
        assert ours.inplace is True and "inplace=True" in repr(ours)
        xg = _x().requires_grad_()
        ours(xg).sum().backward()
        assert xg.grad is not None


def test_inplace_is_checked_and_shown_as_torch_shows_it() -> None:
    # torch's text, after the prefix that says the module is kaun's
    assert repr(KN.ReLU(inplace=True)) == "kaun.nn." + repr(torch.nn.ReLU(inplace=True))
    assert repr(KN.ReLU(inplace=True)) == "kaun.nn.ReLU(inplace=True)"
    assert repr(KN.ELU(1.0, True)) == "kaun.nn." + repr(torch.nn.ELU(1.0, True))
    assert repr(KN.ELU(1.0, True)) == "kaun.nn.ELU(alpha=1.0, inplace=True)"
    assert repr(KN.LeakyReLU(0.2, True)) == "kaun.nn." + repr(torch.nn.LeakyReLU(0.2, True))
    assert repr(KN.ReLU()) == "kaun.nn.ReLU()" and KN.ReLU().inplace is False
    assert repr(KN.HardTanh(inplace=True)) == "kaun.nn.HardTanh(inplace=True)"
    assert not hasattr(KN.Sigmoid(), "inplace")  # (torch's Sigmoid has none either)
    with pytest.raises(TypeError, match=r"kaun\.nn\.ReLU: inplace must be a bool, got int"):
        KN.ReLU(inplace=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"kaun\.nn\.ELU: inplace must be a bool, got str"):
        KN.ELU(1.0, "yes")  # type: ignore[arg-type]


def test_gelu_approximate_and_glu_dim() -> None:
    x = _x()
    tanh = KN.GELU(approximate="tanh")
    assert torch.equal(tanh(x), A.gelu_approx(x)) and torch.equal(KN.GELU("none")(x), A.gelu(x))
    assert repr(tanh) == "kaun.nn.GELU(approximate='tanh')" and repr(KN.GELU()) == "kaun.nn.GELU()"
    assert tanh.approximate == "tanh"
    with pytest.raises(ValueError, match=r"kaun\.nn\.GELU: approximate must be 'none' or 'tanh'"):
        KN.GELU(approximate="erf")
    g = KN.GLU(dim=0)
    assert g.axis == g.dim == 0 and repr(g) == "kaun.nn.GLU(axis=0)"
    assert torch.equal(g(x), A.glu(x, axis=0))
    with pytest.raises(TypeError, match=r"kaun\.nn\.GLU: give axis or dim"):
        KN.GLU(1, dim=0)


def test_torch_prelu_state_dict_loads() -> None:
    """A torch.nn.PReLU's state_dict (key ``weight``) loads into kaun.nn.PReLU, strictly, alone
    and inside a model, through torch.save/torch.load; the results are torch's."""
    torch.manual_seed(2)
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.PReLU(4), torch.nn.Linear(4, 2),
                                 torch.nn.PReLU())
    with torch.no_grad():
        theirs[1].weight.copy_(torch.tensor([0.1, -0.2, 0.7, 1.5]))
        theirs[3].weight.fill_(0.05)
    buf = io.BytesIO()
    torch.save(theirs.state_dict(), buf)
    buf.seek(0)
    ours = torch.nn.Sequential(torch.nn.Linear(3, 4), KN.PReLU(4), torch.nn.Linear(4, 2), KN.PReLU())
    ours.load_state_dict(torch.load(buf, weights_only=True), strict=True)
    x = torch.randn(5, 3)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    # and back: kaun's state_dict loads into torch's modules
    back = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.PReLU(4), torch.nn.Linear(4, 2),
                               torch.nn.PReLU())
    back.load_state_dict(ours.state_dict(), strict=True)
    torch.testing.assert_close(back(x), theirs(x), rtol=0, atol=0)


def test_prelu_state_dict_with_the_old_name_loads() -> None:
    """A state_dict saved when the parameter was called ``alpha`` loads, strictly, alone and
    under a prefix; the caller's dict is left as it was."""
    old = {"alpha": torch.tensor([0.3, 0.6])}
    m = KN.PReLU(2)
    m.load_state_dict(old, strict=True)
    assert list(old) == ["alpha"]
    torch.testing.assert_close(m.weight.detach(), torch.tensor([0.3, 0.6]), rtol=0, atol=0)
    seq = torch.nn.Sequential(torch.nn.Linear(2, 2), KN.PReLU(2))
    sd = {**{f"0.{k}": v for k, v in torch.nn.Linear(2, 2).state_dict().items()}, "1.alpha": old["alpha"]}
    seq.load_state_dict(sd, strict=True)
    torch.testing.assert_close(seq[1].weight.detach(), old["alpha"], rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        KN.PReLU(2).load_state_dict({"weight": old["alpha"], "alpha": old["alpha"]}, strict=True)
