"""kaun.activation in Keras 3: saved and loaded as kaun's, looked up by name, as layers.

``import kaun.keras`` registers every kaun function and layer with Keras's serialization, under
the package ``kaun``: a model built with ``activation=A.squareplus`` is saved as
``"kaun>squareplus"`` and loads with kaun's function again (in any process that has imported
``kaun.keras``; without it, loading raises Keras's ``TypeError: Could not locate function
'kaun>squareplus'``), never with Keras's namesake::

    import keras
    import kaun.activation as A
    import kaun.keras as KK

    keras.layers.Dense(64, activation=A.gelu)                 # or KK.gelu
    keras.layers.Dense(64, activation=KK.get("hardswish"))    # kaun's names and aliases
    KK.LeakyReLU(negative_slope=0.2), KK.Squareplus(b=1.0), KK.GLU(axis=-1), KK.PReLU()
    y = KK.gelu(keras.Input((4,)))                            # symbolic tensors: a layer node
    KK.SwiGLU(axis=-1)(x), KK.swiglu(gate=g, up=u)            # the gated functions, two forms
    KK.GatedMLP(hidden=256, activation="swiglu")              # Dense, swiglu, Dense back

The gated functions (swiglu, geglu, geglu_approx, reglu, as glu) change the shape of their input:
use their layers or call them on a tensor, not as a ``Dense`` activation. Keras's own
``activation="..."`` strings name Keras's functions only; pass kaun's function or ``KK.get``.

Import it before building the model: a model saved without it names Keras's own function where
one has kaun's name (Keras writes a function's bare name), and Keras loads that one. The
functions run on the backend's arrays (JAX arrays and tracers, torch tensors, NumPy arrays)
through kaun.activation. This module imports keras (and with it the backend Keras is set to);
``import kaun.activation`` does not.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import keras  # type: ignore[import-untyped]

import kaun.activation as A
from kaun._core import ENTRIES, EXTRAS, Entry
from kaun.activation._params import axis as check_axis
from kaun.activation._params import hyper, real

__all__ = [
    "relu", "sigmoid", "tanh", "relu6", "leaky_relu", "hard_tanh", "hard_sigmoid", "prelu",
    "elu", "selu", "celu", "gelu", "gelu_approx", "silu", "swish", "hard_silu", "hard_swish",
    "mish", "softplus", "softsign", "squareplus", "log_sigmoid", "glu", "sparse_plus",
    "sparse_sigmoid", "swiglu", "geglu", "geglu_approx", "reglu", "relu_squared", "quick_gelu",
    "get", "Activation", "ReLU", "Sigmoid", "Tanh", "ReLU6", "LeakyReLU", "HardTanh",
    "HardSigmoid", "PReLU", "ELU", "SELU", "CELU", "GELU", "GELUApprox", "SiLU", "Swish",
    "HardSiLU", "HardSwish", "Mish", "Softplus", "Softsign", "Squareplus", "LogSigmoid", "GLU",
    "SparsePlus", "SparseSigmoid", "SwiGLU", "GeGLU", "GeGLUApprox", "ReGLU", "ReLUSquared",
    "QuickGELU", "GatedMLP", "PACKAGE", "FUNCTIONS", "LAYERS",
]

PACKAGE = "kaun"


def _register(name: str) -> Callable[[Any], Any]:
    """keras.saving.register_keras_serializable under ``kaun>name``."""
    return keras.saving.register_keras_serializable(package=PACKAGE, name=name)  # type: ignore[no-any-return]


def _symbolic(x: Any) -> bool:
    return isinstance(x, keras.KerasTensor)


def _entry(name: str, who: str) -> Entry:
    """The entry of a kaun name or alias (``kaun>name`` too); ValueError naming ``who``."""
    if not isinstance(name, str):
        raise TypeError(f"{who}: the activation must be a str, got {type(name).__name__}")
    key = name.strip()
    if key.startswith(PACKAGE + ">"):
        key = key[len(PACKAGE) + 1:]
    try:
        fn = A.get(key)
    except ValueError as e:
        raise ValueError(str(e).replace("kaun.activation.get", who, 1)) from None
    entry: Entry = getattr(fn, "_kaun_entry")  # noqa: B009
    return entry


# ---- the functions -----------------------------------------------------------------------------


def _function(name: str) -> Callable[..., Any]:
    """kaun.activation's ``name`` for Keras: the same function on arrays; on a symbolic
    ``KerasTensor`` (the functional API) an ``Activation`` layer of it, so that the model
    records a node. Registered as ``kaun>name``, beside kaun.activation's own function (which
    then serializes to the same name): a loaded model gets this one."""
    fn = A.get(name)
    f: Callable[..., Any]
    if name == "prelu":

        def prelu(x: Any, /, alpha: Any) -> Any:
            if _symbolic(x) or _symbolic(alpha):
                if _symbolic(alpha) or hasattr(alpha, "shape"):
                    raise TypeError(
                        "kaun.keras.prelu: on a symbolic tensor alpha must be a number; for a "
                        "learnable alpha use the layer kaun.keras.PReLU"
                    )
                return Activation("prelu", alpha=alpha)(x)
            return fn(x, alpha)

        f = prelu
    elif name != "glu" and getattr(fn, "_kaun_entry").kind == "glu":  # noqa: B009

        def gated(x: Any = None, /, *, gate: Any = None, up: Any = None, **params: Any) -> Any:
            # the split form as glu's; by name (gate=, up=) on symbolic tensors a layer called
            # on both, so that the model records one node of two inputs
            if _symbolic(x) or _symbolic(gate) or _symbolic(up):
                layer = Activation(name, **params)
                return layer(x) if x is not None else layer(gate=gate, up=up)
            if x is None:
                return fn(gate=gate, up=up, **params)
            return fn(x, gate=gate, up=up, **params)

        f = gated
    else:

        def f(x: Any, /, **params: Any) -> Any:
            if _symbolic(x):
                return Activation(name, **params)(x)
            return fn(x, **params)

    out: Any = f
    out.__name__ = out.__qualname__ = name
    out.__module__ = __name__
    out.__doc__ = fn.__doc__
    out.__wrapped__ = fn  # (inspect.signature: kaun's signature)
    out._kaun_entry = getattr(fn, "_kaun_entry")  # noqa: B009
    _register(name)(fn)  # kaun.activation's function serializes as kaun>name ...
    _register(name)(out)  # ... and kaun>name loads as this one
    return f


relu = _function("relu")
sigmoid = _function("sigmoid")
tanh = _function("tanh")
relu6 = _function("relu6")
leaky_relu = _function("leaky_relu")
hard_tanh = _function("hard_tanh")
hard_sigmoid = _function("hard_sigmoid")
prelu = _function("prelu")
elu = _function("elu")
selu = _function("selu")
celu = _function("celu")
gelu = _function("gelu")
gelu_approx = _function("gelu_approx")
silu = _function("silu")
swish = silu
hard_silu = _function("hard_silu")
hard_swish = hard_silu
mish = _function("mish")
softplus = _function("softplus")
softsign = _function("softsign")
squareplus = _function("squareplus")
log_sigmoid = _function("log_sigmoid")
glu = _function("glu")
sparse_plus = _function("sparse_plus")
sparse_sigmoid = _function("sparse_sigmoid")
# beyond the spec (A.names(extras=True))
swiglu = _function("swiglu")
geglu = _function("geglu")
geglu_approx = _function("geglu_approx")
reglu = _function("reglu")
relu_squared = _function("relu_squared")
quick_gelu = _function("quick_gelu")

FUNCTIONS: dict[str, Callable[..., Any]] = {n: globals()[n] for n in A.names(extras=True)}


def get(name: str, /, **params: Any) -> Any:
    """kaun's activation ``name`` for Keras (kaun's names and aliases, as
    ``kaun.activation.get``; ``"kaun>name"`` too): the function, or with hyper-parameters an
    ``Activation`` layer that holds them (serializable, which a ``functools.partial`` is not).

    ``keras.layers.Dense(8, activation=KK.get("leaky_relu", negative_slope=0.2))``. An unknown
    name raises ``ValueError`` with the closest matches.
    """
    entry = _entry(name, "kaun.keras.get")
    if params:
        return Activation(entry.name, **params)
    return FUNCTIONS[entry.name]


# ---- the layers --------------------------------------------------------------------------------


class _Layer(keras.layers.Layer):  # type: ignore[misc]
    """A kaun function with fixed hyper-parameters: ``call(x) = fn(x, **hyper-parameters)``,
    the hyper-parameters checked when the layer is built and in ``get_config``. A gated
    function's layer also takes two tensors by name: ``call(gate=g, up=u) = fn(gate=g, up=u)``."""

    function: ClassVar[str] = ""

    def __init__(self, function: str, params: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        entry = ENTRIES[function] if function in ENTRIES else EXTRAS[function]
        self._function = function
        self._qualname = entry.qualname
        self._glu = entry.kind == "glu"
        self._fn = FUNCTIONS[function]
        self._params: tuple[tuple[str, Any], ...]
        if entry.kind == "glu":
            ax = params.get("axis", -1)
            if isinstance(ax, bool) or not isinstance(ax, numbers.Integral):
                raise TypeError(f"{entry.qualname}: axis must be an int, got {type(ax).__name__}")
            self._params = (("axis", int(ax)),)
        elif entry.kind == "prelu":
            self._params = (("alpha", real(entry.qualname, "alpha", params["alpha"])),)
        else:
            names = [n for n, _ in entry.params]
            values = tuple(params.get(n, d) for n, d in entry.params)
            self._params = tuple(zip(names, hyper(entry, values), strict=True))
        self.supports_masking = entry.kind != "glu"
        self._build_at_init()

    def call(self, inputs: Any = None, gate: Any = None, up: Any = None) -> Any:
        if gate is None and up is None:
            return self._fn(inputs, **dict(self._params))
        if self._function == "glu" or not self._glu:
            raise TypeError(f"{self._qualname}: takes one input (gate and up are for the gated "
                            "functions swiglu, geglu, geglu_approx, reglu)")
        return self._fn(inputs, gate=gate, up=up)  # (axis is the split's: not passed)

    def compute_output_shape(self, inputs_shape: Any = None, gate_shape: Any = None,
                             up_shape: Any = None) -> Any:
        # (Keras matches these names to call's arguments: inputs, gate, up)
        if not self._glu:
            return inputs_shape
        if inputs_shape is None:  # gate and up: their shape (kaun checks that they agree)
            return gate_shape if gate_shape is not None else up_shape
        shape = list(inputs_shape)
        ax = check_axis(self._qualname, dict(self._params)["axis"], len(shape))
        n = shape[ax]
        if n is not None and n % 2:
            raise ValueError(
                f"{self._qualname}: the size {n} of axis {ax} does not split into two equal "
                "halves"
            )
        shape[ax] = None if n is None else n // 2
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **dict(self._params)}


