"""The native grid routine of projective_blur (``NativeBackend.blur_grid_valid``).

References: ``blur_masked`` from its definition (float64) with the hat-weight maps
written out, and projective_blur's generic path (blur_masked per tile, on numpy and on
the native backend). Every forced instruction-set level runs in a child interpreter.
"""
import numpy as np
import pytest

import fastblur
from fastblur import projective
from conftest import TOLERANCE
from reference import reference_blur_masked, relative_error
from test_projective import BOUNDARIES, natural, shake
from test_simd_dispatch import _child

pytestmark = pytest.mark.skipif(fastblur.backend_info()["native"] != "available",
                                reason=f"native backend unavailable: {fastblur.backend_info()['native']}")


def _grid():
    from fastblur.backends import get_backend

    return get_backend("native").blur_grid_valid


def hat_maps(nodes, length):
    """``max(0, 1 - |v - node| / step)`` of every node at v = 0..length-1 (1 for one node)."""
    if len(nodes) == 1:
        return np.ones((1, length))
    v = np.arange(length, dtype=np.float64)
    return np.maximum(0.0, 1.0 - np.abs(v[None, :] - nodes[:, None]) / (nodes[1] - nodes[0]))


def reference_grid(image, kernels, node_rows, node_cols):
    """sum_{j,i} hat_y[j] hat_x[i] (kernels[j, i] * image), valid mode, float64."""
    ny, nx, kh, kw = kernels.shape
    out_h, out_w = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    wy, wx = hat_maps(node_rows, out_h), hat_maps(node_cols, out_w)
    weights = (wy[:, None, :, None] * wx[None, :, None, :]).reshape(ny * nx, out_h, out_w)
    return reference_blur_masked(image, kernels.reshape(ny * nx, kh, kw), weights, "valid", "reflect")


def grid_case(rng, shape, kernel_shape, nodes, dtype, beyond=False):
    """Image (H, W, C), sparse kernels (ny, nx, kh, kw) with empty rows and one empty
    kernel, and evenly spaced fractional node positions over the output (or past it)."""
    ny, nx = nodes
    kh, kw = kernel_shape
    image = rng.standard_normal(shape).astype(dtype)
    kernels = rng.random((ny, nx, kh, kw)) * (rng.random((ny, nx, kh, kw)) < 0.3)
    kernels[:, :, kh // 2] = 0.0  # an empty row inside the taps' span
    kernels[..., 0, 0] += 0.05
    kernels[0, -1] = 0.0  # a node without taps
    out_h, out_w = shape[0] - kh + 1, shape[1] - kw + 1

    def positions(count, length):
        if count == 1:
            return np.array([rng.uniform(0, length - 1)])
        first, last = (-1.7, length + 0.6) if beyond else (0.0, length - 1.0)
        return np.linspace(first, last, count)

    return image, kernels.astype(dtype), positions(ny, out_h), positions(nx, out_w)


CASES = {  # name: (image shape, kernel shape, (ny, nx), dtype, nodes past the output)
    "3d_odd_f32": ((41, 157, 3), (7, 5), (4, 9), np.float32, False),
    "3d_even_f64": ((38, 120, 3), (6, 8), (3, 5), np.float64, True),
    "2d_odd_f64": ((45, 203, 1), (9, 9), (5, 12), np.float64, False),
    "2d_even_f32": ((30, 300, 1), (4, 6), (2, 30), np.float32, True),
    "one_node_row_f32": ((33, 140, 3), (5, 7), (1, 6), np.float32, False),
    "one_node_column_f64": ((52, 90, 2), (8, 3), (6, 1), np.float64, False),
    "one_node_f32": ((20, 64, 4), (3, 3), (1, 1), np.float32, False),
    "dense_grid_f32": ((36, 130, 3), (5, 5), (32, 126), np.float32, False),  # 1 px cells
}


@pytest.fixture(scope="module")
def grid_cases():
    rng = np.random.default_rng(20261130)
    return {name: grid_case(rng, *spec) for name, spec in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_grid_matches_blur_masked_with_hat_maps(name, grid_cases):
    image, kernels, node_rows, node_cols = grid_cases[name]
    out = _grid()(image, kernels, node_rows, node_cols)
    expected = reference_grid(image, kernels, node_rows, node_cols)
    assert out.dtype == image.dtype and out.shape == expected.shape
    assert relative_error(out, expected) <= TOLERANCE[image.dtype]


def test_grid_threads_give_the_same_bytes(grid_cases):
    from fastblur.backends.native_backend import NativeBackend

    image, kernels, node_rows, node_cols = grid_cases["3d_odd_f32"]
    one = NativeBackend(threads=lambda: 1).blur_grid_valid(image, kernels, node_rows, node_cols)
    four = NativeBackend(threads=lambda: 4).blur_grid_valid(image, kernels, node_rows, node_cols)
    np.testing.assert_array_equal(one, four)


@pytest.mark.parametrize("change, match", [
    (lambda a: (a[0][..., 0], *a[1:]), "image"),
    (lambda a: (a[0], a[1][0], *a[2:]), "kernels"),
    (lambda a: (a[0], a[1], a[2][:-1], a[3]), "node_rows"),
    (lambda a: (a[0], a[1], a[2], a[3][::-1].copy()), "node_cols"),
    (lambda a: (a[0], a[1], np.full_like(a[2], np.nan), a[3]), "node_rows"),
    (lambda a: (a[0][:3], *a[1:]), "fit"),
])
def test_grid_bad_arguments(change, match, grid_cases):
    args = grid_cases["3d_odd_f32"]
    with pytest.raises(ValueError, match=match):
        _grid()(*change(args))


# -- projective_blur: the native fast path against the generic path -----------------------

def _generic_native(monkeypatch, *args, **kwargs):
    """projective_blur through blur_masked per tile on the native backend."""
    with monkeypatch.context() as patch:
        patch.setattr(projective, "_native_grid", lambda: None)
        return fastblur.projective_blur(*args, backend="native", **kwargs)


@pytest.mark.parametrize("mode", ["same", "valid", "full"])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape, dtype", [((37, 50, 3), np.float32), ((44, 61), np.float64),
                                          ((36, 48), np.float32), ((41, 58, 2), np.float64)])
