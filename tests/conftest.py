import os
import socket

import numpy as np
import pytest

import cupy_standin
import fastblur


#: The ``cupy`` backend's code on the CPU (tests/cupy_standin.py), where CuPy cannot run,
#: with each of its blur_masked methods forced: ``{param id: FASTBLUR_GPU_METHOD}``.
EMULATED_CUPY = {"cupy-emulated-fft": "fft", "cupy-emulated-direct": "direct"}
#: With a usable CuPy, the real ``cupy`` backend with each method forced too (``cupy``
#: alone runs whichever method the cost estimate picks for a test's shapes).
FORCED_CUPY = {"cupy-fft": "fft", "cupy-direct": "direct"}


def _backend_params():
    params = []
    info = fastblur.backend_info()
    for name, status in info.items():
        marks = [pytest.mark.gpu] if name == "cupy" else []
        if status != "available":
            marks.append(pytest.mark.skip(reason=f"backend {name!r} unavailable: {status}"))
        params.append(pytest.param(name, marks=marks, id=name))
        if name == "cupy" and status == "available":
            params.extend(pytest.param(forced, marks=marks, id=forced) for forced in FORCED_CUPY)
    if info.get("cupy") != "available" and cupy_standin.compiler() is not None:
        params.extend(pytest.param(name, id=name) for name in EMULATED_CUPY)
    return params


@pytest.fixture(scope="session")
def cupy_host_kernels(tmp_path_factory):
    """The cupy backend's CUDA source built for the host (see tests/cupy_standin.py)."""
    if cupy_standin.compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA source for the host")
    return cupy_standin.build_host_kernels(tmp_path_factory.mktemp("cuda_on_host"))


@pytest.fixture(params=_backend_params())
def backend(request):
    """Every registered backend; unavailable ones are skipped with the reason. Without
    a usable CuPy, ``cupy-emulated-fft`` and ``cupy-emulated-direct`` run the cupy
    backend's code on a CPU stand-in, each method of its blur_masked forced (the test
    sees the name ``"cupy"``). With CuPy, ``cupy-fft`` and ``cupy-direct`` force each
    method on the GPU as well."""
    if request.param in FORCED_CUPY:
        request.getfixturevalue("monkeypatch").setenv("FASTBLUR_GPU_METHOD", FORCED_CUPY[request.param])
        return "cupy"
    if request.param not in EMULATED_CUPY:
        return request.param
    library = request.getfixturevalue("cupy_host_kernels")
    monkeypatch = request.getfixturevalue("monkeypatch")
    cupy_standin.install(monkeypatch, library)
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", EMULATED_CUPY[request.param])
    cupy_standin.reload_backend()
    request.addfinalizer(cupy_standin.reload_backend)  # runs before the stand-in is removed
    return "cupy"


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


@pytest.fixture
def default_constants(monkeypatch):
    """No cache directory: the cost model's built-in constants, so decisions are deterministic."""
    from fastblur.backends import cost_model

    monkeypatch.setenv("FASTBLUR_CACHE_DIR", "none")
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "1")
    cost_model.reset()
    yield
    cost_model.reset()


#: Relative tolerance vs the float64 reference for each working precision.
TOLERANCE = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}


#: Where the fastblur under test was imported from. Child interpreters (``python -c``,
#: ``-m``) put their working directory first on sys.path, so they run from here to import
#: the same fastblur (the installed one in CI, not the source tree without its extension).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastblur.__file__)))

#: The README beside tests/ (absent where only the package and its tests are installed).
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
needs_readme = pytest.mark.skipif(not os.path.exists(README), reason="README.md not beside tests/")


def readme_example(heading):
    """The first ```python block after ``heading`` in README.md."""
    with open(README, encoding="utf-8") as stream:
        text = stream.read()
    section = text[text.index(heading):]
    code = section[section.index("```python\n") + len("```python\n"):]
    return code[: code.index("```")]


def run_readme_example(heading, namespace=None):
    """Run :func:`readme_example` of ``heading`` in ``namespace`` (a new one by default):
    ``(code, namespace)``."""
    code = readme_example(heading)
    namespace = {} if namespace is None else namespace
    exec(compile(code, README, "exec"), namespace)
    return code, namespace
