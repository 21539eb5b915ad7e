"""The native extension's instruction-set levels: the choice at import and each level's results.

The level is chosen when ``fastblur._native`` loads (``FASTBLUR_SIMD`` forces one), so
every forced level runs in a child interpreter; the parent compares its results with
float64 references at the conformance tolerances.
"""
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastblur
from conftest import PACKAGE_ROOT, TOLERANCE
from inputs import region_weights
from reference import (reference_blur_masked, reference_blur_product, reference_convolve,
                       reference_smooth_masks, relative_error)

pytestmark = pytest.mark.skipif(fastblur.backend_info()["native"] != "available",
                                reason=f"native backend unavailable: {fastblur.backend_info()['native']}")

#: Vector width of each level's inner loops.
LEVEL_BYTES = {"sse4": 16, "avx2": 32, "avx512": 64}


def _native():
    from fastblur import _native

    return _native


def _child(code, *args, simd=None):
    """Run ``code`` in a fresh interpreter with FASTBLUR_SIMD=simd (unset if None)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("FASTBLUR_SIMD", None)
    if simd is not None:
        env["FASTBLUR_SIMD"] = simd
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=PACKAGE_ROOT,
                          capture_output=True, text=True, timeout=300)


# -- the rule ----------------------------------------------------------------------------
X86 = ("avx512", "avx2", "sse4")


@pytest.mark.parametrize("requested, runnable, expected", [
    ("", X86, "avx512"),
    ("auto", X86, "avx512"),
    ("avx2", X86, "avx2"),
    (" SSE4\n", X86, "sse4"),  # case and surrounding space do not matter
    ("baseline", X86, "sse4"),  # the lowest compiled level
    ("", ("avx2", "sse4"), "avx2"),
    ("sse4", ("avx2", "sse4"), "sse4"),
])
def test_choice_without_warning(requested, runnable, expected):
    assert _native()._choose_variant(requested, X86, runnable) == (expected, "")


@pytest.mark.parametrize("requested, compiled, runnable, expected, reason", [
    ("avx512", X86, ("avx2", "sse4"), "avx2", "this CPU cannot run the avx512 kernels"),
    ("avx2", X86, ("sse4",), "sse4", "this CPU cannot run the avx2 kernels"),
    ("avx2", ("baseline",), ("baseline",), "baseline", "this build has no avx2 kernels (it has baseline)"),
    ("sse4", ("native",), ("native",), "native", "this build has no sse4 kernels (it has native)"),
])
def test_missing_level_falls_back_with_a_warning(requested, compiled, runnable, expected, reason):
    level, warning = _native()._choose_variant(requested, compiled, runnable)
    assert level == expected
    assert warning == f"FASTBLUR_SIMD={requested}: {reason}; running the {expected} kernels"


@pytest.mark.parametrize("requested", ["avx3", "sse2", "native", "avx-512", "1"])
def test_unknown_level_is_an_error(requested):
    with pytest.raises(ValueError, match=rf"FASTBLUR_SIMD must be one of auto, avx512, avx2, sse4, baseline; got '{requested}'"):
        _native()._choose_variant(requested, X86, X86)


def test_baseline_alone_on_other_processors():
    assert _native()._choose_variant("baseline", ("baseline",), ("baseline",)) == ("baseline", "")
    assert _native()._choose_variant("", ("native",), ("native",)) == ("native", "")


# -- what this process runs -------------------------------------------------------------
def test_module_reports_the_level_it_runs():
    native = _native()
    from fastblur.backends import get_backend

    assert set(native.cpu_variants) <= set(native.compiled_variants)
    assert native.variant == native.cpu_variants[0] or "FASTBLUR_SIMD" in os.environ
    assert native.variant in native.cpu_variants
    assert get_backend("native").variant == native.variant
    assert get_backend("native").simd_bytes == native.simd_bytes
    if native.variant in LEVEL_BYTES:
        assert native.simd_bytes == LEVEL_BYTES[native.variant]
    if "sse4" in native.compiled_variants:  # the portable x86-64 build holds all three
        assert native.compiled_variants == X86
    # backend_info() keeps its values; asked for, it names the level
    assert fastblur.backend_info()["native"] == "available"
    assert fastblur.backend_info(variants=True)["native"] == f"available ({native.variant})"
    assert fastblur.backend_info(variants=True)["numpy"] == "available"
    with pytest.raises(TypeError, match="variants"):
        fastblur.backend_info(variants="yes")


# -- each forced level against float64 references ----------------------------------------
#: name: (public function, its array arguments, keyword arguments)
CASES = {
    "convolve_2d_odd_f32": ("convolve", ["image", "kernel"], {"mode": "same"}),
    "convolve_3d_even_f64": ("convolve", ["image", "kernel"], {"mode": "full", "boundary": "constant"}),
    "blur_masked_3d_f32": ("blur_masked", ["image", "kernels", "weights"], {"mode": "valid"}),
    "blur_masked_2d_f64": ("blur_masked", ["image", "kernels", "weights"], {"mode": "same"}),
    "blur_product_3d_f32": ("blur_product", ["image", "kernels", "weights"], {"mode": "same"}),
    "smooth_masks_f32": ("smooth_masks", ["object_masks", "kernels"], {"mode": "valid", "boundary": "constant"}),
}

_FORCED_CHILD = """
import json, sys, warnings
warnings.simplefilter("error")  # a fallback to another level fails the child
import numpy as np
import fastblur
from fastblur.backends import get_backend
cases = json.loads(sys.argv[1])
data = np.load(sys.argv[2])
out = {}
for name, (function, arrays, options) in cases.items():
    args = [data[f"{name}.{key}"] for key in arrays]
    out[name] = getattr(fastblur, function)(*args, backend="native", **options)
