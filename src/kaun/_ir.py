"""Formulas as graphs: an entry's formula traced over symbolic arrays.

The formulas of ``kaun.activation._defs`` are written over an ops namespace ``o`` and Python
arithmetic. Called with :class:`TraceOps` and :class:`Sym` inputs instead of arrays, a formula
records what it computes as a small expression graph: one node per operation, shared
subexpressions merged, nothing evaluated. A lowering (``kaun._kernels``: C, one fused loop) then
turns the graph into code; a future GPU lowering would read the same graphs.

Three kinds of values flow through a graph:

* ``"f"``: an array of the working dtype (float32 or float64);
* ``"b"``: an array of booleans (comparisons, ``&``, ``|``);
* ``"s"``: a run-time scalar (a hyper-parameter), computed in float64 as Python computes it, and
  rounded to the working dtype where it meets an array (NumPy's, torch's and JAX's rule for a
  Python float: a "weak" scalar);
* ``"i"``: an array of integers as wide as the working dtype (32 or 64 bits, wrapping), for the
  elementary functions (``kaun._elementary``): a float's bits (``o.bits``), shifts, masks, and
  back (``o.from_bits``). Formulas of activations never use them.

Python numbers in a formula stay constants of the graph, rounded the same way where they meet an
array. A formula that branches on an array value (``if x > 0``) cannot be traced and raises
``TypeError``: data-dependent choices are ``o.where`` selects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._special import SPLIT, split_const

Const = float
Arg = Any  # Sym or Const

_MAX = {32: 3.4028234663852886e38, 64: 1.7976931348623157e308}

# the infix operations and their symbol (the same in Python and C): arithmetic, comparisons (which
# give booleans) and logic on booleans
BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
COMPARE = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}
LOGIC = {"and": "&", "or": "|"}
INFIX = {**BINARY, **COMPARE, **LOGIC}


def _binary(op: str, swapped: bool) -> Callable[[Sym, Any], Any]:
    def f(self: Sym, o: Any) -> Any:
        if not isinstance(o, (Sym, int, float)):
            return NotImplemented
        return self.graph.arith(op, o, self) if swapped else self.graph.arith(op, self, o)

    return f


class Sym:
    """A node: ``op`` applied to ``args`` (nodes or Python floats), of kind ``"f"``, ``"b"``
    or ``"s"``."""

    __slots__ = ("graph", "op", "args", "kind", "index")

    def __init__(self, graph: Graph, op: str, args: tuple[Arg, ...], kind: str, index: int) -> None:
        self.graph = graph
        self.op = op
        self.args = args
        self.kind = kind
        self.index = index

    def __repr__(self) -> str:
        return f"%{self.index}"

    def __bool__(self) -> bool:
        raise TypeError(
            "a kaun formula must not branch on an array value (use o.where); "
            f"node {self.op} was used as a Python truth value"
        )

    # arithmetic: with nodes and Python numbers (anything else, such as a dual number of
    # kaun._dual that holds nodes, gets its own turn: NotImplemented)
    __add__ = _binary("add", False)
    __radd__ = _binary("add", True)
    __sub__ = _binary("sub", False)
    __rsub__ = _binary("sub", True)
    __mul__ = _binary("mul", False)
    __rmul__ = _binary("mul", True)
    __truediv__ = _binary("div", False)
    __rtruediv__ = _binary("div", True)

    def __neg__(self) -> Sym:
        return self.graph.node("neg", (self,), self.kind)

    # comparisons and logic ------------------------------------------------------------------
    def __lt__(self, o: Arg) -> Sym:
        return self.graph.compare("lt", self, o)

    def __le__(self, o: Arg) -> Sym:
        return self.graph.compare("le", self, o)

    def __gt__(self, o: Arg) -> Sym:
        return self.graph.compare("gt", self, o)

    def __ge__(self, o: Arg) -> Sym:
        return self.graph.compare("ge", self, o)

    def __and__(self, o: Arg) -> Sym:
        return self.graph.logic("and", self, o)

    def __or__(self, o: Arg) -> Sym:
        return self.graph.logic("or", self, o)

    __hash__ = object.__hash__  # identity: graphs key nodes by index, never by value


def _key(a: Arg) -> Any:
    if isinstance(a, Sym):
        return a.index
    if isinstance(a, int):
        return ("i", a)  # an integer constant of an "i" operation
    return ("c", float(a).hex())  # -0.0 and 0.0 are different constants


class Graph:
    """The nodes of one traced formula, in the order they were made (a topological order),
    with shared subexpressions merged."""

    def __init__(self, prec: int) -> None:
        self.prec = prec
        self.nodes: list[Sym] = []
        self._seen: dict[Any, Sym] = {}
        self.inputs: list[Sym] = []
        self.params: list[Sym] = []
        self.outputs: tuple[Arg, ...] = ()

    def node(self, op: str, args: tuple[Arg, ...], kind: str) -> Sym:
        key = (op, tuple(_key(a) for a in args))
        s = self._seen.get(key)
        if s is None:
            s = Sym(self, op, args, kind, len(self.nodes))
            self.nodes.append(s)
            self._seen[key] = s
        return s

    def input(self) -> Sym:
        s = Sym(self, "in", (len(self.inputs),), "f", len(self.nodes))
        self.nodes.append(s)
        self.inputs.append(s)
        return s

    def param(self) -> Sym:
        s = Sym(self, "param", (len(self.params),), "s", len(self.nodes))
        self.nodes.append(s)
        self.params.append(s)
        return s

    def _operand(self, a: Arg) -> Arg:
        if isinstance(a, Sym):
            if a.graph is not self:
                raise TypeError("a node of another graph")
            return a
        if isinstance(a, bool) or not isinstance(a, (int, float)):
            raise TypeError(f"a kaun formula combined an array with {type(a).__name__}")
        return float(a)

    def arith(self, op: str, a: Arg, b: Arg) -> Sym:
        a, b = self._operand(a), self._operand(b)
        kinds = {v.kind for v in (a, b) if isinstance(v, Sym)}
        if "b" in kinds or "i" in kinds:
            raise TypeError(f"arithmetic ({op}) on a boolean or integer array: use o.mask or "
                            "the integer operations (o.iadd, ...)")
        return self.node(op, (a, b), "f" if "f" in kinds else "s")

    def compare(self, op: str, a: Arg, b: Arg) -> Sym:
        a, b = self._operand(a), self._operand(b)
        if not any(isinstance(v, Sym) and v.kind == "f" for v in (a, b)):
            raise TypeError("a comparison of scalars in a formula: decide it in the entry's prep")
        return self.node(op, (a, b), "b")

    def logic(self, op: str, a: Arg, b: Arg) -> Sym:
        if not (isinstance(a, Sym) and isinstance(b, Sym) and a.kind == b.kind == "b"):
            raise TypeError(f"{op} takes two boolean arrays")
        return self.node(op, (a, b), "b")

    def _ioperand(self, a: Any) -> Any:
        if isinstance(a, Sym):
            if a.graph is not self or a.kind != "i":
                raise TypeError(f"an integer operation takes integer arrays, got a {a.kind!r} node")
            return a
        if isinstance(a, bool) or not isinstance(a, int):
            raise TypeError(f"an integer operation takes int constants, got {type(a).__name__}")
        return a & ((1 << self.prec) - 1)  # as the working width holds it (two's complement)

    def iop(self, op: str, *args: Any, kind: str = "i") -> Sym:
        """An operation on integer arrays (and int constants): its result of ``kind``."""
        a = tuple(self._ioperand(v) for v in args)
        if not any(isinstance(v, Sym) for v in a):
            raise TypeError(f"{op} of constants in a formula: compute it in Python")
        return self.node(op, a, kind)

    def live(self) -> list[Sym]:
        """The nodes that the outputs depend on, in topological order."""
        need: set[int] = set()
        stack = [o for o in self.outputs if isinstance(o, Sym)]
        while stack:
            s = stack.pop()
            if s.index in need:
                continue
            need.add(s.index)
            stack.extend(a for a in s.args if isinstance(a, Sym))
        return [s for s in self.nodes if s.index in need]


class TraceOps:
    """The formula vocabulary (see ``kaun._backends``) on :class:`Sym` nodes."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def _unary(self, op: str, a: Arg) -> Any:
        a = self.graph._operand(a)
        if not isinstance(a, Sym) or a.kind != "f":
            raise TypeError(f"o.{op} of a scalar in a formula: compute it in the entry's prep")
        return self.graph.node(op, (a,), "f")

    def exp(self, a: Arg) -> Any:
        return self._unary("exp", a)

    def exp_normal(self, a: Arg) -> Any:
        return self._unary("exp_normal", a)

    def expm1(self, a: Arg) -> Any:
        return self._unary("expm1", a)

    def log1p(self, a: Arg) -> Any:
        return self._unary("log1p", a)

    def tanh(self, a: Arg) -> Any:
        return self._unary("tanh", a)

    def sqrt(self, a: Arg) -> Any:
        return self._unary("sqrt", a)

    def abs(self, a: Arg) -> Any:
        return self._unary("abs", a)

    def prod_err(self, a: Arg, b: Arg) -> Sym:
        """a * b - fl(a * b), exactly (see kaun._special.two_prod): one fma in C."""
        g = self.graph
        return g.node("prod_err", (g._operand(a), g._operand(b)), "f")

    def fma(self, a: Arg, b: Arg, c: Arg) -> Sym:
        """a * b + c rounded once (C: an fma; the Python lowering: a * b + c, as the array
        libraries round it)."""
        g = self.graph
        args = (g._operand(a), g._operand(b), g._operand(c))
        if not any(isinstance(v, Sym) and v.kind == "f" for v in args):
            raise TypeError("o.fma of scalars in a formula: compute it in the entry's prep")
        return g.node("fma", args, "f")

    def where(self, c: Arg, a: Arg, b: Arg) -> Sym:
        g = self.graph
        if not (isinstance(c, Sym) and c.kind == "b"):
            raise TypeError("o.where takes a boolean array as its condition")
        if any(isinstance(v, Sym) and v.kind == "i" for v in (a, b)):
            return g.node("iwhere", (c, g._ioperand(a), g._ioperand(b)), "i")
        return g.node("where", (c, g._operand(a), g._operand(b)), "f")

    # -- integers as wide as the working dtype (the elementary functions' bit manipulations) --

    def bits(self, x: Arg) -> Sym:
        """The bits of a float array, as integers of its width."""
        if not (isinstance(x, Sym) and x.kind == "f"):
            raise TypeError("o.bits takes a float array")
        return self.graph.node("bits", (x,), "i")

    def from_bits(self, i: Sym) -> Sym:
        """The float array of these bits."""
        return self.graph.iop("from_bits", i, kind="f")

    def iadd(self, a: Any, b: Any) -> Sym:
        return self.graph.iop("iadd", a, b)

    def isub(self, a: Any, b: Any) -> Sym:
        return self.graph.iop("isub", a, b)

    def iand(self, a: Any, b: Any) -> Sym:
        return self.graph.iop("iand", a, b)

    def ior(self, a: Any, b: Any) -> Sym:
        return self.graph.iop("ior", a, b)

    def _shift(self, op: str, a: Sym, n: int) -> Sym:
        # a constant amount below the width: a variable one, or one past the width, is
        # undefined in C and differs between the lowerings
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < self.graph.prec:
            raise TypeError(f"o.{op} takes a constant shift in [0, {self.graph.prec}), got {n!r}")
        return self.graph.iop(op, a, n)

    def shl(self, a: Sym, n: int) -> Sym:
        return self._shift("shl", a, n)

    def shr(self, a: Sym, n: int) -> Sym:
        """Logical shift right (zeros in)."""
        return self._shift("shr", a, n)

    def sar(self, a: Sym, n: int) -> Sym:
        """Arithmetic shift right (the sign bit in)."""
        return self._shift("sar", a, n)

    def ilt(self, a: Any, b: Any) -> Sym:
        """a < b as signed integers: a boolean array."""
        return self.graph.iop("ilt", a, b, kind="b")

    def imin(self, a: Any, b: Any) -> Sym:
        """The smaller of a and b as signed integers (one instruction where a select of a
        comparison is three)."""
        return self.graph.iop("imin", a, b)

    def itof(self, a: Sym) -> Sym:
        """The signed integers as floats (rounded to nearest)."""
        return self.graph.iop("itof", a, kind="f")

    def clip(self, x: Arg, lo: Arg | None, hi: Arg | None) -> Sym:
        """max(x, lo) then min(., hi), NaN kept; None: that side open."""
        g = self.graph
        y: Sym = g._operand(x)
        if not isinstance(y, Sym):
            raise TypeError("o.clip of a number in a formula")
        if lo is not None:
            y = g.node("max", (y, g._operand(lo)), "f")
        if hi is not None:
            y = g.node("min", (y, g._operand(hi)), "f")
        return y

    def mask(self, c: Arg, like: Arg) -> Sym:
        if not (isinstance(c, Sym) and c.kind == "b"):
            raise TypeError("o.mask takes a boolean array")
        return self.graph.node("mask", (c,), "f")

    def big(self, x: Arg) -> float:
        return _MAX[self.graph.prec]

    def prec(self, x: Arg) -> int:
        return self.graph.prec


