"""JAX on the CPU through kaun's compiled kernels (an XLA FFI custom call: kaun._kernels.jaxffi).

* Bitwise NumPy's result: ``jax.jit(A.f)(x)`` and ``A.derivative(A.f, order=k)`` (k = 1, 2, 3) on
  a JAX array, for every elementwise function and dtype with the FFI lowering on (every
  function: the mechanism; the functions of ``jaxffi.FFI_FUNCTIONS`` take it by default), the
  custom call present in the HLO; ``grad`` and ``vmap`` through it.
* Hyper-parameters: run-time scalars (elu's alpha) and celu's constants reach the kernel.
* ``jax.export`` keeps the formula (a serialized module names no custom call).
* Off: ``KAUN_JAX_FFI=0`` in a subprocess gives the formula's lowering, and info() says so.
* The kernel is named by its library's file name and symbol, not an address: an executable
  from JAX's persistent compilation cache runs in a second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bits import bits, grid

import kaun.activation as A
from kaun._backends import _jax
from kaun._core import ENTRIES
from kaun._kernels import jaxffi

jax.config.update("jax_enable_x64", True)

pytestmark = pytest.mark.skipif(jaxffi.load() is None, reason=f"no FFI kernels: {jaxffi.state()['why']}")

ELEMENTWISE = [n for n, e in ENTRIES.items() if e.kind == "elementwise" and n != "prelu"]
DTYPES = ["float16", "bfloat16", "float32", "float64"]
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _fresh() -> None:
    jax.clear_caches()  # (JAX keeps the jitted functions' lowering: lower them again)
    _jax._JITTED.clear()


@pytest.fixture
def every() -> Iterator[None]:
    """The FFI lowering for every elementwise function (the mechanism, whatever the choice)."""
    keep = jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES
    every = frozenset(n for n, e in ENTRIES.items() if e.kind == "elementwise") | {"prelu_scalar"}
    jaxffi.FFI_FUNCTIONS = jaxffi.FFI_DERIVATIVES = every
    _fresh()
    yield
    jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES = keep
    _fresh()


def _hlo(f: Any, *args: Any) -> str:
    return str(jax.jit(f).lower(*args).as_text())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_value_and_derivatives_are_numpys_bits(every: None, name: str, dtype: str) -> None:
    f = getattr(A, name)
    x = grid(dtype, 1 << 12)
    xj = jnp.asarray(x)
    assert jaxffi.TARGET in _hlo(f, xj)
    assert (bits(jax.jit(f)(xj)) == bits(f(x))).all()
    for k in (1, 2, 3):
        d = A.derivative(f, order=k)
        want, got = d(x), d(xj)
        assert got.dtype == want.dtype
        assert (bits(got) == bits(want)).all(), f"order {k}"


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "mish", "softplus"])
def test_grad_and_vmap_through_the_kernels(every: None, name: str) -> None:
    f = getattr(A, name)
    x = grid("float32", 1 << 10)
    x = x[: x.size // 2 * 2].reshape(-1, 2)
    xj = jnp.asarray(x)
    g1 = jax.jit(jax.vmap(jax.vmap(jax.grad(f))))
    assert jaxffi.TARGET in _hlo(jax.vmap(jax.vmap(jax.grad(f))), xj)
    assert (bits(g1(xj)) == bits(A.derivative(f)(x))).all()
    g2 = jax.jit(jax.vmap(jax.vmap(jax.grad(jax.grad(f)))))
    assert (bits(g2(xj)) == bits(A.derivative(f, order=2)(x))).all()
    g3 = jax.jit(jax.vmap(jax.vmap(jax.grad(jax.grad(jax.grad(f))))))
    assert (bits(g3(xj)) == bits(A.derivative(f, order=3)(x))).all()


@pytest.mark.parametrize(("name", "kw"), [("elu", {"alpha": 2.5}), ("celu", {"alpha": 0.7}),
                                          ("leaky_relu", {"negative_slope": -0.3}),
                                          ("hard_sigmoid", {"alpha": 0.3, "beta": 0.2}),
                                          ("squareplus", {"b": 9.0}), ("squareplus", {"b": 0.0})])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_hyper_parameters_reach_the_kernel(every: None, name: str, kw: dict[str, float], dtype: str) -> None:
    f = getattr(A, name)
    x = grid(dtype, 1 << 10)
    got = jax.jit(lambda v: f(v, **kw))(jnp.asarray(x))
    assert (bits(got) == bits(f(x, **kw))).all()
    d = A.derivative(f)
    assert (bits(d(jnp.asarray(x), **kw)) == bits(d(x, **kw))).all()


def test_the_chosen_functions_take_the_ffi_by_default() -> None:
    _fresh()
    x = jnp.linspace(-3.0, 3.0, 64, dtype=jnp.float32)
    for name in ELEMENTWISE:
        f = getattr(A, name)
        assert (jaxffi.TARGET in _hlo(f, x)) == (name in jaxffi.FFI_FUNCTIONS), name
        d = A.derivative(f)
        assert (jaxffi.TARGET in _hlo(d, x)) == (name in jaxffi.FFI_DERIVATIVES), name
        if name in jaxffi.FFI_FUNCTIONS:
            xs = grid("float32", 1 << 10)
            assert (bits(jax.jit(f)(jnp.asarray(xs))) == bits(f(xs))).all()


def test_export_keeps_the_formula(every: None) -> None:
    x = jnp.linspace(-3.0, 3.0, 64, dtype=jnp.float32)
    exp = jax.export.export(jax.jit(A.gelu), platforms=["cpu"])(x)
    assert jaxffi.TARGET not in exp.mlir_module()
    again = jax.export.deserialize(exp.serialize())
    np.testing.assert_allclose(np.asarray(again.call(x)), A.gelu(np.asarray(x)), rtol=2e-7, atol=1e-30)


def _child(code: str, env: dict[str, str]) -> Any:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": SRC, **env}, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_off_gives_the_formula(tmp_path: Path) -> None:
    """KAUN_JAX_FFI=0: no custom call, the bits of the formula's lowering (as in this process
    with the FFI set empty), and info() says why."""
    name = "gelu_approx"  # (whatever the choice: compared with this process's formula lowering)
    x = grid("float32", 1 << 10)
    np.save(tmp_path / "x.npy", x)
    out = _child(f"""
        import json, jax, numpy as np
        import kaun.activation as A
        x = np.load({str(tmp_path / 'x.npy')!r})
        f = jax.jit(A.{name})
        y = np.asarray(f(x))
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print(json.dumps({{"hlo": "kaun_ffi_call" in f.lower(x).as_text(), "jax": A.info()["jax"]}}))
    """, {"KAUN_JAX_FFI": "0"})
    assert out["hlo"] is False
    assert out["jax"]["path"] == "formulas" and out["jax"]["why"] == "KAUN_JAX_FFI=0"
    keep = jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES
    jaxffi.FFI_FUNCTIONS = jaxffi.FFI_DERIVATIVES = frozenset()
    _fresh()
    try:
        want = jax.jit(getattr(A, name))(jnp.asarray(x))
    finally:
        jaxffi.FFI_FUNCTIONS, jaxffi.FFI_DERIVATIVES = keep
        _fresh()
    assert (bits(np.load(tmp_path / "y.npy")) == bits(want)).all()


def test_info_says_which_path_jax_takes() -> None:
    j = A.info()["jax"]
    assert j["path"] == "ffi" and j["why"] is None and j["functions"] == sorted(jaxffi.FFI_FUNCTIONS)
    assert j["derivatives"] == sorted(jaxffi.FFI_DERIVATIVES)


def test_info_imports_no_jax_and_builds_nothing(tmp_path: Path) -> None:
    """A program that never imports jax: info() neither imports it nor compiles the FFI handler
    (an empty cache stays without it); the CLI's `cache` loads it and says which path serves."""
    out = _child("""
        import json, sys
        import numpy as np, kaun.activation as A
        A.gelu(np.ones(3))
        j = A.info()["jax"]
        print(json.dumps({"jax": "jax" in sys.modules, "path": j["path"]}))
    """, {"KAUN_CACHE_DIR": str(tmp_path)})
    assert out == {"jax": False, "path": "pending"}, out
    assert not list(tmp_path.glob("jaxffi-*.so"))


