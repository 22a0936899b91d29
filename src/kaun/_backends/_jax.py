"""JAX: each activation a JAX primitive whose rules are the same entry's formulas.

``kaun_gelu`` (and so on, one per elementwise entry) takes x and the run-time scalars of the
prepared hyper-parameters (``Entry.prep``) as operands, and as static parameters ``k``, the
order of the derivative it computes (0: the value), and the hyper-parameters' ``structure``
(``Entry.structure``: their form, not their values). So one jitted function serves every value
of a hyper-parameter, as one compiled kernel does; the values are arguments, as weakly typed
scalars: promoted as the Python floats of the formulas are (a formula does no arithmetic on
hyper-parameters alone: ``Entry.prep`` does, in float64, whatever JAX's x64). celu is the
exception (``_STATIC``): its values stay constants, to keep its bits. Its rules:

* lowering: the formula of order k in jax.numpy operations (XLA fuses it as it fused the
  function before it was a primitive); half precision computed in float32 and rounded once
  (the derivatives, k >= 1, stay in float32: a product with a tangent then rounds once);
  on the CPU, for the functions and orders of ``jaxffi.FFI_FUNCTIONS`` (the value) and
  ``FFI_DERIVATIVES``, the compiled C kernel as an XLA FFI custom call instead (NumPy's bits;
  chosen by measurement, docs/jax.md; ``KAUN_JAX_FFI=0`` turns it off);
* JVP: the tangent times the primitive of order k + 1, so that ``grad``, ``jvp``, ``hessian``
  and their nesting reach the entry's formulas of orders 1, 2 and 3 (``kaun._core.ORDERS``);
  past the third order, JAX's autodiff of the third's formula;
* batching: elementwise;
* ``jax.experimental.jet`` (Taylor mode): Faa di Bruno's formula over the same derivatives (JAX's
  jet cannot see through a ``custom_jvp``: it fails on ``jax.nn.softplus`` too).

glu and the gated family (swiglu, geglu, ...) are each a primitive of the two halves (its JVP the
derivative formula, its Taylor series jet's own of the value formula); prelu a jitted ``where``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import core as _core
from jax.experimental import jet as _jet
from jax.extend.core import Primitive as _Primitive
from jax.interpreters import ad as _ad
from jax.interpreters import batching as _batching
from jax.interpreters import mlir as _mlir

from .._core import ALL, LRU, ORDERS, Entry
from .._kernels import jaxffi
from ._base import Backend


class JaxOps:
    exp = staticmethod(jnp.exp)
    exp_normal = staticmethod(jnp.exp)
    expm1 = staticmethod(jnp.expm1)
    log1p = staticmethod(jnp.log1p)

    @staticmethod
    def tanh(x: Any) -> Any:
        # XLA's float64 tanh is 6.5 ulp off near |x| = 19; from expm1 it is within 2.5.
        if x.dtype != jnp.float64:
            return jnp.tanh(x)
        t = jnp.expm1(-2.0 * jnp.abs(x))
        return jnp.copysign(-t / (2.0 + t), x)
    sqrt = staticmethod(jnp.sqrt)
    abs = staticmethod(jnp.abs)
    where = staticmethod(jnp.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return jnp.clip(x, lo, hi)

    @staticmethod
    def mask(c: Any, like: Any) -> Any:
        return c.astype(like.dtype)

    @staticmethod
    def big(x: Any) -> float:
        return float(jnp.finfo(x.dtype).max)  # type: ignore[no-untyped-call]

    @staticmethod
    def prec(x: Any) -> int:
        return 64 if x.dtype == jnp.float64 else 32


O = JaxOps()  # noqa: E741
# JAX's extension points are untyped: held as Any
jet: Any = _jet
Primitive: Any = _Primitive
ad: Any = _ad
batching: Any = _batching
mlir: Any = _mlir
core: Any = _core
_HALF = (jnp.float16, jnp.bfloat16)
_TOP = len(ORDERS) - 1  # the highest order with a formula


def _work_dtype(dt: Any) -> Any:
    return jnp.float32 if dt in _HALF else dt


# Entries whose hyper-parameters stay compile-time constants: celu. XLA folds constants into its
# arithmetic (x / alpha times Veltkamp's 2^27 + 1 becomes x times one constant), which a run-time
# alpha does not allow, so celu's bits would change (in 125 of 4650 results over 12 alphas and
# every order, x64 on; some closer to the truth, some farther). Its jitted functions are keyed
# by value, the least recently used forgotten past _MAX_JITTED.
_STATIC = frozenset({"celu"})
_MAX_JITTED = 64  # jitted functions kept (entry, form or values, order), least recently used out


def _split(entry: Entry, p: tuple[float, ...], dt: Any) -> tuple[tuple[Any, ...], tuple[float, ...]]:
    """Hyper-parameters ``p`` prepared for arrays of dtype dt (``Entry.prep``), in two parts: the
    structure (``Entry.structure``: what the traced code depends on, a static parameter of the
    primitive) and the run-time scalars (its operands: every value of a form runs one compiled
    function, as a compiled kernel does). For the entries of _STATIC, every prepared argument is
    static and there are no run-time scalars."""
    args = entry.prep(p, 64 if dt == jnp.float64 else 32)
    if entry.key in _STATIC:
        return tuple(args), ()
    return entry.structure(args), tuple(float(v) for v in args if isinstance(v, float))


def _join(structure: tuple[Any, ...], s: tuple[Any, ...]) -> tuple[Any, ...]:
    """The prepared arguments again: the scalars s (Python floats, or JAX's weakly typed scalars:
    the same promotion) where the structure has None."""
    it = iter(s)
    return tuple(next(it) if v is None else v for v in structure)


def _formula(entry: Entry, k: int, x: Any, args: tuple[Any, ...]) -> Any:
    """entry's formula of order k at x with prepared arguments ``args``, in the working dtype
    (float32 for half)."""
    xw = x.astype(jnp.float32) if x.dtype in _HALF else x
    return entry.formula_of(ORDERS[k])(O, xw, *args)


def _out(x: Any, y: Any, k: int) -> Any:
    """The result of the primitive of order k: the value rounded to x's dtype, a derivative
    kept in the working dtype."""
    return y.astype(x.dtype) if k == 0 else y


# -- the CPU lowering: kaun's compiled kernels as an XLA FFI custom call ---------------------------


def _ffi_lowering(entry: Entry, formula: Any) -> Any:
    """The primitive's lowering on the CPU: the compiled kernel of order k as one custom call
    (``kaun._kernels.jaxffi``), where ``jaxffi.FFI_FUNCTIONS`` (k = 0) or ``FFI_DERIVATIVES``
    (k >= 1) has the entry and the FFI serves here; else ``formula``, the formula's jax.numpy
    lowering, which XLA fuses with its neighbours.
    The kernel gives NumPy's bits. Half precision: the value is the half kernel's (computed in
    float32, rounded once); a derivative stays float32, the float32 kernel's at x in float32 (as
    the formula's lowering computes it). ``jax.export`` keeps the formula: a serialized module
    must not name a custom call that another process has not registered. Partitioned over
    several devices (jit of sharded arrays) too: XLA's partitioner gathers a custom call's
    operand onto every device (an elementwise Shardy rule or batch-partitionable registration
    did not stop it), where the formula runs shard by shard."""

    def rule(ctx: Any, x: Any, *s: Any, k: int, structure: tuple[Any, ...]) -> Any:
        found = None
        ac = ctx.module_context.axis_context  # (shard_map's and pmap's bodies: one device's)
        sharded = isinstance(ac, mlir.ShardingContext) and ac.num_devices > 1
        if (entry.key in (jaxffi.FFI_FUNCTIONS if k == 0 else jaxffi.FFI_DERIVATIVES)
                and not ctx.module_context.lowering_parameters.for_export
                and not sharded):
            dt = ctx.avals_in[0].dtype
            io = "float32" if dt in _HALF and k >= 1 else str(dt)
            found = jaxffi.kernel(entry, structure, io, k)
        if found is None:
            return formula(ctx, x, *s, k=k, structure=structure)
        import jax.ffi  # (there: jaxffi.kernel found one)

        lib, sym = found
        xa = ctx.avals_in[0]
        ia = xa.update(dtype=np.dtype(io))
        if ia.dtype != xa.dtype:
            (x,) = mlir.lower_fun(lambda v: v.astype(ia.dtype), multiple_results=False)(
                ctx.replace(avals_in=[xa], avals_out=[ia]), x)
        # celu's values (_STATIC) are constants of the traced code: here, constant operands
        const = [np.asarray(v, ia.dtype if io == "float64" else np.float32)
                 for v in structure if isinstance(v, float)] if entry.key in _STATIC else []
        sub = ctx.replace(avals_in=[ia, *ctx.avals_in[1:], *(core.ShapedArray((), c.dtype)
                                                             for c in const)])
        op = jax.ffi.build_ffi_lowering_function(jaxffi.TARGET)(
            sub, x, *s, *(mlir.ir_constant(c) for c in const), lib=lib, sym=sym)
        return op.results

    return rule


# -- one primitive per elementwise entry -----------------------------------------------------------


def _primitive(entry: Entry) -> Any:
    """``bind(x, *s, k=k, structure=structure)``: the formula of order k at x, for prepared
    hyper-parameters of that structure whose run-time scalars are the operands s (``_split``)."""
    prim = Primitive(f"kaun_{entry.key}")

    def compute(x: Any, *s: Any, k: int, structure: tuple[Any, ...]) -> Any:
        return _out(x, _formula(entry, k, x, _join(structure, s)), k)

    impls = LRU(_MAX_JITTED)  # (k, structure) -> the primitive's jitted eager implementation

    def impl(x: Any, *s: Any, k: int, structure: tuple[Any, ...]) -> Any:
        f = impls.hit((k, structure))
        if f is None:  # (the primitive itself, jitted: its lowering for the array's platform)
            f = jax.jit(lambda x, *s: prim.bind(x, *s, k=k, structure=structure))
            impls.put((k, structure), f)
        return f(x, *s)

    prim.def_impl(impl)
    prim.def_abstract_eval(
        lambda x, *s, k, structure: x if k == 0 else x.update(dtype=_work_dtype(x.dtype)))
    formula = mlir.lower_fun(compute, multiple_results=False)
    mlir.register_lowering(prim, formula)
    mlir.register_lowering(prim, _ffi_lowering(entry, formula), platform="cpu")

    def batch(args: Any, dims: Any, *, k: int, structure: tuple[Any, ...]) -> Any:
        # elementwise in x; the scalars are numbers (checked Python floats), never batched
        if any(d is not None for d in dims[1:]):  # (None: not mapped)
            raise NotImplementedError(f"{entry.qualname}: a hyper-parameter cannot be batched")
        return prim.bind(*args, k=k, structure=structure), dims[0]

    batching.primitive_batchers[prim] = batch

    def tangent(t: Any, x: Any, *s: Any, k: int, structure: tuple[Any, ...]) -> Any:
        """t times the derivative of order k + 1, rounded once to the primitive's output dtype."""
        tw = t.astype(_work_dtype(x.dtype))
        if k < _TOP:
            d = tw * prim.bind(x, *s, k=k + 1, structure=structure)
        else:  # past the formulas: JAX's autodiff of the top one
            args = _join(structure, s)
            d = jax.jvp(lambda v: _formula(entry, k, v, args), (x,), (t,))[1].astype(tw.dtype)
        return _out(x, d, k)

    def jvp(primals: Any, tangents: Any, *, k: int, structure: tuple[Any, ...]) -> Any:
        # (ad.defjvp wants a rule per operand, and the number of scalars varies with the form)
        x, *s = primals
        if any(type(t) is not ad.Zero for t in tangents[1:]):
            raise NotImplementedError(f"{entry.qualname}: a hyper-parameter cannot be differentiated")
        t = tangents[0]
        if type(t) is ad.Zero:  # (JAX calls a rule where some tangent is nonzero: never here)
            t = ad.instantiate_zeros(t)
        y = prim.bind(x, *s, k=k, structure=structure)
        return y, tangent(t, x, *s, k=k, structure=structure)

    ad.primitive_jvps[prim] = jvp

    def taylor(primals: Any, series: Any, *, k: int, structure: tuple[Any, ...]) -> Any:
        (x, *s), (xs, *_) = primals, series
        y = prim.bind(x, *s, k=k, structure=structure)
        ds = [_nth(prim, entry, x, k + j, s, structure) for j in range(1, len(xs) + 1)]
        wd = _work_dtype(x.dtype)
        terms = _faa_di_bruno(ds, [v.astype(wd) for v in xs])
        return y, [v.astype(y.dtype) for v in terms]

    jet.jet_rules[prim] = taylor
    return prim


