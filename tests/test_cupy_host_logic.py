"""The cupy backend's host-side code, run on the CPU against a stand-in for CuPy.

The GPU conformance suite needs a CUDA device; here ``fastblur.backends.cupy_backend``
runs against :mod:`cupy_standin`: NumPy memory typed as CuPy arrays, scipy's FFTs, and
the backend's own CUDA source compiled for the host. It checks everything but the CUDA
runtime: FFT sizes, chunking over kernels, cropping, channel layout, the kernel's index
arithmetic and argument order, the batched formation's device branch and the dispatch
of device arrays through the public functions. (The shared conformance suite also runs
on this stand-in as ``cupy-emulated-fft`` and ``cupy-emulated-direct`` where CuPy is missing.)
"""
import importlib
import sys

import numpy as np
import pytest

import cupy_standin
import fastblur
from reference import (
    reference_blur_masked,
    reference_blur_product,
    reference_convolve,
    relative_error,
)


@pytest.fixture
def emulated(standin_cupy):
    """``fastblur.backends.cupy_backend`` imported against the stand-in CuPy."""
    sys.modules.pop("fastblur.backends.cupy_backend", None)
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
    on_device = cupy_standin.on_device
    result = emulated.blur_masked_batch_valid(on_device(images), on_device(kernels), on_device(weights))
    assert result.shape == (2, 26, 23, 3) and result.dtype == dtype
    tolerance = 2e-5 if dtype == np.float32 else 1e-10
    for b in range(2):
        expected = reference_blur_masked(images[b], kernels[b], weights[b], "valid", "reflect")
        assert relative_error(result[b], expected) <= tolerance
    single = emulated.blur_masked_valid(on_device(images[1]), on_device(kernels[1]), on_device(weights[1]))
    np.testing.assert_allclose(single, result[1], rtol=0, atol=1e-5)


def test_convolve_product_and_masks(emulated, monkeypatch, rng):
    monkeypatch.setenv("FASTBLUR_GPU_CHUNK_BYTES", "1")
    on_device = cupy_standin.on_device
    image = rng.standard_normal((30, 33, 2))
    kernel = rng.random((4, 7))
    filtered = emulated.convolve_valid(on_device(image), on_device(kernel)).get()
    assert relative_error(filtered, reference_convolve(image, kernel, "valid", "reflect")) <= 1e-10
    kernels = rng.random((3, 5, 4))
    weights = rng.random((3, 30, 33))
    result = emulated.blur_product_valid(on_device(image), on_device(kernels), on_device(weights)).get()
    assert relative_error(result, reference_blur_product(image, kernels, weights, "valid", "reflect")) <= 1e-10
    masks = rng.random((3, 30, 33)) > 0.5
    smoothed = emulated.convolve_masks_valid(on_device(masks), on_device(kernels)).get()
    expected = np.stack([reference_convolve(m.astype(float), k, "valid", "reflect") for m, k in zip(masks, kernels)])
    np.testing.assert_allclose(smoothed, expected, rtol=0, atol=1e-10)


# -- the batched formation and the public functions on the emulated GPU ----------------
@pytest.fixture
def standin_cupy(monkeypatch, cupy_host_kernels):
    """The stand-in CuPy; yields the names looked up in it."""
    yield cupy_standin.install(monkeypatch, cupy_host_kernels)


@pytest.fixture
def emulated_gpu(standin_cupy):
    """The registry's ``cupy`` backend running on the stand-in (restored afterwards)."""
    cupy_standin.reload_backend()
    assert fastblur.backend_info()["cupy"] == "available"
    yield standin_cupy
    cupy_standin.reload_backend()


