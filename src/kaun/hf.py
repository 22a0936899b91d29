"""Hugging Face transformers with kaun's activations, kept through ``save_pretrained``.

A transformers model builds its activations from a name in its config (``hidden_act="silu"``)
through ``transformers.activations.ACT2FN``, so a module swapped in by hand is gone after
``save_pretrained`` / ``from_pretrained``. This module registers kaun's modules there under
kaun's names with the prefix ``kaun_`` (``kaun_silu``, ``kaun_gelu``, ``kaun_gelu_approx``, ...)
and rewrites a config to them::

    import kaun.hf                       # registers kaun_* in ACT2FN (register(), idempotent)

    model = kaun.hf.use_kaun(model)      # config -> kaun_* names; the activation modules -> kaun.nn's
    model.save_pretrained("out")         # config.json says "hidden_act": "kaun_silu"

    same = AutoModelForCausalLM.from_pretrained("out")   # kaun's modules again (after import kaun.hf)

Loading a model whose config names a ``kaun_*`` activation needs ``import kaun.hf`` first, in
that process: without it transformers raises ``KeyError: 'kaun_silu'`` (from ``ACT2FN``) while
it builds the model. The fix is ``import kaun.hf`` before ``from_pretrained``.

``use_kaun`` rewrites only the names of ``HF_TO_KAUN``: transformers' names of functions kaun
computes (the same function with the same hyper-parameters, within rounding; kaun's values are
the accurate ones where they differ, e.g. GELU's negative tail). A config field that names
another activation (``gelu_10``, ``linear``, ``xielu``, ...) is left as it is and named in a
``UserWarning``. This module imports torch and transformers (``pip install 'kaun[hf]'``);
``import kaun.activation`` does not import it. docs/frameworks.md has the whole story.
"""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

import torch
from transformers import activations as _hf_act
from transformers.configuration_utils import PretrainedConfig

import kaun.activation as A
import kaun.nn as KN

__all__ = ["PREFIX", "HF_TO_KAUN", "ACTIVATIONS", "register", "use_kaun"]

PREFIX = "kaun_"

HF_TO_KAUN: dict[str, str] = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_approx",
    "gelu_fast": "gelu_approx",  # (its constant is sqrt(2/pi) to 10 digits: 1e-12 off in float64)
    "gelu_accurate": "gelu_approx",
    "gelu_pytorch_tanh": "gelu_approx",
    "gelu_python_tanh": "gelu_approx",
    "quick_gelu": "quick_gelu",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
    "relu2": "relu_squared",
    "relu6": "relu6",
    "leaky_relu": "leaky_relu",  # torch.nn.LeakyReLU(): negative_slope 0.01, as kaun's default
    "hardswish": "hard_silu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "mish": "mish",
    "prelu": "prelu",  # torch.nn.PReLU(): one alpha, 0.25, as kaun.nn.PReLU()
}
"""transformers' activation names -> the kaun function that computes the same function (each
checked against transformers' own module, tests/test_hf.py). Not here: ``gelu_10`` (clipped),
``laplace``, ``linear`` (the identity), ``sqrtsoftplus``, ``xielu`` (learnable), which kaun does
not compute."""

ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    PREFIX + name: cls
    for name, cls in KN.MODULES.items()
    if getattr(A.get(name), "_kaun_entry").kind != "glu"  # noqa: B009
}
"""The names ``register`` adds to ``ACT2FN`` (``kaun_`` and each elementwise function of
``kaun.activation.names(extras=True)``) -> the ``kaun.nn`` module class each builds. The gated
functions (``glu``, ``swiglu``, ...) halve their input, which no transformers model expects of
its ``ACT2FN`` activation, so they are not registered."""

# config attributes that name an activation, whatever their value (a value that is not a name
# of HF_TO_KAUN is reported in a warning); any other string attribute is rewritten only where
# its value is a name of HF_TO_KAUN
_ACT_FIELDS = ("hidden_act", "activation_function", "hidden_activation")


def register() -> None:
    """Add ``ACTIVATIONS`` to transformers' ``ACT2CLS`` and ``ACT2FN`` (idempotent). ``import
    kaun.hf`` calls it."""
    for name, cls in ACTIVATIONS.items():
        _hf_act.ACT2CLS[name] = cls
        _hf_act.ACT2FN[name] = cls  # (a ClassInstantier: ACT2FN[name] builds cls())


