"""PyTorch: the compiled kernels on CPU tensors; the formulas in torch operations elsewhere.

Which path serves a call (``_cpu`` and ``_eager`` decide, per call, without reading any value):

* **torch's own op** for the functions whose result is exact (relu, relu6, hard_tanh,
  leaky_relu and prelu with a number alpha, an alpha tensor through ``torch._prelu_kernel``):
  bitwise the formula, and torch's autograd gives our conventions at the kinks (delegation).
* **compiled kernel** (``kaun._kernels``): a plain ``torch.Tensor`` on the CPU, called eagerly
  (not under ``torch.compile``, ``torch.func`` or forward-mode AD). Without autograd the value
  kernel writes a fresh tensor; with autograd, one ``autograd.Function`` per activation saves
  only x, and its backward is the vjp kernel (g f'(x) in one pass) or, when a graph is being
  built (``create_graph``, double backward), g times the ``autograd.Function`` of the first
  derivative, whose own backward reaches the second the same way, and that one the third (the
  entry's formulas, kaun._core.ORDERS); past the third order, autograd of the third's formula.
* **formula** in torch operations (kaun._ir's Python lowering of the formula's graph: constants
  as literals, shared subexpressions once): everything else (meta and CUDA tensors, FakeTensor,
  DTensor and other subclasses, ``torch.compile`` (which fuses it), ``torch.export``,
  ``torch.func``, ``torch.jit.trace`` (which records it)). These paths never read a value back
  to the host (no ``.item()``, no boolean indexing), so they are sync-free.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import torch
import torch.nn.functional as F
from torch.autograd import forward_ad as _fwd_ad

from .. import _ir
from .. import _kernels as K
from .._core import ALL, ORDERS, Entry, halves
from .._kernels import gpu as G
from .._kernels import torchops as TO
from ._base import Backend

_HALF = (torch.float16, torch.bfloat16)
_unwrap_if_dead = torch._C._functorch.unwrap_if_dead
_IO = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
       torch.float64: "float64"}


def _expm1(x: Any) -> Any:
    """torch.expm1; under torch.compile by Kahan's method, exp(x) - 1 scaled by x / log(exp(x)):
    Inductor's CPU expm1 computes exp(x) - 1 itself (torch 2.13: 19% off at x = 1e-7), its exp
    and log are accurate. A few ulp; x where exp(x) rounds to 1, -1 and inf at the ends."""
    if not torch.compiler.is_compiling():
        return torch.expm1(x)
    return _expm1_kahan(x)


def _expm1_kahan(x: Any) -> Any:
    u = torch.exp(x)
    um1 = u - 1.0
    big = u == float("inf")  # (not isinf: the TorchScript ONNX exporter casts its input to double)
    y = um1 * (x / torch.log(torch.where(big | (u == 1.0), 2.0, u)))
    return torch.where(u == 1.0, x, torch.where(um1 == -1.0, -1.0, torch.where(big, u, y)))


class TorchOps:
    """The formula vocabulary on tensors (out of place, differentiable, traceable)."""

    exp = staticmethod(torch.exp)
    exp_normal = staticmethod(torch.exp)
    expm1 = staticmethod(_expm1)
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


def _log1p_onnx(x: Any) -> Any:
    """log1p for ONNX, which has no such operator (torch.onnx writes log(1 + x): 0 for
    |x| < 2^-25): Kahan's log(u) * x / (u - 1), u = 1 + x; x where u rounds to 1."""
    u = 1.0 + x
    y = torch.log(u) * (x / torch.where(u == 1.0, 1.0, u - 1.0))
    return torch.where(u == 1.0, x, torch.where(u == float("inf"), u, y))


def _tanh_onnx(x: Any) -> Any:
    """tanh for ONNX Runtime, whose float32 Tanh is up to 100 ulp off below |x| = 1e-10 (within
    3.2 ulp elsewhere): x itself where tanh(x) rounds to x (x^3/3 below half an ulp of x)."""
    return torch.where(torch.abs(x) < (2.0**-27 if x.dtype == torch.float64 else 2.0**-12),
                       x, torch.tanh(x))


class OnnxOps(TorchOps):
    """The vocabulary while torch.onnx.export traces (dynamo or TorchScript): operators that
    ONNX Runtime implements, and implements accurately (ONNX has no expm1 either: torch.onnx's
    exp(x) - 1 loses elu's relative precision near 0)."""

    expm1 = staticmethod(_expm1_kahan)
    log1p = staticmethod(_log1p_onnx)  # type: ignore[assignment]  # (torch's own is typed)
    tanh = staticmethod(_tanh_onnx)  # type: ignore[assignment]


O_ONNX = OnnxOps()


def _ops() -> Any:
    """The vocabulary for this call: ONNX's while torch.onnx.export traces (torch.onnx is
    imported then), torch's otherwise."""
    onnx = sys.modules.get("torch.onnx")
    if onnx is not None and onnx.is_in_onnx_export():
        return O_ONNX
    return O


def _eager() -> bool:
    """No tracer (torch.compile, torch.jit.trace: neither sees a kernel's call), no torch.func
    transform, no forward-mode AD, no TorchDispatchMode (make_fx, FlopCounterMode, a user's
    mode: each must see the operations, and a kernel's call is none): a kernel may run."""
    return not (
        torch.compiler.is_compiling()
        or torch._C._are_functorch_transforms_active()
        or _fwd_ad._current_level >= 0
        or torch._C._is_tracing()
        or _modes() > 0
    )


_modes = torch._C._len_torch_dispatch_stack


_STRIDED = torch.strided


