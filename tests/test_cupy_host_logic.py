"""The cupy backend's host-side logic, run on the CPU with NumPy standing in for CuPy.

The GPU conformance suite needs a CUDA device; this test imports
``fastblur.backends.cupy_backend`` against a stand-in ``cupy`` whose arrays are NumPy
arrays, whose FFTs are scipy.fft's, and whose RawKernel is a NumPy restatement of
``accumulate_weighted``. It checks everything but the CUDA code itself: FFT sizes,
chunking over kernels, cropping, channel layout and the kernel's argument order.
"""
import importlib
import sys
import types

import numpy as np
import pytest
import scipy.fft

from reference import (
    reference_blur_masked,
    reference_blur_product,
    reference_convolve,
    relative_error,
)


# The CUDA source of accumulate_weighted, compiled as C++ for the host: every (block,
# thread) index of the launch is run in turn, so the kernel's own index arithmetic,
# bounds check and argument order are what the tests exercise.
_HOST_HARNESS = r"""
#include <cmath>
struct Index { unsigned x, y, z; };
static Index blockIdx, threadIdx, blockDim;
#define __global__
using std::fabs;
%(source)s
template <typename T>
static void launch(unsigned grid, unsigned block, const T* filtered, const T* weights, T* out,
                   const int* ints, T zero_weight, int overwrite) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b;
            threadIdx.x = t;
            accumulate_weighted<T>(filtered, weights, out, ints[0], ints[1], ints[2], ints[3], ints[4],
                                   ints[5], ints[6], ints[7], ints[8], ints[9], ints[10], zero_weight, overwrite);
        }
}
extern "C" void launch_float(unsigned g, unsigned b, const float* f, const float* w, float* o, const int* i,
                             float z, int ow) { launch<float>(g, b, f, w, o, i, z, ow); }
extern "C" void launch_double(unsigned g, unsigned b, const double* f, const double* w, double* o,
                              const int* i, double z, int ow) { launch<double>(g, b, f, w, o, i, z, ow); }
"""


class _HostKernel:
    """``accumulate_weighted`` compiled for the host, called as a CuPy RawKernel is."""

    def __init__(self, library, dtype):
        import ctypes

        self.dtype = np.dtype(dtype)
        real = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        self.function = getattr(library, "launch_float" if self.dtype == np.float32 else "launch_double")
        pointer = ctypes.c_void_p
        self.function.argtypes = [ctypes.c_uint, ctypes.c_uint, pointer, pointer, pointer, pointer, real, ctypes.c_int]
        self.function.restype = None

    def __call__(self, grid, block, args):
        filtered, weights, out, *ints, zero_weight, overwrite = args
        for array in (filtered, weights, out):
            assert array.dtype == self.dtype and array.flags.c_contiguous
        ints = np.array([int(value) for value in ints], np.int32)
        assert all(type(value) is np.int32 for value in args[3:14]) and type(overwrite) is np.int32
        self.function(int(grid[0]), int(block[0]), filtered.ctypes.data, weights.ctypes.data, out.ctypes.data,
                      ints.ctypes.data, zero_weight, int(overwrite))


def _compile_host_kernels(source, folder):
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the CUDA source for the host")
    harness = folder / "accumulate.cpp"
    harness.write_text(_HOST_HARNESS % {"source": source})
    library = folder / "accumulate.so"
    subprocess.run([compiler, "-std=c++14", "-O1", "-shared", "-fPIC", str(harness), "-o", str(library)],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(library))


class _RawModule:
    library = None

    def __init__(self, code, options=(), name_expressions=()):
        assert "accumulate_weighted" in code
        self.code = code
        self.names = list(name_expressions)

    def get_function(self, name):
        assert name in self.names
        return _HostKernel(_RawModule.library, np.float32 if name.endswith("<float>") else np.float64)


