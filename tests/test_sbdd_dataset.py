"""The dataset writer and fastblur-gen: layout, determinism, resume, bad inputs, CLI."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from fastblur.cli.gen import main
from fastblur.kernels import save as save_kernel
from fastblur.sbdd import DatasetConfig, generate, load_config
from fastblur.sbdd.dataset import find_sources, make_pair, read_image
from inputs import photo_folder

KERNEL = 15


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return photo_folder(tmp_path_factory, ("astronaut", 3, 120, 150), ("coffee", 3, 110, 160),
                        ("chelsea", 2, 120, 160))


@pytest.fixture(scope="module")
def kernel_list(tmp_path_factory):
    """An SBDD kernel set: ``train/kernelNNNN.mat`` files and a list file, as the reference's."""
    from fastblur.kernels import camera_shake

    root = tmp_path_factory.mktemp("kernels")
    (root / "train").mkdir()
    entries = []
    for i in range(6):
        save_kernel(root / "train" / f"kernel{i:04d}.mat", camera_shake(KERNEL, rng=i).astype(np.float64))
        entries.append(f"train/kernel{i:04d}.mat")
    (root / "blur_kernels_train.txt").write_text("\n".join(entries) + "\n")
    return root


def _config(out, images, **changes):
    settings = dict(out=str(out), input=str(images), kernel_size=KERNEL, min_object_area=300,
                    max_objects=3, count=6, workers=1, progress=False, augment_illumination=True)
    settings.update(changes)
    return DatasetConfig(**settings)


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*.png"))}


def _manifest(out):
    return [json.loads(line) for line in (Path(out) / "manifest.jsonl").read_text().splitlines()]


