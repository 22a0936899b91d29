"""The portable erfc (Array API operations only) against mpmath: the accuracy its docstring
states, on NumPy's ops and on array-api-strict's (a namespace with no erf/erfc of its own)."""

from __future__ import annotations

import array_api_strict as xps
import numpy as np
import pytest
from mpmath import erfc, mp, mpf

from kaun import _special
from kaun._backends._generic import GenericOps
from kaun._backends._numpy import NumpyOps


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ns", ["numpy", "array-api-strict"])
def test_erfc_within_a_few_ulp(ns: str, dtype: str) -> None:
    mp.dps = 40
    top = 9.1 if dtype == "float32" else 26.0  # past it erfc is subnormal, then 0
    w = np.concatenate([np.linspace(-6.0, top, 1501), [0.0, 0.84375, 1.25, 1 / 0.35, 8.0]]).astype(dtype)
    want = np.array([float(erfc(mpf(float(v)))) for v in w])
    if ns == "numpy":
        with np.errstate(all="ignore"):
            got = np.asarray(_special.erfc(NumpyOps(), w), dtype=np.float64)
    else:
        x = xps.asarray(w)
        with np.errstate(all="ignore"):
            got = np.asarray(_special.erfc(GenericOps(xps), x)._array, dtype=np.float64)
    eps = float(np.finfo(dtype).eps)
    ulps = np.abs(got - want) / (np.abs(want) * eps)
    assert ulps.max() <= 4.0, (ulps.max(), w[np.argmax(ulps)])
