"""The shared conformance suite: every backend against independent float64 references."""
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastblur
from conftest import TOLERANCE
from inputs import region_weights
from reference import (
    reference_blur_masked,
    reference_blur_product,
    reference_convolve,
    reference_smooth_masks,
    relative_error,
)

MODES = ["full", "same", "valid"]
BOUNDARIES = ["constant", "edge", "reflect", "symmetric", "wrap"]
KERNEL_SHAPES = [(1, 1), (3, 3), (4, 4), (5, 2), (2, 7), (6, 5)]
DTYPES = [np.float32, np.float64]


def _image(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _kernel(rng, shape, dtype):
    kernel = rng.random(shape)
    return (kernel / kernel.sum()).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel_shape", KERNEL_SHAPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels", [None, 3])
def test_convolve_matches_direct_reference(backend, rng, mode, boundary, kernel_shape, dtype, channels):
    shape = (23, 18) if channels is None else (23, 18, channels)
    image = _image(rng, shape, dtype)
    kernel = _kernel(rng, kernel_shape, dtype)
    result = fastblur.convolve(image, kernel, mode=mode, boundary=boundary, backend=backend)
    expected = reference_convolve(image, kernel, mode, boundary)
    assert result.shape == expected.shape
    assert result.dtype == dtype
    assert relative_error(result, expected) <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("kernel_shape", KERNEL_SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_convolve_constant_equals_scipy(backend, rng, mode, kernel_shape):
    image = _image(rng, (31, 26, 2), np.float64)
    kernel = _kernel(rng, kernel_shape, np.float64)
    result = fastblur.convolve(image, kernel, mode=mode, boundary="constant", backend=backend)
    expected = scipy.signal.fftconvolve(image, kernel[:, :, None], mode=mode, axes=(0, 1))
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)


# numpy.pad name -> scipy.ndimage name for the same extension rule.
NDIMAGE_MODE = {"edge": "nearest", "reflect": "mirror", "symmetric": "reflect", "wrap": "wrap"}


@pytest.mark.parametrize("boundary", sorted(NDIMAGE_MODE))
def test_same_boundaries_agree_with_ndimage_for_odd_kernels(backend, rng, boundary):
    image = _image(rng, (40, 33), np.float64)
    kernel = _kernel(rng, (7, 5), np.float64)
    result = fastblur.convolve(image, kernel, mode="same", boundary=boundary, backend=backend)
    expected = scipy.ndimage.convolve(image, kernel, mode=NDIMAGE_MODE[boundary])
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)


def test_integer_image_is_computed_in_float32(backend, rng):
    image = rng.integers(0, 256, (20, 21, 3), dtype=np.uint8)
    kernel = _kernel(rng, (3, 4), np.float64)
    result = fastblur.convolve(image, kernel, mode="valid", backend=backend)
    assert result.dtype == np.float32
    assert relative_error(result, reference_convolve(image, kernel, "valid", "reflect")) <= 2e-5


def _sbdd_like_weights(rng, count, shape):
    """Weights that are exactly zero over large areas (one dominant map per region)."""
    return region_weights(rng, count, shape, (9, 12))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel_shape", [(5, 5), (4, 6)])