def _nth(prim: Any, entry: Entry, x: Any, n: int, s: Any, structure: tuple[Any, ...]) -> Any:
    """The derivative of order n at x (working dtype): a primitive up to the top formula, nested
    JVPs of it beyond."""
    if n <= _TOP:
        return prim.bind(x, *s, k=n, structure=structure)
    xw = x.astype(_work_dtype(x.dtype))

    def f(v: Any) -> Any:
        return prim.bind(v, *s, k=_TOP, structure=structure)

    for _ in range(n - _TOP):
        f = functools.partial(lambda g, v: jax.jvp(g, (v,), (jnp.ones_like(v),))[1], f)
    return f(xw)


def _faa_di_bruno(ds: list[Any], xs: list[Any]) -> list[Any]:
    """The Taylor coefficients of f(x(t)), orders 1..K, from those of x(t) (``xs``: a jet rule
    sees coefficients, t^k's, not derivatives) and f's derivatives at x(0) (``ds``, orders 1..K):
    f(x0 + u) = sum_j f^(j)(x0) u^j / j!, u = sum_k xs[k] t^k, truncated at t^K."""
    n = len(xs)
    a = [None, *xs]
    b: list[Any] = [0.0] * (n + 1)
    power = {i: a[i] for i in range(1, n + 1)}  # u^j's coefficients, from t^j up
    for j in range(1, n + 1):
        c = ds[j - 1] / math.factorial(j)
        for m in range(j, n + 1):
            b[m] = b[m] + c * power[m]
        power = {m: sum(power[i] * a[m - i] for i in range(j, m)) for m in range(j + 1, n + 1)}
    return b[1:]