# -- layout and content ---------------------------------------------------------------
def test_sbdd_layout_manifest_and_pairs(tmp_path, images):
    summary = generate(_config(tmp_path / "ds", images, n_images=2))
    assert (summary.written, summary.skipped, summary.failed) == (6, 0, 0)
    out = tmp_path / "ds"
    names = sorted(p.name for p in (out / "blurry").iterdir())
    assert names == ["a_0.png", "a_1.png", "b_0.png", "b_1.png", "c_0.png", "c_1.png"]
    assert names == sorted(p.name for p in (out / "sharp").iterdir())
    settings = json.loads((out / "args.json").read_text())["settings"]
    assert settings["kernel_size"] == KERNEL and settings["augment_illumination"] is True
    records = _manifest(out)
    assert [r["index"] for r in records] == list(range(6))
    for record in records:
        assert record["seed"] == [0, record["index"]]
        assert 1.0 <= record["gain"] <= 3.0
        assert len(record["kernels"]) == len(record["masks"]["ids"]) + 1
        blurry = read_image(out / record["blurry"])
        sharp = read_image(out / record["sharp"])
        assert blurry.shape == sharp.shape == tuple(record["size"]) + (3,)
        assert record["offset"] == [KERNEL // 2, KERNEL // 2]
    # a pair can be remade in memory from the settings and its index
    record, result, kernels = make_pair(_config(out, images, n_images=2), 3)
    assert record == records[3]
    blurry, sharp = result.to_uint8()
    np.testing.assert_array_equal(blurry, read_image(out / record["blurry"]))
    np.testing.assert_array_equal(sharp, read_image(out / record["sharp"]))


def test_same_bytes_with_one_or_two_workers(tmp_path, images):
    options = dict(random_white_streaks=True, prob_streaks=1.0, min_streaks=2, max_streaks=5,
                   gaussian_noise=True, noise_std=0.02, masks="shapes")
    generate(_config(tmp_path / "one", images, **options))
    generate(_config(tmp_path / "two", images, workers=2, **options))
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len(one) == 12 and one == two
    assert _manifest(tmp_path / "one") == _manifest(tmp_path / "two")
    other_seed = generate(_config(tmp_path / "seed1", images, seed=1, **options))
    assert other_seed.written == 6 and _files(tmp_path / "seed1") != one


def test_auto_is_pinned_for_the_whole_run(tmp_path, images, monkeypatch):
    # auto's per-call choice depends on the thread count; a run must not.
    from fastblur.sbdd.config import GENERATION_BACKENDS, pinned_backend
    from fastblur.sbdd.dataset import PairMaker, find_sources

    config = _config(tmp_path / "ds", images, count=2)
    chosen = set()
    for threads in ("1", "2", "16"):
        monkeypatch.setenv("FASTBLUR_NUM_THREADS", threads)
        chosen.add(PairMaker(config, find_sources(config)).options["backend"])
    assert chosen == {pinned_backend("auto")} and chosen <= set(GENERATION_BACKENDS)
    generate(config)
    settings = json.loads((tmp_path / "ds" / "args.json").read_text())["settings"]
    assert settings["backend"] == pinned_backend("auto")
    generate(config)  # "auto" again resumes the same run
    with pytest.raises(ValueError, match="backend"):
        generate(_config(tmp_path / "ds", images, count=2, backend="fftw"))


def test_resume_skips_finished_pairs_and_redoes_the_rest(tmp_path, images):
    out = tmp_path / "ds"
    generate(_config(out, images, count=4))
    first = _files(out)
    (out / "blurry" / "b_0.png").unlink()                       # pair 1 lost a file
    (out / "sharp" / "a_0.png").write_bytes(b"")                  # pair 0 emptied by a power loss
    lines = (out / "manifest.jsonl").read_text().splitlines()
    # pair 2's line lost, and a line cut short by a crash
    (out / "manifest.jsonl").write_text("\n".join(lines[:2] + lines[3:]) + '\n{"index": 9, "na')
    (out / "sharp" / ".c_0.png.12345.0badf00d.tmp").write_bytes(b"partial")  # a crash's leftover
    summary = generate(_config(out, images, count=4))
    assert (summary.written, summary.skipped) == (3, 1)
    assert _files(out) == first
    assert not list(out.rglob("*.tmp"))
    assert [r["index"] for r in _manifest(out)] == [0, 1, 2, 3]
    grown = generate(_config(out, images, count=6, workers=2))  # count and workers may change
    assert (grown.written, grown.skipped) == (2, 4)
    again = generate(_config(out, images, count=6))
    assert (again.written, again.skipped) == (0, 6)


def test_other_settings_are_refused_unless_overwriting(tmp_path, images):
    out = tmp_path / "ds"
    generate(_config(out, images, count=2))
    with pytest.raises(ValueError, match="gamma"):
        generate(_config(out, images, count=2, gamma=1.8))
    summary = generate(_config(out, images, count=2, gamma=1.8, overwrite=True))
    assert summary.written == 2
    assert json.loads((out / "args.json").read_text())["settings"]["gamma"] == 1.8


def test_interrupt_leaves_no_partial_file(tmp_path, images, monkeypatch):
    import fastblur.sbdd.dataset as dataset

    replace = os.replace

    def interrupted_replace(src, dst):
        if dst.endswith(os.path.join("sharp", "b_0.png")):  # Ctrl-C between writing and renaming
            raise KeyboardInterrupt
        return replace(src, dst)

    out = tmp_path / "ds"
    config = _config(out, images, count=3)
    monkeypatch.setattr(dataset.os, "replace", interrupted_replace)
    summary = generate(config)
    monkeypatch.setattr(dataset.os, "replace", replace)
    assert summary.interrupted and summary.written == 1
    assert not list(out.rglob("*.tmp"))
    assert (out / "blurry" / "b_0.png").exists() and not (out / "sharp" / "b_0.png").exists()
    assert [r["index"] for r in _manifest(out)] == [0]
    resumed = generate(config)
    assert (resumed.written, resumed.skipped) == (2, 1)
    generate(_config(tmp_path / "clean", images, count=3))
    assert _files(out) == _files(tmp_path / "clean")


def test_corrupt_image_and_mask_file_are_reported_and_skipped(tmp_path, images, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for p in images.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    summary = generate(_config(tmp_path / "ds", folder, count=3))
    assert (summary.written, summary.failed) == (2, 1)
    assert summary.failures[0][:2] == (1, "b_0") and "b.png" in summary.failures[0][2]
    assert "skipped pair 1" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "ds" / "blurry").iterdir()) == ["a_0.png", "c_0.png"]

    masks = tmp_path / "masks"
    masks.mkdir()
    for p in images.iterdir():
        image = read_image(p)
        box = np.zeros((2,) + image.shape[:2], bool)
        box[0, 10:60, 20:80] = True
        box[1, 60:100, 90:140] = True
        np.savez(masks / (p.stem + ".npz"), pred_masks=box, scores=np.array([0.95, 0.99]),
                 pred_classes=np.array([0, 2]))
    (masks / "c.npz").write_bytes(b"garbage")
    code = main(["--out", str(tmp_path / "d2"), "--input", str(images), "--masks", "detectron2",
                 "--masks-path", str(masks), "--min-object-area", "100", "--kernel-size", str(KERNEL),
                 "--workers", "1", "--no-progress"])
    assert code == 1
    records = _manifest(tmp_path / "d2")
    assert [r["name"] for r in records] == ["a_0", "b_0"]
    assert records[0]["masks"] == {"source": "detectron2", "from": "a.png", "ids": [1, 0]}