@pytest.mark.parametrize("channels", [None, 3])
def test_blur_masked_matches_definition(backend, rng, mode, kernel_shape, dtype, channels):
    shape = (40, 37) if channels is None else (40, 37, channels)
    image = _image(rng, shape, dtype)
    kernels = np.stack([_kernel(rng, kernel_shape, dtype) for _ in range(4)])
    out_hw = {"full": (43, 42) if kernel_shape == (4, 6) else (44, 41), "same": (40, 37),
              "valid": (37, 32) if kernel_shape == (4, 6) else (36, 33)}[mode]
    weights = _sbdd_like_weights(rng, 4, out_hw).astype(dtype)
    result = fastblur.blur_masked(image, kernels, weights, mode=mode, boundary="symmetric", backend=backend)
    expected = reference_blur_masked(image, kernels, weights, mode, "symmetric")
    assert result.shape == expected.shape and result.dtype == dtype
    assert relative_error(result, expected) <= TOLERANCE[np.dtype(dtype)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", ["constant", "reflect", "wrap"])
@pytest.mark.parametrize("channels", [None, 2])
def test_blur_product_matches_definition(backend, rng, mode, boundary, dtype, channels):
    shape = (35, 41) if channels is None else (35, 41, channels)
    image = _image(rng, shape, dtype)
    kernels = np.stack([_kernel(rng, (6, 3), dtype) for _ in range(3)])
    weights = rng.random((3, 35, 41)).astype(dtype)
    weights[1, :20] = 0  # whole tiles without this kernel
    result = fastblur.blur_product(image, kernels, weights, mode=mode, boundary=boundary, backend=backend)
    expected = reference_blur_product(image, kernels, weights, mode, boundary)
    assert result.shape == expected.shape and result.dtype == dtype
    assert relative_error(result, expected) <= TOLERANCE[np.dtype(dtype)]


def test_blur_product_conserves_light_when_weights_sum_to_one(backend, rng):
    image = rng.random((30, 30))
    kernels = np.stack([_kernel(rng, (5, 5), np.float64) for _ in range(3)])
    weights = rng.random((3, 30, 30))
    weights /= weights.sum(axis=0)
    result = fastblur.blur_product(image, kernels, weights, mode="full", boundary="constant", backend=backend)
    assert result.sum() == pytest.approx(image.sum(), rel=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel_shape", [(5, 5), (6, 4)])
def test_smooth_masks_matches_definition(backend, rng, mode, kernel_shape):
    masks = np.zeros((2, 60, 50), bool)
    masks[0, 10:30, 5:25] = True
    masks[1, 25:55, 20:45] = True
    kernels = np.stack([_kernel(rng, kernel_shape, np.float64) for _ in range(3)])
    result = fastblur.smooth_masks(masks, kernels, mode=mode, boundary="edge", backend=backend)
    expected = reference_smooth_masks(masks, kernels, mode, "edge")
    assert result.shape == expected.shape and result.dtype == np.float64
    np.testing.assert_allclose(result, expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.sum(axis=0), 1.0, atol=1e-5)


def test_smooth_masks_without_objects_is_all_background(backend, rng):
    kernels = _kernel(rng, (3, 3), np.float32)[None]
    result = fastblur.smooth_masks(np.zeros((0, 12, 10), bool), kernels, backend=backend)
    assert result.shape == (1, 10, 8) and result.dtype == np.float32
    np.testing.assert_allclose(result, 1.0, atol=2e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 30),
    width=st.integers(1, 30),
    kh=st.integers(1, 9),
    kw=st.integers(1, 9),
    channels=st.sampled_from([None, 1, 3]),
    mode=st.sampled_from(MODES),
    boundary=st.sampled_from(BOUNDARIES),
    seed=st.integers(0, 2**32 - 1),
)
def test_convolve_any_shape(backend, height, width, kh, kw, channels, mode, boundary, seed):
    if mode == "valid" and (kh > height or kw > width):
        return
    rng = np.random.default_rng(seed)
    shape = (height, width) if channels is None else (height, width, channels)
    image = rng.standard_normal(shape)
    kernel = rng.standard_normal((kh, kw))
    result = fastblur.convolve(image, kernel, mode=mode, boundary=boundary, backend=backend)
    expected = reference_convolve(image, kernel, mode, boundary)
    assert result.shape == expected.shape
    assert relative_error(result, expected) <= 1e-10


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(8, 40),
    width=st.integers(8, 40),
    ksize=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    count=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_blur_masked_any_shape(backend, height, width, ksize, count, seed):
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((height, width, 2)).astype(np.float32)
    kernels = rng.random((count,) + ksize).astype(np.float32)
    weights = rng.random((count, height - ksize[0] + 1, width - ksize[1] + 1)).astype(np.float32)
    weights[rng.random(count) < 0.5] = 0
    result = fastblur.blur_masked(image, kernels, weights, backend=backend)
    expected = reference_blur_masked(image, kernels, weights, "valid", "reflect")
    assert relative_error(result, expected) <= 2e-5 or np.abs(expected).max() == 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("channels", [None, 3])
def test_blur_masked_batch_equals_one_call_per_image(backend, rng, mode, channels):
    batch, count = 3, 4
    shape = (batch, 26, 30) if channels is None else (batch, 26, 30, channels)
    images = _image(rng, shape, np.float32)
    kernels = rng.random((batch, count, 5, 4)).astype(np.float32)
    out_hw = {"full": (30, 33), "same": (26, 30), "valid": (22, 27)}[mode]
    weights = np.stack([_sbdd_like_weights(rng, count, out_hw) for _ in range(batch)]).astype(np.float32)
    result = fastblur.blur_masked_batch(images, kernels, weights, mode=mode, backend=backend)
    assert result.shape == (batch,) + out_hw + (() if channels is None else (channels,))
    for b in range(batch):
        expected = reference_blur_masked(images[b], kernels[b], weights[b], mode, "reflect")
        assert relative_error(result[b], expected) <= 2e-5


def _object_masks(rng, batch, count, shape):
    """``(batch, count, H, W)`` random rectangles, different in every item."""
    masks = np.zeros((batch, count) + shape, bool)
    for b in range(batch):
        for i in range(count):
            r, c = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
            masks[b, i, r : r + rng.integers(4, 12), c : c + rng.integers(4, 12)] = True
    return masks


SMOOTH_ATOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-9}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("count", [0, 2])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel_shape", [(5, 5), (4, 6)])
def test_smooth_masks_batch_matches_definition(backend, rng, mode, kernel_shape, count, dtype):
    batch, shape = 2, (24, 21)
    masks = _object_masks(rng, batch, count, shape)
    kernels = np.stack([
        np.stack([_kernel(rng, kernel_shape, dtype) for _ in range(count + 1)]) for _ in range(batch)
    ])
    result = fastblur.smooth_masks_batch(masks, kernels, mode=mode, boundary="edge", backend=backend)
    expected = np.stack([reference_smooth_masks(masks[b], kernels[b], mode, "edge") for b in range(batch)])
    assert result.shape == expected.shape and result.dtype == dtype
    np.testing.assert_allclose(result, expected, rtol=0, atol=SMOOTH_ATOL[np.dtype(dtype)])


