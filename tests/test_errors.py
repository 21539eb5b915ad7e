"""Every bad input gets a ValueError/TypeError that names the argument."""
import numpy as np
import pytest

import fastblur
from fastblur.backends import BackendUnavailableError, register_backend

IMAGE = np.zeros((10, 12, 3), np.float32)
KERNEL = np.ones((3, 3), np.float32) / 9
KERNELS = np.stack([KERNEL, KERNEL])
WEIGHTS_OUT = np.full((2, 8, 10), 0.5, np.float32)
WEIGHTS_IN = np.full((2, 10, 12), 0.5, np.float32)


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: fastblur.convolve(np.zeros(5), KERNEL), ValueError, "image must be 2-D"),
        (lambda: fastblur.convolve(np.zeros((2, 3, 4, 5)), KERNEL), ValueError, "image must be 2-D"),
        (lambda: fastblur.convolve(np.zeros((0, 4)), KERNEL), ValueError, "image must not be empty"),
        (lambda: fastblur.convolve("image", KERNEL), TypeError, "image must be a numeric array"),
        (lambda: fastblur.convolve(IMAGE.astype(complex), KERNEL), TypeError, "image must be real"),
        (lambda: fastblur.convolve(IMAGE, np.ones(3)), ValueError, "kernel must be 2-D"),
        (lambda: fastblur.convolve(IMAGE, np.ones((0, 3))), ValueError, "kernel must not be empty"),
        (lambda: fastblur.convolve(IMAGE, _with(KERNEL, (1, 1), np.nan)), ValueError, "kernel must be finite"),
        (lambda: fastblur.convolve(IMAGE, _with(KERNEL, (0, 1), np.inf)), ValueError, "kernel must be finite"),
        (lambda: fastblur.convolve(IMAGE, KERNEL, mode="middle"), ValueError, "mode must be one of"),
        (lambda: fastblur.convolve(IMAGE, KERNEL, mode=None), TypeError, "mode must be a string"),
        (lambda: fastblur.convolve(IMAGE, KERNEL, boundary="zero"), ValueError, "boundary must be one of"),
        (lambda: fastblur.convolve(IMAGE, KERNEL, backend="gpu9000"), ValueError, "backend must be"),
        (lambda: fastblur.convolve(IMAGE, KERNEL, backend=3), TypeError, "backend must be a string"),
        (lambda: fastblur.convolve(IMAGE, np.ones((11, 3)), mode="valid"), ValueError, "larger than the image"),
        (lambda: fastblur.blur_masked(IMAGE, KERNEL, WEIGHTS_OUT), ValueError, "kernels must be 3-D"),
        (lambda: fastblur.blur_masked(IMAGE, KERNELS, WEIGHTS_OUT[:1]), ValueError, "weights must have shape"),
        (lambda: fastblur.blur_masked(IMAGE, KERNELS, WEIGHTS_IN), ValueError, "weights must have shape"),
        (lambda: fastblur.blur_masked(IMAGE, KERNELS, WEIGHTS_OUT[0]), ValueError, "weights must have shape"),
        (lambda: fastblur.blur_masked(IMAGE, KERNELS, _with(WEIGHTS_OUT, (1, 2, 2), np.nan)), ValueError, "weights must be finite"),
        (lambda: fastblur.blur_masked(IMAGE, np.ones((2, 11, 3)), WEIGHTS_OUT), ValueError, "larger than the image"),
        (lambda: fastblur.blur_masked(IMAGE, KERNELS, WEIGHTS_OUT, mode="same"), ValueError, "weights must have shape"),
        (lambda: fastblur.blur_product(IMAGE, KERNELS, WEIGHTS_OUT), ValueError, "weights must have shape"),
        (lambda: fastblur.blur_product(IMAGE, KERNELS, _with(WEIGHTS_IN, (0, 0, 0), -np.inf)), ValueError, "weights must be finite"),
        (lambda: fastblur.smooth_masks(np.zeros((2, 10, 12)), KERNELS), ValueError, r"kernels must hold n \+ 1 = 3"),
        (lambda: fastblur.smooth_masks(np.zeros((10, 12)), KERNELS[:1]), ValueError, "object_masks must be 3-D"),
        (lambda: fastblur.smooth_masks(np.zeros((1, 10, 12)), KERNELS, eps=0), ValueError, "eps must be positive"),
        (lambda: fastblur.smooth_masks(np.zeros((1, 2, 12)), KERNELS), ValueError, "larger than the image"),
    ],
)
def test_bad_input_is_named(call, error, words):
    with pytest.raises(error, match=words):
        call()


