"""The direct backends (``native`` C++, ``numba``): tiles, runs and edges, GIL, caches.

The shared conformance suite covers small images; these cases are sized to cross the
direct backends' own tile, strip and run boundaries, and check what only they promise:
the GIL is released during the computation, and Numba's compilation is cached.
"""
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastblur
from fastblur.backends import ZERO_WEIGHT, get_backend
from reference import direct_convolve_valid, reference_blur_masked, reference_blur_product, relative_error
from conftest import PACKAGE_ROOT

DIRECT = [
    pytest.param(name, marks=pytest.mark.skipif(
        fastblur.backend_info()[name] != "available", reason=fastblur.backend_info()[name]))
    for name in ("native", "numba")
]
TOLERANCE = {np.float32: 2e-5, np.float64: 1e-10}


def _sparse_kernels(rng, count, shape, taps, dtype):
    kernels = np.zeros((count,) + shape, dtype)
    for kernel in kernels:
        kernel.flat[rng.choice(kernel.size, taps, replace=False)] = rng.random(taps) + 0.1
    return kernels


@pytest.mark.parametrize("backend", DIRECT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_convolve_across_strips_and_bands(backend, rng, dtype, channels):
    # 900 columns x 5 channels x 4 bytes crosses the 8 KiB strips; 150 rows many bands.
    image = rng.standard_normal((150, 900, channels)).astype(dtype)
    kernel = _sparse_kernels(rng, 1, (11, 13), 20, dtype)[0]
    result = get_backend(backend).convolve_valid(image, kernel)
    assert result.shape == (140, 888, channels) and result.dtype == dtype
    assert relative_error(result, direct_convolve_valid(image, kernel)) <= TOLERANCE[dtype]


@pytest.mark.parametrize("backend", DIRECT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_masked_runs_match_definition(backend, rng, dtype):
    image = rng.standard_normal((90, 1000, 3)).astype(dtype)
    kernels = _sparse_kernels(rng, 4, (9, 7), 12, dtype)
    weights = np.zeros((4, 82, 994), dtype)
    weights[0] = rng.random((82, 994))
    weights[0, :, ::5] = 0  # isolated zeros inside a run (merged gaps)
    weights[1, 10:60, 300:700] = 0.5  # one block crossing strip edges
    weights[2, :, 3::40] = -0.25  # single active columns (many short runs), negative
    weights[3, 40:41, 990:] = 1  # a run ending at the last column
    result = get_backend(backend).blur_masked_valid(image, kernels, weights)
    expected = reference_blur_masked(image, kernels, weights, "valid", "reflect")
    assert relative_error(result, expected) <= TOLERANCE[dtype]


@pytest.mark.parametrize("backend", DIRECT)
def test_blur_masked_skips_weights_at_threshold_only(backend, rng):
    image = rng.random((40, 60, 2))
    kernels = rng.random((2, 5, 5))
    weights = np.zeros((2, 36, 56))
    weights[0] = ZERO_WEIGHT  # not above the threshold: skipped
    weights[1, :, 20:] = 2 * ZERO_WEIGHT  # above: evaluated exactly
    result = get_backend(backend).blur_masked_valid(image, kernels, weights)
    expected = weights[1][..., None] * direct_convolve_valid(image, kernels[1])
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", DIRECT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blur_product_skips_inactive_rows_exactly(backend, rng, dtype):
    image = rng.standard_normal((200, 420, 3)).astype(dtype)
    kernels = _sparse_kernels(rng, 3, (15, 9), 25, dtype)
    weights = np.zeros((3, 200, 420), dtype)
    weights[0] = rng.random((200, 420))
    weights[1, 70:75] = 1  # five input rows: output rows 56..74 see them
    weights[2, :, 400:] = rng.random((200, 20))
    result = get_backend(backend).blur_product_valid(image, kernels, weights)
    expected = reference_blur_product(image, kernels, weights, "valid", "reflect")
    assert relative_error(result, expected) <= TOLERANCE[dtype]


@pytest.mark.parametrize("backend", DIRECT)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolve_masks_edges_and_uniform_tiles(backend, rng, dtype):
    masks = np.zeros((4, 150, 1300), bool)
    masks[0, 20:130, 100:1200] = True  # large uniform inside and outside
    masks[1] = rng.random((150, 1300)) < 0.3  # edges everywhere
    masks[2, :, :] = True  # all set: the sum of the taps
    kernels = rng.random((4, 12, 10)).astype(dtype)
    kernels[0, :4] = 0  # taps' box smaller than the kernel
    kernels[0, :, -3:] = 0
    kernels[3] = 0  # no taps at all
    result = get_backend(backend).convolve_masks_valid(masks, kernels)
    expected = np.stack([direct_convolve_valid(m.astype(float), k) for m, k in zip(masks, kernels)])
    assert result.dtype == dtype
    np.testing.assert_allclose(result, expected, rtol=0, atol=TOLERANCE[dtype] * kernels.sum(axis=(1, 2)).max())
    np.testing.assert_array_equal(result[3], 0)
    # Inside the object, the value is the sum of the taps in the order direct evaluation
    # adds them (flipped kernel, row-major), without evaluating them.
    flipped = kernels[0, ::-1, ::-1].ravel()
    np.testing.assert_array_equal(result[0, 60:70, 500:600], np.cumsum(flipped[flipped != 0])[-1])


@pytest.mark.parametrize("backend", DIRECT)
def test_convolve_masks_reads_nonzero_as_set(backend, rng):
    masks = rng.integers(0, 4, (2, 30, 40)).astype(np.uint8)  # 0..3, not 0/1
    kernels = rng.random((2, 5, 5))
    result = get_backend(backend).convolve_masks_valid(masks, kernels)
    expected = np.stack([direct_convolve_valid((m != 0).astype(float), k) for m, k in zip(masks, kernels)])
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_native_extension_reports_its_build():
    if fastblur.backend_info()["native"] != "available":
        pytest.skip("native backend unavailable")
    from fastblur import _native

    assert _native.simd_bytes in (0, 16, 32, 64)
    assert isinstance(_native.has_openmp, bool)
    assert _native.threads_disabled_by_fork() is False  # only in a child forked after threads
    with pytest.raises(ValueError, match="weights must be"):
        _native.blur_masked_valid(np.zeros((8, 8, 1), np.float32), np.ones((2, 3, 3), np.float32),
                                  np.ones((2, 8, 8), np.float32), ZERO_WEIGHT, 1)


# -- the GIL --------------------------------------------------------------------------------
def _progress_during(call):
    """Iterations a Python loop in this thread makes while ``call`` runs in another.

    Only iterations between 10 ms after the call started and 10 ms before it ended are
    counted, so the Python code around the call itself does not count.
    """
    stamps = {}

    def worker():
        stamps["start"] = time.perf_counter()
        call()
        stamps["end"] = time.perf_counter()

    thread = threading.Thread(target=worker)
    ticks = []
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
    thread.join()
    low, high = stamps["start"] + 0.01, stamps["end"] - 0.01
    assert high - low > 0.05, "the call was too short to observe"
    return sum(low < t < high for t in ticks)


def test_progress_counter_detects_a_call_holding_the_gil():
    # list.sort holds the GIL for its whole run: the loop cannot advance.
    values = np.random.default_rng(0).random(3_000_000).tolist()
    assert _progress_during(values.sort) < 50


@pytest.mark.parametrize("backend", DIRECT)
@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product", "smooth_masks"])
def test_calls_release_the_gil(backend, operation, monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "1")
    rng = np.random.default_rng(1)
    chosen = get_backend(backend)
    # About 7e9 multiply-adds (0.15-0.5 s on one core): long enough to watch.
    image = rng.random((1000, 1400, 3), dtype=np.float32)
    kernels = rng.random((3, 41, 41), dtype=np.float32)
    weights = np.zeros((3, 960, 1360), np.float32)
    weights[0] = 1
    input_weights = np.zeros((3, 1000, 1400), np.float32)
    input_weights[0] = 1
    masks = rng.random((3, 1000, 1400)) < 0.5
    calls = {
        "convolve": lambda: chosen.convolve_valid(image, kernels[0]),
        "blur_masked": lambda: chosen.blur_masked_valid(image, kernels, weights),
        "blur_product": lambda: chosen.blur_product_valid(image, kernels, input_weights),
        "smooth_masks": lambda: chosen.convolve_masks_valid(masks, kernels),
    }
    calls[operation]()  # compile / warm up
    assert _progress_during(calls[operation]) > 1000


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two cores")
def test_two_threads_overlap_native_calls(monkeypatch):
    if fastblur.backend_info()["native"] != "available":
        pytest.skip("native backend unavailable")
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "1")
    image = np.random.default_rng(2).random((900, 1200, 3), dtype=np.float32)
    kernel = np.random.default_rng(3).random((15, 15), dtype=np.float32)
    native = get_backend("native")
    native.convolve_valid(image, kernel)
    intervals = []

    def call():
        start = time.perf_counter()
        native.convolve_valid(image, kernel)
        intervals.append((start, time.perf_counter()))

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (a0, a1), (b0, b1) = sorted(intervals)
    # Had the GIL been held, the second call could only run after the first ended.
    assert b0 < a1 - 0.5 * (a1 - a0)


# -- Numba's cache --------------------------------------------------------------------------
_NUMBA_CHILD = """
import numpy as np
from fastblur.backends import numba_backend as nb
image = np.ones((20, 30, 3), np.float32)
nb.BACKEND.convolve_valid(image, np.ones((3, 3), np.float32))
stats = nb._convolve_rows.stats
print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
"""


def test_numba_compilation_is_cached_on_disk():
    if fastblur.backend_info()["numba"] != "available":
        pytest.skip("numba backend unavailable")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))

    def run():
        out = subprocess.run([sys.executable, "-c", _NUMBA_CHILD], env=env, check=True,
                             cwd=PACKAGE_ROOT, capture_output=True, text=True).stdout
        return tuple(int(v) for v in out.split())

    run()  # fills the cache if it was cold
    hits, misses = run()
    assert (hits, misses) == (1, 0)


# -- fork() after threads ---------------------------------------------------------------
_FORK_CHILD = """
import os, sys
import numpy as np
from fastblur.backends import get_backend
backend = get_backend(sys.argv[1])
image = np.random.default_rng(0).random((200, 300, 3), dtype=np.float32)
kernels = np.random.default_rng(1).random((3, 9, 9), dtype=np.float32)
weights = np.ones((3, 192, 292), np.float32)
expected = backend.blur_masked_valid(image, kernels, weights)  # starts the thread pool
pid = os.fork()
if pid == 0:
    same = np.allclose(backend.blur_masked_valid(image, kernels, weights), expected, rtol=1e-6)
    os._exit(0 if same else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.parametrize("backend", DIRECT + ["fftw"])
def test_forked_child_of_a_threaded_process_still_computes(backend):
    # GNU OpenMP's pool does not survive fork(): without care the child (a DataLoader
    # worker, say) hangs (C++) or aborts (Numba) in its first parallel call.
    if fastblur.backend_info().get(backend) != "available":
        pytest.skip(f"backend {backend!r} unavailable")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), FASTBLUR_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", _FORK_CHILD, backend], env=env, check=True,
                         cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=120).stdout
    assert out.split() == ["0"]
