"""Kernel files: .mat (key K), .npy, .png round trips, list files, error paths."""
import os

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fastblur.kernels import KernelList, camera_shake, load, load_list, save, save_list


@pytest.fixture
def kernel():
    return camera_shake(rng=42)


@pytest.mark.parametrize("ext", [".mat", ".npy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_round_trip(tmp_path, kernel, ext, dtype):
    k = kernel.astype(dtype)
    path = tmp_path / f"k{ext}"
    save(path, k)
    loaded = load(path)
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, k)


def test_unnormalised_mat_is_returned_as_stored_unless_asked(tmp_path):
    k = np.array([[0.0, 1.0, 0.0], [2.0, 4.0, 0.0], [0.0, 1.0, 0.0]])
    save(tmp_path / "k.mat", k)
    np.testing.assert_array_equal(load(tmp_path / "k.mat"), k)
    np.testing.assert_allclose(load(tmp_path / "k.mat", normalize=True), k / 8)


def test_mat_file_is_the_sbdd_format_and_deterministic(tmp_path, kernel):
    save(tmp_path / "a.mat", kernel)
    save(tmp_path / "b.mat", kernel)
    data = (tmp_path / "a.mat").read_bytes()
    assert data == (tmp_path / "b.mat").read_bytes()  # no creation time in the header
    assert data.startswith(b"MATLAB 5.0 MAT-file")
    contents = scipy.io.loadmat(tmp_path / "a.mat")  # an independent reader
    np.testing.assert_array_equal(contents["K"], kernel)


def test_loads_mat_written_by_other_tools(tmp_path):
    # As the reference SBDD kernels: float64 K, possibly beside other variables.
    k = np.random.default_rng(0).random((7, 5))
    scipy.io.savemat(tmp_path / "ref.mat", {"K": k, "other": np.ones(3)})
    loaded = load(tmp_path / "ref.mat")
    assert loaded.dtype == np.float64
    np.testing.assert_array_equal(loaded, k)


@pytest.mark.parametrize("bit_depth, mode, top", [(16, {"I;16", "I"}, 65535), (8, {"L"}, 255)])
def test_png_round_trip(tmp_path, kernel, bit_depth, mode, top):
    path = tmp_path / "k.png"
    save(path, kernel, bit_depth=bit_depth)
    with Image.open(path) as image:
        assert image.mode in mode
        grey = np.asarray(image).astype(np.int64)
    assert grey.max() == top
    # The stored levels are round(k / peak * top): check against that independently.
    np.testing.assert_array_equal(grey, np.rint(kernel.astype(np.float64) / kernel.max() * top))
    loaded = load(path)
    assert loaded.dtype == np.float32
    assert abs(float(loaded.sum(dtype=np.float64)) - 1) < 1e-6
    np.testing.assert_allclose(loaded, grey / grey.sum(), rtol=1e-5, atol=1e-9)
    # Quantisation: within about one grey level of the peak (plus the renormalisation).
    assert np.abs(loaded - kernel).max() <= 1.5 * kernel.max() / top + 1e-4 * kernel.max()


def test_loads_pngs_written_by_other_tools(tmp_path):
    grey = np.array([[0, 10, 0], [20, 200, 30], [0, 10, 0]], dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_allclose(load(tmp_path / "grey.png"), grey / grey.sum(), rtol=1e-6)
    rgb = np.zeros((3, 3, 3), dtype=np.uint8)
    rgb[1, 1] = (90, 30, 0)  # mean 40
    rgb[0, 1] = (0, 0, 120)  # mean 40
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    expected = np.zeros((3, 3))
    expected[1, 1] = expected[0, 1] = 0.5
    np.testing.assert_allclose(load(tmp_path / "rgb.png"), expected, rtol=1e-6)


def test_load_as_stored_png_is_scaled_grey(tmp_path):
    Image.fromarray(np.array([[0, 51], [102, 255]], dtype=np.uint8)).save(tmp_path / "g.png")
    np.testing.assert_allclose(load(tmp_path / "g.png", normalize=False), [[0, 51], [102, 255]])


def test_save_is_atomic_and_replaces(tmp_path, kernel):
    path = tmp_path / "k.npy"
    save(path, np.ones((3, 3)))
    save(path, kernel)
    np.testing.assert_array_equal(load(path), kernel)
    assert sorted(os.listdir(tmp_path)) == ["k.npy"]  # no temporary left behind


def test_tiny_negative_rounding_noise_is_zeroed_but_real_negatives_are_errors(tmp_path):
    k = np.array([[0.5, -1e-9], [0.5, 0.0]])
    np.save(tmp_path / "tiny.npy", k)
    loaded = load(tmp_path / "tiny.npy")
    assert loaded.min() == 0 and loaded[0, 0] == 0.5
    np.save(tmp_path / "neg.npy", np.array([[0.5, -0.1], [0.6, 0.0]]))
    with pytest.raises(ValueError, match=r"neg\.npy.*negative"):
        load(tmp_path / "neg.npy")


@pytest.mark.parametrize("name, array, match", [
    ("zero.npy", np.zeros((5, 5)), "all zero"),
    ("nan.npy", np.array([[np.nan, 1.0]]), "NaN"),
    ("cube.npy", np.ones((2, 3, 3)), "2-D"),
    ("empty.npy", np.zeros((0, 3)), "2-D"),
    ("text.npy", np.array([["a", "b"]]), "numeric"),
])
def test_bad_kernel_arrays(tmp_path, name, array, match):
    np.save(tmp_path / name, array)
    with pytest.raises(ValueError, match=match) as info:
        load(tmp_path / name)
    assert name in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.mat"):
        load(tmp_path / "nothing.mat")


@pytest.mark.parametrize("name, data", [
    ("junk.mat", b"this is not a MAT file at all" * 10),
    ("junk.npy", b"\x93NUMPY garbage"),
    ("junk.png", b"\x89PNG\r\n\x1a\n truncated"),
])
def test_corrupt_files_name_the_path(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ValueError, match=name):
        load(tmp_path / name)


def test_truncated_mat_names_the_path(tmp_path, kernel):
    save(tmp_path / "k.mat", kernel)
    data = (tmp_path / "k.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.mat"):
        load(tmp_path / "cut.mat")


def test_mat_without_k_lists_what_it_has(tmp_path):
    scipy.io.savemat(tmp_path / "other.mat", {"kernel": np.ones((3, 3))})
    with pytest.raises(ValueError, match=r"other\.mat.*'K'.*kernel"):
        load(tmp_path / "other.mat")


def test_unknown_extension(tmp_path, kernel):
    with pytest.raises(ValueError, match=r"\.mat.*\.npy.*\.png"):
        save(tmp_path / "k.tif", kernel)
    with pytest.raises(ValueError, match="k.txt"):
        load(tmp_path / "k.txt")


@pytest.mark.parametrize("array, kwargs, match", [
    (-np.ones((3, 3)), {}, "all zero or negative"),
    (np.array([[1.0, -0.5]]), {}, "negative"),
    (np.ones(5), {}, "2-D"),
    (np.ones((3, 3)), {"bit_depth": 12}, "bit_depth"),
])
def test_save_rejects_bad_kernels(tmp_path, array, kwargs, match):
    with pytest.raises(ValueError, match=match):
        save(tmp_path / "k.png", array, **kwargs)
    assert not os.listdir(tmp_path)


def make_dataset(root, count=4):
    (root / "train").mkdir()
    kernels = [camera_shake(size=33, rng=i) for i in range(count)]
    entries = [f"train/kernel{i:04d}.mat" for i in range(count)]
    for entry, k in zip(entries, kernels):
        save(root / entry, k)
    return kernels, entries


def test_load_list_reads_the_sbdd_list_format_lazily(tmp_path):
    kernels, entries = make_dataset(tmp_path)
    (tmp_path / "train_kernels.txt").write_text(
        "# kernels\n" + "\n".join(f"  {e}  " for e in entries[:2]) + "\n\n" + "\n".join(entries[2:]) + "\n"
    )
    listed = load_list(tmp_path / "train_kernels.txt")  # root: the list file's folder
    assert isinstance(listed, KernelList) and len(listed) == 4
    for got, expected in zip(listed, kernels):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(listed[-1], kernels[-1])
    assert isinstance(listed[1:3], KernelList) and len(listed[1:3]) == 2
    np.testing.assert_array_equal(listed[1:3][0], kernels[1])
    assert listed.paths[0] == os.path.join(str(tmp_path), entries[0])


def test_load_list_with_explicit_root_and_save_list(tmp_path):
    kernels, entries = make_dataset(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    save_list(lists / "train.txt", entries)
    assert (lists / "train.txt").read_text().splitlines() == entries
    listed = load_list(lists / "train.txt", root=tmp_path)
    np.testing.assert_array_equal(listed[2], kernels[2])


def test_load_list_errors(tmp_path):
    make_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_list(tmp_path / "nope.txt")
    (tmp_path / "missing.txt").write_text("train/kernel0000.mat\ntrain/kernel0099.mat\n")
    with pytest.raises(FileNotFoundError, match="kernel0099.mat"):
        load_list(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="empty.txt.*no kernels"):
        load_list(tmp_path / "empty.txt")
    (tmp_path / "odd.txt").write_text("train/kernel0000.jpg\n")
    with pytest.raises(ValueError, match="kernel0000.jpg"):
        load_list(tmp_path / "odd.txt")
    # A listed file that exists but is corrupt fails when it is read, naming it.
    (tmp_path / "train" / "kernel0001.mat").write_bytes(b"garbage" * 20)
    (tmp_path / "bad.txt").write_text("train/kernel0000.mat\ntrain/kernel0001.mat\n")
    listed = load_list(tmp_path / "bad.txt")
    listed[0]
    with pytest.raises(ValueError, match="kernel0001.mat"):
        listed[1]