def test_nothing_is_broadcast():
    with pytest.raises(ValueError, match=r"\(N, H, W\) = \(2, 8, 10\)"):
        fastblur.blur_masked(IMAGE, KERNELS, WEIGHTS_OUT[:1].repeat(1, axis=0))


def test_bad_thread_setting_is_named(monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="FASTBLUR_NUM_THREADS must be a positive integer"):
        fastblur.convolve(IMAGE, KERNEL, backend="numpy")


def test_unavailable_backend_says_why():
    register_backend("broken", "fastblur.no_such_module")
    try:
        assert "ModuleNotFoundError" in fastblur.backend_info()["broken"]
        assert "broken" not in fastblur.available_backends()
        with pytest.raises(BackendUnavailableError, match="'broken' is not available here"):
            fastblur.convolve(IMAGE, KERNEL, backend="broken")
    finally:
        from fastblur import backends

        backends._MODULES.pop("broken")
        backends._failures.pop("broken")


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: fastblur.blur_masked_batch(IMAGE, KERNELS[None], WEIGHTS_OUT[None]), r"kernels must be 4-D \(B, N, kh, kw\) with B = 10"),
        (lambda: fastblur.blur_masked_batch(IMAGE[None, None], KERNELS[None], WEIGHTS_OUT[None]), "images must be 3-D"),
        (lambda: fastblur.blur_masked_batch(IMAGE[None], KERNELS[None].repeat(2, 0), WEIGHTS_OUT[None]), "with B = 1"),
        (lambda: fastblur.blur_masked_batch(IMAGE[None], KERNELS[None], WEIGHTS_OUT), r"weights must have shape \(B, N, H, W\)"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 10, 12)), KERNELS[None]), r"object_masks must be 4-D \(B, n, H, W\), got shape \(1, 10, 12\)"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((0, 1, 10, 12)), KERNELS[None]), r"object_masks must hold at least one"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((2, 1, 10, 12)), KERNELS[None]), r"kernels must be 4-D \(B, N, kh, kw\) with B = 2, got shape \(1, 2, 3, 3\)"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 1, 10, 12)), KERNELS), r"kernels must be 4-D \(B, N, kh, kw\) with B = 1"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 2, 10, 12)), KERNELS[None]), r"kernels must hold n \+ 1 = 3 kernels .* for 2 object masks, got 2"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 1, 10, 12)), KERNELS[None], eps=0), "eps must be positive"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 1, 10, 12)), KERNELS[None], eps=-1e-6), "eps must be positive"),
        (lambda: fastblur.smooth_masks_batch(np.zeros((1, 1, 2, 12)), KERNELS[None]), "kernels of spatial shape .* larger than the image"),
    ],
)
def test_bad_batches_are_named(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_blur_product_weights_error_names_the_input_grid():
    with pytest.raises(ValueError, match=r"\(2, 10, 12\) \(one map per kernel, on the input grid\)"):
        fastblur.blur_product(IMAGE, KERNELS, WEIGHTS_OUT)


def test_time_deltas_are_not_images():
    with pytest.raises(TypeError, match="image must be a numeric array"):
        fastblur.convolve(np.zeros((4, 4), "m8[s]"), KERNEL)


def test_check_finite_false_skips_the_weights_test():
    """check_finite=False (the SBDD writer's, for maps it smoothed itself) skips only the
    NaN/inf test: the result on finite maps is the same, and the flag is checked."""
    rng = np.random.default_rng(0)
    image, kernels = rng.random((40, 50, 3), np.float32), rng.random((2, 5, 5)).astype(np.float32)
    weights = rng.random((2, 36, 46)).astype(np.float32)
    np.testing.assert_array_equal(fastblur.blur_masked(image, kernels, weights, check_finite=False),
                                  fastblur.blur_masked(image, kernels, weights))
    batch = fastblur.blur_masked_batch(image[None], kernels[None], weights[None], check_finite=False)
    np.testing.assert_array_equal(batch[0], fastblur.blur_masked(image, kernels, weights))
    weights[0, 3, 4] = np.nan
    with pytest.raises(ValueError, match="weights must be finite"):
        fastblur.blur_masked(image, kernels, weights)
    with pytest.raises(ValueError, match="weights must be finite"):
        fastblur.blur_masked_batch(image[None], kernels[None], weights[None])
    fastblur.blur_masked(image, kernels, weights, check_finite=False)  # not checked: no error
    with pytest.raises(TypeError, match="check_finite"):
        fastblur.blur_masked(image, kernels, weights, check_finite="no")