@pytest.mark.parametrize("options", [
    {},
    dict(crf="exponential", random_white_streaks=True, prob_streaks=1.0),
    dict(augment_illumination=True, jitter_illumination=1.0, saturation_streaks=True,
         sat_augmentation_in_blurry=True, min_saturated_fraction=0.0, random_white_streaks=True),
])
def test_form_batch_on_the_device_branch(emulated_gpu, options):
    from fastblur.sbdd import CropSampler, DatasetConfig, stack_recipes

    config = DatasetConfig(kernel_size=15, max_objects=3, min_object_area=200, seed=2, **options)
    sampler = CropSampler(config, crop_size=32)
    batch = stack_recipes([sampler.recipe(index) for index in range(4)])
    expected = sampler.form(batch, "cpu")
    formed = sampler.form(batch, "cuda")
    for array, reference in zip(formed, expected):
        assert type(array) is cupy_standin.DeviceArray  # stayed on the "device" throughout
        codes = np.abs(array.get() - reference) * 255
        assert codes.max() <= 1 + 1e-4 and np.count_nonzero(codes > 0.5) <= 1e-3 * codes.size
    assert "take" in emulated_gpu  # the per-pair lookup's device branch
    if options.get("crf", "gamma") == "gamma":
        assert "power" in emulated_gpu  # delinearize's device branch
    if options.get("saturation_streaks"):
        assert {"grey_closing", "gaussian_filter"} <= set(emulated_gpu)


def test_noise_on_the_device_branch(emulated_gpu):
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


def test_sampler_forms_with_the_gpu_backend_on_the_device(emulated_gpu, monkeypatch):
    """A generation run pins ``auto`` to a CPU backend; on CUDA, ``auto`` must stay ``auto``
    (the cupy backend for device arrays), not send the batch through the host."""
    from fastblur.backends import get_backend
    from fastblur.sbdd import CropSampler, DatasetConfig, stack_recipes

    used = []
    for name in ("cupy", "native", "numba", "numpy"):
        if fastblur.backend_info()[name] == "available":
            backend = get_backend(name)
            for method in ("blur_masked_batch_valid", "convolve_masks_valid"):
                original = getattr(backend, method)
                monkeypatch.setattr(backend, method, lambda *a, _f=original, _n=name: (used.append(_n), _f(*a))[1])
    sampler = CropSampler(DatasetConfig(kernel_size=15, max_objects=2, seed=2), crop_size=32)
    batch = stack_recipes([sampler.recipe(0)])
    sampler.form(batch, "cuda")
    assert used == ["cupy", "cupy"]


def test_public_primitives_on_the_emulated_gpu(emulated_gpu, rng):
    """Device arrays in, device arrays out, through the registry's cupy backend under
    ``auto``, equal to the numpy backend."""
    import cupy

    image = rng.random((40, 37, 3), dtype=np.float32)
    kernels = rng.random((3, 6, 5), dtype=np.float32)
    masks = rng.random((2, 40, 37)) > 0.6
    weights = rng.random((3, 35, 33), dtype=np.float32)
    input_weights = rng.random((3, 40, 37), dtype=np.float32)
    calls = [
        (fastblur.convolve, (image, kernels[0]), dict(mode="same")),
        (fastblur.blur_masked, (image, kernels, weights), {}),
        (fastblur.blur_masked_batch, (image[None], kernels[None], weights[None]), {}),
        (fastblur.blur_product, (image, kernels, input_weights), dict(mode="full", boundary="constant")),
        (fastblur.smooth_masks, (masks, kernels), dict(mode="same")),
        (fastblur.smooth_masks_batch, (masks[None], kernels[None]), {}),
    ]
    for function, args, kwargs in calls:
        on_device = function(*(cupy.asarray(a) for a in args), **kwargs)
        assert type(on_device) is cupy_standin.DeviceArray, function.__name__
        expected = function(*args, backend="numpy", **kwargs)
        assert relative_error(on_device.get(), expected) <= 2e-5, function.__name__


