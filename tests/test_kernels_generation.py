"""PSF generators: camera shake, Boracchi-Foi trajectories, linear motion, rasterising."""
import math

import numpy as np
import pytest

import fastblur
from fastblur.kernels import (
    camera_shake, centroid, extent, linear_motion, nonzero_taps, trajectory_kernel,
)
from fastblur.kernels import shake as shake_module
from fastblur.kernels.shake import _shake_angles, camera_shake_trajectory
from fastblur.kernels.rasterize import splat_polyline
from fastblur.kernels.trajectory import random_trajectory


def covariance(kernel):
    """Weighted covariance of tap positions as (x, y) = (col, row), and its eigen-decomposition."""
    rows, cols = np.indices(kernel.shape)
    pos = np.stack([cols.ravel(), rows.ravel()]).astype(np.float64)
    w = kernel.ravel().astype(np.float64)
    mean = pos @ w / w.sum()
    d = pos - mean[:, None]
    cov = (d * w) @ d.T / w.sum()
    return np.linalg.eigh(cov)


GENERATORS = {
    "camera_shake": lambda size, rng: camera_shake(size=size, rng=rng),
    "trajectory": lambda size, rng: trajectory_kernel(size=size, length=size - 5, rng=rng),
    "linear": lambda size, rng: linear_motion(size / 2 - 1, 37.0, size=size),
}


# ---------------------------------------------------------------- contract of every generator

@pytest.mark.parametrize("model", sorted(GENERATORS))
@pytest.mark.parametrize("size", [65, 64, 33])
def test_shape_dtype_normalised_non_negative(model, size):
    for seed in range(3):
        k = GENERATORS[model](size, seed)
        assert k.shape == (size, size)
        assert k.dtype == np.float32
        assert k.min() >= 0
        assert abs(float(k.sum(dtype=np.float64)) - 1.0) < 1e-5


@pytest.mark.parametrize("model", sorted(GENERATORS))
@pytest.mark.parametrize("size", [65, 64])
def test_centroid_on_kernel_centre(model, size):
    c = (size - 1) // 2
    for seed in range(5):
        r, col = centroid(GENERATORS[model](size, seed))
        # The contract is 0.5 px; centring the trajectory's centroid is exact to rounding.
        assert abs(r - c) < 1e-3 and abs(col - c) < 1e-3, (seed, r, col)


@pytest.mark.parametrize("model", sorted(GENERATORS))
def test_blurring_a_point_does_not_move_it(model):
    # Independent check of the centring convention with fastblur.convolve ('same' mode).
    kernel = GENERATORS[model](65, 11)
    image = np.zeros((129, 140), dtype=np.float64)
    image[61, 70] = 1.0
    blurred = fastblur.convolve(image, kernel.astype(np.float64), mode="same", boundary="constant")
    assert abs(blurred.sum() - 1.0) < 1e-5
    r, c = centroid(blurred)
    assert abs(r - 61) < 1e-3 and abs(c - 70) < 1e-3


@pytest.mark.parametrize("make", [
    lambda rng: camera_shake(rng=rng),
    lambda rng: trajectory_kernel(rng=rng),
])
def test_same_seed_same_kernel_other_seed_other_kernel(make):
    a, b = make(123), make(123)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(make(np.random.default_rng(123)), a)
    assert not np.array_equal(make(124), a)
    # A Generator is consumed: two draws from one generator differ.
    g = np.random.default_rng(5)
    assert not np.array_equal(make(g), make(g))


# ---------------------------------------------------------------- rasterising

def test_bilinear_splat_of_a_point_has_exact_weights():
    # A zero-length segment at (x, y) = (1.25, 2.5): weights (1 - fx)(1 - fy) etc.
    out = splat_polyline(np.array([[1.25, 2.5], [1.25, 2.5]]), np.array([2.0]), 5)
    expected = np.zeros((5, 5))
    expected[2, 1], expected[2, 2] = 0.75 * 0.5 * 2, 0.25 * 0.5 * 2
    expected[3, 1], expected[3, 2] = 0.75 * 0.5 * 2, 0.25 * 0.5 * 2
    np.testing.assert_allclose(out, expected, atol=1e-15)