@pytest.mark.parametrize("mode", MODES)
def test_smooth_masks_batch_equals_one_call_per_pair(backend, rng, mode):
    batch, count = 3, 2
    masks = _object_masks(rng, batch, count, (20, 23)).astype(np.uint8)  # non-bool masks too
    kernels = rng.random((batch, count + 1, 3, 4)).astype(np.float32)
    result = fastblur.smooth_masks_batch(masks, kernels, mode=mode, backend=backend)
    assert result.dtype == np.float32
    for b in range(batch):
        single = fastblur.smooth_masks(masks[b], kernels[b], mode=mode, backend=backend)
        assert result[b].shape == single.shape
        np.testing.assert_allclose(result[b], single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_smooth_masks_stay_in_unit_range_where_no_mask_reaches(backend, mode):
    # Sparse, orthogonal PSFs leave regions no mask reaches: FFT round-off there must
    # not be blown up by the normalisation (sum_j S_j + 1e-6) into weights outside [0, 1].
    from fastblur.kernels import linear_motion

    kernels = np.stack([linear_motion(20, 0, 31), linear_motion(20, 90, 31)]).astype(np.float32)
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 20:40, 20:40] = True
    weights = fastblur.smooth_masks(masks, kernels, mode=mode, boundary="constant", backend=backend)
    expected = reference_smooth_masks(masks, kernels, mode, "constant")
    assert weights.min() >= 0 and weights.max() <= 1 + 1e-6
    assert weights.sum(axis=0).max() <= 1 + 1e-6
    np.testing.assert_allclose(weights, expected, rtol=0, atol=3e-5)


def test_byte_order_does_not_change_precision(backend, rng):
    image = rng.standard_normal((20, 24, 3))
    kernel = rng.random((5, 4))
    result = fastblur.convolve(image.astype(">f8"), kernel.astype(">f8"), mode="valid", backend=backend)
    assert result.dtype == np.float64
    assert relative_error(result, reference_convolve(image, kernel, "valid", "reflect")) <= 1e-10
    single = fastblur.convolve(image.astype(">f4"), kernel, mode="valid", backend=backend)
    assert single.dtype == np.float32
