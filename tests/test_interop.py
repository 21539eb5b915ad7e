"""PyTorch tensors in, tensors out (DLPack); CuPy arrays stay on the device."""
import numpy as np
import pytest

import fastblur
from reference import reference_blur_masked, reference_convolve, reference_smooth_masks, relative_error

CUPY_STATUS = fastblur.backend_info().get("cupy", "not registered")
needs_gpu = pytest.mark.skipif(CUPY_STATUS != "available", reason=f"cupy backend unavailable: {CUPY_STATUS}")


def test_torch_cpu_tensors_round_trip(rng):
    torch = pytest.importorskip("torch")
    image = rng.standard_normal((30, 28, 3)).astype(np.float32)
    kernels = rng.random((2, 5, 5)).astype(np.float32)
    weights = rng.random((2, 26, 24)).astype(np.float32)
    result = fastblur.blur_masked(torch.from_numpy(image), torch.from_numpy(kernels), torch.from_numpy(weights))
    assert isinstance(result, torch.Tensor) and result.device.type == "cpu"
    assert result.dtype == torch.float32 and tuple(result.shape) == (26, 24, 3)
    assert relative_error(result.numpy(), reference_blur_masked(image, kernels, weights, "valid", "reflect")) <= 2e-5


def test_torch_cpu_tensors_round_trip_smooth_masks_batch(rng):
    torch = pytest.importorskip("torch")
    masks = rng.random((2, 1, 20, 18)) > 0.6
    kernels = rng.random((2, 2, 3, 5)).astype(np.float32)
    result = fastblur.smooth_masks_batch(torch.from_numpy(masks), torch.from_numpy(kernels), mode="same")
    assert isinstance(result, torch.Tensor) and result.device.type == "cpu"
    assert result.dtype == torch.float32 and tuple(result.shape) == (2, 2, 20, 18)
    for b in range(2):
        expected = reference_smooth_masks(masks[b], kernels[b], "same", "reflect")
        np.testing.assert_allclose(result[b].numpy(), expected, rtol=0, atol=2e-5)


def test_torch_tensor_requiring_grad_is_accepted(rng):
    torch = pytest.importorskip("torch")
    image = torch.rand(20, 20, dtype=torch.float64, requires_grad=True)
    kernel = rng.random((3, 3))
    result = fastblur.convolve(image, kernel, boundary="wrap")
    expected = reference_convolve(image.detach().numpy(), kernel, "same", "wrap")
    assert result.dtype == torch.float64
    assert relative_error(result.numpy(), expected) <= 1e-12


def test_no_gpu_says_why():
    if CUPY_STATUS == "available":
        pytest.skip("a GPU is present")
    assert CUPY_STATUS.startswith("ImportError")
    with pytest.raises(fastblur.backends.BackendUnavailableError, match="'cupy' is not available here"):
        fastblur.convolve(np.ones((8, 8)), np.ones((3, 3)), backend="cupy")


@pytest.mark.gpu
@needs_gpu
def test_cupy_arrays_stay_on_device(rng):
    import cupy

    image = rng.standard_normal((40, 50, 3)).astype(np.float32)
    kernels = rng.random((3, 7, 6)).astype(np.float32)
    weights = rng.random((3, 34, 45)).astype(np.float32)
    result = fastblur.blur_masked(cupy.asarray(image), cupy.asarray(kernels), cupy.asarray(weights))
    assert isinstance(result, cupy.ndarray)
    assert relative_error(result.get(), reference_blur_masked(image, kernels, weights, "valid", "reflect")) <= 2e-5
    on_cpu = fastblur.convolve(cupy.asarray(image), kernels[0], backend="numpy")
    assert isinstance(on_cpu, cupy.ndarray)


@pytest.mark.gpu
@needs_gpu
def test_torch_cuda_tensors_stay_on_device(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch has no CUDA here")
    images = torch.rand(4, 64, 64, 3, device="cuda")
    kernels = torch.rand(4, 3, 9, 9, device="cuda")
    weights = torch.rand(4, 3, 56, 56, device="cuda")
    result = fastblur.blur_masked_batch(images, kernels, weights)
    assert result.device.type == "cuda" and tuple(result.shape) == (4, 56, 56, 3)
    expected = reference_blur_masked(images[1].cpu().numpy(), kernels[1].cpu().numpy(), weights[1].cpu().numpy(), "valid", "reflect")
    assert relative_error(result[1].cpu().numpy(), expected) <= 2e-5
