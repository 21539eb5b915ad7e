"""fastblur-segment: torchvision Mask R-CNN outputs saved as detectron2 .npz files."""
import os

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastblur.sbdd.masks import COCO_CLASSES, detectron2_masks  # noqa: E402
from fastblur.sbdd.segment import (  # noqa: E402
    TORCHVISION_TO_CONTIGUOUS,
    WeightsNotFoundError,
    build_model,
    save_instances,
    segment_images,
    segment_sources,
)

#: What the stand-in detects in every image: torchvision label, score, and a box in
#: fractions of the image (top, left, bottom, right).
DETECTIONS = (
    (1, 0.95, (0.1, 0.1, 0.6, 0.5)),    # person -> 0
    (12, 0.99, (0.0, 0.0, 0.2, 0.2)),   # "N/A" in torchvision's list: dropped
    (90, 0.60, (0.5, 0.5, 0.9, 0.95)),  # toothbrush -> 79
    (3, 0.30, (0.2, 0.6, 0.4, 0.9)),    # car -> 2, below the default threshold
)


class StandInModel:
    """A callable with torchvision's detection interface whose masks are known boxes."""

    def __init__(self):
        self.seen = []

    def __call__(self, tensors):
        outputs = []
        for tensor in tensors:
            assert tensor.dtype == torch.float32 and tensor.ndim == 3 and tensor.shape[0] == 3
            assert float(tensor.min()) >= 0 and float(tensor.max()) <= 1
            _, height, width = tensor.shape
            self.seen.append((height, width))
            masks = torch.zeros((len(DETECTIONS), 1, height, width))
            for i, (_, _, (top, left, bottom, right)) in enumerate(DETECTIONS):
                masks[i, 0, round(top * height):round(bottom * height), round(left * width):round(right * width)] = 1
            outputs.append({
                "boxes": torch.zeros((len(DETECTIONS), 4)),
                "labels": torch.tensor([d[0] for d in DETECTIONS]),
                "scores": torch.tensor([d[1] for d in DETECTIONS]),
                "masks": masks,
            })
        return outputs


def _box(shape, fractions):
    height, width = shape
    top, left, bottom, right = fractions
    mask = np.zeros(shape, bool)
    mask[round(top * height):round(bottom * height), round(left * width):round(right * width)] = True
    return mask


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_class_mapping_matches_torchvision_names():
    weights = pytest.importorskip("torchvision.models.detection").MaskRCNN_ResNet50_FPN_Weights
    names = weights.DEFAULT.meta["categories"]  # index = torchvision label
    assert len(TORCHVISION_TO_CONTIGUOUS) == 80
    assert sorted(TORCHVISION_TO_CONTIGUOUS.values()) == list(range(80))
    for label, name in enumerate(names):
        if name in ("__background__", "N/A"):
            assert label not in TORCHVISION_TO_CONTIGUOUS
        else:
            assert COCO_CLASSES[TORCHVISION_TO_CONTIGUOUS[label]] == name
    assert TORCHVISION_TO_CONTIGUOUS[1] == 0 and TORCHVISION_TO_CONTIGUOUS[90] == 79
    assert TORCHVISION_TO_CONTIGUOUS[13] == COCO_CLASSES.index("stop sign") == 11


def test_segment_images_format_threshold_and_order():
    image = _image(60, 80)
    [result] = segment_images([image], StandInModel())
    assert result["pred_masks"].dtype == bool and result["pred_masks"].shape == (2, 60, 80)
    assert result["scores"].dtype == np.float32 and result["pred_classes"].dtype == np.int64
    np.testing.assert_array_equal(result["pred_classes"], [0, 79])  # best score first, N/A dropped
    np.testing.assert_allclose(result["scores"], [0.95, 0.60])
    np.testing.assert_array_equal(result["pred_masks"][0], _box((60, 80), DETECTIONS[0][2]))
    [low] = segment_images([image], StandInModel(), score_threshold=0.25)
    np.testing.assert_array_equal(low["pred_classes"], [0, 79, 2])
    [cars] = segment_images([image], StandInModel(), score_threshold=0.0, classes=["car", 79])
    np.testing.assert_array_equal(cars["pred_classes"], [79, 2])


