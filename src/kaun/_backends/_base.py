"""What every adapter shares: evaluating a formula in the working dtype."""

from __future__ import annotations

from typing import Any

from ..activation._dispatch import halves
from ..activation._entry import Entry, Formula
from ..activation._params import dtype_name

HALF = frozenset({"float16", "bfloat16"})


class Backend:
    """Evaluates entries with plain array operations; adapters override what they do better."""

    name = "generic"
    converts = False
    o: Any

    def work(self, f: Formula, x: Any, *args: Any) -> Any:
        """f(o, x, *args) computed in the working dtype and rounded once to x's dtype."""
        if dtype_name(x.dtype) in HALF:
            y = f(self.o, self.astype(x, self.f32), *args)
            return self.astype(y, x.dtype)
        return f(self.o, x, *args)

    f32: Any

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return self.work(entry.value, x, *p)

    def fast(self, entry: Entry, p: tuple[float, ...]) -> Any:
        """A callable x -> elementwise(entry, x, p) for arrays of the type just served, that
        returns None for any x it cannot serve without the checks (see ``_dispatch.apply``);
        None: no fast path."""
        return None

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return self.work(entry.deriv, x, *p)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        return self.work(lambda o, x, a: entry.value(o, x, self.astype(a, x.dtype)), x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        a, b = halves(x, ax)
        return self.work(lambda o, a, b: entry.value(o, a, self.astype(b, a.dtype)), a, b)
