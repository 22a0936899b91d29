"""The Triton lowering of a traced formula: one GPU kernel per (entry, variant, I/O dtype, order),
bitwise the C kernel's result.

The third lowering of kaun's graphs, beside the C one (``codegen``) and the array one
(``kaun._ir.python_source``), on the same walk (``kaun._ir.walk``); this module's printer is a table
of Triton templates. The elementary functions are the formulas of ``kaun._elementary``, printed as
``@triton.jit`` helpers. Only IEEE basic operations are printed: float32 division and square root
as ``tl.div_rn`` and ``tl.sqrt_rn`` (Triton's ``/`` and ``tl.sqrt`` are approximate in float32), no
``tl.exp``, libdevice or fast-math instruction, every fused multiply-add an explicit ``tl.fma``, and
kernels are compiled with ``enable_fp_fusion=False`` (no other contraction: C's
``-ffp-contract=off``). So a kernel computes the operations of the C kernel in the same order, and
gives its bits.

Each kernel reads its operands as ``rows`` rows of ``length`` elements (operand j of row r at
``r * stride_j``; a plain array is one row, ``ROWS=False``), as runtime.c does, so that glu's halves
along any axis and Megatron's chunks are read in place. Half precision is computed in float32 and
rounded once. Run-time scalars (hyper-parameters) are float64, each passed as two int32 halves of
its bits (Triton passes a Python float as float32): one compiled kernel serves every value.

Where it runs: CUDA tensors in eager mode (``kaun._backends._torch``), through the same
``autograd.Function`` as the CPU kernels. ``KAUN_TRITON=interpret`` runs the kernels on CPU tensors
with Triton's interpreter instead of the C kernels (NumPy arithmetic with a true fma: the GPU's
bits, on a laptop; what the tests check against the C kernels). ``KAUN_TRITON=0`` turns the lowering
off (CUDA tensors then take the formula in torch operations, as without Triton). ``aot`` compiles a
kernel for a GPU architecture without a GPU (``kaun-activation build --gpu sm_80,sm_90``).
"""

from __future__ import annotations

import hashlib
import linecache
import os
import re
import struct
import threading
from typing import Any

from .. import _elementary, _ir
from .._core import LRU, Entry
from .._ir import BINARY, COMPARE, LOGIC, Graph, Sym
from . import KernelSet, codegen

BLOCK = 1024  # elements per program on a GPU
BLOCK_INTERPRET = 1 << 14  # under the interpreter: fewer, larger programs (NumPy per program)
NUM_WARPS = 4
_lock = threading.RLock()

# the Triton type of each I/O dtype, its working type, and the integers of the working width
TL_IO = {"float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32",
         "float64": "tl.float64"}
TL_W = {32: "tl.float32", 64: "tl.float64"}
TL_U = {32: "tl.uint32", 64: "tl.uint64"}
TL_S = {32: "tl.int32", 64: "tl.int64"}
# the pointer types of ahead-of-time signatures
# (bfloat16 is read and written as int16, its bits: see _load_io and _store_io)
SIG_IO = {"float16": "*fp16", "bfloat16": "*i16", "float32": "*fp32", "float64": "*fp64"}


def _load_io(io: str, ptr: str, prec: int) -> str:
    """An element of I/O dtype io, in the working type: bfloat16 from its bits (exact)."""
    if io == "bfloat16":
        return (f"(tl.load({ptr}, mask=m).to(tl.uint16, bitcast=True).to(tl.uint32) << 16)"
                ".to(tl.float32, bitcast=True)")
    return f"tl.load({ptr}, mask=m).to({TL_W[prec]})"


def _store_io(io: str, ptr: str, e: str) -> str:
    """Store working-type e as I/O dtype io, rounded once to nearest even. bfloat16 by its bits,
    as kmath.h's kf_to_bf16 (Triton's interpreter truncates a float32 to bfloat16); NaN becomes
    the quiet NaN 0x7fc0."""
    if io != "bfloat16":
        return f"tl.store({ptr}, ({e}).to({TL_IO[io]}), mask=m)"
    return "\n    ".join([
        f"u_ = ({e}).to(tl.uint32, bitcast=True)",
        "r_ = (u_ + 0x7FFF + ((u_ >> 16) & 1)) >> 16",
        "r_ = tl.where((u_ & 0x7FFFFFFF) > 0x7F800000, 0x7FC0, r_)",
        f"tl.store({ptr}, r_.to(tl.int16), mask=m)",
    ])


