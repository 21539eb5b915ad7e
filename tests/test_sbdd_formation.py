"""fastblur.sbdd.synthesize_pair against an independent float64 restatement of DESIGN's
formation model (and of the reference generator's saturation/streak/noise steps).

The restatement below uses scipy.signal.fftconvolve with ``K[::-1, ::-1]`` (the
reference's correlation), float64 powers/logs, scikit-image's closing and Gaussian for
the saturation mask, and draws the random numbers in the order synthesize_pair
documents.

Tolerances (0-255 units, before quantisation): every sample of the blurry image agrees
within 1e-3 in sRGB or, where the inverse response is steep (near black), within 1e-3
in linear light, where the blur is computed: the float32 FFT's absolute error (about
1e-5 of a tile's peak) grows by the slope of ``x ** (1 / 2.2)``, unbounded at 0. No
sample is off by more than 0.1 in sRGB. The sharp target is within 1e-3 everywhere;
the weights within 1e-5.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import fftconvolve

from fastblur.sbdd import (
    NoiseConfig,
    PairResult,
    SaturationConfig,
    StreakConfig,
    quantize,
    synthesize_pair,
)
from fastblur.sbdd import formation

ATOL = 1e-3  # 0-255 units, before quantisation
WEIGHT_ATOL = 1e-5
DARK_ATOL = 0.1  # sRGB, near black where the inverse gamma is steep


# -- independent restatement ----------------------------------------------------------
def _apply(x, kernel):
    """The reference's application of a stored kernel: correlation, 'valid'."""
    if x.ndim == 3:
        return fftconvolve(x, kernel[::-1, ::-1, None], mode="valid")
    return fftconvolve(x, kernel[::-1, ::-1], mode="valid")


def _to_linear(s, crf, gamma, a):
    if crf == "gamma":
        return 255.0 * (s / 255.0) ** gamma
    if crf == "exponential":
        return -255.0 * np.log(1.0 - s / 255.0 + 1e-9) / a
    return s.copy()


def _from_linear(x, crf, gamma, a):
    if crf == "gamma":
        return 255.0 * (x / 255.0) ** (1.0 / gamma)
    if crf == "exponential":
        return 255.0 * (1.0 - np.exp(-a * x / 255.0))
    return x


def _sat_mask(linear, threshold):
    from skimage.filters import gaussian
    from skimage.morphology import closing

    mask = (255 * (linear >= threshold)).astype(np.int64)
    for c in range(mask.shape[2]):
        smoothed = gaussian(closing(mask[:, :, c], np.ones((3, 3))).astype(np.float32), sigma=1)
        mask[:, :, c] = smoothed  # the reference stores it in an integer array
    return mask.astype(np.float64), np.count_nonzero(mask) / (mask.shape[0] * mask.shape[1])


