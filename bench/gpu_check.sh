#!/usr/bin/env bash
# The GPU checks in one run, for a machine with CuPy, PyTorch, CMake and pybind11 but no
# network (the `device` tool's machines): build in place, the GPU tests (every test marked
# `gpu`: the conformance suite on `cupy`, DLPack interop, batched formation, SBDDLoader),
# then the GPU benchmarks. Full logs and the benchmark JSON go to OUT as they are written,
# so a run stopped at a time limit still leaves what it did. Under 9.5 minutes in all.
#
#   bash bench/gpu_check.sh [OUT]        # OUT defaults to $OUT, else ./gpu_check
set -uo pipefail
out=${1:-${OUT:-gpu_check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
missing=$($python - <<'PY'
import importlib.util
needed = ["numpy", "scipy", "cv2", "skimage", "numba", "tqdm", "pybind11", "pytest", "hypothesis",
          "pytest_benchmark", "cupy", "torch"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)
if [ -n "$missing" ]; then
    echo "missing Python packages: $missing (carry them as wheels)" | tee -a "$out/device.txt"
    exit 2
fi
if ! $python setup.py build_ext --inplace >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    exit 1
fi
$python -c "import fastblur, json; print(json.dumps(fastblur.backend_info(), indent=1))" | tee -a "$out/device.txt"

status=0
timeout 200 $python -m pytest tests -q -m gpu -p no:cacheprovider --maxfail=10 2>&1 \
    | tee "$out/tests.log" | tail -40
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 240 $python -m pytest -c bench/pytest.ini bench/bench_gpu.py bench/bench_torch_dataset.py \
    --benchmark-only --benchmark-json "$out/bench.json" --benchmark-columns=min,mean,rounds \
    -p no:cacheprovider 2>&1 | tee "$out/bench.log" | tail -40
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 90 $python -m fastblur.cli.bench --backends cupy auto --threads 1 16 --repeat 5 --cases sbdd uniform65 \
    --json "$out/report.json" 2>&1 | tee "$out/report.md"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