def mode() -> str:
    """``"gpu"`` (CUDA tensors take the Triton kernels), ``"interpret"`` (CPU tensors too, under
    Triton's interpreter) or ``"off"``, from ``$KAUN_TRITON`` (unset: gpu)."""
    v = os.environ.get("KAUN_TRITON", "").strip().lower()
    if v in ("0", "off", "no", "false"):
        return "off"
    return "interpret" if v == "interpret" else "gpu"


# CPU tensors take the Triton kernels under the interpreter: KAUN_TRITON=interpret when kaun was
# imported (read once: the torch adapter's CPU path asks on every call)
INTERPRET = mode() == "interpret"


def describe() -> str:
    """What serves CUDA tensors (eager), in a line: ``kaun.activation.info()["gpu"]``."""
    m = mode()
    if m == "off":
        return "KAUN_TRITON=0: CUDA tensors take the formulas in torch operations"
    if not available():
        return "no triton: CUDA tensors take the formulas in torch operations (pip install 'kaun[gpu]')"
    if m == "interpret":
        return "KAUN_TRITON=interpret: CPU tensors take the Triton kernels under Triton's interpreter"
    return "CUDA tensors take the Triton kernels (one per function and order, the CPU kernels' bits)"


def usable(device: Any) -> bool:
    """Whether a CUDA device can run the kernels: Triton compiles for compute capability 7.5
    and later (an older GPU takes the formulas in torch operations). Cached per device."""
    key = f"cap {device}"
    if key not in _state:
        import torch

        _state[key] = torch.cuda.get_device_capability(device) >= (7, 5)
    return bool(_state[key])


def available() -> bool:
    """Whether triton can be imported (not whether a GPU is there)."""
    if "ok" not in _state:
        try:
            import triton  # noqa: F401

            _state["ok"] = True
        except Exception:  # (an ImportError, or a broken install: no Triton path)
            _state["ok"] = False
    return bool(_state["ok"])


_state: dict[str, Any] = {}


def _templates(prec: int) -> dict[str, str]:
    w, u, s = TL_W[prec], TL_U[prec], TL_S[prec]
    f = "f" if prec == 32 else ""
    div, sqrt = ("tl.div_rn({0}, {1})", "tl.sqrt_rn({0})") if prec == 32 else ("{0} / {1}", "tl.sqrt({0})")
    return {
        **{op: "{0} " + sym + " {1}" for op, sym in BINARY.items()},
        "div": div, "div:s": "{0} / {1}",  # (scalars are float64: "/" is IEEE's there)
        **{f"{op}:b": "{0} " + sym + " {1}" for op, sym in COMPARE.items()},
        **{f"{op}:b": "{0} " + sym + " {1}" for op, sym in LOGIC.items()},
        "neg": "-{0}",
        "mask": f"tl.where({{0}}, 1.0, 0.0).to({w})",
        "where": "tl.where({0}, {1}, {2})",
        # max(x, lo) and min(x, hi) that keep a NaN x, as kmath.h's kf_max and kf_min
        "max": "tl.where({0} < {1}, {1}, {0})", "min": "tl.where({0} > {1}, {1}, {0})",
        "abs": f"(({{0}}).to({u}, bitcast=True) & {_u(prec, (1 << (prec - 1)) - 1)}).to({w}, bitcast=True)",
        "prod_err": "tl.fma({0}, {1}, -({0} * {1}))",
        "fma": "tl.fma({0}, {1}, {2})", "sqrt": sqrt,
        **{op: f"k_{op}{f}({{0}})" for op in codegen.ELEMENTARY},
        "bits": f"({{0}}).to({u}, bitcast=True)", "from_bits": f"({{0}}).to({w}, bitcast=True)",
        "iadd": "{0} + {1}", "isub": "{0} - {1}", "iand": "{0} & {1}", "ior": "{0} | {1}",
        "shl": "{0} << {1}", "shr": "{0} >> {1}",
        "sar": f"(({{0}}).to({s}, bitcast=True) >> {{1}}).to({u}, bitcast=True)",
        "ilt": f"({{0}}).to({s}, bitcast=True) < ({{1}}).to({s}, bitcast=True)",
        "itof": f"({{0}}).to({s}, bitcast=True).to({w})",
        "imin": f"tl.minimum(({{0}}).to({s}, bitcast=True), ({{1}}).to({s}, bitcast=True)).to({u}, bitcast=True)",
        "iwhere": "tl.where({0}, {1}, {2})",
    }


