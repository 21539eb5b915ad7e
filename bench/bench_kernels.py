"""Kernel generation speed (pytest-benchmark).

Run: ``PYTHONPATH=. python -m pytest bench/bench_kernels.py --benchmark-columns=mean,median,stddev``

Target (issue 4): one 65 x 65 camera-shake kernel in <= 2 ms on one core, so SBDD
generation can draw kernels on the fly. The peer is what it replaces: reading one
65 x 65 SBDD kernel file (``.mat``, key ``K``) from disk with :func:`fastblur.kernels.load`.
Everything here runs on one core (the generators are single-threaded numba/numpy).
"""
import numpy as np
import pytest

from fastblur.kernels import camera_shake, linear_motion, load, save, trajectory_kernel
from fastblur.kernels.rasterize import rasterize_centred
from fastblur.kernels.shake import camera_shake_trajectory


@pytest.fixture(scope="module", autouse=True)
def compiled():
    # numba compiles (or loads its cache) on first call; keep that out of the timings.
    camera_shake(rng=0), trajectory_kernel(rng=0), linear_motion(5, 10)


class Seeds:
    """A fresh seed every call, as a dataset generator would use."""

    def __init__(self):
        self.i = 0

    def __call__(self):
        self.i += 1
        return np.random.default_rng([0, self.i])


@pytest.mark.benchmark(group="kernel-65")
def test_camera_shake_65(benchmark):
    seeds = Seeds()
    k = benchmark(lambda: camera_shake(65, 0.5, 1000, seeds()))
    assert k.shape == (65, 65)


@pytest.mark.benchmark(group="kernel-65")
def test_peer_load_mat_65(benchmark, tmp_path):
    path = tmp_path / "kernel0000.mat"
    save(path, camera_shake(rng=1).astype(np.float64))
    k = benchmark(load, path)
    assert k.shape == (65, 65)


@pytest.mark.benchmark(group="kernel-65")
def test_trajectory_kernel_65(benchmark):
    seeds = Seeds()
    benchmark(lambda: trajectory_kernel(65, 60, 0.005, 1.0, seeds()))


@pytest.mark.benchmark(group="kernel-65")
def test_linear_motion_65(benchmark):
    rng = np.random.default_rng(0)
    benchmark(lambda: linear_motion(rng.uniform(0, 60), rng.uniform(0, 180), 65))


@pytest.mark.benchmark(group="camera-shake-parts")
def test_part_trajectory_only(benchmark):
    seeds = Seeds()
    benchmark(lambda: camera_shake_trajectory(0.5, 1000, seeds()))


@pytest.mark.benchmark(group="camera-shake-parts")
def test_part_rasterize_only(benchmark):
    points = camera_shake_trajectory(0.5, 1000, 3)
    weights = np.full(len(points) - 1, 1.0 / (len(points) - 1))
    benchmark(rasterize_centred, points, weights, 65)


@pytest.mark.benchmark(group="camera-shake-exposure")
@pytest.mark.parametrize("exposure", [0.1, 0.5, 2.0])
def test_camera_shake_exposure(benchmark, exposure):
    seeds = Seeds()
    benchmark(lambda: camera_shake(129, exposure, 1000, seeds()))
