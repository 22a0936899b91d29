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

from .._ir import BINARY, COMPARE, INFIX, Graph, Sym

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


_FN = {
    "float": {"exp": "k_expf", "expm1": "k_expm1f", "log1p": "k_log1pf", "tanh": "k_tanhf",
              "sqrt": "__builtin_sqrtf", "abs": "kf_abs", "max": "kf_max", "min": "kf_min",
              "sel": "kf_sel", "prod_err": "kf_prod_err", "fma": "__builtin_fmaf"},
    "double": {"exp": "k_exp", "expm1": "k_expm1", "log1p": "k_log1p", "tanh": "k_tanh",
               "sqrt": "__builtin_sqrt", "abs": "kd_abs", "max": "kd_max", "min": "kd_min",
               "sel": "kd_sel", "prod_err": "kd_prod_err", "fma": "__builtin_fma"},
}


def kernel(spec: Spec) -> str:
    """The C function ``void NAME(const kaun_args *a, int64_t lo, int64_t hi)``."""
    g, io = spec.graph, spec.io
    w = WORK[io]
    if PREC[w] != g.prec:
        raise ValueError(f"{spec.name}: a {g.prec}-bit graph cannot serve {io}")
    nin = len(g.inputs)
    live = g.live()
    pre: list[str] = []  # before the loop: run-time scalars
    body: list[str] = []
    name: dict[int, str] = {}
    as_work: dict[int, str] = {}  # scalar node -> its name rounded to the working type

    def arr(a: object) -> str:
        """An operand of an array operation, in the working type."""
        if isinstance(a, Sym):
            if a.kind == "s":
                if a.index not in as_work:
                    as_work[a.index] = f"w{a.index}"
                    pre.append(f"const {w} w{a.index} = ({w}){name[a.index]};")
                return as_work[a.index]
            return name[a.index]
        return _lit(float(a), w)  # type: ignore[arg-type]

    def sca(a: object) -> str:
        if isinstance(a, Sym):
            return name[a.index]
        return _lit(float(a), "double")  # type: ignore[arg-type]

    for s in live:
        i = s.index
        op, args = s.op, s.args
        if op == "in":
            name[i] = f"v{i}"
            body.append(f"const {w} v{i} = {_load(io, f'x{args[0]}[i]')};")
        elif op == "param":
            if not 0 <= args[0] < MAX_P:
                raise ValueError(f"{spec.name}: run-time scalar {args[0]}, but kargs.h holds {MAX_P}")
            name[i] = f"s{i}"
            pre.append(f"const double s{i} = a->p[{args[0]}];")
        elif s.kind == "s":  # arithmetic of scalars, in double as Python does it
            name[i] = f"s{i}"
            if op == "neg":
                pre.append(f"const double s{i} = -{sca(args[0])};")
            else:
                pre.append(f"const double s{i} = {sca(args[0])} {BINARY[op]} {sca(args[1])};")
        elif s.kind == "b":
            name[i] = f"b{i}"
            m = MASK[w]
            if op in COMPARE:
                e = f"-({m})({arr(args[0])} {INFIX[op]} {arr(args[1])})"
            else:
                e = f"{name[args[0].index]} {INFIX[op]} {name[args[1].index]}"
            body.append(f"const {m} b{i} = {e};")
        else:
            name[i] = f"v{i}"
            if op in BINARY:
                e = f"{arr(args[0])} {INFIX[op]} {arr(args[1])}"
            elif op == "neg":
                e = f"-{arr(args[0])}"
            elif op == "mask":
                e = f"{_FN[w]['sel']}({name[args[0].index]}, ({w})1, ({w})0)"
            elif op == "where":
                e = f"{_FN[w]['sel']}({name[args[0].index]}, {arr(args[1])}, {arr(args[2])})"
            elif op in ("max", "min", "prod_err"):
                e = f"{_FN[w][op]}({arr(args[0])}, {arr(args[1])})"
            elif op == "fma":
                e = f"{_FN[w][op]}({arr(args[0])}, {arr(args[1])}, {arr(args[2])})"
            else:
                e = f"{_FN[w][op]}({arr(args[0])})"
            body.append(f"const {w} v{i} = {e};")
    outs = [arr(o) for o in g.outputs]
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


PRELUDE = """#include <stdint.h>
#include "kargs.h"
#include "kmath.h"
"""


def source(specs: list[Spec]) -> str:
    """One translation unit with every kernel of ``specs``."""
    return PRELUDE + "".join(kernel(s) for s in specs)
