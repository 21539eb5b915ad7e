"""fastblur-gen end to end: PNG writers, the decoded-image cache, procedural masks, --timings."""
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fastblur.sbdd import DatasetConfig, generate
from fastblur.sbdd import codecs
from fastblur.sbdd.codecs import DecodedCache, decode_image, encode_image, png_writer
from fastblur.sbdd.masks import fill_polygon, random_shape_masks
from inputs import photo_folder

KERNEL = 15


def _photo(shape=(61, 83)):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[: shape[0] * 3 : 3, : shape[1] * 3 : 3])


def _decoders(data):
    """The image as OpenCV, Pillow and imagecodecs read it back (RGB or grey)."""
    import cv2

    yield "pillow", np.asarray(Image.open(io.BytesIO(data)))
    try:
        import imagecodecs
    except ImportError:
        pass
    else:
        yield "imagecodecs", imagecodecs.png_decode(data)
    flat = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    yield "opencv", cv2.cvtColor(flat, cv2.COLOR_BGR2RGB) if flat.ndim == 3 else flat


WRITERS = [("fpng", codecs._fpng), ("imagecodecs", codecs._imagecodecs_png), ("opencv", codecs._opencv_png)]


@pytest.mark.parametrize("name, writer", WRITERS, ids=[w[0] for w in WRITERS])
@pytest.mark.parametrize("grey", [False, True])
def test_every_png_writer_is_lossless_and_standard(name, writer, grey):
    pytest.importorskip("cv2" if name == "opencv" else name)
    if name == "fpng" and grey:
        pytest.skip("fpng writes colour images only (encode_image falls back for grey)")
    rng = np.random.default_rng(0)
    image = _photo()
    image[:5] = rng.integers(0, 256, image[:5].shape, dtype=np.uint8)  # incompressible rows too
    image = image[..., 1].copy() if grey else image
    data = writer(image)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    for decoder, pixels in _decoders(data):
        np.testing.assert_array_equal(pixels, image, err_msg=f"{name} read by {decoder}")
    assert writer(image) == data  # bytes depend only on the pixels


@pytest.mark.parametrize("compression", ["fast", "small"])
def test_encode_image_png(compression):
    image = _photo((40, 57))
    for array in (image, image[..., 0].copy(), image[::-1, ::2]):  # colour, grey, strided
        data = encode_image(array, "png", compression=compression)
        np.testing.assert_array_equal(next(_decoders(data))[1], array)
    colour = decode_image(encode_image(image, compression=compression))
    np.testing.assert_array_equal(colour, image)


def test_check_format(monkeypatch):
    from fastblur.sbdd.codecs import check_format

    check_format("png"), check_format("jpg")
    with pytest.raises(ValueError, match="format"):
        check_format("gif")
    imagecodecs = pytest.importorskip("imagecodecs")
    monkeypatch.setattr(imagecodecs.JPEGXL, "available", False, raising=False)
    with pytest.raises(ValueError, match="libjxl"):
        check_format("jxl")


def test_png_writer_choice(monkeypatch):
    assert png_writer("fast", 2) != "fpng"
    monkeypatch.setattr(codecs, "_installed", lambda module: False)
    assert png_writer("fast") == png_writer("small") == "opencv"
    np.testing.assert_array_equal(decode_image(encode_image(_photo())), _photo())


def test_encode_image_jpeg_and_errors():
    image = _photo()
    jpeg = encode_image(image, "jpg", quality=90)
    assert jpeg[:2] == b"\xff\xd8"
    assert np.abs(decode_image(jpeg).astype(int) - image).mean() < 6
    assert len(encode_image(image, "jpg", quality=30)) < len(jpeg)
    with pytest.raises(TypeError, match="uint8"):
        encode_image(image.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="compression"):
        encode_image(image, compression="smallest")
    with pytest.raises(ValueError, match="format"):
        encode_image(image, "gif")
    with pytest.raises(ValueError, match="cannot decode image 'x.png'"):
        decode_image(b"not an image", "x.png")


# -- cache ------------------------------------------------------------------------------
def test_decoded_cache_is_lru_by_bytes():
    cache = DecodedCache(1000)
    calls = []

    def make(key, size):
        def compute():
            calls.append(key)
            return np.zeros(size, np.uint8)
        return compute

    a = cache.get("a", make("a", 400))
    cache.get("b", make("b", 400))
    assert cache.get("a", make("a", 400)) is a  # a hit: now most recent
    cache.get("c", make("c", 400))  # 1200 bytes > 1000: drops b, the least recent
    assert cache.keys() == ["a", "c"] and cache.nbytes == 800
    cache.get("b", make("b", 400))
    assert calls == ["a", "b", "c", "b"] and (cache.hits, cache.misses) == (1, 4)
    big = cache.get("big", make("big", 2000))  # larger than the cache: returned, not kept
    assert big.size == 2000 and "big" not in cache and cache.nbytes <= 1000
    pair = cache.get("pair", lambda: (np.ones(3), np.ones(2)))
    assert cache._items["pair"][1] == 40
    with pytest.raises(ValueError, match="read-only"):
        a[0] = 1
    with pytest.raises(ValueError, match="read-only"):
        pair[1][0] = 1
    with pytest.raises(TypeError, match="max_bytes"):
        DecodedCache(1.5)
    with pytest.raises(ValueError, match="max_bytes"):
        DecodedCache(-1)
    assert DecodedCache(np.int64(10)).max_bytes == 10


