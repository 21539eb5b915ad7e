"""fastblur.evaluate speed: per-image cost against the reference, and worker scaling.

Run: ``python -m pytest bench/bench_evaluate.py --benchmark-group-by=group``

* ``per-image``: one 680x773 RealBlur-sized pair, ``aligned_metrics(..., "realblur")``
  against ``reference_realblur`` of ``tests/test_evaluate.py`` (the RealBlur script
  restated with OpenCV and scikit-image calls), both with one OpenCV thread. ECC dominates
  both; the target is fastblur <= 1.2x the reference.
* ``workers``: ``evaluate_folder`` on 6 such pairs with 1 and with 2 worker processes
  (one OpenCV thread each); the target is >= 1.7x on 2 cores.
"""
import importlib.util
import resource
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from fastblur.evaluate import aligned_metrics, evaluate_folder

HEIGHT, WIDTH = 680, 773
SCALING_IMAGES = 6


def _reference():
    path = Path(__file__).resolve().parents[1] / "tests" / "test_evaluate.py"
    spec = importlib.util.spec_from_file_location("_evaluate_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_realblur


def realblur_sized_pair(seed=0):
    """A 680x773 ground truth from a photograph and a restored-looking, misaligned copy."""
    rng = np.random.default_rng(seed)
    photo = cv2.resize(data.coffee(), (1080, 720), interpolation=cv2.INTER_CUBIC)
    top, left = 20 + 3 * seed, 150 + 7 * seed
    gt = np.ascontiguousarray(photo[top:top + HEIGHT, left:left + WIDTH], dtype=np.float32) / 255
    homography = np.float32([[1.002, 0.003, 2.3 - seed * 0.2], [-0.002, 0.998, -1.7], [1e-6, -2e-6, 1]])
    restored = cv2.warpPerspective(gt, homography, (WIDTH, HEIGHT), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT)
    restored = 0.93 * cv2.GaussianBlur(restored, (0, 0), 0.8) + 0.01
    restored = restored + rng.normal(0, 0.01, restored.shape)
    return np.clip(restored, 0, 1).astype(np.float32), gt


@pytest.fixture
def one_opencv_thread():
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


@pytest.mark.benchmark(group="per-image 680x773 realblur")
def test_per_image_fastblur(benchmark, one_opencv_thread):
    restored, gt = realblur_sized_pair()
    result = benchmark.pedantic(aligned_metrics, args=(restored, gt, "realblur"),
                                rounds=5, iterations=1, warmup_rounds=1)
    assert result["psnr"] > 30


@pytest.mark.benchmark(group="per-image 680x773 realblur")
def test_per_image_reference(benchmark, one_opencv_thread):
    reference = _reference()
    restored, gt = realblur_sized_pair()
    psnr, _, _, _ = benchmark.pedantic(reference, args=(restored, gt),
                                       rounds=5, iterations=1, warmup_rounds=1)
    assert psnr == pytest.approx(aligned_metrics(restored, gt)["psnr"], abs=1e-9)


@pytest.fixture(scope="module")
def scaling_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_eval")
    (root / "restored").mkdir()
    (root / "gt").mkdir()
    for index in range(SCALING_IMAGES):
        restored, gt = realblur_sized_pair(seed=index)
        for folder, image in (("restored", restored), ("gt", gt)):
            bgr = cv2.cvtColor((image * 255 + 0.5).astype(np.uint8), cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(root / folder / f"img_{index:02d}.png"), bgr)
    return root


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.benchmark(group=f"workers, {SCALING_IMAGES} pairs 680x773")
def test_worker_scaling(benchmark, scaling_folder, workers):
    def run():
        return evaluate_folder(scaling_folder / "restored", scaling_folder / "gt",
                               scaling_folder / f"out_{workers}", workers=workers,
                               n_visual=0, progress=False)

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = benchmark.pedantic(run, rounds=1, iterations=1)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the (joined) workers: equal for 1 and 2 workers when the workers do not
    # compete with each other, so a wall-time ratio below 2 then means busy cores
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    benchmark.extra_info["worker_cpu_s_per_image"] = round(cpu / SCALING_IMAGES, 3)
    assert summary["n_ok"] == SCALING_IMAGES and summary["workers"] == workers