def test_large_images_are_segmented_at_max_size_and_resized_back():
    model = StandInModel()
    image = _image(300, 400)
    [result] = segment_images([image], model, max_size=100)
    assert model.seen == [(75, 100)]
    assert result["pred_masks"].shape == (2, 300, 400)
    expected = _box((300, 400), DETECTIONS[0][2])
    differing = np.count_nonzero(result["pred_masks"][0] != expected)
    assert 0 < np.count_nonzero(expected) and differing <= 2 * (300 + 400)  # at most the rim pixels
    small = _image(50, 40)
    [result] = segment_images([small], model, max_size=100)
    assert model.seen[-1] == (50, 40)  # never enlarged


def test_batches_give_the_same_results_in_order():
    images = [_image(40 + 8 * i, 56, seed=i) for i in range(5)]
    one = list(segment_images(images, StandInModel(), batch_size=1))
    three = list(segment_images(iter(images), StandInModel(), batch_size=3))
    assert len(one) == len(three) == 5
    for a, b, image in zip(one, three, images):
        assert a["pred_masks"].shape[1:] == image.shape[:2]
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_saved_file_reads_back_through_the_detectron2_reader(tmp_path):
    image = _image(120, 160)
    [result] = segment_images([image], StandInModel(), score_threshold=0.0)
    save_instances(tmp_path / "a.npz", result)
    # fastblur-gen's selection: score > 0.9, area > min_area, top max_objects
    masks, ids = detectron2_masks(tmp_path / "a.npz", score_threshold=0.9, min_area=10, return_ids=True)
    assert ids == [0] and masks.shape == (1, 120, 160)
    np.testing.assert_array_equal(masks[0], _box((120, 160), DETECTIONS[0][2]))
    masks = detectron2_masks(tmp_path / "a.npz", score_threshold=0.1, min_area=10, max_objects=2)
    assert masks.shape == (2, 120, 160)
    area = np.count_nonzero(_box((120, 160), DETECTIONS[2][2]))
    assert detectron2_masks(tmp_path / "a.npz", score_threshold=0.5, min_area=area).shape == (1, 120, 160)


def test_bad_arguments():
    with pytest.raises(TypeError, match="model"):
        list(segment_images([_image(10, 10)], object()))
    with pytest.raises(ValueError, match=r"images\[1\]"):
        list(segment_images([_image(10, 10), np.zeros((10, 10), np.uint8)], StandInModel(), batch_size=4))
    with pytest.raises(ValueError, match="score_threshold"):
        list(segment_images([_image(10, 10)], StandInModel(), score_threshold=1.5))
    with pytest.raises(TypeError, match="max_size"):
        list(segment_images([_image(10, 10)], StandInModel(), max_size=10.5))
    with pytest.raises(ValueError, match="model"):
        build_model("yolo")


def _folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "seq").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), _image(64, 96, 1))
    cv2.imwrite(str(folder / "seq" / "b.png"), _image(80, 72, 2))
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def test_segment_sources_names_resume_and_bad_files(tmp_path, capsys):
    from fastblur.sbdd.config import DatasetConfig
    from fastblur.sbdd.dataset import find_sources

    sources = find_sources(DatasetConfig(input=str(_folder(tmp_path))))
    out = tmp_path / "masks"
    summary = segment_sources(sources, out, StandInModel(), progress=False)
    assert (summary["written"], summary["skipped"], summary["failed"]) == (2, 0, 1)
    assert summary["failures"][0][0] == "broken" and "broken.png" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == ["a.npz", "seq_b.npz"]  # fastblur-gen's source names
    assert detectron2_masks(out / "seq_b.npz", min_area=0).shape == (1, 80, 72)
    stamp = os.stat(out / "a.npz").st_mtime_ns
    model = StandInModel()
    again = segment_sources(sources, out, model, progress=False)
    assert (again["written"], again["skipped"], again["failed"]) == (0, 2, 1) and model.seen == []
    assert os.stat(out / "a.npz").st_mtime_ns == stamp
    assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_missing_default_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(WeightsNotFoundError) as raised:
        build_model(weights="default")
    message = str(raised.value)
    assert "maskrcnn_resnet50_fpn_v2_coco" in message and str(tmp_path / "torch_home") in message
    assert "--download" in message