def _u(prec: int, v: int) -> str:
    return f"tl.full([], {v:#x}, {TL_U[prec]})"


def _float_bits(v: float, prec: int) -> int:
    """The bits of v rounded to the working precision (to nearest, as C's cast and NumPy's)."""
    if prec == 64:
        return int.from_bytes(struct.pack("<d", v), "little")
    import numpy as np

    with np.errstate(over="ignore"):
        return int(np.array(v, np.float64).astype(np.float32).view(np.uint32))


class TritonPrinter(_ir.Printer):
    """The lines of a Triton function: every constant typed (a Python float in Triton code is
    float32, whatever the other operand), run-time scalars in float64, each rounded once to the
    working type where it meets an array."""

    def __init__(self, g: Graph, load: str = "") -> None:
        super().__init__(g)
        self.prec = g.prec
        self.TEMPLATES = _TEMPLATES[g.prec]
        self.load = load  # the I/O dtype "in" nodes read ("": function arguments)
        self.lines: list[str] = []
        self.consts: dict[tuple[str, str, int], str] = {}
        self.as_work: set[int] = set()  # scalar nodes rounded to the working type (w<i>)

    def const(self, bits: int, t: str, w: str) -> str:
        key = (t, w, bits)
        if key not in self.consts:
            name = f"c{len(self.consts)}"
            cast = "" if t == w else f".to({w}, bitcast=True)"
            self.lines.append(f"{name} = tl.full([], {bits:#x}, {t}){cast}")
            self.consts[key] = name
        return self.consts[key]

    def ref(self, a: object, user: Sym | None = None) -> str:
        prec = self.prec
        if isinstance(a, Sym):
            if a.kind == "s" and (user is None or user.kind != "s"):  # a scalar meets an array
                if a.index not in self.as_work:
                    self.as_work.add(a.index)
                    self.lines.append(f"w{a.index} = s{a.index}.to({TL_W[prec]})")
                return f"w{a.index}"
            return f"{'s' if a.kind == 's' else 'b' if a.kind == 'b' else 'v'}{a.index}"
        if isinstance(a, int):
            return self.const(a, TL_U[prec], TL_U[prec])
        if user is not None and user.kind == "s":
            return self.const(_float_bits(float(a), 64), "tl.uint64", "tl.float64")  # type: ignore[arg-type]
        return self.const(_float_bits(float(a), prec), TL_U[prec], TL_W[prec])  # type: ignore[arg-type]

    def define(self, s: Sym, e: str) -> None:
        self.lines.append(f"{'s' if s.kind == 's' else 'b' if s.kind == 'b' else 'v'}{s.index} = {e}")

    def op_in(self, s: Sym) -> str:
        j = s.args[0]
        if not self.load:
            return f"x{j}"
        return _load_io(self.load, f"x{j} + a{j}", self.prec)

    def op_param(self, s: Sym) -> str:
        j = s.args[0]
        return (f"((ph{j}.to(tl.uint32, bitcast=True).to(tl.uint64) << 32)"
                f" | pl{j}.to(tl.uint32, bitcast=True).to(tl.uint64)).to(tl.float64, bitcast=True)")


_TEMPLATES = {p: _templates(p) for p in (32, 64)}


def elementary(name: str, prec: int) -> str:
    """The ``@jit`` function ``k_<name>[f]`` of an elementary function, from its formula."""
    g = _elementary.graph(name, prec)
    pr = _ir.walk(g, TritonPrinter(g))
    assert isinstance(pr, TritonPrinter)
    body = "\n    ".join(pr.lines)
    f = "f" if prec == 32 else ""
    return f"@jit\ndef k_{name}{f}(x0):\n    {body}\n    return {pr.ref(g.outputs[0])}\n"


