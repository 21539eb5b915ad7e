"""CPU backends (native, numba, fftw, numpy) and ``auto`` against scipy and OpenCV.

Groups (compare within a group; every group has its peers measured in the same run):

* ``masked-720p-6x65-t<threads>``: ``blur_masked`` of 720x1280x3 float32 by six 65x65
  motion PSFs (about 100 taps each) with SBDD weights from ``smooth_masks`` of five
  elliptical objects, against one uniform ``scipy.signal.fftconvolve`` / ``oaconvolve``.
  Target: ``auto`` <= 1.2x ``fftconvolve`` on one thread; 1 -> 2 threads >= 1.7x.
* ``uniform-<65motion|15dense>-t<threads>``: ``convolve`` (``same``, reflect) against
  ``cv2.filter2D`` (BORDER_REFLECT_101, the flipped kernel: filter2D correlates) and
  scipy on the reflect-padded image. Target: ``auto`` <= 1.0x ``cv2.filter2D``.
* ``memory-4000x6000``: peak extra resident memory of ``blur_masked`` on 4000x6000x3
  float32 with six 65x65 kernels, in a fresh subprocess (peak RSS during the call minus
  RSS before it, so C++ allocations count; see :func:`peak_memory`), the output
  included; ``extra_info["ratio"]`` is that over the image's size. Target <= 3.

Run: ``pytest bench/bench_backends.py --benchmark-only`` (``-k "t1"`` for one thread).
The memory case alone: ``python bench/bench_backends.py memory [backend]``.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.signal

import fastblur
from fastblur.cli.bench import thread_limit
from fastblur.cli.bench_cases import motion_kernels, object_masks, photo, sbdd_case

CPU_BACKENDS = [name for name in fastblur.available_backends() if name != "cupy"]
THREADS = sorted({1, os.cpu_count() or 1})


@pytest.fixture
def threads(request):
    """Cap fastblur, scipy.fft and OpenCV at the parametrised thread count."""
    with thread_limit(request.param):
        yield request.param


@pytest.fixture(scope="module")
def sbdd():
    return sbdd_case(720, 1280)


def _group(benchmark, name, count):
    benchmark.group = f"{name}-t{count}"


# -- blur_masked, 720p, six motion PSFs ----------------------------------------------------
@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("peer", ["fftconvolve", "oaconvolve"])
def bench_masked_peer(benchmark, sbdd, threads, peer):
    _group(benchmark, "masked-720p-6x65", threads)
    image, kernels, _ = sbdd
    function = getattr(scipy.signal, peer)
    benchmark(function, image, kernels[0][:, :, None], mode="valid", axes=(0, 1))


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("backend", CPU_BACKENDS + ["auto"])
def bench_masked(benchmark, sbdd, threads, backend):
    _group(benchmark, "masked-720p-6x65", threads)
    image, kernels, weights = sbdd
    benchmark(fastblur.blur_masked, image, kernels, weights, backend=backend)


# -- uniform convolve, same / reflect ------------------------------------------------------
def _uniform_kernel(name):
    if name == "65motion":
        return motion_kernels(1, 65)[0]
    kernel = np.random.default_rng(15).random((15, 15)).astype(np.float32)
    return kernel / kernel.sum()


@pytest.fixture(scope="module")
def image720():
    return photo((720, 1280, 3))


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("kernel_name", ["65motion", "15dense"])
def bench_uniform_filter2d(benchmark, image720, threads, kernel_name):
    cv2 = pytest.importorskip("cv2")
    _group(benchmark, f"uniform-{kernel_name}", threads)
    kernel = _uniform_kernel(kernel_name)
    size = kernel.shape[0]
    # convolve's `same` window takes k // 2 samples before; filter2D's anchor says where.
    anchor = (size - 1 - size // 2, size - 1 - size // 2)
    flipped = np.ascontiguousarray(kernel[::-1, ::-1])
    benchmark(cv2.filter2D, image720, -1, flipped, anchor=anchor, borderType=cv2.BORDER_REFLECT_101)


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("kernel_name", ["65motion", "15dense"])
@pytest.mark.parametrize("peer", ["fftconvolve", "oaconvolve"])
def bench_uniform_scipy(benchmark, image720, threads, kernel_name, peer):
    _group(benchmark, f"uniform-{kernel_name}", threads)
    kernel = _uniform_kernel(kernel_name)
    size = kernel.shape[0]
    pads = ((size // 2, (size - 1) // 2), (size // 2, (size - 1) // 2), (0, 0))
    function = getattr(scipy.signal, peer)

    def padded_then_valid():
        return function(np.pad(image720, pads, mode="reflect"), kernel[:, :, None], mode="valid", axes=(0, 1))

    benchmark(padded_then_valid)


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("kernel_name", ["65motion", "15dense"])
@pytest.mark.parametrize("backend", CPU_BACKENDS + ["auto"])
def bench_uniform(benchmark, image720, threads, kernel_name, backend):
    _group(benchmark, f"uniform-{kernel_name}", threads)
    benchmark(fastblur.convolve, image720, _uniform_kernel(kernel_name), backend=backend)


# -- peak memory of blur_masked on a 24-megapixel image -----------------------------------
_CHILD = r"""
import json, resource, sys
import numpy as np
import fastblur

