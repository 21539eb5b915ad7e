"""GPU: 720p six-kernel blur_masked (single and batched crops) against naive peers.

Targets (issue 7, H100/H200): >= 1000 images/s for 720p blur_masked with data on the
GPU, >= 10x the naive loop of cupyx.scipy.signal.fftconvolve (one call per kernel).
Skipped without CuPy and a CUDA device.
"""
import numpy as np
import pytest

import fastblur
from fastblur.cli.bench_cases import sbdd_case

status = fastblur.backend_info().get("cupy", "not registered")
pytestmark = pytest.mark.skipif(status != "available", reason=f"cupy backend unavailable: {status}")


def _synchronized(function):
    import cupy

    def run():
        result = function()
        cupy.cuda.get_current_stream().synchronize()
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


@pytest.mark.benchmark(group="gpu-720p-6x65")
def bench_blur_masked_cupy(benchmark, case_gpu):
    image, kernels, weights = case_gpu
    benchmark(_synchronized(lambda: fastblur.blur_masked(image, kernels, weights, backend="cupy")))


@pytest.mark.benchmark(group="gpu-720p-6x65")
def bench_naive_cupyx_fftconvolve(benchmark, case_gpu):
    from cupyx.scipy.signal import fftconvolve

    image, kernels, weights = case_gpu

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
    planes = image.permute(2, 0, 1)[:, None]  # (C, 1, H, W)
    filters = torch.flip(kernels, dims=(1, 2))[:, None]  # conv2d correlates

    def conv():
        filtered = torch.nn.functional.conv2d(planes, filters)  # (C, N, Ho, Wo)
        return (filtered * weights[None]).sum(dim=1)

    benchmark(_synchronized(lambda: (conv(), torch.cuda.synchronize())))


@pytest.mark.benchmark(group="gpu-batch16-256")
def bench_blur_masked_batch_cupy(benchmark, crops_gpu):
    images, kernels, weights = crops_gpu
    benchmark(_synchronized(lambda: fastblur.blur_masked_batch(images, kernels, weights, backend="cupy")))


@pytest.mark.benchmark(group="gpu-batch16-256")
def bench_blur_masked_crops_one_by_one(benchmark, crops_gpu):
    images, kernels, weights = crops_gpu
    benchmark(_synchronized(lambda: [fastblur.blur_masked(i, k, w, backend="cupy") for i, k, w in zip(images, kernels, weights)]))