def _dense(qualname: str, t: Any, arg: str = "x") -> None:
    """TypeError unless t is a dense tensor: a sparse layout (COO, CSR, CSC, BSR, BSC), MKL-DNN
    or a nested tensor (jagged or strided) is refused, for every function alike (torch has
    few of their operations, and a kernel reads a dense tensor's memory)."""
    if t.layout is not _STRIDED or t.is_nested:
        if t.is_nested:
            what, hint = "a nested tensor", (f"apply it to {arg}.values() (jagged) or to each "
                                             f"tensor of {arg}.unbind()")
        else:
            what, hint = f"a tensor of layout {t.layout}", f"convert it with {arg}.to_dense()"
        raise TypeError(
            f"{qualname}: {arg} must be a dense tensor (layout torch.strided), got {what}; {hint}"
        )


def _cpu(t: Any) -> bool:
    """Whether t is a plain strided ``torch.Tensor`` on the CPU (a subclass such as DTensor,
    FakeTensor or nn.Parameter has its own semantics: it takes the formula)."""
    return type(t) is torch.Tensor and t.is_cpu and t.layout is torch.strided


def _plain(t: Any) -> bool:
    """Whether t is a plain strided ``torch.Tensor`` on the CPU or a CUDA device (where a C or
    a Triton kernel may read it)."""
    return type(t) is torch.Tensor and t.layout is torch.strided and (t.is_cpu or t.is_cuda)


def _like(x: Any, t: Any) -> Any:
    """t with x's dtype and strides (a copy only where it differs)."""
    if t.dtype == x.dtype and t.stride() == x.stride():
        return t
    return torch.empty_like(x).copy_(t)


def _resolved(t: Any) -> Any:
    """t with a lazy negation or conjugation applied (``torch._neg_view``, ``z.conj().imag``:
    a bit on the tensor that torch's own ops honour and a kernel reading its memory would not);
    t itself where there is none."""
    if t.is_neg() or t.is_conj():
        return t.resolve_neg().resolve_conj()
    return t


def _run(fn: Any, c: Any, x: Any, g: Any = None) -> Any:
    """Kernel fn (of c: a C kernel's address, or a Triton kernel) over every element of x (and
    of the cotangent g), into a new tensor with x's layout (dense layouts such as channels-last
    kept, others made contiguous)."""
    x = _resolved(x)
    y = torch.empty_like(x)
    if not x.is_contiguous() and y.stride() != x.stride():  # overlapping or with gaps
        x = x.contiguous()
        y = torch.empty_like(x)
    g = None if g is None else _like(x, _resolved(g))  # (held: the kernel reads its memory)
    if isinstance(c, G.Kernels):
        G.launch(fn, c, [x] if g is None else [x, g], [y], x.numel())
        return y
    K.runtime().kaun_run_flat(fn, x.data_ptr(), None if g is None else g.data_ptr(), y.data_ptr(),
                              x.numel(), c.p, c.np, K.torch_threads(torch.get_num_threads()))
    return y


def _lower(e: Entry, which: str, prec: int, structure: tuple[Any, ...]) -> Any:
    """e's formula ``which`` (kaun._core.ORDERS) as kaun._ir's Python lowering, for prepared
    arguments of this structure (None where a run-time scalar goes)."""
    return _LOWERED.setdefault((e.key, which, prec, structure),
                               _ir.python_function(_graph((e.key, which, prec, structure))))


def _graph(key: tuple[Any, ...]) -> _ir.Graph:
    e, which, prec, structure = ALL[key[0]], *key[1:]
    args = tuple(0.0 if v is None else v for v in structure)
    return _ir.trace(e.formula_of(which), e.nin, args, prec)


def _all_keys() -> list[tuple[Any, ...]]:
    """Every entry's every form, formula and working precision."""
    return [(e.key, which, prec, e.structure(e.prep(p, prec)))
            for e in ALL.values() for p in e.forms_params() for prec in (32, 64)
            for which in (ORDERS if e.kind == "elementwise" else ORDERS[:2])]


def _lower_all() -> dict[Any, Any]:
    """Every lowering (``_all_keys``), as one module: from the cache folder, where an earlier
    process of the same kaun sources wrote it (a few ms), else traced and lowered here (about
    0.3 s) and written there for the next process. torch.compile then finds them in a dict,
    never builds one inside a trace (which it could not: exec)."""
    import hashlib
    import linecache
    import marshal
    from pathlib import Path

    from .._special import split_const

    keys = _all_keys()
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(sys.version.encode())
    for f in sorted(root.rglob("*.py")):
        h.update(f.read_bytes())
    name = f"torch-formulas-{h.hexdigest()[:24]}.marshal"
    import types

    table: Any = None
    src = ""
    try:
        d = K._cache()
        if (d / name).exists() and K._private_file(d / name) is None:
            src, code = marshal.loads((d / name).read_bytes())
            if isinstance(src, str) and isinstance(code, types.CodeType):
                ns: dict[str, Any] = {"_split_const": split_const}
                exec(code, ns)  # noqa: S102 (our own generated code, from a private folder)
                table = ns.get("LOWERED")
    except Exception:  # (damaged, foreign or stale: lowered here and written again below)
        table = None
    if not isinstance(table, dict) or set(table) != set(keys):
        parts = [_ir.python_source(_graph(k), f"f{i}") for i, k in enumerate(keys)]
        table = ", ".join(f"{k!r}: f{i}" for i, k in enumerate(keys))
        src = "\n".join(parts) + f"\nLOWERED = {{{table}}}\n"
        code = compile(src, "<kaun formulas>", "exec")
        ns = {"_split_const": split_const}
        exec(code, ns)  # noqa: S102 (our own generated code)
        table = ns["LOWERED"]
        try:
            d = K._cache()
            tmp = d / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            # (private, whatever the umask: a file others could write is refused when read)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(marshal.dumps((src, code)))
            os.replace(tmp, d / name)
        except (OSError, RuntimeError):
            pass  # (no cache: the next process lowers them again)
    linecache.cache["<kaun formulas>"] = (len(src), None, src.splitlines(True), "<kaun formulas>")
    return table  # type: ignore[no-any-return]


