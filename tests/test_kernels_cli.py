"""``fastblur-kernels``: dataset layout, seeding, worker independence, reruns, errors."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fastblur.cli.kernels import main
from fastblur.kernels import camera_shake, linear_motion, load, load_list, trajectory_kernel
from conftest import PACKAGE_ROOT


def run(out, *extra):
    return main(["--out", str(out), "--quiet", *map(str, extra)])


def read_tree(root):
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            files[os.path.relpath(path, root)] = open(path, "rb").read()
    return files


def test_writes_the_sbdd_layout(tmp_path):
    out = tmp_path / "ks65"
    assert run(out, "--count", 6, "--seed", 7) == 0
    names = sorted(os.listdir(out / "train"))
    assert names == [f"kernel{i:04d}.mat" for i in range(6)]
    lines = (out / "train_kernels.txt").read_text().splitlines()
    assert lines == [f"train/kernel{i:04d}.mat" for i in range(6)]
    params = json.loads((out / "params.json").read_text())
    assert params["model"] == "camera_shake" and params["count"] == 6 and params["seed"] == 7
    assert params["size"] == 65 and params["exposure"] == 0.5 and params["focal_length"] == 1000
    # Kernel i is camera_shake drawn from default_rng([seed, i]).
    kernels = load_list(out / "train_kernels.txt")
    for i, k in enumerate(kernels):
        np.testing.assert_array_equal(k, camera_shake(65, 0.5, 1000, np.random.default_rng([7, i])))
    with Image.open(out / "contact_sheet.png") as sheet:
        # 6 tiles of 65 px in one row, 2 px gaps.
        assert sheet.size == (6 * 67 + 2, 67 + 2) and sheet.mode == "L"
        pixels = np.asarray(sheet)
    tile = pixels[2:67, 2:67]
    first = kernels[0]
    np.testing.assert_array_equal(tile, np.rint(255 * first.astype(np.float64) / first.max()))


def test_output_does_not_depend_on_worker_count(tmp_path):
    args = ("--count", 5, "--seed", 3, "--size", 33, "--exposure", 0.3)
    assert run(tmp_path / "one", *args, "--workers", 1) == 0
    assert run(tmp_path / "two", *args, "--workers", 2) == 0
    one, two = read_tree(tmp_path / "one"), read_tree(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 5 + 3
    for name in one:
        assert one[name] == two[name], name


def test_rerun_skips_existing_files_and_fills_gaps(tmp_path):
    out = tmp_path / "d"
    assert run(out, "--count", 4, "--size", 33) == 0
    before = read_tree(out)
    kept = out / "train" / "kernel0001.mat"
    stamp = os.stat(kept).st_mtime_ns
    os.remove(out / "train" / "kernel0002.mat")
    assert run(out, "--count", 4, "--size", 33) == 0
    assert os.stat(kept).st_mtime_ns == stamp  # skipped, not rewritten
    assert read_tree(out) == before  # the missing one came back identical
    # A larger count extends the dataset without touching the first kernels.
    assert run(out, "--count", 6, "--size", 33) == 0
    assert len(load_list(out / "train_kernels.txt")) == 6
    assert (out / "train" / "kernel0000.mat").read_bytes() == before[os.path.join("train", "kernel0000.mat")]


def test_rerun_with_other_parameters_is_refused(tmp_path, capsys):
    out = tmp_path / "d"
    assert run(out, "--count", 2, "--size", 33) == 0
    assert run(out, "--count", 2, "--size", 33, "--seed", 1) == 2
    assert "seed" in capsys.readouterr().err


def test_trajectory_and_linear_models(tmp_path):
    assert run(tmp_path / "t", "--count", 3, "--model", "trajectory", "--size", 33,
               "--length", 20, "--anxiety", 0.01, "--exposure", 0.8, "--seed", 2) == 0
    k = load(tmp_path / "t" / "train" / "kernel0002.mat")
    np.testing.assert_array_equal(k, trajectory_kernel(33, 20, 0.01, 0.8, np.random.default_rng([2, 2])))
    assert run(tmp_path / "l", "--count", 3, "--model", "linear", "--size", 21, "--format", "npy") == 0
    rng = np.random.default_rng([0, 1])
    expected = linear_motion(rng.uniform(0, 16), rng.uniform(0, 180), 21)  # length default size - 5
    np.testing.assert_array_equal(load(tmp_path / "l" / "train" / "kernel0001.npy"), expected)
    assert json.loads((tmp_path / "l" / "params.json").read_text())["max_length"] == 16


def test_a_blur_too_long_for_the_size_fails_cleanly(tmp_path, capsys):
    out = tmp_path / "d"
    assert run(out, "--count", 1, "--size", 5, "--exposure", 2, "--focal-length", 5000) == 1
    assert "size=5" in capsys.readouterr().err
    # Nothing was written, so the folder takes a corrected run.
    assert run(out, "--count", 1, "--size", 5, "--exposure", 0.05) == 0
    assert load(out / "train" / "kernel0000.mat").shape == (5, 5)


@pytest.mark.parametrize("extra", [
    ("--count", 0),
    ("--count", 2, "--size", 0),
    ("--count", 2, "--seed", -1),
    ("--count", 2, "--workers", 0),
    ("--count", 2, "--exposure", 0),
    ("--count", 2, "--model", "blobs"),
    ("--count", 2, "--model", "linear", "--size", 11, "--length", 11),
    ("--count", 2, "--model", "linear", "--size", 64, "--length", 63),  # even sizes hold one less
    ("--count", 2, "--model", "trajectory", "--anxiety", 2),
    ("--count", 2, "--model", "trajectory", "--exposure", 1.5),
])
def test_bad_arguments_exit_with_usage_error(tmp_path, extra, capsys):
    with pytest.raises(SystemExit) as info:
        run(tmp_path / "d", *extra)
    assert info.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_longest_linear_length_is_accepted_and_every_kernel_fits(tmp_path):
    for size in (64, 65):
        out = tmp_path / str(size)
        assert run(out, "--count", 40, "--model", "linear", "--size", size, "--length", size - 2 + size % 2,
                   "--format", "npy") == 0
        assert len(list((out / "train").glob("*.npy"))) == 40


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "fastblur.cli.kernels", "--help"],
                            cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0
    assert "--focal-length" in result.stdout and "--workers" in result.stdout


def test_files_without_parameters_are_not_reused_and_leftovers_go(tmp_path, capsys):
    out = tmp_path / "k"
    assert run(out, "--count", 2, "--size", 15) == 0
    (out / "train" / ".kernel0002.mat.123.0badf00d.tmp").write_bytes(b"partial")
    assert run(out, "--count", 3, "--size", 15) == 0
    assert not list((out / "train").glob("*.tmp"))
    (out / "params.json").unlink()
    assert run(out, "--count", 3, "--size", 15) == 2
    assert "params.json is missing" in capsys.readouterr().err
