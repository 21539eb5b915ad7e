"""Mask sources of fastblur.sbdd.masks on small fixtures built here (tmp_path)."""
import json

import numpy as np
import pytest
from PIL import Image

from fastblur.sbdd import masks as M

H, W = 40, 60


def _rect(r0, r1, c0, c1, shape=(H, W)):
    mask = np.zeros(shape, bool)
    mask[r0:r1, c0:c1] = True
    return mask


# -- detectron2 -----------------------------------------------------------------------
@pytest.fixture
def d2_file(tmp_path):
    instances = np.stack([
        _rect(0, 10, 0, 10),    # 0: area 100, score .95, person
        _rect(0, 20, 20, 40),   # 1: area 400, score .99, car
        _rect(20, 30, 0, 30),   # 2: area 300, score .90 (not > .9), car
        _rect(25, 40, 40, 60),  # 3: area 300, score .97, dog
        _rect(30, 35, 0, 10),   # 4: area  50, score .999, dog (too small)
        _rect(10, 30, 10, 20),  # 5: area 200, score .93, person
    ])
    path = tmp_path / "frame.npz"
    np.savez(path, pred_masks=instances, scores=np.array([0.95, 0.99, 0.90, 0.97, 0.999, 0.93], np.float32),
             pred_classes=np.array([0, 2, 2, 16, 16, 0]))
    return path, instances


def test_detectron2_selection_follows_the_reference(d2_file):
    path, instances = d2_file
    masks, ids = M.detectron2_masks(path, min_area=60, max_objects=5, return_ids=True)
    assert ids == [1, 3, 0, 5]  # score > 0.9 and area > 60, best score first
    np.testing.assert_array_equal(masks, instances[ids])
    assert masks.dtype == bool and masks.shape == (4, H, W)
    assert M.detectron2_masks(path, min_area=60, max_objects=2, return_ids=True)[1] == [1, 3]
    assert M.detectron2_masks(path, min_area=100, return_ids=True)[1] == [1, 3, 5]  # area 100 excluded
    assert M.detectron2_masks(path, min_area=10, score_threshold=0.98, return_ids=True)[1] == [4, 1]
    assert M.detectron2_masks(path, min_area=60, classes=["person"], return_ids=True)[1] == [0, 5]
    assert M.detectron2_masks(path, min_area=60, classes=[16, "car"], return_ids=True)[1] == [1, 3]
    assert M.detectron2_masks(path, min_area=60, max_objects=0).shape == (0, H, W)


def test_detectron2_defaults_are_the_reference_defaults(d2_file):
    path, _ = d2_file
    # min_area 4000 leaves nothing in this small file; score 0.9 exclusive
    assert M.detectron2_masks(path).shape == (0, H, W)


def test_detectron2_bad_files(tmp_path):
    missing_key = tmp_path / "a.npz"
    np.savez(missing_key, pred_masks=np.zeros((1, 4, 4), bool), scores=np.ones(1))
    with pytest.raises(ValueError, match="pred_classes"):
        M.detectron2_masks(missing_key)
    corrupt = tmp_path / "b.npz"
    corrupt.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="b.npz"):
        M.detectron2_masks(corrupt)
    with pytest.raises(FileNotFoundError):
        M.detectron2_masks(tmp_path / "none.npz")
    with pytest.raises(ValueError, match="unknown COCO class"):
        M.detectron2_masks(missing_key, classes=["unicorn"])


