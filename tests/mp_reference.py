"""benchmarks/_reference.py (the mpmath references and the ULP rule of the accuracy benchmark),
loaded once by path for the tests that measure against it (test_accuracy.py, test_gated.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any


def _load_reference() -> Any:
    name = "_kaun_accuracy_reference"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "_reference.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


R = _load_reference()
