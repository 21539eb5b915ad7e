"""fastblur.operators: matvec is the primitive, rmatvec its adjoint, in every form; scipy
and pylops wrappers; and the README's non-blind deconvolution example."""
import numpy as np
import pytest
import scipy.sparse.linalg

import fastblur
from conftest import needs_readme, run_readme_example
from fastblur.operators import BlurMasked, BlurProduct, Convolve, LinearOperator


def _operators(rng, image_shape=(21, 18, 2), mode="same", boundary="symmetric"):
    """One of each operator with its forward and adjoint primitive (float64)."""
    kernels = rng.random((3, 5, 4))
    out_hw = {"same": image_shape[:2], "valid": (17, 15), "full": (25, 21)}[mode]
    masked_weights = rng.random((3,) + out_hw)
    product_weights = rng.random((3,) + image_shape[:2])
    options = dict(mode=mode, boundary=boundary)
    return [
        (Convolve(kernels[0], image_shape, **options),
         lambda x: fastblur.convolve(x, kernels[0], **options),
         lambda y: fastblur.convolve_adjoint(y, kernels[0], **options)),
        (BlurMasked(kernels, masked_weights, image_shape, **options),
         lambda x: fastblur.blur_masked(x, kernels, masked_weights, **options),
         lambda y: fastblur.blur_masked_adjoint(y, kernels, masked_weights, **options)),
        (BlurProduct(kernels, product_weights, image_shape, **options),
         lambda x: fastblur.blur_product(x, kernels, product_weights, **options),
         lambda y: fastblur.blur_product_adjoint(y, kernels, product_weights, **options)),
    ]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_matvec_is_the_primitive_in_both_forms(mode, rng):
    for operator, forward, adjoint in _operators(rng, mode=mode):
        x = rng.random(operator.ishape)
        y = rng.random(operator.oshape)
        assert operator.shape == (y.size, x.size)
        np.testing.assert_array_equal(operator.matvec(x), forward(x))
        np.testing.assert_array_equal(operator.matvec(x.ravel()), forward(x).ravel())
        np.testing.assert_array_equal(operator @ x, forward(x))
        np.testing.assert_array_equal(operator.rmatvec(y), adjoint(y))
        np.testing.assert_array_equal(operator.rmatvec(y.ravel()), adjoint(y).ravel())
        np.testing.assert_array_equal(operator.T @ y, adjoint(y))
        np.testing.assert_array_equal(operator.H.matvec(y.ravel()), adjoint(y).ravel())
        assert operator.T.shape == operator.shape[::-1]
        assert operator.T.T is operator


def test_composition_is_the_product(rng):
    for operator, forward, adjoint in _operators(rng, image_shape=(21, 18)):
        x = rng.random(operator.ishape)
        normal = operator.T @ operator
        assert normal.shape == (x.size, x.size)
        np.testing.assert_allclose(normal @ x, adjoint(forward(x)), rtol=1e-13)
        np.testing.assert_allclose(normal.T @ x, adjoint(forward(x)), rtol=1e-13)  # symmetric
        twice = operator @ operator  # same mode: square
        np.testing.assert_allclose(twice @ x, forward(forward(x)), rtol=1e-13)
        np.testing.assert_allclose(twice.T @ x, adjoint(adjoint(x)), rtol=1e-13)
    valid = Convolve(np.ones((3, 3)), (10, 10), mode="valid")
    with pytest.raises(ValueError, match="cannot compose"):
        valid @ valid


def test_as_scipy(rng):
    for operator, forward, adjoint in _operators(rng, mode="valid", boundary="wrap"):
        wrapped = operator.as_scipy()
        assert isinstance(wrapped, scipy.sparse.linalg.LinearOperator)
        assert wrapped.shape == operator.shape and wrapped.dtype == np.float64
        x, y = rng.random(operator.shape[1]), rng.random(operator.shape[0])
        np.testing.assert_array_equal(wrapped @ x, forward(x.reshape(operator.ishape)).ravel())
        np.testing.assert_array_equal(wrapped.rmatvec(y), adjoint(y.reshape(operator.oshape)).ravel())
        np.testing.assert_array_equal(wrapped.H @ y[:, None], adjoint(y.reshape(operator.oshape)).reshape(-1, 1))
        assert np.isclose(np.vdot(wrapped @ x, y), np.vdot(x, wrapped.H @ y), rtol=1e-12)