# -- procedural masks ---------------------------------------------------------------------
def test_fill_polygon_matches_skimage():
    from skimage.draw import polygon

    rng = np.random.default_rng(1)
    for trial in range(300):
        shape = tuple(int(v) for v in rng.integers(5, 60, 2))
        vertices = int(rng.integers(3, 12))
        # random float vertices: convex, concave and self-intersecting polygons, some
        # reaching outside the image
        rows = rng.uniform(-10, shape[0] + 10, vertices)
        cols = rng.uniform(-10, shape[1] + 10, vertices)
        expected = np.zeros(shape, bool)
        expected[polygon(rows, cols, shape)] = True
        got = fill_polygon(np.zeros(shape, bool), rows, cols)
        np.testing.assert_array_equal(got, expected, err_msg=f"trial {trial}")
    outside = fill_polygon(np.zeros((8, 8), bool), np.array([-5.0, -5, -1]), np.array([0.0, 6, 3]))
    assert not outside.any()


def test_random_shapes_are_those_of_the_skimage_rasterisation():
    # digests of the masks made by the skimage.draw.polygon version (fastblur <= 0.x)
    expected = {
        ((720, 1280), 0): ((5, 720, 1280), "b674a2f3b3195ef9"),
        ((720, 1280), 1): ((3, 720, 1280), "dde1d53b8f6b6323"),
        ((120, 150), 0): ((3, 120, 150), "7626a974be48a80a"),
        ((120, 150), 2): ((3, 120, 150), "ab921def5d81b3cb"),
    }
    for (shape, seed), (stack_shape, digest) in expected.items():
        small = dict(max_objects=3, min_area=300) if shape == (120, 150) else {}
        masks, ids = random_shape_masks(shape, rng=seed, return_ids=True, **small)
        assert masks.shape == stack_shape and masks.dtype == bool and ids == list(range(len(masks)))
        assert hashlib.sha256(np.packbits(masks).tobytes()).hexdigest()[:16] == digest


# -- the dataset writer -----------------------------------------------------------------
@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return photo_folder(tmp_path_factory, ("astronaut", 3, 120, 150), ("coffee", 3, 110, 160))


def _config(out, images, **changes):
    settings = dict(out=str(out), input=str(images), kernel_size=KERNEL, min_object_area=300, max_objects=3,
                    n_images=3, count=6, workers=1, progress=False)
    settings.update(changes)
    return DatasetConfig(**settings)


def _pixels(out):
    return {str(p.relative_to(out)): np.asarray(Image.open(p)) for p in sorted(Path(out).rglob("*.png"))}


def test_each_source_is_decoded_and_segmented_once(tmp_path, images, monkeypatch):
    from fastblur.sbdd import dataset, masks

    decoded, segmented = [], []
    read, segment = dataset.read_image, masks.segment_regions
    monkeypatch.setattr(dataset, "read_image", lambda path: decoded.append(Path(path).name) or read(path))
    monkeypatch.setattr(masks, "segment_regions", lambda image: segmented.append(image.shape) or segment(image))
    summary = generate(_config(tmp_path / "ds", images, masks="classical"))
    assert summary.written == 6
    assert decoded == ["a.png", "b.png"] and len(segmented) == 2  # three variants each


def test_mask_files_are_read_once_per_source(tmp_path, images, monkeypatch):
    from fastblur.sbdd import masks

    labels = tmp_path / "labels"
    labels.mkdir()
    for path in sorted(Path(images).glob("*.png")):
        height, width = np.asarray(Image.open(path)).shape[:2]
        label = np.zeros((height, width), np.uint8)
        label[10:60, 20:90], label[70:100, 5:40] = 1, 2
        Image.fromarray(label).save(labels / path.name)
    read = []
    original = masks.label_map_masks
    monkeypatch.setattr(masks, "label_map_masks",
                        lambda path, **kw: read.append(Path(path).name) or original(path, **kw))
    generate(_config(tmp_path / "cached", images, masks="labels", masks_path=str(labels)))
    assert read == ["a.png", "b.png"]
    manifest = [json.loads(line) for line in (tmp_path / "cached" / "manifest.jsonl").read_text().splitlines()]
    assert [r["masks"]["ids"] for r in manifest] == [[1, 2]] * 6


