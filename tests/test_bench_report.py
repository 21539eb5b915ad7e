"""The benchmark report runs end to end on a small image and reports sane ratios."""
import os

import numpy as np

from fastblur.cli import bench
from fastblur.cli.bench_cases import motion_kernel, sbdd_case


def test_report_rows_and_ratios(capsys):
    assert bench.main(["--height", "96", "--width", "128", "--repeat", "1", "--threads", "1",
                       "--backends", "numpy", "auto", "--cases", "sbdd", "uniform15", "--explain"]) == 0
    table = capsys.readouterr().out
    assert "| sbdd | 1 | fftconvolve (1 kernel) |" in table
    assert "blur_masked[numpy]" in table and "convolve[auto]" in table and "cv2.filter2D" in table
    assert "<- chosen" in table and "native build:" in table
    results = bench.run(96, 128, 1, (1,), ["numpy"], ("sbdd",))
    assert results[0]["ratio"] == 1.0
    assert all(row["ms"] > 0 for row in results)


def test_motion_kernels_are_sparse_normalised_psfs():
    kernel = motion_kernel(65, rng=3)
    assert kernel.shape == (65, 65) and kernel.dtype == np.float32
    assert abs(kernel.sum() - 1) < 1e-5 and kernel.min() >= 0
    assert 60 <= np.count_nonzero(kernel) <= 300


def test_sbdd_case_weights_partition_unity():
    image, kernels, weights = sbdd_case(120, 160, n_kernels=3, size=9)
    assert image.shape == (120, 160, 3) and weights.shape == (3, 112, 152)
    np.testing.assert_allclose(weights.sum(axis=0), 1, atol=1e-5)
    assert (weights == 0).mean() > 0.3  # zero over large areas: the skipping has work to do


def test_report_times_the_gpu_with_data_on_it(monkeypatch, cupy_host_kernels):
    """On the CPU stand-in for CuPy (tests/cupy_standin.py): the cupy rows, with and
    without transfers, run and time the same computation."""
    import types

    import cupy_standin

    cupy_standin.install(monkeypatch, cupy_host_kernels)
    import cupy

    synchronised = []
    cupy.cuda.get_current_stream = lambda: types.SimpleNamespace(synchronize=lambda: synchronised.append(1))
    cupy_standin.reload_backend()
    import sys

    from fastblur.backends import get_backend

    get_backend("cupy")
    module = sys.modules[cupy_standin.BACKEND_MODULE]
    chosen = []
    choose = module.choose_method
    monkeypatch.setattr(module, "choose_method", lambda *args: chosen.append(choose(*args)) or chosen[-1])
    try:
        results = bench.run(96, 128, 1, (1,), ["cupy"], ("sbdd", "uniform15"))
    finally:
        cupy_standin.reload_backend()
    methods = [row["method"] for row in results]
    for label in ("blur_masked", "convolve"):
        assert methods.index(f"{label}[cupy, on GPU]") == methods.index(f"{label}[cupy]") + 1
    first = methods.index("blur_masked[cupy, on GPU]")
    # blur_masked's two GPU methods, each forced, follow (and the choice is left as it was)
    assert methods[first + 1 : first + 3] == ["blur_masked[cupy, on GPU, fft]", "blur_masked[cupy, on GPU, direct]"]
    assert "FASTBLUR_GPU_METHOD" not in os.environ and {"fft", "direct"} <= set(chosen)
    assert len(synchronised) == 8  # warm-up and one timed call, for each on-GPU row
    assert all(row["ms"] > 0 for row in results)


def test_projective_rows_and_case():
    from fastblur.cli.bench_cases import projective_case
    from fastblur.kernels import camera_motion

    image, homographies = projective_case(96, 128)
    assert image.shape == (96, 128, 3) and homographies.shape == (96, 3, 3)
    assert 0 <= image.min() and image.max() <= 1
    centre = np.array([63.5, 47.5, 1.0])
    path = homographies @ centre
    path = path[:, :2] / path[:, 2:]
    assert abs(np.ptp(path, axis=0).max() - 30) < 0.5  # about 30 px (tan is nearly linear)
    roll = np.degrees(np.abs(np.arctan2(homographies[:, 1, 0] - homographies[:, 0, 1],
                                        homographies[:, 0, 0] + homographies[:, 1, 1])).max())
    assert 0.5 < roll < 0.7
    results = bench.run(96, 128, 1, (1,), ["native"], ("projective",))
    methods = [row["method"] for row in results]
    assert methods[0] == "fftconvolve (65x65)" and "projective_blur[native]" in methods
    assert any(line.endswith("faster than the cv2 warp-sum") for line in bench.warp_sum_speedups(results))
