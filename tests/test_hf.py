"""kaun.hf: kaun's activations in Hugging Face transformers models, kept through save and load.

Real transformers, tiny models built from configs (no downloads): after ``use_kaun`` the model's
activation modules are kaun.nn's and its loss is the same; a saved model loads with kaun's
modules in a fresh process that imports ``kaun.hf``, and fails with ``KeyError: 'kaun_silu'`` in
one that does not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)
from transformers.activations import ACT2CLS, ACT2FN

import kaun.hf as H
import kaun.nn as KN

# transformers' names that kaun.hf leaves (kaun does not compute these functions)
UNMAPPED = {"gelu_10", "laplace", "linear", "sqrtsoftplus", "xielu"}


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, bos_token_id=0, eos_token_id=1,
        pad_token_id=2)).eval()


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=64,
                                      bos_token_id=0, eos_token_id=1)).eval()


def _bert() -> BertForMaskedLM:
    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=64,
                                      pad_token_id=0)).eval()


IDS = torch.randint(3, 64, (2, 12), generator=torch.Generator().manual_seed(1))


def test_register_adds_every_elementwise_function_idempotently() -> None:
    H.register()
    H.register()
    names = {n for n in ACT2CLS if n.startswith("kaun_")}
    assert names == set(H.ACTIVATIONS) == {"kaun_" + n for n, c in KN.MODULES.items()} - {
        "kaun_glu", "kaun_swiglu", "kaun_geglu", "kaun_geglu_approx", "kaun_reglu"}
    assert {"kaun_silu", "kaun_gelu", "kaun_gelu_approx", "kaun_quick_gelu", "kaun_relu_squared"} <= names
    for name in names:
        assert type(ACT2FN[name]) is H.ACTIVATIONS[name] is KN.MODULES[name[len("kaun_"):]]
    assert isinstance(ACT2FN["kaun_swish"], KN.SiLU)


def test_import_kaun_activation_does_not_import_kaun_hf() -> None:
    code = "import sys, kaun.activation, kaun.nn; print('kaun.hf' in sys.modules, 'transformers' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       timeout=300)
    assert r.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("hf_name", sorted(H.HF_TO_KAUN))
def test_each_mapping_is_the_same_function(hf_name: str, dtype: torch.dtype) -> None:
    """transformers' module and kaun's give the same values (to rounding; where they differ more,
    kaun's are the accurate ones: GELU's negative tail, here kept to x >= -5 with atol).
    gelu_fast's constant is sqrt(2/pi) to 10 digits: 1e-12 off kaun's gelu_approx in float64,
    nothing in float32."""
    if hf_name not in ACT2CLS:
        pytest.skip(f"this transformers has no {hf_name!r}")
    x = torch.cat([torch.linspace(-5.0, 12.0, 4001, dtype=dtype),
                   torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-3, -1e-3], dtype=dtype)])
    theirs = ACT2FN[hf_name].to(dtype)
    ours = ACT2FN["kaun_" + H.HF_TO_KAUN[hf_name]].to(dtype)
    with torch.no_grad():
        tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 4e-6, "atol": 1e-6}
        if hf_name == "gelu_fast" and dtype == torch.float64:
            tol = {"rtol": 0.0, "atol": 1e-12}
        torch.testing.assert_close(ours(x), theirs(x), **tol)


def test_every_transformers_name_is_mapped_or_known_to_be_left() -> None:
    """A name a newer transformers adds fails here until it is checked and mapped (or listed)."""
    theirs = {n for n in ACT2CLS if not n.startswith("kaun_")}
    assert theirs - set(H.HF_TO_KAUN) == UNMAPPED & theirs, sorted(theirs - set(H.HF_TO_KAUN))


@pytest.mark.parametrize(("make", "field", "cls", "rtol"), [
    (_llama, "hidden_act", KN.SiLU, 1e-6),
    (_gpt2, "activation_function", KN.GELUApprox, 1e-6),
    (_bert, "hidden_act", KN.GELU, 1e-6),
], ids=["llama", "gpt2", "bert"])
def test_use_kaun_swaps_the_modules_and_keeps_the_loss(make: Any, field: str, cls: type,
                                                        rtol: float) -> None:
    model = make()
    old = getattr(model.config, field)
    old_cls = type(ACT2FN[old])
    before = model(input_ids=IDS, labels=IDS).loss.detach()
    assert H.use_kaun(model) is model
    assert getattr(model.config, field) == "kaun_" + H.HF_TO_KAUN[old]
    acts = [m for m in model.modules() if isinstance(m, (cls, old_cls))]
    assert acts and all(type(m) is cls for m in acts)
    assert f"kaun.nn.{cls.__name__}()" in repr(model)
    model.train()
    loss = model(input_ids=IDS, labels=IDS).loss
    model.eval()
    torch.testing.assert_close(model(input_ids=IDS, labels=IDS).loss.detach(), before, rtol=rtol, atol=0)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert H.use_kaun(model) is model  # again: nothing left to change
    assert getattr(model.config, field) == "kaun_" + H.HF_TO_KAUN[old]


def test_use_kaun_on_a_config_and_the_names_it_leaves() -> None:
    config = GPT2Config(activation_function="gelu_new", summary_activation="tanh")
    assert H.use_kaun(config) is config
    assert config.activation_function == "kaun_gelu_approx" and config.summary_activation == "kaun_tanh"
    # a field that is not an activation keeps its value, whatever the word
    config = GPT2Config(activation_function="gelu", summary_type="tanh", position_kind="relu")
    H.use_kaun(config)
    assert config.activation_function == "kaun_gelu"
    assert config.summary_type == "tanh" and config.position_kind == "relu"
    config = LlamaConfig(hidden_act="gelu_10")
    with pytest.warns(UserWarning, match=r"kaun\.hf\.use_kaun: left as transformers'.*hidden_act='gelu_10'"):
        H.use_kaun(config)
    assert config.hidden_act == "gelu_10"
    with pytest.raises(TypeError, match=r"kaun\.hf\.use_kaun: expected a transformers model"):
        H.use_kaun(torch.nn.Linear(2, 2))


def test_a_torch_module_the_model_built_itself_with_other_parameters_is_left() -> None:
    model = _llama()
    model.model.layers[0].mlp.act_fn = torch.nn.LeakyReLU(0.2)
    model.model.layers[1].mlp.act_fn = torch.nn.LeakyReLU()
    model.config.hidden_act = "leaky_relu"
    H.use_kaun(model)
    assert type(model.model.layers[0].mlp.act_fn) is torch.nn.LeakyReLU
    assert type(model.model.layers[1].mlp.act_fn) is KN.LeakyReLU


def _run(code: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(out)], capture_output=True,
                       text=True, check=False, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hf")
    model = H.use_kaun(_llama())
    model.save_pretrained(out)
    with torch.no_grad():
        torch.save({"ids": IDS, "logits": model(input_ids=IDS).logits}, out / "ref.pt")
    return out


def test_saved_config_names_kaun(saved: Path) -> None:
    assert json.loads((saved / "config.json").read_text())["hidden_act"] == "kaun_silu"


def test_load_in_a_fresh_process_with_kaun_hf(saved: Path) -> None:
    got = _run("""
        import json, sys, torch
        import kaun.hf, kaun.nn
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
        ref = torch.load(sys.argv[1] + "/ref.pt")
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ref["ids"]).logits, ref["logits"], rtol=0, atol=0)
        acts = [type(l.mlp.act_fn).__module__ + "." + type(l.mlp.act_fn).__name__ for l in model.model.layers]
        print(json.dumps({"acts": acts, "repr": "(act_fn): kaun.nn.SiLU()" in repr(model)}))
    """, saved)
    assert got == {"acts": ["kaun.nn.SiLU", "kaun.nn.SiLU"], "repr": True}


def test_load_in_a_fresh_process_without_kaun_hf_fails_clearly(saved: Path) -> None:
    got = _run("""
        import json, sys
        from transformers import AutoModelForCausalLM
        try:
            AutoModelForCausalLM.from_pretrained(sys.argv[1])
        except Exception as e:
            print(json.dumps({"error": type(e).__name__, "message": str(e)}))
        else:
            print(json.dumps({"error": None}))
    """, saved)
    assert got == {"error": "KeyError", "message": "'kaun_silu'"}

