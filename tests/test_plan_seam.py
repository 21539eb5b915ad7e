"""The plan seam: one Problem per call for execution, ``auto`` and ``explain``; the GPU's
method choice as a Decision; one validation rule for counts, names and shapes."""
import importlib
import sys

import numpy as np
import pytest

import cupy_standin
import fastblur
from fastblur import _problem
from fastblur.backends import cost_model, get_backend, select_backend
from reference import reference_blur_masked, relative_error


def _case(rng, mode):
    image = rng.random((40, 50, 3), dtype=np.float32)
    kernels = np.zeros((3, 7, 6), np.float32)
    kernels[:, 3, :] = 1 / 6
    out_hw = {"valid": (34, 45), "same": (40, 50), "full": (46, 55)}[mode]
    weights = rng.random((3,) + out_hw).astype(np.float32)
    return image, kernels, weights


@pytest.mark.parametrize("mode", ["valid", "same", "full"])
def test_problem_holds_what_the_backend_runs(rng, mode):
    image, kernels, weights = _case(rng, mode)
    problem = _problem.blur_masked(image[..., 0], kernels, weights, mode, "reflect")
    extended, stack, maps = problem.arrays
    pads = {"valid": 0, "same": (6, 5), "full": (12, 10)}[mode]
    assert extended.shape[2] == 1 and problem.was_2d and problem.call == "blur_masked_valid"
    assert problem.out_shape == weights.shape[1:] and extended.shape[:2] == (40 + (pads and pads[0]), 50 + (pads and pads[1]))
    result = problem.finish(getattr(get_backend("numpy"), problem.call)(*problem.arrays))
    expected = reference_blur_masked(image[..., :1], kernels, weights, mode, "reflect")[..., 0]
    assert result.shape == expected.shape and relative_error(result, expected) <= 2e-5
    np.testing.assert_array_equal(result, fastblur.blur_masked(image[..., 0], kernels, weights, mode,
                                                               backend="numpy"))


def test_explain_and_auto_read_the_same_problem(default_constants, rng):
    image, kernels, weights = _case(rng, "same")
    problem = _problem.blur_masked(image, kernels, weights, "same", "edge")
    explained = fastblur.explain("blur_masked", image, kernels, weights, mode="same", boundary="edge")
    decided = cost_model.decide(problem)
    assert str(explained) == str(decided)
    assert select_backend("auto", problem).name == explained.backend
    # explain validates as the primitive does: NaN weights are refused by both
    weights[0, 3, 4] = np.nan
    for call in (lambda: fastblur.explain("blur_masked", image, kernels, weights, mode="same"),
                 lambda: fastblur.blur_masked(image, kernels, weights, mode="same")):
        with pytest.raises(ValueError, match="weights must be finite"):
            call()


def test_explain_prints_the_backends_variant(default_constants, monkeypatch, rng):
    image, kernels, weights = _case(rng, "valid")
    chosen = fastblur.explain("blur_masked", image, kernels, weights)
    monkeypatch.setattr(type(get_backend(chosen.backend)), "variant", "avx2", raising=False)
    decision = fastblur.explain("blur_masked", image, kernels, weights)
    assert decision.variant == "avx2" and decision.label == f"{chosen.backend}/avx2"
    assert f"{decision.method:6s} ({chosen.backend}/avx2):" in str(decision)
    assert f"-> {chosen.backend}/avx2 (" in decision.summary()


def test_backends_expose_their_plan(rng):
    fft = get_backend("numpy")
    plan, fft_shape = fft.plan((100, 120), (9, 9))
    assert plan.out_shape == (100, 120) and all(f >= b for f, b in zip(fft_shape, plan.block_shape))
    image, kernels, weights = _case(rng, "valid")
    assert fft.estimate(_problem.blur_masked(image, kernels, weights)) is None  # one method only


@pytest.fixture
def emulated_cupy(monkeypatch, cupy_host_kernels):
    """The ``cupy`` backend's module on the CPU stand-in for CuPy."""
    cupy_standin.install(monkeypatch, cupy_host_kernels)
    sys.modules.pop(cupy_standin.BACKEND_MODULE, None)
    yield importlib.import_module(cupy_standin.BACKEND_MODULE)
    sys.modules.pop(cupy_standin.BACKEND_MODULE, None)


def test_gpu_method_choice_is_a_decision(emulated_cupy, monkeypatch, rng):
    monkeypatch.delenv("FASTBLUR_GPU_METHOD", raising=False)
    module = emulated_cupy
    image, kernels, weights = _case(rng, "valid")
    on_device = cupy_standin.on_device
    arrays = (on_device(image[None]), on_device(kernels[None]), on_device(weights[None]))
    decision = module.decide_method(*arrays)
    assert isinstance(decision, cost_model.Decision) and decision.backend == "cupy"
    assert sorted(e.method for e in decision.estimates) == ["direct", "fft"]
    assert decision.method == min(decision.estimates, key=lambda e: e.seconds).method
    assert decision.method == module.choose_method(*arrays)
    assert str(decision).count("<- chosen") == 1
    problem = _problem.blur_masked(*(on_device(a) for a in (image, kernels, weights)))
    assert module.BACKEND.estimate(problem).method == decision.method
    monkeypatch.setenv("FASTBLUR_GPU_METHOD", "fft")
    forced = module.decide_method(*arrays)
    assert forced.method == "fft" and not forced.estimates and "<- chosen" in str(forced)


def test_generation_backend_policy_lives_with_the_backends():
    from fastblur import backends
    from fastblur.sbdd import config

    assert config.pinned_backend is backends.pinned_backend
    assert config.GENERATION_BACKENDS == backends.GENERATION_BACKENDS
    assert backends.pinned_backend("numpy") == "numpy"
    assert backends.pinned_backend("auto") in backends.GENERATION_BACKENDS


# -- one validation rule ------------------------------------------------------------------
def test_counts_accept_numpy_integers_and_refuse_other_types(tmp_path):
    from fastblur.evaluate.runner import evaluate_folder
    from fastblur.kernels import linear_motion

    assert linear_motion(np.float32(4), 0, size=np.int64(9)).shape == (9, 9)
    with pytest.raises(TypeError, match="size"):
        linear_motion(4, 0, size=9.0)
    for workers, n_visual, error, name in ((2.0, 0, TypeError, "workers"), (np.int64(0), 0, ValueError, "workers"),
                                           (1, "2", TypeError, "n_visual"), (1, np.int8(-1), ValueError, "n_visual")):
        with pytest.raises(error, match=name):
            evaluate_folder(tmp_path, tmp_path, tmp_path / "out", workers=workers, n_visual=n_visual)
    # numpy integers pass the checks (and the run stops later, at the empty folders)
    with pytest.raises(ValueError, match="paired"):
        evaluate_folder(tmp_path, tmp_path, tmp_path / "out", workers=np.int64(1), n_visual=np.int32(0))


@pytest.mark.parametrize("call, error", [
    (lambda: fastblur.convolve(np.zeros((9, 9)), np.ones((3, 3)), mode=3), TypeError),
    (lambda: fastblur.convolve(np.zeros((9, 9)), np.ones((3, 3)), backend=["numpy"]), TypeError),
    (lambda: fastblur.explain(7, np.zeros((9, 9)), np.ones((3, 3))), TypeError),
    (lambda: fastblur.explain("blur", np.zeros((9, 9)), np.ones((3, 3))), ValueError),
])
def test_names_type_then_value(call, error):
    with pytest.raises(error):
        call()
