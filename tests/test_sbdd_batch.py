"""Batched formation of crop pairs (fastblur.sbdd.batch): equal to the per-pair path."""
import warnings

import numpy as np
import pytest

import fastblur
from fastblur.sbdd import CropSampler, DatasetConfig
from fastblur.sbdd.batch import CropRecipe, form_batch, stack_recipes, unpack_masks

SMALL = dict(kernel_size=15, max_objects=3, min_object_area=200, seed=11)
INDICES = range(5)

#: Formation options exercising each step of the model (no noise: the per-pair path
#: draws it from another stream).
CASES = {
    "default": {},
    "exponential": dict(crf="exponential", augment_illumination=True),
    "linear": dict(crf="none"),
    "streaks": dict(random_white_streaks=True, prob_streaks=1.0, min_streaks=3, max_streaks=30),
    "saturation": dict(augment_illumination=True, jitter_illumination=1.0, saturation_streaks=True,
                       sat_augmentation_in_blurry=True, min_saturated_fraction=0.0),
    "streaks across the border": dict(kernel_size=3, exposure=0.01, random_white_streaks=True, prob_streaks=1.0,
                                      min_streaks=50, max_streaks=60),
    "everything": dict(augment_illumination=True, jitter_illumination=1.0, saturation_streaks=True,
                       sat_augmentation_in_blurry=True, random_white_streaks=True, prob_streaks=1.0,
                       masks="shapes"),
}


def _sampler(quantize=True, crop_size=40, **options):
    return CropSampler(DatasetConfig(**{**SMALL, **options}), crop_size=crop_size, quantize=quantize)


def _per_pair(sampler, indices, epoch=0):
    pairs = [sampler.sample(index, epoch) for index in indices]
    return np.stack([b for b, _ in pairs]), np.stack([s for _, s in pairs])


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_equals_pairs_in_8_bits(case):
    sampler = _sampler(**CASES[case])
    blurry, sharp = sampler.batch(INDICES)
    expected_blurry, expected_sharp = _per_pair(sampler, INDICES)
    assert blurry.shape == sharp.shape == (5, 40, 40, 3)
    assert blurry.dtype == sharp.dtype == np.float32
    # float32 sums in another order: a value within an ulp of an integer may truncate
    # to the code below
    codes = np.abs(blurry - expected_blurry) * 255
    assert codes.max() <= 1 + 1e-4
    assert np.count_nonzero(codes > 0.5) <= 1e-3 * codes.size
    np.testing.assert_array_equal(sharp, expected_sharp)


@pytest.mark.parametrize("case", ["default", "saturation", "everything"])
def test_batch_equals_pairs_in_float(case):
    sampler = _sampler(quantize=False, **CASES[case])
    blurry, sharp = sampler.batch(INDICES, epoch=2)
    expected_blurry, expected_sharp = _per_pair(sampler, INDICES, epoch=2)
    np.testing.assert_allclose(blurry, expected_blurry, rtol=0, atol=2e-5)
    np.testing.assert_allclose(sharp, expected_sharp, rtol=0, atol=1e-6)
    assert float(np.abs(blurry - sharp).mean()) > 1e-3  # the pairs are blurred


def test_saturation_case_boosts_something():
    """The saturation case must reach the boosts, or the tests above prove little."""
    sampler = _sampler(**CASES["saturation"])
    recipes = [sampler.recipe(index) for index in INDICES]
    linear = [r.window.astype(np.float64) ** 2.2 / 255 ** 1.2 * r.gain for r in recipes]
    assert any((image >= 255).mean() > 0.01 for image in linear)
    assert all(r.saturation_boost is not None and r.blurry_boost is not None for r in recipes)


def test_batch_composition_does_not_change_a_pair():
    sampler = _sampler()
    together = sampler.batch([3, 1, 4])
    alone = sampler.batch([1])
    np.testing.assert_array_equal(together[0][1], alone[0][0])
    np.testing.assert_array_equal(together[1][1], alone[1][0])