def restate(sharp, kernels, masks, *, gamma=2.2, crf="gamma", a=7.0, gain=None,
            saturation=None, streaks=None, noise=None, rng=None):
    """float64 restatement; returns (blurry, sharp, weights) before quantisation."""
    s = np.asarray(sharp, np.float64)
    kernels = np.asarray(kernels, np.float64)
    height, width, channels = s.shape
    kh, kw = kernels.shape[1:]
    all_masks = [1.0 - np.any(masks, axis=0)] + [m.astype(np.float64) for m in masks]
    smoothed = np.stack([_apply(m, k) for m, k in zip(all_masks, kernels)])
    weights = smoothed / (smoothed.sum(axis=0) + 1e-6)

    linear = _to_linear(s, crf, gamma, a) * (1.0 if gain is None else gain)
    mask = None
    if saturation is not None:
        mask, fraction = _sat_mask(linear, saturation.threshold)
        if fraction < saturation.min_fraction:
            mask = None
    if streaks is not None and rng.random() < streaks.probability:
        for _ in range(rng.integers(streaks.min_count, streaks.max_count)):
            i = rng.integers(kh, height - kh)
            j = rng.integers(kw, width - kw)
            ri, rj = rng.integers(4), rng.integers(5)
            spike = streaks.min_increment + (streaks.max_increment - streaks.min_increment) * rng.random()
            linear[i - ri : i + ri, j - rj : j + rj, :] += spike
    if mask is not None and saturation.boost:
        linear[mask == 255] *= 1 + 4 * rng.random()

    blurry = sum(w[:, :, None] * _apply(linear, k) for w, k in zip(weights, kernels))
    if noise is not None and noise.poisson_peak is not None:
        blurry = rng.poisson(np.maximum(blurry, 0) * noise.poisson_peak / 255.0) * 255.0 / noise.poisson_peak
    if noise is not None and noise.gaussian_std > 0:
        n = rng.standard_normal(blurry.shape, dtype=np.float32).astype(np.float64)
        blurry = blurry + noise.gaussian_std * blurry * n
    if mask is not None and saturation.boost_in_blurry:
        blurred_mask = sum(w[:, :, None] * _apply(mask, k) for w, k in zip(weights, kernels))
        blurry = blurry + blurred_mask * (4 * rng.random())
    blurry = _from_linear(np.clip(blurry, 0, 255), crf, gamma, a)
    ho, wo = blurry.shape[:2]
    target = _from_linear(linear, crf, gamma, a)[kh // 2 : kh // 2 + ho, kw // 2 : kw // 2 + wo]
    restate.linear_peak = float(linear.max())
    return blurry, target, weights


# -- fixtures -------------------------------------------------------------------------
def _photo(height, width):
    from skimage import data

    image = data.astronaut()[80 : 80 + 2 * height : 2, 100 : 100 + 2 * width : 2]
    return np.ascontiguousarray(image)


def _kernels(count, size, rng, shape=None):
    kh, kw = shape or (size, size)
    kernels = np.zeros((count, kh, kw), np.float32)
    for k in kernels:  # sparse, asymmetric motion-like paths plus a little spread
        r, c = kh // 2, kw // 2
        for _ in range(3 * max(kh, kw)):
            k[r, c] += rng.random()
            r = int(np.clip(r + rng.integers(-1, 2), 0, kh - 1))
            c = int(np.clip(c + rng.integers(-1, 2), 0, kw - 1))
        k /= k.sum()
    return kernels


def _masks(height, width, count, rng):
    rows, cols = np.ogrid[:height, :width]
    masks = np.zeros((count, height, width), bool)
    for m in masks:
        r, c = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        a, b = rng.uniform(0.1, 0.25) * height, rng.uniform(0.1, 0.25) * width
        m[((rows - r) / a) ** 2 + ((cols - c) / b) ** 2 < 1] = True
    return masks


@pytest.fixture
def case():
    rng = np.random.default_rng(5)
    sharp = _photo(96, 128)
    return sharp, _kernels(4, 15, rng), _masks(96, 128, 3, rng)


def assert_blurry_close(actual, expected, crf="gamma", gamma=2.2, a=7.0, atol=ATOL):
    """Within atol in sRGB, or within atol in linear light; within DARK_ATOL in sRGB."""
    actual = np.asarray(actual, np.float64)
    srgb_error = np.abs(actual - expected)
    linear_error = np.abs(_to_linear(actual, crf, gamma, a) - _to_linear(expected, crf, gamma, a))
    bad = (srgb_error > atol) & (linear_error > atol)
    assert not bad.any(), (
        f"{bad.sum()} samples off by more than {atol} in both sRGB and linear light; "
        f"worst sRGB {srgb_error[bad].max():.3g} at value {expected[bad][np.argmax(srgb_error[bad])]:.3g}"
    )
    assert srgb_error.max() <= DARK_ATOL * atol / ATOL


def _compare(result, expected, crf="gamma", gamma=2.2, a=7.0, atol=ATOL):
    blurry, target, weights = expected
    assert isinstance(result, PairResult)
    assert result.blurry.dtype == np.float32 and result.sharp.dtype == np.float32
    assert result.blurry.shape == blurry.shape and result.sharp.shape == target.shape
    np.testing.assert_allclose(result.weights, weights, rtol=0, atol=WEIGHT_ATOL)
    assert_blurry_close(result.blurry, blurry, crf, gamma, a, atol)
    np.testing.assert_allclose(result.sharp, target, rtol=0, atol=ATOL)


def _assert_clear_of_threshold(sharp, crf, gain, threshold=255.0):
    """No linear value within 1e-3 of the saturation threshold (float32 vs float64)."""
    linear = _to_linear(sharp.astype(np.float64), crf, 2.2, 7.0) * gain
    assert np.min(np.abs(linear - threshold)) > 1e-3


# -- the formation model --------------------------------------------------------------
@pytest.mark.parametrize("crf", ["gamma", "exponential", None])
@pytest.mark.parametrize("gain", [None, 1.73])
def test_matches_restatement(case, crf, gain):
    sharp, kernels, masks = case
    result = synthesize_pair(sharp, kernels, masks, crf=crf, illumination_gain=gain)
    _compare(result, restate(sharp, kernels, masks, crf=crf, gain=gain), crf)
    assert result.params["illumination_gain"] == (1.0 if gain is None else gain)
    assert result.params["crf"] == crf


def test_custom_gamma_and_exponential_factor(case):
    sharp, kernels, masks = case
    _compare(
        synthesize_pair(sharp, kernels, masks, gamma=1.8),
        restate(sharp, kernels, masks, gamma=1.8), gamma=1.8,
    )
    _compare(
        synthesize_pair(sharp, kernels, masks, crf="exponential", exponential_factor=4.0),
        restate(sharp, kernels, masks, crf="exponential", a=4.0), "exponential", a=4.0,
    )


def test_sharp_target_is_the_crop_without_gain(case):
    sharp, kernels, masks = case
    result = synthesize_pair(sharp, kernels, masks)
    np.testing.assert_allclose(result.sharp, sharp[7:-7, 7:-7], atol=ATOL)


@pytest.mark.parametrize("crf, gain", [("gamma", None), ("gamma", 1.37), ("exponential", None), (None, 1.5)])
def test_sharp_target_bytes_match_the_float64_round_trip(case, crf, gain):
    """8-bit sharp targets truncate as the float64 round trip does (the reference's bytes),
    though the round trip lands just below the integer for many codes."""
    sharp, kernels, masks = case
    result = synthesize_pair(sharp, kernels, masks, crf=crf, illumination_gain=gain)
    _, target, _ = restate(sharp, kernels, masks, crf=crf, gain=gain)
    np.testing.assert_array_equal(result.to_uint8()[1], np.clip(target, 0, 255).astype(np.uint8))
    if crf == "gamma" and gain is None:
        below = np.clip(target, 0, 255).astype(np.uint8) < sharp[7:-7, 7:-7]
        assert below.mean() > 0.1  # the reference's round trip drops a code at many pixels


@pytest.mark.parametrize("crf", ["gamma", "exponential"])
def test_saturation_streaks_and_noise(case, crf):
    sharp, kernels, masks = case
    gain = 2.6  # plenty of samples above 255 in linear light
    _assert_clear_of_threshold(sharp, crf, gain)
    options = dict(
        saturation=SaturationConfig(boost=True, boost_in_blurry=True),
        streaks=StreakConfig(probability=1.0, min_count=5, max_count=12),
        noise=NoiseConfig(gaussian_std=0.02),
    )
    result = synthesize_pair(sharp, kernels, masks, crf=crf, illumination_gain=gain,
                             rng=np.random.default_rng(11), **options)
    expected = restate(sharp, kernels, masks, crf=crf, gain=gain, rng=np.random.default_rng(11), **options)
    # Streaks and boosts push linear values to thousands; the float32 FFT's absolute error
    # scales with a tile's peak, so the tolerance does too: 1e-3 per 255 of linear peak.
    _compare(result, expected, crf, atol=ATOL * max(1.0, restate.linear_peak / 255.0))
    params = result.params
    assert params["saturated_fraction"] > 1e-3
    assert params["saturation_boost"] is not None and 1 <= params["saturation_boost"] <= 5
    assert params["saturation_boost_in_blurry"] is not None
    assert 5 <= len(params["streaks"]) < 12


def test_noise_changes_the_blurry_image_only(case):
    sharp, kernels, masks = case
    clean = synthesize_pair(sharp, kernels, masks)
    noisy = synthesize_pair(sharp, kernels, masks, noise=NoiseConfig(gaussian_std=0.05), rng=3)
    np.testing.assert_array_equal(noisy.sharp, clean.sharp)
    relative = (noisy.blurry - clean.blurry)[clean.blurry > 50] / clean.blurry[clean.blurry > 50]
    # multiplicative noise of 5 % in linear light is ~2.3 % after the 1/2.2 power
    assert 0.015 < relative.std() < 0.03


def test_poisson_noise_formula():
    """Poisson counts of ``B * peak / 255`` scaled back; the draw is rng.poisson in C order."""
    blurry = (np.random.default_rng(0).random((30, 40, 3)) * 300 - 5).astype(np.float32)
    noisy = formation.add_noise(blurry.copy(), np.random.default_rng(9), NoiseConfig(poisson_peak=700.0))
    counts = np.random.default_rng(9).poisson(np.maximum(blurry.astype(np.float64), 0) * 700.0 / 255.0)
    np.testing.assert_allclose(noisy, counts * 255.0 / 700.0, rtol=1e-6, atol=1e-4)


def test_poisson_noise_statistics(case):
    sharp, kernels, masks = case
    clean = synthesize_pair(sharp, kernels, masks, crf=None)
    noisy = synthesize_pair(sharp, kernels, masks, crf=None, noise=NoiseConfig(poisson_peak=400.0), rng=1)
    residual = (noisy.blurry - clean.blurry).astype(np.float64)
    inside = (clean.blurry > 20) & (clean.blurry < 200)  # away from the clip at 0 and 255
    # variance of 255/peak * Poisson(B peak/255) is B * 255 / peak
    ratio = residual[inside] ** 2 / (clean.blurry[inside] * 255.0 / 400.0)
    assert abs(residual[inside].mean()) < 0.1
    assert 0.95 < ratio.mean() < 1.05


def test_noise_drawn_in_row_blocks_equals_one_draw(case, monkeypatch):
    sharp, kernels, masks = case
    options = dict(noise=NoiseConfig(poisson_peak=800.0, gaussian_std=0.03))
    whole = synthesize_pair(sharp, kernels, masks, rng=7, **options)
    monkeypatch.setattr(formation, "_NOISE_CHUNK_ELEMENTS", 1000)
    blocks = synthesize_pair(sharp, kernels, masks, rng=7, **options)
    np.testing.assert_array_equal(whole.blurry, blocks.blurry)


def test_saturation_mask_dropped_below_min_fraction(case):
    sharp, kernels, masks = case
    dark = (sharp // 2).astype(np.uint8)
    result = synthesize_pair(dark, kernels, masks, saturation=SaturationConfig(boost=True), rng=0)
    assert result.params["saturated_fraction"] == 0
    assert result.params["saturation_boost"] is None
    _compare(result, restate(dark, kernels, masks))


def test_saturation_mask_matches_skimage():
    rng = np.random.default_rng(2)
    linear = (rng.random((40, 50, 3)) * 300).astype(np.float32)
    linear[10:20, 10:30] = 400  # a saturated block
    mask, fraction = formation.saturation_mask(linear)
    expected, expected_fraction = _sat_mask(linear.astype(np.float64), 255.0)
    np.testing.assert_array_equal(mask, expected)
    assert fraction == expected_fraction
    assert (mask[14:16, 14:26] >= 254).all() and mask[0:2].max() < 255


# -- kernels, grids, inputs -----------------------------------------------------------
def test_stored_kernel_is_applied_by_correlation():
    """An impulse at tap (a, b) of a stored kernel reads input pixel (r + a, c + b)."""
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    kernel = np.zeros((1, 7, 9), np.float32)
    kernel[0, 1, 6] = 1.0
    result = synthesize_pair(sharp, kernel, np.zeros((0, 40, 50), bool), crf=None)
    expected = sharp[1 : 1 + 34, 6 : 6 + 42].astype(np.float64)
    np.testing.assert_allclose(result.blurry, expected * (1 - 1e-6), atol=ATOL)
    np.testing.assert_array_equal(result.sharp, sharp[3 : 3 + 34, 4 : 4 + 42])


def test_even_kernels_keep_the_valid_grid():
    rng = np.random.default_rng(1)
    sharp = _photo(60, 70)
    kernels = _kernels(3, 0, rng, shape=(8, 10))
    masks = _masks(60, 70, 2, rng)
    result = synthesize_pair(sharp, kernels, masks)
    assert result.blurry.shape == (53, 61, 3) and result.sharp.shape == (53, 61, 3)
    assert result.params["offset"] == [4, 5]
    _compare(result, restate(sharp, kernels, masks))
    # the reference's slice [K//2 : -(K//2)] is this target less its last row/column
    np.testing.assert_allclose(result.sharp[:-1, :-1], sharp[4:-4, 5:-5], atol=ATOL)


def test_background_only_and_grayscale(case):
    sharp, kernels, _ = case
    gray = np.ascontiguousarray(sharp[:, :, 1])
    result = synthesize_pair(gray, kernels[:1], np.zeros((0,) + gray.shape, bool))
    assert result.blurry.ndim == 2 and result.weights.shape == (1, 82, 114)
    blurry, target, _ = restate(gray[:, :, None], kernels[:1], np.zeros((0,) + gray.shape, bool))
    assert_blurry_close(result.blurry, blurry[:, :, 0])
    np.testing.assert_allclose(result.sharp, target[:, :, 0], atol=ATOL)


def test_float_input_matches_uint8(case):
    sharp, kernels, masks = case
    as_uint8 = synthesize_pair(sharp, kernels, masks, crf="exponential", illumination_gain=1.3)
    as_float = synthesize_pair(sharp.astype(np.float64), kernels, masks, crf="exponential", illumination_gain=1.3)
    assert_blurry_close(as_float.blurry, as_uint8.blurry.astype(np.float64), "exponential")
    np.testing.assert_allclose(as_float.sharp, as_uint8.sharp, atol=ATOL)


def test_matches_reference_style_pipeline(case):
    """Parity with bench/sbdd_reference.py (HSV round trip for the gain, fftconvolve)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from sbdd_reference import reference_pair, to_uint8
    finally:
        sys.path.pop(0)
    sharp, kernels, masks = case
    for crf, gain in [("gamma", 1.4), ("exponential", None)]:
        result = synthesize_pair(sharp, kernels, masks, crf=crf, illumination_gain=gain)
        blurry, target = reference_pair(sharp, kernels, masks, crf=crf, illumination_gain=gain)
        assert_blurry_close(result.blurry, blurry, crf)
        np.testing.assert_allclose(result.sharp, target, atol=ATOL)
        # 8-bit outputs: the sharp target byte for byte; the blurry image may flip a code
        # where a value sits within float32 error of an integer
        np.testing.assert_array_equal(result.to_uint8()[1], to_uint8(target))
        ours, theirs = result.to_uint8()[0].astype(int), to_uint8(blurry).astype(int)
        assert np.abs(ours - theirs).max() <= 1 and np.mean(ours != theirs) < 1e-3


def test_quantize_clips_and_truncates():
    values = np.array([-3.0, 0.0, 0.99, 1.0, 254.7, 255.0, 300.0], np.float32)
    np.testing.assert_array_equal(quantize(values), [0, 0, 0, 1, 254, 255, 255])


def test_streaks_draws_and_placement():
    linear = np.zeros((60, 70, 3), np.float32)
    config = StreakConfig(probability=1.0, min_count=3, max_count=4)
    drawn = formation.add_streaks(linear, np.random.default_rng(4), config, (9, 9))
    assert len(drawn) == 3
    expected = np.zeros_like(linear)
    for i, j, ri, rj, spike in drawn:
        assert 9 <= i < 51 and 9 <= j < 61 and 0 <= ri < 4 and 0 <= rj < 5 and 0 <= spike < 2000
        expected[i - ri : i + ri, j - rj : j + rj] += np.float32(spike)
    np.testing.assert_array_equal(linear, expected)
    assert formation.add_streaks(linear, np.random.default_rng(0), StreakConfig(probability=0.0), (9, 9)) == []


# -- errors ---------------------------------------------------------------------------
def test_errors_name_the_argument(case):
    sharp, kernels, masks = case
    with pytest.raises(ValueError, match="object_masks"):
        synthesize_pair(sharp, kernels, masks[:, :50])
    with pytest.raises(ValueError, match="kernels must hold"):
        synthesize_pair(sharp, kernels[:3], masks)
    with pytest.raises(ValueError, match="crf"):
        synthesize_pair(sharp, kernels, masks, crf="srgb")
    with pytest.raises(ValueError, match="gamma"):
        synthesize_pair(sharp, kernels, masks, gamma=0)
    with pytest.raises(ValueError, match="illumination_gain"):
        synthesize_pair(sharp, kernels, masks, illumination_gain=-1.0)
    with pytest.raises(TypeError, match="noise"):
        synthesize_pair(sharp, kernels, masks, noise=0.1)
    with pytest.raises(ValueError, match=r"sharp must lie in \[0, 255\]"):
        synthesize_pair(sharp * 2.0, kernels, masks)
    with pytest.raises(TypeError, match="sharp"):
        synthesize_pair(sharp.astype(bool), kernels, masks)
    with pytest.raises(ValueError, match="larger than the image"):
        synthesize_pair(sharp[:10, :10], kernels, masks[:, :10, :10])
    with pytest.raises(ValueError, match="streaks need an image larger"):
        synthesize_pair(sharp[:25, :40], kernels, masks[:, :25, :40], streaks=StreakConfig())
    with pytest.raises(ValueError, match="streaks.max_count"):
        StreakConfig(min_count=5, max_count=5)
    with pytest.raises(ValueError, match="noise.poisson_peak"):
        NoiseConfig(poisson_peak=0)
    with pytest.raises(TypeError, match="saturation.boost"):
        SaturationConfig(boost=1)


def test_every_backend_gives_the_formation_model(case, backend):
    sharp, kernels, masks = case
    options = dict(crf="gamma", illumination_gain=1.2, noise=NoiseConfig(gaussian_std=0.01))
    result = synthesize_pair(sharp, kernels, masks, rng=4, backend=backend, **options)
    _compare(result, restate(sharp, kernels, masks, gain=1.2, noise=options["noise"], rng=np.random.default_rng(4)))


def test_backend_is_passed_through(case):
    sharp, kernels, masks = case
    with pytest.raises(ValueError, match="backend"):
        synthesize_pair(sharp, kernels, masks, backend="no-such-backend")


@pytest.mark.parametrize("crf", ["gamma", "exponential", None])
def test_tables_for_many_gains_are_the_tables_of_each(crf):
    gains = np.array([1.0, 1.37, 2.9])
    for function in (formation.response_lut, formation.round_trip_lut):
        tables = function(crf, gain=gains)
        assert tables.shape == (3, 256) and tables.dtype == np.float32
        for gain, table in zip(gains, tables):
            np.testing.assert_array_equal(table, function(crf, gain=float(gain)))
        assert function(crf, gain=1.5).shape == (256,)


# -- 8-bit output in one pass -----------------------------------------------------------
def _float_path(values, clip, **response):
    """``quantize(delinearize(...))`` as the float pipeline computes it."""
    if clip:
        values = np.clip(values, 0, 255)
    return quantize(formation.delinearize(values, **response))


def _probe_values(response, opencv):
    """Every float32 within 2048 ulps of each code's threshold, and a sweep of the rest of
    [0, inf] (every 4099th float), found independently of the table: where the float
    path's code changes along the sweep."""
    sweep = np.arange(0, 0x7F800001, 4099, dtype=np.int64)
    shape = (1, 1, -1, 1) if opencv else (-1,)
    codes = _float_path(sweep.astype(np.uint32).view(np.float32).reshape(shape), False, **response).reshape(-1)
    steps = sweep[1:][np.diff(codes.astype(int)) != 0]
    near = (steps[:, None] + np.arange(-4099 - 2048, 2048)).reshape(-1)
    bits = np.sort(np.clip(np.concatenate([sweep, near]), 0, 0x7F800000)).astype(np.uint32)
    return bits.view(np.float32)


@pytest.mark.parametrize("response, opencv", [
    (dict(crf="gamma"), True), (dict(crf="gamma"), False), (dict(crf="gamma", gamma=1.8), True),
    (dict(crf="exponential", exponential_factor=4.0), True), (dict(crf=None), True),
], ids=["gamma-image", "gamma-strided", "gamma1.8", "exponential", "none"])
def test_encode_8bit_equals_the_float_path(response, opencv):
    """The thresholds give the float path's code at every float32 near a code boundary
    (where the rounding of the power matters) and along a sweep of all the others, with
    the image's power (OpenCV's) or numpy's for a strided crop (the unclipped sharp
    target's). Every float32 in [0, inf] was checked once for gamma 2.2 with both powers:
    no difference."""
    values = _probe_values(response, opencv)
    if opencv:
        image = values.reshape(1, 1, -1, 1)
    else:
        image = np.stack([values, values], axis=1)[:, :1]  # a crop: rows of one value
    got = formation.encode_8bit(image, clip=False, **response)
    assert got.dtype == np.uint8 and got.shape == image.shape
    np.testing.assert_array_equal(got, _float_path(image, False, **response))
    crf, gamma, factor = formation.check_crf(response["crf"], response.get("gamma", 2.2),
                                             response.get("exponential_factor", 7.0))
    assert formation._code_table(crf, gamma, factor, opencv) is not None  # not the fallback


def test_encode_8bit_clips_negative_and_large_values(monkeypatch):
    values = np.array([[[-1e30, -0.0, 0.0, np.float32(1e-45), 0.5, 254.9, 255.0, 255.1, 1e4, np.inf]]],
                      np.float32)[..., None]
    np.testing.assert_array_equal(formation.encode_8bit(values), _float_path(values, True))
    assert formation.encode_8bit(values)[0, 0, -1, 0] == formation.encode_8bit(values)[0, 0, 6, 0]
    non_negative = values[:, :, 1:]  # unclipped, as the sharp target: > 255 still maps through the curve
    np.testing.assert_array_equal(formation.encode_8bit(non_negative, clip=False), _float_path(non_negative, False))
    monkeypatch.setattr(formation, "_native_module", lambda: None)  # without the extension: the float path
    np.testing.assert_array_equal(formation.encode_8bit(values), _float_path(values, True))


def test_quantized_pairs_equal_the_float_pairs_quantized(case):
    """synthesize_pair(quantize=True) is to_uint8() of the float32 pair, whatever the options:
    gains, streaks and boosts (sharp pixels off the lookup table), noise, crfs, grey and
    float images, an even kernel."""
    sharp, kernels, masks = case
    options = dict(saturation=SaturationConfig(boost=True, boost_in_blurry=True),
                   streaks=StreakConfig(probability=1.0, min_count=5, max_count=12),
                   noise=NoiseConfig(gaussian_std=0.02, poisson_peak=500.0))
    variants = [
        dict(),
        dict(illumination_gain=2.6, **options),
        dict(crf="exponential", illumination_gain=1.7, **options),
        dict(crf=None, illumination_gain=1.3),
        dict(gamma=1.8, illumination_gain=3.0, saturation=SaturationConfig(boost=True)),
    ]
    for i, extra in enumerate(variants):
        for image in (sharp, sharp[:, :, 1], sharp.astype(np.float64)):
            floats = synthesize_pair(image, kernels, masks, rng=i, **extra)
            codes = synthesize_pair(image, kernels, masks, rng=i, quantize=True, **extra)
            assert codes.blurry.dtype == codes.sharp.dtype == np.uint8
            for got, want in zip(codes.to_uint8(), floats.to_uint8()):
                np.testing.assert_array_equal(got, want)
            assert codes.params == floats.params
    even = synthesize_pair(sharp, kernels[:, :14, :13], masks, quantize=True, rng=1, **options)
    np.testing.assert_array_equal(even.blurry, synthesize_pair(sharp, kernels[:, :14, :13], masks, rng=1,
                                                               **options).to_uint8()[0])
    with pytest.raises(TypeError, match="quantize"):
        synthesize_pair(sharp, kernels, masks, quantize="yes")


def test_native_quantize_checks_its_tables():
    native = pytest.importorskip("fastblur._native")
    values = np.zeros(4, np.float32)
    buckets = np.zeros(4, np.uint32)
    with pytest.raises(ValueError, match="cover"):
        native.quantize_by_thresholds(values, buckets, 20, 2**31)
    with pytest.raises(ValueError, match="shift"):
        native.quantize_by_thresholds(values, buckets, 24, 2**31)
    for entry in (255, (2**22 + 1) << 8):  # code 255 with a next code to reach; an offset past the bucket
        with pytest.raises(ValueError, match="buckets must hold"):
            native.quantize_by_thresholds(values, np.full(4, entry, np.uint32), 22, 2**23)
    np.testing.assert_array_equal(native.quantize_by_thresholds(values, np.full(4, 255 | 2**22 << 8, np.uint32), 22,
                                                                2**23), [255] * 4)
