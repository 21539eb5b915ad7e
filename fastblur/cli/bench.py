"""``fastblur-bench``: every backend against its peers, as ratios measured in one run.

Cases (defaults): 720x1280x3 float32 with six 65x65 motion PSFs and SBDD-like weights
(``blur_masked`` against one uniform ``scipy.signal.fftconvolve`` of the same image and
against the naive loop of six), and uniform ``convolve`` (``same``, reflect) with 15x15
and 65x65 kernels against ``fftconvolve``, ``oaconvolve`` and ``cv2.filter2D``. The
``projective`` case (``--cases projective``) times :func:`fastblur.projective_blur` of
a 96-sample camera trajectory (about 30 px, 0.6 degree roll) against one 65x65
``fftconvolve`` and against the OpenCV warp-sum of the same samples.
Times are the best of ``--repeat`` runs; ratios are against ``fftconvolve`` in the
same run and thread setting, so they transfer between machines better than times do.
With the ``cupy`` backend, a second row times it with the data already on the GPU
(``[cupy, on GPU]``: no transfers, synchronised after each call) beside the row that
copies NumPy inputs in and the result out.
"""
import argparse
import json
import os
import sys
import time
from contextlib import contextmanager

import numpy as np
import scipy.fft
import scipy.signal

from .. import available_backends, backend_info
from .._validation import check_count
from ..backends import explain
from ..primitives import blur_masked, convolve
from ..projective import projective_blur
from .bench_cases import motion_kernels, photo, projective_case, sbdd_case


def best_time(function, repeat):
    """Best wall time of ``repeat`` calls after one warm-up call, in seconds."""
    function()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def _environment(name, value):
    """Environment variable ``name`` set to ``value`` inside (None: left as it is)."""
    previous = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


@contextmanager
def thread_limit(threads):
    """Cap fastblur, scipy.fft and OpenCV at ``threads`` for the duration."""
    cv2 = _cv2()
    cv2_previous = cv2.getNumThreads() if cv2 else None
    if cv2:
        cv2.setNumThreads(threads)
    try:
        with _environment("FASTBLUR_NUM_THREADS", str(threads)), scipy.fft.set_workers(threads):
            yield
    finally:
        if cv2:
            cv2.setNumThreads(cv2_previous)


def _cv2():
    try:
        import cv2

        return cv2
    except ImportError:
        return None


def _on_gpu(function, *arrays):
    """``function`` of ``arrays`` copied to the GPU once, synchronised after each call."""
    import cupy

    on_device = [cupy.asarray(array) for array in arrays]

    def run():
        result = function(*on_device)
        cupy.cuda.get_current_stream().synchronize()
        return result

    return run


def _backend_rows(label, function, arrays, backends, repeat, gpu_methods=()):
    """``label[name]`` for each backend; after the cupy row, ``label[cupy, on GPU]`` and
    ``label[cupy, on GPU, method]`` for each of ``gpu_methods`` forced."""
    rows = []
    for name in backends:
        rows.append((f"{label}[{name}]", best_time(lambda: function(*arrays, backend=name), repeat)))
        if name == "cupy":
            on_gpu = _on_gpu(lambda *device: function(*device, backend="cupy"), *arrays)
            rows.append((f"{label}[cupy, on GPU]", best_time(on_gpu, repeat)))
            for method in gpu_methods:
                with _environment("FASTBLUR_GPU_METHOD", method):
                    rows.append((f"{label}[cupy, on GPU, {method}]", best_time(on_gpu, repeat)))
    return rows


def _backends(selected):
    names = available_backends() + ["auto"]
    return [name for name in names if not selected or name in selected]


def sbdd_rows(height, width, repeat, backends):
    """blur_masked vs one fftconvolve and vs the naive loop of one fftconvolve a kernel."""
    image, kernels, weights = sbdd_case(height, width)

    def uniform():
        return scipy.signal.fftconvolve(image, kernels[0][:, :, None], mode="valid", axes=(0, 1))

    def naive():
        out = 0
        for kernel, weight in zip(kernels, weights):
            out = out + weight[:, :, None] * scipy.signal.fftconvolve(
                image, kernel[:, :, None], mode="valid", axes=(0, 1)
            )
        return out

    reference = best_time(uniform, repeat)
    rows = [("fftconvolve (1 kernel)", reference), ("naive loop (6 fftconvolve)", best_time(naive, repeat))]
    rows += _backend_rows("blur_masked", blur_masked, (image, kernels, weights), backends, repeat,
                          gpu_methods=("fft", "direct"))
    return reference, rows


def uniform_rows(height, width, size, repeat, backends):
    """convolve(same, reflect) vs fftconvolve/oaconvolve on the reflect-padded image and cv2.filter2D."""
    image = photo((height, width, 3))
    kernel = motion_kernels(1, size)[0] if size > 15 else np.full((size, size), 1 / size**2, np.float32)
    top, left = size // 2, size // 2
    padded = np.pad(image, ((top, size - 1 - top), (left, size - 1 - left), (0, 0)), mode="reflect")

    def scipy_peer(function):
        return lambda: function(padded, kernel[:, :, None], mode="valid", axes=(0, 1))

    reference = best_time(scipy_peer(scipy.signal.fftconvolve), repeat)
    rows = [("fftconvolve", reference), ("oaconvolve", best_time(scipy_peer(scipy.signal.oaconvolve), repeat))]
    cv2 = _cv2()
    if cv2 is not None:
        flipped = np.ascontiguousarray(kernel[::-1, ::-1])
        anchor = (size - 1 - left, size - 1 - top)
        rows.append(("cv2.filter2D", best_time(
            lambda: cv2.filter2D(image, -1, flipped, anchor=anchor, borderType=cv2.BORDER_REFLECT_101), repeat)))
    rows += _backend_rows("convolve", convolve, (image, kernel), backends, repeat)
    return reference, rows