_LOWERED: dict[Any, Any] = _lower_all()


def _work(entry: Entry, which: str, xs: tuple[Any, ...], args: tuple[Any, ...]) -> Any:
    """entry's formula of xs in the working dtype (float32 for half), not rounded: the Python
    lowering of its graph (kaun._ir), whose constants are literals, so that torch.compile
    (dynamic=True too) sees constants, and shared subexpressions run once."""
    if xs[0].dtype in _HALF:
        xs = tuple(v.float() for v in xs)
    prec = 64 if xs[0].dtype == torch.float64 else 32
    structure = entry.structure(args)
    fn = _LOWERED.get((entry.key, which, prec, structure))
    if fn is None:  # a form no entry's `forms` reaches (tests/test_kernels.py checks there is none)
        fn = _lower(entry, which, prec, structure)
    return fn(_ops(), *xs, tuple(v for v in args if isinstance(v, float)))


def _args(entry: Entry, x: Any, p: tuple[float, ...]) -> tuple[Any, ...]:
    return entry.prep(p, 64 if x.dtype == torch.float64 else 32)


def _round(y: Any, dt: Any) -> Any:
    return y.to(dt) if dt in _HALF else y


def _scaled(g: Any, d: Any) -> Any:
    """g * d, d in the working dtype, rounded once to g's dtype."""
    if g.dtype in _HALF:
        return (g.float() * d).to(g.dtype)
    return g * d


def _kernel(entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
    """The kernels that may serve x eagerly: C ones (kaun._kernels.Compiled) for a CPU tensor,
    Triton ones (kaun._kernels.gpu.Kernels) for a CUDA tensor or, under
    ``KAUN_TRITON=interpret``, a CPU one; None where none may."""
    if not _eager() or not _plain(x):
        return None
    if x.is_cuda:
        return G.compiled(entry, p, _IO[x.dtype], interpret=False) if G.usable(x.device) else None
    if G.INTERPRET:
        return G.compiled(entry, p, _IO[x.dtype], interpret=True)
    return K.compiled(entry, p, _IO[x.dtype])


def _value(entry: Entry, x: Any, p: tuple[float, ...], k: int = 0) -> Any:
    """f(x), or its derivative of order k, rounded to x's dtype."""
    c = _kernel(entry, x, p)
    if c is not None:
        fns = (c.value, c.vjp) if k == 0 else c.order(k)
        if fns is not None:
            return _run(fns[0], c, x)
    return _round(_work(entry, ORDERS[k], (x,), _args(entry, x, p)), x.dtype)


def _grad(entry: Entry, g: Any, x: Any, p: tuple[float, ...], k: int = 1) -> Any:
    """g f^(k)(x): the vjp kernel where no graph is being built; where one is, g times the
    Function of order k (for k < 3; the formula in torch operations for k = 3), so that the
    next derivative is again the entry's formula."""
    if not torch.is_grad_enabled() and _eager() and _plain(g):
        c = _kernel(entry, x, p)
        fns = None if c is None else c.order(k)
        if c is not None and fns is not None:
            return _run(fns[1], c, x, g)
    if k < len(ORDERS) - 1 and torch.is_grad_enabled():
        return _scaled(g, _apply(_FNS[k], x, entry.key, _hex(p)))
    return _scaled(g, _work(entry, ORDERS[k], (x,), _args(entry, x, p)))


def _function(k: int) -> tuple[Any, Any]:
    """The autograd.Function of the formula of order k (0: the value, 1 and 2: the
    derivatives; its backward and jvp reach order k + 1) of any elementwise entry, named by its
    key in ``apply(x, key, h)``: for eager use (with a jvp rule, for forward-mode AD and
    torch.func) and for torch.compile (without: dynamo cannot trace a Function that has one).
    One class per order for every entry, not one per entry (each class costs torch ~0.3 ms to
    make, ~50 ms at import for all of them)."""
    # dynamo cannot wrap an Entry: the methods find it by key in a plain dict.

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, name: str, h: tuple[str, ...]) -> Any:
            return _value(ALL[name], x, _floats(h), k)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, ctx.name, h = inputs
            ctx.p = _floats(h)
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (x,) = ctx.saved_tensors
            return _grad(ALL[ctx.name], g, x, ctx.p, k + 1), None, None

    class Fn(FnC):
        # elementwise: vmap applies the Function to the batched tensor itself (torch's generated
        # rule cannot take a Function applied inside another's backward, as the next order is)
        generate_vmap_rule = False

        @staticmethod
        def vmap(info: Any, in_dims: Any, x: Any, name: str, h: tuple[str, ...]) -> Any:
            return _apply(_FNS[k], x, name, h), in_dims[0]

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            FnC.setup_context(ctx, inputs, output)
            if _fwd_ad._current_level >= 0:  # (jvp is only ever called under forward-mode AD)
                ctx.save_for_forward(inputs[0])

        @staticmethod
        def jvp(ctx: Any, tx: Any, *_: Any) -> Any:
            (x,) = ctx.saved_tensors
            e = ALL[ctx.name]
            if k + 1 < len(ORDERS) - 1:
                return _scaled(tx, _apply(_FNS[k + 1], x, ctx.name, _hex(ctx.p)))
            return _scaled(tx, _work(e, ORDERS[k + 1], (x,), _args(e, x, ctx.p)))

    suffix = "" if k == 0 else f"_d{k}"
    Fn.__name__ = Fn.__qualname__ = f"kaun{suffix}"
    FnC.__name__ = FnC.__qualname__ = f"kaun{suffix}_compiled"
    return Fn, FnC


