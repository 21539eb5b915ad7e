"""On-the-fly SBDD crops for PyTorch: shapes, ranges, reproducibility over workers and epochs."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastblur.sbdd import synthesize_pair  # noqa: E402
from fastblur.sbdd.crops import CropSampler  # noqa: E402
from fastblur.sbdd.config import DatasetConfig  # noqa: E402
from fastblur.torch import SBDDDataset, SBDDMapDataset  # noqa: E402

OPTIONS = dict(crop_size=48, kernel_size=15, max_objects=3, min_object_area=200, seed=5)


def _pairs(loader):
    return [(b.clone(), s.clone()) for b, s in loader]


def test_pairs_are_chw_floats_in_unit_range():
    blurry, sharp = SBDDMapDataset(4, **OPTIONS)[1]
    assert blurry.shape == sharp.shape == (3, 48, 48)
    assert blurry.dtype == sharp.dtype == torch.float32
    for image in (blurry, sharp):
        assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert not torch.equal(blurry, sharp)
    assert torch.allclose(blurry * 255, torch.round(blurry * 255), atol=1e-4)  # 8-bit, as fastblur-gen writes


def test_same_pairs_with_any_number_of_workers():
    dataset = SBDDDataset(length=6, **OPTIONS)
    alone = _pairs(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=0))
    shared = _pairs(torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2))
    assert len(alone) == len(shared) == 6
    for (b0, s0), (b1, s1) in zip(alone, shared):
        assert torch.equal(b0, b1) and torch.equal(s0, s1)
    mapped = SBDDMapDataset(6, **OPTIONS)
    assert all(torch.equal(mapped[i][0], alone[i][0]) for i in range(6))


def test_same_batches_with_any_number_of_workers():
    dataset = SBDDDataset(length=10, batch_size=3, **OPTIONS)
    alone = _pairs(torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=0))
    shared = _pairs(torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2))
    assert [b.shape[0] for b, _ in alone] == [3, 3, 3, 1]
    assert len(shared) == len(alone)
    for (b0, s0), (b1, s1) in zip(alone, shared):
        assert torch.equal(b0, b1) and torch.equal(s0, s1)


def test_epochs_differ_and_repeat():
    dataset = SBDDMapDataset(3, **OPTIONS)
    first = dataset[0][0]
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][0], first)
    dataset.set_epoch(0)
    assert torch.equal(dataset[0][0], first)
    with pytest.raises(IndexError):
        dataset[3]
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        dataset.set_epoch(-1)


def test_crop_is_the_formation_model_on_the_window():
    sampler = CropSampler(DatasetConfig(kernel_size=15, max_objects=2, min_object_area=200, seed=3),
                          crop_size=40, quantize=False)
    blurry, sharp = sampler.sample(7)
    # Redo pair 7 by hand from the same seeds: same window, masks, kernels, formation stream.
    mask_seed, kernel_seed, crop_seed, formation_seed = np.random.SeedSequence([3, 0, 7]).spawn(4)
    crop_rng = np.random.default_rng(crop_seed)
    source, image = sampler._draw_image(crop_rng)
    masks, _ = sampler._maker.object_masks(source, image, np.random.default_rng(mask_seed))
    top = int(crop_rng.integers(image.shape[0] - 54 + 1))
    left = int(crop_rng.integers(image.shape[1] - 54 + 1))
    masks = masks[:, top : top + 54, left : left + 54]
    masks = masks[masks.any(axis=(1, 2))]
    kernels, _ = sampler._maker.kernels.draw(len(masks) + 1, np.random.default_rng(kernel_seed))
    pair = synthesize_pair(image[top : top + 54, left : left + 54], kernels, masks,
                           rng=np.random.default_rng(formation_seed), backend="numpy")
    np.testing.assert_allclose(blurry * 255, pair.blurry, atol=2e-3)
    np.testing.assert_allclose(sharp * 255, np.minimum(pair.sharp, 255), atol=1e-4)


def test_images_smaller_than_the_window_are_skipped(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "small.png"), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "large.png"), rng.integers(0, 255, (90, 100, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    dataset = SBDDMapDataset(8, images=str(tmp_path), masks="shapes", **OPTIONS)
    with pytest.warns(RuntimeWarning, match="skipping"):
        pairs = [dataset[i] for i in range(8)]
    assert all(b.shape == (3, 48, 48) for b, _ in pairs)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="length must be a positive integer"):
        SBDDMapDataset(0)
    with pytest.raises(ValueError, match="crop_size must be a positive integer"):
        SBDDDataset(crop_size=0)
    with pytest.raises(ValueError, match="device must be"):
        SBDDDataset(device="tpu")
