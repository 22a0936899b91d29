"""NumPy (and Dask's NumPy chunks): the compiled kernels (``kaun._kernels``), one pass over the
array; the formulas on NumPy's ufuncs where no kernel serves (floating-point warnings silenced:
the formulas produce inf or NaN only in branches that ``where`` discards)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _kernels as K
from .._core import ALL, HALF, ORDERS, Entry, dtype_name, halves
from ._base import Backend


class NumpyOps:
    exp = staticmethod(np.exp)
    exp_normal = staticmethod(np.exp)  # (kaun._elementary.exp_normal: the kernels' own)
    expm1 = staticmethod(np.expm1)
    log1p = staticmethod(np.log1p)
    tanh = staticmethod(np.tanh)
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)
    where = staticmethod(np.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return np.asarray(c).astype(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return float(np.finfo(x.dtype).max)

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == np.float64 else 32


def _same_kind(x: Any, y: Any) -> Any:
    """The kind of result a NumPy ufunc gives for x: a NumPy scalar for a NumPy scalar, the mask
    kept for a masked array, a subclass wrapped by its own ``__array_wrap__`` (an np.matrix stays
    one, a memmap gives an ndarray), an ndarray for an ndarray (a 0-d one too: the Array API's
    rule, where ufuncs return a scalar)."""
    if isinstance(y, tuple):
        return tuple(_same_kind(x, v) for v in y)
    if isinstance(x, np.generic):
        return y[()] if isinstance(y, np.ndarray) else y
    y = y if type(y) is np.ndarray else np.asarray(y)
    if type(x) is np.ndarray or not isinstance(x, np.ndarray):
        return y
    if isinstance(x, np.ma.MaskedArray):
        return np.ma.MaskedArray(y, mask=np.ma.getmaskarray(x).copy())
    return x.__array_wrap__(y, None, False)


def _native(a: np.ndarray) -> np.ndarray:
    """a in native byte order (a copy only where it is not)."""
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


def _plain(x: Any) -> np.ndarray:
    """x as an ndarray that a kernel can read as one flat run of elements: native byte order,
    aligned, C- or Fortran-contiguous (copied only where it is not)."""
    a = np.asarray(x)
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    f = a.flags
    if not f.aligned or not (f.c_contiguous or f.f_contiguous):
        a = np.ascontiguousarray(a)
    return a


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]  # type: ignore[no-any-return]


def _threads(n: int) -> int:
    """The threads for n elements: asked of kaun._kernels.threads only where more than one can
    run (runtime.c: a thread per GRAIN elements)."""
    return K.threads() if n >= 2 * K.GRAIN else 1


def run(fn: int, c: K.Compiled, x: Any, g: Any = None) -> np.ndarray:
    """Kernel fn over every element of x (and of the cotangent g, of x's shape and dtype), into
    a new array of x's shape, dtype and memory order."""
    a = _plain(x)
    y = np.empty_like(a, subok=False)
    gp = None
    if g is not None:  # laid out as a: the same memory order, native, not broadcast
        gb = np.broadcast_to(np.asarray(g).astype(a.dtype, copy=False), a.shape)
        gb = np.ascontiguousarray(gb) if a.flags.c_contiguous else np.asfortranarray(gb)
        gp = _ptr(gb)
    K.runtime().kaun_run_flat(fn, _ptr(a), gp, _ptr(y), a.size, c.p, c.np, _threads(a.size))
    return y


class NumpyBackend(Backend):
    name = "numpy"
    o = NumpyOps()
    f32 = np.float32

    def formula(self, entry: Entry, which: str, xs: tuple[Any, ...], p: tuple[float, ...]) -> Any:
        # on plain arrays (an np.matrix multiplies as matrices) in native byte order (a result
        # is native, as the kernels' are), the kind restored after
        plain = tuple(_native(np.asarray(v)) if isinstance(v, np.ndarray) else v for v in xs)
        with np.errstate(all="ignore"):
            return _same_kind(xs[0], super().formula(entry, which, plain, p))

    def _kernel(self, entry: Entry, x: Any, p: tuple[float, ...]) -> K.Compiled | None:
        name = dtype_name(x.dtype)
        if name not in K.IO:
            return None
        return K.compiled(entry, p, name)

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        c = self._kernel(entry, x, p)
        if c is None:
            return self.formula(entry, "value", (x,), p)
        return _same_kind(x, run(c.value, c, x))

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        c = self._kernel(entry, x, p)
        fns = None if c is None else c.order(order)
        if fns is None:
            return self.formula(entry, ORDERS[order], (x,), p)
        return _same_kind(x, run(fns[0], c, x))  # type: ignore[arg-type]

    def vjp(self, entry: Entry, x: Any, g: Any, p: tuple[float, ...]) -> Any:
        """g * f'(x) in one pass (g of x's shape and dtype)."""
        c = self._kernel(entry, x, p)
        if c is None:
            d = self.formula(entry, "deriv", (x,), p)
            if dtype_name(x.dtype) in HALF:
                return _same_kind(x, (np.asarray(g, np.float32) * np.asarray(d, np.float32)).astype(x.dtype))
            return _same_kind(x, g * d)
        return _same_kind(x, run(c.vjp, c, x, g))

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        c = self._kernel(entry, x, ())
        y = super().glu(entry, np.asarray(x), ax) if c is None else glu_run(c, np.asarray(x), ax)
        if isinstance(x, np.ma.MaskedArray):  # masked where either half is
            ma, mb = halves(np.ma.getmaskarray(x), ax)
            return np.ma.MaskedArray(y, mask=ma | mb)
        if isinstance(x, np.generic) or type(x) is np.ndarray:
            return y
        return x.__array_wrap__(y, None, False)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        """An alpha of one element: prelu with a number alpha, the kernel (the product alpha x,
        rounded once, bitwise the same as broadcasting it)."""
        if alpha.size == 1 and dtype_name(x.dtype) in K.IO and isinstance(x, np.ndarray):
            a = float(alpha.reshape(-1)[0])
            if a != 0.0 and np.isfinite(a):  # (0 * -inf: the formula's own form)
                return self.elementwise(ALL["prelu_scalar"], x, (a,))
        return super().prelu(entry, x, alpha)

    def glu_deriv(self, entry: Entry, x: Any, ax: int) -> tuple[Any, Any]:
        with np.errstate(all="ignore"):
            return super().glu_deriv(entry, x, ax)

    def gated(self, entry: Entry, a: Any, b: Any) -> Any:
        """The two-operand row kernel over the two arrays (the same bits as the split form)."""
        y = glu_pair(entry, np.asarray(a), np.asarray(b))
        if isinstance(a, np.generic) and isinstance(b, np.generic):
            return y[()]
        if isinstance(a, np.ma.MaskedArray) or isinstance(b, np.ma.MaskedArray):  # as the split
            return np.ma.MaskedArray(y, mask=np.ma.getmaskarray(a) | np.ma.getmaskarray(b))
        return y

    def prelu_deriv(self, entry: Entry, x: Any, alpha: Any) -> tuple[Any, Any]:
        with np.errstate(all="ignore"):
            return super().prelu_deriv(entry, x, alpha)


def glu_pair(entry: Entry, a: Any, b: Any) -> Any:
    """glu's value of two halves of the same shape (a Dask chunk of each), by the kernel."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"glu's halves differ in shape: {np.shape(a)} and {np.shape(b)}")
    c = K.compiled(entry, (), dtype_name(a.dtype)) if dtype_name(a.dtype) in K.IO else None
    if c is None:
        with np.errstate(all="ignore"):
            return NumpyBackend().formula(entry, "value", (a, b), ())
    a, b = _plain(a), np.asarray(b)
    b = np.ascontiguousarray(b) if a.flags.c_contiguous else np.asfortranarray(b)
    b = b.astype(a.dtype, copy=False)
    y = np.empty_like(a, subok=False)
    K.runtime().kaun_run_rows(c.value, _ptr(a), _ptr(b), None, _ptr(y), None, 1, a.size, 0, 0, 0,
                              c.p, c.np, _threads(a.size))
    return y


def glu_run(c: K.Compiled, x: np.ndarray, ax: int) -> np.ndarray:
    """glu's value kernel over x viewed as (rows, 2, length) (C order): the two halves of each
    row side by side."""
    x = np.ascontiguousarray(_plain(x))
    shape = x.shape
    rows, length = K.glu_rows(shape, ax)
    out = np.empty(shape[:ax] + (shape[ax] // 2,) + shape[ax + 1:], dtype=x.dtype)
    if out.size:
        K.runtime().kaun_run_rows(c.value, _ptr(x), _ptr(x) + length * x.itemsize, None, _ptr(out),
                                  None, rows, length, 2 * length, 0, length, c.p, c.np, _threads(out.size))
    return out


class PythonBackend(NumpyBackend):
    """Python numbers and nested lists, turned into NumPy arrays first."""

    converts = True

    def convert(self, entry: Entry, x: Any) -> Any:
        try:
            a = np.asarray(x)
        except ValueError as e:  # a ragged nested list
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got a ragged nested list"
            ) from e
        if a.dtype.kind in "iu" and not entry.ints:
            a = a.astype(np.float64)
        elif a.dtype.kind not in "biufc":
            raise TypeError(
                f"{entry.qualname}: x must be an array or a real number (or a nested list of "
                f"them), got {type(x).__name__} that NumPy reads as {a.dtype}"
            )
        return a[()] if a.ndim == 0 else a  # a number gives a NumPy scalar, as NumPy's ufuncs