# -- COCO -----------------------------------------------------------------------------
def _encode_counts(runs):
    """COCO's compressed RLE, written from its description (for the decoder's test)."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = (x != -1) if (c & 0x10) else (x != 0)
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _runs(mask):
    """Column-major run lengths, starting with background."""
    flat = mask.T.reshape(-1)
    runs, current, length = [], False, 0
    for value in flat:
        if value == current:
            length += 1
        else:
            runs.append(length)
            current, length = value, 1
    runs.append(length)
    return runs


def test_decode_rle_uncompressed_and_compressed():
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) < 0.3
    mask[3:12, 5:20] = True  # long runs: multi-group and negative deltas
    runs = _runs(mask)
    np.testing.assert_array_equal(M.decode_rle({"size": [17, 23], "counts": runs}), mask)
    np.testing.assert_array_equal(M.decode_rle({"size": [17, 23], "counts": _encode_counts(runs)}), mask)
    # a hand-made case: 3x3, runs 2 off, 3 on, 4 off (column-major)
    expected = np.zeros((3, 3), bool)
    expected[2, 0] = expected[0, 1] = expected[1, 1] = True
    np.testing.assert_array_equal(M.decode_rle({"size": [3, 3], "counts": "234"}), expected)
    with pytest.raises(ValueError, match="add up"):
        M.decode_rle({"size": [3, 3], "counts": [2, 3]})
    with pytest.raises(ValueError, match="invalid character"):
        M.decode_rle({"size": [3, 3], "counts": "2 4"})


@pytest.fixture
def coco_file(tmp_path):
    square = _rect(5, 25, 10, 30)                    # polygon: pixels 5..24 x 10..29
    blob = np.zeros((H, W), bool)
    blob[28:38, 35:58] = True
    blob[30:34, 30:35] = True                        # area 230 + 20 = 250
    small = _rect(0, 3, 0, 3)                        # area 9
    data = {
        "images": [{"id": 7, "file_name": "train/img_7.png", "height": H, "width": W},
                   {"id": 8, "file_name": "img_8.png", "height": H, "width": W}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 100, "image_id": 7, "category_id": 1, "iscrowd": 0,
             "segmentation": [[10, 5, 30, 5, 30, 25, 10, 25]]},
            {"id": 101, "image_id": 7, "category_id": 3, "iscrowd": 0,
             "segmentation": {"size": [H, W], "counts": _encode_counts(_runs(blob))}},
            {"id": 102, "image_id": 7, "category_id": 3, "iscrowd": 1,
             "segmentation": {"size": [H, W], "counts": _runs(_rect(0, 40, 0, 60))}},
            {"id": 103, "image_id": 7, "category_id": 1, "iscrowd": 0,
             "segmentation": {"size": [H, W], "counts": _runs(small)}},
            {"id": 104, "image_id": 8, "category_id": 1, "iscrowd": 0,
             "segmentation": [[0, 0, 5, 0, 5, 5]]},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, data, square, blob, small


def test_coco_polygons_and_rle(coco_file):
    path, data, square, blob, small = coco_file
    masks, ids = M.coco_masks(path, "img_7.png", min_area=5, return_ids=True)
    assert ids == [100, 101, 103]  # largest first; the crowd annotation is skipped
    np.testing.assert_array_equal(masks[0], square)
    np.testing.assert_array_equal(masks[1], blob)
    np.testing.assert_array_equal(masks[2], small)
    assert M.coco_masks(data, 7, min_area=5, return_ids=True)[1] == [100, 101, 103]
    assert M.coco_masks(path, "img_7", min_area=10, max_objects=1, return_ids=True)[1] == [100]
    assert M.coco_masks(path, "img_7.png", min_area=5, categories=["car"], return_ids=True)[1] == [101]
    assert M.coco_masks(path, "img_7.png", min_area=5, include_crowd=True, return_ids=True)[1][0] == 102
    with pytest.raises(ValueError, match="not in the COCO annotations"):
        M.coco_masks(path, "img_9.png")


# -- label maps -----------------------------------------------------------------------
def test_label_map_png_grey_palette_and_colour(tmp_path):
    labels = np.zeros((H, W), np.uint16)
    labels[0:10, 0:10] = 3       # 100
    labels[10:30, 20:40] = 1000  # 400
    labels[30:40, 0:20] = 7      # 200
    labels[35:40, 50:60] = 255   # 50, to ignore
    grey = tmp_path / "grey.png"
    Image.fromarray(labels).save(grey)
    masks, ids = M.label_map_masks(grey, min_area=60, ignore=(255,), return_ids=True)
    assert ids == [1000, 7, 3]
    for mask, label in zip(masks, ids):
        np.testing.assert_array_equal(mask, labels == label)
    assert M.label_map_masks(grey, min_area=60, return_ids=True)[1] == [1000, 7, 3]  # 255: area 50
    assert M.label_map_masks(grey, min_area=150, max_objects=1, return_ids=True)[1] == [1000]

    palette = Image.fromarray((labels % 256).astype(np.uint8), mode="L").convert("P")
    palette.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 3 % 256, i)])
    palette.save(tmp_path / "palette.png")
    masks, ids = M.label_map_masks(tmp_path / "palette.png", min_area=60, ignore=(255,), return_ids=True)
    assert sorted(ids) == [3, 7, 232]  # 1000 % 256: palette indices are the labels

    colour = np.zeros((H, W, 3), np.uint8)
    colour[labels == 1000] = (255, 0, 0)
    colour[labels == 7] = (0, 0, 255)
    Image.fromarray(colour).save(tmp_path / "colour.png")
    masks, ids = M.label_map_masks(tmp_path / "colour.png", min_area=60, return_ids=True)
    assert ids == [0xFF0000, 0x0000FF]
    np.testing.assert_array_equal(masks[0], labels == 1000)

    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="bad.png"):
        M.label_map_masks(tmp_path / "bad.png")


# -- classical segmentation and shapes ------------------------------------------------
def test_classical_masks_of_a_photograph():
    from skimage import data

    image = data.astronaut()
    masks, ids = M.classical_masks(image, max_objects=4, min_area=3000, rng=1, return_ids=True)
    again, again_ids = M.classical_masks(image, max_objects=4, min_area=3000, rng=1, return_ids=True)
    np.testing.assert_array_equal(masks, again)
    assert ids == again_ids and 1 <= len(masks) <= 4 and masks.shape[1:] == image.shape[:2]
    areas = masks.sum(axis=(1, 2))
    assert (areas > 3000).all() and (areas <= 0.35 * image.shape[0] * image.shape[1]).all()
    assert list(areas) == sorted(areas, reverse=True)
    assert masks.sum(axis=0).max() == 1  # distinct regions do not overlap
    # regions follow the image: colour varies less inside a mask than across the image
    inside = np.mean([image[m].std(axis=0).mean() for m in masks])
    assert inside < 0.8 * image.reshape(-1, 3).std(axis=0).mean()
    other = M.classical_masks(image, max_objects=4, min_area=3000, rng=2, return_ids=True)[1]
    all_eligible = M.classical_masks(image, max_objects=100, min_area=3000, rng=0, return_ids=True)[1]
    assert set(ids) <= set(all_eligible) and set(other) <= set(all_eligible)


def test_random_shapes():
    masks = M.random_shape_masks((120, 160), max_objects=4, min_area=300, max_area_fraction=0.1, rng=3)
    again = M.random_shape_masks((120, 160), max_objects=4, min_area=300, max_area_fraction=0.1, rng=3)
    np.testing.assert_array_equal(masks, again)
    assert 1 <= len(masks) <= 4 and masks.dtype == bool
    areas = masks.sum(axis=(1, 2))
    assert (areas > 300).all() and (areas < 0.2 * 120 * 160).all()
    counts = {len(M.random_shape_masks((120, 160), max_objects=4, min_area=100, rng=s)) for s in range(30)}
    assert counts == {1, 2, 3, 4}


def test_resize_masks():
    small = np.zeros((1, 4, 4), bool)
    small[0, :2, :2] = True
    big = M.resize_masks(small, (8, 8))
    assert big.shape == (1, 8, 8) and big[0, :3, :3].all() and not big[0, 5:, :].any()
    assert M.resize_masks(small, (4, 4)) is not None and M.resize_masks(small, (4, 4)).shape == (1, 4, 4)


@pytest.mark.parametrize("small, big", [
    ((144, 256), (720, 1280)), ((144, 256), (1080, 1920)), ((171, 256), (683, 1024)), ((37, 53), (101, 211)),
    ((100, 100), (50, 50)), ((200, 120), (100, 60)), ((97, 131), (291, 262)), ((30, 40), (31, 41)),
    ((12, 16), (720, 1280)),
])
def test_resize_masks_equals_resizing_whole_masks(small, big):
    """Windowed on each mask's box, the bytes of OpenCV's bilinear resize of the whole mask:
    up and down, whole and fractional scales, short and long periods, boxes at the edges,
    empty and full masks."""
    import cv2

    rng = np.random.default_rng(sum(small + big))
    masks = np.zeros((12,) + small, bool)
    for mask in masks[2:]:
        y0, x0 = rng.integers(0, small[0]), rng.integers(0, small[1])
        y1, x1 = rng.integers(y0 + 1, small[0] + 1), rng.integers(x0 + 1, small[1] + 1)
        mask[y0:y1, x0:x1] = rng.random((y1 - y0, x1 - x0)) < rng.choice([0.3, 1.0])
    masks[1] = True
    masks[2, -1, -1] = masks[3, 0, 0] = True
    expected = [cv2.resize(m.view(np.uint8) * np.uint8(255), big[::-1], interpolation=cv2.INTER_LINEAR) >= 128
                for m in masks]
    np.testing.assert_array_equal(M.resize_masks(masks, big), np.stack(expected))
