"""kaun.nn: one torch.nn.Module per function, calling kaun.activation."""

from __future__ import annotations

import copy
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
    assert list(KN.MODULES) == A.names()
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
    assert repr(KN.LeakyReLU(negative_slope=0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(KN.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(KN.Squareplus(b=4.0)) == "Squareplus(b=4.0)"
    assert repr(KN.HardSigmoid(alpha=0.2)) == "HardSigmoid(alpha=0.2, beta=0.5)"
    assert repr(KN.ELU(alpha=2)) == "ELU(alpha=2.0)"
    assert repr(KN.GLU(axis=-1)) == "GLU(axis=-1)"
    assert repr(KN.GELU()) == "GELU()" and repr(KN.GELUApprox()) == "GELUApprox()"
    assert repr(KN.PReLU()) == "PReLU(num_parameters=1, init=0.25, channel_axis=1)"
    seq = torch.nn.Sequential(torch.nn.Linear(2, 3), KN.Mish())
    assert "(1): Mish()" in repr(seq)
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
    assert p is m.alpha and isinstance(p, torch.nn.Parameter)
    assert p.shape == (3,) and p.dtype == torch.float32
    torch.testing.assert_close(p.detach(), torch.full((3,), 0.1))
    assert list(m.state_dict()) == ["alpha"]


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
        m.alpha.copy_(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    x = _x(torch.float64, shape).requires_grad_()
    y = m(x)
    alpha = m.alpha.detach().reshape(view)
    torch.testing.assert_close(y, A.prelu(x.detach(), alpha), rtol=0, atol=0)
    g = torch.randn(shape, dtype=torch.float64)
    y.backward(g)
    # d/dalpha: min(0, x) * g summed over every axis but the channel axis
    ax = axis % len(shape)
    other = tuple(i for i in range(len(shape)) if i != ax)
    want = (torch.clamp(x.detach(), max=0) * g).sum(dim=other)
    assert m.alpha.grad is not None
    torch.testing.assert_close(m.alpha.grad, want)
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
    assert m.alpha.grad is not None and m.alpha.grad.dtype == torch.float32
    torch.testing.assert_close(m.alpha.grad, torch.tensor([-2.0, -4.0]))
    m64 = m.to(torch.float64)
    assert m64.alpha.dtype == torch.float64
    assert m64(torch.ones(1, 2, dtype=torch.float64)).dtype == torch.float64


def test_prelu_state_dict_round_trip() -> None:
    m = KN.PReLU(num_parameters=4, init=0.2)
    with torch.no_grad():
        m.alpha.mul_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = KN.PReLU(num_parameters=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    torch.testing.assert_close(fresh.alpha, m.alpha, rtol=0, atol=0)
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
        prelu.alpha.copy_(torch.tensor([0.05, 0.5, 0.9]))
    b = make()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 6, 6)
    torch.testing.assert_close(b(x), a(x), rtol=0, atol=0)
    assert set(a.state_dict()) == {"0.weight", "0.bias", "1.alpha"}


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
