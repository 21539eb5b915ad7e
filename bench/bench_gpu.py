"""GPU: 720p six-kernel blur_masked (single, batched, batched crops) against naive peers.

Targets (issue 7, H100/H200): >= 1000 images/s for 720p blur_masked with data on the
GPU, >= 10x the naive loop of cupyx.scipy.signal.fftconvolve (one call per kernel).
Images/s = ``extra_info["images"]`` / mean round time. Every round ends with a device
synchronisation, so the GPU work is inside the timing. Skipped without CuPy and a CUDA
device.
"""
import numpy as np
import pytest

import fastblur
from fastblur.cli.bench_cases import sbdd_case

status = fastblur.backend_info().get("cupy", "not registered")
pytestmark = pytest.mark.skipif(status != "available", reason=f"cupy backend unavailable: {status}")


def _synchronized(function):
    """``function`` followed by a device-wide synchronisation (whatever stream it used)."""
    import cupy

    def run():
        result = function()
        cupy.cuda.Device().synchronize()
        return result

    return run


@pytest.fixture(scope="module")
def case_gpu():
    import cupy

    return tuple(cupy.asarray(array) for array in sbdd_case(720, 1280))


@pytest.fixture(scope="module")
def crops_gpu():
    import cupy

    image, kernels, weights = sbdd_case(720, 1280)
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, 720 - 256 - 64, 16), rng.integers(0, 1280 - 256 - 64, 16)
    images = np.stack([image[r : r + 320, c : c + 320] for r, c in zip(rows, cols)])
    crop_weights = np.stack([weights[:, r : r + 256, c : c + 256] for r, c in zip(rows, cols)])
    batch_kernels = np.repeat(kernels[None], 16, axis=0)
    return cupy.asarray(images), cupy.asarray(batch_kernels), cupy.asarray(crop_weights)


@pytest.fixture(scope="module")
def batch_gpu(case_gpu):
    """16 copies of the 720p case: ``(images, kernels, weights)`` with a batch axis."""
    import cupy

    return tuple(cupy.ascontiguousarray(cupy.broadcast_to(a, (16,) + a.shape)) for a in case_gpu)


@pytest.mark.benchmark(group="gpu-720p-6x65")
def bench_blur_masked_cupy(benchmark, case_gpu):
    image, kernels, weights = case_gpu
    benchmark.extra_info["images"] = 1
    benchmark(_synchronized(lambda: fastblur.blur_masked(image, kernels, weights, backend="cupy")))


@pytest.mark.benchmark(group="gpu-720p-6x65-batch16")
def bench_blur_masked_batch16_cupy(benchmark, batch_gpu):
    """The throughput target: 16 720p images per call (divide by ``extra_info["images"]``)."""
    images, kernels, weights = batch_gpu
    benchmark.extra_info["images"] = len(images)
    benchmark(_synchronized(lambda: fastblur.blur_masked_batch(images, kernels, weights, backend="cupy")))


@pytest.mark.benchmark(group="gpu-720p-6x65")
def bench_naive_cupyx_fftconvolve(benchmark, case_gpu):
    try:
        from cupyx.scipy.signal import fftconvolve  # imports cupyx.scipy.linalg: needs cuBLAS
    except ImportError as error:
        pytest.skip(f"cupyx.scipy.signal unavailable: {error}")

    image, kernels, weights = case_gpu
    benchmark.extra_info["images"] = 1

    def naive():
        return sum(
            w[:, :, None] * fftconvolve(image, k[:, :, None], mode="valid", axes=(0, 1))
            for k, w in zip(kernels, weights)
        )

    benchmark(_synchronized(naive))


@pytest.mark.benchmark(group="gpu-720p-6x65")
def bench_torch_conv2d(benchmark, case_gpu):
    torch = pytest.importorskip("torch")
    image, kernels, weights = (torch.from_dlpack(a) for a in case_gpu)
    planes = image.permute(2, 0, 1)[:, None].contiguous()  # (C, 1, H, W), made once
    filters = torch.flip(kernels, dims=(1, 2))[:, None].contiguous()  # conv2d correlates: flip
    # cuDNN convolutions default to TF32 on Ampere and later (10-bit mantissa): a faster,
    # less exact peer than float32. Recorded, not changed.
    benchmark.extra_info.update(images=1, tf32=torch.backends.cudnn.allow_tf32)

    def conv():
        filtered = torch.nn.functional.conv2d(planes, filters)  # (C, N, Ho, Wo)
        result = (filtered * weights[None]).sum(dim=1)
        torch.cuda.synchronize()
        return result

    benchmark(conv)


@pytest.mark.benchmark(group="gpu-batch16-256")
def bench_blur_masked_batch_cupy(benchmark, crops_gpu):
    images, kernels, weights = crops_gpu
    benchmark.extra_info["images"] = len(images)
    benchmark(_synchronized(lambda: fastblur.blur_masked_batch(images, kernels, weights, backend="cupy")))


@pytest.mark.benchmark(group="gpu-batch16-256")
def bench_blur_masked_crops_one_by_one(benchmark, crops_gpu):
    images, kernels, weights = crops_gpu
    benchmark.extra_info["images"] = len(images)
    benchmark(_synchronized(lambda: [fastblur.blur_masked(i, k, w, backend="cupy") for i, k, w in zip(images, kernels, weights)]))