@pytest.fixture(scope="module")
def host_kernels(tmp_path_factory):
    """The CUDA source read from the module file (importing it needs CuPy), built for the host."""
    import ast
    from pathlib import Path

    import fastblur.backends

    path = Path(fastblur.backends.__file__).parent / "cupy_backend.py"
    tree = ast.parse(path.read_text())
    source = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "_ACCUMULATE_SOURCE")
    _RawModule.library = _compile_host_kernels(source, tmp_path_factory.mktemp("cuda_on_host"))
    return _RawModule.library


@pytest.fixture
def emulated(monkeypatch, host_kernels):
    cupy = types.ModuleType("cupy")
    cupy.ascontiguousarray = np.ascontiguousarray
    cupy.empty = np.empty
    cupy.RawModule = _RawModule
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    fft = types.ModuleType("cupyx.scipy.fft")
    fft.rfft2 = lambda x, s: scipy.fft.rfft2(x, s=s, axes=(-2, -1))
    fft.irfft2 = lambda x, s: scipy.fft.irfft2(x, s=s, axes=(-2, -1))
    fft.next_fast_len = lambda n, real=False: scipy.fft.next_fast_len(n, real=real)
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy, cupyx_scipy.fft = cupyx_scipy, fft
    for name, module in {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy, "cupyx.scipy.fft": fft}.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.delitem(sys.modules, "fastblur.backends.cupy_backend", raising=False)
    module = importlib.import_module("fastblur.backends.cupy_backend")
    yield module.BACKEND
    sys.modules.pop("fastblur.backends.cupy_backend", None)


@pytest.mark.parametrize("chunk_bytes", [str(1 << 30), "1"])  # all kernels at once; one at a time
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_masked_batch(emulated, monkeypatch, rng, chunk_bytes, dtype):
    monkeypatch.setenv("FASTBLUR_GPU_CHUNK_BYTES", chunk_bytes)
    images = rng.standard_normal((2, 31, 27, 3)).astype(dtype)
    kernels = rng.random((2, 4, 6, 5)).astype(dtype)
    weights = rng.random((2, 4, 26, 23)).astype(dtype)
    weights[:, 2, :10] = 0
    result = emulated.blur_masked_batch_valid(images, kernels, weights)
    assert result.shape == (2, 26, 23, 3) and result.dtype == dtype
    tolerance = 2e-5 if dtype == np.float32 else 1e-10
    for b in range(2):
        expected = reference_blur_masked(images[b], kernels[b], weights[b], "valid", "reflect")
        assert relative_error(result[b], expected) <= tolerance
    single = emulated.blur_masked_valid(images[1], kernels[1], weights[1])
    np.testing.assert_allclose(single, result[1], rtol=0, atol=1e-5)


def test_convolve_product_and_masks(emulated, monkeypatch, rng):
    monkeypatch.setenv("FASTBLUR_GPU_CHUNK_BYTES", "1")
    image = rng.standard_normal((30, 33, 2))
    kernel = rng.random((4, 7))
    assert relative_error(emulated.convolve_valid(image, kernel), reference_convolve(image, kernel, "valid", "reflect")) <= 1e-10
    kernels = rng.random((3, 5, 4))
    weights = rng.random((3, 30, 33))
    result = emulated.blur_product_valid(image, kernels, weights)
    assert relative_error(result, reference_blur_product(image, kernels, weights, "valid", "reflect")) <= 1e-10
    masks = rng.random((3, 30, 33)) > 0.5
    smoothed = emulated.convolve_masks_valid(masks, kernels)
    expected = np.stack([reference_convolve(m.astype(float), k, "valid", "reflect") for m, k in zip(masks, kernels)])
    np.testing.assert_allclose(smoothed, expected, rtol=0, atol=1e-10)


# -- the batched formation's CuPy branch ------------------------------------------------
class _DeviceArray(np.ndarray):
    """NumPy memory posing as a CuPy array (``get_array_module`` reads the type's module)."""

    def get(self):
        return np.asarray(self).copy()


_DeviceArray.__module__ = "cupy"


def _on_device(value):
    return value.view(_DeviceArray) if type(value) is np.ndarray else value


def _device_function(function):
    def run(*args, **kwargs):
        return _on_device(function(*args, **kwargs))

    return run