_PRIMS = {e.key: _primitive(e) for e in ALL.values() if e.kind == "elementwise"}


# One jitted function per entry, form and order (a finite set: Entry.forms), whatever the
# hyper-parameters' values: they are its run-time arguments. (Keyed by value, a sweep of 200
# alphas compiled 200 functions, 9 to 12 s, and kept them all.) _STATIC's entries: one per value,
# the least recently used forgotten.
_JITTED = LRU(_MAX_JITTED)


def _jitted(entry: Entry, structure: tuple[Any, ...], order: int) -> Any:
    """The jitted function x, *scalars -> the derivative of that order (0: the value) in x's
    dtype."""
    key = (entry.key, structure, order)
    f = _JITTED.hit(key)
    if f is None:
        prim = _PRIMS[entry.key]
        if order == 0:
            f = jax.jit(lambda x, *s: prim.bind(x, *s, k=0, structure=structure))
        else:
            f = jax.jit(lambda x, *s: prim.bind(x, *s, k=order, structure=structure).astype(x.dtype))
        _JITTED.put(key, f)
    return f


@functools.cache
def _prelu(entry: Entry) -> Any:
    # where(x > 0, x, alpha * x) differentiates to the conventions (alpha at 0) by itself.
    def f(x: Any, a: Any) -> Any:
        if x.dtype in _HALF:
            return entry.value(O, x.astype(jnp.float32), a.astype(jnp.float32)).astype(x.dtype)
        return entry.value(O, x, a)

    return jax.jit(f)


