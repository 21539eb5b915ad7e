"""Tiles cover the output exactly once, and tiled results are seamless at tile edges."""
import numpy as np
import pytest

import fastblur
from fastblur._tiling import plan_tiles
from fastblur.backends import ZERO_WEIGHT
from reference import reference_blur_masked, reference_convolve, relative_error


@pytest.mark.parametrize("out_shape", [(1, 1), (37, 300), (720, 1280), (513, 257)])
@pytest.mark.parametrize("kernel_shape, block", [((3, 3), 16), ((65, 65), 512), ((4, 9), (40, 64))])
def test_tiles_cover_output_once(out_shape, kernel_shape, block):
    plan = plan_tiles(out_shape, kernel_shape, block)
    covered = np.zeros(out_shape, int)
    for r0, r1, c0, c1 in plan.tiles():
        assert r1 - r0 <= plan.tile_shape[0] and c1 - c0 <= plan.tile_shape[1]
        assert r1 - r0 >= min(kernel_shape[0], out_shape[0]) or r1 == out_shape[0]
        covered[r0:r1, c0:c1] += 1
    assert (covered == 1).all()


def test_blocks_never_overlap_more_than_half():
    plan = plan_tiles((1000, 1000), (65, 65), 64)
    assert all(t >= 65 for t in plan.tile_shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_tiles_equal_untiled_reference(backend, rng, dtype):
    # 9x9 kernels give 128-sample blocks: a 300x260 output spans 3x3 tiles.
    image = rng.standard_normal((308, 268, 3)).astype(dtype)
    kernels = rng.random((3, 9, 9)).astype(dtype)
    weights = np.zeros((3, 300, 260), dtype)
    weights[0] = 1
    weights[1, 100:220, 40:170] = rng.random((120, 130))  # crosses tile edges
    weights[2, :, 250:] = 0.5
    result = fastblur.blur_masked(image, kernels, weights, backend=backend)
    expected = reference_blur_masked(image, kernels, weights, "valid", "reflect")
    tolerance = 2e-5 if dtype == np.float32 else 1e-10
    assert relative_error(result, expected) <= tolerance
    convolved = fastblur.convolve(image, kernels[1], mode="valid", backend=backend)
    assert relative_error(convolved, reference_convolve(image, kernels[1], "valid", "reflect")) <= tolerance


def test_weights_below_threshold_are_skipped_within_bound(backend, rng):
    image = rng.random((200, 200))
    kernels = rng.random((2, 5, 5))
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    weights = np.zeros((2, 196, 196))
    weights[0] = 1
    weights[1] = ZERO_WEIGHT / 2
    result = fastblur.blur_masked(image, kernels, weights, backend=backend)
    exact = reference_blur_masked(image, kernels, weights, "valid", "reflect")
    assert np.abs(result - exact).max() <= ZERO_WEIGHT * np.abs(image).max()
