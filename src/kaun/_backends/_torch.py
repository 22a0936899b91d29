"""PyTorch: torch's own kernels where they meet our bound, else the shared formulas, evaluated
with as few fresh allocations as the context allows.

Three ways to serve a call, chosen per call by cheap checks (``_eager``/``_needs_grad``):

* **native**: torch's own op, forward and backward, where both meet our accuracy bound and the
  derivative conventions (``_FULL``: relu, relu6, hard_tanh, leaky_relu, elu, selu, celu with
  alpha 1, softplus with a threshold that is exact for the dtype). Everything (autograd of any
  order, ``torch.func``, ``torch.compile``) is then torch's own business.
* **no autograd needed** (the input does not require grad, or grad mode is off; no
  ``torch.func`` transform and no forward-mode AD level active; not under ``torch.compile``): the
  value is computed directly, without an ``autograd.Function``. Large arrays are evaluated
  through ``_T``, which overwrites temporaries in place (see below); torch's own forward kernel
  is used where it is accurate except in a tail (``_FWD``: one min/max reduction says whether
  any element lies there, and only those are recomputed by the formula).
* **autograd**: one ``torch.autograd.Function`` per activation that saves only its input;
  forward as above, backward from the derivative formula (in differentiable torch operations
  when a graph is being built, so double backward works); without a graph, from torch's
  backward kernels where they are accurate (``_BWD``, tails again by the formula) or the
  formula in place. ``setup_context``/``jvp``/``generate_vmap_rule`` make it usable under
  ``torch.func`` and ``torch.compile`` (which see only plain, out-of-place formula evaluation).

Why in place: on CPU every fresh input-sized tensor costs page faults and zeroing by the kernel;
at 2^24 float32 elements ``torch.exp(x)`` takes about 3x ``torch.exp(x, out=buf)``.

gelu, gelu_approx and squareplus (value and derivative) and mish (derivative) on float32 and
half input are computed in float64 by a plain formula and rounded once (``_WIDE``,
``_WIDE_D``): as accurate as the compensated float32 formula or better (0.5 ulp), in a tenth of
the passes; eager evaluation goes chunk by chunk through reused float64 scratch tensors.
float64 input keeps the shared formula.

Only plain ``torch.Tensor`` objects (``type(t) is torch.Tensor``) take the in-place, storage and
boolean-indexing fast paths; a subclass (DTensor, nn.Parameter, ...) takes the plain ones.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad as _fwd_ad

from ..activation._entry import Entry
from ._base import Backend

_HALF = (torch.float16, torch.bfloat16)
_INF = float("inf")

# Arrays of at least this many elements are evaluated with in-place reuse of temporaries; below
# it the allocator recycles small blocks cheaply and the wrapper's Python cost would dominate.
INPLACE_MIN = 1 << 15


class TorchOps:
    """The formula vocabulary on plain tensors (out of place, differentiable, traceable)."""

    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log1p = staticmethod(torch.log1p)
    tanh = staticmethod(torch.tanh)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    where = staticmethod(torch.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return c.to(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return torch.finfo(x.dtype).max

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == torch.float64 else 32


O = TorchOps()  # noqa: E741


# -- in-place evaluation of a formula --------------------------------------------------------


def _rc(a: Any) -> int:
    return sys.getrefcount(a)


class _Probe:
    """Mirrors the call structure of ``_T`` and ``InplaceOps`` (same depth of frames)."""

    def _b(self, other: Any) -> int:
        return _rc(self)

    def __mul__(self, other: Any) -> int:
        return self._b(other)

    def _r(self) -> int:
        return _rc(self)

    def __rmul__(self, other: Any) -> int:
        return self._r()

    def __neg__(self) -> int:
        return self._r()


def _probe_free(a: Any) -> int:
    return _rc(a)


def _probe_fn(a: Any) -> int:
    return _probe_free(a)


def _calibrate() -> tuple[int, int, int]:
    """The reference counts that a temporary (held by nothing but the interpreter's stack) shows
    inside a binary operator, a reflected or unary one and a function of the ops namespace.
    (0, 0, 0), no reuse, where a temporary cannot be told from a named value (an interpreter
    that borrows references) or the paths disagree."""
    p = _Probe()
    got = (
        (_Probe() * 1.0, p * 1.0),
        (1.0 * _Probe(), 1.0 * p),
        (-_Probe(), -p),
        (_probe_fn(_Probe()), _probe_fn(p)),
    )
    ok = all(t < n for t, n in got) and got[1][0] == got[2][0]
    return (got[0][0], got[1][0], got[3][0]) if ok else (0, 0, 0)


_RC_BIN, _RC_RBIN, _RC_FN = _calibrate()


def _raw(v: Any) -> Any:
    return v.t if type(v) is _T else v


def _fits(a: Any, b: Any) -> bool:
    """Whether ``a OP b`` (b a tensor or a Python number) has a's shape and dtype."""
    if not isinstance(b, torch.Tensor):
        return isinstance(b, (int, float))
    return bool(b.dtype == a.dtype) and bool(
        b.shape == a.shape
        or torch.broadcast_shapes(a.shape, b.shape) == a.shape  # type: ignore[no-untyped-call]
    )


class _T:
    """A tensor inside a formula that is evaluated eagerly with autograd off.

    ``own`` marks temporaries created here. An owned temporary whose reference count shows that
    only the interpreter's stack holds it (the result of a subexpression, not a named value) is
    overwritten by the next operation, which gives the same bits as the out-of-place operation
    (torch's own ``c / t`` is ``t.reciprocal() * c``, ``c - t`` is ``-t + c``, exactly).
    """

    __slots__ = ("t", "own")

    def __init__(self, t: Any, own: bool) -> None:
        self.t = t
        self.own = own

    @property
    def dtype(self) -> Any:
        return self.t.dtype

    def _bin(self, op: Any, other: Any) -> _T:
        o = _raw(other)
        if self.own and _rc(self) <= _RC_BIN and _fits(self.t, o):
            return _T(op(self.t, o, out=self.t), True)
        if (
            type(other) is _T and other.own and _rc(other) <= _RC_BIN
            and _fits(other.t, self.t)
        ):
            return _T(op(self.t, o, out=other.t), True)
        return _T(op(self.t, o), True)

    def __add__(self, other: Any) -> _T:
        return self._bin(torch.add, other)

    def __sub__(self, other: Any) -> _T:
        return self._bin(torch.sub, other)

    def __mul__(self, other: Any) -> _T:
        return self._bin(torch.mul, other)

    def __truediv__(self, other: Any) -> _T:
        return self._bin(torch.div, other)

    def _reuse(self) -> bool:
        return self.own and _rc(self) <= _RC_RBIN

    def __radd__(self, other: Any) -> _T:
        if self._reuse() and isinstance(other, (int, float)):
            return _T(self.t.add_(other), True)
        return _T(other + self.t, True)

    def __rmul__(self, other: Any) -> _T:
        if self._reuse() and isinstance(other, (int, float)):
            return _T(self.t.mul_(other), True)
        return _T(other * self.t, True)

    def __rsub__(self, other: Any) -> _T:
        if self._reuse() and isinstance(other, (int, float)):
            return _T(self.t.neg_().add_(other), True)
        return _T(other - self.t, True)

    def __rtruediv__(self, other: Any) -> _T:
        if self._reuse() and isinstance(other, (int, float)):
            t = self.t.reciprocal_()
            return _T(t if other == 1 else t.mul_(other), True)
        return _T(other / self.t, True)

    def __neg__(self) -> _T:
        if self._reuse():
            return _T(self.t.neg_(), True)
        return _T(-self.t, True)

    def __lt__(self, other: Any) -> Any:
        return self.t < _raw(other)

    def __le__(self, other: Any) -> Any:
        return self.t <= _raw(other)

    def __gt__(self, other: Any) -> Any:
        return self.t > _raw(other)

    def __ge__(self, other: Any) -> Any:
        return self.t >= _raw(other)

    __hash__ = None  # type: ignore[assignment]


def _free(a: Any) -> bool:
    return type(a) is _T and a.own and _rc(a) <= _RC_FN


def _same(r: Any, c: Any, other: Any) -> bool:
    """Whether where(c, r, other) has r's shape and dtype."""
    if r.shape != c.shape:
        return False
    if isinstance(other, torch.Tensor):
        return bool(other.dtype == r.dtype and other.shape == r.shape)
    return isinstance(other, (int, float))


def _unary(name: str) -> Any:
    op = getattr(torch, name)
    inplace = getattr(torch, name + "_")

    def f(a: Any) -> _T:
        if _free(a):
            return _T(inplace(a.t), True)
        return _T(op(a.t), True)

    return staticmethod(f)


class InplaceOps(TorchOps):
    """The formula vocabulary on ``_T``: out of place for named values, in place for temporaries.
    Only for eager evaluation with autograd off."""

    exp = _unary("exp")
    expm1 = _unary("expm1")
    log1p = _unary("log1p")
    tanh = _unary("tanh")
    sqrt = _unary("sqrt")
    abs = _unary("abs")

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> _T:
        if _free(x):
            return _T(x.t.clamp_(lo, hi), True)
        return _T(torch.clamp(x.t, lo, hi), True)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> _T:  # type: ignore[override]
        c, ra, rb = _raw(c), _raw(a), _raw(b)
        if _free(a) and _same(ra, c, rb):
            if isinstance(rb, torch.Tensor):
                return _T(torch.where(c, ra, rb, out=ra), True)
            return _T(ra.masked_fill_(c.logical_not(), rb), True)
        if _free(b) and _same(rb, c, ra):
            if isinstance(ra, torch.Tensor):
                return _T(torch.where(c, ra, rb, out=rb), True)
            return _T(rb.masked_fill_(c, ra), True)
        return _T(torch.where(c, ra, rb), True)

    @staticmethod
    def mask(c: Any, like: Any) -> _T:
        return _T(_raw(c).to(like.dtype), True)


IO = InplaceOps()


def _unwrap(v: Any) -> Any:
    if type(v) is _T:
        return v.t
    if isinstance(v, tuple):
        return tuple(_unwrap(u) for u in v)
    return v


def _wrapped(f: Any, x: Any, args: tuple[Any, ...]) -> Any:
    """f(IO, x, *args) on float32/float64 x, with tensor args wrapped as named (not owned)."""
    return _unwrap(f(IO, _T(x, False), *(_T(a, False) if isinstance(a, torch.Tensor) else a
                                          for a in args)))


# -- evaluation helpers ------------------------------------------------------------------------


def _eager() -> bool:
    """No tracer, no torch.func transform, no forward-mode AD: Python control flow on values and
    in-place work on temporaries are safe."""
    return not (
        torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
        or _fwd_ad._current_level >= 0
    )


def _work(f: Any, x: Any, *args: Any) -> Any:
    """f(O, x, *args) in the working dtype (float32 for half), rounded once to x's dtype."""
    if x.dtype in _HALF:
        return f(O, x.float(), *args).to(x.dtype)
    return f(O, x, *args)


def _exact(*ts: Any) -> bool:
    """Whether every tensor among ts is a plain ``torch.Tensor``: only those take the in-place,
    storage and boolean-indexing fast paths (a subclass such as DTensor, or nn.Parameter, may
    have no storage of its own or other semantics for them)."""
    return all(type(t) is torch.Tensor for t in ts if isinstance(t, torch.Tensor))


def _work_fast(f: Any, x: Any, *args: Any) -> Any:
    """``_work`` for eager evaluation with autograd off: temporaries overwritten in place."""
    if x.numel() < INPLACE_MIN or not _RC_BIN or not _exact(x, *args):
        return _work(f, x, *args)
    if x.dtype in _HALF:
        args = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
        y = _wrapped(f, x.float(), args)
        return tuple(v.to(x.dtype) for v in y) if isinstance(y, tuple) else y.to(x.dtype)
    return _wrapped(f, x, args)


def _scaled(g: Any, d: Any, x: Any = None) -> Any:
    """g * d, with d computed in float32 for half precision and rounded once; written into d
    when x (the saved input) is given and d is a temporary of g's shape, not sharing x's memory."""
    inplace = (
        x is not None and d.shape == g.shape and _exact(g, d, x)
        and d.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    )
    if g.dtype in _HALF:
        if inplace:
            return d.mul_(g).to(g.dtype)
        return (g.float() * d).to(g.dtype)
    return d.mul_(g) if inplace else g * d


def _dwork(f: Any, x: Any, *args: Any) -> Any:
    return f(O, x.float(), *args) if x.dtype in _HALF else f(O, x, *args)


def _dwork_fast(f: Any, x: Any, *args: Any) -> Any:
    """The derivative in the working dtype (not rounded), for a backward without a graph."""
    if x.numel() < INPLACE_MIN or not _RC_BIN or not _exact(x, *args):
        return _dwork(f, x, *args)
    if x.dtype in _HALF:
        x = x.float()
        args = tuple(a.float() if isinstance(a, torch.Tensor) else a for a in args)
    return _wrapped(f, x, args)


def _no_graph() -> bool:
    """In a backward: no graph is being built (create_graph=False) and eager."""
    return not torch.is_grad_enabled() and _eager()


# -- torch's own kernels -----------------------------------------------------------------------


def _softplus(x: Any) -> Any:
    # torch returns x past the threshold: log1p(exp(-t)) must be below half an ulp of t there.
    return F.softplus(x, 1.0, 40.0 if x.dtype == torch.float64 else 20.0)


# selu in float32 (and half, computed in float32): torch's lambda is float32's nearest, above
# the true one, so lambda x overflows for x in (3.2386221e38, 3.2386222e38] where the true value is
# finite. elu with scale = lambda rounded down (as the formula) and an alpha such that the float32
# product alpha scale is torch's own: the negative side is bitwise torch's selu. (float64: the
# nearest lambda is below the true one already.)
_SELU_SCALE32 = 1.0507009029388428  # float32's largest below lambda = 1.0507009873554804934...
_SELU_ALPHA32 = 1.6732633113861084  # float32: alpha * scale == float32(1.6732632) * 1.050701
_elu = torch.ops.aten.elu.default


def _selu32(x: Any) -> Any:
    return _elu(x, _SELU_ALPHA32, _SELU_SCALE32, 1.0)


_HS_DEFAULT = (1.0 / 6.0, 0.5)


def _in_f32(op: Any, x: Any) -> Any:
    """op(x), computed in float32 for half x and rounded once."""
    return op(x.float()).to(x.dtype) if x.dtype in _HALF else op(x)


def _outside(x: Any, lo: float, hi: float, nan: bool = False) -> bool:
    """Whether some element of x is below lo or above hi (or NaN, if nan), by one reduction: a
    read of x, where a comparison would write a mask and read it back."""
    if x.numel() == 0:
        return False
    lo, hi = _bounds(x, lo, hi)
    if hi == _INF:
        mn = mx = x.min().item()
    else:
        a, b = torch.aminmax(x)
        mn, mx = a.item(), b.item()
    if mn != mn:  # a NaN, which the reduction propagates: compare elementwise
        return nan or bool(((x < lo) | (x > hi)).any())
    return bool(mn < lo or mx > hi)


def _bounds(x: Any, lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) within x's finite range: a bound past it would round to +-inf in a comparison
    with half precision x (an infinite bound stays: it means no bound)."""
    if x.dtype in _HALF:
        top = torch.finfo(x.dtype).max
        lo, hi = lo if lo == -_INF else max(lo, -top), hi if hi == _INF else min(hi, top)
    return lo, hi


def _out_mask(x: Any, lo: float, hi: float, nan: bool = False) -> Any:
    """The elements that _outside looks for."""
    lo, hi = _bounds(x, lo, hi)
    m = (x < lo) | (x > hi)
    return m | torch.isnan(x) if nan else m


# Forward and backward both torch's: exact (clamps, selections) or within our bound, with our
# derivative conventions at the kinks. A value of None means: not for these parameters.
_FULL: dict[str, Any] = {
    "relu": lambda x: torch.relu(x),
    "relu6": lambda x: F.relu6(x),
    "hard_tanh": lambda x: F.hardtanh(x),
    # slope 0: torch gives 0 * -inf = NaN at -inf; the formula gives the limit 0
    "leaky_relu": lambda x, s: F.leaky_relu(x, s) if s != 0.0 else None,
    "prelu": lambda x, s: F.leaky_relu(x, s) if s != 0.0 else None,  # leaky_relu's math
    "elu": lambda x, a: F.elu(x, a),
    "selu": lambda x: F.selu(x) if x.dtype == torch.float64 else _selu32(x),
    # torch's celu backward is exp(x * (1/alpha)): the rounded 1/alpha costs |x/alpha| ulp.
    "celu": lambda x, a: F.elu(x) if a == 1.0 else None,
    "softplus": _softplus,
}

# Forward kernels of torch's that meet our bound, with our backward (torch's has no double
# backward for hardsigmoid and hardswish). (lo, hi): the formula is used instead where x < lo
# or x > hi, per working precision (torch's kernel underflows there). A kernel that returns
# None declines these parameters.
_FWD: dict[str, tuple[Any, dict[int, tuple[float, float]] | None]] = {
    "tanh": (torch.tanh, None),
    # torch divides by 6 where we multiply by 1/6 rounded: 1 ulp
    "hard_sigmoid": (lambda x, a, b: F.hardsigmoid(x) if (a, b) == _HS_DEFAULT else None, None),
    # hardswish computes x (x + 3): it overflows for |x| > 5.7e37 (float32)
    "hard_silu": (F.hardswish, {32: (-5.0e37, 5.0e37), 64: (-1.0e307, 1.0e307)}),
    "celu": (lambda x, a: F.celu(x, a), None),
    "sigmoid": (torch.sigmoid, {32: (-80.0, _INF), 64: (-700.0, _INF)}),
    "silu": (F.silu, {32: (-80.0, _INF), 64: (-700.0, _INF)}),
    # 2.8 ulp on [-80, inf) in float32
    "mish": (F.mish, {32: (-80.0, _INF), 64: (-30.0, _INF)}),
    # 1.5 ulp over the whole range. (Not its backward too: torch's saves a second input-sized
    # tensor, the Function here saves only x.)
    "log_sigmoid": (F.logsigmoid, None),
}


# -- float32 through float64 ------------------------------------------------------------------
#
# gelu and gelu_approx on float32 (and half, computed in float32): the plain textbook form in
# float64, rounded once. The float64 rounding errors (amplified at most ~2 w^2 ~ 400 times by
# erfc's steepness, or |v| ~ 100 times by the sigmoid's, where a float32 result is still nonzero)
# stay far below half a float32 ulp, so the results are correctly rounded but for rare ties,
# at a small part of the compensated float32 formula's cost (which takes ~100 passes). float64
# input keeps the shared formula. x * x is exact in float64 for float32 x.

_SQRT2 = 1.4142135623730951
_SQRT1_2 = 0.7071067811865476
_INV_SQRT_2PI = 0.3989422804014327
_GA_C = 1.5957691216057308  # 2 sqrt(2/pi)
_GA_K = 0.044715


def _gelu_w(t: Any) -> Any:
    """gelu of float64 t: x erfc(-x / sqrt 2) / 2; below -40 it is -0 (and -inf gives no NaN)."""
    c = torch.clamp(t, min=-40.0)
    return torch.special.erfc(c * -_SQRT1_2) * c * 0.5


def _d_gelu_w(t: Any) -> Any:
    """Phi(x) + x phi(x) = (erfc(a) + 2 x exp(-a^2) / sqrt(2 pi)) / 2, a = -x / sqrt 2, for
    float64 t; past +-40 exactly 0 and 1."""
    c = torch.clamp(t, -40.0, 40.0)
    a = c * -_SQRT1_2
    w = torch.exp(-(a * a))
    return torch.addcmul(torch.special.erfc(a), c, w, value=2.0 * _INV_SQRT_2PI) * 0.5


def _ga_v(t: Any) -> tuple[Any, Any, Any]:
    """(xc, x2, v) for float64 t: xc = 2 sqrt(2/pi) x, x clipped to +-100 (past it the sigmoid
    is 0 or 1 in float64), x2 = x^2 (exact for float32 x), v = xc (1 + 0.044715 x^2)."""
    c = torch.clamp(t, -100.0, 100.0)
    c2 = c * c
    cc = c * _GA_C
    return cc, c2, torch.addcmul(cc, cc, c2, value=_GA_K)


def _gelu_approx_w(t: Any) -> Any:
    """x sigmoid(v) for float64 t (x below -100: -0, the true value underflows float32). torch's
    float64 sigmoid is within 1 ulp down to v = -700."""
    return torch.clamp(t, min=-100.0) * torch.sigmoid(_ga_v(t)[2])


def _d_gelu_approx_w(t: Any) -> Any:
    """s + x v' s sn, s = sigmoid(v), sn = sigmoid(-v) (not 1 - s: no cancellation)."""
    cc, c2, v = _ga_v(t)
    s = torch.sigmoid(v)
    return torch.addcmul(s, torch.addcmul(cc, cc, c2, value=3.0 * _GA_K), s * torch.sigmoid(-v))


def _gelu_w_(x: Any, g: Any, out: Any, bufs: list[Any]) -> Any:
    """_gelu_w (g None) or g * _d_gelu_w, the same operations in place in the float64 scratch
    tensors bufs (eager, plain tensors, autograd off), rounded into out: bitwise the same. (The
    product by g is taken in float64 and the result copied: an operation that casts while it
    computes runs a scalar loop, 4 ns an element.)"""
    c = bufs[0].copy_(x)
    if g is None:
        c.clamp_(min=-40.0)
        return out.copy_(torch.mul(c, -_SQRT1_2, out=bufs[1]).erfc_().mul_(c).mul_(0.5))
    c.clamp_(-40.0, 40.0)
    a = torch.mul(c, -_SQRT1_2, out=bufs[1])
    w = torch.mul(a, a, out=bufs[2]).neg_().exp_()
    a.erfc_().addcmul_(c, w, value=2.0 * _INV_SQRT_2PI)
    return out.copy_(a.mul_(0.5).mul_(bufs[2].copy_(g)))


def _gelu_approx_w_(x: Any, g: Any, out: Any, bufs: list[Any]) -> Any:
    """_gelu_approx_w (g None) or g * _d_gelu_approx_w in place, as _gelu_w_."""
    t = bufs[0].copy_(x)
    c = torch.clamp(t, -100.0, 100.0, out=bufs[1])
    c2 = torch.mul(c, c, out=bufs[2])
    cc = c.mul_(_GA_C)
    v = torch.addcmul(cc, cc, c2, value=_GA_K, out=bufs[3])
    if g is None:
        return out.copy_(t.clamp_(min=-100.0).mul_(v.sigmoid_()))
    xv = torch.addcmul(cc, cc, c2, value=3.0 * _GA_K, out=c2)
    s = torch.sigmoid(v, out=t)
    sn = v.neg_().sigmoid_().mul_(s)
    return out.copy_(s.addcmul_(xv, sn).mul_(bufs[1].copy_(g)))


def _d_mish_w(t: Any) -> Any:
    """mish' = tanh(sp) + x sech^2(sp) sigmoid(x), sp = softplus(x), for float64 t, from
    w = exp(x) alone: tanh(sp) = n q, sech^2(sp) = (1 - n q)(1 + n q) = 2 q (1 + n q),
    sigmoid(x) = w / (1 + w), with n = w (w + 2), q = 1 / (n + 2); no cancellation, and no
    log1p or tanh (torch's float64 softplus and tanh are scalar loops). x clipped to
    [-1000, 40] (past them 0 and 1 exactly; no inf * 0)."""
    c = torch.clamp(t, -1000.0, 40.0)
    w = torch.exp(c)
    n = (w + 2.0) * w
    q = 1.0 / (n + 2.0)
    th = n * q
    return (1.0 + th) * ((2.0 * q) * c * (w / (1.0 + w))) + th


def _d_mish_w_(x: Any, g: Any, out: Any, bufs: list[Any]) -> Any:
    """g * _d_mish_w in place, as _gelu_w_ (the value: None, torch's kernel serves it)."""
    c = bufs[0].copy_(x).clamp_(-1000.0, 40.0)
    w = torch.exp(c, out=bufs[1])
    n = torch.add(w, 2.0, out=bufs[2]).mul_(w)
    q = torch.add(n, 2.0, out=bufs[3]).reciprocal_()
    th = n.mul_(q)
    w.div_(torch.add(w, 1.0, out=bufs[4]))
    u = q.mul_(2.0).mul_(c).mul_(w)
    r = torch.add(th, 1.0, out=c).mul_(u).add_(th)
    return out.copy_(r.mul_(bufs[1].copy_(g)))


def _sqp_w(t: Any, b: float) -> Any:
    """squareplus of float64 t (b > 0): max(x, 0) + (b/2) / (|x| + r), r = sqrt(x^2 + b), which
    is (x + r) / 2 on either side with nothing cancelling (r - |x| = b / (r + |x|)); x^2 of a
    float32 x is exact in float64. x clipped to +-1e150 (no inf / inf)."""
    c = torch.clamp(t, -1e150, 1e150)
    a = torch.abs(c)
    r = torch.sqrt(a * a + b)
    return torch.clamp(c, min=0.0) + (0.5 * b) / (a + r)


def _d_sqp_w(t: Any, b: float) -> Any:
    """squareplus' = (1 + x / r) / 2 = (x + r) / (2 r): the value over r."""
    c = torch.clamp(t, -1e150, 1e150)
    a = torch.abs(c)
    r = torch.sqrt(a * a + b)
    return (torch.clamp(c, min=0.0) + (0.5 * b) / (a + r)) / r


def _sqp_w_(x: Any, g: Any, out: Any, bufs: list[Any], b: float) -> Any:
    """_sqp_w (g None) or g * _d_sqp_w in place, as _gelu_w_."""
    c = bufs[0].copy_(x).clamp_(-1e150, 1e150)
    a = torch.abs(c, out=bufs[1])
    r = torch.mul(a, a, out=bufs[2]).add_(b).sqrt_()
    v = c.clamp_(min=0.0).add_(a.add_(r).reciprocal_().mul_(0.5 * b))
    if g is None:
        return out.copy_(v)
    return out.copy_(v.div_(r).mul_(bufs[1].copy_(g)))


# name -> (value, derivative) in float64 for float32 and half input, both in place, the
# hyper-parameters it takes (None: any), and the scratch tensors the in-place evaluation uses
_WIDE: dict[str, tuple[Any, Any, Any, Any, int]] = {
    "gelu": (_gelu_w, _d_gelu_w, _gelu_w_, None, 3),
    "gelu_approx": (_gelu_approx_w, _d_gelu_approx_w, _gelu_approx_w_, None, 4),
    "squareplus": (_sqp_w, _d_sqp_w, _sqp_w_, lambda p: p[0] > 0.0, 3),  # b = 0: relu's kernel
}
# the same for the derivative alone (the value: torch's kernel and the formula, see _FWD)
_WIDE_D: dict[str, tuple[Any, Any, Any, Any, int]] = {
    "mish": (None, _d_mish_w, _d_mish_w_, None, 5),
}


def _wide_for(name: str, x: Any, p: Any, table: dict[str, Any]) -> bool:
    f = table.get(name)
    return f is not None and x.dtype != torch.float64 and (f[3] is None or bool(f[3](p)))


def _wide_d(name: str, x: Any, p: Any = ()) -> bool:
    return _wide_for(name, x, p, _WIDE) or _wide_for(name, x, p, _WIDE_D)


# Elements per chunk of the in-place evaluation: at most torch's grain size, so that every
# operation on a chunk runs inline on the calling thread (no OpenMP parallel region: with ~10
# operations per chunk, the barrier of each region costs a scheduler tick whenever another
# process holds a core, 10x the arithmetic on a loaded machine), and the float64 scratch tensors
# (256 KiB each) stay in the cache. Parallelism comes from chunks instead: torch's thread count
# of Python threads, each with its own scratch tensors, take every w-th chunk (torch releases
# the GIL in its operations). Each chunk is computed alike whatever thread takes it: the
# result is bitwise the same for any number of threads.
_CHUNK = 1 << 15
_CHUNKS_PER_THREAD = 4  # fewer chunks than this per thread: not worth a thread


def _threads() -> int:
    return int(torch.get_num_threads())


def _by_chunks(f: Any, nbuf: int, x: Any, g: Any, out: Any, p: Any) -> Any:
    """f(x, g, out, bufs, *p) of _WIDE (in place), chunk by chunk of the flattened arrays, with
    nbuf float64 scratch tensors of a chunk's size per thread, reused from chunk to chunk (a
    fresh tensor costs the kernel's page faults and zeroing: more than the arithmetic)."""
    n = x.numel()
    xf, of = x.reshape(-1), out.view(-1)
    gf = g.reshape(-1) if g is not None and g.dim() else None
    nch = -(-n // _CHUNK)
    w = 1
    if x.device.type == "cpu":
        w = max(1, min(_threads(), nch // _CHUNKS_PER_THREAD))

    def work(k: int) -> None:
        m = min(n, _CHUNK)
        bufs = [torch.empty(m, dtype=torch.float64, device=x.device) for _ in range(nbuf)]
        for c in range(k, nch, w):
            i = c * _CHUNK
            j = min(i + _CHUNK, n)
            bs = bufs if j - i == m else [b[: j - i] for b in bufs]
            f(xf[i:j], g if gf is None else gf[i:j], of[i:j], bs, *p)

    if w == 1:
        work(0)
        return out
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            with torch.no_grad():  # grad mode is per thread: a new one starts with it on
                work(k)
        except BaseException as e:  # re-raised in the caller's thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(k,), daemon=True) for k in range(1, w)]
    for t in threads:
        t.start()
    guarded(0)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _wide(name: str, x: Any, p: Any = ()) -> bool:
    return _wide_for(name, x, p, _WIDE)


def _fast_wide(x: Any, g: Any = None) -> bool:
    """Whether the in-place evaluation applies: eager, plain tensors of one shape, no graph."""
    return (
        x.numel() >= INPLACE_MIN and _exact(x, g) and _eager()
        and (g is None or g.shape == x.shape)
        and not (torch.is_grad_enabled() and (x.requires_grad or (g is not None and g.requires_grad)))
    )


def _wide_value(name: str, x: Any, k: int = 0, p: Any = ()) -> Any:
    """The value (k = 0) or the derivative (k = 1) of a _WIDE entry at float32 or half x."""
    f = _WIDE.get(name) or _WIDE_D[name]
    if _fast_wide(x):
        one = torch.ones((), dtype=torch.float64) if k else None
        out = torch.empty_like(x, memory_format=torch.contiguous_format)
        return _by_chunks(f[2], f[4], x, one, out, p)
    plain: Any = f[1] if k else f[0]
    return plain(x.double(), *p).to(x.dtype)


def _wide_grad(name: str, g: Any, x: Any, p: Any = ()) -> Any:
    """g times the derivative, in float64, rounded once to g's dtype (differentiable in g and x
    when a graph is being built)."""
    f = _WIDE.get(name) or _WIDE_D[name]
    if _fast_wide(x, g):
        out = torch.empty_like(g, memory_format=torch.contiguous_format)
        return _by_chunks(f[2], f[4], x, g, out, p)
    return (f[1](x.double(), *p) * g.double()).to(g.dtype)


def _sig_nabs(x: Any) -> Any:
    """sigmoid(-|x|), a fresh tensor: at most 1/2, so 1 - it does not cancel."""
    return torch.abs(x).neg_().sigmoid_()


def _g_sigmoid(g: Any, x: Any) -> Any:
    """g sigmoid'(x) = g s (1 - s) with s = sigmoid(-|x|) (sigmoid' is even): 2.6 ulp in float32
    on [-80, 80]; torch's sigmoid_backward written over s."""
    s = _sig_nabs(x)
    return torch.ops.aten.sigmoid_backward.grad_input(g, s, grad_input=s)


def _g_tanh(g: Any, x: Any) -> Any:
    """g tanh'(x) = g / cosh(x)^2: 3.5 ulp in float32 over the whole range (1 - tanh^2 cancels)."""
    return torch.cosh(x).reciprocal_().square_().mul_(g)


# Backward from torch's kernels, for a backward that builds no graph on plain tensors: name ->
# (g, x, *params -> g f'(x) in x's dtype, or None to decline the parameters,
# {precision: (lo, hi)}); the formula serves the elements outside (lo, hi) and the NaNs (found
# by one min/max reduction; none for usual inputs: torch's kernels give a derivative at NaN
# that depends on the element's position in a vector register). torch's
# silu_backward s (1 + x (1 - s)) is within 3.8 ulp on [-80, 5]; above, 1 - s cancels, but
# in float32 only to 8.2 ulp (at x = 16.6; x (1 - s) is then below 1e-6), in float64 to 18.
_BWD: dict[str, tuple[Any, dict[int, tuple[float, float]] | None]] = {
    "sigmoid": (_g_sigmoid, {32: (-80.0, 80.0), 64: (-700.0, 700.0)}),
    "tanh": (_g_tanh, None),
    # (float64: torch multiplies by 1/6 rounded to float32)
    "hard_sigmoid": (lambda g, x, a, b: (
        torch.ops.aten.hardsigmoid_backward(g, x)
        if (a, b) == _HS_DEFAULT and x.dtype != torch.float64 else None
    ), {32: (-_INF, _INF), 64: (-_INF, _INF)}),
    # hard_silu' = x/3 + 1/2 on (-3, 3): 2.7 ulp (absolute next to its zero at -1.5)
    "hard_silu": (torch.ops.aten.hardswish_backward, {32: (-_INF, _INF), 64: (-_INF, _INF)}),
    # g sigmoid(-x): 2.2 ulp below 80 (torch's sigmoid underflows past 88.7)
    "log_sigmoid": (lambda g, x: torch.neg(x).sigmoid_().mul_(g), {32: (-_INF, 80.0), 64: (-_INF, 700.0)}),
    # (+inf: inf * 0 in torch's)
    "silu": (torch.ops.aten.silu_backward, {32: (-80.0, 3.4e38), 64: (-700.0, 5.0)}),
}


def _native_grad(entry: Entry, g: Any, x: Any, p: tuple[Any, ...]) -> Any:
    """g times the derivative, rounded once to g's dtype, for a backward without a graph."""
    bwd = _BWD.get(entry.name)
    if bwd is None or not _exact(g, x) or g.shape != x.shape:
        return _scaled(g, _dwork_fast(entry.deriv, x, *p), x)
    native, tails = bwd
    half = x.dtype in _HALF
    xw, gw = (x.float(), g.float()) if half else (x, g)
    r = native(gw, xw, *p)
    if r is None:
        return _scaled(g, _dwork_fast(entry.deriv, x, *p), x)
    if tails is not None:
        lo, hi = tails[64 if x.dtype == torch.float64 else 32]
        if _outside(xw, lo, hi, nan=True):
            m = _out_mask(xw, lo, hi, nan=True)
            r[m] = gw[m] * entry.deriv(O, xw[m], *p)
    return r.to(g.dtype) if half else r


def _forward(entry: Entry, fwd: Any, x: Any, p: tuple[Any, ...], eager: bool) -> Any:
    """The value, with autograd off (plain path or inside Function.forward)."""
    if _wide(entry.name, x, p):
        return _wide_value(entry.name, x, 0, p)
    if fwd is None or not eager:
        return _work_fast(entry.value, x, *p) if eager else _work(entry.value, x, *p)
    native, tails = fwd
    prec = 64 if x.dtype == torch.float64 else 32
    if tails is not None and prec not in tails:
        return _work_fast(entry.value, x, *p)
    y = native(x, *p)
    if y is None:
        return _work_fast(entry.value, x, *p)
    if tails is not None:
        lo, hi = tails[prec]
        if not _exact(x):  # no boolean indexing on a subclass: the formula everywhere, selected
            return torch.where(_out_mask(x, lo, hi), _work(entry.value, x, *p), y)
        if _outside(x, lo, hi):
            m = _out_mask(x, lo, hi)
            y[m] = _work(entry.value, x[m], *p)
    return y


def _eager_grad(name: str, g: Any, x: Any, p: tuple[Any, ...]) -> Any:
    return _native_grad(_BY_NAME[name].entry, g, x, p)


def _eager_forward(name: str, x: Any, p: tuple[Any, ...]) -> Any:
    k = _BY_NAME[name]
    return _forward(k.entry, k.fwd, x, p, True)


class _Kernel:
    """What serves one elementwise entry on torch."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.full = _FULL.get(entry.name)
        self.fwd = _FWD.get(entry.name)
        self.fn, self.fnc = _make_function(entry, self.fwd)

    def __call__(self, x: Any, p: tuple[Any, ...]) -> Any:
        if self.full is not None:
            y = self.full(x, *p)
            if y is not None:
                return y
        if torch.compiler.is_compiling():
            return self.fnc.apply(x, *p)
        if not (x.requires_grad and torch.is_grad_enabled()) and _eager():
            return _forward(self.entry, self.fwd, x, p, True)
        return self.fn.apply(x, *p)


def _make_function(entry: Entry, fwd: Any) -> Any:
    value, deriv = entry.value, entry.deriv

    # A fixed arity: dynamo (torch 2.13) cannot trace a ``forward(x, *p)``.
    # The closures hold only functions and strings: dynamo cannot wrap an Entry.
    name = entry.name
    def forward0(x: Any) -> Any:
        if _eager():
            return _eager_forward(name, x, ())
        if _wide(name, x):
            return _wide_value(name, x)
        return _work(value, x)

    def forward1(x: Any, a: Any) -> Any:
        if _eager():
            return _eager_forward(name, x, (a,))
        if _wide(name, x, (a,)):
            return _wide_value(name, x, 0, (a,))
        return _work(value, x, a)

    def forward2(x: Any, a: Any, b: Any) -> Any:
        if _eager():
            return _eager_forward(name, x, (a, b))
        return _work(value, x, a, b)

    class FnC(torch.autograd.Function):
        """Without a jvp rule: dynamo cannot trace a Function that has one."""

        generate_vmap_rule = True
        forward = staticmethod((forward0, forward1, forward2)[len(entry.params)])

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, *p = inputs
            ctx.p = p
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (x,) = ctx.saved_tensors
            none = (None,) * len(ctx.p)
            if _wide_d(name, x, ctx.p):
                return (_wide_grad(name, g, x, ctx.p), *none)
            if _no_graph():
                return (_eager_grad(name, g, x, ctx.p), *none)
            return (_scaled(g, _dwork(deriv, x, *ctx.p)), *none)

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            FnC.setup_context(ctx, inputs, output)
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def jvp(ctx: Any, tx: Any, *_: Any) -> Any:
            (x,) = ctx.saved_tensors
            if _wide_d(name, x, ctx.p):
                return _wide_grad(name, tx, x, ctx.p)
            return _scaled(tx, _dwork(deriv, x, *ctx.p))

    Fn.__name__ = Fn.__qualname__ = f"kaun_{entry.name}"
    FnC.__name__ = FnC.__qualname__ = f"kaun_{entry.name}_compiled"
    return Fn, FnC


def _sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    lead = g.dim() - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=axes, keepdim=True) if axes else g


def _prelu_function(entry: Entry) -> Any:
    value, deriv = entry.value, entry.deriv

    def fwd(x: Any, alpha: Any) -> Any:
        if _eager():
            if _exact(x, alpha):
                # torch's prelu kernel: x > 0 ? x : alpha x, broadcast, one pass (the formula's
                # value bitwise; half: the product of two halves is exact in float32)
                return torch._prelu_kernel(x, alpha)
            return _work_fast(value, x, alpha)
        return _work(value, x, alpha.float() if x.dtype in _HALF else alpha)

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, alpha: Any) -> Any:
            return fwd(x, alpha)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            x, alpha = ctx.saved_tensors
            if (_no_graph() and _exact(g, x, alpha) and g.shape == x.shape
                    and not _outside(x, -_INF, _INF, nan=True)):
                # torch's kernel: (x > 0 ? g : alpha g, x > 0 ? 0 : x g), our conventions (alpha
                # at 0; at NaN it would give NaN to alpha's gradient, the formula 0)
                gx, ga = torch.ops.aten._prelu_kernel_backward(g, x, alpha)
                return gx, _sum_to(ga, tuple(alpha.shape))
            dx, da = _dwork(deriv, x, alpha.float() if x.dtype in _HALF else alpha)
            return _scaled(g, dx), _sum_to(_scaled(g, da), tuple(alpha.shape))

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)
            ctx.save_for_forward(*inputs)

        @staticmethod
        def jvp(ctx: Any, tx: Any, ta: Any) -> Any:
            x, alpha = ctx.saved_tensors
            dx, da = _dwork(deriv, x, alpha.float() if x.dtype in _HALF else alpha)
            out = _scaled(tx, dx)
            return out if ta is None else out + _scaled(ta, da)

    return _Pair(Fn, FnC, fwd)


def _halves(x: Any, ax: int) -> tuple[Any, Any]:
    """The two halves of x along ax, as views (narrow: a tenth of the cost of indexing)."""
    n = x.shape[ax] // 2
    return x.narrow(ax, 0, n), x.narrow(ax, n, n)


# glu's forward is torch's (a * sigmoid(b), 2.5 ulp) while every b >= _GLU_LO: below, torch's
# sigmoid drifts to 4 ulp (and underflows below -88).
_GLU_LO = -16.0


def _glu_grad(deriv: Any, g: Any, x: Any, ax: int) -> Any:
    """(g sigmoid(b), g a sigmoid'(b)) side by side along ax, for a backward without a graph;
    torch's kernels where b is in [-80, 80], the formula otherwise."""
    a, b = _halves(x, ax)
    if not _exact(g, x) or g.shape != a.shape or x.dtype in _HALF or _outside(b, -80.0, 80.0):
        da, db = _dwork_fast(deriv, a, b)
        return torch.cat([_scaled(g, da, x), _scaled(g, db, x)], dim=ax)
    out = torch.empty_like(x)
    oa, ob = _halves(out, ax)
    torch.sigmoid(b, out=oa).mul_(g)
    s = torch.abs(b, out=ob).neg_().sigmoid_()
    torch.ops.aten.sigmoid_backward.grad_input(g, s, grad_input=s)
    ob.mul_(a)
    return out


def _glu_function(entry: Entry) -> Any:
    value, deriv = entry.value, entry.deriv

    def fwd(x: Any, ax: int) -> Any:
        a, b = _halves(x, ax)
        if _eager():
            if _exact(x) and not _outside(b, _GLU_LO, _INF):
                return _in_f32(lambda t: F.glu(t, ax), x)
            return _work_fast(value, a, b)
        return _work(value, a, b.float() if a.dtype in _HALF else b)

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, ax: int) -> Any:
            return fwd(x, ax)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, ctx.ax = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (x,) = ctx.saved_tensors
            if _no_graph():
                return _glu_grad(deriv, g, x, ctx.ax), None
            da, db = _dwork(lambda o, x: deriv(o, *_halves(x, ctx.ax)), x)
            return torch.cat([_scaled(g, da), _scaled(g, db)], dim=ctx.ax), None

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            FnC.setup_context(ctx, inputs, output)
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def jvp(ctx: Any, tx: Any, _: Any) -> Any:
            (x,) = ctx.saved_tensors
            da, db = _dwork(lambda o, x: deriv(o, *_halves(x, ctx.ax)), x)
            ta, tb = _halves(tx, ctx.ax)
            return _scaled(ta, da) + _scaled(tb, db)

    return _Pair(Fn, FnC, fwd)


class _Pair:
    """The autograd.Function for eager use, the one for torch.compile, the no-grad forward."""

    def __init__(self, fn: Any, fnc: Any, fwd: Any) -> None:
        self.fn, self.fnc, self.fwd = fn, fnc, fwd

    def apply(self, *args: Any) -> Any:
        if torch.compiler.is_compiling():
            return self.fnc.apply(*args)
        return self.fn.apply(*args)


# Built once at import for every entry, so that torch.compile finds plain dict look-ups (it
# cannot trace the creation of a class, nor should it trace a cache).
def _build() -> dict[Entry, Any]:
    from ..activation._defs import ENTRIES, PRELU_SCALAR

    table: dict[Entry, Any] = {}
    for e in (*ENTRIES.values(), PRELU_SCALAR):
        if e.kind == "prelu":
            table[e] = _prelu_function(e)
        elif e.kind == "glu":
            table[e] = _glu_function(e)
        else:
            table[e] = _Kernel(e)
    return table


_TABLE = _build()
_BY_NAME = {e.name: k for e, k in _TABLE.items() if isinstance(k, _Kernel) and e.kind != "prelu"}


_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})


def _plain(x: Any) -> bool:
    return not (x.requires_grad and torch.is_grad_enabled()) and _eager()


class TorchBackend(Backend):
    name = "torch"
    o = O
    f32 = torch.float32

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if entry.ints and not x.is_floating_point():
            return torch.relu(x)
        return _TABLE[entry](x, p)

    def fast(self, entry: Entry, p: tuple[float, ...]) -> Any:
        k = _TABLE[entry]
        full = k.full if isinstance(k, _Kernel) else None
        if full is not None and all(full(torch.zeros(1, dtype=t), *p) is not None for t in _FLOATS):
            # torch's own op for these parameters and every dtype, whatever the mode
            if not p:
                return lambda x: full(x) if x.dtype in _FLOATS else None
            return lambda x: full(x, *p) if x.dtype in _FLOATS else None
        return lambda x: k(x, p) if x.dtype in _FLOATS else None

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if _wide_d(entry.name, x, p) and entry.kind == "elementwise":
            return _wide_value(entry.name, x, 1, p)
        if _plain(x):
            return _work_fast(entry.deriv, x, *p)
        return _work(entry.deriv, x, *p)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        fn = _TABLE[entry]
        if _plain(x) and not (alpha.requires_grad and torch.is_grad_enabled()):
            return fn.fwd(x, alpha)
        return fn.apply(x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        fn = _TABLE[entry]
        if _plain(x):
            return fn.fwd(x, ax)
        return fn.apply(x, ax)