def _function_path(*ts: Any) -> bool:
    """Whether a call takes the autograd.Function (a gradient to give, or torch.compile,
    torch.func, forward-mode AD) rather than a plain value (a kernel). Under torch.jit.trace
    neither: the tracer records the formula's torch operations, the same graph with or without
    grad (its sanity check traces twice), which torch.jit.save can save; their gradient is
    autograd's of those operations."""
    if torch.compiler.is_compiling():  # (first: dynamo folds it; _is_tracing would break a graph)
        return True
    if torch._C._is_tracing():
        return False
    return _needs_grad(*ts) or not _eager()


def _hex(p: tuple[float, ...]) -> tuple[str, ...]:
    """Hyper-parameters as they travel into an elementwise Function: exact hex strings, which
    torch.compile keeps constants (floats there become symbolic 0-d tensors under
    dynamic=True, and torch warns about their .grad)."""
    return tuple(v.hex() for v in p)


def _floats(h: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(float.fromhex(v) for v in h)


def _apply(fns: tuple[Any, Any], *args: Any) -> Any:
    """fns[0].apply(*args), or fns[1]'s under torch.compile. Outside torch.func transforms this
    calls the C implementation directly: ``Function.apply`` binds default arguments with
    ``inspect.signature`` on every call of a Function with ``setup_context`` (40 us, more than
    the whole of a 2^16-element sigmoid); the C side runs forward and setup_context itself."""
    if torch.compiler.is_compiling():
        return fns[1].apply(*args)
    if torch._C._are_functorch_transforms_active():
        return fns[0].apply(*args)
    # (Function.apply's unwrap_dead_wrappers, for our one or two tensors: a C call each)
    args = tuple(_unwrap_if_dead(a) if isinstance(a, torch.Tensor) else a for a in args)
    return super(torch.autograd.Function, fns[0]).apply(*args)


# torch's own op where it is exact and has our conventions; None: not for these parameters
# (a slope of 0 would give 0 * -inf = NaN at -inf where the limit is 0)
_NATIVE: dict[str, Any] = {
    "relu": lambda x: torch.relu(x),
    "relu6": lambda x: F.relu6(x),
    "hard_tanh": lambda x: F.hardtanh(x),
    "leaky_relu": lambda x, s: F.leaky_relu(x, s) if s != 0.0 else None,
}


def _relu_int(x: Any, order: int = 0) -> Any:
    """relu of an integer tensor, or its derivative of that order (1: 1 for x > 0, else 0; 2
    and 3: 0), in x's dtype: torch.relu for the signed dtypes; for the unsigned ones relu is
    the identity, a copy (torch 2.13 has no clamp nor comparison but == and != for uint16,
    uint32 and uint64)."""
    if order:
        if order > 1:
            return torch.zeros_like(x)
        return (x > 0 if x.dtype.is_signed else x != 0).to(x.dtype)
    return torch.relu(x) if x.dtype.is_signed else x.clone()


# the C++ operator's name for each (kaun._kernels.torchops.cpp: py_native)
_NATIVE_KIND = {"relu": 0, "relu6": 1, "hard_tanh": 2, "leaky_relu": 3}


def _native_name(entry: Entry) -> str:
    return "leaky_relu" if entry.key == "prelu_scalar" else entry.name


def _native(entry: Entry) -> Any:
    return _NATIVE.get(_native_name(entry))


# -- glu: the halves along an axis ---------------------------------------------------------------


def _rows(fn: Any, c: Any, a: Any, b: Any, g: Any, y: Any, y2: Any, rows: int, length: int,
          astride: int, gstride: int, ostride: int) -> None:
    """runtime.c's kaun_run_rows for a Triton kernel: operands a and b (tensors whose storage
    starts at a row's first element), rows of ``length`` elements ``astride`` apart, the
    cotangent g ``gstride`` apart, outputs y and y2 ``ostride`` apart."""
    ins = [a, b] if g is None else [a, b, g]
    outs = [y] if y2 is None else [y, y2]
    G.launch(fn, c, ins, outs, rows * length, rows, length, (astride, astride, gstride),
             (ostride, ostride))


def _glu_run(fn: Any, c: Any, x: Any, ax: int, g: Any = None, into: Any = None) -> Any:
    """glu's kernel fn over x seen as (rows, 2, length), its halves side by side: the value
    (rows, length), or with a cotangent g the gradient (rows, 2, length), written into ``into``
    where given (x itself: each element is read before its gradient is written over it)."""
    x = _resolved(x).contiguous()
    ax %= x.dim()  # (glu_rows reads the shape around ax: -1 would read it all)
    n = x.shape[ax] // 2
    rows, length = K.glu_rows(x.shape, ax)
    if isinstance(c, G.Kernels):
        xf = x.view(-1)
        if g is None:
            out = x.new_empty(x.shape[:ax] + (n,) + x.shape[ax + 1:])
            if out.numel():
                _rows(fn, c, xf, xf[length:], None, out, None, rows, length, 2 * length, 0, length)
            return out
        g = _resolved(g).to(x.dtype).contiguous()
        out = torch.empty_like(x) if into is None else into
        if out.numel():
            of = out.view(-1)
            _rows(fn, c, xf, xf[length:], g, of, of[length:], rows, length, 2 * length, length,
                  2 * length)
        return out
    xp, off = x.data_ptr(), length * x.element_size()
    nt = K.torch_threads(torch.get_num_threads())
    run = K.runtime().kaun_run_rows
    if g is None:
        out = torch.empty(x.shape[:ax] + (n,) + x.shape[ax + 1:], dtype=x.dtype)
        run(fn, xp, xp + off, None, out.data_ptr(), None, rows, length, 2 * length, 0, length,
            c.p, c.np, nt)
    else:
        g = _resolved(g).to(x.dtype).contiguous()
        out = torch.empty_like(x) if into is None else into
        run(fn, xp, xp + off, g.data_ptr(), out.data_ptr(), out.data_ptr() + off, rows, length,
            2 * length, length, 2 * length, c.p, c.np, nt)
    return out


def _glu_value(entry: Entry, x: Any, ax: int) -> Any:
    c = _kernel(entry, x, ())
    if c is None:
        return _round(_work(entry, "value", halves(x, ax), ()), x.dtype)
    return _glu_run(c.value, c, x, ax)


def _glu_grad(entry: Entry, g: Any, x: Any, ax: int) -> Any:
    if not torch.is_grad_enabled() and _eager() and _plain(g):
        c = _kernel(entry, x, ())
        if c is not None:
            return _glu_run(c.vjp, c, x, ax, g)
    da, db = _work(entry, "deriv", halves(x, ax), ())
    return torch.cat([_scaled(g, da), _scaled(g, db)], dim=ax)


def _glu_function(name: str) -> tuple[Any, Any]:
    """The autograd.Function of a glu-kind entry (glu, swiglu, ...) of x split along an axis:
    saves x only; backward is one pass of the vjp kernel writing both halves' gradients."""

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, ax: int) -> Any:
            return _glu_value(ALL[name], x, ax)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            x, ctx.ax = inputs
            ctx.save_for_backward(x)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            (x,) = ctx.saved_tensors
            return _glu_grad(ALL[name], g, x, ctx.ax), None

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            FnC.setup_context(ctx, inputs, output)
            ctx.save_for_forward(inputs[0])

        @staticmethod
        def jvp(ctx: Any, tx: Any, _: Any) -> Any:
            (x,) = ctx.saved_tensors
            da, db = _work(ALL[name], "deriv", halves(x, ctx.ax), ())
            ta, tb = halves(tx, ctx.ax)
            return _scaled(ta, da) + _scaled(tb, db)

    Fn.__name__ = Fn.__qualname__ = f"kaun_{name}"
    FnC.__name__ = FnC.__qualname__ = f"kaun_{name}_compiled"
    return Fn, FnC


