import os

import numpy as np
import pytest

import fastblur


def _backend_params():
    params = []
    for name, status in fastblur.backend_info().items():
        marks = [pytest.mark.gpu] if name == "cupy" else []
        if status != "available":
            marks.append(pytest.mark.skip(reason=f"backend {name!r} unavailable: {status}"))
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_backend_params())
def backend(request):
    """Every registered backend; unavailable ones are skipped with the reason."""
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


#: Relative tolerance vs the float64 reference for each working precision.
TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


#: Where the fastblur under test was imported from. Child interpreters (``python -c``,
#: ``-m``) put their working directory first on sys.path, so they run from here to import
#: the same fastblur (the installed one in CI, not the source tree without its extension).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastblur.__file__)))