def test_persistent_cache_reuses_the_executable_in_another_process(tmp_path: Path) -> None:
    """The custom call names its kernel by file name and symbol: a second process that takes
    the first's executable from JAX's persistent cache (a cache hit, counted) runs the kernel."""
    x = grid("float32", 1 << 12)
    np.save(tmp_path / "x.npy", x)
    code = f"""
        import json, jax, numpy as np
        from jax import monitoring
        hits = []
        monitoring.register_event_listener(lambda e, **kw: hits.append(e) if "cache_hits" in e else None)
        jax.config.update("jax_compilation_cache_dir", {str(tmp_path / 'xla')!r})
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        import kaun.activation as A
        from kaun._kernels import jaxffi
        jaxffi.FFI_FUNCTIONS = frozenset({{"mish"}})
        x = np.load({str(tmp_path / 'x.npy')!r})
        f = jax.jit(A.mish)
        assert "kaun_ffi_call" in f.lower(x).as_text()
        same = bool((np.asarray(f(x)).view(np.uint32) == A.mish(x).view(np.uint32)).all())
        print(json.dumps({{"hits": len(hits), "same": same}}))
    """
    first = _child(code, {})
    second = _child(code, {})
    assert first == {"hits": 0, "same": True}
    assert second["hits"] >= 1 and second["same"]


def test_sharded_arrays_keep_the_formula() -> None:
    """jit over 4 devices: the formula, shard by shard (a custom call's operand would be
    gathered onto every device), the sharding kept, within the bounds of NumPy's result."""
    out = _child("""
        import os
        os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
        import json, jax, jax.numpy as jnp, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import kaun.activation as A
        from kaun._kernels import jaxffi
        assert "silu" in jaxffi.FFI_FUNCTIONS
        mesh = Mesh(np.array(jax.devices()), ("d",))
        res = []
        for spec, shape in ((P("d"), (16,)), (P(None, "d"), (4, 8))):
            s = NamedSharding(mesh, spec)
            x = jax.device_put(jnp.linspace(-30, 30, 32, dtype=jnp.float32)[:int(np.prod(shape))]
                               .reshape(shape), s)
            y = A.silu(x)
            hlo = jax.jit(A.silu).lower(x).compile().as_text()
            want = A.silu(np.asarray(x))
            res.append([y.sharding.is_equivalent_to(s, len(shape)), "kaun_ffi_call" in hlo,
                        "all-gather" in hlo,
                        bool(np.allclose(np.asarray(y), want, rtol=4 * 2.0**-23, atol=0))])
        one = jax.device_put(jnp.linspace(-30, 30, 16, dtype=jnp.float32), jax.devices()[0])
        res.append("kaun_ffi_call" in jax.jit(A.silu).lower(one).as_text())
        print(json.dumps(res))
    """, {})
    assert out == [[True, False, False, True], [True, False, False, True], True]