def trace(fn: Callable[..., Any], nin: int, args: Sequence[Any], prec: int) -> Graph:
    """The graph of ``fn(o, *inputs, *args)`` in the working precision ``prec`` (32 or 64).

    Each float among ``args`` becomes a run-time scalar (a parameter of the graph, in order);
    any other argument (a bool or a string that selects a variant) is passed to ``fn`` as it is.
    """
    g = Graph(prec)
    ins = [g.input() for _ in range(nin)]
    a = [g.param() if isinstance(v, float) else v for v in args]
    out = fn(TraceOps(g), *ins, *a)
    outs = out if isinstance(out, tuple) else (out,)
    g.outputs = tuple(g._operand(v) for v in outs)
    for v in g.outputs:
        if isinstance(v, Sym) and v.kind == "b":
            raise TypeError("a formula returned a boolean array")
    return g



# -- lowering: one walk over a graph, a printer per target ---------------------------------------


def uses(g: Graph) -> dict[int, int]:
    """How many times each live node is read (by another node or as an output)."""
    n: dict[int, int] = {}
    for s in g.live():
        for a in s.args:
            if isinstance(a, Sym):
                n[a.index] = n.get(a.index, 0) + 1
    for o in g.outputs:
        if isinstance(o, Sym):
            n[o.index] = n.get(o.index, 0) + 1
    return n


