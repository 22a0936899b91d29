"""``torch.nn.Module`` wrappers of kaun.activation: one module per function.

Each module holds the function's hyper-parameters (checked when the module is built) and calls
``kaun.activation`` in ``forward``, so the numerics and the derivatives are kaun's::

    import torch
    import kaun.nn as KN

    net = torch.nn.Sequential(torch.nn.Linear(2, 16), KN.GELU(), torch.nn.Linear(16, 1))
    act = KN.LeakyReLU(negative_slope=0.2)
    prelu = KN.PReLU(num_parameters=16)   # a learnable alpha per channel (axis 1)

``Swish is SiLU`` and ``HardSwish is HardSiLU``, as in kaun.activation. This module imports torch;
``import kaun.activation`` does not.

A rename away from ``torch.nn``: torch's spellings are the same classes (``Hardtanh is HardTanh``,
``Hardsigmoid is HardSigmoid``, ``Hardswish is HardSiLU``), the constructors take torch's
arguments where kaun computes the same function (``inplace``, ``GELU(approximate=...)``,
``GLU(dim=...)``), and ``PReLU``'s parameter is ``weight``, so that a ``torch.nn.PReLU``'s
``state_dict`` loads. ``inplace=True`` is accepted and computes out of place: kaun never writes
into its input (its backward reads x, which an in-place write would have destroyed: autograd
would refuse the backward), and the values are the same; only the memory torch saves that way
is not saved. What differs from torch's signatures: docs/frameworks.md.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import torch

import kaun.activation as A
from kaun._core import ENTRIES
from kaun.activation._params import hyper, prelu_alpha_shape, prelu_layer

__all__ = [
    "ReLU",
    "Sigmoid",
    "Tanh",
    "ReLU6",
    "LeakyReLU",
    "HardTanh",
    "Hardtanh",
    "HardSigmoid",
    "Hardsigmoid",
    "PReLU",
    "ELU",
    "SELU",
    "CELU",
    "GELU",
    "GELUApprox",
    "SiLU",
    "Swish",
    "HardSiLU",
    "HardSwish",
    "Hardswish",
    "Mish",
    "Softplus",
    "Softsign",
    "Squareplus",
    "LogSigmoid",
    "GLU",
    "SparsePlus",
    "SparseSigmoid",
    "SwiGLU",
    "GeGLU",
    "GeGLUApprox",
    "ReGLU",
    "ReLUSquared",
    "QuickGELU",
    "GatedMLP",
    "MODULES",
]


def _inplace(module: torch.nn.Module, inplace: Any) -> bool:
    """torch's ``inplace`` argument, checked: kaun computes out of place whatever its value (see
    the module's docstring)."""
    if not isinstance(inplace, bool):
        raise TypeError(
            f"kaun.nn.{type(module).__name__}: inplace must be a bool, got {type(inplace).__name__}"
        )
    return inplace


class _Module(torch.nn.Module):
    """A kaun.nn module prints as ``kaun.nn.SiLU()``, not as torch's namesake ``SiLU()`` (a
    subclass defined elsewhere prints its own name, as torch's)."""

    def _get_name(self) -> str:
        cls = type(self)
        return f"kaun.nn.{cls.__name__}" if cls.__module__ == __name__ else cls.__name__


class _Activation(_Module):
    """An activation without learnable state: ``forward(x) = fn(x, **hyper-parameters)``.

    Where torch's module takes ``inplace``, so does this one (an attribute, shown by ``repr`` as
    torch shows it), and it computes out of place: the input is never written to."""

    name: ClassVar[str]
    inplace: bool

    def __init__(self, *, inplace: Any = None, **params: Any) -> None:
        super().__init__()
        entry = ENTRIES[self.name]
        # Checked now (TypeError/ValueError naming the function), not at the first forward.
        checked = hyper(entry, tuple(params[n] for n, _ in entry.params))
        self._names = tuple(params)
        for k, v in zip(params, checked, strict=True):
            setattr(self, k, v)
        if inplace is not None:  # (None: a module whose torch namesake has no inplace)
            self.inplace = _inplace(self, inplace)
        fn = entry.fn
        if fn is None:  # pragma: no cover - every entry is registered with its function
            raise RuntimeError(f"kaun.nn: {self.name} has no function")
        self._fn: Callable[..., Any] = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self._fn(x, **{k: getattr(self, k) for k in self._names})
        return out

    def extra_repr(self) -> str:
        parts = [f"{k}={getattr(self, k)!r}" for k in self._names]
        if getattr(self, "inplace", False):
            parts.append("inplace=True")
        return ", ".join(parts)


