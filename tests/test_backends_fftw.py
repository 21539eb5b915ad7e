"""The ``fftw`` backend's engine: plan cache, wisdom kept on disk, thread safety."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastblur
from reference import direct_convolve_valid, reference_blur_masked, relative_error

if fastblur.backend_info().get("fftw") != "available":
    pytest.skip(f"fftw backend unavailable: {fastblur.backend_info().get('fftw')}", allow_module_level=True)

import pyfftw  # noqa: E402

from fastblur.backends import fftw_backend  # noqa: E402
from fastblur.backends.fftw_backend import FFTWEngine, PlanPool, WisdomFile, fast_len  # noqa: E402
from conftest import PACKAGE_ROOT


def test_fast_len_is_even_and_7_smooth():
    for n in range(1, 600):
        m = fast_len(n)
        assert m >= n and m % 2 == 0
        rest = m
        for prime in (2, 3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        assert rest == 1
        assert all(fast_len(k) == m for k in range(n, m + 1))  # nothing smaller in between


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lead", [(), (3,), (2, 3), (6,)])
def test_engine_matches_numpy_fft(rng, dtype, lead):
    engine = FFTWEngine(PlanPool(WisdomFile()))
    shape = (40, 36)
    blocks = rng.standard_normal(lead + (33, 30)).astype(dtype)
    spectra = engine.rfft2(blocks, shape)
    expected = np.fft.rfft2(blocks, s=shape)
    assert spectra.shape == expected.shape
    assert spectra.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    scale = np.abs(expected).max()
    assert np.abs(spectra - expected).max() <= (1e-5 if dtype == np.float32 else 1e-12) * scale
    back = engine.irfft2(spectra, shape)
    np.testing.assert_allclose(back[..., :33, :30], blocks, atol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(back[..., 33:, :], 0, atol=1e-5 if dtype == np.float32 else 1e-12)


def test_plans_are_made_once_per_shape_and_reused(rng, monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "1")
    backend = fftw_backend.FFTWBackend()
    image = rng.random((150, 170, 3)).astype(np.float32)
    kernel = rng.random((9, 9)).astype(np.float32)
    first = backend.convolve_valid(image, kernel)
    created, reused = backend.plans.created, backend.plans.reused
    assert created >= 2  # forward and backward
    second = backend.convolve_valid(image, kernel)
    assert backend.plans.created == created
    assert backend.plans.reused > reused
    np.testing.assert_array_equal(first, second)
    assert relative_error(first, direct_convolve_valid(image, kernel)) <= 2e-5


def test_busy_plans_are_not_shared_between_threads():
    pool = PlanPool(WisdomFile())
    with pool.borrow("forward", (64, 64), np.float32, 3) as first:
        with pool.borrow("forward", (64, 64), np.float32, 3) as second:
            assert first is not second
    with pool.borrow("forward", (64, 64), np.float32, 3) as again:
        assert again in (first, second)
    assert pool.created == 2 and pool.reused == 1


def test_concurrent_calls_from_threads_agree(rng, monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "2")
    image = rng.standard_normal((300, 280, 3)).astype(np.float32)
    kernels = rng.random((3, 9, 9)).astype(np.float32)
    weights = np.zeros((3, 292, 272), np.float32)
    weights[0] = 1
    weights[1, 100:200, 50:150] = 0.5
    weights[2, :, 200:] = 0.25
    expected = reference_blur_masked(image, kernels, weights, "valid", "reflect")
    results, errors = [None] * 4, []

    def work(index):
        try:
            results[index] = fastblur.blur_masked(image, kernels, weights, backend="fftw")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for result in results:
        assert relative_error(result, expected) <= 2e-5


def test_planner_setting(monkeypatch):
    monkeypatch.setenv("FASTBLUR_FFTW_PLANNER", "estimate")
    assert fftw_backend.planner_flag((256, 256)) == "FFTW_ESTIMATE"
    monkeypatch.setenv("FASTBLUR_FFTW_PLANNER", "FFTW_PATIENT")
    assert fftw_backend.planner_flag((256, 256)) == "FFTW_PATIENT"
    assert fftw_backend.planner_flag((32, 32)) == "FFTW_ESTIMATE"  # too small to measure
    monkeypatch.setenv("FASTBLUR_FFTW_PLANNER", "exhaustive-ish")
    with pytest.raises(ValueError, match="FASTBLUR_FFTW_PLANNER"):
        fftw_backend.planner_flag((256, 256))


_WISDOM_CHILD = """
import numpy as np, pyfftw
from fastblur.backends import fftw_backend
def wisdom_only(shape):
    a = pyfftw.empty_aligned((1,) + shape, np.float32)
    b = pyfftw.empty_aligned((1, shape[0], shape[1] // 2 + 1), np.complex64)
    try:
        pyfftw.FFTW(a, b, axes=(1, 2), flags=("FFTW_MEASURE", "FFTW_WISDOM_ONLY"))
        return True
    except RuntimeError:
        return False
print(fftw_backend.BACKEND.wisdom_loaded, wisdom_only((210, 198)), wisdom_only((234, 202)))
"""


def test_measured_wisdom_is_saved_and_loaded_by_the_next_process(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBLUR_CACHE_DIR", str(tmp_path))
    pool = PlanPool(WisdomFile())
    with pool.borrow("forward", (210, 198), np.float32):  # an unusual shape, measured
        pass
    files = list(tmp_path.glob("fftw_wisdom-*.json"))
    assert len(files) == 1
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), FASTBLUR_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _WISDOM_CHILD], env=env, check=True,
                         cwd=PACKAGE_ROOT, capture_output=True, text=True).stdout.split()
    # The next process has wisdom for the measured shape, and none for another one.
    assert out == ["True", "True", "False"]


def test_wisdom_can_stay_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBLUR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("FASTBLUR_FFTW_WISDOM", "0")
    pool = PlanPool(WisdomFile())
    with pool.borrow("forward", (120, 126), np.float64):
        pass
    assert not WisdomFile().load()
    assert not list(tmp_path.iterdir())


def test_corrupt_wisdom_file_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBLUR_CACHE_DIR", str(tmp_path))
    wisdom = WisdomFile()
    (tmp_path / wisdom.name).write_text("[1, 2")
    assert wisdom.load() is False
    assert wisdom.save() is True
    assert isinstance(pyfftw.export_wisdom(), tuple)
