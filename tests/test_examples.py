"""examples/spirals.py and the demo run, and print what they say they print."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib.image import imread

import kaun.activation as A

ROOT = Path(__file__).resolve().parent.parent


def test_spirals_quick() -> None:
    r = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "spirals.py"), "--quick"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0].startswith("two spirals: 300 training and 300 test points")
    head = lines[1]
    if importlib.util.find_spec("optax") is not None:
        assert head.endswith("(jax+optax)"), head
    else:
        assert "plain Adam: optax is not installed" in head
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ["relu", "gelu", "mish"]
    for name, acc_torch, acc_jax, seconds in rows:
        # far above chance (0.5): the networks learn the spirals with each activation
        assert 0.9 <= float(acc_torch) <= 1.0, (name, acc_torch)
        assert 0.9 <= float(acc_jax) <= 1.0, (name, acc_jax)
        assert float(seconds) > 0


def test_spirals_data() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import spirals
    finally:
        sys.path.pop(0)
    xtr, ytr, xte, yte = spirals.make_spirals(n=100)
    assert xtr.shape == (100, 2) and xte.shape == (100, 2)
    assert set(ytr.tolist()) == {0.0, 1.0} and abs(ytr.mean() - 0.5) < 0.15
    # the two classes are point reflections of each other (up to the noise)
    assert abs(xtr[ytr == 0].mean() + xtr[ytr == 1].mean()) < 0.5


def test_pinn_quick() -> None:
    r = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "pinn.py"), "--quick"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    lines = r.stdout.splitlines()
    head = "Poisson u'' = f on [-1, 1], u* = sin(pi x): u = (1 - x^2) MLP 1-32-32-1(x) in float64, "
    assert lines[0].startswith(head), lines[0]
    optax = importlib.util.find_spec("optax") is not None
    assert lines[1].endswith("(jax+optax)" if optax else "optax is not installed)"), lines[1]
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [["tanh", "torch"], ["tanh", "jax"]]
    for name, framework, loss0, err0, arrow, *numbers in rows:
        assert arrow == "->"
        loss0, err0, loss, err, err_xx, seconds = map(float, (loss0, err0, *numbers))
        where = (name, framework, loss0, err0, numbers)
        # the untrained network is nowhere near sin(pi x) (max 1)...
        assert err0 > 0.5 and loss0 > 0.1, where
        # ...and trained on u'' alone, it is. The quick run reaches a few 1e-5 in u with Adam and
        # L-BFGS, a few 1e-3 with Adam alone (JAX without optax).
        if optax or framework == "torch":
            assert 0 < loss < 1e-5 * loss0 and 0 < err < 1e-3 and 0 < err_xx < 2e-2, where
        else:
            assert 0 < loss < 1e-2 * loss0 and 0 < err < 3e-2 and 0 < err_xx < 0.3, where
        assert seconds > 0
    # the same start and points: the untrained u'' (kaun's second derivatives) the same on both
    assert rows[0][2:4] == rows[1][2:4], rows


def test_pinn_problem() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import pinn
    finally:
        sys.path.pop(0)
    x, h = np.linspace(-1.0, 1.0, 101, retstep=True)
    for k in (1, 2):
        u, f = pinn.exact(x, k)
        # f is u'' (to the second differences' h^2 (k pi)^4 / 12), and u vanishes on the boundary
        d2 = (u[2:] - 2 * u[1:-1] + u[:-2]) / h**2
        np.testing.assert_allclose(d2, f[1:-1], rtol=0, atol=2e-3 * np.abs(f).max())
        assert abs(u[0]) < 1e-12 and abs(u[-1]) < 1e-12
    xc = pinn.collocation()
    assert xc.shape == (pinn.N_COLLOCATION,) and np.all(np.abs(xc) < 1) and np.all(xc != 0)
    # the names offered are kaun's
    assert set(pinn.SMOOTH) <= set(A.names()) and set(pinn.ACTIVATIONS) <= set(pinn.SMOOTH)


def test_demo(tmp_path: Path) -> None:
    gallery = tmp_path / "gallery.png"
    r = subprocess.run(
        [sys.executable, "-W", "error", "-m", "kaun.demo", "--gallery", str(gallery)],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("kaun.activation, float32, at x = ")
    for name in A.names():
        block = out.split(f"\n{name}", 1)[1].split("\n\n", 1)[0]
        backends = [line.split()[0] for line in block.splitlines()[1:]]
        assert backends == ["numpy", "torch", "jax", "dask", "array-api-strict"], (name, block)
        # every backend agrees with NumPy to a few float32 ulps
        for ulps in re.findall(r"(\S+) ulp from numpy", block):
            assert float(ulps) <= 4, (name, block)
    assert out.rstrip().endswith(f"wrote {gallery}: every function (solid) and its derivative "
                                 "(dashed)")
    assert imread(gallery).shape[:2] == (960, 1200)
    # make demo redraws the committed gallery, byte for byte
    assert gallery.read_bytes() == (ROOT / "docs" / "gallery.png").read_bytes()


def test_char_lm_quick() -> None:
    """examples/char_lm.py: kaun's GatedMLP and the torch composite learn the same curve (the
    same weights and batches: the losses agree to a few 1e-4), kaun's saves less for backward."""
    r = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "char_lm.py"), "--quick"],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines() if re.fullmatch(r"\s*\d+\s+\d+\.\d+\s+\d+\.\d+", line)]
    assert len(rows) >= 5
    first, last = rows[0], rows[-1]
    assert float(last[1]) < float(first[1]) - 1.0  # it learns (from ln 94 = 4.54)
    for _, comp, ours in rows:
        assert abs(float(comp) - float(ours)) < 2e-3, (comp, ours)
    m = re.search(r"saved memory (\d\.\d\d)", r.stdout)
    assert m is not None and float(m.group(1)) < 0.95, r.stdout
