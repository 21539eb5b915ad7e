#!/usr/bin/env bash
# The GPU checks in one run, for a machine with CuPy, PyTorch, CMake and pybind11 but no
# network (the `device` tool's machines): build in place, the GPU tests (every test marked
# `gpu`: the conformance suite on `cupy`, DLPack interop, batched formation, SBDDLoader),
# then the GPU benchmarks. Logs and the benchmark JSON go to OUT.
#
#   bash bench/gpu_check.sh [OUT]        # OUT defaults to $OUT, else ./gpu_check
set -uo pipefail
out=${1:-${OUT:-gpu_check}}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
python=${PYTHON:-python3}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
if ! $python setup.py build_ext --inplace >"$out/build.log" 2>&1; then
    tail -40 "$out/build.log"
    exit 1
fi
$python -c "import fastblur, json; print(json.dumps(fastblur.backend_info(), indent=1))" | tee -a "$out/device.txt"

status=0
timeout 300 $python -m pytest tests -q -m gpu -p no:cacheprovider -x 2>&1 | tail -40 | tee "$out/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
timeout 300 $python -m pytest -c bench/pytest.ini bench/bench_gpu.py bench/bench_torch_dataset.py \
    --benchmark-only --benchmark-json "$out/bench.json" --benchmark-columns=min,mean,rounds \
    -p no:cacheprovider 2>&1 | tail -40 | tee "$out/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
