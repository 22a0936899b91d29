"""kaun.activation: the 25 activation functions of Kaun, and six of today's models beyond them
(the gated family swiglu, geglu, geglu_approx, reglu; relu_squared, quick_gelu), on any array.

``import kaun.activation as A``; ``A.gelu(x)`` takes a NumPy, PyTorch, JAX, Dask, CuPy or any
Array API array and returns the same kind of array, with the same shape, dtype and device,
differentiable through the framework's own autodiff. ``A.derivative(f)`` gives explicit
derivatives; ``A.get(name)`` and ``A.names()`` look functions up by name.
"""

from typing import Any as _Any

from ._defs import (
    celu,
    elu,
    geglu,
    geglu_approx,
    gelu,
    gelu_approx,
    glu,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    leaky_relu,
    log_sigmoid,
    mish,
    prelu,
    quick_gelu,
    reglu,
    relu,
    relu6,
    relu_squared,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    sparse_plus,
    sparse_sigmoid,
    squareplus,
    swiglu,
    swish,
    tanh,
)
from ._derivative import derivative
from ._registry import get, names


def info() -> dict[str, _Any]:
    """Which path serves NumPy, Dask and torch CPU arrays on this machine, and why: ``path`` is
    ``"prebuilt"`` (kernels shipped in the wheel), ``"compiled here"`` (compiled by this machine's C
    compiler, kept in the cache) or ``"formulas"`` (array operations; ``why`` says why); with the
    instruction-set level (``isa``), the compiler, the runtime and the cache; ``gpu`` says what
    serves CUDA tensors (the Triton kernels, or the formulas where triton is missing),
    ``torch_ops`` whether eager torch CPU calls take kaun's C++ operator (kaun._kernels.torchops)
    or the Python path, and why. It loads
    the runtime and one kernel to find out (compiling them first where it must): what it reports
    serves. ``jax`` says what ``jax.jit`` on the CPU lowers to: ``path`` "ffi" (the compiled
    kernels through an XLA FFI custom call, for the functions listed), "formulas" (``why``),
    "pending" (jax not imported yet: info() neither imports it nor builds the FFI handler) or
    None where jax is not installed. ``kaun-activation cache`` prints the same, the handler
    loaded."""
    from .. import _kernels
    from .._core import ALL
    from .._kernels import gpu, jaxffi, torchops

    return {**_kernels.status(ALL["sigmoid"]), "gpu": gpu.describe(), "torch_ops": torchops.describe(),
            "jax": jaxffi.state()}


__all__ = [
    "relu",
    "sigmoid",
    "tanh",
    "relu6",
    "leaky_relu",
    "hard_tanh",
    "hard_sigmoid",
    "prelu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "gelu_approx",
    "silu",
    "swish",
    "hard_silu",
    "hard_swish",
    "mish",
    "softplus",
    "softsign",
    "squareplus",
    "log_sigmoid",
    "glu",
    "sparse_plus",
    "sparse_sigmoid",
    # beyond the spec: the gated family and two elementwise ones of today's models
    "swiglu",
    "geglu",
    "geglu_approx",
    "reglu",
    "relu_squared",
    "quick_gelu",
    "derivative",
    "get",
    "names",
    "info",
]
