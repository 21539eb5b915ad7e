"""The projective camera model of SBDD pairs (fastblur.sbdd.camera)."""
import json
import os

import numpy as np
import pytest
from scipy.signal import convolve

import fastblur
from fastblur.cli.bench_cases import photo
from fastblur.kernels import camera_shake
from fastblur.sbdd import DatasetConfig, ProjectiveCamera, draw_camera, generate, synthesize_pair
from fastblur.sbdd.camera import camera_kernels
from reference import reference_warp_sum


def _kernels(size=17):
    return np.stack([camera_shake(size, exposure=0.2, focal_length=400, rng=i)[::-1, ::-1] for i in range(2)])


def test_identity_camera_is_the_uniform_model_with_a_delta_background():
    sharp = photo((70, 90, 3), np.uint8)
    masks = np.zeros((1, 70, 90), bool)
    masks[0, 20:45, 30:70] = True
    kernels = _kernels()
    delta = np.zeros((17, 17), np.float32)
    delta[8, 8] = 1
    camera = ProjectiveCamera(500.0, np.zeros((5, 3)))
    projective = synthesize_pair(sharp, kernels, masks, rng=1, camera=camera)
    uniform = synthesize_pair(sharp, np.stack([delta, kernels[1]]), masks, rng=1)
    np.testing.assert_allclose(projective.blurry, uniform.blurry, atol=2e-3)
    np.testing.assert_array_equal(projective.sharp, uniform.sharp)
    assert projective.params["camera"] == camera.record() and "camera" not in uniform.params


def test_background_is_the_warp_sum_on_the_valid_grid():
    sharp = photo((80, 100, 3), np.float64)
    camera = draw_camera(np.random.default_rng(3), focal_length=300.0, roll=2.0)
    pair = synthesize_pair(sharp, _kernels()[:1], np.zeros((0, 80, 100), bool), crf=None, camera=camera)
    expected = reference_warp_sum(sharp, camera.homographies(sharp.shape))[8:-8, 8:-8]
    error = np.abs(pair.blurry - np.clip(expected, 0, 255))
    assert error.mean() < 0.05 and error.max() < 1.0  # the 0-255 scale


def test_objects_take_the_camera_psf_at_their_centroid():
    kernels = _kernels(17)
    masks = np.zeros((1, 61, 81), bool)
    masks[0, 25:36, 30:51] = True  # centroid (x, y) = (40, 30): the middle node of a 3 x 3 field
    camera = draw_camera(np.random.default_rng(4), focal_length=300.0, roll=3.0)
    out = camera_kernels(kernels, masks, camera, (61, 81))
    field = fastblur.psf_field(camera.homographies((61, 81)), (61, 81), grid=(3, 3), size=17)
    own = kernels[1][::-1, ::-1].astype(np.float64)
    both = convolve(own, field[1, 1].astype(np.float64), mode="same")
    np.testing.assert_allclose(out[1][::-1, ::-1], both * own.sum() / both.sum(), atol=1e-6)
    np.testing.assert_allclose(out[0][::-1, ::-1], field[1, 1] / field[1, 1].sum(), atol=1e-6)


def test_record_recomputes_the_pair():
    sharp = photo((60, 70, 3), np.uint8)
    masks = np.zeros((1, 60, 70), bool)
    masks[0, 10:30, 10:40] = True
    camera = draw_camera(np.random.default_rng(7), exposure=0.3, focal_length=800.0, exposure_spread=0.5,
                         roll_spread=0.5)
    first = synthesize_pair(sharp, _kernels(), masks, rng=2, camera=camera)
    record = json.loads(json.dumps(first.params["camera"]))
    again = synthesize_pair(sharp, _kernels(), masks, rng=2, camera=ProjectiveCamera.from_record(record))
    assert first.blurry.tobytes() == again.blurry.tobytes()
    assert np.abs(np.asarray(record["rotations"]).mean(axis=0)).max() < 1e-4  # centred


def test_generate_projective_same_bytes_for_any_worker_count(tmp_path):
    common = dict(count=2, kernel_size=17, exposure=0.2, camera_model="projective", camera_roll_spread=0.5,
                  progress=False, backend="native")
    summaries = [generate(DatasetConfig(out=str(tmp_path / f"w{workers}"), workers=workers, **common))
                 for workers in (1, 2)]
    assert all(summary.failed == 0 for summary in summaries)
    lines = [open(tmp_path / f"w{w}" / "manifest.jsonl").read().splitlines() for w in (1, 2)]
    records = [sorted((json.loads(line) for line in part), key=lambda r: r["index"]) for part in lines]
    assert records[0] == records[1]
    assert records[0][0]["camera"]["model"] == "projective" and records[0][0]["camera"]["focal_length"] == 1000.0
    for record in records[0]:
        for key in ("blurry", "sharp"):
            a = open(tmp_path / "w1" / record[key], "rb").read()
            assert a == open(tmp_path / "w2" / record[key], "rb").read()
    assert os.path.exists(tmp_path / "w1" / "args.json")


def test_camera_errors():
    sharp = np.zeros((40, 40, 3), np.uint8)
    kernels, masks = _kernels()[:1], np.zeros((0, 40, 40), bool)
    with pytest.raises(ValueError, match="camera"):
        synthesize_pair(sharp, kernels, masks, camera="projective")
    with pytest.raises(TypeError, match="camera"):
        synthesize_pair(sharp, kernels, masks, camera=3)
    with pytest.raises(ValueError, match="camera_model"):
        DatasetConfig(camera_model="affine")
    with pytest.raises(ValueError, match="camera_roll_spread"):
        DatasetConfig(camera_roll_spread=1.0)
    with pytest.raises(ValueError, match="rotations"):
        ProjectiveCamera(100.0, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="focal_length"):
        ProjectiveCamera(0.0, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="projective"):
        ProjectiveCamera.from_record({"model": "uniform"})


def test_gen_command_line_options():
    from fastblur.cli.gen import build_parser

    options = vars(build_parser().parse_args(["--out", "x", "--camera-model", "projective", "--camera-roll", "2",
                                              "--camera-roll-spread", "0.3", "--camera-exposure-spread", "0.2"]))
    options.pop("config", None)
    config = DatasetConfig.from_dict(options)
    assert (config.camera_model, config.camera_roll, config.camera_roll_spread, config.camera_exposure_spread) == (
        "projective", 2.0, 0.3, 0.2)
    assert DatasetConfig.from_dict({"out": "x"}).camera_model == "uniform"