def test_fast_path_equals_the_generic_path(mode, boundary, shape, dtype, monkeypatch):
    image = natural(shape, dtype)
    h = shake(3, 110, image.shape, 1.5, samples=16)
    out = fastblur.projective_blur(image, h, mode=mode, boundary=boundary, tol=0.1, backend="native")
    plan = projective._Plan(projective._as_homographies(h)[1], shape[:2], mode, 0.1)
    assert len(plan.node_x) > 2 and len(plan.node_y) > 2  # the grid path, not one PSF
    atol = 2e-6 if dtype == np.float32 else 1e-12
    assert out.dtype == dtype and out.shape == fastblur.projective_blur(image, h, mode=mode, tol=0.1,
                                                                         backend="numpy").shape
    np.testing.assert_allclose(out, fastblur.projective_blur(image, h, mode=mode, boundary=boundary,
                                                             tol=0.1, backend="numpy"), rtol=0, atol=atol)
    np.testing.assert_allclose(out, _generic_native(monkeypatch, image, h, mode=mode, boundary=boundary,
                                                    tol=0.1), rtol=0, atol=atol)


def test_fast_path_bands_and_auto(monkeypatch):
    """Several bands of node rows (small BAND_ROWS), one node column, and auto = native."""
    image = natural((90, 40, 3))
    h = np.tile(np.eye(3), (20, 1, 1))  # vertical stretch: the PSF varies along y only
    h[:, 1, 1] += np.linspace(0, 0.03, len(h))
    h[:, 1, 2] += np.linspace(0, 3, len(h))
    plan = projective._Plan(projective._as_homographies(h)[1], image.shape[:2], "same", 0.1)
    assert len(plan.node_x) == 1 and len(plan.node_y) > 6
    monkeypatch.setattr(projective, "BAND_ROWS", 10)
    out = fastblur.projective_blur(image, h, tol=0.1, backend="native")
    np.testing.assert_allclose(out, _generic_native(monkeypatch, image, h, tol=0.1), rtol=0, atol=2e-6)
    np.testing.assert_array_equal(fastblur.projective_blur(image, h, tol=0.1), out)


# -- each forced SIMD level ----------------------------------------------------------------

_FORCED_CHILD = """
import sys, warnings
warnings.simplefilter("error")  # a fallback to another level fails the child
import numpy as np
import fastblur
from fastblur.backends import get_backend
data = np.load(sys.argv[1])
native = get_backend("native")
names = [key[:-len(".kernels")] for key in data.files if key.endswith(".kernels")]
out = {name: native.blur_grid_valid(*(data[f"{name}.{k}"] for k in ("image", "kernels", "rows", "cols")))
       for name in names}
out["projective"] = fastblur.projective_blur(data["projective.image"], data["projective.h"], tol=0.1,
                                             backend="native")
np.savez(sys.argv[2], variant=native.variant, **out)
"""


@pytest.mark.parametrize("level", ["sse4", "avx2", "avx512", "baseline"])
def test_forced_level_matches_references(level, grid_cases, tmp_path):
    from fastblur import _native

    runs = _native.compiled_variants[-1] if level == "baseline" else level
    if runs not in _native.cpu_variants:
        pytest.skip(f"this build or CPU does not run {level} (runs {_native.cpu_variants})")
    arrays = {}
    for name, (image, kernels, rows, cols) in grid_cases.items():
        arrays.update({f"{name}.image": image, f"{name}.kernels": kernels, f"{name}.rows": rows,
                       f"{name}.cols": cols})
    image = natural((40, 56, 3))
    h = shake(5, 120, image.shape, 1.5, samples=12)
    arrays.update({"projective.image": image, "projective.h": h})
    np.savez(tmp_path / "in.npz", **arrays)
    child = _child(_FORCED_CHILD, str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), simd=level)
    assert child.returncode == 0, child.stderr
    results = np.load(tmp_path / "out.npz")
    assert str(results["variant"]) == runs
    for name, (image_, kernels, rows, cols) in grid_cases.items():
        expected = reference_grid(image_, kernels, rows, cols)
        assert relative_error(results[name], expected) <= TOLERANCE[image_.dtype], name
    generic = fastblur.projective_blur(image, h, tol=0.1, backend="numpy")
    np.testing.assert_allclose(results["projective"], generic, rtol=0, atol=2e-6)
