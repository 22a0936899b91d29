"""Keras 3 (kaun.keras), on the JAX and torch backends.

The backend of Keras is chosen once per process (``KERAS_BACKEND``), so the round trips run in
subprocesses, one set per backend: a first process builds a functional model with every
function of ``kaun.activation.names(extras=True)`` three ways (``Dense(activation=A.<name>)``,
the layer ``kaun.keras.<Layer>`` with a non-default hyper-parameter, and ``kaun.keras.<name>``
called on the symbolic input; the gated ones also on two inputs by name; and ``GatedMLP``
layers), predicts, trains a small model, and saves both; a fresh process imports
``kaun.keras``, loads them and compares; a third loads without importing ``kaun.keras``. Each
function's outcome is its own test. The API checks (lookup by name, layer configs, errors,
symbolic shapes) run in this process on the JAX backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")  # (before keras is imported; the tests here)
import keras  # noqa: E402

import kaun.activation as A  # noqa: E402
import kaun.keras as KK  # noqa: E402
from kaun._core import ENTRIES, EXTRAS  # noqa: E402

BACKENDS = ("jax", "torch")
NAMES = A.names(extras=True)  # the 25, swish and hard_swish, and the six beyond the spec

# Keras's own internals (Variable.__array__ and the torch backend's np.array(tensor)) trip
# NumPy 2's DeprecationWarning about __array__'s copy keyword: not ours to fix.
PRELUDE = """
import json, os, sys, warnings
warnings.filterwarnings("error")
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning)
import numpy as np
import keras
"""

COMMON = """
X = np.array([[-1e4, -40.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0],
              [1e-3, -1e-3, 2.0, 3.0, 6.0, 7.5, 40.0, 1e4],
              [-7.5, -2.0, -1e-30, 1e-30, 0.25, 1.5, 2.5, 20.0]], np.float32)
PARAMS = {"leaky_relu": {"negative_slope": 0.2}, "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
          "elu": {"alpha": 1.5}, "celu": {"alpha": 0.7}, "squareplus": {"b": 2.5}}
ENTRY = {n: A.get(n)._kaun_entry.name for n in A.names(extras=True)}  # swish -> silu
SPLIT = [n for n in A.names(extras=True) if A.get(n)._kaun_entry.kind == "glu"]  # glu, swiglu, ...
GATED = [n for n in SPLIT if n != "glu"]  # these take gate= and up= too
INPUTS = {"x": X, "gate": X[:, 4:], "up": X[:, :4]}  # gate, up: the halves of x, by name
"""

SAVE = PRELUDE + """
import kaun.activation as A
import kaun.keras as KK
""" + COMMON + """
out = sys.argv[1]
res = {}

def dense(name, act):
    return keras.layers.Dense(8, activation=act, kernel_initializer="identity",
                              bias_initializer="zeros", name=name)

inp = keras.Input((8,), name="x")
gate, up = keras.Input((4,), name="gate"), keras.Input((4,), name="up")
outs = {}
for n in A.names(extras=True):
    p = PARAMS.get(n, {})
    if n == "prelu":
        outs[n + "__layer"] = KK.PReLU(name=n + "__layer")(inp)
        outs[n + "__symbolic"] = KK.prelu(inp, 0.1)
        outs[n + "__get"] = dense(n + "__get", KK.get("prelu", alpha=0.3))(inp)
    elif n in SPLIT:
        outs[n + "__layer"] = KK.LAYERS[n](axis=-1, name=n + "__layer")(inp)
        outs[n + "__symbolic"] = getattr(KK, n)(inp, axis=-1)
        outs[n + "__get"] = KK.get(n, axis=-1)(inp)
        if n in GATED:  # by name: the same numbers as the split
            outs[n + "__named"] = getattr(KK, n)(gate=gate, up=up)
            outs[n + "__layernamed"] = KK.LAYERS[n](name=n + "__layernamed")(gate=gate, up=up)
    else:
        outs[n + "__function"] = dense(n + "__function", getattr(A, n))(inp)
        outs[n + "__layer"] = KK.LAYERS[n](**p, name=n + "__layer")(inp)
        outs[n + "__symbolic"] = getattr(KK, n)(inp, **p)
        outs[n + "__get"] = dense(n + "__get", KK.get(n.upper().replace("_", "-"), **p))(inp)
    res[n] = {"serialized": keras.activations.serialize(getattr(A, n)),
              "shape": list(outs[n + "__symbolic"].shape)}
for act in ("swiglu", "geglu_approx"):
    outs["__mlp__" + act] = KK.GatedMLP(16, act, name="mlp_" + act)(inp)
