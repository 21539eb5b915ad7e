#!/usr/bin/env bash
# The GPU checks in one run, for a machine with CuPy, PyTorch, CMake and pybind11 but no
# network (the `device` tool's machines), within GPU_CHECK_BUDGET seconds (default 540,
# under a 570 s limit):
#
#   1. build the native extension in place (setup.py, or CMake directly without
#      setuptools; a failed build is reported and the GPU steps still run),
#   2. preflight (~20 s): versions, cuFFT/NVRTC, the backend's RawModule, a small
#      blur_masked_batch against the numpy backend, and the 720p six-kernel timings
#      (host and GPU time, images/s, the naive cupyx fftconvolve loop): the key numbers
#      come first, so a run cut short still has them,
#   3. every test marked `gpu` (the conformance suite on `cupy`, DLPack interop, batched
#      formation, SBDDLoader),
#   4. the GPU benchmarks (pytest-benchmark JSON), then `fastblur-bench` rows,
#   5. summary.txt: pass/fail per step and images/s from the benchmark JSON.
#
# Each step gets at most what is left of the budget; steps are stopped with SIGINT so
# that pytest still writes its JSON/XML. Logs go to OUT as they are written.
#
#   bash bench/gpu_check.sh [OUT]        # OUT defaults to $OUT, else ./gpu_check
set -uo pipefail
start=$SECONDS
budget=${GPU_CHECK_BUDGET:-540}
out=${1:-${OUT:-gpu_check}}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
status=0
summary="$out/summary.txt"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

# The interpreter: $PYTHON, else the first of python3/python that has CuPy.
python=${PYTHON:-}
if [ -z "$python" ]; then
    for candidate in python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c "import importlib.util as u, sys; sys.exit(u.find_spec('cupy') is None)" 2>/dev/null; then
            python=$candidate
            break
        fi
    done
    python=${python:-python3}
fi
# pip's cmake and ninja put their binaries next to the interpreter or in their package.
tool_path=$($python - <<'PY' 2>/dev/null
import importlib, os, sys
dirs = [os.path.dirname(sys.executable)]
for module, attribute in (("cmake", "CMAKE_BIN_DIR"), ("ninja", "BIN_DIR")):
    try:
        dirs.append(getattr(importlib.import_module(module), attribute))
    except Exception:
        pass
print(":".join(dirs))
PY
)
export PATH="${tool_path:+$tool_path:}$PATH"

