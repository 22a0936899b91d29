"""The C lowering of a traced formula: one loop that reads each element once, computes the whole
formula in registers and writes the result once.

A kernel is generated per (graph, I/O dtype, order): ``value`` writes f(x), ``deriv`` f'(x) (the
graph of the derivative formula), ``vjp`` g * f'(x) for a cotangent g (the backward of autograd,
fused); ``deriv2``/``vjp2`` and ``deriv3``/``vjp3`` the same for the second and third
derivatives. Half precision (float16, bfloat16) is read into float32, computed there and rounded once
on the way out; float32 and float64 compute in their own precision. Constants and run-time
scalars are rounded to the working dtype where they meet an array, as NumPy, torch and JAX round
a Python float. The C is compiled with ``-ffp-contract=off``: a product and a sum fuse only where
the graph says so (``fma``, ``prod_err``), so that the bits are IEEE's on every machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import _elementary, _ir
from .._ir import BINARY, COMPARE, LOGIC, Graph, Sym

# the elementary functions: kaun._elementary writes them, as formulas; C calls them k_<name>[f]
ELEMENTARY = ("exp", "exp_normal", "expm1", "log1p", "tanh")

# the argument block's limits and version (kargs.h), read from the header itself
_KARGS = (Path(__file__).resolve().parent / "kargs.h").read_text()
ABI = int(re.search(r"#define KAUN_ABI (\d+)", _KARGS).group(1))  # type: ignore[union-attr]
MAX_P = int(re.search(r"#define KAUN_MAX_P (\d+)", _KARGS).group(1))  # type: ignore[union-attr]

# the C type of each I/O dtype, and its working type
CTYPE = {"float16": "uint16_t", "bfloat16": "uint16_t", "float32": "float", "float64": "double"}
WORK = {"float16": "float", "bfloat16": "float", "float32": "float", "float64": "double"}
PREC = {"float": 32, "double": 64}
# booleans are lane-wide masks (all ones or zero) of the working type's width, selects are
# bitwise blends: gcc 12 leaves some loops with int comparisons scalar, never these
MASK = {"float": "uint32_t", "double": "uint64_t"}


@dataclass(frozen=True)
class Spec:
    """One kernel: the graph's inputs are read from ``in[0 .. nin-1]`` (a vjp's cotangent from
    ``in[nin]``), its outputs written to ``out[0 ..]``."""

    name: str
    graph: Graph
    io: str
    order: str  # "value", "deriv", "vjp", "deriv2", "vjp2", ...: a vjp's output is times in[nin]


def _lit(v: float, w: str) -> str:
    if v != v:
        return "__builtin_nan(\"\")" if w == "double" else "__builtin_nanf(\"\")"
    if v in (float("inf"), float("-inf")):
        inf = "__builtin_inf()" if w == "double" else "__builtin_inff()"
        return inf if v > 0 else f"(-{inf})"
    if w == "double":
        return f"({v.hex()})"
    return f"((float){v.hex()})"  # rounded to float as a Python float meets a float32 array


def _load(io: str, e: str) -> str:
    if io == "bfloat16":
        return f"kf_from((uint32_t)({e}) << 16)"
    if io == "float16":
        return f"kf_from_f16({e})"
    return e


def _store(io: str, e: str) -> str:
    if io == "bfloat16":
        return f"kf_to_bf16({e})"
    if io == "float16":
        return f"kf_to_f16({e})"
    return e


# the C of each operation, per working type: {0}, {1}, .. are the operands; "op:s" is an
# operation on run-time scalars (in double), "op:b" one on lane masks
def _templates(w: str) -> dict[str, str]:
    f = "f" if w == "float" else ""  # the float functions' suffix
    p = "kf" if w == "float" else "kd"  # kmath.h's prefix
    m, u, i = MASK[w], MASK[w], "int32_t" if w == "float" else "int64_t"
    return {
        **{op: "{0} " + sym + " {1}" for op, sym in BINARY.items()},
        **{f"{op}:b": f"-({m})({{0}} {sym} {{1}})" for op, sym in COMPARE.items()},
        **{f"{op}:b": "{0} " + sym + " {1}" for op, sym in LOGIC.items()},
        "neg": "-{0}",
        "mask": f"{p}_sel({{0}}, ({w})1, ({w})0)",
        "where": f"{p}_sel({{0}}, {{1}}, {{2}})",
        "max": f"{p}_max({{0}}, {{1}})", "min": f"{p}_min({{0}}, {{1}})",
        "abs": f"{p}_abs({{0}})", "prod_err": f"{p}_prod_err({{0}}, {{1}})",
        "fma": f"__builtin_fma{f}({{0}}, {{1}}, {{2}})", "sqrt": f"__builtin_sqrt{f}({{0}})",
        **{op: f"k_{op}{f}({{0}})" for op in ELEMENTARY},
        # integers of the working width, unsigned (wrapping); signed where the sign matters
        "bits": f"{p}_bits({{0}})", "from_bits": f"{p}_from({{0}})",
        "iadd": "{0} + {1}", "isub": "{0} - {1}", "iand": "{0} & {1}", "ior": "{0} | {1}",
        "shl": "{0} << {1}", "shr": "{0} >> {1}", "sar": f"({u})(({i}){{0}} >> {{1}})",
        "ilt": f"-({m})(({i}){{0}} < ({i}){{1}})", "itof": f"({w})({i}){{0}}",
        "imin": f"({u})(({i}){{0}} < ({i}){{1}} ? ({i}){{0}} : ({i}){{1}})",
        "iwhere": "({0} & {1}) | (~{0} & {2})",
    }


_TEMPLATES = {w: _templates(w) for w in ("float", "double")}
_TERNARY = {w: {**_TEMPLATES[w],
                **{f"{op}:b": "({0} " + sym + " {1})" for op, sym in COMPARE.items()},
                "ilt:b": "((%s){0} < (%s){1})" % ((("int32_t",) if w == "float" else ("int64_t",)) * 2),
                "where": "{0} ? {1} : {2}", "iwhere": "{0} ? {1} : {2}",
                "mask": f"{{0}} ? ({w})1 : ({w})0"}
            for w in ("float", "double")}


class CPrinter(_ir.Printer):
    """The statements of a kernel's loop body (``body``) and of its prologue (``pre``: the
    run-time scalars, in double as Python computes them, each rounded once to the working type
    where it meets an array)."""

    def __init__(self, g: Graph, w: str, load: str = "", masks: bool = True) -> None:
        super().__init__(g)
        self.w = w
        # booleans as lane masks and selects as blends (the kernels' loops), or as C's int
        # conditions and ternaries (the elementary functions, which gcc inlines and vectorizes
        # with compare-to-mask and masked blends either way; there ternaries are fewer instructions)
        self.TEMPLATES = _TEMPLATES[w] if masks else _TERNARY[w]
        self.masks = masks
        self.load = load  # the I/O dtype whose elements "in" nodes read ("": function arguments)
        self.pre: list[str] = []
        self.body: list[str] = []
        self.as_work: dict[int, str] = {}  # scalar node -> its name rounded to the working type

    def ref(self, a: object, user: Sym | None = None) -> str:
        w = self.w
        if isinstance(a, Sym):
            if a.kind == "s" and (user is None or user.kind != "s"):  # a scalar meets an array
                if a.index not in self.as_work:
                    self.as_work[a.index] = f"w{a.index}"
                    self.pre.append(f"const {w} w{a.index} = ({w})s{a.index};")
                return self.as_work[a.index]
            return f"{'s' if a.kind == 's' else 'b' if a.kind == 'b' else 'v'}{a.index}"
        if isinstance(a, int):
            return f"(({MASK[w]}){a:#x}u)"
        return _lit(float(a), "double" if user is not None and user.kind == "s" else w)  # type: ignore[arg-type]

    def define(self, s: Sym, e: str) -> None:
        i, w = s.index, self.w
        if s.kind == "s":
            self.pre.append(f"const double s{i} = {e};")
        elif s.kind == "b":
            self.body.append(f"const {MASK[w] if self.masks else 'int'} b{i} = {e};")
        else:
            self.body.append(f"const {MASK[w] if s.kind == 'i' else w} v{i} = {e};")

    def op_in(self, s: Sym) -> str:
        return _load(self.load, f"x{s.args[0]}[i]") if self.load else f"x{s.args[0]}"

    def op_param(self, s: Sym) -> str:
        if not 0 <= s.args[0] < MAX_P:
            raise ValueError(f"run-time scalar {s.args[0]}, but kargs.h holds {MAX_P}")
        return f"a->p[{s.args[0]}]"


def kernel(spec: Spec) -> str:
    """The C function ``void NAME(const kaun_args *a, int64_t lo, int64_t hi)``."""
    g, io = spec.graph, spec.io
    w = WORK[io]
    if PREC[w] != g.prec:
        raise ValueError(f"{spec.name}: a {g.prec}-bit graph cannot serve {io}")
    nin = len(g.inputs)
    try:
        pr = _ir.walk(g, CPrinter(g, w, io))
    except ValueError as e:
        raise ValueError(f"{spec.name}: {e}") from None
    assert isinstance(pr, CPrinter)
    pre, body = pr.pre, pr.body
    outs = [pr.ref(o) for o in g.outputs]
    vjp = spec.order.startswith("vjp")
    if vjp:
        body.append(f"const {w} gin = {_load(io, f'x{nin}[i]')};")
        outs = [f"gin * {o}" for o in outs]
    for j, o in enumerate(outs):
        body.append(f"y{j}[i] = {_store(io, o)};")

    t = CTYPE[io]
    nread = nin + vjp
    ptrs = [
        f"const {t} *restrict x{j} = (const {t} *)a->in[{j}] + r * a->istride[{j}] + i0;"
        for j in range(nread)
    ] + [
        f"{t} *restrict y{j} = ({t} *)a->out[{j}] + r * a->ostride[{j}] + i0;"
        for j in range(len(outs))
    ]
    ind = "\n            "
    return f"""
