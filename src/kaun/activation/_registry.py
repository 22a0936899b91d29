"""Functions by name: ``get("leaky_relu", negative_slope=0.2)`` and ``names()``."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

from ._defs import ENTRIES, hard_swish, swish

# Names other libraries use for the same functions.
ALIASES = {
    "swish": "silu",
    "hard_swish": "hard_silu",
    "hardswish": "hard_silu",
    "hardsilu": "hard_silu",
    "hardsigmoid": "hard_sigmoid",
    "hardtanh": "hard_tanh",
    "logsigmoid": "log_sigmoid",
    "leakyrelu": "leaky_relu",
    "softsign": "softsign",
    "soft_sign": "softsign",
    "soft_plus": "softplus",
    "gelu_tanh": "gelu_approx",
    "approximate_gelu": "gelu_approx",
    "sparseplus": "sparse_plus",
    "sparsesigmoid": "sparse_sigmoid",
    "relu_6": "relu6",
}
_PUBLIC = {"swish": swish, "hard_swish": hard_swish}


def names() -> list[str]:
    """The 25 function names of the spec, in the spec's order."""
    out = list(ENTRIES)
    out.insert(out.index("silu") + 1, "swish")
    out.insert(out.index("hard_silu") + 1, "hard_swish")
    return out


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
    if key in _PUBLIC:
        fn = _PUBLIC[key]
    else:
        entry = ENTRIES.get(ALIASES.get(key, key))
        if entry is None:
            close = difflib.get_close_matches(key, list(ENTRIES) + list(ALIASES), n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ValueError(f"kaun.activation.get: unknown activation {name!r}{hint}")
        assert entry.fn is not None
        fn = entry.fn
    if not params:
        return fn
    entry = fn._kaun_entry  # type: ignore[attr-defined]
    allowed = {n for n, _ in entry.params} | ({"alpha"} if entry.kind == "prelu" else set())
    bad = set(params) - allowed
    if bad:
        raise TypeError(
            f"kaun.activation.get: {entry.name} takes {sorted(allowed) or 'no hyper-parameters'}, "
            f"got {sorted(bad)}"
        )
    return functools.partial(fn, **params)
