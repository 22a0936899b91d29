"""kaun as users install it: ``python -m build`` makes the sdist and, from it, the wheel; the wheel
installed (not editable) into a fresh virtual environment outside the repository serves its
prebuilt kernels without a compiler, compiles a level it does not carry, and falls back to the
formulas without either, each with the repository's bits (the formulas: within the bounds) and
saying so in ``kaun-activation cache``. The wheel here carries this machine's level only (its
libraries are copied from the cache that ``make`` filled); ``make wheel-check`` builds every
level and times the cases (benchmarks/wheel_check.py, docs/install.md)."""

from __future__ import annotations

import tarfile
from typing import Any

import numpy as np
import pytest
from bits import grid
from wheel_check import NEEDED_OK, build, listing, run_case, symbols, venv

import kaun.activation as A
from kaun import _kernels as K
from kaun._core import ALL

pytestmark = pytest.mark.skipif(not K.enabled() or K.arch() not in K.LEVELS,
                                reason="no C compiler, or an architecture without levels")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("wheel")
    sdist, wheel = build(tmp / "dist", K.detected_isa())
    _, pure = build(tmp / "dist-pure", "")
    data = tmp / "data"
    data.mkdir()
    ref = {}
    for dt in ("float32", "float64"):
        x = grid(dt)
        np.save(data / f"x-{dt}.npy", x)
        ref[dt] = np.stack([A.gelu(x), A.derivative(A.gelu)(x)])
    return {"tmp": tmp, "sdist": sdist, "wheel": wheel, "pure": pure, "data": data, "ref": ref,
            "py": venv(tmp / "venv", wheel), "py-pure": venv(tmp / "venv-pure", pure)}


def _case(inst: dict[str, Any], name: str, py: str, **env: str) -> dict[str, Any]:
    res = run_case(inst[py], name, inst["data"], inst["tmp"] / f"cache-{name}", reps=1, **env)
    assert res["file"].startswith(str(inst[py].parents[1])), res["file"]  # the wheel's kaun
    res["got"] = {dt: np.load(inst["data"] / f"{name}-{dt}.npy") for dt in inst["ref"]}
    return res


def test_the_distributions_carry_the_kernels(installed: dict[str, Any]) -> None:
    with tarfile.open(installed["sdist"]) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for f in ("runtime.c", "torchops.cpp", "jaxffi.cpp", "kmath.h", "kargs.h", "codegen.py"):
        assert f"src/kaun/_kernels/{f}" in names, f
    assert "setup.py" in names
    wheel = installed["wheel"]
    assert wheel.name.endswith(f"-cp311-abi3-manylinux_2_17_{K.arch()}.whl"), wheel.name
    files = listing(wheel)
    assert files[f"kaun/_kernels/prebuilt/{K.detected_isa()}"] >= len(K._work(list(ALL.values()), K.IO))
    assert files["kaun/_kernels/prebuilt/" + [n for n, _ in K.LEVELS[K.arch()]][-1]] == len(K.RUNTIME_VARIANTS)


def test_the_libraries_need_no_newer_c_library_than_the_tag(installed: dict[str, Any]) -> None:
    sym = symbols(installed["wheel"], installed["tmp"] / "syms")
    assert sym["libraries"] > 200
    assert sym["glibc"] is None or tuple(map(int, sym["glibc"][6:].split("."))) <= (2, 17), sym
    assert set(sym["needed"]) <= NEEDED_OK, sym


def test_prebuilt_without_a_compiler(installed: dict[str, Any]) -> None:
    # (no compiler at all: neither C, for the kernels, nor C++, for the torch and JAX operators)
    res = _case(installed, "prebuilt", "py", KAUN_CC="false", KAUN_CXX="false")
    assert res["info"]["path"] == "prebuilt", res["info"]
    assert res["cache_text"].startswith("prebuilt kernels serve NumPy, Dask and torch CPU arrays")
    for dt, want in installed["ref"].items():
        assert np.array_equal(res["got"][dt], want, equal_nan=True), dt
    assert not list((installed["tmp"] / "cache-prebuilt").glob("*.so"))  # nothing compiled


def test_the_pure_wheel_compiles_or_leaves_the_formulas(installed: dict[str, Any]) -> None:
    assert installed["pure"].name.endswith("-py3-none-any.whl"), installed["pure"].name
    assert "kaun/_kernels/prebuilt" not in " ".join(listing(installed["pure"]))
    res = _case(installed, "compiled", "py-pure")
    assert res["info"]["path"] == "compiled here", res["info"]
    assert res["cache_text"].startswith("kernels compiled on this machine serve")
    for dt, want in installed["ref"].items():
        assert np.array_equal(res["got"][dt], want, equal_nan=True), dt
    res = _case(installed, "formulas", "py-pure", KAUN_CC="false")
    assert res["info"]["path"] == "formulas", res["info"]
    assert "the C compiler /usr/bin/false failed (exit 1)" in res["info"]["why"], res["info"]
    assert res["cache_text"].startswith("no compiled kernels here: the formulas serve every array")
    for dt, want in installed["ref"].items():
        # each within the documented bound of the truth (4 ulp, derivatives 16): twice that apart
        # at most, in ulps of the value (of 1 below 1), as test_kernels.py checks the formulas
        fin = np.isfinite(want)
        assert np.array_equal(np.isfinite(res["got"][dt]), fin)
        with np.errstate(over="ignore"):  # (the spacing at the largest float is inf)
            u = np.spacing(np.maximum(np.abs(want[fin]), 1.0)).astype(np.float64)
        assert np.all(np.abs(res["got"][dt][fin] - want[fin]) <= 32 * u), dt
