"""What the library knows about one activation: its math, its parameters, its checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Formula = Callable[..., Any]


@dataclass(eq=False)
class Entry:
    """One activation function.

    ``value(o, x, *params)`` and ``deriv(o, x, *params)`` are formulas over the ops namespace
    ``o`` (see ``kaun._backends``), evaluated in the working dtype (float32 for half precision).
    ``kind`` is ``"elementwise"``, ``"prelu"`` (x and an alpha array) or ``"glu"`` (a split).
    """

    name: str
    section: str
    formula: str
    value: Formula
    deriv: Formula
    params: tuple[tuple[str, float], ...] = ()
    check: Callable[[str, tuple[Any, ...]], None] | None = None
    kind: str = "elementwise"
    ints: bool = False
    smooth: bool = False
    fn: Callable[..., Any] | None = field(default=None, repr=False)
    # (array type, raw hyper-parameters) -> a callable that serves x of that type directly, or
    # returns None to send it down the checked path (see ``_dispatch.apply``)
    fast: dict[Any, Callable[[Any], Any]] = field(default_factory=dict, repr=False)

    @property
    def qualname(self) -> str:
        return f"kaun.activation.{self.name}"
