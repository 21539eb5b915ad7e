"""``fastblur-eval`` end to end on temporary folders: pairing, failures, reports, visuals."""
import csv
import json
import math

import cv2
import numpy as np
import pytest
from scipy.io import savemat
from skimage import data

from fastblur.cli.eval import main
from fastblur.evaluate import aligned_metrics, kohler_metrics, read_image
from fastblur.evaluate.runner import PSNR_CAP_DB


def to_uint8(image):
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_rgb(path, image):
    assert cv2.imwrite(str(path), cv2.cvtColor(to_uint8(image), cv2.COLOR_RGB2BGR))


def shifted(image, dx, dy, gain=1.0):
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    moved = cv2.warpAffine(image, matrix, image.shape[1::-1], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT)
    return moved * gain


def crop(image, y, x, height=150, width=190):
    return np.ascontiguousarray(image[y:y + height, x:x + width], dtype=np.float32) / 255


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    restored, gt, blurry = root / "restored", root / "gt", root / "blurry"
    for folder in (restored, gt, blurry):
        folder.mkdir()
    photos = {
        "astro": crop(data.astronaut(), 40, 160),
        "cat": crop(data.chelsea(), 50, 120),
        "coffee": crop(data.coffee(), 100, 190),
    }
    for index, (name, image) in enumerate(photos.items()):
        write_rgb(gt / f"{name}.png", image)
        write_rgb(blurry / f"{name}.png", cv2.GaussianBlur(image, (0, 0), 2.0))
        moved = shifted(image, 1.3 + index, -0.7 * index, 0.9)
        moved = cv2.GaussianBlur(moved, (0, 0), 0.6 + 0.3 * index)
        if name == "cat":
            # another extension pairs by name; JPEG loss is part of this restored image
            assert cv2.imwrite(str(restored / "cat.jpg"),
                               cv2.cvtColor(to_uint8(moved), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            write_rgb(restored / f"{name}.png", moved)
    # an identity pair, a grey restored image, a smaller one, an unreadable one, an unpaired one
    write_rgb(gt / "ident.png", photos["coffee"])
    write_rgb(restored / "ident.png", photos["coffee"])
    write_rgb(gt / "grey.png", photos["cat"])
    grey = cv2.cvtColor(photos["cat"], cv2.COLOR_RGB2GRAY)
    assert cv2.imwrite(str(restored / "grey.png"), to_uint8(grey))
    write_rgb(gt / "small.png", photos["astro"])
    write_rgb(restored / "small.png", photos["astro"][:120, :160])
    write_rgb(gt / "broken.png", photos["astro"])
    (restored / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    write_rgb(restored / "extra.png", photos["astro"])
    for name in ("ident", "grey", "small", "broken"):
        write_rgb(blurry / f"{name}.png", photos["astro"])
    (gt / "notes.txt").write_text("not an image: ignored by the pairing")
    return root


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_unmatched_files_stop_the_run_with_a_list(folders, capsys):
    out = folders / "out_strict"
    code = main(["--restored", str(folders / "restored"), "--gt", str(folders / "gt"),
                 "--protocol", "realblur", "--out", str(out), "--no-progress"])
    assert code == 2
    error = capsys.readouterr().err
    assert "extra.png" in error and "--restored" in error and "--allow-unmatched" in error
    assert not out.exists()


@pytest.fixture(scope="module")
def run(folders):
    out = folders / "out"
    code = main(["--restored", str(folders / "restored"), "--gt", str(folders / "gt"),
                 "--blurry", str(folders / "blurry"), "--protocol", "realblur", "--out", str(out),
                 "--workers", "2", "--allow-unmatched", "--visuals", "2", "--no-progress"])
    return code, out


def test_run_goes_on_past_failures_and_counts_them(run):
    code, out = run
    assert code == 1  # finished, some images failed
    rows = {row["name"]: row for row in read_csv(out / "metrics.csv")}
    assert sorted(rows) == ["astro", "broken", "cat", "coffee", "grey", "ident", "small"]
    ok = ("astro", "cat", "coffee", "ident")
    assert {name for name, row in rows.items() if row["status"] == "ok"} == set(ok)
    assert "cannot read image broken.png" in rows["broken"]["error"]
    assert "grey" in rows["grey"]["error"]
    assert "same shape" in rows["small"]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "realblur"
    counts = [summary[key] for key in ("n_images", "n_ok", "n_failed", "n_unmatched")]
    assert counts == [7, 4, 3, 1]
    assert summary["unmatched"]["restored"] == ["extra.png"]
    assert sorted(f["name"] for f in summary["failures"]) == ["broken", "grey", "small"]
    assert summary["n_psnr_infinite"] == 1 and summary["n_ecc_failed"] == 0
    psnrs = [min(float(rows[n]["psnr"]), PSNR_CAP_DB) for n in ok]
    assert summary["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-12)
    assert summary["ssim"] == pytest.approx(np.mean([float(rows[n]["ssim"]) for n in ok]), abs=1e-12)


def test_rows_equal_the_in_process_protocol(folders, run):
    _, out = run
    rows = {row["name"]: row for row in read_csv(out / "metrics.csv")}
    assert rows["ident"]["psnr"] == "inf"
    for name, restored_name in (("astro", "astro.png"), ("cat", "cat.jpg"), ("coffee", "coffee.png")):
        restored = read_image(folders / "restored" / restored_name)
        gt = read_image(folders / "gt" / f"{name}.png")
        expected = aligned_metrics(restored, gt, "realblur")
        row = rows[name]
        assert float(row["psnr"]) == expected["psnr"]
        assert float(row["ssim"]) == expected["ssim"]
        warp = np.array([float(row[f"h{i}{j}"]) for i in range(3) for j in range(3)]).reshape(3, 3)
        np.testing.assert_array_equal(warp, expected["warp"])
        assert 20 < expected["psnr"] < 60
        blurry = read_image(folders / "blurry" / f"{name}.png")
        error = (gt.astype(np.float64) - blurry) ** 2
        assert float(row["blurry_psnr"]) == pytest.approx(10 * np.log10(1 / error.mean()), abs=1e-5)


def test_visuals_show_blurry_aligned_and_gt(folders, run):
    _, out = run
    summary = json.loads((out / "summary.json").read_text())
    rows = {row["name"]: row for row in read_csv(out / "metrics.csv")}
    ranked = sorted(("astro", "cat", "coffee", "ident"), key=lambda n: float(rows[n]["psnr"]))
    assert summary["worst"] == ranked[:2] and summary["best"] == ranked[::-1][:2]
    files = sorted(p.name for p in (out / "visual").iterdir())
    assert files == sorted([f"worst_1_{ranked[0]}.png", f"worst_2_{ranked[1]}.png",
                            f"best_1_{ranked[3]}.png", f"best_2_{ranked[2]}.png"])
    name = ranked[0]
    panel = read_image(out / "visual" / f"worst_1_{name}.png")
    height, width = 150, 190
    assert panel.shape == (height, 3 * width, 3)
    restored_file = next((folders / "restored").glob(f"{name}.*"))
    result = aligned_metrics(read_image(restored_file), read_image(folders / "gt" / f"{name}.png"),
                             return_aligned=True)
    np.testing.assert_array_equal(to_uint8(panel[:, width:2 * width]), to_uint8(result["aligned"]))
    np.testing.assert_array_equal(panel[:, :width], read_image(folders / "blurry" / f"{name}.png"))
    np.testing.assert_array_equal(panel[:, 2 * width:], read_image(folders / "gt" / f"{name}.png"))


def test_one_worker_gives_the_same_table(folders, run):
    _, out = run
    single = folders / "out_single"
    code = main(["--restored", str(folders / "restored"), "--gt", str(folders / "gt"),
                 "--protocol", "realblur", "--out", str(single), "--workers", "1",
                 "--allow-unmatched", "--visuals", "0", "--no-progress"])
    assert code == 1
    keep = [c for c in read_csv(out / "metrics.csv")[0] if c != "blurry_psnr"]
    strip = lambda rows: [{c: r[c] for c in keep} for r in rows]  # noqa: E731
    assert strip(read_csv(single / "metrics.csv")) == strip(read_csv(out / "metrics.csv"))
    assert not (single / "visual").exists()


def test_plain_protocol_all_good(tmp_path):
    restored, gt = tmp_path / "r", tmp_path / "g"
    restored.mkdir(), gt.mkdir()
    image = crop(data.astronaut(), 100, 100)
    write_rgb(gt / "a.png", image)
    write_rgb(restored / "a.png", shifted(image, 2, 0))
    code = main(["--restored", str(restored), "--gt", str(gt), "--protocol", "plain",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    row = read_csv(tmp_path / "out" / "metrics.csv")[0]
    a, b = read_image(gt / "a.png"), read_image(restored / "a.png")
    # (the squared error is formed in float32, as the reference scripts do)
    expected = 10 * np.log10(1 / np.mean((a.astype(float) - b) ** 2))
    assert float(row["psnr"]) == pytest.approx(expected, abs=1e-5)
    assert float(row["psnr"]) < 30
    assert row["h00"] == "1.0" and row["h02"] == "0.0"


def test_kohler_frames_from_a_folder_and_a_mat_file(tmp_path):
    restored, gt = tmp_path / "restored", tmp_path / "gt"
    restored.mkdir(), gt.mkdir()
    photo = data.astronaut()
    frames = [crop(photo, 100, 150 + 6 * k) for k in range(3)]  # a camera sweep
    (gt / "Blurry1_1").mkdir()
    for k, frame in enumerate(frames):
        write_rgb(gt / "Blurry1_1" / f"frame_{k:03d}.png", frame)
    savemat(gt / "Blurry1_2.mat", {"GroundTruth": np.stack([to_uint8(f) for f in frames], axis=3)})
    write_rgb(restored / "Blurry1_1.png", shifted(frames[2], 0.4, 0.3, 0.95))
    write_rgb(restored / "Blurry1_2.png", shifted(frames[0], -0.5, 0.2, 1.05))
    code = main(["--restored", str(restored), "--gt", str(gt), "--protocol", "kohler",
                 "--out", str(tmp_path / "out"), "--no-progress", "--workers", "1"])
    assert code == 0
    rows = {row["name"]: row for row in read_csv(tmp_path / "out" / "metrics.csv")}
    assert rows["Blurry1_1"]["gt_index"] == "2" and rows["Blurry1_2"]["gt_index"] == "0"
    stored = [read_image(gt / "Blurry1_1" / f"frame_{k:03d}.png") for k in range(3)]
    expected = kohler_metrics(read_image(restored / "Blurry1_1.png"), stored)
    assert float(rows["Blurry1_1"]["psnr"]) == expected["psnr"]
    assert float(rows["Blurry1_1"]["ssim"]) == expected["ssim"]
    assert (tmp_path / "out" / "visual" / "best_1_Blurry1_1.png").exists() or \
        (tmp_path / "out" / "visual" / "best_1_Blurry1_2.png").exists()


def test_identity_run_caps_infinite_psnr_in_the_summary(tmp_path):
    restored, gt = tmp_path / "r", tmp_path / "g"
    restored.mkdir(), gt.mkdir()
    image = crop(data.chelsea(), 50, 50)
    write_rgb(gt / "a.png", image)
    write_rgb(restored / "a.png", image)
    assert main(["--restored", str(restored), "--gt", str(gt), "--protocol", "realblur",
                 "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    text = (tmp_path / "out" / "summary.json").read_text()
    summary = json.loads(text)  # strict JSON: no Infinity
    assert "Infinity" not in text
    assert summary["psnr"] == PSNR_CAP_DB and summary["n_psnr_infinite"] == 1
    assert math.isinf(float(read_csv(tmp_path / "out" / "metrics.csv")[0]["psnr"]))


def test_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--restored", "r", "--gt", "g", "--protocol", "gopro", "--out", "o"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        main(["--restored", "r", "--gt", "g", "--protocol", "plain", "--out", "o", "--workers", "0"])
    capsys.readouterr()
    code = main(["--restored", str(tmp_path / "missing"), "--gt", str(tmp_path), "--protocol", "plain",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    assert "--restored must be an existing folder" in capsys.readouterr().err


def test_read_image_scales_16_bit_and_drops_alpha(tmp_path):
    rng = np.random.default_rng(2)
    deep = rng.integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    assert cv2.imwrite(str(tmp_path / "deep.png"), deep[:, :, ::-1])
    np.testing.assert_array_equal(read_image(tmp_path / "deep.png"), deep.astype(np.float32) / 65535)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "rgba.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgba[:, :, :3] / np.float32(255))
    grey = rng.integers(0, 256, (20, 30), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "grey.png"), grey)
    assert read_image(tmp_path / "grey.png").shape == (20, 30, 1)