# ---------------------------------------------------------------- linear motion

def test_linear_motion_horizontal_is_the_box_integrated_against_a_tent():
    # Box on [-2, 2] against the bilinear tent: taps at +-2 get 1/2 of the others.
    k = linear_motion(4, 0)
    assert k.shape == (5, 5)
    np.testing.assert_allclose(k[2], [0.125, 0.25, 0.25, 0.25, 0.125], atol=1e-6)
    assert k[[0, 1, 3, 4]].sum() == 0


def test_linear_motion_subpixel_length_and_fractional_ends():
    # Length 3 from x = c - 1.5 to c + 1.5; the tent of each tap integrated over [-1.5, 1.5]:
    # tap 0 -> 1, taps +-1 -> 0.875, taps +-2 -> 0.125 (total 3, the segment's length).
    k = linear_motion(3, 180, size=7)
    np.testing.assert_allclose(k[3], np.array([0, 0.125, 0.875, 1, 0.875, 0.125, 0]) / 3, atol=2e-4)


@pytest.mark.parametrize("length, angle", [(10.0, 0.0), (20.0, 30.0), (17.5, 115.0), (31.0, 90.0)])
def test_linear_motion_second_moments_match_a_uniform_segment(length, angle):
    vals, vecs = covariance(linear_motion(length, angle))
    # Along the motion: variance of U(-L/2, L/2) is L^2/12, plus at most 1/4 from splatting.
    assert length ** 2 / 12 <= vals[1] <= length ** 2 / 12 + 0.26
    assert vals[0] <= 0.26
    direction = np.array([math.cos(math.radians(angle)), -math.sin(math.radians(angle))])
    assert abs(vecs[:, 1] @ direction) > 0.9995


def test_linear_motion_size_and_symmetry():
    assert linear_motion(10, 0).shape == (11, 11)
    assert linear_motion(10, 45).shape == (9, 9)  # reach 5 cos 45 = 3.54 -> 2*4+1
    assert linear_motion(0, 12).tolist() == [[1.0]]
    np.testing.assert_allclose(linear_motion(14, 20, size=21), linear_motion(14, 200, size=21), atol=1e-6)


@pytest.mark.parametrize("kwargs, error", [
    (dict(length=-1, angle=0), ValueError),
    (dict(length=float("nan"), angle=0), ValueError),
    (dict(length=3, angle=float("inf")), ValueError),
    (dict(length="3", angle=0), TypeError),
    (dict(length=10, angle=0, size=9), ValueError),
    (dict(length=10, angle=0, size=10.0), TypeError),
    (dict(length=2, angle=0, size=0), ValueError),
])
def test_linear_motion_bad_arguments(kwargs, error):
    with pytest.raises(error, match=r"length|angle|size"):
        linear_motion(**kwargs)


# ---------------------------------------------------------------- Boracchi-Foi trajectories

def test_trajectory_path_has_the_requested_length():
    points = random_trajectory(length=40, anxiety=0.05, rng=3)
    steps = np.hypot(*np.diff(points, axis=0).T)
    np.testing.assert_allclose(steps, 40 / (len(points) - 1), rtol=1e-9)


@pytest.mark.parametrize("exposure", [1.0, 0.5, 0.3])
def test_trajectory_without_anxiety_is_a_straight_segment(exposure):
    # anxiety = 0: no perturbation, so the PSF is a segment of length * exposure pixels.
    length = 40.0
    vals, _ = covariance(trajectory_kernel(size=65, length=length, anxiety=0, exposure=exposure, rng=4))
    seg = length * exposure
    assert seg ** 2 / 12 * 0.995 <= vals[1] <= seg ** 2 / 12 + 0.26
    assert vals[0] <= 0.26


