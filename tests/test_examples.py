"""examples/spirals.py and the demo run, and print what they say they print."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

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