def kernel(spec: codegen.Spec) -> str:
    """The ``@jit`` kernel ``spec.name``: arguments the inputs (and a vjp's cotangent), the
    outputs, the element count ``n``, the row length, each operand's row stride, two int32
    halves per run-time scalar; ``ROWS`` and ``BLOCK`` compile-time."""
    g, io = spec.graph, spec.io
    prec = codegen.PREC[codegen.WORK[io]]
    if prec != g.prec:
        raise ValueError(f"{spec.name}: a {g.prec}-bit graph cannot serve {io}")
    vjp = spec.order.startswith("vjp")
    nin, nout = len(g.inputs), len(g.outputs)
    nread = nin + vjp
    pr = _ir.walk(g, TritonPrinter(g, io))
    assert isinstance(pr, TritonPrinter)
    outs = [pr.ref(o) for o in g.outputs]
    lines = list(pr.lines)
    if vjp:
        lines.append(f"gin = {_load_io(io, f'x{nin} + a{nin}', prec)}")
        outs = [f"gin * {o}" for o in outs]
    for j, o in enumerate(outs):
        lines.append(_store_io(io, f"y{j} + b{j}", o))
    args = ([f"x{j}" for j in range(nread)] + [f"y{j}" for j in range(nout)] + ["n", "length"]
            + [f"is{j}" for j in range(nread)] + [f"os{j}" for j in range(nout)]
            + [f"p{h}{j}" for j in range(len(g.params)) for h in "hl"] + ["ROWS: tl.constexpr",
                                                                           "BLOCK: tl.constexpr"])
    offs = [f"a{j}" for j in range(nread)] + [f"b{j}" for j in range(nout)]
    strides = [f"is{j}" for j in range(nread)] + [f"os{j}" for j in range(nout)]
    ind = "\n    "
    head = ind.join([
        "i = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)",
        "m = i < n",
        "if ROWS:",
        "    r = i // length",
        "    c = i - r * length",
        *[f"    {o} = r * {s} + c" for o, s in zip(offs, strides, strict=True)],
        "else:",
        *[f"    {o} = i" for o in offs],
    ])
    # the scalars' halves are never specialized (Triton would compile again for a half that is
    # 1 or a multiple of 16: one kernel must serve every value)
    halves = [f"p{h}{j}" for j in range(len(g.params)) for h in "hl"]
    deco = f"@jit(do_not_specialize={halves!r})" if halves else "@jit"
    return (f"{deco}\ndef {spec.name}({', '.join(args)}):\n    {head}\n    "
            f"{ind.join(lines)}\n")


def source(specs: list[codegen.Spec]) -> str:
    """A Python module of ``@jit`` functions: the elementary functions of the specs' precision
    and the kernels. ``jit`` is given by the loader (triton.jit, or the interpreter's)."""
    prec = codegen.PREC[codegen.WORK[specs[0].io]]
    fns = "\n\n".join(elementary(n, prec) for n in _elementary.ORDER)
    kernels = "\n\n".join(kernel(s) for s in specs)
    return f"import triton.language as tl\n\n\n{fns}\n\n{kernels}"


def load(src: str, interpret: bool) -> dict[str, Any]:
    """The namespace of the module ``src``, its functions made by triton.jit or by the
    interpreter. Triton reads a kernel's source (inspect): it is registered with linecache under
    a name that hashes it."""
    digest = hashlib.sha256(src.encode()).hexdigest()[:24]
    filename = f"<kaun-triton-{digest}>"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        def jit(fn: Any = None, **kw: Any) -> Any:
            if fn is None:  # (@jit(do_not_specialize=...): nothing to specialize here)
                return InterpretedFunction
            return InterpretedFunction(fn)
    else:
        from triton import jit  # type: ignore[no-redef]
    ns: dict[str, Any] = {"jit": jit, "__name__": f"kaun_triton_{digest}"}
    exec(compile(src, filename, "exec"), ns)  # noqa: S102 (our own generated code)
    return ns


class Kernels(KernelSet):
    """The Triton kernels of one entry, hyper-parameters and I/O dtype: ``value``, ``deriv``,
    ``vjp`` (jit functions), the run-time scalars' int32 halves ``ph``; ``order(k)``
    (``kaun._kernels.KernelSet``)."""

    __slots__ = ("value", "deriv", "vjp", "ph", "interpret", "io", "_high", "_key")

    def __init__(self, ns: dict[str, Any], scalars: tuple[float, ...], interpret: bool,
                 key: Any) -> None:
        self.value, self.deriv, self.vjp = ns["k_value"], ns["k_deriv"], ns["k_vjp"]
        self.ph = tuple(h for v in scalars for h in halves(v))
        self.interpret = interpret
        self.io = key[2]
        self._high: dict[str, Any] | None = None
        self._key = key

    def _load_high(self, entry: Entry, p: tuple[float, ...], io: str) -> dict[str, Any] | None:
        ns = _module(entry, p, io, True, self.interpret)
        return {k[2:]: v for k, v in ns.items() if k.startswith("k_")}