def _noise_sampler(**noise):
    return _sampler(quantize=False, crf="none", masks="none", **noise)


def test_gaussian_noise_is_multiplicative_with_the_configured_std():
    clean, _ = _noise_sampler().batch(range(4))
    noisy, _ = _noise_sampler(gaussian_noise=True, noise_std=0.05).batch(range(4))
    usable = (clean > 0.1) & (clean < 0.8)  # away from the clip at 0 and 255
    ratio = noisy[usable] / clean[usable] - 1
    assert usable.sum() > 5000
    assert abs(ratio.mean()) < 0.005
    assert ratio.std() == pytest.approx(0.05, rel=0.05)


def test_poisson_noise_has_the_photon_variance():
    peak = 400.0
    clean, _ = _noise_sampler().batch(range(4))
    noisy, _ = _noise_sampler(poisson_peak=peak).batch(range(4))
    usable = (clean > 0.2) & (clean < 0.8)
    photons = noisy[usable] * peak
    expected = clean[usable] * peak
    assert np.allclose(photons, np.round(photons), atol=1e-3)  # whole photon counts
    normalised = (photons - expected) / np.sqrt(expected)
    assert abs(normalised.mean()) < 0.05
    assert normalised.std() == pytest.approx(1.0, rel=0.05)


def test_noise_is_reproducible_and_keyed_by_the_pairs():
    sampler = _noise_sampler(gaussian_noise=True, noise_std=0.1)
    first = sampler.batch(range(3))[0]
    np.testing.assert_array_equal(sampler.batch(range(3))[0], first)
    other_pairs = sampler.batch(range(1, 4))[0]
    assert not np.array_equal(other_pairs[:2], first[1:])
    other_epoch = sampler.batch(range(3), epoch=1)[0]
    assert not np.array_equal(other_epoch, first)


def test_stack_recipes_pads_objects_and_streaks():
    rng = np.random.default_rng(0)
    window = rng.integers(0, 256, (20, 22, 3), dtype=np.uint8)
    kernel = np.full((1, 5, 5), 1 / 25, np.float32)
    plain = CropRecipe(window, kernel, np.zeros((0, 20, 22), bool), seed=[0, 0, 0])
    masks = np.zeros((2, 20, 22), bool)
    masks[0, :5], masks[1, 10:] = True, True
    busy = CropRecipe(window, np.concatenate([kernel] * 3), masks, gain=1.5,
                      streaks=[(8, 9, 2, 3, 100.0)], saturation_boost=2.0, seed=[0, 0, 1])
    batch = stack_recipes([plain, busy])
    assert batch.kernels.shape == (2, 3, 5, 5) and not batch.kernels[0, 1:].any()
    assert batch.packed_masks.shape == (2, 1, 20, 22) and batch.packed_masks.dtype == np.uint8
    unpacked = unpack_masks(batch.packed_masks, 2)
    assert not unpacked[0].any()
    np.testing.assert_array_equal(unpacked[1], masks)
    assert batch.streak_boxes.tolist() == [[[0, 0, 0, 0]], [[8, 9, 2, 3]]]
    assert batch.streak_spikes.tolist() == [[0.0], [100.0]]
    assert np.isnan(batch.saturation_boosts[0]) and batch.saturation_boosts[1] == 2.0
    assert batch.gains.tolist() == [1.0, 1.5]
    assert len(batch) == 2
    # padding kernels and masks change nothing: each pair as formed alone
    blurry, sharp = form_batch(batch, backend="numpy")
    alone = form_batch(stack_recipes([plain]), backend="numpy")
    np.testing.assert_array_equal(blurry[:1], alone[0])
    np.testing.assert_array_equal(sharp[:1], alone[1])


