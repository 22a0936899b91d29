"""kaun.nn through torch.onnx.export(dynamo=True) into ONNX Runtime: what each function exports
to (the 25 and the six beyond the spec), and how far ONNX Runtime's result is from kaun's eager one.

    .venv/bin/python benchmarks/onnx_export.py          # every function, writes docs/onnx.md
    .venv/bin/python benchmarks/onnx_export.py --quick  # a smaller float32 grid, writes nothing

For every function (at its defaults, and at the other hyper-parameters of ``CASES``) a one-module
model ``kaun.nn.<Module>`` is exported with ``torch.onnx.export(..., dynamo=True)`` with a
dynamic length, loaded in ONNX Runtime (CPU) and run over the inputs of benchmarks/accuracy.py
(every finite float16 value; >= 20,000 float32 values over the whole range, subnormals and the
largest values included). Its output is compared with kaun's eager result on the same torch
tensor, in ULPs of the dtype (``ulp_diff``). tests/test_onnx.py asserts the bounds (``BOUND``)
with the same cases, inputs and measure.
"""

# ruff: noqa: E501 (the page template holds Markdown tables on long lines)
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _reference as R  # noqa: E402

DOC = HERE.parent / "docs" / "onnx.md"

# The bound that tests/test_onnx.py asserts: ONNX Runtime's result within kaun's documented value
# bound (docs/accuracy.md) of kaun's eager result, in ULPs of the dtype.
BOUND = {d: R.TARGET[d][0] for d in ("float32", "float16")}
# float64 is measured and shown, not bounded (torch.onnx's float64 constants: see write_doc)
DTYPES = ("float32", "float16", "float64")

# (label, kaun.nn class name, hyper-parameters): every function at its defaults, and each
# hyper-parameter's other forms (kaun selects a formula by them: a zero slope, b = 0, an alpha
# that is not a power of two)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("relu", "ReLU", {}),
    ("sigmoid", "Sigmoid", {}),
    ("tanh", "Tanh", {}),
    ("relu6", "ReLU6", {}),
    ("leaky_relu", "LeakyReLU", {}),
    ("leaky_relu(negative_slope=0.2)", "LeakyReLU", {"negative_slope": 0.2}),
    ("leaky_relu(negative_slope=0.0)", "LeakyReLU", {"negative_slope": 0.0}),
    ("hard_tanh", "HardTanh", {}),
    ("hard_sigmoid", "HardSigmoid", {}),
    ("hard_sigmoid(alpha=0.2, beta=0.4)", "HardSigmoid", {"alpha": 0.2, "beta": 0.4}),
    ("prelu", "PReLU", {}),
    ("elu", "ELU", {}),
    ("elu(alpha=1.5)", "ELU", {"alpha": 1.5}),
    ("selu", "SELU", {}),
    ("celu", "CELU", {}),
    ("celu(alpha=0.7)", "CELU", {"alpha": 0.7}),
    ("gelu", "GELU", {}),
    ("gelu_approx", "GELUApprox", {}),
    ("silu", "SiLU", {}),
    ("hard_silu", "HardSiLU", {}),
    ("mish", "Mish", {}),
    ("softplus", "Softplus", {}),
    ("softsign", "Softsign", {}),
    ("squareplus", "Squareplus", {}),
    ("squareplus(b=2.5)", "Squareplus", {"b": 2.5}),
    ("squareplus(b=0.0)", "Squareplus", {"b": 0.0}),
    ("log_sigmoid", "LogSigmoid", {}),
    ("glu", "GLU", {}),
    ("sparse_plus", "SparsePlus", {}),
    ("sparse_sigmoid", "SparseSigmoid", {}),
    # beyond the spec (A.names(extras=True)): the gated ones split, as glu, and by name
    ("swiglu", "SwiGLU", {}),
    ("swiglu(gate=, up=)", "named:swiglu", {}),
    ("geglu", "GeGLU", {}),
    ("geglu(gate=, up=)", "named:geglu", {}),
    ("geglu_approx", "GeGLUApprox", {}),
    ("geglu_approx(gate=, up=)", "named:geglu_approx", {}),
    ("reglu", "ReGLU", {}),
    ("reglu(gate=, up=)", "named:reglu", {}),
    ("relu_squared", "ReLUSquared", {}),
    ("quick_gelu", "QuickGELU", {}),
]