def warp_sum(image, homographies):
    """The OpenCV warp-sum: the mean of ``cv2.warpPerspective`` by every homography
    (bilinear, ``BORDER_REFLECT_101``), or None without OpenCV."""
    cv2 = _cv2()
    if cv2 is None:
        return None
    size = (image.shape[1], image.shape[0])
    out = np.zeros_like(image)
    for homography in homographies:
        out += cv2.warpPerspective(image, homography, size, flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT_101)
    return out / len(homographies)


def projective_rows(height, width, repeat, backends):
    """projective_blur (96 samples, ~30 px path, 0.6 deg roll) vs one 65x65 fftconvolve of
    the reflect-padded image and vs the OpenCV warp-sum of the same samples."""
    image, homographies = projective_case(height, width)
    kernel = motion_kernels(1, 65)[0]
    padded = np.pad(image, ((32, 32), (32, 32), (0, 0)), mode="reflect")
    reference = best_time(lambda: scipy.signal.fftconvolve(padded, kernel[:, :, None], mode="valid",
                                                           axes=(0, 1)), repeat)
    rows = [("fftconvolve (65x65)", reference)]
    if _cv2() is not None:
        rows.append(("cv2 warp-sum (96 warpPerspective)", best_time(lambda: warp_sum(image, homographies),
                                                                    max(1, repeat // 2))))
    rows += _backend_rows("projective_blur", projective_blur, (image, homographies), backends, repeat)
    return reference, rows


def run(height=720, width=1280, repeat=5, threads=(1,), backends=None, cases=("sbdd", "uniform15", "uniform65")):
    """Run the benchmark cases; returns a list of result dicts (one per row)."""
    results = []
    for count in threads:
        with thread_limit(count):
            for case in cases:
                if case == "sbdd":
                    reference, rows = sbdd_rows(height, width, repeat, _backends(backends))
                elif case == "projective":
                    reference, rows = projective_rows(height, width, repeat, _backends(backends))
                else:
                    size = int(case.removeprefix("uniform"))
                    reference, rows = uniform_rows(height, width, size, repeat, _backends(backends))
                for method, seconds in rows:
                    results.append({"case": case, "threads": count, "method": method,
                                    "ms": 1e3 * seconds, "ratio": seconds / reference})
    return results


def machine_notes(height, width):
    """What the figures depend on: backends, the native build, auto's choices."""
    lines = [f"backends: {backend_info()}"]
    try:
        from .. import _native

        lines.append(f"native build: {_native.variant} kernels ({8 * _native.simd_bytes}-bit vectors; compiled: "
                     f"{', '.join(_native.compiled_variants)}), OpenMP {'on' if _native.has_openmp else 'off'}")
    except ImportError as error:
        lines.append(f"native build: unavailable ({error})")
    image, kernels, weights = sbdd_case(height, width)
    lines.append(str(explain("blur_masked", image, kernels, weights)))
    lines.append(str(explain("convolve", image, kernels[0], mode="same")))
    return "\n".join(lines)


def markdown(results, height, width):
    lines = [f"Image {height}x{width}x3 float32; ratio = time / fftconvolve in the same run (lower is faster).",
             "", "| case | threads | method | ms | ratio |", "| --- | ---: | --- | ---: | ---: |"]
    for row in results:
        lines.append(f"| {row['case']} | {row['threads']} | {row['method']} | {row['ms']:.1f} | {row['ratio']:.2f} |")
    return "\n".join(lines)


def warp_sum_speedups(results):
    """Lines 'method: N x faster than the cv2 warp-sum' for the projective rows."""
    lines = []
    for threads in sorted({row["threads"] for row in results if row["case"] == "projective"}):
        rows = [row for row in results if row["case"] == "projective" and row["threads"] == threads]
        peer = next((row for row in rows if row["method"].startswith("cv2 warp-sum")), None)
        if peer is None:
            continue
        for row in rows:
            if row["method"].startswith("projective_blur"):
                lines.append(f"{threads} thread(s): {row['method']} is {peer['ms'] / row['ms']:.1f}x "
                             "faster than the cv2 warp-sum")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastblur-bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs (default 5)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="thread counts to measure (default: 1 and all cores)")
    parser.add_argument("--backends", nargs="+", help="backends to time (default: all available, and auto)")
    parser.add_argument("--cases", nargs="+", default=["sbdd", "uniform15", "uniform65"],
                        choices=["sbdd", "uniform15", "uniform65", "projective"])
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--explain", action="store_true", help="also print the build and auto's decisions")
    args = parser.parse_args(argv)
    try:
        for name, value, low in (("--repeat", args.repeat, 1), ("--height", args.height, 80),
                                 ("--width", args.width, 80)):
            check_count(value, name, low)
    except ValueError as error:
        parser.error(str(error))
    results = run(args.height, args.width, args.repeat, tuple(dict.fromkeys(args.threads)), args.backends, args.cases)
    print(markdown(results, args.height, args.width))
    for line in warp_sum_speedups(results):
        print(line)
    if args.explain:
        print()
        print(machine_notes(args.height, args.width))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
