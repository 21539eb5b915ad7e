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
def emulated_backend(monkeypatch, cupy_host_kernels):
    cupy_standin.install(monkeypatch, cupy_host_kernels)
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
    """Products (complex) and the filtered planes (the inverse overwrites the products):
    3 real planes per kernel and plane, so a budget of k such kernels runs k at a time."""
    shape = (20, 24)
    per_kernel = 3 * 6 * shape[0] * shape[1] * 4
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


@pytest.mark.parametrize("channels", [1, 3, 4, 5, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_methods_agree_with_sparse_kernels_and_inactive_weights(emulated_backend, monkeypatch, rng, dtype,
                                                                     channels):
    """Thin kernels, zero weights on most of each map, channels in blocks of four (part,
    one, one and a part, two): the sparse taps equal the FFT to round-off, zeros included."""
    kernels = np.zeros((2, 3, 9, 8), dtype)
    for b, i in np.ndindex(2, 3):
        kernels[b, i, rng.integers(0, 9, 5), rng.integers(0, 8, 5)] = rng.random(5)
    weights = rng.random((2, 3, 24, 25)).astype(dtype)
    weights[rng.random(weights.shape) < 0.7] = 0
    arrays = _on_device(rng.random((2, 32, 32, channels)).astype(dtype), kernels, weights)
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
    # CuPy also reads back (and syncs) for bool(), int(), float(), operator.index(), item()
    # and tolist() of a device array; the stand-in's NumPy memory would not show those.
    for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
        def read(self, *args, _name=name, _method=getattr(np.ndarray, name)):
            reads.append((_name, self.shape))
            return _method(self, *args)
        monkeypatch.setattr(cupy_standin.DeviceArray, name, read)
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", method)
    lookups = cupy_standin.STATE.lookups
    del lookups[:]
    emulated_backend.blur_masked_batch_valid(*_case(rng))
    assert len(reads) == readbacks, reads
    assert not {"nonzero", "flatnonzero", "argwhere"} & set(lookups)  # sized by the data: a sync


@pytest.mark.parametrize("width, fits", [(2**28 - 1, True), (2**29, False)])
def test_direct_method_only_where_its_int32_tap_offsets_fit(emulated_backend, monkeypatch, width, fits):
    """The direct kernel reads ``corner + offset`` with int32 offsets of up to
    ``((kh - 1) W + kw - 1) C + C - 1``: past 2**31 they would wrap (reads out of the
    image, silently), so such images take the FFT even when direct is forced."""
    module = sys.modules[MODULE]
    zero = np.zeros((), np.float32)  # zero-stride views: shapes without memory
    images = cupy_standin.on_device(np.broadcast_to(zero, (1, 3, width, 4)))
    kernels = cupy_standin.on_device(np.broadcast_to(zero, (1, 1, 3, 2)))
    weights = cupy_standin.on_device(np.broadcast_to(zero, (1, 1, 1, width - 1)))
    assert module._taps_fit((3, 2), width, 4) is fits
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "direct")
    assert module.choose_method(images, kernels, weights) == ("direct" if fits else "fft")
    assert module._taps_fit((3, 2), (2**31 - 2) // 8, 4) and not module._taps_fit((3, 2), (2**31 - 2) // 8 + 1, 4)


def test_gpu_suite_forces_each_method_too(monkeypatch):
    """On a GPU machine the conformance suite runs the real backend with each blur_masked
    method forced, not only the one the cost estimate picks for its small shapes."""
    import conftest
    import fastblur

    info = {name: "available" for name in fastblur.backend_info()}
    monkeypatch.setattr(fastblur, "backend_info", lambda: info)
    params = {param.id: param for param in conftest._backend_params()}
    assert {"cupy", "cupy-fft", "cupy-direct"} <= set(params) and not set(conftest.EMULATED_CUPY) & set(params)
    assert all(any(mark.name == "gpu" for mark in params[name].marks) for name in ("cupy-fft", "cupy-direct"))


def test_direct_kernel_reads_only_the_counted_taps(emulated_backend, monkeypatch, rng):
    """On a GPU the zeros' writes to the spare last column (duplicate indices of one
    scatter) land in any order, and nothing else is written past a row's count: the
    kernel must never read there. Poisoning every slot past each count (NaN values,
    offsets far outside the image) leaves the result unchanged."""
    module = sys.modules[MODULE]
    taps = module._nonzero_taps

    def poisoned(kernels, width, channels):
        counts, offsets, values = taps(kernels, width, channels)
        unused = np.arange(offsets.shape[1]) >= np.asarray(counts)[:, None]
        np.asarray(offsets)[unused] = 2**31 - 1
        np.asarray(values)[unused] = np.nan
        return counts, offsets, values

    kernels = np.zeros((2, 3, 7, 6), np.float32)
    kernels[0, 0, 3, 2] = 1  # a single tap
    kernels[1, 1] = rng.random((7, 6))  # dense: no spare slot but the last
    kernels[1, 2, ::2, 1::3] = rng.random((4, 2))  # kernel (0, 1), (0, 2) and (1, 0) all zero
    arrays = _on_device(rng.random((2, 20, 19, 4), dtype=np.float32), kernels,
                        rng.random((2, 3, 14, 14), dtype=np.float32))
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "direct")
    expected = np.asarray(emulated_backend.blur_masked_batch_valid(*arrays))
    monkeypatch.setattr(module, "_nonzero_taps", poisoned)
    np.testing.assert_array_equal(np.asarray(emulated_backend.blur_masked_batch_valid(*arrays)), expected)
    assert np.isfinite(expected).all()


def test_fft_inverses_work_in_place_without_a_normalisation_pass(emulated_backend, monkeypatch, rng):
    """cuFFT's C2R copies its input unless ``overwrite_x`` and scales its output in a
    separate pass under the default norm: every inverse of the FFT method avoids both,
    the kernel spectra carrying the ``1 / F``."""
    fft = sys.modules["cupyx.scipy.fft"]
    calls = []
    for name in ("rfft2", "irfft2"):
        original = getattr(fft, name)
        monkeypatch.setattr(fft, name, lambda x, _f=original, _n=name, **kw: calls.append((_n, kw)) or _f(x, **kw))
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "fft")
    images, kernels, weights = _case(rng)
    emulated_backend.blur_masked_batch_valid(images, kernels, weights)
    emulated_backend.convolve_masks_valid(cupy_standin.on_device(np.asarray(weights[0]) > 0.5), kernels[0])
    inverses = [kw for name, kw in calls if name == "irfft2"]
    assert len(inverses) == 2 and all(kw.get("overwrite_x") and kw.get("norm") == "forward" for kw in inverses)
    forward_norms = sorted(str(kw.get("norm")) for name, kw in calls if name == "rfft2")
    assert forward_norms == ["None", "None", "forward", "forward"]  # images and masks; kernels