void {spec.name}(const kaun_args *a, int64_t lo, int64_t hi) {{
    const int64_t len = a->len;
    {(chr(10) + '    ').join(pre) or '/* no run-time scalars */'}
    int64_t r = lo / len, i0 = lo - r * len;
    while (lo < hi) {{
        int64_t m = len - i0 < hi - lo ? len - i0 : hi - lo;
        {(chr(10) + '        ').join(ptrs)}
        for (int64_t i = 0; i < m; i++) {{
            {ind.join(body)}
        }}
        lo += m;
        r++;
        i0 = 0;
    }}
}}
"""


def elementary(name: str, prec: int) -> str:
    """The C function ``k_<name>`` (float64) or ``k_<name>f`` (float32) of the elementary function
    ``name``, printed from its formula (kaun._elementary)."""
    g = _elementary.graph(name, prec)
    w = "float" if prec == 32 else "double"
    pr = _ir.walk(g, CPrinter(g, w, masks=False))
    assert isinstance(pr, CPrinter)
    body = "\n    ".join(pr.body)
    f = "f" if prec == 32 else ""
    return (f"static inline {w} k_{name}{f}({w} x0) {{\n    {body}\n"
            f"    return {pr.ref(g.outputs[0])};\n}}\n")


def prelude() -> str:
    """What every translation unit begins with: the headers, and the elementary functions."""
    fns = "".join(elementary(n, p) for p in (32, 64) for n in _elementary.ORDER)
    return f"""#include <stdint.h>
#include "kargs.h"
#include "kmath.h"

/* the elementary functions, printed from kaun/_elementary.py */
{fns}"""


def source(specs: list[Spec]) -> str:
    """One translation unit with every kernel of ``specs``."""
    return prelude() + "".join(kernel(s) for s in specs)