@_register("Activation")
class Activation(_Layer):
    """Any kaun function as a layer, by name or alias: ``Activation("leaky_relu",
    negative_slope=0.2)``, ``Activation("hardswish")``, ``Activation("prelu", alpha=0.1)`` (a
    fixed alpha; ``PReLU`` learns one). Its config holds the canonical name and the
    hyper-parameters."""

    def __init__(self, activation: str, **kwargs: Any) -> None:
        entry = _entry(activation, "kaun.keras.Activation")
        own = {n for n, _ in entry.params} | ({"alpha"} if entry.kind == "prelu" else set())
        params = {k: kwargs.pop(k) for k in list(kwargs) if k in own}
        if entry.kind == "prelu" and "alpha" not in params:
            raise TypeError("kaun.keras.Activation: prelu needs alpha (a number; the layer "
                            "kaun.keras.PReLU learns one)")
        super().__init__(entry.name, params, **kwargs)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "activation": self._function}


def _simple(function: str, cls_name: str) -> type[_Layer]:
    """The layer class of a function without hyper-parameters, registered as kaun>cls_name."""

    def __init__(self: _Layer, **kwargs: Any) -> None:
        _Layer.__init__(self, function, {}, **kwargs)

    cls = type(cls_name, (_Layer,), {
        "__init__": __init__, "function": function, "__module__": __name__,
        "__qualname__": cls_name,
        "__doc__": f"``kaun.activation.{function}`` as a Keras layer (no hyper-parameters).",
    })
    return _register(cls_name)(cls)  # type: ignore[no-any-return]