native = get_backend("native")
np.savez(sys.argv[3], variant=native.variant, simd_bytes=native.simd_bytes, **out)
"""


def _sparse_kernels(rng, count, shape, dtype):
    kernels = rng.random((count,) + shape) * (rng.random((count,) + shape) < 0.4)
    kernels[:, 0, 0] += 0.1  # never empty
    return (kernels / kernels.sum(axis=(1, 2), keepdims=True)).astype(dtype)


def _weights(rng, count, shape, dtype):
    """SBDD-like: each map 1 on a region, 0 elsewhere, soft edges; summing to one."""
    return region_weights(rng, count, shape, (15, 40)).astype(dtype)


@pytest.fixture(scope="module")
def forced_cases(tmp_path_factory):
    """Inputs (in an .npz for the children) and float64 references of CASES.

    Rows of 203 to 300 pixels cross every level's register block (128 float32 values
    for AVX-512) and leave tails of whole vectors and of single values.
    """
    rng = np.random.default_rng(20261130)
    f32, f64 = np.float32, np.float64
    inputs = {
        "convolve_2d_odd_f32": {"image": rng.standard_normal((61, 203)).astype(f32),
                                "kernel": _sparse_kernels(rng, 1, (7, 9), f32)[0]},
        "convolve_3d_even_f64": {"image": rng.standard_normal((50, 150, 3)),
                                 "kernel": _sparse_kernels(rng, 1, (6, 4), f64)[0]},
        "blur_masked_3d_f32": {"image": rng.standard_normal((64, 300, 3)).astype(f32),
                               "kernels": _sparse_kernels(rng, 4, (8, 5), f32),
                               "weights": _weights(rng, 4, (57, 296), f32)},
        "blur_masked_2d_f64": {"image": rng.standard_normal((70, 210)),
                               "kernels": _sparse_kernels(rng, 3, (9, 9), f64),
                               "weights": _weights(rng, 3, (70, 210), f64)},
        "blur_product_3d_f32": {"image": rng.standard_normal((48, 230, 3)).astype(f32),
                                "kernels": _sparse_kernels(rng, 3, (5, 7), f32),
                                "weights": _weights(rng, 3, (48, 230), f32)},
        "smooth_masks_f32": {"object_masks": np.zeros((2, 90, 260), bool),
                             "kernels": _sparse_kernels(rng, 3, (9, 6), f32)},
    }
    masks = inputs["smooth_masks_f32"]["object_masks"]
    masks[0, 10:70, 20:200] = True
    masks[1] = rng.random((90, 260)) < 0.2
    references = {}
    for name, (function, keys, options) in CASES.items():
        a = inputs[name]
        mode, boundary = options["mode"], options.get("boundary", "reflect")
        if function == "convolve":
            references[name] = reference_convolve(a["image"], a["kernel"], mode, boundary)
        elif function == "blur_masked":
            references[name] = reference_blur_masked(a["image"], a["kernels"], a["weights"], mode, boundary)
        elif function == "blur_product":
            references[name] = reference_blur_product(a["image"], a["kernels"], a["weights"], mode, boundary)
        else:
            references[name] = reference_smooth_masks(a["object_masks"], a["kernels"], mode, boundary)
    path = tmp_path_factory.mktemp("simd") / "inputs.npz"
    np.savez(path, **{f"{name}.{key}": value for name, arrays in inputs.items() for key, value in arrays.items()})
    return path, inputs, references


@pytest.mark.parametrize("level", ["sse4", "avx2", "avx512", "baseline"])
def test_forced_level_matches_float64_references(level, forced_cases, tmp_path):
    native = _native()
    runs = native.compiled_variants[-1] if level == "baseline" else level
    if runs not in native.cpu_variants:
        pytest.skip(f"this build or CPU does not run {level} (runs {native.cpu_variants})")
    inputs_path, inputs, references = forced_cases
    result_path = tmp_path / "out.npz"
    child = _child(_FORCED_CHILD, json.dumps(CASES), str(inputs_path), str(result_path), simd=level)
    assert child.returncode == 0, child.stderr
    results = np.load(result_path)
    assert str(results["variant"]) == runs
    if runs in LEVEL_BYTES:
        assert int(results["simd_bytes"]) == LEVEL_BYTES[runs]
    for name, (function, _, _) in CASES.items():
        result, expected = results[name], references[name]
        dtype = inputs[name]["kernels" if "kernels" in inputs[name] else "kernel"].dtype
        assert result.shape == expected.shape, name
        if function == "smooth_masks":  # values in [0, 1], many exactly 0
            np.testing.assert_allclose(result, expected, rtol=0, atol=2e-5, err_msg=name)
        else:
            assert relative_error(result, expected) <= TOLERANCE[dtype], name


# -- FASTBLUR_SIMD's bad values -----------------------------------------------------------
_BAD_VALUE_CHILD = """
import json
import numpy as np
import fastblur
from fastblur.backends import BackendUnavailableError, get_backend
report = {"info": fastblur.backend_info()["native"]}
try:
    import fastblur._native