# -- glu and the gated family: a primitive of the two halves, one per entry ----------------------


def _glu_parts(entry: Entry, which: str, a: Any, b: Any) -> Any:
    if a.dtype in _HALF:  # computed in float32 and rounded once (sigmoid(-20) is 0 in half)
        return entry.formula_of(which)(O, a.astype(jnp.float32), b.astype(jnp.float32))
    return entry.formula_of(which)(O, a, b)


def _glu_primitive(entry: Entry) -> Any:
    prim = Primitive(f"kaun_{entry.key}")

    def compute(a: Any, b: Any) -> Any:
        return _glu_parts(entry, "value", a, b).astype(a.dtype)

    impl = jax.jit(compute)
    prim.def_impl(lambda a, b: impl(a, b))
    prim.def_abstract_eval(lambda a, b: a)
    mlir.register_lowering(prim, mlir.lower_fun(compute, multiple_results=False))
    batching.defbroadcasting(prim)

    def rule(i: int) -> Any:
        def tangent(t: Any, a: Any, b: Any) -> Any:
            d = _glu_parts(entry, "deriv", a, b)[i]
            return (t.astype(d.dtype) * d).astype(a.dtype)

        return tangent

    ad.defjvp(prim, rule(0), rule(1))

    def taylor(primals: Any, series: Any) -> Any:
        # the value formula's own series (coefficients in, coefficients out, as a rule's are)
        return jet.jet(compute, tuple(primals), tuple(series), factorial_scaled=False)

    jet.jet_rules[prim] = taylor
    return prim


_GLU_PRIMS = {e.key: _glu_primitive(e) for e in ALL.values() if e.kind == "glu"}


@functools.cache
def _glu(key: str, ax: int) -> Any:
    prim = _GLU_PRIMS[key]

    def g(x: Any) -> Any:
        # split, not two slices: the transpose of a slice is a pad, and XLA on CPU runs the
        # backward's pad + add 30x slower than split's transpose, one concatenate
        return prim.bind(*jnp.split(x, 2, axis=ax))

    return jax.jit(g)


@functools.cache
def _gated(key: str) -> Any:
    return jax.jit(_GLU_PRIMS[key].bind)


class JaxBackend(Backend):
    name = "jax"
    o = O
    f32 = jnp.float32

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        structure, s = _split(entry, p, x.dtype)
        return _jitted(entry, structure, 0)(x, *s)

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        structure, s = _split(entry, p, x.dtype)
        return _jitted(entry, structure, order)(x, *s)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        return _prelu(entry)(x, alpha)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        return _glu(entry.key, ax)(x)

    def gated(self, entry: Entry, a: Any, b: Any) -> Any:
        return _gated(entry.key)(a, b)
