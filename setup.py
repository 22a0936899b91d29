"""The build's one step beyond pyproject.toml: prebuilt kernel libraries in the wheel.

With ``KAUN_PREBUILT`` set (``all``: every instruction-set level of the build machine's
architecture, x86-64-v2/v3/v4 on x86-64; or a comma-separated list of levels), the wheel carries
every kernel library of every function, form and dtype for those levels, and the runtime (the
stable ABI's CPython extension and a ctypes library, with and without OpenMP), compiled by the
same codegen as on a user's machine (``kaun._kernels.build_all``) into
``kaun/_kernels/prebuilt/<level>/``. The wheel is then tagged for the platform
(``cp311-abi3-manylinux_2_17_<arch>``: every library needs at most GLIBC_2.14, checked by
tests/test_wheel.py). Without it the wheel is pure Python and its kernels are compiled on first
use, as from the repository (``make wheel`` sets it; see the README's "Install").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
GLIBC = "2_17"  # the manylinux tag's glibc: at or above what the libraries need


def _levels() -> tuple[str, ...]:
    want = os.environ.get("KAUN_PREBUILT", "").strip()
    if not want or want == "0":
        return ()
    sys.path.insert(0, str(HERE / "src"))
    from kaun import _kernels as K

    names = tuple(n for n, _ in K.LEVELS.get(K.arch(), ()))
    if want in ("1", "all"):
        return tuple(n for n in names if n != "x86-64")  # (x86-64-v2 is the oldest in use)
    levels = tuple(v.strip() for v in want.split(",") if v.strip())
    bad = [v for v in levels if v not in names]
    if bad:
        raise SystemExit(f"KAUN_PREBUILT: {bad} not among {K.arch()}'s levels {names}")
    return levels


class BuildPy(build_py):
    """build_py, then the prebuilt libraries into the build's package folder."""

    def run(self) -> None:
        super().run()
        levels = _levels()
        if not levels or self.editable_mode:
            return
        import kaun.activation  # noqa: F401  (fills ALL)
        from kaun import _kernels as K
        from kaun._core import ALL

        into = Path(self.build_lib) / "kaun" / "_kernels" / "prebuilt"
        n = K.build_all(list(ALL.values()), levels=levels, into=into,
                        progress=None if self.verbose < 2 else print)
        print(f"kaun: {n} prebuilt libraries for {', '.join(levels)} in {into}")


class BdistWheel(bdist_wheel):
    """A platform wheel when it carries prebuilt libraries, the stable ABI's extension among
    them; a pure one otherwise."""

    def finalize_options(self) -> None:
        if _levels():  # (what makes setuptools install into platlib and tag the root impure)
            self.distribution.has_ext_modules = lambda: True  # type: ignore[method-assign]
        super().finalize_options()

    def get_tag(self) -> tuple[str, str, str]:
        if not _levels():
            return super().get_tag()
        from kaun import _kernels as K

        return "cp311", "abi3", f"manylinux_{GLIBC}_{K.arch()}"


setup(cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel})