ReLU = _simple("relu", "ReLU")
Sigmoid = _simple("sigmoid", "Sigmoid")
Tanh = _simple("tanh", "Tanh")
ReLU6 = _simple("relu6", "ReLU6")
HardTanh = _simple("hard_tanh", "HardTanh")
SELU = _simple("selu", "SELU")
GELU = _simple("gelu", "GELU")
GELUApprox = _simple("gelu_approx", "GELUApprox")
SiLU = _simple("silu", "SiLU")
Swish = SiLU
HardSiLU = _simple("hard_silu", "HardSiLU")
HardSwish = HardSiLU
Mish = _simple("mish", "Mish")
Softplus = _simple("softplus", "Softplus")
Softsign = _simple("softsign", "Softsign")
LogSigmoid = _simple("log_sigmoid", "LogSigmoid")
SparsePlus = _simple("sparse_plus", "SparsePlus")
SparseSigmoid = _simple("sparse_sigmoid", "SparseSigmoid")


@_register("LeakyReLU")
class LeakyReLU(_Layer):
    """``kaun.activation.leaky_relu``: ``x`` for x >= 0, ``negative_slope * x`` otherwise."""

    function = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, **kwargs: Any) -> None:
        super().__init__(self.function, {"negative_slope": negative_slope}, **kwargs)