except ImportError as error:
    report["import"] = str(error)
try:
    get_backend("native")
except BackendUnavailableError as error:
    report["get_backend"] = str(error)
image = np.ones((12, 12), np.float32)
report["auto"] = float(fastblur.convolve(image, np.full((3, 3), 1 / 9, np.float32)).mean())
print(json.dumps(report))
"""


def test_unknown_value_makes_the_native_backend_unavailable():
    child = _child(_BAD_VALUE_CHILD, simd="avx3")
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    message = "FASTBLUR_SIMD must be one of auto, avx512, avx2, sse4, baseline; got 'avx3'"
    assert report["import"] == message
    assert report["info"] == f"ImportError: {message}"
    assert message in report["get_backend"]
    assert report["auto"] == pytest.approx(1.0)  # the other backends still run


_LEVEL_CHILD = """
import warnings
warnings.simplefilter("always")
from fastblur import _native
print(_native.variant)
"""


def test_level_the_cpu_lacks_falls_back_with_a_warning():
    native = _native()
    missing = [level for level in LEVEL_BYTES if level not in native.cpu_variants]
    if not missing:
        pytest.skip(f"this CPU runs every level ({native.cpu_variants})")
    child = _child(_LEVEL_CHILD, simd=missing[0])
    assert child.returncode == 0, child.stderr
    assert child.stdout.split() == [native.cpu_variants[0]]
    assert f"RuntimeWarning: FASTBLUR_SIMD={missing[0]}: " in child.stderr


def test_auto_and_empty_take_the_best_level():
    for value in ("", "auto"):
        child = _child(_LEVEL_CHILD, simd=value)
        assert child.returncode == 0 and not child.stderr, child.stderr
        assert child.stdout.split() == [_native().cpu_variants[0]]


# -- the binary: no wide instructions outside their level ------------------------------------
def _function_levels(library):
    """``{demangled name: set of levels its instructions need}`` for the exported functions.

    Only exported symbols have names in the stripped module; they include every inline
    function the levels share (std::vector's), the ones the linker keeps one copy of.
    """
    symbols = []
    for line in subprocess.run(["nm", "-D", "-C", "-S", "--defined-only", library], check=True,
                               capture_output=True, text=True).stdout.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "TtWw" and int(parts[1], 16) > 0:
            symbols.append((int(parts[0], 16), int(parts[0], 16) + int(parts[1], 16), parts[3]))
    symbols.sort()
    starts = [start for start, _, _ in symbols]
    levels = {name: set() for _, _, name in symbols}
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", library], check=True,
                                 capture_output=True, text=True).stdout
    for match in re.finditer(r"^\s*([0-9a-f]+):\t(\S+)([^\n]*)", disassembly, re.M):
        address, mnemonic, operands = int(match.group(1), 16), match.group(2), match.group(3)
        index = np.searchsorted(starts, address, side="right") - 1
        if index < 0 or address >= symbols[index][1]:
            continue
        if "%zmm" in operands or re.search(r"%k[0-7]\b", operands):
            levels[symbols[index][2]].add("avx512")
        elif "%ymm" in operands or mnemonic.startswith("v"):  # VEX-encoded: AVX and above
            levels[symbols[index][2]].add("avx2")
    return levels


def test_wide_instructions_only_in_their_level():
    native = _native()
    if native.compiled_variants != X86:
        pytest.skip(f"not the portable x86-64 build ({native.compiled_variants})")
    if not (shutil.which("objdump") and shutil.which("nm")):
        pytest.skip("needs binutils (objdump, nm)")
    levels = _function_levels(native.__file__)
    assert any("fastblur::avx512::" in name and "avx512" in need for name, need in levels.items())
    assert any("fastblur::avx2::" in name and "avx2" in need for name, need in levels.items())
    for name, need in levels.items():
        if "fastblur::avx512::" in name:
            continue
        if "fastblur::avx2::" in name:
            assert "avx512" not in need, name
        else:
            assert not need, name


_QUANTIZE_CHILD = """
import sys, warnings
warnings.simplefilter("error")  # a fallback to another level fails the child
import numpy as np
from fastblur.sbdd import formation
np.save(sys.argv[2], formation.encode_8bit(np.load(sys.argv[1])))
"""


@pytest.mark.parametrize("level", ["sse4", "avx2", "avx512", "baseline"])
def test_forced_level_quantizes_as_the_float_path(level, tmp_path):
    """encode_8bit's vector loop (gathers on AVX2/AVX-512) gives the float path's codes,
    on values at and next to every code's threshold and a tail of single values."""
    from fastblur.sbdd import formation

    native = _native()
    runs = native.compiled_variants[-1] if level == "baseline" else level
    if runs not in native.cpu_variants:
        pytest.skip(f"this build or CPU does not run {level} (runs {native.cpu_variants})")
    thresholds = formation._code_table("gamma", 2.2, 7.0, True)[0][1:256].astype(np.int64)
    near = np.clip((thresholds[:, None] + np.arange(-2, 3)).reshape(-1), 0, 0x7F7FFFFF).astype(np.uint32)
    rng = np.random.default_rng(7)
    values = np.concatenate([near.view(np.float32), rng.uniform(-20, 300, 7 * 203 * 3 - len(near) + 5)])
    image = values.astype(np.float32)[: 7 * 203 * 3].reshape(1, 7, 203, 3)
    np.save(tmp_path / "in.npy", image)
    child = _child(_QUANTIZE_CHILD, str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), simd=level)
    assert child.returncode == 0, child.stderr
    expected = formation.quantize(formation.delinearize(np.clip(image, 0, 255)))
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)
