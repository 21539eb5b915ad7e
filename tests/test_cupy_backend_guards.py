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