def test_streaks_stay_in_their_pair_and_add_in_order():
    from fastblur.sbdd.batch import _add_streaks

    rng = np.random.default_rng(1)
    window = rng.integers(0, 256, (12, 10, 2), dtype=np.uint8)
    kernel = np.ones((1, 3, 3), np.float32) / 9
    boxes = [(11, 4, 3, 2, 1000.0), (0, 0, 2, 4, 7.25), (5, 5, 3, 4, 0.1), (6, 6, 2, 2, 3e7), (5, 5, 3, 4, 1.0)]
    recipes = [CropRecipe(window, kernel, np.zeros((0, 12, 10), bool), streaks=boxes),
               CropRecipe(window, kernel, np.zeros((0, 12, 10), bool))]
    batch = stack_recipes(recipes)
    linear = rng.random((2, 12, 10, 2)).astype(np.float32)
    expected = linear.copy()
    covered = np.zeros((2, 12, 10, 1), bool)
    for i, j, ri, rj, spike in boxes:  # the per-pair path's slices
        expected[0, i - ri : i + ri, j - rj : j + rj] += np.float32(spike)
        covered[0, i - ri : i + ri, j - rj : j + rj] = True
    changed = _add_streaks(linear, batch)
    np.testing.assert_array_equal(linear, expected)  # in order, clipped, nothing in pair 1
    np.testing.assert_array_equal(changed, covered)
    assert covered[0].sum() > 30 and not covered[1].any()