# the cases whose input is two values side by side (case_input): glu's halves along the last
# axis, or the gated functions' up (first) and gate (second) by name
PAIRED = ("GLU", "SwiGLU", "GeGLU", "GeGLUApprox", "ReGLU")


def module(cls: str, params: dict[str, Any]) -> Any:
    """The kaun.nn module of a case, in eval mode; ``named:NAME`` a module that calls
    ``A.NAME(gate=x[..., 1:], up=x[..., :1])`` (the split form's numbers, by name)."""
    import torch

    import kaun.activation as A
    import kaun.nn as KN

    if cls.startswith("named:"):
        fn = A.get(cls.split(":", 1)[1])

        class Named(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                out: torch.Tensor = fn(gate=x[..., 1:], up=x[..., :1])
                return out

        return Named().eval()
    return getattr(KN, cls)(**params).eval()


def paired(cls: str) -> bool:
    return cls in PAIRED or cls.startswith("named:")


def case_input(cls: str, x: np.ndarray) -> np.ndarray:
    """A case's input for the 1-d values x: x itself, or for glu and the gated functions x and x
    reversed side by side (the halves along the last axis: every pair of values meets)."""
    return np.stack([x, x[::-1]], -1) if paired(cls) else x


@contextlib.contextmanager
def quiet() -> Any:
    """torch.onnx prints its progress and logs warnings about optional packages (torchvision)."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def export(model: Any, x: Any, dynamo: bool = True) -> Any:
    """``torch.onnx.export(model, (x,), dynamo=True)`` with a dynamic first axis: the ModelProto.
    ``dynamo=False``: torch's legacy TorchScript exporter, which Keras's torch backend uses."""
    import onnx
    import torch

    with quiet(), warnings.catch_warnings():
        # torch.onnx's decomposition pass reaches a pytree deprecation of torch 2.13 (not ours)
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)",
                                category=FutureWarning)
        if dynamo:
            prog = torch.onnx.export(model, (x,), dynamo=True,
                                     dynamic_shapes=({0: torch.export.Dim("n")},))
            return prog.model_proto
        # the legacy exporter says it is legacy, and its tracer warns about every Python bool
        # or int taken of a size (kaun's shape checks), which it records as constants
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        buf = io.BytesIO()
        torch.onnx.export(model, (x,), buf, dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
        return onnx.load_from_string(buf.getvalue())


def session(proto: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def run(sess: Any, x: np.ndarray) -> list[np.ndarray]:
    return sess.run(None, {sess.get_inputs()[0].name: x})  # type: ignore[no-any-return]


def operators(proto: Any) -> list[str]:
    return sorted({n.op_type for n in proto.graph.node})


def float64_values(proto: Any) -> list[str]:
    """Names of the graph's float64 values (a float32 or float16 model should have none)."""
    import onnx

    d = onnx.TensorProto.DOUBLE
    out = [i.name for i in proto.graph.initializer if i.data_type == d]
    out += [v.name for v in [*proto.graph.value_info, *proto.graph.output, *proto.graph.input]
            if v.type.tensor_type.elem_type == d]
    out += [n.name for n in proto.graph.node
            if n.op_type == "Cast" and any(a.name == "to" and a.i == d for a in n.attribute)]
    return out


def inputs(dtype: str, quick: bool = False) -> np.ndarray:
    """benchmarks/accuracy.py's inputs for dtype, in that dtype."""
    return R.grid(dtype, quick).astype(np.dtype(dtype))


def ulp_diff(y: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|y - ref| in ULPs of ref's dtype at ref (the smallest subnormal at 0); 0 where both are
    equal or both NaN, inf where one is NaN or infinite and the other not."""
    dt = ref.dtype
    a, b = y.astype(np.float64), ref.astype(np.float64)
    with np.errstate(all="ignore"):
        d = np.abs(a - b) / np.spacing(np.abs(ref).astype(dt)).astype(np.float64)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return np.where(same, 0.0, np.where(np.isnan(d), np.inf, d))


def eager(model: Any, x: np.ndarray) -> np.ndarray:
    """kaun's eager result (the compiled kernels on CPU tensors)."""
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x.copy())).numpy()  # type: ignore[no-any-return]