_TWICE = (
    "kaun.nn.GatedMLP: its backward wrote the activation's gradient over the activation's saved "
    "input (inplace_backward=True saves that much memory), so it cannot run a second time; "
    "build the block with inplace_backward=False to backward through it more than once "
    "(retain_graph=True)"
)


def _glu_inplace_function(name: str) -> Any:
    """The Function of a glu-kind entry for kaun.nn.GatedMLP: as ``_glu_function``'s, but its
    backward (a plain one: no graph being built, a kernel at hand, x contiguous) writes the
    gradient over the saved x and returns x, so that the block's backward holds one tensor of
    x's size where it held two. Safe because x is the block's own intermediate (its gate_up
    projection's output, seen by nothing else) and its version is bumped (any other saved
    reference to it would raise torch's in-place error); a second backward raises (_TWICE)."""

    base = _GLU[name][1]  # (the usual Function: its forward, its saved x)

    class Fn(base):  # type: ignore[valid-type,misc]
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            base.setup_context(ctx, inputs, output)
            ctx.consumed = False

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            if ctx.consumed:
                raise RuntimeError(_TWICE)
            (x,) = ctx.saved_tensors
            e = ALL[name]
            if (not torch.is_grad_enabled() and _eager() and _plain(g) and _plain(x)
                    and x.is_contiguous() and not (x.is_neg() or x.is_conj())):
                c = _kernel(e, x, ())
                if c is not None:
                    ctx.consumed = True
                    _glu_run(c.vjp, c, x, ctx.ax, g, into=x)
                    torch.autograd.graph.increment_version(x)
                    return x, None
            return _glu_grad(e, g, x, ctx.ax), None

    Fn.__name__ = Fn.__qualname__ = f"kaun_{name}_inplace_backward"
    return Fn


def glu_inplace_backward(entry: Entry, x: Any, ax: int) -> Any:
    """entry (glu-kind) of x split along ax, for kaun.nn.GatedMLP: eagerly with autograd, the
    Function whose backward overwrites x (see ``_glu_inplace_function``); otherwise the usual
    call."""
    if (_needs_grad(x) and _eager() and type(x) is torch.Tensor
            and not torch.compiler.is_compiling()):
        fn = _INPLACE.get(entry.key)
        if fn is None:
            fn = _INPLACE[entry.key] = _glu_inplace_function(entry.key)
        return fn.apply(x, ax % x.dim())  # (the axis as _dispatch gives it: non-negative)
    return None


_INPLACE: dict[str, Any] = {}


# -- the gated family of two separate arrays (up, gate) ------------------------------------------


def _row_stride(t: Any) -> int | None:
    """The distance between rows of t seen as (rows, t.shape[-1]), each row contiguous (a
    half of ``torch.chunk(x, 2, -1)``, say); None where t is not laid out so."""
    if t.dim() < 2 or t.stride(-1) != 1:
        return None
    for i in range(t.dim() - 2):
        if t.shape[i] > 1 and t.stride(i) != t.stride(i + 1) * t.shape[i + 1]:
            return None
    return int(t.stride(-2))