def _device_module(name, source, calls):
    def attribute(name):
        calls.append(name)
        return _device_function(getattr(source, name))

    module = types.ModuleType(name)
    module.__getattr__ = attribute
    return module


class _Device:
    def __init__(self, index=0):
        self.id = index

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def device_arrays(monkeypatch):
    """``cupy``, ``cupyx`` and ``cupyx.scipy.ndimage`` whose arrays live in host memory."""
    from scipy import ndimage

    calls = []
    cupy = _device_module("cupy", np, calls)
    cupy.random = types.SimpleNamespace(RandomState=np.random.RandomState)
    cupy.cuda = types.SimpleNamespace(Device=_Device)
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy = cupyx_scipy
    cupyx_scipy.ndimage = _device_module("cupyx.scipy.ndimage", ndimage, calls)
    modules = {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy, "cupyx.scipy.ndimage": cupyx_scipy.ndimage}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


@pytest.mark.parametrize("options", [
    {},
    dict(crf="exponential", random_white_streaks=True, prob_streaks=1.0),
    dict(augment_illumination=True, jitter_illumination=1.0, saturation_streaks=True,
         sat_augmentation_in_blurry=True, min_saturated_fraction=0.0, random_white_streaks=True),
])
def test_form_batch_on_the_device_branch(device_arrays, options):
    from fastblur.sbdd import CropSampler, DatasetConfig, stack_recipes

    config = DatasetConfig(kernel_size=15, max_objects=3, min_object_area=200, seed=2, backend="numpy", **options)
    sampler = CropSampler(config, crop_size=32)
    batch = stack_recipes([sampler.recipe(index) for index in range(4)])
    expected = sampler.form(batch, "cpu")
    formed = sampler.form(batch, "cuda")
    for array, reference in zip(formed, expected):
        assert type(array) is _DeviceArray  # stayed on the "device" throughout
        codes = np.abs(array.get() - reference) * 255
        assert codes.max() <= 1 + 1e-4 and np.count_nonzero(codes > 0.5) <= 1e-3 * codes.size
    assert "take" in device_arrays  # the per-pair lookup's device branch
    if options.get("saturation_streaks"):
        assert {"grey_closing", "gaussian_filter"} <= set(device_arrays)


def test_noise_on_the_device_branch(device_arrays):
    from fastblur.sbdd import CropSampler, DatasetConfig, stack_recipes

    config = DatasetConfig(kernel_size=15, masks="none", crf="none", seed=2, backend="numpy",
                           gaussian_noise=True, noise_std=0.05, poisson_peak=500.0)
    sampler = CropSampler(config, crop_size=48, quantize=False)
    batch = stack_recipes([sampler.recipe(index) for index in range(2)])
    noisy = sampler.form(batch, "cuda")[0].get()
    np.testing.assert_array_equal(sampler.form(batch, "cuda")[0].get(), noisy)
    clean = CropSampler(DatasetConfig(kernel_size=15, masks="none", crf="none", seed=2, backend="numpy"),
                        crop_size=48, quantize=False).form(batch, "cpu")[0]
    usable = (clean > 0.2) & (clean < 0.8)
    ratio = noisy[usable] / clean[usable] - 1
    expected_std = np.sqrt(0.05 ** 2 + 1 / (500 * clean[usable])).mean()
    assert ratio.std() == pytest.approx(expected_std, rel=0.1)


def test_sampler_forms_with_the_gpu_backend_on_the_device(device_arrays):
    """A generation run pins ``auto`` to a CPU backend; on CUDA, ``auto`` must stay ``auto``
    (the cupy backend for device arrays), not send the batch through the host."""
    from fastblur.sbdd import CropSampler, DatasetConfig, stack_recipes

    sampler = CropSampler(DatasetConfig(kernel_size=15, masks="none", seed=2), crop_size=32)
    batch = stack_recipes([sampler.recipe(0)])
    with pytest.raises(ValueError, match="'cupy'"):  # the stand-in has no cupy backend
        sampler.form(batch, "cuda")
    sampler.form(batch, "cpu")
