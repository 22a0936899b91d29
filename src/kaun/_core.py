"""The leaf of kaun: what every other module shares, importing nothing of kaun.

``Entry`` (one activation: its formulas and parameters), the registry of entries, dtype names and
``halves``. ``kaun.activation`` fills the registry; the backends and the kernel layer read it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Formula = Callable[..., Any]

FLOAT_NAMES = frozenset({"float16", "bfloat16", "float32", "float64"})
INT_NAMES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"})
HALF = frozenset({"float16", "bfloat16"})


def dtype_name(dtype: Any) -> str:
    """'float32' for numpy, torch, jax and Array API dtypes alike."""
    name = getattr(dtype, "name", None)
    if isinstance(name, str):
        return name
    return str(dtype).rsplit(".", 1)[-1]


def halves(x: Any, ax: int) -> tuple[Any, Any]:
    """The two halves of x along axis ax (non-negative), as views."""
    n = x.shape[ax] // 2
    pre = (slice(None),) * ax
    # The trailing Ellipsis: the Array API (array-api-strict) requires every axis indexed.
    return x[pre + (slice(0, n), ...)], x[pre + (slice(n, None), ...)]


_ABSENT = object()


class LRU(OrderedDict[Any, Any]):
    """A dict of at most ``bound`` keys that forgets the least recently used to make room: the one
    policy of kaun's caches keyed by what a caller chooses (hyper-parameter values, shapes, array
    types), each with its bound: per entry 64 fast callables (``Entry.fast``), 64 checked prelu
    and 64 checked glu calls (``kaun.activation._dispatch``), 512 compiled kernels with their
    run-time scalars (``kaun._kernels.compiled``), 512 Triton kernel sets
    (``kaun._kernels.gpu.compiled``), 64 jitted JAX functions (``kaun._backends.
    _jax``). A sweep past the bound keeps serving its new keys from the cache, and a key in use
    stays.

    ``hit(key, default=None)``: the value, or default where the key is absent. ``put(key,
    value)``: stored, the least recently used evicted past the bound. Recency is kept once the
    dict is full (a hit moves its key last, the last to be evicted); while there is room nothing
    is evicted, and a hit costs a look-up and a length. Safe from several threads: a key that
    another thread evicted in between is missed, and computed again.
    """

    __slots__ = ("bound",)

    def __init__(self, bound: int) -> None:
        super().__init__()
        self.bound = bound

    def hit(self, key: Any, default: Any = None) -> Any:
        v = self.get(key, _ABSENT)
        if v is _ABSENT:
            return default
        if len(self) >= self.bound:
            try:  # (moved in the order, not in the hash table: a hit allocates nothing)
                self.move_to_end(key)
            except KeyError:  # evicted by another thread meanwhile
                pass
        return v

    def put(self, key: Any, value: Any) -> None:
        self.pop(key, None)
        while len(self) >= self.bound:
            try:
                self.popitem(last=False)  # the first in order: the least recently used
            except KeyError:  # (emptied by another thread)
                break
        self[key] = value


FAST = 64  # fast callables kept per entry (distinct array types x hyper-parameters)


def _same(p: tuple[float, ...], prec: int) -> tuple[Any, ...]:
    return p


@dataclass(eq=False)
class Entry:
    """One activation function.

    ``value(o, *inputs, *args)`` and ``deriv(o, *inputs, *args)`` are formulas over the ops
    namespace ``o`` (see ``kaun._backends``; ``kaun._ir`` traces them), evaluated in the working
    dtype (float32 for half precision). ``inputs`` is ``x``, or the two halves for glu, or ``x``
    and alpha for prelu. ``args = prep(p, prec)`` turns the checked hyper-parameters ``p`` into
    what the formulas take, for working precision ``prec`` (32 or 64): every float among them is a
    run-time scalar of a compiled kernel, anything else (a bool, a string) selects a variant of
    the formula and is part of the kernel's identity. ``prep`` does the Python-side arithmetic
    on hyper-parameters (splits, roundings, bounds), so that a formula never branches on one.
    ``kind`` is ``"elementwise"``, ``"prelu"`` (x and an alpha array) or ``"glu"`` (a split).

    ``deriv2`` and ``deriv3`` are the second and third derivatives of an elementwise entry, written
    where forward-mode differentiation of the order below (``kaun._dual``) is not accurate; None:
    derived that way. ``formula_of(which)`` gives any of the four.
    """

    name: str
    section: str
    formula: str
    value: Formula
    deriv: Formula
    params: tuple[tuple[str, float], ...] = ()
    check: Callable[[str, tuple[Any, ...]], None] | None = None
    kind: str = "elementwise"
    ints: bool = False
    smooth: bool = False
    # beside the spec's 25: in ``EXTRAS``, not ``ENTRIES`` (the gated family, relu_squared, ...)
    extra: bool = False
    prep: Callable[[tuple[float, ...], int], tuple[Any, ...]] = _same
    # hyper-parameters beside the defaults that reach every other form of the formula that prep
    # can select (see ``forms_params``): what is compiled and lowered ahead of use
    forms: tuple[tuple[float, ...], ...] = ()
    key: str = ""  # unique among all entries (the name, but for internal ones); see ALL
    fn: Callable[..., Any] | None = field(default=None, repr=False)
    # (array type, raw hyper-parameters) -> a callable that serves x of that type directly, or
    # returns None to send it down the checked path (see ``kaun.activation._dispatch.apply``)
    fast: LRU = field(default_factory=lambda: LRU(FAST), repr=False)
    deriv2: Formula | None = field(default=None, repr=False)
    deriv3: Formula | None = field(default=None, repr=False)
    _derived: dict[str, Formula] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    @property
    def qualname(self) -> str:
        return f"kaun.activation.{self.name}"

    @property
    def keywords(self) -> set[str]:
        """The keyword arguments ``A.get`` may bind: the hyper-parameters, and prelu's alpha."""
        return {n for n, _ in self.params} | ({"alpha"} if self.kind == "prelu" else set())

    @property
    def nin(self) -> int:
        """How many arrays the formulas take."""
        return 1 if self.kind == "elementwise" else 2

    def formula_of(self, which: str) -> Formula:
        """The formula ``which``: "value", "deriv" (the first derivative), "deriv2", "deriv3"."""
        if which == "value":
            return self.value
        if which == "deriv":
            return self.deriv
        if which not in ORDERS:
            raise ValueError(f"{self.qualname}: no formula {which!r}")
        if self.kind != "elementwise":
            raise ValueError(f"{self.qualname}: derivatives of order 2 and 3 are elementwise only")
        own = self.deriv2 if which == "deriv2" else self.deriv3
        if own is not None:
            return own
        f = self._derived.get(which)
        if f is None:
            from ._dual import derive

            f = self._derived[which] = derive(self.formula_of(ORDERS[ORDERS.index(which) - 1]))
        return f

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        # by reference: a Dask worker's unpickled task finds the entry of its own kaun
        return lookup, (self.key,)

    def forms_params(self) -> tuple[tuple[float, ...], ...]:
        """Hyper-parameters that reach each form of the formula: the defaults, then ``forms``
        (glu's axis is no formula parameter: none)."""
        if self.kind == "glu":
            return ((),)
        return (tuple(v for _, v in self.params), *self.forms)

    def structure(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Prepared arguments with each run-time scalar (a float) replaced by None: what a
        formula's graph depends on."""
        return tuple(None if isinstance(v, float) else v for v in args)

    def variant(self, p: tuple[float, ...]) -> tuple[Any, ...]:
        """What a compiled kernel of these hyper-parameters depends on (not their values)."""
        return tuple(
            v if not isinstance(v, float) else float
            for prec in (32, 64) for v in self.prep(p, prec)
        )


# The formulas of an entry, by order of the derivative.
ORDERS = ("value", "deriv", "deriv2", "deriv3")

# The public functions' entries by name, filled by kaun.activation._defs: the spec's functions.
ENTRIES: dict[str, Entry] = {}
# The public functions beyond the spec (``Entry.extra``): swiglu, geglu, ..., by name.
EXTRAS: dict[str, Entry] = {}
# Every entry by key: ENTRIES, EXTRAS, and the internal ones (prelu with a number alpha, "prelu_scalar").
ALL: dict[str, Entry] = {}


def lookup(key: str) -> Entry:
    """The entry of that key, importing kaun.activation first where nothing has (a Dask worker
    that unpickles a task)."""
    if key not in ALL:
        import importlib

        importlib.import_module("kaun.activation")  # fills ALL
    return ALL[key]