class Printer:
    """A target's table of templates, and the little a target does differently. ``walk`` visits
    the live nodes in order; a node is printed by the method ``op_<op>`` where the printer has
    one, else by the template ``TEMPLATES[op + ":" + kind]`` or ``TEMPLATES[op]``, a format string
    over the operands' references (``ref``); ``define`` records the node's expression."""

    TEMPLATES: dict[str, str] = {}

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.uses = uses(g)

    def ref(self, a: Arg, user: Sym) -> str:
        raise NotImplementedError

    def define(self, s: Sym, e: str) -> None:
        raise NotImplementedError

    def expr(self, s: Sym) -> str | None:
        special = getattr(self, "op_" + s.op, None)
        if special is not None:
            return special(s)  # type: ignore[no-any-return]
        t = self.TEMPLATES.get(f"{s.op}:{s.kind}") or self.TEMPLATES.get(s.op)
        if t is None:
            raise ValueError(f"{type(self).__name__} cannot print {s.op} ({s.kind})")
        return t.format(*(self.ref(a, s) for a in s.args))


def walk(g: Graph, printer: Printer) -> Printer:
    """Print every live node of g, in order, with printer (see :class:`Printer`)."""
    for s in g.live():
        e = printer.expr(s)
        if e is not None:  # (None: the op_ method wrote its own lines)
            printer.define(s, e)
    return printer


