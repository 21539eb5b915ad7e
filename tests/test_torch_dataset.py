"""On-the-fly SBDD crops for PyTorch: shapes, ranges, reproducibility over workers and epochs."""
import os
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastblur.sbdd import synthesize_pair  # noqa: E402
from fastblur.sbdd.crops import CropSampler  # noqa: E402
from fastblur.sbdd.config import DatasetConfig  # noqa: E402
from fastblur.sbdd.dataset import read_image  # noqa: E402
from fastblur.torch import SBDDDataset, SBDDMapDataset  # noqa: E402

OPTIONS = dict(crop_size=48, kernel_size=15, max_objects=3, min_object_area=200, seed=5)


def _pairs(loader):
    return [(b.clone(), s.clone()) for b, s in loader]


def test_pairs_are_chw_floats_in_unit_range():
    blurry, sharp = SBDDMapDataset(length=4, **OPTIONS)[1]
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
    mapped = SBDDMapDataset(length=6, **OPTIONS)
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
    dataset = SBDDMapDataset(length=3, **OPTIONS)
    first = dataset[0][0]
    dataset.set_epoch(1)
    assert not torch.equal(dataset[0][0], first)
    dataset.set_epoch(0)
    assert torch.equal(dataset[0][0], first)
    with pytest.raises(IndexError):
        dataset[3]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
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


def _write_images(folder, sizes, rng):
    import cv2

    folder.mkdir(exist_ok=True)
    for name, shape in sizes.items():
        cv2.imwrite(str(folder / name), rng.integers(0, 255, shape, dtype=np.uint8))


def test_images_are_checked_when_the_dataset_is_made(tmp_path, monkeypatch):
    """Sizes come from the headers when the dataset is made (only a file PIL cannot read is
    decoded): one warning a skipped file, none later, a ValueError if none is large enough."""
    import fastblur.torch as fastblur_torch

    rng = np.random.default_rng(0)
    _write_images(tmp_path, {"small.png": (30, 40, 3), "large.png": (90, 100, 3)}, rng)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    decoded = []
    monkeypatch.setattr(fastblur_torch, "read_image", lambda path: decoded.append(path) or read_image(path))
    with pytest.warns(RuntimeWarning) as caught:
        dataset = SBDDMapDataset(str(tmp_path), length=8, masks="shapes", **OPTIONS)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and all(w.filename == __file__ for w in caught)
    assert messages[0].startswith("skipping sharp image 'broken.png': cannot decode image")
    assert messages[1] == ("skipping sharp image 'small.png': it is 40×30 pixels and a crop reads a window of "
                           "62×62 pixels (crop_size + kernel_size - 1 = 48 + 15 - 1)")
    assert [os.path.basename(path) for path in decoded] == ["broken.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pairs = [dataset[i] for i in range(8)]
    assert all(b.shape == (3, 48, 48) for b, _ in pairs)
    (tmp_path / "large.png").unlink()
    with pytest.raises(ValueError) as error:
        SBDDDataset(tmp_path, length=8, masks="shapes", **{**OPTIONS, "crop_size": 20})
    assert str(error.value) == (
        "no sharp image is large enough: a crop needs 34×34 pixels (crop_size + kernel_size - 1 = 20 + 15 - 1); "
        "the smallest image is 'small.png' (40×30). Lower crop_size or kernel_size, or use larger images")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="length must be >= 1"):
        SBDDMapDataset(length=0)
    with pytest.raises(ValueError, match="crop_size must be a positive integer"):
        SBDDDataset(crop_size=0)
    with pytest.raises(ValueError, match="device must be"):
        SBDDDataset(device="tpu")


