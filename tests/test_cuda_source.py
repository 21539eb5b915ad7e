"""The cupy backend's CUDA source compiled by nvcc for real GPUs, without a GPU.

CuPy compiles ``_CUDA_SOURCE`` with NVRTC on first use, on the GPU machine; a
compile error there would cost a GPU run. Here nvcc (when installed) compiles the
same source to PTX for sm_80 and sm_90 with warnings as errors, instantiating exactly
the backend's ``name_expressions`` (as NVRTC does), and the PTX is checked: every
kernel has both instantiations, and the float ones do no float64 arithmetic.
The source and the RawModule arguments are read from the file with ``ast``: importing
the backend needs CuPy and a device.
"""
import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import fastblur.backends

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc is not installed")

BACKEND_FILE = Path(fastblur.backends.__file__).parent / "cupy_backend.py"


def _backend_cuda():
    """``(source, options, name_expressions)`` as the backend hands them to RawModule."""
    tree = ast.parse(BACKEND_FILE.read_text())
    constants = {node.targets[0].id: node.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    source = constants["_CUDA_SOURCE"].value
    module = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                  and getattr(node.func, "attr", None) == "RawModule")
    arguments = {keyword.arg: ast.literal_eval(keyword.value) for keyword in module.keywords
                 if keyword.arg in ("options", "name_expressions")}
    return source, tuple(arguments.get("options", ())), list(arguments["name_expressions"])


def _write_unit(path):
    """The backend's source, its name expressions instantiated, written to ``path`` as a
    CUDA unit; returns the RawModule's ``(options, name_expressions)``."""
    source, options, names = _backend_cuda()
    # NVRTC instantiates a name expression by taking its address; so does this.
    instances = ", ".join(f"(void*)&{name}" for name in names)
    path.write_text(f"{source}\nvoid* fastblur_instances[] = {{{instances}}};\n")
    return options, names


def _entries(ptx):
    """``{mangled name: body}`` of the ``.entry`` functions in ``ptx``."""
    parts = re.split(r"^\.visible \.entry (\w+)\(", ptx, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.fixture(scope="module")
def ptx(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cuda_source")
    unit = folder / "accumulate.cu"
    options, _ = _write_unit(unit)
    results = {}
    for arch in ("sm_80", "sm_90"):
        out = folder / f"accumulate_{arch}.ptx"
        command = [NVCC, f"-arch={arch}", "-ptx", "-Werror", "all-warnings", *options, str(unit), "-o", str(out)]
        run = subprocess.run(command, capture_output=True, text=True)
        assert run.returncode == 0, f"{' '.join(command)}\n{run.stdout}\n{run.stderr}"
        assert "warning" not in run.stderr.lower(), run.stderr
        results[arch] = out.read_text()
    return results


KERNELS = ["accumulate_weighted", "blur_masked_taps"]


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_both_instantiations_compile(ptx, arch, kernel):
    entries = _entries(ptx[arch])
    names = sorted(name for name in entries if kernel in name)
    assert len(names) == 2, names
    assert any("IfE" in name for name in names) and any("IdE" in name for name in names), names


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_float_instantiation_has_no_float64_arithmetic(ptx, arch, kernel):
    entries = _entries(ptx[arch])
    body = next(body for name, body in entries.items() if f"{kernel}IfE" in name)
    # `.f64` is a float64 type suffix (abs.f64, cvt.f64.f32, .param .f64); `%fd` a float64
    # register. (`%f64` is merely the 64th float32 register.)
    assert not re.search(r"\.f64\b", body), [line for line in body.splitlines() if ".f64" in line][:5]
    assert "%fd" not in body
    double = next(body for name, body in entries.items() if f"{kernel}IdE" in name)
    assert re.search(r"\bfma\.rn\.f64\b", double)  # the check above can see float64 work


def test_direct_kernel_keeps_its_accumulators_in_registers(ptx):
    """The four-channel accumulators are indexed by unrolled constants: no local memory
    (a spill would be ``.local`` loads and stores in the loop over taps)."""
    body = next(body for name, body in _entries(ptx["sm_90"]).items() if "blur_masked_tapsIfE" in name)
    assert ".local" not in body and "ld.local" not in body


def test_no_kernel_spills_registers_on_sm90(tmp_path):
    """ptxas, not PTX, decides spills: every kernel assembled for sm_90 has no stack frame
    and no spill stores or loads (local-memory traffic inside the loop over taps)."""
    unit = tmp_path / "kernels.cu"
    options, names = _write_unit(unit)
    command = [NVCC, "-arch=sm_90", "-cubin", "--resource-usage", *options, str(unit), "-o", str(tmp_path / "k.cubin")]
    run = subprocess.run(command, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = run.stdout + run.stderr
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", report)
    assert len(frames) == len(names), report
    assert all(values == ("0", "0", "0") for values in frames), report