@_register("HardSigmoid")
class HardSigmoid(_Layer):
    """``kaun.activation.hard_sigmoid``: ``min(1, max(0, alpha * x + beta))``."""

    function = "hard_sigmoid"

    def __init__(self, alpha: float = 1.0 / 6.0, beta: float = 0.5, **kwargs: Any) -> None:
        super().__init__(self.function, {"alpha": alpha, "beta": beta}, **kwargs)


@_register("ELU")
class ELU(_Layer):
    """``kaun.activation.elu``: ``x`` for x >= 0, ``alpha * (exp(x) - 1)`` otherwise."""

    function = "elu"

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(self.function, {"alpha": alpha}, **kwargs)


@_register("CELU")
class CELU(_Layer):
    """``kaun.activation.celu``: ``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""

    function = "celu"

    def __init__(self, alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(self.function, {"alpha": alpha}, **kwargs)


@_register("Squareplus")
class Squareplus(_Layer):
    """``kaun.activation.squareplus``: ``0.5 * (x + sqrt(x^2 + b))``, b >= 0."""

    function = "squareplus"

    def __init__(self, b: float = 4.0, **kwargs: Any) -> None:
        super().__init__(self.function, {"b": b}, **kwargs)


@_register("GLU")
class GLU(_Layer):
    """``kaun.activation.glu``: halves of the input along ``axis``, ``first * sigmoid(second)``
    (the output has half the input's size along ``axis``; use this layer, not ``glu`` as a
    ``Dense`` activation, whose output shape Keras takes to be the layer's units)."""

    function = "glu"

    def __init__(self, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(self.function, {"axis": axis}, **kwargs)


def _gated(function: str, cls_name: str, act: str) -> type[_Layer]:
    """The layer class of a gated function (an ``axis``, as ``GLU``), registered as
    kaun>cls_name."""

    def __init__(self: _Layer, axis: int = -1, **kwargs: Any) -> None:
        _Layer.__init__(self, function, {"axis": axis}, **kwargs)

    cls = type(cls_name, (_Layer,), {
        "__init__": __init__, "function": function, "__module__": __name__,
        "__qualname__": cls_name,
        "__doc__": (
            f"``kaun.activation.{function}``: halves of the input along ``axis``, "
            f"``first * {act}(second)``; or called on two tensors by name, "
            f"``layer(gate=g, up=u)`` is ``u * {act}(g)`` (Hugging Face's gate_proj and "
            "up_proj). As ``GLU``: the output has half the input's size along ``axis``."),
    })
    return _register(cls_name)(cls)  # type: ignore[no-any-return]


SwiGLU = _gated("swiglu", "SwiGLU", "silu")
GeGLU = _gated("geglu", "GeGLU", "gelu")
GeGLUApprox = _gated("geglu_approx", "GeGLUApprox", "gelu_approx")
ReGLU = _gated("reglu", "ReGLU", "relu")
ReLUSquared = _simple("relu_squared", "ReLUSquared")
QuickGELU = _simple("quick_gelu", "QuickGELU")

_GATED = ("swiglu", "geglu", "geglu_approx", "reglu", "glu")


@_register("GatedMLP")
class GatedMLP(keras.layers.Layer):  # type: ignore[misc]
    """The gated MLP block of today's language models, as ``kaun.nn.GatedMLP``:
    ``down(act(gate_up(x)))``.

    ``gate_up`` is one ``Dense(2 * hidden)`` holding both projections, the up half first and the
    gate second (the split form's order, ``first * act(second)``); ``act`` the gated function
    ``activation`` ("swiglu", "geglu", "geglu_approx", "reglu" or "glu") on the last axis;
    ``down`` a ``Dense`` back to the input's last dimension. ``use_bias`` (default False, as
    LLaMA) and the initializers go to both ``Dense`` layers.
    """

    def __init__(self, hidden: int, activation: str = "swiglu", *, use_bias: bool = False,
                 kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        entry = _entry(activation, "kaun.keras.GatedMLP")
        if entry.name not in _GATED:
            raise ValueError(
                "kaun.keras.GatedMLP: activation must be a gated function (swiglu, geglu, "
                f"geglu_approx, reglu, glu), got {activation!r}"
            )
        if isinstance(hidden, bool) or not isinstance(hidden, numbers.Integral) or hidden < 1:
            raise ValueError(f"kaun.keras.GatedMLP: hidden must be a positive int, got {hidden!r}")
        self.hidden: int = int(hidden)
        self.activation: str = entry.name
        self.use_bias: bool = bool(use_bias)
        self.kernel_initializer: Any = keras.initializers.get(kernel_initializer)
        self.bias_initializer: Any = keras.initializers.get(bias_initializer)
        self._fn: Callable[..., Any] = FUNCTIONS[entry.name]
        dense: dict[str, Any] = {"use_bias": self.use_bias, "kernel_initializer": self.kernel_initializer,
                 "bias_initializer": self.bias_initializer, "dtype": self.dtype_policy}
        self.gate_up: Any = keras.layers.Dense(2 * self.hidden, name="gate_up", **dense)
        self._dense: dict[str, Any] = dense
        self.down: Any = None

    def build(self, input_shape: Any) -> None:
        dim = input_shape[-1]
        if dim is None:
            raise ValueError("kaun.keras.GatedMLP: the input's last dimension must be known")
        self.gate_up.build(input_shape)
        self.down = keras.layers.Dense(int(dim), name="down", **self._dense)
        self.down.build((*tuple(input_shape)[:-1], self.hidden))

    def call(self, inputs: Any) -> Any:
        return self.down(self._fn(self.gate_up(inputs), axis=-1))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "hidden": self.hidden, "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@_register("PReLU")
class PReLU(keras.layers.PReLU):  # type: ignore[misc]
    """``kaun.activation.prelu`` with a learnable alpha: ``keras.layers.PReLU``'s weights,
    initializer, regularizer, constraint and ``shared_axes``, computed by kaun.

    alpha has the shape of the input without its batch axis, with size 1 along ``shared_axes``
    (Keras's layout), is cast to the input's dtype in ``call`` (mixed precision) and gets its
    gradient summed over the broadcast axes. The default initial value is 0.25 (as
    ``torch.nn.PReLU`` and ``kaun.nn.PReLU``; ``keras.layers.PReLU`` starts at 0).
    """

    def __init__(
        self,
        alpha_initializer: Any = None,
        alpha_regularizer: Any = None,
        alpha_constraint: Any = None,
        shared_axes: Any = None,
        **kwargs: Any,
    ) -> None:
        if alpha_initializer is None:
            alpha_initializer = keras.initializers.Constant(0.25)
        super().__init__(alpha_initializer=alpha_initializer, alpha_regularizer=alpha_regularizer,
                         alpha_constraint=alpha_constraint, shared_axes=shared_axes, **kwargs)

    def call(self, inputs: Any) -> Any:
        return A.prelu(inputs, keras.ops.cast(self.alpha, inputs.dtype))


LAYERS: dict[str, Any] = {
    "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "relu6": ReLU6, "leaky_relu": LeakyReLU,
    "hard_tanh": HardTanh, "hard_sigmoid": HardSigmoid, "prelu": PReLU, "elu": ELU, "selu": SELU,
    "celu": CELU, "gelu": GELU, "gelu_approx": GELUApprox, "silu": SiLU, "swish": Swish,
    "hard_silu": HardSiLU, "hard_swish": HardSwish, "mish": Mish, "softplus": Softplus,
    "softsign": Softsign, "squareplus": Squareplus, "log_sigmoid": LogSigmoid, "glu": GLU,
    "sparse_plus": SparsePlus, "sparse_sigmoid": SparseSigmoid, "swiglu": SwiGLU, "geglu": GeGLU,
    "geglu_approx": GeGLUApprox, "reglu": ReGLU, "relu_squared": ReLUSquared,
    "quick_gelu": QuickGELU,
}
"""The layer class of each function name of ``kaun.activation.names(extras=True)`` (as
``kaun.nn.MODULES``)."""
