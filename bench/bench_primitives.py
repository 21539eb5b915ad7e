"""720p, six 65x65 motion PSFs, SBDD-like weights: blur_masked against its peers.

Targets (issue 2, one thread): blur_masked <= 2.0x one uniform fftconvolve of the same
image; the naive loop of six fftconvolves is about 6x.
"""
import numpy as np
import pytest
import scipy.signal

import fastblur
from fastblur.cli.bench_cases import sbdd_case


@pytest.fixture(scope="module")
def case():
    return sbdd_case(720, 1280)


@pytest.mark.benchmark(group="sbdd-720p-6x65")
def bench_uniform_fftconvolve(benchmark, case):
    image, kernels, _ = case
    benchmark(scipy.signal.fftconvolve, image, kernels[0][:, :, None], mode="valid", axes=(0, 1))


@pytest.mark.benchmark(group="sbdd-720p-6x65")
def bench_naive_loop(benchmark, case):
    image, kernels, weights = case

    def naive():
        return sum(
            w[:, :, None] * scipy.signal.fftconvolve(image, k[:, :, None], mode="valid", axes=(0, 1))
            for k, w in zip(kernels, weights)
        )

    benchmark(naive)


@pytest.mark.benchmark(group="sbdd-720p-6x65")
@pytest.mark.parametrize("backend", fastblur.available_backends() + ["auto"])
def bench_blur_masked(benchmark, case, backend):
    image, kernels, weights = case
    benchmark(fastblur.blur_masked, image, kernels, weights, backend=backend)


@pytest.mark.benchmark(group="smooth-masks-720p-6x65")
@pytest.mark.parametrize("backend", fastblur.available_backends() + ["auto"])
def bench_smooth_masks(benchmark, backend):
    from fastblur.cli.bench_cases import motion_kernels, object_masks

    masks = object_masks((720, 1280), 5)
    kernels = motion_kernels(6, 65)
    benchmark(fastblur.smooth_masks, masks, kernels, backend=backend)


@pytest.mark.benchmark(group="smooth-masks-720p-6x65")
def bench_smooth_masks_fftconvolve(benchmark):
    from fastblur.cli.bench_cases import motion_kernels, object_masks

    masks = object_masks((720, 1280), 5).astype(np.float32)
    kernels = motion_kernels(6, 65)
    stack = np.concatenate([1 - masks.max(axis=0, keepdims=True), masks])

    def reference():
        smoothed = np.stack([scipy.signal.fftconvolve(m, k, mode="valid") for m, k in zip(stack, kernels)])
        return smoothed / (smoothed.sum(axis=0) + 1e-6)

    benchmark(reference)