def measure(cases: list[tuple[str, str, dict[str, Any]]], dtypes: tuple[str, ...], quick: bool,
            log: Callable[[str], None] = print) -> dict[str, dict[str, Any]]:
    """Per case: the float32 graph's operators, and per dtype the largest difference (ULPs), where
    it is, or why ONNX Runtime did not run the graph."""
    import torch

    out: dict[str, dict[str, Any]] = {}
    grids = {d: inputs(d, quick) for d in dtypes}
    for label, cls, params in cases:
        row: dict[str, Any] = {}
        for d in dtypes:
            x = grids[d]
            xc = case_input(cls, x)
            m = module(cls, params).to(getattr(torch, d))
            proto = export(m, torch.from_numpy(xc[:4].copy()))
            if d == "float32":
                row["ops"] = operators(proto)
            try:
                sess = session(proto)
            except Exception as e:  # ONNX Runtime has no kernel for an operator in this dtype
                row[d] = ("no", str(e).split(" : ")[-1].strip())
                continue
            y = run(sess, xc)[0]
            err = ulp_diff(y, eager(m, xc)).reshape(-1)
            i = int(np.argmax(err))
            row[d] = (float(err[i]), float(x[i]), float64_values(proto) if d != "float64" else [])
        out[label] = row
        log(f"{label:34s} " + "  ".join(
            f"{d}: {row[d][0] if isinstance(row[d][0], str) else f'{row[d][0]:.3g}'}"
            for d in dtypes))
    return out


def fmt(cell: Any) -> str:
    if isinstance(cell[0], str):
        return "does not load"
    v = cell[0]
    return "0" if v == 0 else (f"{v:.0f}" if v < 1e4 else f"{v:.1e}")


def write_doc(res: dict[str, dict[str, Any]], dtypes: tuple[str, ...], secs: float) -> str:
    import onnxruntime
    import torch

    try:
        import onnxscript

        oscript = onnxscript.__version__
    except Exception:  # pragma: no cover
        oscript = "?"
    head = " | ".join(f"{d}: max ULP" for d in dtypes)
    rows = [f"| function | ONNX operators (float32 graph) | {head} |",
            "|---|---|" + "---|" * len(dtypes)]
    for label, row in res.items():
        rows.append(f"| `{label}` | {', '.join(row['ops'])} | "
                    + " | ".join(fmt(row[d]) for d in dtypes) + " |")
    failed = sorted({f"{d}: {row[d][1]}" for row in res.values() for d in dtypes
                     if isinstance(row[d][0], str)})
    worst = {d: max((row[d][0] for row in res.values() if not isinstance(row[d][0], str)),
                    default=0.0) for d in dtypes if d in BOUND}
    plain = plain_ops()
    return f"""<!-- Written by benchmarks/onnx_export.py: do not edit. -->

# ONNX

A PyTorch model built with `kaun.nn` (or calling `kaun.activation`) exports with
`torch.onnx.export(model, args, dynamo=True)` and runs in ONNX Runtime: every function, in
float32 and float16. How: [frameworks.md](frameworks.md#onnx).

## What the exported graph computes

While `torch.onnx.export` traces, kaun evaluates each function by its formula in torch
operations, as under `torch.export`, with substitutions for what ONNX lacks or ONNX Runtime
computes inexactly:

- `log1p`: ONNX has no such operator, and torch.onnx writes `log(1 + x)`, which is 0 for
  |x| < 2^-25: softplus and log_sigmoid lost their tails. kaun writes Kahan's
  `log(u) * x / (u - 1)`, u = 1 + x (`x` where u rounds to 1).
- `expm1`: nor this one (torch.onnx writes `exp(x) - 1`, which cancels near 0: elu, selu,
  celu); kaun writes Kahan's `(u - 1) * x / log(u)`, u = exp(x).
- `tanh`: ONNX Runtime's float32 `Tanh` is off by many ulps for tiny inputs; kaun writes `x`
  where tanh(x) rounds to x (|x| < 2^-12 in float32) and `Tanh` elsewhere.

The same graphs without these substitutions, on the same inputs:

| graph | float32: max ULP from kaun | where |
|---|---|---|
| ONNX `Tanh` alone | {fmt((plain['tanh'][0],))} | x = {plain['tanh'][1]:.4g} |
| `Relu(x) + Log(1 + Exp(-Abs(x)))` (softplus as torch.onnx writes log1p) | {fmt((plain['softplus'][0],))} | x = {plain['softplus'][1]:.4g} |

No float32 or float16 graph computes in float64 (no float64 value and no `Cast` to double:
tested); float16 and bfloat16 models compute in float32 inside the graph and round once, as
kaun does. The same holds for torch's legacy TorchScript exporter (`dynamo=False`, which Keras's
torch backend uses for a dynamic batch): `tests/test_onnx.py` runs both exporters against the
bounds below; the table is the dynamo exporter's.

## Every function

The operators of each function's exported float32 graph, and the largest difference between
ONNX Runtime's result and kaun's eager one (the compiled kernel) on the same input, in ULPs of
the dtype, over every finite float16 value and {len(R.grid('float32'))} float32 values spanning
the whole range (subnormals, both tails, the largest values): the inputs of
[accuracy.md](accuracy.md), where kaun's own results are within {R.TARGET['float32'][0]:g} ulp (float32) and
{R.TARGET['float16'][0]:g} ulp (half precision) of the true values. `tests/test_onnx.py` asserts that ONNX Runtime's results
are within those bounds of kaun's: at most {BOUND['float32']:g} ulp in float32 and
{BOUND['float16']:g} in float16 (largest here: {worst.get('float32', 0.0):g} and
{worst.get('float16', 0.0):g}).

{chr(10).join(rows)}

## Not covered

- **float64** (the last column: measured, not a bound). torch.onnx (torch {torch.__version__},
  onnxscript {oscript}) writes every number constant of a float64 graph as a float32 value
  cast to double (onnxscript's `aten_scalar_tensor`), so a float64 model computes with float32
  constants; and ONNX Runtime has no float64 `LeakyRelu` (leaky_relu's graph is torch's own
  op). Export float32 models.
- **bfloat16**: ONNX Runtime's CPU provider has no bfloat16 kernels for `Relu`, `Clip` and
  other operators.
{"- Not loaded: " + "; ".join(failed) + "." if failed else ""}

Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {secs:.0f} s by
`.venv/bin/python benchmarks/onnx_export.py` (`make onnx`; torch {torch.__version__},
onnxruntime {onnxruntime.__version__}, {platform.machine()}).
"""