@pytest.mark.parametrize("count", [0, 1, 8, 9, 20])
def test_masks_pack_eight_to_a_byte(count):
    masks = np.random.default_rng(count).random((3, count, 7, 5)) > 0.5
    packed = np.packbits(masks, axis=1, bitorder="little")
    assert packed.shape == (3, -(-count // 8), 7, 5)
    np.testing.assert_array_equal(unpack_masks(packed, count), masks)


def test_stack_recipes_errors():
    window = np.zeros((20, 20, 3), np.uint8)
    kernel = np.ones((1, 5, 5), np.float32)
    with pytest.raises(ValueError, match="recipes must hold at least one"):
        stack_recipes([])
    with pytest.raises(ValueError, match="recipes must share window and kernel shapes"):
        stack_recipes([CropRecipe(window, kernel, np.zeros((0, 20, 20), bool)),
                       CropRecipe(window[:10], kernel, np.zeros((0, 10, 20), bool))])


@pytest.mark.parametrize("field, value, message", [
    ("window", np.zeros((20, 20, 3), np.float32), r"recipes\[1\]\.window must be a non-empty \(H, W, C\) uint8"),
    ("window", np.zeros((20, 20), np.uint8), r"recipes\[1\]\.window"),
    ("kernels", np.ones((2, 5, 5), np.float32), r"recipes\[1\]\.masks must be \(n, H, W\) = \(1, 20, 20\)"),
    ("kernels", np.full((1, 5, 5), np.nan, np.float32), r"recipes\[1\]\.kernels must be a finite"),
    ("kernels", np.ones((1, 25, 5), np.float32), r"recipes\[1\]\.kernels of \(25, 5\) do not fit"),
    ("masks", np.zeros((0, 19, 20), bool), r"recipes\[1\]\.masks must be \(n, H, W\) = \(0, 20, 20\)"),
    ("gain", -1.0, r"recipes\[1\]\.gain must be a positive finite number"),
    ("gain", float("nan"), r"recipes\[1\]\.gain"),
])
def test_stack_recipes_names_the_bad_field(field, value, message):
    good = dict(window=np.zeros((20, 20, 3), np.uint8), kernels=np.ones((1, 5, 5), np.float32),
                masks=np.zeros((0, 20, 20), bool))
    with pytest.raises(ValueError, match=message):
        stack_recipes([CropRecipe(**good), CropRecipe(**{**good, field: value})])
    with pytest.raises(TypeError, match=r"recipes\[0\] must be a CropRecipe"):
        stack_recipes([good])


def test_form_batch_errors():
    batch = stack_recipes([CropRecipe(np.zeros((20, 20, 3), np.uint8), np.ones((1, 5, 5), np.float32),
                                      np.zeros((0, 20, 20), bool))])
    for device in ("tpu", "cuda:x", "cuda1", 0):
        with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
            form_batch(batch, device=device)
    with pytest.raises(TypeError, match="quantise"):
        form_batch(batch, quantise=False)
    with pytest.raises(TypeError, match="batch must be a RecipeBatch"):
        form_batch([batch])
    with pytest.raises(ValueError, match="crf must be one of"):
        form_batch(batch, crf="log")
    with pytest.raises(TypeError, match="noise must be None or a NoiseConfig"):
        form_batch(batch, noise=0.1)


needs_gpu = pytest.mark.skipif(fastblur.backend_info().get("cupy") != "available",
                               reason=f"backend 'cupy' unavailable: {fastblur.backend_info().get('cupy')}")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_on_the_gpu_equals_the_cpu(case):
    sampler = _sampler(**CASES[case])
    batch = stack_recipes([sampler.recipe(index) for index in INDICES])
    expected = sampler.form(batch, "cpu")
    formed = sampler.form(batch, "cuda")
    blurry, sharp = (array.get() for array in formed)
    codes = np.abs(blurry - expected[0]) * 255
    assert codes.max() <= 1 + 1e-4 and np.count_nonzero(codes > 0.5) <= 1e-3 * codes.size
    codes = np.abs(sharp - expected[1]) * 255
    assert codes.max() <= 1 + 1e-4 and np.count_nonzero(codes > 0.5) <= 1e-3 * codes.size


@pytest.mark.gpu
@needs_gpu
def test_noise_on_the_gpu_has_the_configured_std():
    sampler = _noise_sampler(gaussian_noise=True, noise_std=0.05, poisson_peak=1000.0)
    batch = stack_recipes([sampler.recipe(index) for index in range(4)])
    clean = _noise_sampler().form(batch, "cpu")[0]
    noisy = sampler.form(batch, "cuda")[0].get()
    usable = (clean > 0.2) & (clean < 0.8)
    ratio = noisy[usable] / clean[usable] - 1
    expected_std = np.sqrt(0.05 ** 2 + 1 / (1000 * clean[usable])).mean()
    assert ratio.std() == pytest.approx(expected_std, rel=0.1)


def _folder_with_unusable_images(folder):
    import cv2

    rng = np.random.default_rng(5)
    for name in ("a_good", "c_good"):
        cv2.imwrite(str(folder / f"{name}.png"), rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    (folder / "b_broken.png").write_bytes(b"not a png")
    cv2.imwrite(str(folder / "d_small.png"), rng.integers(0, 256, (20, 20, 3), dtype=np.uint8))
    return DatasetConfig(input=str(folder), **SMALL)


def test_unusable_images_are_redrawn_and_exclude_marks_them_ahead(tmp_path):
    config = _folder_with_unusable_images(tmp_path)
    finding = CropSampler(config, crop_size=24)
    names = [source.name for source in finding.sources]
    assert names == ["a_good", "b_broken", "c_good", "d_small"]
    with pytest.warns(RuntimeWarning, match="skipping") as warned:
        found = [finding.sample(index) for index in range(12)]
    assert len(warned) == 2  # each unusable image warns once
    told = CropSampler(config, crop_size=24)
    told.exclude([1, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # excluded images are not read again
        pairs = [told.sample(index) for index in range(12)]
    for (blurry, sharp), (expected_blurry, expected_sharp) in zip(pairs, found):
        np.testing.assert_array_equal(blurry, expected_blurry)
        np.testing.assert_array_equal(sharp, expected_sharp)
    with pytest.raises(ValueError, match="no usable sharp image: all 4"):
        told.exclude([0, 2])
