"""kaun-activation: list, eval, plot, gallery; as main(), python -m kaun.cli and the script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
import torch
from matplotlib.image import imread

import kaun.activation as A
from kaun import cli
from kaun.activation._defs import ENTRIES, EXTRAS

PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def table(out: str) -> list[tuple[float, str]]:
    """The (x, f(x) as printed) rows of an eval output."""
    rows = []
    for line in out.splitlines()[2:]:
        x, y = line.split()
        rows.append((float(x), y))
    return rows


# ---- list --------------------------------------------------------------------------------------


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "list")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["name", "formula", "defaults"]
    assert set(lines[1]) == {"-"}
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == A.names(extras=True)  # the spec's 25, then the functions beyond it
    for name, e in [*ENTRIES.items(), *EXTRAS.items()]:
        assert e.formula in rows[name]
        for p, v in e.params:
            assert f"{p}={v!r}" in rows[name]
    assert rows["swish"].split() == ["swish", "=", "silu"]
    assert rows["hard_swish"].split() == ["hard_swish", "=", "hard_silu"]
    assert "alpha (required" in rows["prelu"]
    assert rows["relu"].split()[-1] == "-"


# ---- eval --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_eval_prints_kauns_values(capsys: pytest.CaptureFixture[str], dtype: str) -> None:
    values = ["-inf", "-1e3", "-10", "-1.5", "-0", "0", "0.5", "3", "inf", "nan"]
    rc, out, err = run(capsys, "eval", "gelu", *values, "--dtype", dtype)
    assert rc == 0, err
    assert out.splitlines()[0] == f"# gelu(x), {dtype}, numpy"
    npd = ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
    x = np.array([float(v) for v in values]).astype(npd)
    want = A.gelu(x)
    got = np.array([float(y) for _, y in table(out)]).astype(npd)
    # printed with numpy's shortest round-trip repr: reading it back gives the same bits (but
    # for a NaN's sign and payload, which "nan" does not carry)
    nan = np.isnan(want.astype(np.float64))
    assert np.isnan(got[nan].astype(np.float64)).all()
    np.testing.assert_array_equal(got[~nan].view(np.uint8), want[~nan].view(np.uint8))


def test_eval_derivative_and_params(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "eval", "leaky_relu", "-2", "0", "3",
                     "--param", "negative_slope=0.2", "--derivative")
    assert rc == 0
    assert out.splitlines()[0] == "# leaky_relu'(x, negative_slope=0.2), float64, numpy"
    assert table(out) == [(-2.0, "0.2"), (0.0, "0.2"), (3.0, "1.0")]
    rc, out, _ = run(capsys, "eval", "squareplus", "-3", "--param", "b=0.5")
    assert rc == 0
    assert float(table(out)[0][1]) == float(A.squareplus(np.array([-3.0]), b=0.5)[0])
    rc, out, _ = run(capsys, "eval", "prelu", "-2", "3", "--param", "alpha=0.1")
    assert rc == 0 and table(out) == [(-2.0, "-0.2"), (3.0, "3.0")]
    rc, out, _ = run(capsys, "eval", "prelu", "-2", "3", "--param", "alpha=0.1", "--derivative")
    assert rc == 0 and table(out) == [(-2.0, "0.1"), (3.0, "1.0")]


def test_eval_higher_orders(capsys: pytest.CaptureFixture[str]) -> None:
    x = np.array([-1.0, 0.0, 1.4142])
    for order in (2, 3):
        rc, out, _ = run(capsys, "eval", "gelu", "-1", "0", "1.4142", "--order", str(order))
        assert rc == 0
        assert out.splitlines()[0] == f"# gelu{chr(39) * order}(x), float64, numpy"
        assert [float(y) for _, y in table(out)] == A.derivative(A.gelu, order=order)(x).tolist()
    rc, out, _ = run(capsys, "eval", "squareplus", "2", "--param", "b=9", "--order", "2", "--backend", "torch")
    assert rc == 0 and float(table(out)[0][1]) == pytest.approx(4.5 / 13**1.5, rel=1e-15)


@pytest.mark.parametrize("name", ["swiglu", "geglu", "geglu_approx", "reglu"])
def test_eval_gated(capsys: pytest.CaptureFixture[str], name: str) -> None:
    x = np.array([1.0, 2.0, -1.0, 0.5])
    rc, out, _ = run(capsys, "eval", name, "1", "2", "-1", "0.5")
    assert rc == 0 and out.splitlines()[2] == f"{name}(x) = {A.get(name)(x).tolist()}"
    rc, out, _ = run(capsys, "eval", name, "1", "2", "-1", "0.5", "--derivative")
    d = A.derivative(A.get(name))(x, np.ones(2))
    assert rc == 0 and [float(v.split()[1]) for v in out.splitlines()[2:]] == d.tolist()


@pytest.mark.parametrize("name", ["relu_squared", "quick_gelu"])
def test_eval_elementwise_extras(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """The elementwise functions beyond the spec, as any other: values, derivatives of order 2."""
    x = np.array([-1.0, 2.0])
    rc, out, _ = run(capsys, "eval", name, "-1", "2")
    assert rc == 0 and [float(y) for _, y in table(out)] == A.get(name)(x).tolist()
    rc, out, _ = run(capsys, "eval", name, "-1", "2", "--order", "2")
    want = A.derivative(A.get(name), order=2)(x)
    assert rc == 0 and [float(y) for _, y in table(out)] == want.tolist()


def test_eval_glu(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "eval", "glu", "1", "2", "-1", "0")
    assert rc == 0
    lines = out.splitlines()
    assert lines[1] == "x = [1.0, 2.0, -1.0, 0.0]"
    assert lines[2] == f"glu(x) = {A.glu(np.array([1.0, 2.0, -1.0, 0.0])).tolist()}"
    rc, out, _ = run(capsys, "eval", "glu", "1", "2", "-1", "0", "--derivative")
    assert rc == 0
    d = A.derivative(A.glu)(np.array([1.0, 2.0, -1.0, 0.0]), np.ones(2))
    assert [float(y) for _, y in table(out)] == d.tolist()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_eval_other_backends(capsys: pytest.CaptureFixture[str], backend: str) -> None:
    rc, out, _ = run(capsys, "eval", "mish", "-20", "-1", "0", "2", "--backend", backend,
                     "--dtype", "float32")
    assert rc == 0
    assert out.splitlines()[0] == f"# mish(x), float32, {backend}"
    x = np.array([-20.0, -1.0, 0.0, 2.0], dtype=np.float32)
    want = A.mish(torch.from_numpy(x)).numpy() if backend == "torch" else None
    got = np.array([float(y) for _, y in table(out)], dtype=np.float32)
    if want is not None:
        np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got, A.mish(x), rtol=3e-7)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["eval", "gleu", "1"], "unknown activation 'gleu'; did you mean 'glu'"),
        (["eval", "prelu", "1"], "prelu needs its alpha: --param alpha=VALUE"),
        (["eval", "squareplus", "1", "--param", "b=-1"], "squareplus: b must be >= 0"),
        (["eval", "relu", "1", "--param", "b=1"], "unexpected keyword argument 'b'"),
        (["eval", "gelu", "1", "--param", "nope"], "--param takes NAME=VALUE"),
        (["eval", "gelu", "1", "--param", "b=x"], "--param b: 'x' is not a number"),
        (["eval", "gelu", "one"], "VALUES must be numbers"),
        (["eval", "glu", "1", "2", "3"], "does not split into two equal halves"),
        (["plot", "gelu", "-o", "x.png", "--param", "b=2"], "no function named takes ['b']"),
        (["eval", "glu", "1", "2", "--order", "2"], "glu: --order 2 is for the elementwise functions"),
    ],
)
def test_errors(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.startswith("kaun-activation: error: ")
    assert message in err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys)
    assert rc == 2 and "COMMAND" in err
    rc, out, err = run(capsys, "--help")
    assert rc == 0 and "list" in out and "gallery" in out
    rc, out, err = run(capsys, "eval", "gelu", "1", "--dtype", "int8")
    assert rc == 2 and "invalid choice" in err


# ---- plot and gallery --------------------------------------------------------------------------


def test_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    one = tmp_path / "one.png"
    rc, out, err = run(capsys, "plot", "gelu", "-o", str(one))
    assert rc == 0, err
    assert out.strip() == f"wrote {one}"
    assert one.read_bytes().startswith(PNG)
    assert imread(one).shape[:2] == (400, 600)

    many = tmp_path / "many.png"
    rc, _, err = run(capsys, "plot", "silu", "mish", "leaky_relu", "prelu", "glu",
                     "--derivative", "--param", "negative_slope=0.3", "--range", "-3", "2",
                     "-o", str(many))
    assert rc == 0, err
    img = imread(many)
    # more curves: more coloured pixels than the single plot
    def coloured(a: np.ndarray) -> int:
        rgb = a[..., :3]
        return int(np.sum(rgb.max(axis=-1) - rgb.min(axis=-1) > 0.2))
    assert coloured(img) > coloured(imread(one))


def test_curves_are_kauns() -> None:
    xs = np.linspace(-5, 5, 11)
    y, dy, label = cli.curves("leaky_relu", xs, {"negative_slope": 0.3})
    np.testing.assert_array_equal(y, A.leaky_relu(xs, negative_slope=0.3))
    np.testing.assert_array_equal(dy, A.derivative(A.leaky_relu)(xs, negative_slope=0.3))
    assert label == "leaky_relu (negative_slope=0.3)"
    y, dy, label = cli.curves("glu", xs)
    np.testing.assert_allclose(y, A.silu(xs), rtol=1e-15)
    np.testing.assert_allclose(dy, A.derivative(A.silu)(xs), rtol=1e-15, atol=1e-16)
    y, dy, label = cli.curves("prelu", xs)
    np.testing.assert_array_equal(y, A.prelu(xs, 0.25))
    assert label == "prelu (alpha=0.25)"


def test_gallery(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    assert run(capsys, "gallery", "-o", str(a))[0] == 0
    assert run(capsys, "gallery", "-o", str(b))[0] == 0
    assert a.read_bytes() == b.read_bytes()  # no dates in the file: the docs don't churn
    h, w = imread(a).shape[:2]
    assert (h, w) == (960, 1200)  # 5 columns x 5 rows of panels at 80 dpi


def test_without_matplotlib(tmp_path: Path) -> None:
    """With matplotlib not importable, plot says how to get it and exits with status 2.

    The real import system with matplotlib blocked (sys.modules[name] = None makes any import
    of it raise ImportError), in a fresh interpreter.
    """
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "from kaun.cli import main\n"
        f"sys.exit(main(['plot', 'gelu', '-o', {str(tmp_path / 'x.png')!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "kaun-activation: error: plotting needs matplotlib, which is not installed: "
        "pip install 'kaun[plot]'"
    )
    assert not (tmp_path / "x.png").exists()


# ---- the entry points --------------------------------------------------------------------------


def test_python_dash_m() -> None:
    r = subprocess.run([sys.executable, "-m", "kaun.cli", "eval", "relu", "-1", "2"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == ["   x  relu(x)", "-1.0  0.0", " 2.0  2.0"]


def test_console_script() -> None:
    script = os.path.join(os.path.dirname(sys.executable), "kaun-activation")
    assert os.path.exists(script), "pip install -e . declares it (pyproject [project.scripts])"
    r = subprocess.run([script, "list"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == cli.list_text() + "\n"
