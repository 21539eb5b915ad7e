"""On-the-fly SBDD crops for PyTorch: shapes, ranges, reproducibility over workers and epochs."""
import os
import pickle
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


# -- training-loop habits: persistent workers, len(), one argument order, safe defaults ----
TINY = dict(crop_size=32, kernel_size=7, masks="shapes", max_objects=2, min_object_area=100, seed=3)


def _epochs(dataset, loader, epochs):
    """The batches of each epoch, ``set_epoch`` called between them as a training loop does."""
    result = []
    for epoch in epochs:
        dataset.set_epoch(epoch)
        result.append(_pairs(loader))
    return result


def _assert_same_batches(first, second):
    assert len(first) == len(second)
    for (b0, s0), (b1, s1) in zip(first, second, strict=True):
        assert torch.equal(b0, b1) and torch.equal(s0, s1)


@pytest.mark.parametrize("kind", ["stream", "map"])
def test_set_epoch_reaches_persistent_workers(kind):
    """Epochs 0, 2, 1 give the same batches with num_workers 0, 2, and 2 persistent."""
    if kind == "stream":
        dataset = SBDDDataset(length=5, batch_size=2, **TINY)
    else:
        dataset = SBDDMapDataset(length=5, **TINY)
    epochs = [0, 2, 1]
    runs = [_epochs(dataset, torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=workers,
                                                         persistent_workers=persistent), epochs)
            for workers, persistent in [(0, False), (2, False), (2, True)]]
    for run in runs[1:]:
        for alone, shared in zip(runs[0], run, strict=True):
            _assert_same_batches(alone, shared)
    assert [b.shape[0] for b, _ in runs[0][0]] == [2, 2, 1]
    assert not torch.equal(runs[0][0][0][0], runs[0][1][0][0])
    assert not torch.equal(runs[0][1][0][0], runs[0][2][0][0])
    # epoch e is pair i of SeedSequence([seed, e, i]), whichever way it was made
    assert torch.equal(runs[2][1][1][0][1], dataset.pair(3, epoch=2)[0])


def test_loader_with_persistent_workers():
    from fastblur.torch import SBDDLoader

    loader = SBDDLoader(length=5, batch_size=2, device="cpu", **TINY)
    persistent = SBDDLoader(length=5, batch_size=2, device="cpu", num_workers=2, persistent_workers=True, **TINY)
    for epoch in (1, 0):
        loader.set_epoch(epoch)
        persistent.set_epoch(epoch)
        _assert_same_batches(_pairs(loader), _pairs(persistent))
    assert persistent._loader is not None  # the workers were kept


def test_len_counts_the_pairs_and_the_batches():
    dataset = SBDDDataset(length=7, batch_size=3, **TINY)
    assert len(dataset) == 7
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2)
    assert len(loader) == len(_pairs(loader)) == 3
    dropped = torch.utils.data.DataLoader(dataset, batch_size=3, drop_last=True)
    assert len(dropped) == len(_pairs(dropped)) == 2
    with pytest.raises(TypeError, match="endless SBDDDataset"):
        len(SBDDDataset(**TINY))
    with pytest.raises(TypeError, match="endless"):
        len(torch.utils.data.DataLoader(SBDDDataset(**TINY), batch_size=3))


