"""What every adapter shares: evaluating a formula with array operations, in the working dtype.

This is the formula path: the oracle of the compiled kernels and the way every array that no
kernel serves is computed (JAX, CUDA and other devices, array-api-strict, CuPy, torch under
``torch.compile`` or ``torch.func``, a machine without a C compiler).
"""

from __future__ import annotations

from typing import Any

from .._core import HALF, ORDERS, Entry, dtype_name, halves


class Backend:
    """Evaluates entries with plain array operations; adapters override what they do better."""

    name = "generic"
    converts = False
    o: Any
    f32: Any
    # check(qualname, array, arg): what the dtype does not tell (torch: a dense layout); raises
    # TypeError naming the function and the argument. None: nothing to check.
    check: Any = None

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    def ops(self, x: Any) -> Any:
        """The formula vocabulary for arrays like x."""
        return self.o

    def formula(self, entry: Entry, which: str, xs: tuple[Any, ...], p: tuple[float, ...]) -> Any:
        """entry's ``which`` formula (see ``kaun._core.ORDERS``) of the arrays xs, computed in the working
        dtype (float32 for half precision) and rounded once to the dtype of xs[0] (each element of
        a tuple result)."""
        f = entry.formula_of(which)
        dt = xs[0].dtype
        half = dtype_name(dt) in HALF
        if half:
            xs = tuple(self.astype(v, self.f32) for v in xs)
        args = entry.prep(p, 64 if dtype_name(xs[0].dtype) == "float64" else 32)
        y = f(self.ops(xs[0]), *xs, *args)
        if half:
            return tuple(self.astype(v, dt) for v in y) if isinstance(y, tuple) else self.astype(y, dt)
        return y

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        return self.formula(entry, "value", (x,), p)

    def fast(self, entry: Entry, p: tuple[float, ...]) -> Any:
        """A callable x -> elementwise(entry, x, p) for arrays of the type just served, that
        returns None for any x it cannot serve without the checks (see ``_dispatch.apply``);
        None: no fast path."""
        return None

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        """The derivative of that order (1, 2 or 3) of an elementwise entry at x."""
        return self.formula(entry, ORDERS[order], (x,), p)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        return self.formula(entry, "value", (x, alpha), ())

    def prelu_deriv(self, entry: Entry, x: Any, alpha: Any) -> tuple[Any, Any]:
        """(d/dx, d/dalpha) of prelu at x, before alpha's broadcast axes are summed."""
        return self.formula(entry, "deriv", (x, alpha), ())  # type: ignore[no-any-return]

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        return self.formula(entry, "value", halves(x, ax), ())

    def glu_deriv(self, entry: Entry, x: Any, ax: int) -> tuple[Any, Any]:
        """(d/da, d/db) of glu at x's halves a and b along ax."""
        return self.formula(entry, "deriv", halves(x, ax), ())  # type: ignore[no-any-return]

    def gated(self, entry: Entry, a: Any, b: Any) -> Any:
        """A glu-kind entry (glu, swiglu, ...) of two separate arrays of the same shape and dtype:
        ``a * act(b)`` (a: the first half, "up"; b: the second, "gate")."""
        return self.formula(entry, "value", (a, b), ())