def halves(v: float) -> tuple[int, int]:
    """A float64's bits as two int32 (high, low): what a kernel's ``ph``/``pl`` arguments take."""
    b = int.from_bytes(struct.pack("<d", v), "little")

    def s32(h: int) -> int:
        return h - (1 << 32) if h >= 1 << 31 else h

    return s32(b >> 32), s32(b & 0xFFFFFFFF)


_MODULES: dict[Any, dict[str, Any]] = {}


def _module(entry: Entry, p: tuple[float, ...], io: str, high: bool, interpret: bool) -> dict[str, Any]:
    from . import _specs

    key = (entry.key, entry.variant(p), io, high, interpret)
    ns = _MODULES.get(key)
    if ns is None:
        with _lock:
            ns = _MODULES.get(key)
            if ns is None:
                ns = _MODULES[key] = load(source(_specs(entry, p, io, high)), interpret)
    return ns


_KERNELS = LRU(512)  # (entry, dtype, interpret, hyper-parameters) -> Kernels
_ABSENT = object()


def _forked() -> None:
    # (a thread of the parent that held the lock, generating a module, is not in the child)
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_forked)


def compiled(entry: Entry, p: tuple[float, ...], io: str,
             interpret: bool | None = None) -> Kernels | None:
    """The Triton kernels for ``entry`` at ``p`` and ``io`` (see ``kaun._kernels.compiled``), or
    None where the lowering is off or Triton is not installed. ``interpret``: under Triton's
    interpreter (default: as ``KAUN_TRITON`` says)."""
    m = mode()
    if m == "off" or not available():
        return None
    if interpret is None:
        interpret = m == "interpret"
    key = (entry.key, io, interpret, tuple(v.hex() for v in p))
    hit = _KERNELS.hit(key, _ABSENT)
    if hit is not _ABSENT:
        return hit  # type: ignore[no-any-return]
    prec = codegen.PREC[codegen.WORK[io]]
    scalars = tuple(v for v in entry.prep(p, prec) if isinstance(v, float))
    k = Kernels(_module(entry, p, io, False, interpret), scalars, interpret, (entry, p, io))
    _KERNELS.put(key, k)
    return k


def _int16() -> Any:
    import torch

    return torch.int16