def test_one_argument_order(tmp_path):
    from fastblur.torch import SBDDLoader

    _write_images(tmp_path, {"photo.png": (60, 70, 3)}, np.random.default_rng(1))
    for cls in (SBDDDataset, SBDDMapDataset, SBDDLoader):
        made = cls(tmp_path, 4, **({"device": "cpu"} if cls is SBDDLoader else {}), **TINY)
        assert made.length == 4 and made.sampler.config.input == str(tmp_path)
        with pytest.raises(TypeError, match="positional"):
            cls(None, 4, 32)
    with pytest.raises(TypeError, match=r"takes \(images=None, length=None, \*, \.\.\.\).*"
                                        r"SBDDMapDataset\(length=6\) or SBDDMapDataset\(images, length=6\)"):
        SBDDMapDataset(6, str(tmp_path))
    with pytest.raises(TypeError, match=r"the integer 6 came as images.*SBDDMapDataset\(length=6\)"):
        SBDDMapDataset(6, images=str(tmp_path))
    dataset = SBDDMapDataset(length=2, images=str(tmp_path), **TINY)
    assert pickle.loads(pickle.dumps(dataset)).length == 2
    with pytest.raises(TypeError, match="SBDDMapDataset needs length="):
        SBDDMapDataset(str(tmp_path))
    with pytest.raises(TypeError, match="images must be a folder path"):
        SBDDDataset(["a.png"])
    with pytest.raises(TypeError, match="length must be an integer"):
        SBDDDataset(length=2.0)
    assert SBDDDataset(length=np.int64(3), batch_size=np.int32(2), **TINY).length == 3


def test_a_warning_once_when_workers_run_without_batch_size(monkeypatch):
    import types

    import fastblur.torch as fastblur_torch

    dataset = SBDDDataset(length=4, **TINY)
    worker = types.SimpleNamespace(id=0, num_workers=2)
    monkeypatch.setattr(fastblur_torch, "get_worker_info", lambda: worker)
    expected = r"without batch_size is read by 2 DataLoader workers.*SBDDDataset\(batch_size=B\)"
    with pytest.warns(UserWarning, match=expected):
        assert len(list(dataset)) == 2  # worker 0's pairs: 0 and 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(dataset)  # once (the flag is shared by the workers and the epochs)
        worker.id = 1
        list(SBDDDataset(length=4, **TINY))  # worker 0 alone warns
        worker.id = 0
        list(SBDDDataset(length=4, batch_size=1, **TINY))  # batch_size given
        worker.num_workers = 1
        list(SBDDDataset(length=4, **TINY))  # one worker keeps the order


def test_device_auto_is_the_cpu_without_cuda(monkeypatch, caplog):
    import logging

    import fastblur.backends
    from fastblur.backends import BackendUnavailableError
    from fastblur.torch import SBDDLoader

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="fastblur"):
        loader = SBDDLoader(length=2, batch_size=2, **TINY)
    assert loader.device == "cpu"
    assert "SBDDLoader(device='auto'): pairs are formed on 'cpu': PyTorch sees no CUDA device" in caplog.text
    assert _pairs(loader)[0][0].shape == (2, 3, 32, 32)

    def no_cupy(name):
        raise BackendUnavailableError("backend 'cupy' is not available here: no CuPy")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(fastblur.backends, "get_backend", no_cupy)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fastblur"):
        assert SBDDLoader(length=2, batch_size=2, **TINY).device == "cpu"
    assert "PyTorch sees a CUDA device but CuPy cannot run (backend 'cupy' is not available here" in caplog.text


def test_grey_and_rgba_images_are_used_as_rgb(tmp_path):
    """Grey: the grey value in all three channels; RGBA: the alpha channel dropped."""
    from PIL import Image

    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (50, 60), dtype=np.uint8)
    rgba = rng.integers(0, 256, (50, 60, 4), dtype=np.uint8)
    for folder, image in [("grey", grey), ("grey_as_rgb", np.repeat(grey[..., None], 3, axis=2)),
                          ("rgba", rgba), ("rgba_as_rgb", rgba[..., :3])]:
        (tmp_path / folder).mkdir()
        Image.fromarray(image).save(tmp_path / folder / "photo.png")
    made = {folder.name: SBDDMapDataset(folder, length=2, **TINY)[1]
            for folder in tmp_path.iterdir()}
    for name in ("grey", "rgba"):
        assert torch.equal(made[name][0], made[name + "_as_rgb"][0])
        assert torch.equal(made[name][1], made[name + "_as_rgb"][1])
    assert torch.equal(made["grey"][1][0], made["grey"][1][2])