# step NAME CAP LOG COMMAND...: run COMMAND with at most CAP seconds (less if the budget
# is nearly spent), output to LOG; records the result in the summary.
step() {
    local name=$1 cap=$2 log=$3 left rc
    shift 3
    left=$((budget - (SECONDS - start)))
    if [ "$left" -lt 15 ]; then
        note "SKIP  $name: budget spent"
        status=1
        return 1
    fi
    [ "$cap" -gt "$left" ] && cap=$left
    local t0=$SECONDS
    timeout -s INT -k 15 "$cap" "$@" >"$log" 2>&1
    rc=$?
    tail -30 "$log"
    if [ "$rc" -eq 0 ]; then
        note "PASS  $name ($((SECONDS - t0)) s)"
    else
        [ "$rc" -eq 124 ] && note "TIME  $name: stopped after $cap s" || note "FAIL  $name: exit $rc ($((SECONDS - t0)) s), see $(basename "$log")"
        status=1
    fi
    return "$rc"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    echo "python: $(command -v "$python") ($($python -V 2>&1))"
} | tee "$out/device.txt"
missing=$($python - <<'PY'
import importlib.util
needed = ["numpy", "scipy", "cv2", "skimage", "numba", "tqdm", "pybind11", "pytest", "hypothesis",
          "pytest_benchmark", "cupy", "torch"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)
if [ -n "$missing" ]; then
    note "missing Python packages: $missing (carry them as wheels)"
    exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export python
# CuPy caches NVRTC output under $HOME/.cupy; a bare machine's HOME may be read-only.
[ -w "${HOME:-/nonexistent}" ] || export CUPY_CACHE_DIR=${CUPY_CACHE_DIR:-$work/cupy_cache}

build() {
    if "$python" -c "import setuptools" 2>/dev/null; then
        "$python" setup.py build_ext --inplace
    else  # Python >= 3.12 environments need not have setuptools
        echo "no setuptools: building with CMake directly"
        local generator=()
        command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
        cmake -S . -B build/gpu_check "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
            -DPython_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')" \
            -Dpybind11_DIR="$("$python" -m pybind11 --cmakedir)" \
            -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/fastblur" &&
            cmake --build build/gpu_check --parallel
    fi
}
export -f build
step "build" 150 "$out/build.log" bash -c build  # the GPU steps do not need it: go on regardless
timeout 60 "$python" -c "import fastblur, json; print(json.dumps(fastblur.backend_info(), indent=1))" 2>&1 |
    tee -a "$out/device.txt"

cat >"$work/preflight.py" <<'PY'
import json, sys, time, traceback, warnings

import numpy as np

report = {}
caught = warnings.catch_warnings(record=True)
seen = caught.__enter__()
warnings.simplefilter("always")


def section(name):
    def wrap(function):
        try:
            report[name] = function()
        except Exception as error:  # report it and go on with the next section
            traceback.print_exc()
            report[name] = f"FAILED: {type(error).__name__}: {error}"
        print(f"{name}: {report[name]}", flush=True)
        return function
    return wrap


@section("versions")
def _():
    import cupy
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(0)
    found = {"cupy": cupy.__version__, "numpy": np.__version__, "cuda_runtime": runtime.runtimeGetVersion(),
             "driver": runtime.driverGetVersion(), "device": props["name"].decode(),
             "compute_capability": f"{props['major']}.{props['minor']}",
             "memory_GiB": round(props["totalGlobalMem"] / 2**30, 1)}
    from cupy.cuda import cufft, nvrtc
    found["cufft"], found["nvrtc"] = cufft.getVersion(), nvrtc.getVersion()
    try:
        import torch
        found["torch"], found["torch_cuda"] = torch.__version__, torch.version.cuda
        found["torch_tf32_conv"] = torch.backends.cudnn.allow_tf32
    except Exception as error:
        found["torch"] = f"unusable: {error}"
    return found


@section("backend")
def _():
    import fastblur
    status = fastblur.backend_info()["cupy"]
    if status != "available":
        raise RuntimeError(f"the cupy backend is unavailable: {status}")
    from fastblur.backends import cupy_backend
    kernels = {}
    for name in ("accumulate_weighted<float>", "accumulate_weighted<double>",
                 "blur_masked_taps<float>", "blur_masked_taps<double>"):
        kernel = cupy_backend._MODULE.get_function(name)  # compiles with NVRTC
        kernels[name] = {"registers": kernel.num_regs, "local_bytes": kernel.local_size_bytes}
    return kernels


class forced_method:
    """FASTBLUR_GPU_METHOD set to ``method`` (``auto``: the cost estimate) inside."""

    def __init__(self, method):
        self.method = method

    def __enter__(self):
        import os
        self.saved = os.environ.get("FASTBLUR_GPU_METHOD")
        os.environ["FASTBLUR_GPU_METHOD"] = self.method

    def __exit__(self, *exc):
        import os
        os.environ.pop("FASTBLUR_GPU_METHOD")
        if self.saved is not None:
            os.environ["FASTBLUR_GPU_METHOD"] = self.saved


@section("small_batch_vs_numpy")
def _():
    import cupy
    import fastblur
    errors = {}
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        images = rng.random((3, 41, 37, 5)).astype(dtype)
        kernels = rng.random((3, 4, 9, 7)).astype(dtype)
        kernels[:, 2, ::2] = 0
        weights = rng.random((3, 4, 33, 31)).astype(dtype)
        weights[:, 1, :10] = 0
        expected = fastblur.blur_masked_batch(images, kernels, weights, backend="numpy")
        for method in ("fft", "direct"):
            with forced_method(method):
                result = fastblur.blur_masked_batch(*(cupy.asarray(a) for a in (images, kernels, weights)))
            assert type(result) is cupy.ndarray and result.dtype == dtype
            error = float(np.abs(result.get() - expected).max() / np.abs(expected).max())
            errors[f"{method}_{np.dtype(dtype).name}"] = error
    assert max(v for k, v in errors.items() if k.endswith("32")) < 2e-5, errors
    assert max(v for k, v in errors.items() if k.endswith("64")) < 1e-10, errors
    return errors


def _time(function, args, repeat=30):
    """Host and GPU (event) milliseconds per call, mean over ``repeat`` after 3 warm-ups."""
    from cupyx.profiler import benchmark
    result = benchmark(function, args, n_repeat=repeat, n_warmup=3)
    return {"cpu_ms": round(1e3 * float(result.cpu_times.mean()), 3),
            "gpu_ms": round(1e3 * float(result.gpu_times[0].mean()), 3)}


def _pipelined_ms(function, args, repeat=30):
    """Milliseconds per call of ``repeat`` calls issued back to back, one sync at the end."""
    import cupy
    function(*args)
    cupy.cuda.Device().synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        function(*args)
    cupy.cuda.Device().synchronize()
    return round(1e3 * (time.perf_counter() - start) / repeat, 3)


@section("timing_720p_6x65")
def _():
    import cupy
    import fastblur
    from fastblur.backends import cupy_backend
    from fastblur.cli.bench_cases import sbdd_case

    image, kernels, weights = (cupy.asarray(a) for a in sbdd_case(720, 1280))
    found = {"blur_masked": _time(lambda *a: fastblur.blur_masked(*a), (image, kernels, weights))}
    found["method_chosen"] = cupy_backend.choose_method(image[None], kernels[None], weights[None])
    backend = cupy_backend.BACKEND.blur_masked_valid  # no validation, no host syncs
    for method in ("fft", "direct"):  # the data behind GPU_COSTS: measured, not estimated
        with forced_method(method):
            found[f"backend_{method}"] = _time(backend, (image, kernels, weights))
            found[f"backend_{method}_pipelined_ms"] = _pipelined_ms(backend, (image, kernels, weights))
    batch = 16
    images, batch_kernels, batch_weights = (cupy.ascontiguousarray(cupy.broadcast_to(a, (batch,) + a.shape))
                                            for a in (image, kernels, weights))
    pool = cupy.get_default_memory_pool()
    pool.free_all_blocks()
    found["batch16"] = _time(lambda *a: fastblur.blur_masked_batch(*a), (images, batch_kernels, batch_weights), 10)
    found["batch16_pool_GiB"] = round(pool.total_bytes() / 2**30, 2)
    found["images_per_s_single"] = round(1e3 / max(found["blur_masked"]["gpu_ms"], found["blur_masked"]["cpu_ms"]))
    found["images_per_s_batch16"] = round(batch * 1e3 / found["batch16"]["gpu_ms"])
    try:
        from cupyx.scipy.signal import fftconvolve
    except ImportError as error:
        found["naive_fftconvolve"] = f"cupyx.scipy.signal unavailable: {error}"
        return found

    def naive(image, kernels, weights):
        return sum(w[:, :, None] * fftconvolve(image, k[:, :, None], mode="valid", axes=(0, 1))
                   for k, w in zip(kernels, weights))

    found["naive_fftconvolve"] = _time(naive, (image, kernels, weights))
    ours = fastblur.blur_masked(image, kernels, weights)
    found["naive_max_abs_difference"] = float(cupy.abs(naive(image, kernels, weights) - ours).max())
    found["speedup_vs_naive"] = round(found["naive_fftconvolve"]["gpu_ms"] / found["blur_masked"]["gpu_ms"], 2)
    return found


caught.__exit__(None, None, None)
report["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in seen})
print("warnings:", report["warnings"])
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump(report, handle, indent=1, default=str)
sys.exit(any(isinstance(v, str) and v.startswith("FAILED") for v in report.values()))
PY
step "preflight" 90 "$out/preflight.log" "$python" "$work/preflight.py" "$out/preflight.json"

step "gpu tests" 200 "$out/tests.log" \
    "$python" -m pytest tests -q -m gpu -p no:cacheprovider --maxfail=20 --durations=15 \
    --junitxml "$out/tests.xml"
# All skipped would pass: the backend must be there.
grep -qE "[0-9]+ passed" "$out/tests.log" 2>/dev/null || { note "FAIL  gpu tests: nothing passed (all skipped?)"; status=1; }

step "gpu benchmarks" 150 "$out/bench.log" \
    "$python" -m pytest -c bench/pytest.ini bench/bench_gpu.py bench/bench_torch_dataset.py \
    --benchmark-only --benchmark-json "$out/bench.json" --benchmark-columns=min,mean,rounds \
    -p no:cacheprovider

step "fastblur-bench" 80 "$out/report.md" \
    "$python" -m fastblur.cli.bench --backends cupy auto --threads 1 16 --repeat 5 \
    --cases sbdd uniform65 --json "$out/report.json"

if [ -f "$out/bench.json" ]; then
    "$python" - "$out/bench.json" <<'PY' | tee -a "$summary"
import json, sys
rows = {b["name"]: b for b in json.load(open(sys.argv[1]))["benchmarks"]}
for name, row in sorted(rows.items()):
    extra, mean = row.get("extra_info", {}), row["stats"]["mean"]
    unit = "images" if "images" in extra else "pairs" if "pairs" in extra else None
    rate = f", {extra[unit] / mean:,.0f} {unit}/s" if unit else ""
    print(f"{name}: mean {1e3 * mean:.3f} ms, min {1e3 * row['stats']['min']:.3f} ms{rate}")
ours, naive = rows.get("bench_blur_masked_cupy"), rows.get("bench_naive_cupyx_fftconvolve")
if ours and naive:
    print(f"blur_masked vs the naive cupyx fftconvolve loop: {naive['stats']['mean'] / ours['stats']['mean']:.1f}x")
PY
fi
note "total $((SECONDS - start)) s of $budget s; exit $status"
exit $status