model = keras.Model({"x": inp, "gate": gate, "up": up}, outs)
pred = model.predict(INPUTS, verbose=0)
np.savez(os.path.join(out, "pred.npz"), **pred)
model.save(os.path.join(out, "all.keras"))

# a short training run: Dense layers with kaun activations and a learnable PReLU
rng = np.random.default_rng(0)
xt = rng.uniform(-2, 2, size=(256, 2)).astype(np.float32)
yt = (np.sin(2 * xt[:, :1]) * xt[:, 1:] + 0.5 * xt[:, :1]).astype(np.float32)
keras.utils.set_random_seed(0)
net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation=A.gelu),
                        KK.PReLU(name="prelu"), keras.layers.Dense(32, activation=A.mish),
                        KK.Squareplus(b=1.0), keras.layers.Dense(1)])
net.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
hist = net.fit(xt, yt, epochs=40, batch_size=64, verbose=0).history["loss"]
res["__train__"] = {"first": hist[0], "last": hist[-1],
                    "alpha_moved": float(np.abs(keras.ops.convert_to_numpy(
                        net.get_layer("prelu").alpha) - 0.25).max())}
np.save(os.path.join(out, "trained_pred.npy"), net.predict(xt[:16], verbose=0))
np.save(os.path.join(out, "trained_x.npy"), xt[:16])
net.save(os.path.join(out, "trained.keras"))

if keras.backend.backend() == "torch":  # Keras's ONNX export (torch.onnx), run in ONNX Runtime
    import onnxruntime as ort
    with warnings.catch_warnings():
        # Keras exports a dynamic batch with torch's legacy exporter, which says it is legacy
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript-based",
                                category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed",
                                category=DeprecationWarning)
        # its tracer warns about each Python bool taken of a traced size (kaun's shape checks,
        # recorded as constants); Keras means to silence these but its filters end before the
        # export starts (keras 3.15)
        import torch
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        net.export(os.path.join(out, "trained.onnx"), format="onnx", verbose=False)
    sess = ort.InferenceSession(os.path.join(out, "trained.onnx"),
                                providers=["CPUExecutionProvider"])
    y = sess.run(None, {sess.get_inputs()[0].name: xt[:16]})[0]
    want = net.predict(xt[:16], verbose=0)
    res["__export__"] = {"max_abs": float(np.abs(y - want).max()),
                         "scale": float(np.abs(want).max())}
print(json.dumps(res))
"""

LOAD = PRELUDE + """
import kaun.activation as A
import kaun.keras as KK
""" + COMMON + """
out = sys.argv[1]
model = keras.models.load_model(os.path.join(out, "all.keras"))
saved = np.load(os.path.join(out, "pred.npz"))
pred = model.predict(INPUTS, verbose=0)
xb = keras.ops.convert_to_tensor(X)
ulp = np.spacing(np.float32(1.0))

def within(y, want, ulps=4.0):
    y, want = np.asarray(y, np.float64), np.asarray(want, np.float64)
    tol = ulps * np.spacing(np.maximum(np.abs(want), 1e-37).astype(np.float32)).astype(np.float64)
    return bool(np.all(np.abs(y - want) <= tol))

def kaun(n, **p):
    if n == "prelu":
        a = p.get("alpha", 0.25)
        return keras.ops.convert_to_numpy(A.prelu(xb, a))
    return keras.ops.convert_to_numpy(getattr(A, n)(xb, **p))

res = {}
for n in A.names(extras=True):
    p = PARAMS.get(n, {})
    r = res[n] = {}
    for way in ("function", "layer", "symbolic", "get", "named", "layernamed"):
        key = f"{n}__{way}"
        if key not in saved.files:
            continue
        r[way + "_same_as_saved"] = bool(np.array_equal(pred[key], saved[key]))
        kw = {"function": {}, "layer": p, "symbolic": p, "get": p, "named": p, "layernamed": p}[way]
        if n == "prelu":
            kw = {"layer": {"alpha": 0.25}, "symbolic": {"alpha": 0.1}, "get": {"alpha": 0.3}}[way]
        r[way + "_is_kaun"] = within(pred[key], kaun(n, **kw))
    fn = model.get_layer(n + "__function").activation if n != "prelu" and n not in SPLIT else None
    r["loaded_function"] = None if fn is None else fn is KK.get(ENTRY[n])
    lay = model.get_layer(n + "__layer")
    r["loaded_layer"] = type(lay) is KK.LAYERS[n]
    r["layer_config"] = {k: v for k, v in lay.get_config().items() if k in
                         ("negative_slope", "alpha", "beta", "b", "axis")}
    if n in GATED:
        r["named_layer"] = type(model.get_layer(n + "__layernamed")) is KK.LAYERS[n]