def test_trajectory_exposure_is_a_prefix_of_the_same_path():
    # The same seed draws the same trajectory; a shorter exposure integrates a prefix of it.
    for seed in range(10):
        full = trajectory_kernel(length=50, anxiety=0.02, exposure=1.0, rng=seed)
        part = trajectory_kernel(length=50, anxiety=0.02, exposure=0.25, rng=seed)
        assert extent(part) <= extent(full) + 1
        assert nonzero_taps(part) < nonzero_taps(full)


def test_trajectory_anxiety_bends_the_path():
    # More anxiety -> more curvature -> smaller extent for the same length (averaged).
    straight = np.mean([extent(trajectory_kernel(length=40, anxiety=0.0, rng=s)) for s in range(20)])
    erratic = np.mean([extent(trajectory_kernel(length=40, anxiety=0.1, rng=s)) for s in range(20)])
    assert straight > 30 and erratic < 0.7 * straight


def test_trajectory_statistics_within_documented_range():
    kernels = [trajectory_kernel(rng=np.random.default_rng([0, i])) for i in range(200)]
    mean_extent = np.mean([extent(k) for k in kernels])
    mean_taps = np.mean([nonzero_taps(k) for k in kernels])
    assert 18 <= mean_extent <= 25, mean_extent
    assert 110 <= mean_taps <= 140, mean_taps


@pytest.mark.parametrize("kwargs, error", [
    (dict(anxiety=1.5), ValueError),
    (dict(anxiety=-0.1), ValueError),
    (dict(exposure=0.0), ValueError),
    (dict(exposure=1.2), ValueError),
    (dict(length=0), ValueError),
    (dict(size=3.0), TypeError),
    (dict(rng="seed"), TypeError),
])
def test_trajectory_bad_arguments(kwargs, error):
    with pytest.raises(error, match=r"anxiety|exposure|length|size|rng"):
        trajectory_kernel(**kwargs)


def test_trajectory_too_long_for_size_raises_after_redraws():
    with pytest.raises(ValueError, match=r"size=9"):
        trajectory_kernel(size=9, length=100, anxiety=0.0, rng=0)


# ---------------------------------------------------------------- camera shake model

def test_tremor_alone_is_a_band_limited_oscillation_at_f0():
    # Drift off: the angle is the AR(2) resonator; its spectrum peaks at f0 and its RMS is
    # the requested one (stationary from the first sample).
    rng = np.random.default_rng(0)
    n, dt, f0, rms = 40000, 1e-3, 10.0, 0.5e-3
    noise = rng.standard_normal((2, 2 * n + 2))
    angles = _shake_angles(noise, dt, f0, rms, 0.0, 1.0)
    assert angles.shape == (n, 2)
    np.testing.assert_allclose(angles.std(axis=0), rms, rtol=0.05)
    np.testing.assert_allclose(angles[:200].std(), rms, rtol=0.25)  # no start-up transient
    spectrum = np.abs(np.fft.rfft(angles[:, 0])) ** 2
    freqs = np.fft.rfftfreq(n, dt)
    smooth = np.convolve(spectrum, np.ones(101) / 101, mode="same")
    assert abs(freqs[np.argmax(smooth)] - f0) < 0.5
    # Share of power in 7-13 Hz against the continuous resonator
    # |H(f)|^2 = 1 / ((1 - (f/f0)^2)^2 + (2 zeta f/f0)^2) it discretises.
    zeta = shake_module.TREMOR_DAMPING
    fine = np.linspace(0, 500, 500001)
    response = 1 / ((1 - (fine / f0) ** 2) ** 2 + (2 * zeta * fine / f0) ** 2)
    expected = response[(fine > 7) & (fine < 13)].sum() / response.sum()
    band = (freqs > 7) & (freqs < 13)
    measured = spectrum[band].sum() / spectrum.sum()
    assert expected > 0.65
    assert abs(measured - expected) < 0.04, (measured, expected)