def plain_ops() -> dict[str, tuple[float, float]]:
    """The largest float32 difference (ULPs, and where) from kaun of ONNX Runtime's own Tanh and
    of softplus with torch.onnx's log(1 + x), on the float32 inputs."""
    import onnx
    from onnx import TensorProto
    from onnx import helper as h

    import kaun.activation as A

    def graph(nodes: list[Any], consts: dict[str, float]) -> Any:
        inits = [h.make_tensor(k, TensorProto.FLOAT, [], [v]) for k, v in consts.items()]
        g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
                         [h.make_tensor_value_info("y", TensorProto.FLOAT, [None])], inits)
        return h.make_model(g, opset_imports=[h.make_opsetid("", 20)])

    x = inputs("float32")
    out = {}
    for name, proto in (
        ("tanh", graph([h.make_node("Tanh", ["x"], ["y"])], {})),
        ("softplus", graph([h.make_node("Relu", ["x"], ["r"]), h.make_node("Abs", ["x"], ["a"]),
                            h.make_node("Neg", ["a"], ["n"]), h.make_node("Exp", ["n"], ["e"]),
                            h.make_node("Add", ["one", "e"], ["u"]),
                            h.make_node("Log", ["u"], ["l"]), h.make_node("Add", ["r", "l"], ["y"])],
                           {"one": 1.0})),
    ):
        onnx.checker.check_model(proto)
        err = ulp_diff(run(session(proto), x)[0], getattr(A, name)(x))
        i = int(np.argmax(err))
        out[name] = (float(err[i]), float(x[i]))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smaller grid; writes nothing")
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=DTYPES)
    ap.add_argument("--out", type=Path, default=None, help="where to write (default docs/onnx.md)")
    a = ap.parse_args(argv)
    t0 = time.time()
    dtypes = tuple(a.dtypes)
    res = measure(CASES, dtypes, a.quick)
    out = a.out if a.out is not None else (DOC if not a.quick and dtypes == DTYPES else None)
    if out is not None:
        out.write_text(write_doc(res, dtypes, time.time() - t0))
        print(f"wrote {out}")
    bad = [(label, d) for label, row in res.items() for d in dtypes if d in BOUND
           and (isinstance(row[d][0], str) or row[d][0] > BOUND[d])]
    if bad:
        print(f"past the bound: {bad}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
