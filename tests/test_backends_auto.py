"""``backend="auto"``: the cost model's decisions, their visibility, and its calibration cache."""
import json
import logging

import numpy as np
import pytest

import fastblur
from fastblur.backends import cost_model, select_backend
from reference import reference_blur_masked, relative_error

AVAILABLE = fastblur.available_backends()
needs_direct_and_fft = pytest.mark.skipif(
    not ({"native", "numba"} & set(AVAILABLE) and {"fftw", "numpy"} & set(AVAILABLE)),
    reason="needs a direct and an FFT backend",
)


@pytest.fixture
def cache_in(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBLUR_CACHE_DIR", str(tmp_path))
    cost_model.reset()
    yield tmp_path
    cost_model.reset()


def _motion_kernels(rng, count, size, taps):
    kernels = np.zeros((count, size, size), np.float32)
    for kernel in kernels:
        kernel.flat[rng.choice(kernel.size, taps, replace=False)] = 1 / taps
    return kernels


def _sbdd_weights(shape, count):
    weights = np.zeros((count,) + shape, np.float32)
    weights[0] = 1
    for i in range(1, count):
        r, c = (i * 37) % (shape[0] - 40), (i * 91) % (shape[1] - 60)
        weights[i, r : r + 40, c : c + 60] = 1
        weights[0, r : r + 40, c : c + 60] = 0
    return weights


@needs_direct_and_fft
def test_sparse_motion_kernels_go_direct(default_constants, rng):
    image = np.zeros((400, 600, 3), np.float32)
    kernels = _motion_kernels(rng, 4, 65, 100)
    weights = _sbdd_weights((336, 536), 4)
    decision = fastblur.explain("blur_masked", image, kernels, weights)
    assert decision.method == "direct" and decision.backend in ("native", "numba")
    direct, fft = sorted(decision.estimates, key=lambda e: e.method)
    assert direct.seconds < fft.seconds
    # 100 taps x 336 x 536 pixels x 3 channels, each pixel under one kernel.
    assert f"{100 * 336 * 536 * 3:.3g} tap-values" in direct.detail
    assert "1.00 kernels per pixel" in decision.problem


@needs_direct_and_fft
def test_dense_large_kernel_goes_fft(default_constants):
    image = np.zeros((500, 700, 3), np.float32)
    kernel = np.full((65, 65), 1 / 65**2, np.float32)
    decision = fastblur.explain("convolve", image, kernel, mode="same")
    assert decision.method == "fft" and decision.backend in ("fftw", "numpy")
    assert "4225 non-zero taps" in decision.problem


@needs_direct_and_fft
def test_zero_weights_make_direct_cheaper_but_fft_tiles_count(default_constants, rng):
    image = np.zeros((300, 300, 1), np.float32)
    kernels = np.full((4, 33, 33), 1 / 33**2, np.float32)  # dense: FFT territory
    everywhere = np.full((4, 268, 268), 0.25, np.float32)
    one_corner = np.zeros((4, 268, 268), np.float32)
    one_corner[:, :20, :20] = 0.25
    busy = cost_model.decide("blur_masked", image=image, kernels=kernels, weights=everywhere)
    idle = cost_model.decide("blur_masked", image=image, kernels=kernels, weights=one_corner)
    seconds = {(d, e.method): e.seconds for d, dec in (("busy", busy), ("idle", idle)) for e in dec.estimates}
    assert seconds["idle", "direct"] < seconds["busy", "direct"] / 50
    assert seconds["idle", "fft"] < seconds["busy", "fft"]
    assert busy.method == "fft"


def test_explain_prints_each_method_and_the_choice(default_constants, rng):
    image = rng.random((120, 160), dtype=np.float32)
    kernels = _motion_kernels(rng, 2, 15, 10)
    decision = fastblur.explain("blur_masked", image, kernels, _sbdd_weights((106, 146), 2), mode="valid")
    text = str(decision)
    assert text.splitlines()[0].startswith("blur_masked: (120, 160)x1 float32 input, 2 kernel(s) 15x15")
    assert text.count(" ms [") == len(decision.estimates) >= 1
    assert "<- chosen" in text and "constants default" in text
    assert decision.backend in AVAILABLE


def test_explain_matches_what_auto_runs(default_constants, rng):
    image = rng.random((90, 110, 3), dtype=np.float32)
    kernels = _motion_kernels(rng, 3, 9, 8)
    weights = _sbdd_weights((82, 102), 3)
    decision = fastblur.explain("blur_masked", image, kernels, weights)
    chosen = select_backend("auto", "blur_masked", image=image, kernels=kernels, weights=weights)
    assert chosen.name == decision.backend
    result = fastblur.blur_masked(image, kernels, weights, backend="auto")
    assert relative_error(result, reference_blur_masked(image, kernels, weights, "valid", "reflect")) <= 2e-5


def test_auto_decisions_are_logged(default_constants, rng, caplog):
    image = rng.random((64, 64), dtype=np.float32)
    kernel = _motion_kernels(rng, 1, 7, 5)[0]
    with caplog.at_level(logging.DEBUG, logger="fastblur"):
        fastblur.convolve(image, kernel, backend="auto")
    messages = [r.getMessage() for r in caplog.records if r.name == "fastblur"]
    assert any(m.startswith("auto convolve -> ") for m in messages)
    assert fastblur.explain("convolve", image, kernel, mode="same").backend in messages[-1]


def test_explain_smooth_masks_and_product(default_constants, rng):
    masks = np.zeros((2, 100, 120), bool)
    masks[0, 20:60, 30:80] = True
    masks[1, 50:90, 60:110] = True
    kernels = _motion_kernels(rng, 3, 11, 12)
    decision = fastblur.explain("smooth_masks", masks, kernels)
    assert decision.operation == "smooth_masks" and decision.backend in AVAILABLE
    edge = next(e for e in decision.estimates if e.method == "direct") if "native" in AVAILABLE else None
    if edge is not None:
        assert "near mask edges" in edge.detail
    weights = rng.random((3, 100, 120)).astype(np.float32)
    assert fastblur.explain("blur_product", rng.random((100, 120, 3)), kernels, weights,
                            mode="same").operation == "blur_product"


@pytest.mark.parametrize("call, message", [
    (lambda: fastblur.explain("blur", np.zeros((9, 9)), np.ones((3, 3))), "operation must be one of"),
    (lambda: fastblur.explain("convolve", np.zeros((9, 9)), np.ones((1, 3, 3))), "kernels must be 2-D"),
    (lambda: fastblur.explain("blur_masked", np.zeros((9, 9)), np.ones((1, 3, 3))), "weights are required"),
    (lambda: fastblur.explain("smooth_masks", np.zeros((2, 9, 9)), np.ones((2, 3, 3))), "n \\+ 1"),
    (lambda: fastblur.explain("convolve", np.zeros((9, 9)), np.ones((3, 3)), mode="middle"), "mode"),
])
def test_explain_rejects_bad_arguments(default_constants, call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- calibration and its cache --------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in ("native", "fftw") if n in AVAILABLE])
def test_calibration_is_measured_once_then_read_from_the_cache(cache_in, name):
    values, source = cost_model.constants(name)
    assert source == "calibrated"
    assert set(values) == set(cost_model.DEFAULTS[name])
    assert all(0 < v < 1e-3 for k, v in values.items() if k != "tile")
    stored = json.loads(next(cache_in.glob("cost_model-*.json")).read_text())
    assert stored["version"] == cost_model.CACHE_VERSION
    assert stored["backends"][name] == pytest.approx(values)
    cost_model.reset()
    again, source = cost_model.constants(name)
    assert source == "cached" and again == pytest.approx(values)