def test_drift_alone_is_a_smooth_random_walk():
    # Tremor off: angular velocity is OU with RMS sigma_v and corner fc; increments over a
    # lag D have variance 2 sigma_v^2 tau (D - tau (1 - exp(-D / tau))), tau = 1 / (2 pi fc).
    rng = np.random.default_rng(1)
    n, dt, sigma_v, fc = 400000, 1e-3, 30e-3, 1.0
    noise = rng.standard_normal((2, 2 * n + 2))
    angles = _shake_angles(noise, dt, 10.0, 0.0, sigma_v, fc)
    tau = 1 / (2 * np.pi * fc)
    velocity = np.diff(angles, axis=0) / dt
    np.testing.assert_allclose(velocity.std(axis=0), sigma_v, rtol=0.1)
    for lag_s in (0.05, 0.5, 2.0):
        lag = int(lag_s / dt)
        measured = np.var(angles[lag:] - angles[:-lag], axis=0).mean()
        expected = 2 * sigma_v ** 2 * tau * (lag_s - tau * (1 - np.exp(-lag_s / tau)))
        assert abs(measured / expected - 1) < 0.2, (lag_s, measured, expected)


def test_focal_length_scales_the_trajectory():
    # The angles do not depend on the focal length: the image-plane path scales with it.
    for seed in range(5):
        a = camera_shake_trajectory(exposure=0.5, focal_length=1000, rng=seed)
        b = camera_shake_trajectory(exposure=0.5, focal_length=2500, rng=seed)
        np.testing.assert_allclose(b, 2.5 * a, rtol=1e-6, atol=1e-9)


def test_extent_grows_with_focal_length_and_exposure():
    def mean_rms_radius(**kwargs):
        radii = [np.sqrt(covariance(camera_shake(size=129, rng=s, **kwargs))[0].sum())
                 for s in range(30)]
        return np.mean(radii)

    r_f500 = mean_rms_radius(exposure=0.5, focal_length=500)
    r_f1000 = mean_rms_radius(exposure=0.5, focal_length=1000)
    r_f2000 = mean_rms_radius(exposure=0.5, focal_length=2000)
    assert 1.6 < r_f1000 / r_f500 < 2.1 and 1.8 < r_f2000 / r_f1000 < 2.1
    r_t01 = mean_rms_radius(exposure=0.1, focal_length=1000)
    r_t1 = mean_rms_radius(exposure=1.0, focal_length=1000)
    # Drift: ~exposure below its 0.16 s time constant, ~sqrt(exposure) above.
    assert r_t01 < r_f1000 / 2 and r_t1 > 1.3 * r_f1000


def test_camera_shake_statistics_within_documented_range():
    kernels = [camera_shake(rng=np.random.default_rng([0, i])) for i in range(200)]
    mean_extent = np.mean([extent(k) for k in kernels])
    mean_taps = np.mean([nonzero_taps(k) for k in kernels])
    assert 14 <= mean_extent <= 19, mean_extent
    assert 50 <= mean_taps <= 80, mean_taps
    assert max(extent(k) for k in kernels) <= 65


def test_camera_shake_redraws_kernels_that_do_not_fit(monkeypatch):
    # Count draws: at size 17 many default trajectories do not fit and are redrawn.
    calls = []
    original = shake_module._draw_points

    def counting(*args):
        calls.append(1)
        return original(*args)

    monkeypatch.setattr(shake_module, "_draw_points", counting)
    kernels = [camera_shake(size=17, rng=s) for s in range(20)]
    assert len(calls) > 20
    assert all(extent(k) <= 17 for k in kernels)


def test_camera_shake_that_cannot_fit_raises():
    with pytest.raises(ValueError, match=r"size=5.*exposure=2.0.*focal_length=5000"):
        camera_shake(size=5, exposure=2.0, focal_length=5000, rng=0)


@pytest.mark.parametrize("kwargs, error", [
    (dict(size=0), ValueError),
    (dict(size=65.0), TypeError),
    (dict(exposure=0), ValueError),
    (dict(exposure=-0.5), ValueError),
    (dict(focal_length=float("nan")), ValueError),
    (dict(focal_length="1000"), TypeError),
    (dict(rng=-1), ValueError),
    (dict(rng=1.5), TypeError),
])
def test_camera_shake_bad_arguments(kwargs, error):
    with pytest.raises(error, match=r"size|exposure|focal_length|rng"):
        camera_shake(**kwargs)
