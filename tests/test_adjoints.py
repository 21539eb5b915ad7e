"""The adjoints of the primitives: dot tests on every backend, and the transpose of the
independent reference's dense matrix on tiny sizes."""
import itertools

import numpy as np
import pytest

import fastblur
from fastblur.adjoints import fold
from reference import extend_for_mode, reference_blur_masked, reference_blur_product, reference_convolve

MODES = ("full", "same", "valid")
BOUNDARIES = ("constant", "edge", "reflect", "symmetric", "wrap")
#: Dot-test tolerance, relative to <Ax, y>, for each working precision.
DOT_TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}


def _output_hw(image_hw, kernel_hw, mode):
    if mode == "full":
        return tuple(n + k - 1 for n, k in zip(image_hw, kernel_hw))
    if mode == "same":
        return tuple(image_hw)
    return tuple(n - k + 1 for n, k in zip(image_hw, kernel_hw))


def _weights(rng, count, hw, dtype):
    """Weights in [0, 1] with an exact-zero band per kernel (so that skipping happens), and
    the last kernel's non-zero on a small box only (an SBDD object: cropped adjoints)."""
    weights = rng.random((count,) + hw)
    for i, w in enumerate(weights):
        w[i * hw[0] // (2 * count) : (i + 1) * hw[0] // (2 * count) + 1] = 0
    box = np.zeros(hw, bool)
    box[hw[0] // 3 : hw[0] // 3 + max(1, hw[0] // 3), 1 : 1 + max(1, hw[1] // 2)] = True
    weights[-1][~box] = 0
    return weights.astype(dtype)


def _kernels(rng, shape, dtype):
    """Random kernels, the first with zero outer taps (trimmed by the adjoints)."""
    kernels = rng.random(shape)
    if shape[-2] > 2 and shape[-1] > 2:
        kernels[0, 0], kernels[0, :, -1] = 0, 0
    return kernels.astype(dtype)


def _problem(operation, rng, image_shape, kernel_hw, mode, dtype, count=3):
    """``(forward(x), adjoint(y), x, y_shape)`` closures for one operator."""
    image_hw = image_shape[:2]
    out_hw = _output_hw(image_hw, kernel_hw, mode)
    if operation == "convolve":
        kernel = _kernels(rng, (1,) + kernel_hw, dtype)[0]
        return (lambda x, **o: fastblur.convolve(x, kernel, **o),
                lambda y, **o: fastblur.convolve_adjoint(y, kernel, **o), out_hw)
    kernels = _kernels(rng, (count,) + kernel_hw, dtype)
    if operation == "blur_masked":
        weights = _weights(rng, count, out_hw, dtype)
        return (lambda x, **o: fastblur.blur_masked(x, kernels, weights, **o),
                lambda y, **o: fastblur.blur_masked_adjoint(y, kernels, weights, **o), out_hw)
    weights = _weights(rng, count, image_hw, dtype)
    return (lambda x, **o: fastblur.blur_product(x, kernels, weights, **o),
            lambda y, **o: fastblur.blur_product_adjoint(y, kernels, weights, **o), out_hw)


#: (image shape, kernel shape): 2-D with an odd kernel, 3-D with an even one, and a
#: kernel longer than the image along one axis (several reflections; not in valid mode).
CASES = [((23, 19), (5, 3)), ((17, 22, 2), (4, 6)), ((6, 21), (9, 4))]


@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_dot_test(backend, operation, mode, boundary, rng):
    """<A x, y> = <x, Aᵀ y> on every backend, float64 to 1e-10 and float32 to 1e-5."""
    for dtype, (image_shape, kernel_hw) in itertools.product((np.float64, np.float32), CASES):
        if mode == "valid" and any(k > n for k, n in zip(kernel_hw, image_shape)):
            continue
        forward, adjoint, out_hw = _problem(operation, rng, image_shape, kernel_hw, mode, dtype)
        x = rng.random(image_shape).astype(dtype)
        y = rng.random(out_hw + image_shape[2:]).astype(dtype)
        options = dict(mode=mode, boundary=boundary, backend=backend)
        ax, aty = forward(x, **options), adjoint(y, **options)
        assert ax.shape == y.shape and aty.shape == x.shape
        assert ax.dtype == aty.dtype == dtype
        left = np.vdot(ax.astype(np.float64), y.astype(np.float64))
        right = np.vdot(x.astype(np.float64), aty.astype(np.float64))
        assert abs(left - right) <= DOT_TOLERANCE[dtype] * abs(left), (dtype, image_shape, kernel_hw)


def _dense(function, in_shape):
    """The matrix of a linear ``function`` of arrays of ``in_shape``, column by column."""
    size = int(np.prod(in_shape))
    columns = []
    for j in range(size):
        unit = np.zeros(size)
        unit[j] = 1
        columns.append(np.asarray(function(unit.reshape(in_shape)), np.float64).ravel())
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_adjoint_is_the_transpose_of_the_reference_matrix(operation, mode, boundary, rng):
    """Signed data: the adjoint's dense matrix equals the transpose of the independent
    float64 reference's, odd and even kernels, one longer than the image (pads > size)."""
    image_shape = (5, 4, 2)
    for kernel_hw in [(3, 2), (2, 5), (7, 3)] if mode != "valid" else [(3, 2), (2, 3)]:
        out_hw = _output_hw(image_shape[:2], kernel_hw, mode)
        kernels = rng.standard_normal((2,) + kernel_hw)
        if operation == "convolve":
            reference = lambda x: reference_convolve(x, kernels[0], mode, boundary)  # noqa: E731
            adjoint = lambda y: fastblur.convolve_adjoint(y, kernels[0], mode, boundary)  # noqa: E731
        elif operation == "blur_masked":
            weights = rng.standard_normal((2,) + out_hw)
            weights[1, : out_hw[0] // 2], weights[1, :, : out_hw[1] // 2] = 0, 0  # a small box
            reference = lambda x: reference_blur_masked(x, kernels, weights, mode, boundary)  # noqa: E731
            adjoint = lambda y: fastblur.blur_masked_adjoint(y, kernels, weights, mode, boundary)  # noqa: E731
        else:
            weights = rng.standard_normal((2,) + image_shape[:2])
            weights[1, :2], weights[1, :, :2] = 0, 0
            reference = lambda x: reference_blur_product(x, kernels, weights, mode, boundary)  # noqa: E731
            adjoint = lambda y: fastblur.blur_product_adjoint(y, kernels, weights, mode, boundary)  # noqa: E731
        matrix = _dense(reference, image_shape)
        transpose = _dense(adjoint, out_hw + image_shape[2:])
        np.testing.assert_allclose(transpose, matrix.T, rtol=0, atol=1e-12 * np.abs(matrix).max())


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("first_axis", [0, 1])
def test_fold_is_the_adjoint_of_the_extension(boundary, first_axis, rng):
    """fold against the transpose of numpy.pad's matrix, pads longer than the axis too."""
    for image_hw, kernel_hw, mode in [((4, 3), (9, 2), "full"), ((5, 6), (4, 3), "same"), ((2, 1), (6, 5), "same")]:
        lead = (2,) * first_axis
        shape = lead + image_hw + (3,)
        matrix = _dense(lambda x: extend_for_mode(x, kernel_hw, mode, boundary)
                        if first_axis == 0 else np.stack([extend_for_mode(v, kernel_hw, mode, boundary) for v in x]),
                        shape)
        extended_hw = tuple(n + sum(w) for n, w in zip(image_hw, _widths(kernel_hw, mode)))
        out_shape = lead + extended_hw + (3,)
        transpose = _dense(lambda z: fold(z, image_hw, kernel_hw, mode, boundary, first_axis), out_shape)
        np.testing.assert_array_equal(transpose, matrix.T)


def _widths(kernel_hw, mode):
    if mode == "full":
        return [(k - 1, k - 1) for k in kernel_hw]
    return [(k // 2, (k - 1) // 2) for k in kernel_hw]


def test_valid_fold_is_the_identity(rng):
    z = rng.random((5, 4))
    assert fold(z, (5, 4), (3, 3), "valid", "reflect") is z


@pytest.mark.parametrize("shape", [(40, 33), (37, 30, 3)])
def test_cropped_scatter_equals_the_full_blur_product(backend, shape, rng):
    """The adjoint's scatter (one group on the grid, objects on their boxes, placed by
    offset) equals ``blur_product`` in ``full`` mode on the whole grid, float64 to 1e-10;
    two large maps, an all-zero map, objects and trimmed kernels of both parities."""
    from fastblur.adjoints import _scatter_full

    hw = shape[:2]
    for kernel_hw, trim_all in (((7, 6), False), ((5, 9), True)):
        kernels = _kernels(rng, (5,) + kernel_hw, np.float64)
        kernels[2, :, :2] = 0
        if trim_all:  # the whole-grid group's kernels trimmed too: its output is offset
            kernels[:, 0], kernels[:, :, 0], kernels[:, -2:] = 0, 0, 0
        weights = rng.random((5,) + hw)
        weights[1, :4] = 0  # large, with a zero band
        weights[2] = 0
        weights[2, 3:9, 20:28] = rng.random((6, 8))
        weights[3] = 0
        weights[4, :, :] = 0
        weights[4, -5:, :3] = 1.5
        y = rng.random(shape)
        y3d = y if y.ndim == 3 else y[..., None]
        got = _scatter_full(y3d, kernels, weights, backend)
        expected = fastblur.blur_product(y3d, kernels, weights, mode="full", boundary="constant",
                                         backend=backend)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10 * np.abs(expected).max())


def test_dtype_rules(rng):
    """float32 and float64 keep their precision, integers compute in float32; kernels and
    weights take y's precision."""
    kernels = rng.random((2, 3, 3))
    y64 = rng.random((8, 7))
    assert fastblur.convolve_adjoint(y64, kernels[0]).dtype == np.float64
    assert fastblur.convolve_adjoint(y64.astype(np.float32), kernels[0]).dtype == np.float32
    assert fastblur.convolve_adjoint(np.ones((8, 7), np.uint8), kernels[0]).dtype == np.float32
    weights = rng.random((2, 8, 7)).astype(np.float32)
    assert fastblur.blur_masked_adjoint(y64, kernels, weights).dtype == np.float64
    assert fastblur.blur_masked_adjoint(y64, kernels, weights).shape == (10, 9)
    assert fastblur.blur_product_adjoint(np.ones((6, 5), np.int16), kernels, weights).dtype == np.float32


def test_shapes_follow_the_mode(rng):
    kernel = rng.random((4, 3))
    assert fastblur.convolve_adjoint(rng.random((10, 9, 2)), kernel, "full").shape == (7, 7, 2)
    assert fastblur.convolve_adjoint(rng.random((10, 9, 2)), kernel, "same").shape == (10, 9, 2)
    assert fastblur.convolve_adjoint(rng.random((10, 9, 2)), kernel, "valid").shape == (13, 11, 2)


def test_torch_tensors_pass_through(rng):
    torch = pytest.importorskip("torch")
    y, kernel = rng.random((9, 8, 3)), rng.random((3, 4))
    result = fastblur.convolve_adjoint(torch.from_numpy(y), torch.from_numpy(kernel), "full", "wrap")
    assert isinstance(result, torch.Tensor)
    np.testing.assert_array_equal(result.numpy(), fastblur.convolve_adjoint(y, kernel, "full", "wrap"))


@pytest.mark.parametrize("call, error, match", [
    (lambda: fastblur.convolve_adjoint("y", np.ones((3, 3))), TypeError, "y must be a numeric array"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4), complex), np.ones((3, 3))), TypeError, "y must be real"),
    (lambda: fastblur.convolve_adjoint(np.ones(4), np.ones((3, 3))), ValueError, "y must be 2-D"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4)), np.ones(3)), ValueError, "kernel must be 2-D"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4)), np.ones((3, 3)), "middle"), ValueError, "mode must be"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4)), np.ones((3, 3)), boundary="mirror"), ValueError,
     "boundary must be"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4)), np.ones((3, 3)), backend=3), TypeError, "backend"),
    (lambda: fastblur.convolve_adjoint(np.ones((2, 4)), np.ones((3, 3)), "full"), ValueError,
     "y of spatial shape"),
    (lambda: fastblur.convolve_adjoint(np.ones((4, 4)), [[np.nan]]), ValueError, "kernel must be finite"),
    (lambda: fastblur.blur_masked_adjoint(np.ones((4, 4)), np.ones((2, 3, 3)), np.ones((2, 5, 4))),
     ValueError, "y must have the forward's output shape"),
    (lambda: fastblur.blur_masked_adjoint(np.ones((4, 4)), np.ones((2, 3, 3)), np.ones((3, 4, 4))),
     ValueError, "weights must have shape"),
    (lambda: fastblur.blur_masked_adjoint(np.ones((4, 4)), np.ones((2, 3, 3)), "w"), TypeError, "weights"),
    (lambda: fastblur.blur_product_adjoint(np.ones((4, 4)), np.ones((2, 3, 3)), np.ones((2, 4, 4))),
     ValueError, "y must have the forward's output shape"),
    (lambda: fastblur.blur_product_adjoint(np.ones((2, 2)), np.ones((2, 3, 3)), np.ones((2, 4, 4)), "same"),
     ValueError, "y must have the forward's output shape"),
    (lambda: fastblur.blur_product_adjoint(np.ones((2, 2)), np.ones((2, 3, 3)), np.ones((2, 2, 2))),
     ValueError, "larger than the image"),
    (lambda: fastblur.blur_product_adjoint(np.ones((2, 2)), np.ones((2, 3, 3)), np.full((2, 4, 4), np.inf)),
     ValueError, "weights must be finite"),
])
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()