# -- the Python lowering: a graph as a function over an ops namespace ---------------------------


def _py_const(v: float) -> str:
    if v != v:
        return 'float("nan")'
    if v in (float("inf"), float("-inf")):
        return 'float("inf")' if v > 0 else 'float("-inf")'
    return repr(v)  # Python's repr reads back as the same float


class PythonPrinter(Printer):
    """Lines of a Python function over an ops namespace ``o``: constants as literals (a tracer
    such as torch.compile's sees constants, where module-level floats under ``dynamic=True``
    become symbolic inputs); ``clip`` where a max feeds only a min; ``prod_err`` by Dekker's
    product written out; ``fma`` as a product and a sum."""

    TEMPLATES = {
        **{op: "{0} " + sym + " {1}" for op, sym in INFIX.items()},
        "neg": "-{0}", "mask": "o.mask({0}, x0)", "where": "o.where({0}, {1}, {2})",
        "fma": "{0} * {1} + {2}",
        **{op: "o." + op + "({0})" for op in ("exp", "exp_normal", "expm1", "log1p", "tanh", "sqrt",
                                                  "abs")},
    }

    def __init__(self, g: Graph) -> None:
        super().__init__(g)
        self.lines: list[str] = []
        self.fused: set[int] = set()  # max nodes folded into the min that follows
        self.live = g.live()

    def ref(self, a: Arg, user: Sym | None = None) -> str:
        return f"v{a.index}" if isinstance(a, Sym) else _py_const(float(a))

    def define(self, s: Sym, e: str) -> None:
        self.lines.append(f"    v{s.index} = {e}")

    def op_in(self, s: Sym) -> str:
        return f"x{s.args[0]}"

    def op_param(self, s: Sym) -> str:
        return f"p[{s.args[0]}]"

    def op_max(self, s: Sym) -> str | None:
        if self.uses.get(s.index) == 1 and any(t.op == "min" and t.args[0] is s for t in self.live):
            self.fused.add(s.index)
            return None
        return f"o.clip({self.ref(s.args[0])}, {self.ref(s.args[1])}, None)"

    def op_min(self, s: Sym) -> str:
        x, hi = s.args
        if isinstance(x, Sym) and x.index in self.fused:
            return f"o.clip({self.ref(x.args[0])}, {self.ref(x.args[1])}, {self.ref(hi)})"
        return f"o.clip({self.ref(x)}, None, {self.ref(hi)})"

    def op_prod_err(self, s: Sym) -> None:
        """v = a * b - fl(a * b) by Dekker's product, its constants literals (a run-time scalar
        operand split by kaun._special.split_const, as the working dtype holds it): the arithmetic
        of kaun._special.two_prod, spelled out so that torch.compile sees constants."""
        i, (a, b) = s.index, s.args
        if not (isinstance(b, Sym) and b.kind == "f"):
            a, b = b, a  # the array first
        c = SPLIT[self.g.prec]
        out = [f"    p{i} = {self.ref(a)} * {self.ref(b)}"]
        for n, v in (("a", a), ("b", b)):
            if isinstance(v, Sym) and v.kind == "f":
                out += [f"    s{n}{i} = {self.ref(v)} * {c!r}",
                        f"    {n}h{i} = s{n}{i} - (s{n}{i} - {self.ref(v)})",
                        f"    {n}l{i} = {self.ref(v)} - {n}h{i}"]
            else:
                out.append(f"    {n}h{i}, {n}l{i} = _split_const({self.ref(v)}, {self.g.prec})")
        out.append(f"    v{i} = ((ah{i} * bh{i} - p{i}) + ah{i} * bl{i} + al{i} * bh{i}) + al{i} * bl{i}")
        self.lines.extend(out)
        return None


def python_source(g: Graph, name: str = "f") -> str:
    """``def name(o, x0, .., p):`` evaluating g with the ops namespace o (see
    :class:`PythonPrinter`), shared subexpressions computed once; p holds the run-time scalars,
    in order."""
    pr = walk(g, PythonPrinter(g))
    assert isinstance(pr, PythonPrinter)
    outs = [pr.ref(o) for o in g.outputs]
    head = f"def {name}(o, {', '.join(f'x{i}' for i in range(len(g.inputs)))}, p):"
    ret = f"    return {outs[0] if len(outs) == 1 else '(' + ', '.join(outs) + ',)'}"
    return "\n".join([head, *pr.lines, ret]) + "\n"


def python_function(g: Graph) -> Callable[..., Any]:
    """The function of ``python_source(g)``."""
    src = python_source(g)
    scope: dict[str, Any] = {"_split_const": split_const}
    exec(compile(src, "<kaun formula>", "exec"), scope)  # noqa: S102 (our own generated code)
    fn: Callable[..., Any] = scope["f"]
    fn.__kaun_source__ = src  # type: ignore[attr-defined]
    return fn