# -- reference compatibility ----------------------------------------------------------
def test_kernel_files_and_detectron2_masks_give_the_reference_pairs(tmp_path, images, kernel_list):
    """A GoPro tree, the reference's kernel list and masks -> the reference-style pair."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from sbdd_reference import reference_pair, to_uint8
    finally:
        sys.path.pop(0)
    from fastblur.kernels import load

    gopro = tmp_path / "GOPRO" / "train"
    masks = tmp_path / "seg"
    masks.mkdir()
    for sequence, path in zip(("GOPR0001_00_00", "GOPR0002_00_01"), sorted(images.iterdir())[:2]):
        (gopro / sequence / "sharp").mkdir(parents=True)
        (gopro / sequence / "sharp" / "000047.png").write_bytes(path.read_bytes())
        image = read_image(path)
        box = np.zeros((1,) + image.shape[:2], bool)
        box[0, 20:70, 30:90] = True
        np.savez(masks / f"{sequence}_000047.npz", pred_masks=box, scores=np.array([0.97]), pred_classes=np.array([2]))
    # the reference's convention: --kernels_dir is the folder of the files, entries "train/..."
    config = DatasetConfig(out=str(tmp_path / "ds"), input=str(tmp_path / "GOPRO"), masks="detectron2",
                           masks_path=str(masks), min_object_area=100,
                           kernels=str(kernel_list / "blur_kernels_train.txt"),
                           kernels_root=str(kernel_list / "train"), kernel_size=KERNEL, workers=1, progress=False,
                           layout="gopro")
    summary = generate(config)
    assert summary.written == 2
    for record in _manifest(tmp_path / "ds"):
        assert record["name"] in ("GOPR0001_00_00_000047_0", "GOPR0002_00_01_000047_0")
        assert record["blurry"].startswith(os.path.join("train", record["name"][:14], "blur"))
        sharp = read_image(Path(config.input) / "train" / record["source"].split(os.sep, 1)[1])
        kernels = np.stack([load(p) for p in record["kernels"]])
        assert all(os.path.basename(p).startswith("kernel") for p in record["kernels"])
        box = np.load(masks / (record["name"][:-2] + ".npz"))["pred_masks"]
        blurry, target = reference_pair(sharp, kernels, box)
        ours_blurry = read_image(tmp_path / "ds" / record["blurry"]).astype(int)
        ours_sharp = read_image(tmp_path / "ds" / record["sharp"]).astype(int)
        np.testing.assert_array_equal(ours_sharp, to_uint8(target))
        difference = np.abs(ours_blurry - to_uint8(blurry))
        assert difference.max() <= 1 and np.mean(difference) < 1e-3


# -- options --------------------------------------------------------------------------
def test_layouts_formats_and_preview(tmp_path, images):
    generate(_config(tmp_path / "b", images, count=2, layout="basicsr", format="jpg", quality=90,
                     preview=str(tmp_path / "sheet.png"), preview_count=2))
    assert sorted(p.name for p in (tmp_path / "b" / "input").iterdir()) == ["a_0.jpg", "b_0.jpg"]
    assert sorted(p.name for p in (tmp_path / "b" / "target").iterdir()) == ["a_0.jpg", "b_0.jpg"]
    assert (tmp_path / "b" / "input" / "a_0.jpg").read_bytes()[:2] == b"\xff\xd8"
    sheet = read_image(tmp_path / "sheet.png")
    assert sheet.shape[0] == 2 * 160 + 4  # two rows of 160 pixels and a gap
    generate(_config(tmp_path / "g", images, count=1, layout="gopro"))
    assert (tmp_path / "g" / "train" / "images" / "blur" / "a_0.png").exists()
    assert (tmp_path / "g" / "train" / "images" / "sharp" / "a_0.png").exists()
    # a preview of pairs finished by an earlier run is remade in memory
    generate(_config(tmp_path / "b", images, count=2, layout="basicsr", format="jpg", quality=90,
                     preview=str(tmp_path / "sheet2.png"), preview_count=2))
    np.testing.assert_array_equal(read_image(tmp_path / "sheet2.png"), sheet)


def test_config_file_and_command_line(tmp_path, images):
    (tmp_path / "run.toml").write_text(
        f'out = "ds"\ninput = "{images}"\ncount = 2\nworkers = 1\nprogress = false\n'
        f'[kernels]\nkernel_size = {KERNEL}\n'
        '[formation]\ngamma-factor = 2.0\nexponential_crf = false\naugment_illumination = true\n'
    )
    code = main(["--config", str(tmp_path / "run.toml"), "--count", "3", "--min-object-area", "200"])
    assert code == 0
    settings = json.loads((tmp_path / "ds" / "args.json").read_text())["settings"]
    assert (settings["gamma"], settings["count"], settings["min_object_area"]) == (2.0, 3, 200)
    assert settings["out"] == str(tmp_path / "ds")
    assert len(_manifest(tmp_path / "ds")) == 3
    config = load_config(tmp_path / "run.toml", exponential_crf=True)
    assert config.crf == "exponential"
    (tmp_path / "bad.toml").write_text("colour = 3\n")
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        load_config(tmp_path / "bad.toml")
    assert main(["--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "x")]) == 2
    assert main(["--out", str(tmp_path / "x"), "--masks", "detectron2"]) == 2  # no --masks-path


def test_embedded_default_needs_no_input(tmp_path, capsys):
    code = main(["--out", str(tmp_path / "sample"), "--count", "2", "--workers", "1", "--no-progress"])
    assert code == 0
    records = _manifest(tmp_path / "sample")
    assert [r["source"] for r in records] == ["skimage:astronaut.png", "skimage:chelsea.png"]
    assert records[0]["kernels"] == ["camera_shake"] * len(records[0]["kernels"])
    assert records[0]["size"] == [512 - 64, 512 - 64]
    assert "2 pairs written" in capsys.readouterr().out
    assert len(find_sources(DatasetConfig())) >= 4


def test_config_errors_name_the_setting():
    with pytest.raises(ValueError, match="layout"):
        DatasetConfig(layout="flat")
    with pytest.raises(ValueError, match="n_images"):
        DatasetConfig(n_images=0)
    with pytest.raises(TypeError, match="augment_illumination"):
        DatasetConfig(augment_illumination="yes")
    with pytest.raises(ValueError, match="streaks.max_count"):
        DatasetConfig(random_white_streaks=True, min_streaks=5, max_streaks=5)
    with pytest.raises(ValueError, match="out must name"):
        generate(DatasetConfig())


@pytest.mark.parametrize("options, reused", [
    (dict(augment_illumination=False), True), (dict(augment_illumination=True), False),
    (dict(augment_illumination=False, random_white_streaks=True, prob_streaks=1.0), False)])
def test_sharp_bytes_reused_only_for_an_equal_target(tmp_path, images, options, reused):
    """A source's variants share their sharp target without gains or streaks: the writer
    reuses its bytes then (the same bytes as encoding it again), and encodes otherwise."""
    from fastblur.sbdd.dataset import PairMaker, _encode

    config = _config(tmp_path / "ds", images, n_images=3, count=3, **options)
    maker = PairMaker(config, find_sources(config))
    sharps = []
    for index in range(3):
        _, blurry, sharp, _, _ = maker.make(index)
        blurry_bytes, sharp_bytes = maker.encode(blurry, sharp)
        assert blurry_bytes == _encode(blurry, config) and sharp_bytes == _encode(sharp, config)
        sharps.append((sharp, sharp_bytes))
    same = [np.array_equal(sharps[0][0], s) for s, _ in sharps[1:]]
    assert all(same) == reused and any(same) == reused
    assert all(b is sharps[0][1] for _, b in sharps[1:]) == reused


def test_contact_sheet_file_holds_the_returned_sheet(tmp_path):
    from fastblur.sbdd.preview import contact_sheet

    rng = np.random.default_rng(3)
    rows = [rng.integers(0, 256, (10, width, 3), dtype=np.uint8) for width in (12, 7)]
    sheet = contact_sheet(rows, str(tmp_path / "sheet.png"))
    assert sheet.shape == (10 + 4 + 10, 12, 3)
    np.testing.assert_array_equal(sheet[:10], rows[0])
    np.testing.assert_array_equal(sheet[14:, :7], rows[1])
    assert (sheet[10:14] == 255).all() and (sheet[14:, 7:] == 255).all()
    np.testing.assert_array_equal(read_image(tmp_path / "sheet.png"), sheet)
