"""Pinned SBDD pairs: today's random draws and pixel sums, per pair and per batch.

The formation model is written once (:mod:`fastblur.sbdd.pipeline`) and fed by two draw
sources; these values were recorded before that refactor and pin what a pair draws, in
which order, and what it looks like. Draws are exact (NumPy's Generator streams are
stable); pixel sums allow a few 8-bit codes for a backend's last bits.
"""
import numpy as np
import pytest

from fastblur.sbdd import CropSampler, DatasetConfig, NoiseConfig, SaturationConfig, StreakConfig, synthesize_pair

#: 8-bit codes a pixel sum may move by when a backend's last bits change.
CODES = 64


def _sharp(shape=(40, 48)):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 120 + 80 * np.sin(x / 7.0)[..., None] * np.cos(y / 9.0)[..., None] + rng.normal(0, 10, shape + (3,))
    base[8:16, 10:22] = 255
    return np.clip(base, 0, 255).astype(np.uint8)


def _kernels(size):
    kernels = np.random.default_rng(size).random((3, size, size)).astype(np.float32)
    return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def _masks():
    masks = np.zeros((2, 40, 48), bool)
    masks[0, 5:25, 8:30] = True
    masks[1, 20:38, 25:46] = True
    return masks


CASES = {
    # odd kernel, gain, streaks, both boosts, Gaussian noise between the two boosts
    "gamma": (lambda image: image, 7, dict(
        crf="gamma", illumination_gain=1.7, streaks=StreakConfig(1.0, 2, 6, max_increment=500.0),
        saturation=SaturationConfig(boost=True, boost_in_blurry=True), noise=NoiseConfig(gaussian_std=0.03))),
    # even kernel, grey image
    "exponential": (lambda image: image[..., 1], 8, dict(
        crf="exponential", illumination_gain=1.3, saturation=SaturationConfig(boost=True))),
    # float image, no response curve
    "none": (lambda image: image.astype(np.float32) * np.float32(0.9), 7, dict(crf=None)),
}

PINNED = {
    "gamma": dict(sums=(720089, 675728), saturated_fraction=0.6197916666666666,
                  saturation_boost=1.1950308429086722, saturation_boost_in_blurry=0.8519627340344513,
                  streaks=[[28, 22, 2, 3, 26.965351190828212], [14, 16, 1, 2, 22.637596951222584]]),
    "exponential": dict(sums=(219057, 199451), saturated_fraction=0.11458333333333333,
                        saturation_boost=4.220011694981521, saturation_boost_in_blurry=None, streaks=[]),
    "none": dict(sums=(489607, 490535), saturated_fraction=None, saturation_boost=None,
                 saturation_boost_in_blurry=None, streaks=[]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pairs_keep_their_draws_and_pixels(name):
    view, size, options = CASES[name]
    result = synthesize_pair(view(_sharp()), _kernels(size), _masks(), rng=5, backend="numpy", **options)
    pinned = PINNED[name]
    for key in ("saturated_fraction", "saturation_boost", "saturation_boost_in_blurry", "streaks"):
        assert result.params[key] == pinned[key], key
    blurry, sharp = result.to_uint8()
    sums = int(blurry.sum(dtype=np.int64)), int(sharp.sum(dtype=np.int64))
    np.testing.assert_allclose(sums, pinned["sums"], rtol=0, atol=CODES)


def test_crops_and_batches_keep_their_draws_and_pixels():
    config = DatasetConfig(masks="shapes", kernel_size=9, seed=1, max_objects=2, min_object_area=100,
                           augment_illumination=True, random_white_streaks=True, prob_streaks=1.0, min_streaks=1,
                           max_streaks=4, saturation_streaks=True, sat_augmentation_in_blurry=True, backend="numpy")
    sampler = CropSampler(config, crop_size=16)
    recipe = sampler.recipe(2)
    assert recipe.gain == 2.8257527515725087
    assert recipe.streaks == [(11, 10, 0, 2, 1641.9296820953552), (14, 13, 0, 3, 1124.7749504443175)]
    assert (recipe.saturation_boost, recipe.blurry_boost) == (4.6128947109584395, 1.8095753685570575)
    sample = [float(image.sum()) * 255 for image in sampler.sample(1)]
    np.testing.assert_allclose(sample, (34149, 20807), rtol=0, atol=CODES)
    batch = [float(images.sum()) * 255 for images in sampler.batch([0, 1, 2])]
    np.testing.assert_allclose(batch, (251533, 201761), rtol=0, atol=CODES)