for act in ("swiglu", "geglu_approx"):  # GatedMLP: down(act(gate_up(x))), its Dense weights
    lay = model.get_layer("mlp_" + act)
    w1 = keras.ops.convert_to_numpy(lay.gate_up.kernel).astype(np.float64)
    w2 = keras.ops.convert_to_numpy(lay.down.kernel).astype(np.float64)
    want = getattr(A, act)(X.astype(np.float64) @ w1) @ w2
    key = "__mlp__" + act
    res[key] = {"loaded": type(lay) is KK.GatedMLP, "activation": lay.get_config()["activation"],
                "same_as_saved": bool(np.array_equal(pred[key], saved[key])),
                "shapes": [list(w1.shape), list(w2.shape)], "use_bias": lay.gate_up.use_bias,
                "close": bool(np.allclose(pred[key], want, rtol=1e-4, atol=1e-3))}

net = keras.models.load_model(os.path.join(out, "trained.keras"))
want = np.load(os.path.join(out, "trained_pred.npy"))
res["__train__"] = {"same_as_saved": bool(np.array_equal(
    net.predict(np.load(os.path.join(out, "trained_x.npy")), verbose=0), want)),
    "prelu_is_kaun": type(net.get_layer("prelu")) is KK.PReLU}
print(json.dumps(res))
"""

NO_IMPORT = PRELUDE + """
out = sys.argv[1]
try:
    keras.models.load_model(os.path.join(out, "all.keras"))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
else:
    print(json.dumps({"error": None}))
print("kaun" in sys.modules, file=sys.stderr)
"""


def _run(script: str, backend: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "KERAS_BACKEND": backend, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(script), str(out)],
                       capture_output=True, text=True, check=False, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module", params=BACKENDS)
def round_trip(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
               ) -> dict[str, Any]:
    backend: str = request.param
    out = tmp_path_factory.mktemp(f"keras-{backend}")
    saved = _run(SAVE, backend, out)
    loaded = _run(LOAD, backend, out)
    bare = _run(NO_IMPORT, backend, out)
    return {"backend": backend, "saved": saved, "loaded": loaded, "bare": bare}


@pytest.mark.parametrize("name", NAMES)
def test_round_trip(round_trip: dict[str, Any], name: str) -> None:
    """Saved under kaun's registered name, loaded (fresh process) as kaun's function or layer,
    the same predictions bit for bit, and kaun's numbers (not Keras's namesake's)."""
    entry = A.get(name)._kaun_entry  # type: ignore[attr-defined]
    saved, loaded = round_trip["saved"][name], round_trip["loaded"][name]
    if entry.kind == "elementwise":
        ser = saved["serialized"]  # (a bare name would be Keras's namesake on loading)
        assert isinstance(ser, dict) and ser.get("config") == f"kaun>{entry.name}", ser
        assert loaded["loaded_function"] is True
    assert saved["shape"] == [None, 4 if entry.kind == "glu" else 8]
    assert loaded["loaded_layer"] is True
    if entry.kind == "glu" and entry.name != "glu":
        assert loaded["named_layer"] is True
        assert loaded["named_same_as_saved"] and loaded["layernamed_is_kaun"]
    checks = {k: v for k, v in loaded.items() if k.endswith(("_same_as_saved", "_is_kaun"))}
    assert checks and all(checks.values()), checks
    want = {"leaky_relu": {"negative_slope": 0.2}, "hard_sigmoid": {"alpha": 0.2, "beta": 0.4},
            "elu": {"alpha": 1.5}, "celu": {"alpha": 0.7}, "squareplus": {"b": 2.5},
            }.get(entry.name, {"axis": -1} if entry.kind == "glu" else {})
    assert {k: v for k, v in loaded["layer_config"].items() if k != "alpha" or want} == want


@pytest.mark.parametrize("act", ["swiglu", "geglu_approx"])
def test_gated_mlp_round_trip(round_trip: dict[str, Any], act: str) -> None:
    """kaun.keras.GatedMLP saved and loaded (fresh process): the same predictions, and
    ``down(act(gate_up(x)))`` of its own Dense kernels (no bias)."""
    r = round_trip["loaded"]["__mlp__" + act]
    assert r == {"loaded": True, "activation": act, "same_as_saved": True,
                 "shapes": [[8, 32], [16, 8]], "use_bias": False, "close": True}