def _pair_run(fn: Any, c: Any, a: Any, b: Any, g: Any = None) -> Any:
    """A glu-kind kernel fn over two tensors a and b of one shape: the value, or with a
    cotangent g the two gradients (d/da, d/db), one pass; new contiguous outputs. Contiguous
    inputs are one run of elements; two halves of one tensor along its last axis (Megatron's
    ``torch.chunk``) are read in place, row by row; anything else is made contiguous first."""
    a, b = _resolved(a), _resolved(b)
    n = a.numel()
    rows, length, stride = 1, n, 0
    if not (a.is_contiguous() and b.is_contiguous()):
        sa, sb = _row_stride(a), _row_stride(b)
        if sa is not None and sa == sb and a.shape[-1] > 0:
            rows, length, stride = n // a.shape[-1], a.shape[-1], sa
        else:
            a, b = a.contiguous(), b.contiguous()
    cf = torch.contiguous_format  # (empty_like would keep a transposed view's strides)
    if isinstance(c, G.Kernels):
        if g is None:
            out = torch.empty_like(a, memory_format=cf)
            if n:
                _rows(fn, c, a, b, None, out, None, rows, length, stride, 0, length)
            return out
        g = _resolved(g).to(a.dtype).contiguous()
        da, db = torch.empty_like(a, memory_format=cf), torch.empty_like(a, memory_format=cf)
        if n:
            _rows(fn, c, a, b, g, da, db, rows, length, stride, length, length)
        return da, db
    nt = K.torch_threads(torch.get_num_threads())
    run = K.runtime().kaun_run_rows
    if g is None:
        out = torch.empty_like(a, memory_format=cf)
        if n:
            run(fn, a.data_ptr(), b.data_ptr(), None, out.data_ptr(), None, rows, length, stride,
                length, length, c.p, c.np, nt)
        return out
    g = _resolved(g).to(a.dtype).contiguous()
    da, db = torch.empty_like(a, memory_format=cf), torch.empty_like(a, memory_format=cf)
    if n:
        run(fn, a.data_ptr(), b.data_ptr(), g.data_ptr(), da.data_ptr(), db.data_ptr(), rows,
            length, stride, length, length, c.p, c.np, nt)
    return da, db


def _pair_value(entry: Entry, a: Any, b: Any) -> Any:
    c = _kernel(entry, a, ()) if _plain(b) and b.device == a.device else None
    if c is None:
        return _round(_work(entry, "value", (a, b), ()), a.dtype)
    return _pair_run(c.value, c, a, b)


def _pair_grad(entry: Entry, g: Any, a: Any, b: Any) -> tuple[Any, Any]:
    if not torch.is_grad_enabled() and _eager() and _plain(g) and _plain(b) and b.device == a.device:
        c = _kernel(entry, a, ())
        if c is not None:
            return _pair_run(c.vjp, c, a, b, g)  # type: ignore[no-any-return]
    da, db = _work(entry, "deriv", (a, b), ())
    return _scaled(g, da), _scaled(g, db)


def _pair_function(name: str) -> tuple[Any, Any]:
    """The autograd.Function of a glu-kind entry of two tensors (a: up, b: gate): saves the two
    inputs only (no activation, no output); backward writes both gradients in one pass."""

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(a: Any, b: Any) -> Any:
            return _pair_value(ALL[name], a, b)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            a, b = ctx.saved_tensors
            return _pair_grad(ALL[name], g, a, b)

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            FnC.setup_context(ctx, inputs, output)
            ctx.save_for_forward(*inputs)

        @staticmethod
        def jvp(ctx: Any, ta: Any, tb: Any) -> Any:
            a, b = ctx.saved_tensors
            da, db = _work(ALL[name], "deriv", (a, b), ())
            out = None if ta is None else _scaled(ta, da)
            if tb is not None:
                out = _scaled(tb, db) if out is None else out + _scaled(tb, db)
            return out

    Fn.__name__ = Fn.__qualname__ = f"kaun_{name}_pair"
    FnC.__name__ = FnC.__qualname__ = f"kaun_{name}_pair_compiled"
    return Fn, FnC


# -- prelu with an alpha tensor ------------------------------------------------------------------


