"""720p, a 96-sample camera trajectory (about 30 px, 0.6 degree roll): projective_blur.

Targets (issue 13, one thread, 3 channels, float32): projective_blur <= 2.0x one 65x65
fftconvolve of the same image, and >= 5x faster than the OpenCV warp-sum of the same
samples (96 ``cv2.warpPerspective``).
"""
import numpy as np
import pytest
import scipy.signal

import fastblur
from fastblur.cli.bench import warp_sum
from fastblur.cli.bench_cases import motion_kernels, projective_case


@pytest.fixture(scope="module")
def case():
    return projective_case(720, 1280)


@pytest.mark.benchmark(group="projective-720p-96")
def bench_uniform_fftconvolve_65(benchmark, case):
    image, _ = case
    padded = np.pad(image, ((32, 32), (32, 32), (0, 0)), mode="reflect")
    kernel = motion_kernels(1, 65)[0][:, :, None]
    benchmark(scipy.signal.fftconvolve, padded, kernel, mode="valid", axes=(0, 1))


@pytest.mark.benchmark(group="projective-720p-96")
def bench_cv2_warp_sum(benchmark, case):
    pytest.importorskip("cv2")
    benchmark.pedantic(warp_sum, case, rounds=3)


@pytest.mark.benchmark(group="projective-720p-96")
@pytest.mark.parametrize("backend", ["native", "numba", "auto"])
def bench_projective_blur(benchmark, case, backend):
    if backend != "auto" and backend not in fastblur.available_backends():
        pytest.skip(f"backend {backend!r} unavailable")
    image, homographies = case
    benchmark(fastblur.projective_blur, image, homographies, backend=backend)