def test_unwritable_cache_falls_back_to_defaults(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FASTBLUR_CACHE_DIR", str(blocker / "cache"))
    cost_model.reset()
    try:
        values, source = cost_model.constants("native")
        assert source == "default" and values == cost_model.DEFAULTS["native"]
    finally:
        cost_model.reset()


def test_calibration_can_be_switched_off(cache_in, monkeypatch):
    monkeypatch.setenv("FASTBLUR_CALIBRATE", "0")
    assert cost_model.constants("numpy") == (cost_model.DEFAULTS["numpy"], "default")
    assert not list(cache_in.glob("cost_model-*.json"))


def test_corrupt_or_outdated_cache_is_replaced(cache_in):
    name = "numpy"
    (cache_in / cost_model._cache_name()).write_text("{not json")
    assert cost_model.constants(name)[1] == "calibrated"
    cost_model.reset()
    (cache_in / cost_model._cache_name()).write_text(json.dumps({"version": -1, "backends": {}}))
    assert cost_model.constants(name)[1] == "calibrated"


def test_decisions_with_defaults_are_deterministic(default_constants, rng):
    image = np.zeros((200, 260, 3), np.float32)
    kernels = _motion_kernels(rng, 3, 21, 30)
    weights = _sbdd_weights((180, 240), 3)
    first = cost_model.decide("blur_masked", image=image, kernels=kernels, weights=weights)
    second = cost_model.decide("blur_masked", image=image, kernels=kernels, weights=weights)
    assert [(e.backend, e.seconds) for e in first.estimates] == [(e.backend, e.seconds) for e in second.estimates]