def test_as_pylops(rng):
    pylops = pytest.importorskip("pylops")
    for operator, forward, adjoint in _operators(rng, mode="full", boundary="edge"):
        wrapped = operator.as_pylops()
        assert isinstance(wrapped, pylops.LinearOperator)
        assert tuple(wrapped.dims) == operator.ishape and tuple(wrapped.dimsd) == operator.oshape
        x, y = rng.random(operator.shape[1]), rng.random(operator.shape[0])
        np.testing.assert_array_equal(wrapped @ x, forward(x.reshape(operator.ishape)).ravel())
        np.testing.assert_array_equal(wrapped.H @ y, adjoint(y.reshape(operator.oshape)).ravel())
        assert pylops.utils.dottest(wrapped, *wrapped.shape, rtol=1e-10)


def test_float32_operators(rng):
    kernels = rng.random((2, 3, 3), dtype=np.float32)
    operator = BlurMasked(kernels, rng.random((2, 8, 8), dtype=np.float32), (10, 10))
    assert operator.dtype == np.float32 and operator.as_scipy().dtype == np.float32
    x = rng.random((10, 10), dtype=np.float32)
    assert operator.matvec(x).dtype == np.float32
    assert operator.matvec(x.astype(np.float64)).dtype == np.float64  # as the primitive


def test_a_subclass_defines_two_methods():
    class Scale(LinearOperator):
        def _apply(self, x):
            return 2 * x

        def _apply_adjoint(self, y):
            return 2 * y

    scale = Scale((3, 2), (3, 2), np.float64)
    np.testing.assert_array_equal((scale.T @ scale) @ np.ones(6), np.full(6, 4.0))


@pytest.mark.parametrize("call, error, match", [
    (lambda: Convolve(np.ones((3, 3)), 5), TypeError, "image_shape must be a tuple"),
    (lambda: Convolve(np.ones((3, 3)), (5,)), ValueError, "image_shape must be"),
    (lambda: Convolve(np.ones((3, 3)), (5, 0)), ValueError, "positive"),
    (lambda: Convolve(np.ones((3, 3)), (5, 5.0)), TypeError, "integers"),
    (lambda: Convolve(np.ones((3, 3)), (2, 5), mode="valid"), ValueError, "larger than the image"),
    (lambda: Convolve(np.ones((3, 3)), (5, 5), mode="nearest"), ValueError, "mode must be"),
    (lambda: Convolve(np.ones(3), (5, 5)), ValueError, "kernel must be 2-D"),
    (lambda: BlurMasked(np.ones((2, 3, 3)), np.ones((2, 5, 5)), (5, 5)), ValueError, "output grid"),
    (lambda: BlurProduct(np.ones((2, 3, 3)), np.ones((2, 3, 3)), (5, 5)), ValueError, "input grid"),
    (lambda: Convolve(np.ones((3, 3)), (5, 5)).matvec(np.ones(24)), ValueError, "x must be a flat vector"),
    (lambda: Convolve(np.ones((3, 3)), (5, 5)).rmatvec(np.ones((5, 4))), ValueError, "y must be"),
    (lambda: Convolve(np.ones((3, 3)), (5, 5)).matvec("x"), TypeError, "x must be a numeric array"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_numpy_integers_are_sizes():
    operator = Convolve(np.ones((3, 3)), (np.int64(6), np.int32(5)))
    assert operator.ishape == (6, 5) and isinstance(operator.shape[0], int)


@needs_readme
def test_readme_deconvolution_example_runs():
    """The README's non-blind deconvolution example: lsqr gains at least 3 dB."""
    _, namespace = run_readme_example("## Linear operators and gradients")
    assert namespace["after"] > namespace["before"] + 3