# ---- Standard activations ----------------------------------------------------------------------


class ReLU(_Activation):
    """``kaun.activation.relu``: ``max(x, 0)``."""

    name = "relu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


class Sigmoid(_Activation):
    """``kaun.activation.sigmoid``: ``1 / (1 + exp(-x))``."""

    name = "sigmoid"

    def __init__(self) -> None:
        super().__init__()


class Tanh(_Activation):
    """``kaun.activation.tanh``."""

    name = "tanh"

    def __init__(self) -> None:
        super().__init__()


class ReLU6(_Activation):
    """``kaun.activation.relu6``: ``min(max(x, 0), 6)``."""

    name = "relu6"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


class LeakyReLU(_Activation):
    """``kaun.activation.leaky_relu``: ``x`` for x >= 0, ``negative_slope * x`` otherwise."""

    name = "leaky_relu"
    negative_slope: float

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(negative_slope=negative_slope, inplace=inplace)


class HardTanh(_Activation):
    """``kaun.activation.hard_tanh``: ``max(-1, min(1, x))`` (torch's ``Hardtanh`` with its
    default bounds; ``inplace`` is keyword-only here, and the bounds are not arguments)."""

    name = "hard_tanh"

    def __init__(self, *, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


Hardtanh = HardTanh


class HardSigmoid(_Activation):
    """``kaun.activation.hard_sigmoid``: ``min(1, max(0, alpha * x + beta))`` (the defaults are
    torch's ``Hardsigmoid``; ``inplace`` is keyword-only here, after kaun's alpha and beta)."""

    name = "hard_sigmoid"
    alpha: float
    beta: float

    def __init__(self, alpha: float = 1.0 / 6.0, beta: float = 0.5, *, inplace: bool = False) -> None:
        super().__init__(alpha=alpha, beta=beta, inplace=inplace)


Hardsigmoid = HardSigmoid


class PReLU(_Module):
    """``kaun.activation.prelu`` with a learnable alpha: ``max(0, x) + alpha * min(0, x)``.

    Args:
        num_parameters: 1 (one alpha for every element) or the number of channels (one alpha
            per channel, broadcast along ``channel_axis``).
        init: the initial value of alpha (default 0.25, as torch).
        channel_axis: the axis of the input that holds the channels (default 1, as torch's
            ``N, C, ...`` layout; -1 for channels-last). Only used when ``num_parameters > 1``.
        dtype, device: of the parameter, as for any torch module.

    The parameter is ``weight`` (torch's name, so that a ``torch.nn.PReLU``'s ``state_dict``
    loads, strictly), a ``torch.nn.Parameter`` of shape ``(num_parameters,)``; ``alpha`` is the
    same parameter under kaun's name, read-only, and a ``state_dict`` saved with the key
    ``alpha`` (by earlier versions of kaun.nn) loads too. In ``forward`` it is viewed so that
    it broadcasts along the channel axis, and cast to the input's dtype (so a float32 module
    runs on float16 inputs). Its gradient is summed over the other axes.
    """

    num_parameters: int
    init: float
    channel_axis: int
    weight: torch.nn.Parameter

    def __init__(
        self,
        num_parameters: int = 1,
        init: float = 0.25,
        channel_axis: int = 1,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        n, value, axis = prelu_layer("kaun.nn.PReLU", num_parameters, init, channel_axis)
        self.num_parameters = n
        self.init = value
        self.channel_axis = axis
        self.weight = torch.nn.Parameter(
            torch.full((self.num_parameters,), value, dtype=dtype, device=device)
        )

    @property
    def alpha(self) -> torch.nn.Parameter:
        """The learnable alpha: ``weight`` under kaun's name."""
        return self.weight

    def reset_parameters(self) -> None:
        """Every alpha back to ``init`` (as ``torch.nn.PReLU.reset_parameters``)."""
        torch.nn.init.constant_(self.weight, self.init)

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # a state_dict of an earlier kaun.nn, whose parameter was called alpha (load_state_dict
        # works on its own copy of the dict: the caller's is left as it was)
        old, new = prefix + "alpha", prefix + "weight"
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _alpha_for(self, x: torch.Tensor) -> torch.Tensor:
        alpha: torch.Tensor = self.weight.to(dtype=x.dtype)
        return alpha.reshape(prelu_alpha_shape("kaun.nn.PReLU", self.num_parameters,
                                               self.channel_axis, tuple(x.shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = A.prelu(x, self._alpha_for(x))
        return out

    def extra_repr(self) -> str:
        return (
            f"num_parameters={self.num_parameters}, init={self.init!r}, "
            f"channel_axis={self.channel_axis}"
        )


# ---- Exponential family ------------------------------------------------------------------------


class ELU(_Activation):
    """``kaun.activation.elu``: ``x`` for x >= 0, ``alpha * (exp(x) - 1)`` otherwise."""

    name = "elu"
    alpha: float

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(alpha=alpha, inplace=inplace)


class SELU(_Activation):
    """``kaun.activation.selu``: ``lambda * elu(x, alpha)`` with the self-normalizing constants."""

    name = "selu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


class CELU(_Activation):
    """``kaun.activation.celu``: ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    name = "celu"
    alpha: float

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(alpha=alpha, inplace=inplace)


# ---- Smooth activations ------------------------------------------------------------------------


class GELU(_Activation):
    """``kaun.activation.gelu`` (exact, erf): ``0.5 * x * (1 + erf(x / sqrt(2)))``; with
    ``approximate="tanh"`` (torch's argument), ``kaun.activation.gelu_approx``, as
    ``GELUApprox``."""

    name = "gelu"
    approximate: str

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"kaun.nn.GELU: approximate must be 'none' or 'tanh', got {approximate!r}"
            )
        super().__init__()
        self.approximate = approximate
        if approximate == "tanh":
            self._fn = A.gelu_approx

    def extra_repr(self) -> str:
        return "approximate='tanh'" if self.approximate == "tanh" else ""


class GELUApprox(_Activation):
    """``kaun.activation.gelu_approx``: the tanh approximation of GELU."""

    name = "gelu_approx"

    def __init__(self) -> None:
        super().__init__()


class SiLU(_Activation):
    """``kaun.activation.silu`` (swish): ``x * sigmoid(x)``."""

    name = "silu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


Swish = SiLU


class HardSiLU(_Activation):
    """``kaun.activation.hard_silu`` (hard swish): ``x * hard_sigmoid(x)``."""

    name = "hard_silu"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


HardSwish = Hardswish = HardSiLU


class Mish(_Activation):
    """``kaun.activation.mish``: ``x * tanh(softplus(x))``."""

    name = "mish"

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(inplace=inplace)


class Softplus(_Activation):
    """``kaun.activation.softplus``: ``log(1 + exp(x))``, with no threshold."""

    name = "softplus"

    def __init__(self) -> None:
        super().__init__()


class Softsign(_Activation):
    """``kaun.activation.softsign``: ``x / (|x| + 1)``."""

    name = "softsign"

    def __init__(self) -> None:
        super().__init__()


class Squareplus(_Activation):
    """``kaun.activation.squareplus``: ``0.5 * (x + sqrt(x^2 + b))``, b >= 0."""

    name = "squareplus"
    b: float

    def __init__(self, b: float = 4.0) -> None:
        super().__init__(b=b)


class LogSigmoid(_Activation):
    """``kaun.activation.log_sigmoid``: ``log(sigmoid(x))``."""

    name = "log_sigmoid"

    def __init__(self) -> None:
        super().__init__()


# ---- Gating ------------------------------------------------------------------------------------


class GLU(_Module):
    """``kaun.activation.glu``: halves of ``x`` along ``axis``, ``first * sigmoid(second)``.

    ``dim`` is torch's name for the axis: ``GLU(dim=0)`` is ``GLU(axis=0)`` (give one of them).
    """

    name: ClassVar[str] = "glu"
    axis: int

    def __init__(self, axis: int = -1, *, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None:
            if axis != -1:
                raise TypeError("kaun.nn.GLU: give axis or dim (torch's name for it), not both")
            axis = dim
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"kaun.activation.glu: axis must be an int, got {type(axis).__name__}")
        self.axis = int(axis)

    @property
    def dim(self) -> int:
        """torch's name for ``axis``."""
        return self.axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = A.glu(x, axis=self.axis)
        return out

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class _Gated(_Module):
    """A function of the gated family (beyond the spec): ``forward(x)`` splits ``x`` along
    ``axis``, ``first * act(second)`` (as ``GLU``); ``forward(gate=g, up=u)`` is ``u * act(g)``
    for two projections (Hugging Face LLaMA's ``act(gate_proj(x)) * up_proj(x)``)."""

    name: ClassVar[str]
    axis: int

    def __init__(self, axis: int = -1, *, dim: int | None = None) -> None:
        super().__init__()
        cls = type(self).__name__
        if dim is not None:
            if axis != -1:
                raise TypeError(f"kaun.nn.{cls}: give axis or dim (torch's name for it), not both")
            axis = dim
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(
                f"kaun.activation.{self.name}: axis must be an int, got {type(axis).__name__}"
            )
        self.axis = int(axis)
        self._fn: Callable[..., Any] = getattr(A, self.name)

    @property
    def dim(self) -> int:
        """torch's name for ``axis``."""
        return self.axis

    def forward(self, x: torch.Tensor | None = None, *, gate: torch.Tensor | None = None,
                up: torch.Tensor | None = None) -> torch.Tensor:
        if x is None:
            out: torch.Tensor = self._fn(gate=gate, up=up)
        else:
            out = self._fn(x, axis=self.axis, gate=gate, up=up)
        return out

    def extra_repr(self) -> str:
        return f"axis={self.axis}"


class SwiGLU(_Gated):
    """``kaun.activation.swiglu``: ``first * silu(second)`` of ``x``'s halves, or ``up * silu(gate)``."""

    name = "swiglu"


class GeGLU(_Gated):
    """``kaun.activation.geglu``: ``first * gelu(second)`` (erf), or ``up * gelu(gate)``."""

    name = "geglu"


class GeGLUApprox(_Gated):
    """``kaun.activation.geglu_approx``: ``first * gelu_approx(second)`` (tanh form), or
    ``up * gelu_approx(gate)``."""

    name = "geglu_approx"


class ReGLU(_Gated):
    """``kaun.activation.reglu``: ``first * relu(second)``, or ``up * relu(gate)``."""

    name = "reglu"


class ReLUSquared(_Module):
    """``kaun.activation.relu_squared``: ``max(x, 0)^2`` (Primer; Hugging Face's ``relu2``)."""

    name: ClassVar[str] = "relu_squared"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = A.relu_squared(x)
        return out


class QuickGELU(_Module):
    """``kaun.activation.quick_gelu``: ``x * sigmoid(1.702 x)`` (CLIP)."""

    name: ClassVar[str] = "quick_gelu"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = A.quick_gelu(x)
        return out


def _hooked(*ms: torch.nn.Module) -> bool:
    """Whether a forward hook (of these modules, or global) may see gate_up's output: then
    GatedMLP's backward must not write over it."""
    from torch.nn.modules import module as _m

    return bool(_m._global_forward_hooks or _m._global_forward_pre_hooks or any(
        m._forward_hooks or m._forward_pre_hooks for m in ms))


class GatedMLP(_Module):
    """The gated MLP block of today's language models: ``down(act(gate_up(x)))``.

    ``gate_up`` is one ``Linear(dim, 2 * hidden)`` holding both projections, the up half first
    and the gate second (the split form's order, ``first * act(second)``); ``act`` one of the
    gated modules (``activation``: "swiglu", "geglu", "geglu_approx", "reglu" or "glu"), fused:
    one pass forward, one backward, saving only its input; ``down`` a ``Linear(hidden, dim)``.
    Hugging Face LLaMA's ``down_proj(act(gate_proj(x)) * up_proj(x))`` loads as
    ``gate_up.weight = torch.cat([up_proj.weight, gate_proj.weight])``,
    ``down.weight = down_proj.weight``.

    ``inplace_backward`` (default True): the activation's backward writes its gradient over its
    saved input (``gate_up``'s output, which only this block sees), so that the backward holds
    one tensor of that size instead of two (Liger-Kernel does the same): at 8 x 512 tokens,
    dimension 512, hidden 2048 the peak memory of forward + backward drops from 0.83x to about
    0.7x the composite block's (benchmarks/gated.py, docs/gated.md). The price: the block's
    graph can be backpropagated once (a second backward, ``retain_graph=True``, raises a
    RuntimeError that says so); under ``torch.compile``, ``create_graph`` or without a kernel
    the usual backward runs. False: the usual backward always.
    """

    def __init__(self, dim: int, hidden: int, activation: str = "swiglu", *, bias: bool = False,
                 inplace_backward: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        entry = getattr(A.get(activation), "_kaun_entry", None)
        if entry is None or entry.kind != "glu":
            raise ValueError(
                f"kaun.nn.GatedMLP: activation must be a gated function (swiglu, geglu, "
                f"geglu_approx, reglu, glu), got {activation!r}"
            )
        for arg, v in (("dim", dim), ("hidden", hidden)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"kaun.nn.GatedMLP: {arg} must be a positive int, got {v!r}")
        kw = {"bias": bias, "device": device, "dtype": dtype}
        self.gate_up = torch.nn.Linear(dim, 2 * hidden, **kw)
        self.act = MODULES[entry.name]()
        self.down = torch.nn.Linear(hidden, dim, **kw)
        self.inplace_backward = bool(inplace_backward)
        self._entry = entry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gate_up(x)
        y = None
        # in place only where the block's own modules made h, fresh, and its activation is the
        # one built here (a replaced self.act, or another axis, is called as it is)
        if (self.inplace_backward and type(self.act) is MODULES[self._entry.name]
                and getattr(self.act, "axis", None) in (-1, h.dim() - 1)
                and h is not x and h.grad_fn is not None and h._base is None
                and not _hooked(self.gate_up, self.act)):
            from kaun._backends import _torch

            y = _torch.glu_inplace_backward(self._entry, h, -1)
        out: torch.Tensor = self.down(self.act(h) if y is None else y)
        return out

    def extra_repr(self) -> str:
        return "" if self.inplace_backward else "inplace_backward=False"


# ---- Sparse activations ------------------------------------------------------------------------


class SparsePlus(_Activation):
    """``kaun.activation.sparse_plus``: 0, ``0.25 * (x + 1)^2``, x on x <= -1, |x| < 1, x >= 1."""

    name = "sparse_plus"

    def __init__(self) -> None:
        super().__init__()


class SparseSigmoid(_Activation):
    """``kaun.activation.sparse_sigmoid``: 0, ``0.5 * (x + 1)``, 1 on the same three pieces."""

    name = "sparse_sigmoid"

    def __init__(self) -> None:
        super().__init__()


MODULES: dict[str, type[torch.nn.Module]] = {
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "relu6": ReLU6,
    "leaky_relu": LeakyReLU,
    "hard_tanh": HardTanh,
    "hard_sigmoid": HardSigmoid,
    "prelu": PReLU,
    "elu": ELU,
    "selu": SELU,
    "celu": CELU,
    "gelu": GELU,
    "gelu_approx": GELUApprox,
    "silu": SiLU,
    "swish": Swish,
    "hard_silu": HardSiLU,
    "hard_swish": HardSwish,
    "mish": Mish,
    "softplus": Softplus,
    "softsign": Softsign,
    "squareplus": Squareplus,
    "log_sigmoid": LogSigmoid,
    "glu": GLU,
    "sparse_plus": SparsePlus,
    "sparse_sigmoid": SparseSigmoid,
    # beyond the spec
    "swiglu": SwiGLU,
    "geglu": GeGLU,
    "geglu_approx": GeGLUApprox,
    "reglu": ReGLU,
    "relu_squared": ReLUSquared,
    "quick_gelu": QuickGELU,
}
"""The module class of each function name of ``kaun.activation.names(extras=True)``."""