def _is_activation_field(key: str) -> bool:
    return key in _ACT_FIELDS or key.endswith(("_act", "_activation", "_act_fn"))


def _rewrite(config: PretrainedConfig, path: str, done: dict[str, str], unknown: list[str],
             seen: set[int]) -> None:
    if id(config) in seen:
        return
    seen.add(id(config))
    for key, value in list(vars(config).items()):
        if isinstance(value, PretrainedConfig):
            _rewrite(value, f"{path}.{key}", done, unknown, seen)
        elif isinstance(value, str) and _is_activation_field(key):
            # (only activation fields: another field may hold the same word, "gelu" or
            # "tanh", with another meaning that model code compares against)
            if value in HF_TO_KAUN:
                setattr(config, key, PREFIX + HF_TO_KAUN[value])
                done[value] = PREFIX + HF_TO_KAUN[value]
            elif not value.startswith(PREFIX):
                unknown.append(f"{path}.{key}={value!r}")


def _kaun_module(old: torch.nn.Module, name: str) -> torch.nn.Module | None:
    """kaun.nn's module for ``old`` (transformers' module of the name ``name``), or None where
    ``old`` is not that function (a ``LeakyReLU`` with another slope, built by the model)."""
    new: torch.nn.Module = ACTIVATIONS[PREFIX + HF_TO_KAUN[name]]()
    if isinstance(old, torch.nn.LeakyReLU) and old.negative_slope != 0.01:
        return None
    if isinstance(old, torch.nn.PReLU):
        p = old.weight
        new = KN.PReLU(num_parameters=old.num_parameters, init=old.init, dtype=p.dtype,
                       device=p.device)
        new.load_state_dict(old.state_dict())
    return new


_T = TypeVar("_T")


def use_kaun(model_or_config: _T) -> _T:
    """kaun's activations in a transformers model (or config), now and after saving.

    Calls ``register()``; rewrites each config field whose value is a name of ``HF_TO_KAUN``
    (``hidden_act``, ``activation_function``, ``hidden_activation``, ... in the config and its
    sub-configs) to kaun's name for the same function (``silu`` -> ``kaun_silu``, ``gelu_new``
    -> ``kaun_gelu_approx``); for a model, replaces each activation module that transformers
    built from such a name (a child module of the class that name builds) with ``kaun.nn``'s,
    so that the model computes with kaun at once (modules that call a torch function directly
    are not changed). Returns its argument, changed in place. A field naming an activation kaun
    does not compute (``gelu_10``, ``linear``, ...) is left, and named in a ``UserWarning``.
    """
    register()
    obj: Any = model_or_config
    config: PretrainedConfig
    model: torch.nn.Module | None = None
    found: Any = getattr(obj, "config", None)
    if isinstance(obj, PretrainedConfig):
        config = obj
    elif isinstance(obj, torch.nn.Module) and isinstance(found, PretrainedConfig):
        config, model = found, obj
    else:
        raise TypeError(
            "kaun.hf.use_kaun: expected a transformers model (a torch.nn.Module with a .config) or "
            f"a PretrainedConfig, got {type(obj).__name__}"
        )
    done: dict[str, str] = {}
    unknown: list[str] = []
    _rewrite(config, "config", done, unknown, set())
    if unknown:
        warnings.warn(
            "kaun.hf.use_kaun: left as transformers' (kaun does not compute them): "
            + ", ".join(unknown),
            UserWarning,
            stacklevel=2,
        )
    if model is not None and done:
        classes: dict[Any, str] = {}
        for name in done:
            spec: Any = _hf_act.ACT2CLS.get(name)
            if spec is not None:
                classes.setdefault(spec[0] if isinstance(spec, tuple) else spec, name)
        for parent in list(model.modules()):
            for key, child in list(parent.named_children()):
                hf_name = classes.get(type(child))
                if hf_name is not None:
                    new = _kaun_module(child, hf_name)
                    if new is not None:
                        setattr(parent, key, new)
    return model_or_config


register()