def test_small_png_has_the_same_pixels_and_workers_the_same_bytes(tmp_path, images):
    fast = _config(tmp_path / "fast", images, masks="classical")
    generate(fast)
    small = generate(_config(tmp_path / "small", images, masks="classical", png_compression="small", workers=2))
    assert small.written == 6
    fast_pixels, small_pixels = _pixels(tmp_path / "fast"), _pixels(tmp_path / "small")
    assert sorted(fast_pixels) == sorted(small_pixels) and len(fast_pixels) == 12
    for name in fast_pixels:
        np.testing.assert_array_equal(fast_pixels[name], small_pixels[name], err_msg=name)
    generate(_config(tmp_path / "fast2", images, masks="classical", workers=2))
    files = lambda out: {p.name: p.read_bytes() for p in sorted(Path(out).rglob("*.png"))}  # noqa: E731
    assert files(tmp_path / "fast") == files(tmp_path / "fast2")
    # png_compression does not change the pairs: a rerun may change it and resume
    again = generate(_config(tmp_path / "fast", images, masks="classical", png_compression="small", count=7))
    assert (again.written, again.skipped) == (1, 6)


def test_timings(tmp_path, images, capsys):
    from fastblur.cli.gen import main
    from fastblur.sbdd.timings import STAGES

    code = main(["--out", str(tmp_path / "ds"), "--input", str(images), "--count", "4", "--n-images", "2",
                 "--kernel-size", str(KERNEL), "--min-object-area", "300", "--masks", "shapes",
                 "--workers", "2", "--no-progress", "--timings", "--png-compression", "small"])
    assert code == 0
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("fastblur-gen timings")]
    assert len(line) == 1 and "over 4 pairs" in line[0]
    values = dict(item.rsplit(" ", 1) for item in line[0].split(": ", 2)[2].split(" (sum")[0].split(", "))
    assert list(values) == list(STAGES)
    assert all(float(v) >= 0 for v in values.values()) and float(values["synthesis"]) > 0
    settings = json.loads((tmp_path / "ds" / "args.json").read_text())["settings"]
    assert settings["png_compression"] == "small" and settings["timings"] is True
    summary = generate(_config(tmp_path / "quiet", images, masks="shapes", count=2))
    assert summary.timings is None  # off by default


def test_config_checks():
    with pytest.raises(ValueError, match="png_compression"):
        DatasetConfig(png_compression="best")
    with pytest.raises(TypeError, match="timings"):
        DatasetConfig(timings=1)


# -- JPEG XL ----------------------------------------------------------------------------
def _needs_jxl():
    imagecodecs = pytest.importorskip("imagecodecs")
    if not getattr(imagecodecs.JPEGXL, "available", False):
        pytest.skip("imagecodecs without libjxl")


def test_jxl_is_lossless_and_read_back():
    _needs_jxl()
    import imagecodecs

    image = _photo()
    data = encode_image(image, "jxl")
    np.testing.assert_array_equal(imagecodecs.jpegxl_decode(data), image)  # an independent reader
    np.testing.assert_array_equal(decode_image(data), image)
    assert encode_image(image, "jxl") == data
    grey = image[..., 2].copy()
    np.testing.assert_array_equal(decode_image(encode_image(grey, "jxl")), np.repeat(grey[..., None], 3, axis=2))
    with pytest.raises(ValueError, match="cannot decode JPEG XL image 'cut.jxl'"):
        decode_image(data[: len(data) // 2], "cut.jxl")


def test_generate_jxl_pairs_and_jxl_inputs(tmp_path, images):
    _needs_jxl()
    from fastblur.sbdd.dataset import find_sources, read_image

    generate(_config(tmp_path / "png", images, masks="shapes", count=3))
    generate(_config(tmp_path / "jxl", images, masks="shapes", count=3, format="jxl"))
    names = sorted(p.relative_to(tmp_path / "jxl") for p in (tmp_path / "jxl").rglob("*.jxl"))
    assert len(names) == 6
    for name in names:
        png = np.asarray(Image.open((tmp_path / "png" / name).with_suffix(".png")))
        np.testing.assert_array_equal(read_image(tmp_path / "jxl" / name), png)
    # .jxl files are inputs too (fastblur-gen and fastblur.torch read them through read_image)
    config = _config(tmp_path / "again", tmp_path / "jxl" / "sharp", masks="shapes", count=1)
    assert [s.name for s in find_sources(config)] == ["a_0", "a_1", "a_2"]
    assert generate(config).written == 1


def test_torch_reads_jxl_inputs(tmp_path, images):
    _needs_jxl()
    torch_module = pytest.importorskip("fastblur.torch")
    from fastblur.sbdd.dataset import read_image

    folder = tmp_path / "jxl_inputs"
    folder.mkdir()
    for path in sorted(Path(images).glob("*.png")):
        (folder / (path.stem + ".jxl")).write_bytes(encode_image(read_image(path), "jxl"))
    dataset = torch_module.SBDDMapDataset(str(folder), length=2, crop_size=32, kernel_size=KERNEL,
                                          masks="shapes", min_object_area=50, seed=0)
    blurry, sharp = dataset[1]
    assert tuple(blurry.shape) == tuple(sharp.shape) == (3, 32, 32)
    reference = torch_module.SBDDMapDataset(str(images), length=2, crop_size=32, kernel_size=KERNEL,
                                            masks="shapes", min_object_area=50, seed=0)
    for ours, theirs in zip(dataset[1], reference[1]):  # same pixels in, same pair out
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