def test_training_and_the_trained_model_round_trip(round_trip: dict[str, Any]) -> None:
    t = round_trip["saved"]["__train__"]
    assert t["last"] < 0.3 * t["first"], t
    assert t["alpha_moved"] > 1e-3  # the PReLU's alpha learned
    assert round_trip["loaded"]["__train__"] == {"same_as_saved": True, "prelu_is_kaun": True}


def test_onnx_export_of_a_keras_model(round_trip: dict[str, Any]) -> None:
    """Keras's model.export(format="onnx"): with the torch backend through torch.onnx (its
    legacy TorchScript exporter for a dynamic batch), run in ONNX Runtime. (The JAX backend's
    needs jax2onnx, not in the test environment.)"""
    if round_trip["backend"] != "torch":
        assert "__export__" not in round_trip["saved"]
        return
    e = round_trip["saved"]["__export__"]
    assert e["max_abs"] <= 1e-5 * e["scale"], e  # (Gemm sums in another order than torch)


def test_loading_without_kaun_keras_is_an_error(round_trip: dict[str, Any]) -> None:
    """Keras refuses a registered name it cannot find: never Keras's namesake, silently."""
    bare = round_trip["bare"]
    assert bare["error"] == "TypeError", bare
    assert "Could not locate" in bare["message"] and "kaun>" in bare["message"], bare


# ---- the API, in this process (the JAX backend) ---------------------------------------------------


def test_get_by_kaun_names_and_aliases() -> None:
    assert KK.get("gelu") is KK.gelu and KK.get("kaun>gelu") is KK.gelu
    assert KK.get("hardswish") is KK.hard_silu is KK.hard_swish
    assert KK.get("swish") is KK.silu and KK.get("GELU-new") is KK.gelu_approx
    layer = KK.get("leaky_relu", negative_slope=0.2)
    assert isinstance(layer, KK.Activation)
    assert layer.get_config()["activation"] == "leaky_relu"
    assert layer.get_config()["negative_slope"] == 0.2
    with pytest.raises(ValueError, match=r"kaun.keras.get: unknown activation 'gelo'.*'gelu'"):
        KK.get("gelo")


def test_registered_names_and_serialization() -> None:
    objects = keras.saving.get_custom_objects()
    for n in [*ENTRIES, *EXTRAS]:
        assert objects[f"kaun>{n}"] is getattr(KK, n)
        assert keras.saving.get_registered_name(getattr(A, n)) == f"kaun>{n}"
        cfg = keras.activations.serialize(getattr(A, n))
        assert keras.activations.deserialize(cfg) is getattr(KK, n)
    for n, cls in KK.LAYERS.items():
        assert objects[f"kaun>{cls.__name__}"] is cls, n


def test_functions_are_kaun_on_arrays() -> None:
    x = keras.ops.convert_to_tensor(np.array([-1e4, -1.0, 0.0, 2.0], np.float32))
    np.testing.assert_array_equal(np.asarray(KK.squareplus(x)), np.asarray(A.squareplus(x)))
    assert float(KK.squareplus(x)[0]) == pytest.approx(1e-4, rel=1e-6)  # Keras's gives 0
    np.testing.assert_array_equal(np.asarray(KK.leaky_relu(x, negative_slope=0.5)),
                                  np.asarray(A.leaky_relu(x, negative_slope=0.5)))


def test_symbolic_tensors() -> None:
    inp = keras.Input((6, 4))
    assert KK.gelu(inp).shape == (None, 6, 4)
    assert KK.glu(inp, axis=1).shape == (None, 3, 4)
    assert KK.GLU(axis=-1)(inp).shape == (None, 6, 2)
    assert KK.prelu(inp, 0.2).shape == (None, 6, 4)
    assert KK.PReLU(shared_axes=[1])(inp).shape == (None, 6, 4)
    with pytest.raises(ValueError, match="kaun.activation.glu: the size 3"):
        KK.GLU(axis=1)(keras.Input((3, 4)))
    with pytest.raises(TypeError, match=r"kaun.activation.gelu: x must be an array.*"
                                        r"use kaun.keras.gelu"):
        A.gelu(inp)
    with pytest.raises(TypeError, match="kaun.keras.prelu: on a symbolic tensor alpha"):
        KK.prelu(inp, keras.Input((4,)))