def _sum_to(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum g over the axes that broadcasting added to an array of the given shape."""
    lead = g.dim() - len(shape)
    if lead:
        g = g.sum(dim=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=axes, keepdim=True) if axes else g


def prelu_grad(g: Any, x: Any, alpha: Any) -> tuple[Any, Any]:
    """prelu's gradients (x's, alpha's) by the derivative formula, differentiable further: the
    Function's backward where a graph is built, and kaun::prelu_grad (kaun._kernels.torchops)."""
    dx, da = _work(ALL["prelu"], "deriv", (x, alpha), ())
    return _scaled(g, dx), _sum_to(_scaled(g, da), tuple(alpha.shape))


def _prelu_function() -> tuple[Any, Any]:
    def deriv(x: Any, alpha: Any) -> tuple[Any, Any]:
        return _work(ALL["prelu"], "deriv", (x, alpha), ())  # type: ignore[no-any-return]

    class FnC(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: Any, alpha: Any) -> Any:
            if _eager() and type(x) is torch.Tensor and type(alpha) is torch.Tensor:
                # torch's kernel: x > 0 ? x : alpha x, broadcast, one pass (the formula's value
                # bitwise; half: the product of two halves is exact in float32)
                return torch._prelu_kernel(x, alpha)
            return _round(_work(ALL["prelu"], "value", (x, alpha), ()), x.dtype)

        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            x, alpha = ctx.saved_tensors
            if not torch.is_grad_enabled() and _eager() and _plain(x) and _plain(alpha) and _plain(g):
                # torch's kernel: (x > 0 ? g : alpha g, x > 0 ? 0 : x g), broadcast, the
                # formula's conventions (alpha at 0); one pass
                gx, ga = torch.ops.aten._prelu_kernel_backward(g, x, alpha)
                return gx, _sum_to(ga, tuple(alpha.shape))
            return prelu_grad(g, x, alpha)

    class Fn(FnC):
        @staticmethod
        def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
            ctx.save_for_backward(*inputs)
            ctx.save_for_forward(*inputs)

        @staticmethod
        def jvp(ctx: Any, tx: Any, ta: Any) -> Any:
            x, alpha = ctx.saved_tensors
            dx, da = deriv(x, alpha)
            out = _scaled(tx, dx)
            return out if ta is None else out + _scaled(ta, da)

    return Fn, FnC


# The C++ operator's kernel tables (kaun._kernels.torchops): (entry key, p, dtype) -> table id,
# and id -> (entry, p) for kaun::grad
_TABLES: dict[Any, int | None] = {}
_TABLE_OF: dict[int, tuple[Entry, tuple[float, ...]]] = {}


def _table(entry: Entry, p: tuple[float, ...], dt: Any, c: Any) -> int | None:
    """The id of the C++ operator's table for these kernels (registered on first use), or None
    where the operator does not serve (not built yet, turned off, no such kernel)."""
    e = TO.ext()
    if e is None or c is None or not isinstance(c, K.Compiled):
        return None
    key = (entry.key, _hex(p), dt)
    tid = _TABLES.get(key)
    if tid is None:
        with _table_lock:
            tid = _TABLES.get(key)
            if tid is None:
                try:
                    tid = e.table(dt, c.value, c.vjp, c.scalars, entry.kind == "glu")
                except RuntimeError:  # (65536 tables: hyper-parameters beyond that, the Python path)
                    return None
                _TABLE_OF[tid] = (entry, p)
                _TABLES[key] = tid
    return tid


_table_lock = threading.Lock()


def grad_by_table(g: Any, x: Any, tid: int, k: int) -> Any:
    """kaun::grad's kernel (registered by kaun._kernels.torchops): g f^(k)(x) for the entry and
    hyper-parameters of table tid, differentiable further (the Python path's Functions)."""
    entry, p = _TABLE_OF[tid]
    return _grad(entry, g, x, p, k)


def glu_grad_by_table(g: Any, x: Any, tid: int, ax: int) -> Any:
    """kaun::glu_grad's kernel: glu's gradient for table tid, differentiable further."""
    return _glu_grad(_TABLE_OF[tid][0], g, x, ax)


def _glu_by_op(entry: Entry, x: Any, ax: int) -> Any:
    """glu(x) split along ax by the C++ operator, or None where it may not serve this call (its
    C++ side checks the tensor: a plain contiguous CPU tensor, no transform, no tracer)."""
    if torch.compiler.is_compiling():  # (first: nothing below is dynamo's)
        return None
    tid = _GLU_OP.get((entry.key, x.dtype))
    if tid is None:
        if G.INTERPRET or type(x) not in _EXACT or x.dtype not in _IO or TO.ext() is None:
            return None
        tid = _table(entry, (), x.dtype, K.compiled(entry, (), _IO[x.dtype]))
        if tid is None:
            return None
        _GLU_OP[(entry.key, x.dtype)] = tid
    return TO.ext().call_glu(x, tid, ax if ax >= 0 else ax + x.dim())


_GLU_OP: dict[Any, int] = {}  # (entry key, dtype) -> the C++ operator's table
# what the C++ operator takes as a plain tensor: nn.Parameter is one to C++ (its Python subclass
# only keeps Module bookkeeping)
_EXACT = (torch.Tensor, torch.nn.Parameter)


def _by_op(entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
    """f(x) by the C++ operator (with its C++ autograd node where x requires grad), or None
    where it may not serve this call."""
    if torch.compiler.is_compiling() or G.INTERPRET:  # (first: nothing below is dynamo's)
        return None
    if type(x) not in _EXACT or x.dtype not in _IO or not x.is_cpu or TO.ext() is None:
        return None
    tid = _table(entry, p, x.dtype, K.compiled(entry, p, _IO[x.dtype]))
    return None if tid is None else TO.ext().call(x, tid)


# Built once at import, so that torch.compile finds plain look-ups (it cannot trace the creation
# of a class): the elementwise Functions of orders 0, 1 and 2 (each serving every entry), glu's
# and the pair's per entry (five entries).
_FNS = [_function(k) for k in range(3)]
_GLU = {e.key: _glu_function(e.key) for e in ALL.values() if e.kind == "glu"}
_PAIR = {e.key: _pair_function(e.key) for e in ALL.values() if e.kind == "glu"}
_PRELU = _prelu_function()
_FLOATS = frozenset(_IO)


def _needs_grad(*ts: Any) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


class TorchBackend(Backend):
    name = "torch"
    o = O
    f32 = torch.float32
    check = staticmethod(_dense)

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.to(dtype)

    def elementwise(self, entry: Entry, x: Any, p: tuple[float, ...]) -> Any:
        if entry.ints and not x.is_floating_point():
            return _relu_int(x)
        nat = _native(entry)
        if nat is not None:
            y = nat(x, *p)
            if y is not None:
                return y
        y = _by_op(entry, x, p)
        if y is not None:
            return y
        if _function_path(x):
            return _apply(_FNS[0], x, entry.key, _hex(p))
        return _value(entry, x, p)

    def fast(self, entry: Entry, p: tuple[float, ...]) -> Any:
        nat = _native(entry)
        if nat is not None and nat(torch.zeros(1), *p) is not None:
            # torch's own op for these parameters, whatever the mode
            # (a sparse or nested tensor: the checked path, and its TypeError)
            def check(x: Any) -> Any:  # (the Python path's checks, then torch's op)
                if x.dtype in _FLOATS and x.layout is _STRIDED and not x.is_nested:
                    return nat(x, *p)
                return None
            kind, s, ext = _NATIVE_KIND[_native_name(entry)], float(p[0]) if p else 0.0, TO.ext
            dynamo = torch.compiler.is_dynamo_compiling

            def native(x: Any) -> Any:
                # the C++ operator's checks and torch's op in one call (0.3 us less than the
                # three attribute reads of the check); None: a subclass, a layout, a mode
                e = ext()
                if e is not None and not dynamo():  # (dynamo: torch's op, which it traces)
                    y = e.native(x, kind, s)
                    if y is not None:
                        return y
                return check(x)

            return native
        if torch.compiler.is_compiling():  # (built by an eager call, never inside a trace)
            return None
        if G.INTERPRET:  # (CPU tensors take the Triton kernels: the general path)
            return None
        kernels: dict[Any, K.Compiled | None] = {}  # by dtype, filled on first use
        tables: dict[Any, tuple[Any, int]] = {}  # by dtype: the C++ operator's call and table
        ext = TO.ext
        fns, h, key = _FNS[0], _hex(p), entry.key
        run = K.runtime().kaun_run_flat
        threads, grad, compiling = torch.get_num_threads, torch.is_grad_enabled, torch.compiler.is_compiling
        functorch, nt, empty_like = torch._C._are_functorch_transforms_active, K.torch_threads, torch.empty_like
        tracing, modes, dynamo = torch._C._is_tracing, _modes, torch.compiler.is_dynamo_compiling
        T, fwd, grain, strided = torch.Tensor, _fwd_ad, K.GRAIN, _STRIDED

        def f(x: Any) -> Any:
            # the kernel for a plain, dense CPU tensor, called eagerly without autograd; the
            # general path (_value, or the Function) for anything else
            dt = x.dtype
            op = None if dynamo() else tables.get(dt)  # (dynamo traces f where a graph breaks)
            if op is not None:  # the C++ operator: checks, kernel and autograd node in C++
                y = op[0](x, op[1])  # (None for what a trace holds: a fake or functional
                if y is not None:  # tensor, a tracer, a mode)
                    return y
            if compiling():  # what a trace sees: the Function, never the kernel table
                return _apply(fns, x, key, h) if dt in _FLOATS else None
            c = kernels.get(dt)
            if c is None and dt in _IO and dt not in kernels:
                c = kernels[dt] = K.compiled(entry, p, _IO[dt])
            if op is None and c is not None and ext() is not None:
                t = _table(entry, p, dt, c)
                if t is not None:
                    tables[dt] = (ext().call, t)
                    y = ext().call(x, t)
                    if y is not None:
                        return y
            if (c is not None and type(x) is T and x.is_cpu and x.layout is strided
                    and not (x.requires_grad and grad()) and not x.is_nested and x.is_contiguous()
                    and not x.is_neg() and fwd._current_level < 0 and not tracing()
                    and not functorch() and not modes()):
                y = empty_like(x)
                n = x.numel()
                run(c.value, x.data_ptr(), None, y.data_ptr(), n, c.p, c.np,
                    nt(threads()) if n >= grain else 1)
                return y
            if x.dtype not in _FLOATS or x.layout is not strided or x.is_nested:
                return None
            if _function_path(x):
                return _apply(fns, x, key, h)
            return _value(entry, x, p)

        return f

    def derivative(self, entry: Entry, x: Any, p: tuple[float, ...], order: int = 1) -> Any:
        if entry.ints and not x.is_floating_point():
            return _relu_int(x, order)
        if order < len(ORDERS) - 1 and _function_path(x):  # differentiable to the next order
            return _apply(_FNS[order], x, entry.key, _hex(p))
        if _needs_grad(x):  # the third: autograd of its formula
            return _round(_work(entry, ORDERS[order], (x,), _args(entry, x, p)), x.dtype)
        return _value(entry, x, p, order)

    def prelu(self, entry: Entry, x: Any, alpha: Any) -> Any:
        # (the common eager call first: each mode check costs a call; after _dispatch's cache of
        # checked shapes, which does not see the layout: the C++ operator checks it, and the
        # Python checks below raise the TypeError where it steps aside)
        if not torch.compiler.is_dynamo_compiling():  # (a fake or functional tensor: None)
            ext = TO.ext()
            if ext is not None:  # the C++ operator: torch's kernels, a C++ autograd node
                y = ext.prelu(x, alpha)
                if y is not None:
                    return y
        _dense(entry.qualname, x)
        _dense(entry.qualname, alpha, "alpha")
        if _plain(x) and _plain(alpha) and not _needs_grad(x, alpha) and _eager():
            return torch._prelu_kernel(x, alpha)
        if _function_path(x, alpha):
            return _apply(_PRELU, x, alpha)
        return _round(_work(entry, "value", (x, alpha), ()), x.dtype)

    def prelu_deriv(self, entry: Entry, x: Any, alpha: Any) -> tuple[Any, Any]:
        _dense(entry.qualname, alpha, "alpha")
        dx, da = _work(entry, "deriv", (x, alpha), ())
        return _round(dx, x.dtype), _round(da, x.dtype)

    def glu(self, entry: Entry, x: Any, ax: int) -> Any:
        _dense(entry.qualname, x)  # (after _dispatch's cache of checked shapes)
        y = _glu_by_op(entry, x, ax)
        if y is not None:
            return y
        if _function_path(x):
            return _apply(_GLU[entry.key], x, ax)
        return _glu_value(entry, x, ax)

    def gated(self, entry: Entry, a: Any, b: Any) -> Any:
        _dense(entry.qualname, a, "up")  # (after _dispatch's cache of checked shapes)
        _dense(entry.qualname, b, "gate")
        if _function_path(a, b):
            return _apply(_PAIR[entry.key], a, b)
        return _pair_value(entry, a, b)

    def glu_deriv(self, entry: Entry, x: Any, ax: int) -> tuple[Any, Any]:
        da, db = _work(entry, "deriv", halves(x, ax), ())
        return _round(da, x.dtype), _round(db, x.dtype)