# -- PyTorch on CUDA, posed by CPU tensors: devices, streams and DLPack hand-overs -------
class _CudaTensor:
    """A tensor on ``cuda:index`` as far as fastblur can tell (module ``torch``,
    ``__dlpack__``, ``device``), holding its data in a NumPy array."""

    __module__ = "torch"

    def __init__(self, array, index):
        torch = pytest.importorskip("torch")
        self.array, self.device = array, torch.device("cuda", index)

    def __dlpack__(self, *args, **kwargs):
        raise AssertionError("handed over by cupy.from_dlpack")

    def detach(self):
        return self

    def numpy(self):
        return self.array


@pytest.fixture
def emulated_torch_cuda(emulated_gpu, monkeypatch):
    """PyTorch's CUDA calls that fastblur makes, posed on the CPU: stream ``1000 + N`` is
    PyTorch's current stream on device ``N``; uploads and ``torch.empty`` on CUDA stay on
    the CPU. Yields a log of ``(event, device index, CuPy's device, CuPy's stream)``.

    PyTorch's current device is its own here (0 until ``torch.cuda.device`` enters
    another), as it is on CUDA 12+ after a device guard has left a device without a
    context (``c10::cuda::MaybeSetDevice``); and, as ``Tensor.__dlpack__`` does, the
    hand-over of a CUDA tensor to ``cupy.from_dlpack`` refuses a tensor of another device."""
    import contextlib
    import types

    torch = pytest.importorskip("torch")
    log = []
    torch_devices = [0]

    def record(event, index):
        log.append((event, index, cupy_standin.STATE.device, cupy_standin.STATE.stream.ptr))

    @contextlib.contextmanager
    def device(index):
        record("torch.cuda.device", index)
        torch_devices.append(index)
        try:
            yield
        finally:
            torch_devices.pop()

    cupy = sys.modules["cupy"]
    standin_from_dlpack = cupy.from_dlpack

    def from_dlpack_checked(value):
        place = getattr(value, "device", None)
        if isinstance(place, torch.device) and place.type == "cuda" and place.index != torch_devices[-1]:
            raise BufferError("Can't export tensors on a different CUDA device index. "
                              f"Expected: {place.index}. Current device: {torch_devices[-1]}.")
        return standin_from_dlpack(value)

    def cuda_target(device):
        return device is not None and torch.device(device).type == "cuda"

    to, empty = torch.Tensor.to, torch.empty

    def upload(self, *args, **kwargs):
        if args and cuda_target(args[0]):
            assert kwargs == {"non_blocking": True}  # from pinned memory, on the stream
            record("upload", torch.device(args[0]).index)
            return self
        return to(self, *args, **kwargs)

    def allocate(*args, device=None, **kwargs):
        if cuda_target(device):
            record("torch.empty", torch.device(device).index)
            device = None
        return empty(*args, device=device, **kwargs)

    def from_dlpack(array):
        record("torch.from_dlpack", None)
        return torch.from_numpy(np.asarray(array.view(np.ndarray)))

    monkeypatch.setattr(cupy, "from_dlpack", from_dlpack_checked)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: torch_devices[-1])
    monkeypatch.setattr(torch.cuda, "current_stream", lambda index: types.SimpleNamespace(cuda_stream=1000 + index))
    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.Tensor, "to", upload)
    monkeypatch.setattr(torch, "empty", allocate)
    monkeypatch.setattr(torch, "from_dlpack", from_dlpack)
    yield log


def test_cuda_tensors_run_on_their_device_and_pytorchs_stream(emulated_torch_cuda, rng):
    """Hand-overs in and out and the kernels all run on the tensors' device (1, not the
    current 0) and on PyTorch's current stream there."""
    torch = pytest.importorskip("torch")
    image = rng.random((30, 27, 3), dtype=np.float32)
    kernels = rng.random((2, 5, 4), dtype=np.float32)
    weights = rng.random((2, 26, 24), dtype=np.float32)
    blurred = fastblur.blur_masked(*(_CudaTensor(a, 1) for a in (image, kernels, weights)))
    assert isinstance(blurred, torch.Tensor)
    expected = fastblur.blur_masked(image, kernels, weights, backend="numpy")
    np.testing.assert_allclose(blurred.numpy(), expected, rtol=0, atol=1e-5)
    state = cupy_standin.STATE
    assert state.handovers == [(1, 1001)] * 3 and state.launches == [(1, 1001, False)]
    # PyTorch's device entered first (its DLPack export checks it), then CuPy's and the stream
    assert emulated_torch_cuda == [("torch.cuda.device", 1, 0, 0), ("torch.from_dlpack", None, 1, 1001)]
    assert state.device == 0 and state.stream.ptr == 0  # restored