def launch(fn: Any, k: Kernels, ins: list[Any], outs: list[Any], n: int, rows: int = 1,
           length: int = 0, istride: tuple[int, ...] = (), ostride: tuple[int, ...] = ()) -> None:
    """Run kernel fn over n elements: operands ``ins`` (tensors, a vjp's cotangent last) and
    ``outs``, as one run (rows = 1) or rows of ``length`` with those row strides (elements)."""
    if n == 0:
        return
    block = BLOCK_INTERPRET if k.interpret else BLOCK
    grid = ((n + block - 1) // block,)
    nr, no = len(ins), len(outs)
    st = (tuple(istride) + (0,) * nr)[:nr] + (tuple(ostride) + (0,) * no)[:no]
    if k.io == "bfloat16":  # (read and written as their bits)
        ins = [t.view(_int16()) for t in ins]
        outs = [t.view(_int16()) for t in outs]
    args = (*ins, *outs, n, length or n, *st, *k.ph)
    try:
        if k.interpret:
            import numpy as np

            # (the interpreter's state is global: one launch at a time)
            with _lock, np.errstate(all="ignore"):  # (IEEE in NumPy: inf and NaN are results)
                fn[grid](*args, ROWS=rows > 1, BLOCK=block)
        else:
            import torch

            # (Triton launches on the current device and stream: the operands' device)
            with torch.cuda.device(ins[0].device):
                fn[grid](*args, ROWS=rows > 1, BLOCK=block, num_warps=NUM_WARPS,
                         enable_fp_fusion=False)
    except Exception as e:  # (Triton's compiler or driver: say what to do)
        raise RuntimeError(
            f"kaun: a Triton kernel failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "set KAUN_TRITON=0 to compute CUDA tensors with the formulas in torch operations (an "
            "earlier kernel's asynchronous CUDA error surfaces here too: CUDA_LAUNCH_BLOCKING=1 "
            "says which)"
        ) from e


# -- ahead of time: compiled for a GPU architecture, without a GPU --------------------------------


def signature(spec: codegen.Spec) -> dict[str, str]:
    g = spec.graph
    nread = len(g.inputs) + spec.order.startswith("vjp")
    t = SIG_IO[spec.io]
    sig = {f"x{j}": t for j in range(nread)}
    sig.update({f"y{j}": t for j in range(len(g.outputs))})
    sig.update({"n": "i64", "length": "i64"})
    sig.update({f"is{j}": "i64" for j in range(nread)})
    sig.update({f"os{j}": "i64" for j in range(len(g.outputs))})
    sig.update({f"p{h}{j}": "i32" for j in range(len(g.params)) for h in "hl"})
    sig.update({"ROWS": "constexpr", "BLOCK": "constexpr"})
    return sig


def aot(entry: Entry, p: tuple[float, ...], io: str, arch: int, high: bool = False,
        rows: bool = False) -> dict[str, Any]:
    """Compile the kernels of (entry, p, io[, high]) for CUDA compute capability ``arch`` (80,
    90, ...) without a GPU (Triton's compiler and the ptxas of its wheel); {kernel name: compiled
    kernel (``.asm["ptx"]``, ``["cubin"]``)}. Triton keeps each in its cache
    (``$TRITON_CACHE_DIR``), PTX beside cubin, but with no specialization of the arguments: the
    runtime's JIT, which specializes pointers' alignment and integers' divisibility, keys its
    kernels otherwise and compiles them again on first use. What this proves is that every
    kernel compiles and what its arithmetic is (``inexact``)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from . import _specs

    specs = _specs(entry, p, io, high)
    ns = _module(entry, p, io, high, False)
    out = {}
    for s in specs:
        src = ASTSource(fn=ns[s.name], signature=signature(s),
                        constexprs={"ROWS": rows, "BLOCK": BLOCK})
        out[s.name] = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                                     options={"enable_fp_fusion": False, "num_warps": NUM_WARPS})
    return out


def build_all(entries: list[Entry], dtypes: tuple[str, ...], archs: tuple[int, ...],
              progress: Any = None) -> tuple[int, dict[str, list[str]]]:
    """Compile every kernel of every form of ``entries`` (orders 0-3) for ``dtypes`` and each
    CUDA architecture in ``archs`` ahead of time, into Triton's cache: (the number of kernels,
    {kernel: its inexact PTX instructions} for any that has some)."""
    n, bad = 0, {}
    for e in entries:
        for p in e.forms_params():
            for io in dtypes:
                for high in (False, True) if e.kind == "elementwise" else (False,):
                    for arch in archs:
                        for rows in (False, True) if e.kind == "glu" else (False,):
                            for name, k in aot(e, p, io, arch, high, rows).items():
                                n += 1
                                found = inexact(k.asm["ptx"])
                                if found:
                                    bad[f"{e.key}{list(p)}/{io}/sm_{arch}/{name}"] = found
                    if progress is not None:
                        progress(f"{e.key} {io}{' (orders 2, 3)' if high else ''}")
    return n, bad


# PTX instructions whose result is not the correctly rounded IEEE one, or that flush subnormals
# to zero: approximations (ex2.approx, rcp.approx, div.full, sqrt.approx, ...), and a float
# add, sub or mul without a rounding mode, which ptxas may contract into an fma
INEXACT = re.compile(
    r"\.approx\b|\.ftz\b|\bdiv\.full\b|\b(?:ex2|lg2|rcp|rsqrt|sin|cos|tanh)\.|"
    r"\b(?:add|sub|mul)\.f(?:16|32|64)\b")


def inexact(ptx: str) -> list[str]:
    """The instructions of a PTX listing (its code, not its debug sections) that INEXACT finds."""
    code = ptx.split(".section\t.debug", 1)[0]
    return [ln.strip() for ln in code.splitlines()
            if INEXACT.search(ln.split("//", 1)[0])]