def peak_and_current():
    # VmHWM is this process's own peak; ru_maxrss would also carry the parent's peak
    # across fork + exec on Linux.
    try:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if ":" in line)
        return int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024
    except (OSError, KeyError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak

backend, folder = sys.argv[1], sys.argv[2]
small = np.load(folder + "/small.npy")
kernels = np.load(folder + "/kernels.npy")
warm_weights = np.full((6,) + tuple(n - 64 for n in small.shape[:2]), 1 / 6, np.float32)
fastblur.blur_masked(small, kernels, warm_weights, backend=backend)  # imports, JIT, calibration
image = np.load(folder + "/image.npy")
weights = np.load(folder + "/weights.npy")
try:  # reset the peak to the current RSS (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
except OSError:
    pass
peak_before, current = peak_and_current()
out = fastblur.blur_masked(image, kernels, weights, backend=backend)
peak_after, _ = peak_and_current()
extra = peak_after - max(current, min(peak_before, peak_after))
print(json.dumps({"extra_bytes": extra, "image_bytes": image.nbytes, "output_bytes": out.nbytes,
                  "ratio": extra / image.nbytes, "backend": backend,
                  "peak_reset": peak_before == current}))
"""


def peak_memory(backend="auto", height=4000, width=6000):
    """Peak extra memory of one ``blur_masked`` call, measured in a fresh process.

    The inputs are written to ``.npy`` files first and loaded by the child before its
    baseline is read; the child resets its peak RSS (``/proc/self/clear_refs``) and
    reports how far the call raises it (``VmHWM``), so C++ allocations count. Where
    ``/proc`` is missing it falls back to the ``ru_maxrss`` delta.

    Returns
    -------
    dict
        ``extra_bytes``, ``image_bytes``, ``ratio`` (their quotient), ``backend``.
    """
    kernels = motion_kernels(6, 65)
    with tempfile.TemporaryDirectory(prefix="fastblur-memory-") as folder:
        image = photo((height, width, 3))
        np.save(os.path.join(folder, "image.npy"), image)
        np.save(os.path.join(folder, "small.npy"), image[:256, :256])
        del image
        weights = fastblur.smooth_masks(object_masks((height, width), 5), kernels)
        np.save(os.path.join(folder, "weights.npy"), weights)
        del weights
        np.save(os.path.join(folder, "kernels.npy"), kernels)
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, backend, folder],
            check=True, capture_output=True, text=True,
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["auto", "native"])
def bench_memory_blur_masked_4000x6000(benchmark, backend):
    if backend != "auto" and backend not in CPU_BACKENDS:
        pytest.skip(f"backend {backend!r} unavailable")
    benchmark.group = "memory-4000x6000"
    result = benchmark.pedantic(peak_memory, args=(backend,), rounds=1, iterations=1)
    benchmark.extra_info.update(result)
    print(f"\npeak extra memory of blur_masked[{backend}]: {result['ratio']:.2f}x the image")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "memory":
        sys.exit("usage: python bench/bench_backends.py memory [backend]")
    print(json.dumps(peak_memory(*(sys.argv[2:3] or ["auto"]))))