def test_local_checkpoint_loads(tmp_path):
    torch.manual_seed(0)
    trained = build_model("maskrcnn_resnet50_fpn", weights="none")
    torch.save({"model": trained.state_dict()}, tmp_path / "ckpt.pth")
    loaded = build_model("maskrcnn_resnet50_fpn", weights=str(tmp_path / "ckpt.pth"))
    for (name, a), (_, b) in zip(trained.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        build_model(weights=str(tmp_path / "nowhere.pth"))


def test_cli_end_to_end_with_an_untrained_network(tmp_path, capsys):
    from fastblur.cli.segment import main

    folder = _folder(tmp_path)
    out = tmp_path / "masks"
    status = main(["--input", str(folder), "--out", str(out), "--weights", "none", "--device", "cpu",
                   "--max-size", "96", "--no-progress"])
    captured = capsys.readouterr()
    assert status == 1  # the broken file
    assert "2 images segmented" in captured.out and "broken" in captured.err
    for name, shape in (("a.npz", (64, 96)), ("seq_b.npz", (80, 72))):
        with np.load(out / name) as data:
            assert data["pred_masks"].dtype == bool and data["pred_masks"].shape[1:] == shape
            assert data["scores"].dtype == np.float32 and data["pred_classes"].dtype == np.int64
            assert np.all((data["pred_classes"] >= 0) & (data["pred_classes"] < 80))
            assert np.all(data["scores"] >= 0.5)
        detectron2_masks(out / name)  # readable by fastblur-gen's reader


def test_cli_missing_weights_exit_2_without_traceback(tmp_path, monkeypatch, capsys):
    from fastblur.cli.segment import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    status = main(["--input", str(_folder(tmp_path)), "--out", str(tmp_path / "m"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert "maskrcnn_resnet50_fpn_v2_coco" in err and "--download" in err
    assert not (tmp_path / "m").exists() or not os.listdir(tmp_path / "m")


def test_cli_out_that_is_a_file(tmp_path, capsys):
    from fastblur.cli.segment import main

    (tmp_path / "file").write_text("x")
    assert main(["--out", str(tmp_path / "file"), "--weights", "none", "--no-progress"]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_packed_masks_are_saved_as_the_unpacked_ones(tmp_path):
    from fastblur.sbdd.segment import _segment

    image = _image(45, 77)  # a width that is not a multiple of 8
    [plain] = segment_images([image], StandInModel(), score_threshold=0.0)
    [packed] = _segment([image], StandInModel(), 0.0, None, 1333, 1, None, packed=True)
    assert packed["pred_masks_packed"].shape == (3, 45, 10)
    save_instances(tmp_path / "plain.npz", plain)
    save_instances(tmp_path / "packed.npz", packed)
    with np.load(tmp_path / "plain.npz") as a, np.load(tmp_path / "packed.npz") as b:
        assert sorted(a.files) == sorted(b.files) == ["pred_classes", "pred_masks", "scores"]
        for key in a.files:
            assert a[key].dtype == plain[key].dtype
            np.testing.assert_array_equal(a[key], plain[key])
            np.testing.assert_array_equal(b[key], plain[key])


def test_fastblur_gen_segments_on_the_fly_and_caches(tmp_path, capsys):
    import json

    from fastblur.cli.gen import main

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"p{i}.png"), _image(72, 96, i))
    out = tmp_path / "out"
    argv = ["--input", str(folder), "--out", str(out), "--masks", "maskrcnn", "--segment-weights", "none",
            "--kernel-size", "9", "--min-object-area", "10", "--workers", "1", "--no-progress"]
    torch.manual_seed(0)
    assert main(argv) == 0, capsys.readouterr().err
    assert sorted(os.listdir(out / "masks")) == ["p0.npz", "p1.npz"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["masks"]["source"] for r in records] == ["maskrcnn", "maskrcnn"]
    for record in records:  # the cached file, read with fastblur-gen's detectron2 selection
        expected = detectron2_masks(out / "masks" / f"{record['name'][:-2]}.npz", min_area=10,
                                    max_objects=5, return_ids=True)[1]
        assert record["masks"]["ids"] == expected
    stamps = {name: os.stat(out / "masks" / name).st_mtime_ns for name in os.listdir(out / "masks")}
    assert main(argv + ["--count", "4"]) == 0  # more pairs: the masks are not segmented again
    assert {name: os.stat(out / "masks" / name).st_mtime_ns for name in os.listdir(out / "masks")} == stamps


def test_fastblur_gen_maskrcnn_without_weights_exits_2(tmp_path, monkeypatch, capsys):
    from fastblur.cli.gen import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    status = main(["--out", str(tmp_path / "out"), "--masks", "maskrcnn", "--count", "1", "--no-progress"])
    assert status == 2 and "--download" in capsys.readouterr().err


def test_crop_sampler_needs_a_mask_cache_folder():
    from fastblur.sbdd import CropSampler
    from fastblur.sbdd.config import DatasetConfig

    with pytest.raises(ValueError, match="masks_path"):
        CropSampler(DatasetConfig(masks="maskrcnn", segment_weights="none", progress=False))
