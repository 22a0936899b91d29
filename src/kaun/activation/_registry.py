"""Functions by name: ``get("leaky_relu", negative_slope=0.2)`` and ``names()``."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any, cast

from .._core import ENTRIES, EXTRAS, Entry
from ._defs import hard_swish, swish

# Names other libraries use for the same functions.
ALIASES = {
    # the spec's own aliases
    "swish": "silu",
    "hard_swish": "hard_silu",
    # torch.nn class names, lower-cased (ReLU, Hardswish, LeakyReLU, LogSigmoid, ...)
    "hardswish": "hard_silu",
    "hardsigmoid": "hard_sigmoid",
    "hardtanh": "hard_tanh",
    "logsigmoid": "log_sigmoid",
    "leakyrelu": "leaky_relu",
    # other spellings
    "hardsilu": "hard_silu",
    "h_swish": "hard_silu",
    "hswish": "hard_silu",
    "h_sigmoid": "hard_sigmoid",
    "soft_sign": "softsign",
    "soft_plus": "softplus",
    "log_sig": "log_sigmoid",
    "logistic": "sigmoid",
    "relu_6": "relu6",
    "sparseplus": "sparse_plus",
    "sparsesigmoid": "sparse_sigmoid",
    "squared_plus": "squareplus",
    # the tanh form of GELU (Hugging Face: gelu_new, gelu_fast, gelu_pytorch_tanh)
    "gelu_tanh": "gelu_approx",
    "approximate_gelu": "gelu_approx",
    "geluapprox": "gelu_approx",
    "gelu_new": "gelu_approx",
    "gelu_fast": "gelu_approx",
    "gelu_pytorch_tanh": "gelu_approx",
    # beyond the spec, by Hugging Face's ACT2FN names and others
    "relu2": "relu_squared",  # ACT2FN's ReLUSquaredActivation
    "squared_relu": "relu_squared",
    "quickgelu": "quick_gelu",
    "gelu_quick": "quick_gelu",
    "silu_glu": "swiglu",
    "swish_glu": "swiglu",
    "gelu_glu": "geglu",
    "geglu_tanh": "geglu_approx",
    "relu_glu": "reglu",
    "gegluapprox": "geglu_approx",  # kaun.nn's class names, lower-cased
    "relusquared": "relu_squared",
}
_PUBLIC = {"swish": swish, "hard_swish": hard_swish}


def names(*, extras: bool = False) -> list[str]:
    """The 25 function names of the spec, in the spec's order; with ``extras=True`` followed by
    the functions beyond the spec (swiglu, geglu, geglu_approx, reglu, relu_squared, quick_gelu)."""
    out = list(ENTRIES)
    out.insert(out.index("silu") + 1, "swish")
    out.insert(out.index("hard_silu") + 1, "hard_swish")
    return out + list(EXTRAS) if extras else out


def get(name: str, /, **params: Any) -> Callable[..., Any]:
    """The function called ``name`` (aliases of other libraries accepted), with ``params`` bound.

    An unknown name raises ``ValueError`` with the closest matches.

    Example:
        >>> f = A.get("leaky_relu", negative_slope=0.2)
        >>> f(np.array([-1.0]))
        array([-0.2])
    """
    if not isinstance(name, str):
        raise TypeError(f"kaun.activation.get: name must be a str, got {type(name).__name__}")
    key = name.strip().lower().replace("-", "_")
    fn: Callable[..., Any]
    if key in _PUBLIC:
        fn = _PUBLIC[key]
    else:
        found = ENTRIES.get(ALIASES.get(key, key)) or EXTRAS.get(ALIASES.get(key, key))
        if found is None:
            close = difflib.get_close_matches(key, [*ENTRIES, *EXTRAS, *ALIASES], n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"kaun.activation.get: unknown activation {name!r}{hint}")
        fn = cast("Callable[..., Any]", found.fn)  # set by @_register for every entry
    if not params:
        return fn
    entry: Entry = getattr(fn, "_kaun_entry")  # noqa: B009
    allowed = entry.keywords
    bad = set(params) - allowed
    if bad:
        raise TypeError(
            f"kaun.activation.get: {entry.name} takes {sorted(allowed) or 'no hyper-parameters'}, "
            f"got {sorted(bad)}"
        )
    return functools.partial(fn, **params)