def test_gated_functions_and_layers() -> None:
    """The gated functions beyond the spec: the split (an axis, as glu) or gate= and up= by
    name, on arrays and symbolic tensors; the elementwise ones as any function."""
    inp = keras.Input((6, 4))
    assert KK.swiglu(inp, axis=1).shape == (None, 3, 4)
    assert KK.GeGLU(axis=-1)(inp).shape == (None, 6, 2)
    assert KK.reglu(gate=inp, up=inp).shape == (None, 6, 4)
    assert KK.GeGLUApprox()(gate=inp, up=inp).shape == (None, 6, 4)
    assert KK.relu_squared(inp).shape == KK.QuickGELU()(inp).shape == (None, 6, 4)
    assert KK.GatedMLP(16)(inp).shape == (None, 6, 4)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
    xb = keras.ops.convert_to_tensor(x)
    for n in ("swiglu", "geglu", "geglu_approx", "reglu"):
        want = np.asarray(getattr(A, n)(xb))
        np.testing.assert_array_equal(np.asarray(getattr(KK, n)(xb)), want)
        np.testing.assert_array_equal(np.asarray(getattr(KK, n)(gate=xb[:, 4:], up=xb[:, :4])), want)
        np.testing.assert_array_equal(np.asarray(KK.LAYERS[n]()(gate=xb[:, 4:], up=xb[:, :4])), want)
        assert KK.get(n) is getattr(KK, n) and KK.LAYERS[n]().get_config()["axis"] == -1
    assert KK.get("relu2") is KK.relu_squared and KK.get("quickgelu") is KK.quick_gelu
    np.testing.assert_array_equal(np.asarray(KK.ReLUSquared()(xb)), np.asarray(A.relu_squared(xb)))
    with pytest.raises(ValueError, match="kaun.activation.swiglu: the size 3"):
        KK.SwiGLU(axis=1)(keras.Input((3, 4)))
    with pytest.raises(TypeError, match="kaun.activation.reglu: axis must be an int"):
        KK.ReGLU(axis="a")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kaun.activation.glu: takes one input"):
        KK.GLU()(gate=xb, up=xb)
    with pytest.raises(ValueError, match="kaun.keras.GatedMLP: activation must be a gated"):
        KK.GatedMLP(8, "gelu")
    with pytest.raises(ValueError, match="kaun.keras.GatedMLP: hidden must be a positive int"):
        KK.GatedMLP(0)
    mlp = KK.GatedMLP(8, "ReGLU", use_bias=True)
    y = mlp(x)
    assert y.shape == (3, 8) and mlp.get_config()["activation"] == "reglu"
    assert [tuple(w.shape) for w in mlp.weights] == [(8, 16), (16,), (8, 8), (8,)]


def test_layers_check_their_hyper_parameters() -> None:
    with pytest.raises(ValueError, match="kaun.activation.leaky_relu: negative_slope must be finite"):
        KK.LeakyReLU(negative_slope=float("nan"))
    with pytest.raises(ValueError, match="kaun.activation.squareplus: b must be >= 0"):
        KK.Squareplus(b=-1.0)
    with pytest.raises(ValueError, match="kaun.activation.celu: alpha must be nonzero"):
        KK.Activation("celu", alpha=0.0)
    with pytest.raises(TypeError, match="kaun.activation.glu: axis must be an int"):
        KK.GLU(axis=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="kaun.keras.Activation: prelu needs alpha"):
        KK.Activation("prelu")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to ELU"):
        KK.ELU(negative_slope=0.2)  # type: ignore[call-arg]


def test_layer_configs_round_trip() -> None:
    for layer in (KK.LeakyReLU(negative_slope=0.3), KK.HardSigmoid(alpha=0.25, beta=0.4),
                  KK.CELU(alpha=0.7), KK.Squareplus(b=0.0), KK.GLU(axis=1), KK.GELU(),
                  KK.Activation("hard_swish"), KK.Activation("prelu", alpha=0.2),
                  KK.PReLU(shared_axes=[1]), KK.SwiGLU(axis=1), KK.GeGLUApprox(), KK.ReLUSquared(),
                  KK.QuickGELU(), KK.GatedMLP(8, "geglu", use_bias=True)):
        cfg = keras.layers.serialize(layer)
        again = keras.layers.deserialize(cfg)
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


def test_prelu_layer_gradient_reaches_alpha() -> None:
    import jax

    layer = KK.PReLU()
    x = np.array([[-2.0, 3.0], [-1.0, -4.0]], np.float32)
    layer.build(x.shape)
    assert np.allclose(np.asarray(layer.alpha.value), 0.25)

    def loss(alpha: Any) -> Any:
        return A.prelu(jax.numpy.asarray(x), alpha).sum()

    g = jax.grad(loss)(layer.alpha.value)
    np.testing.assert_array_equal(np.asarray(g), [-3.0, -4.0])  # min(0, x) summed over the batch
    np.testing.assert_array_equal(np.asarray(layer(x)), [[-0.5, 3.0], [-0.25, -1.0]])