def test_loader_batches_are_the_same_with_any_number_of_workers():
    from fastblur.torch import SBDDLoader

    loader = SBDDLoader(batch_size=3, length=10, device="cpu", **OPTIONS)
    alone = _pairs(loader)
    loader.num_workers = 2
    shared = _pairs(loader)
    assert len(loader) == 4
    assert [b.shape for b, _ in alone] == [(3, 3, 48, 48)] * 3 + [(1, 3, 48, 48)]
    for (b0, s0), (b1, s1) in zip(alone, shared, strict=True):
        assert torch.equal(b0, b1) and torch.equal(s0, s1)
    # batch k is pairs kB .. kB + B - 1, on a CPU the per-pair dataset's
    mapped = SBDDMapDataset(length=10, **OPTIONS)
    for index in range(3, 6):
        assert torch.equal(alone[1][0][index - 3], mapped[index][0])
        assert torch.equal(alone[1][1][index - 3], mapped[index][1])
    # formed together as on a GPU: the same pairs, but for float32 rounding
    blurry, sharp = mapped.pairs(range(3, 6))
    blurry_np, sharp_np = loader.sampler.batch(range(3, 6))
    assert torch.equal(blurry, torch.from_numpy(blurry_np.transpose(0, 3, 1, 2).copy()))
    assert torch.equal(sharp, alone[1][1])
    assert float((blurry - alone[1][0]).abs().max()) <= 1 / 255 + 1e-6


def test_loader_epochs():
    from fastblur.torch import SBDDLoader

    loader = SBDDLoader(batch_size=2, length=2, device="cpu", **OPTIONS)
    first = _pairs(loader)[0][0]
    loader.set_epoch(1)
    assert loader.epoch == 1
    assert not torch.equal(_pairs(loader)[0][0], first)
    loader.set_epoch(0)
    assert torch.equal(_pairs(loader)[0][0], first)
    endless = SBDDLoader(batch_size=2, device="cpu", **OPTIONS)
    with pytest.raises(TypeError, match="endless"):
        len(endless)
    stream = iter(endless)
    assert [next(stream)[0].shape[0] for _ in range(3)] == [2, 2, 2]


def test_loader_bad_arguments_are_named():
    from fastblur.torch import SBDDLoader

    for kwargs, name in [(dict(batch_size=0), "batch_size"), (dict(length=-1), "length"),
                         (dict(num_workers=-1), "num_workers"), (dict(prefetch_factor=0), "prefetch_factor"),
                         (dict(device="tpu"), "device")]:
        with pytest.raises(ValueError, match=name):
            SBDDLoader(**{"device": "cpu", **kwargs})
    with pytest.raises(TypeError, match="epoch must be an integer"):
        SBDDLoader(device="cpu").set_epoch(1.5)


def _gpu_status():
    import fastblur

    status = fastblur.backend_info().get("cupy")
    if status != "available":
        return f"backend 'cupy' unavailable: {status}"
    if not torch.cuda.is_available():
        return "PyTorch has no CUDA device"
    return None


def test_cuda_without_a_gpu_says_why():
    if _gpu_status() is None:
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="cupy"):
        SBDDDataset(device="cuda", **OPTIONS)


@pytest.mark.gpu
@pytest.mark.skipif(_gpu_status() is not None, reason=str(_gpu_status()))
def test_cuda_pairs_are_the_cpu_batches_on_the_gpu():
    from fastblur.torch import SBDDLoader

    cpu = _pairs(SBDDLoader(batch_size=3, length=6, device="cpu", **OPTIONS))
    gpu = _pairs(SBDDLoader(batch_size=3, length=6, device="cuda", num_workers=2, **OPTIONS))
    dataset = SBDDDataset(length=6, batch_size=3, device="cuda", **OPTIONS)
    streamed = _pairs(torch.utils.data.DataLoader(dataset, batch_size=3))
    for (b0, s0), (b1, s1), (b2, s2) in zip(cpu, gpu, streamed, strict=True):
        assert b1.device.type == "cuda" and b2.device.type == "cuda"
        for blurry in (b1.cpu(), b2.cpu()):
            assert float((blurry - b0).abs().max()) <= 1 / 255 + 1e-6
        assert torch.equal(s1.cpu(), s0) and torch.equal(s2.cpu(), s0)
    blurry, sharp = SBDDMapDataset(length=6, device="cuda", **OPTIONS)[4]
    assert blurry.device.type == "cuda" and torch.equal(sharp.cpu(), cpu[1][1][1])
    with pytest.raises(ValueError, match="num_workers=0"):
        next(iter(torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=1)))
