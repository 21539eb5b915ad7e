"""The cupy backend's guards around its RawKernel, on the CPU stand-in for CuPy.

The kernel reads raw pointers, so a dtype or layout mismatch would give garbage rather
than an error; the backend refuses such arguments before launching. Chunking keeps
each chunk's temporaries under ``FASTBLUR_GPU_CHUNK_BYTES``.
"""
import importlib
import sys

import numpy as np
import pytest

import cupy_standin

MODULE = "fastblur.backends.cupy_backend"


@pytest.fixture
def emulated_backend(request, monkeypatch):
    if cupy_standin.compiler() is None:
        pytest.skip("no C++ compiler to build the CUDA source for the host")
    cupy_standin.install(monkeypatch, request.getfixturevalue("cupy_host_kernels"))
    sys.modules.pop(MODULE, None)
    yield importlib.import_module(MODULE).BACKEND
    sys.modules.pop(MODULE, None)


def _case(rng, dtype=np.float32):
    on_device = cupy_standin.on_device
    images = on_device(rng.random((2, 20, 22, 3)).astype(dtype))
    kernels = on_device(rng.random((2, 3, 5, 4)).astype(dtype))
    weights = on_device(rng.random((2, 3, 16, 19)).astype(dtype))
    return images, kernels, weights


@pytest.mark.parametrize("which", [0, 1, 2])
def test_mixed_dtypes_are_refused(emulated_backend, rng, which):
    arrays = list(_case(rng))
    arrays[which] = arrays[which].astype(np.float64)
    with pytest.raises(TypeError, match="float32 or float64"):
        emulated_backend.blur_masked_batch_valid(*arrays)


def test_other_float_types_are_refused(emulated_backend, rng):
    with pytest.raises(TypeError, match="float32 or float64"):
        emulated_backend.blur_masked_batch_valid(*(a.astype(np.float16) for a in _case(rng)))


def test_non_contiguous_weights_are_made_contiguous(emulated_backend, rng):
    images, kernels, weights = _case(rng)
    strided = cupy_standin.on_device(np.asarray(weights).repeat(2, axis=-1))[..., ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(emulated_backend.blur_masked_batch_valid(images, kernels, strided),
                                  emulated_backend.blur_masked_batch_valid(images, kernels, weights))


@pytest.mark.parametrize("budget_kernels", [1, 2, 3])
def test_chunks_hold_the_temporaries_under_the_budget(emulated_backend, monkeypatch, budget_kernels):
    """Products (complex), irfft2's copy of them and the filtered planes: 5 real planes
    per kernel and plane, so a budget of k such kernels runs k kernels at a time."""
    shape = (20, 24)
    per_kernel = 5 * 6 * shape[0] * shape[1] * 4
    monkeypatch.setenv("FASTBLUR_GPU_CHUNK_BYTES", str(budget_kernels * per_kernel))
    assert emulated_backend._chunk(6, shape, 4) == budget_kernels


# -- the choice between sparse taps and FFT ------------------------------------------------
def _on_device(*arrays):
    return tuple(cupy_standin.on_device(np.ascontiguousarray(a)) for a in arrays)


def test_sbdd_blur_takes_the_sparse_taps(emulated_backend, monkeypatch):
    """720p, six 65x65 motion PSFs (about 100 taps each), about one kernel per pixel:
    the direct method does a tenth of the FFT's work."""
    from fastblur.cli.bench_cases import sbdd_case

    monkeypatch.delenv("FASTBLUR_GPU_METHOD", raising=False)
    module = sys.modules[MODULE]
    image, kernels, weights = sbdd_case(720, 1280)
    images, kernels, weights = _on_device(image[None], kernels[None], weights[None])
    assert module.choose_method(images, kernels, weights) == "direct"


def test_dense_kernels_everywhere_take_the_fft(emulated_backend, monkeypatch, rng):
    monkeypatch.delenv("FASTBLUR_GPU_METHOD", raising=False)
    module = sys.modules[MODULE]
    kernels = np.broadcast_to(np.outer(np.hanning(67)[1:-1], np.hanning(67)[1:-1]), (1, 6, 65, 65))
    images, kernels, weights = _on_device(
        rng.random((1, 784, 1344, 3), dtype=np.float32), (kernels / kernels[0, 0].sum()).astype(np.float32),
        np.full((1, 6, 720, 1280), 1 / 6, np.float32))
    assert module.choose_method(images, kernels, weights) == "fft"
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "direct")
    assert module.choose_method(images, kernels, weights) == "direct"
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "taps")
    with pytest.raises(ValueError, match="FASTBLUR_GPU_METHOD"):
        module.choose_method(images, kernels, weights)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_methods_agree_with_sparse_kernels_and_inactive_weights(emulated_backend, monkeypatch, rng, dtype):
    """Thin kernels, zero weights on most of each map, five channels (a block of four and
    one): the sparse taps equal the FFT to round-off, zeros included."""
    kernels = np.zeros((2, 3, 9, 8), dtype)
    for b, i in np.ndindex(2, 3):
        kernels[b, i, rng.integers(0, 9, 5), rng.integers(0, 8, 5)] = rng.random(5)
    weights = rng.random((2, 3, 24, 25)).astype(dtype)
    weights[rng.random(weights.shape) < 0.7] = 0
    arrays = _on_device(rng.random((2, 32, 32, 5)).astype(dtype), kernels, weights)
    results = {}
    for method in ("fft", "direct"):
        monkeypatch.setenv("FASTBLUR_GPU_METHOD", method)
        results[method] = np.asarray(emulated_backend.blur_masked_batch_valid(*arrays))
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(results["direct"], results["fft"], rtol=0, atol=tolerance)
    assert np.all(results["direct"][np.all(weights == 0, axis=1)] == 0)


@pytest.mark.parametrize("method, readbacks", [("direct", 0), ("fft", 0), ("auto", 1)])
def test_host_reads_back_only_the_cost_counts(emulated_backend, monkeypatch, rng, method, readbacks):
    """Every read back to the host stalls the GPU queue: the direct method builds its tap
    tables on the device without one; ``auto`` reads the tap and activity counts once."""
    reads = []
    monkeypatch.setattr(cupy_standin.DeviceArray, "get", lambda self: reads.append(self.shape) or np.asarray(self).copy())
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", method)
    lookups = cupy_standin.STATE.lookups
    del lookups[:]
    emulated_backend.blur_masked_batch_valid(*_case(rng))
    assert len(reads) == readbacks, reads
    assert not {"nonzero", "flatnonzero", "argwhere"} & set(lookups)  # sized by the data: a sync
