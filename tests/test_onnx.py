"""ONNX: kaun.nn models through torch.onnx.export(dynamo=True) into ONNX Runtime.

Every function (the cases of benchmarks/onnx_export.py: defaults and the other forms of the
hyper-parameters; the six beyond the spec, the gated ones split and by name) in one model per
dtype, exported once (and once more by torch's legacy TorchScript exporter, which Keras's torch
backend uses), loaded in ONNX Runtime and run over benchmarks/accuracy.py's inputs (every finite
float16 value, >= 20,000 float32 values over the whole range): within kaun's documented value
bound of kaun's eager result (4 ulp in float32, 1 in float16), with no float64 in the graph. And
the model of the issue (Linear, GELU, Mish, ...), saved to a file and loaded from it; and
docs/onnx.md against the cases.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx  # noqa: F401  (the test environment has the ONNX stack: a missing one fails the run)
import onnxruntime as ort
import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
import pytest
import torch

import kaun.activation as A
import kaun.nn as KN

ROOT = Path(__file__).resolve().parents[1]


def _load_bench() -> Any:
    name = "_kaun_onnx_export"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "onnx_export.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


B = _load_bench()
LABELS = [c[0] for c in B.CASES]


class _All(torch.nn.Module):
    """Every case of benchmarks/onnx_export.py on the same input: one output each."""

    def __init__(self) -> None:
        super().__init__()
        self.cases = torch.nn.ModuleList([B.module(cls, p) for _, cls, p in B.CASES])
        self.paired = [B.paired(cls) for _, cls, _ in B.CASES]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pairs = torch.stack([x, x.flip(0)], -1)  # glu's input (benchmarks/onnx_export.py)
        return tuple(m(pairs)[..., 0] if p else m(x)
                     for m, p in zip(self.cases, self.paired, strict=True))


_EXPORTS: dict[tuple[str, str], dict[str, Any]] = {}
EXPORTERS = ("dynamo", "torchscript")  # (torchscript: torch's legacy exporter, Keras's)


def _export(dtype: str, exporter: str = "dynamo") -> dict[str, Any]:
    """Every case in one model of dtype, exported once per session and run in ONNX Runtime."""
    if (dtype, exporter) not in _EXPORTS:
        _EXPORTS[(dtype, exporter)] = _build(dtype, exporter)
    return _EXPORTS[(dtype, exporter)]


@pytest.fixture(params=[(d, e) for e in EXPORTERS for d in B.BOUND], ids="-".join)
def exported(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _export(*request.param)


def _build(dtype: str, exporter: str) -> dict[str, Any]:
    x = B.inputs(dtype)
    model = _All().to(getattr(torch, dtype)).eval()
    proto = B.export(model, torch.from_numpy(x[:4].copy()), dynamo=exporter == "dynamo")
    sess = B.session(proto)  # fails where ONNX Runtime lacks a kernel for an operator and dtype
    with torch.no_grad():
        ref = [t.numpy() for t in model(torch.from_numpy(x.copy()))]
    return {"dtype": dtype, "exporter": exporter, "x": x, "proto": proto, "ort": B.run(sess, x),
            "eager": ref}


@pytest.mark.parametrize("label", LABELS)
def test_onnxruntime_within_the_bound_of_kaun(exported: dict[str, Any], label: str) -> None:
    i = LABELS.index(label)
    y, ref = exported["ort"][i], exported["eager"][i]
    assert y.dtype == ref.dtype and y.shape == ref.shape
    err = B.ulp_diff(y, ref)
    bound = B.BOUND[exported["dtype"]]
    j = int(np.argmax(err))
    assert err[j] <= bound, (
        f"{label} {exported['dtype']}: {err[j]:.3g} ulp at x = {exported['x'][j]!r} "
        f"(ONNX Runtime {y[j]!r}, kaun {ref[j]!r})"
    )


def test_graph_computes_nothing_in_float64(exported: dict[str, Any]) -> None:
    assert B.float64_values(exported["proto"]) == []


def test_tails_that_log_1_plus_x_and_ort_tanh_lose() -> None:
    """What the export's own log1p and tanh keep (torch.onnx's log(1 + x) gives softplus(-30)
    = 0 in float32; ONNX Runtime's float32 Tanh is ~100 ulp off at 1e-40)."""
    exported = _export("float32")
    x = exported["x"]
    out = dict(zip(LABELS, exported["ort"], strict=True))
    at = {v: int(np.flatnonzero(x == np.float32(v))[0]) for v in (-30.0, 30.0)}
    assert out["softplus"][at[-30.0]] == A.softplus(np.float32(-30.0)) > 0
    assert out["log_sigmoid"][at[30.0]] == A.log_sigmoid(np.float32(30.0)) < 0
    tiny = (np.abs(x) < 1e-30) & (x != 0)
    assert tiny.sum() > 100
    np.testing.assert_array_equal(out["tanh"][tiny], x[tiny])


def test_the_issue_model_deploys_from_a_file(tmp_path: Path) -> None:
    """Linear layers with kaun.nn's GELU, Mish, a per-channel PReLU and a GLU, exported to a
    file as a user would, loaded by ONNX Runtime from the path; the same numbers as torch."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), KN.GELU(), torch.nn.Linear(16, 16), KN.Mish(),
        torch.nn.Linear(16, 8), KN.PReLU(num_parameters=8), KN.Squareplus(b=1.0),
        torch.nn.Linear(8, 8), KN.GLU(axis=-1), torch.nn.Linear(4, 1),
    ).eval()
    x = torch.randn(32, 4)
    path = tmp_path / "model.onnx"
    with B.quiet():
        torch.onnx.export(model, (x,), str(path), dynamo=True,
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xb = torch.randn(5, 4)  # another batch size: the axis is dynamic
    (y,) = sess.run(None, {sess.get_inputs()[0].name: xb.numpy()})
    with torch.no_grad():
        want = model(xb).numpy()
    # (ONNX Runtime's Gemm sums in another order than torch's matmul: a few float32 ulps of
    # the sums, not of the activations)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def _doc_rows() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "onnx.md").read_text()
    rows = {}
    for m in re.finditer(r"^\| `([^`]+)` \| (.*) \|$", text, flags=re.M):
        rows[m.group(1)] = [c.strip() for c in m.group(2).split(" | ")]
    return rows


def test_docs_table_lists_every_case_within_the_bound(exported: dict[str, Any]) -> None:
    """docs/onnx.md (written by benchmarks/onnx_export.py): every case, its figures within the
    bounds, and every operator of the exported graph named in it."""
    rows = _doc_rows()
    assert list(rows) == LABELS
    col = 1 + list(B.DTYPES).index(exported["dtype"])
    for label, cells in rows.items():
        assert float(cells[col]) <= B.BOUND[exported["dtype"]], (label, cells)
    documented = {op.strip() for cells in rows.values() for op in cells[0].split(",")}
    if exported["dtype"] == "float32" and exported["exporter"] == "dynamo":
        # (less what builds glu's pairs, takes its column, and aliases equal outputs)
        used = set(B.operators(exported["proto"])) - {"Concat", "Unsqueeze", "Gather", "Squeeze",
                                                         "Identity"}
        assert used <= documented, used - documented