@pytest.mark.filterwarnings("ignore:.*pin_memory:UserWarning")
def test_loader_forms_cuda_batches_on_pytorchs_stream(emulated_torch_cuda):
    """SBDDLoader's CUDA branch on device 1: recipes uploaded on PyTorch's stream there,
    formed there in memory from PyTorch's allocator, copied into PyTorch's tensors;
    the pairs are the CPU loader's."""
    torch = pytest.importorskip("torch")
    from fastblur.torch import SBDDLoader

    options = dict(batch_size=3, length=5, crop_size=32, kernel_size=15, max_objects=2, min_object_area=200, seed=4)
    on_gpu = list(SBDDLoader(device="cuda:1", **options))
    on_cpu = list(SBDDLoader(device="cpu", **options))
    assert [b.shape for b, _ in on_gpu] == [(3, 3, 32, 32), (2, 3, 32, 32)]
    for (blurry, sharp), (cpu_blurry, cpu_sharp) in zip(on_gpu, on_cpu, strict=True):
        assert blurry.dtype == sharp.dtype == torch.float32
        assert torch.equal(sharp, cpu_sharp)
        assert float((blurry - cpu_blurry).abs().max()) <= 1 / 255 + 1e-6
    events = {event for event, *_ in emulated_torch_cuda}
    assert events == {"torch.cuda.device", "upload", "torch.empty"}
    for event, index, device, stream in emulated_torch_cuda:
        if event != "torch.cuda.device":
            assert (index, device, stream) == (1, 1, 1001), event
    state = cupy_standin.STATE
    assert state.launches and set(state.launches) == {(1, 1001, True)}  # PyTorch's memory
    assert set(state.handovers) == {(1, 1001)}
    assert state.devices == [0] and state.allocators == [None]


@pytest.mark.parametrize("cupy_14", [True, False])
def test_on_cuda_stream_enters_the_device_then_the_stream(standin_cupy, monkeypatch, cupy_14):
    """CuPy < 14 wraps the stream with ExternalStream (deprecated from 14 on); either way
    the wrapper belongs to the device entered, so CuPy accepts it there."""
    import cupy

    from fastblur._array_module import on_cuda_stream

    if not cupy_14:
        monkeypatch.setattr(cupy.cuda, "Stream", type("Stream", (), {}))
        monkeypatch.setattr(cupy.cuda, "ExternalStream", cupy_standin.Stream, raising=False)
    with on_cuda_stream(1, 77):
        assert (cupy_standin.STATE.device, cupy_standin.STATE.stream.ptr) == (1, 77)
        assert cupy_standin.STATE.stream.device_id == 1
    assert (cupy_standin.STATE.device, cupy_standin.STATE.stream.ptr) == (0, 0)


def test_loader_device_auto_takes_cuda_where_pytorch_and_cupy_see_it(emulated_gpu, monkeypatch, caplog):
    import logging

    torch = pytest.importorskip("torch")
    from fastblur.torch import SBDDLoader

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with caplog.at_level(logging.INFO, logger="fastblur"):
        loader = SBDDLoader(length=4, batch_size=2, crop_size=32, kernel_size=7, seed=0)
    assert loader.device == "cuda"
    assert "SBDDLoader(device='auto'): pairs are formed on 'cuda': PyTorch and CuPy both see a CUDA device" in caplog.text
