"""The primitives as linear operators, with their exact adjoints (SigPy-style ``.H``).

``Convolve``, ``BlurMasked`` and ``BlurProduct`` fix the kernels, weights, image shape,
mode and boundary of :func:`fastblur.convolve`, :func:`fastblur.blur_masked` and
:func:`fastblur.blur_product`; ``A.matvec(x)`` is the primitive and ``A.rmatvec(y)`` its
adjoint (:mod:`fastblur.adjoints`). ``A.T`` (also ``A.H``: the operators are real) is
the adjoint operator and ``A @ B`` composes, so ``A.T @ A`` is the normal operator.
``A @ x`` applies ``A``. ``A.as_scipy()`` and ``A.as_pylops()`` hand the operator to
scipy's and pylops' solvers.

Vectors may be flat (``(A.shape[1],)``) or arrays of the image shape ``A.ishape``
(``(H, W)`` or ``(H, W, C)``); results take the same form. NumPy and CuPy arrays are
both accepted.

Examples
--------
>>> import numpy as np
>>> from fastblur.operators import BlurMasked
>>> rng = np.random.default_rng(0)
>>> kernels, weights = rng.random((2, 5, 5)), rng.random((2, 28, 20))
>>> A = BlurMasked(kernels, weights, image_shape=(32, 24))
>>> A.shape
(560, 768)
>>> x, y = rng.random(768), rng.random(560)
>>> bool(np.isclose(np.vdot(A @ x, y), np.vdot(x, A.T @ y), rtol=1e-12))
True
"""
import math

import numpy as np

from . import _geometry, _validation
from .adjoints import blur_masked_adjoint, blur_product_adjoint, convolve_adjoint
from .primitives import blur_masked, blur_product, convolve

__all__ = ["BlurMasked", "BlurProduct", "Convolve", "LinearOperator"]


class LinearOperator:
    """A real linear map from arrays of shape ``ishape`` to arrays of shape ``oshape``.

    Subclasses implement ``_apply(x)`` and ``_apply_adjoint(y)`` on arrays of
    ``ishape`` and ``oshape``.

    Attributes
    ----------
    ishape, oshape : tuple of int
        Shapes of the input (image) and output arrays.
    shape : tuple of int
        ``(prod(oshape), prod(ishape))``: the matrix's shape.
    dtype : numpy.dtype
        float32 or float64, the precision of the operator's kernels.
    """

    def __init__(self, ishape, oshape, dtype):
        self.ishape = tuple(int(n) for n in ishape)
        self.oshape = tuple(int(n) for n in oshape)
        self.dtype = np.dtype(dtype)

    @property
    def shape(self):
        return (math.prod(self.oshape), math.prod(self.ishape))

    def _apply(self, x):
        raise NotImplementedError

    def _apply_adjoint(self, y):
        raise NotImplementedError

    def matvec(self, x):
        """``A x`` for a flat ``(shape[1],)`` vector or an array of ``ishape``; same form out."""
        return _on_form(self._apply, x, self.ishape, self.oshape, "x")

    def rmatvec(self, y):
        """``Aᵀ y`` for a flat ``(shape[0],)`` vector or an array of ``oshape``; same form out."""
        return _on_form(self._apply_adjoint, y, self.oshape, self.ishape, "y")

    @property
    def T(self):
        """The adjoint operator ``Aᵀ``."""
        return _Adjoint(self)

    @property
    def H(self):
        """The adjoint operator (the operators are real: ``A.H`` is ``A.T``)."""
        return self.T

    def __matmul__(self, other):
        if isinstance(other, LinearOperator):
            return _Composition(self, other)
        return self.matvec(other)

    def as_scipy(self):
        """This operator as a :class:`scipy.sparse.linalg.LinearOperator` on flat vectors."""
        from scipy.sparse.linalg import LinearOperator as ScipyOperator

        def flat(function, size):
            return lambda v: function(np.asarray(v).reshape(size))

        return ScipyOperator(self.shape, matvec=flat(self.matvec, self.shape[1]),
                             rmatvec=flat(self.rmatvec, self.shape[0]), dtype=self.dtype)

    def as_pylops(self):
        """This operator as a ``pylops.LinearOperator`` (``dims = ishape``, ``dimsd = oshape``).

        Requires pylops (``pip install 'fastblur[operators]'``).
        """
        try:
            import pylops
        except ImportError as error:
            raise ImportError("as_pylops() needs pylops: pip install 'fastblur[operators]'") from error

        operator = self

        class FastblurOperator(pylops.LinearOperator):
            def __init__(self):
                super().__init__(dtype=operator.dtype, dims=operator.ishape, dimsd=operator.oshape,
                                 name=type(operator).__name__[:6])

            def _matvec(self, x):
                return operator.matvec(x.reshape(-1))

            def _rmatvec(self, y):
                return operator.rmatvec(y.reshape(-1))

        return FastblurOperator()

    def __repr__(self):
        return f"<{type(self).__name__} {self.oshape} <- {self.ishape}, {self.dtype}>"


def _on_form(function, value, in_shape, out_shape, name):
    """``function`` on an array of ``in_shape`` given flat or shaped; result in the same form."""
    array = _validation.as_numeric_array(value, name)
    if array.shape == in_shape:
        return function(array)
    if array.ndim == 1 and array.size == math.prod(in_shape):
        return function(array.reshape(in_shape)).reshape(-1)
    raise ValueError(
        f"{name} must be a flat vector of {math.prod(in_shape)} values or an array of shape "
        f"{in_shape}, got shape {array.shape}"
    )


class _Adjoint(LinearOperator):
    def __init__(self, operator):
        super().__init__(operator.oshape, operator.ishape, operator.dtype)
        self.operator = operator

    def _apply(self, x):
        return self.operator._apply_adjoint(x)

    def _apply_adjoint(self, y):
        return self.operator._apply(y)

    @property
    def T(self):
        return self.operator

    def __repr__(self):
        return f"{self.operator!r}.T"


class _Composition(LinearOperator):
    """``outer @ inner``: apply ``inner``, then ``outer``."""

    def __init__(self, outer, inner):
        if outer.ishape != inner.oshape:
            raise ValueError(
                f"cannot compose: the left operator takes arrays of shape {outer.ishape}, the "
                f"right one gives {inner.oshape}"
            )
        super().__init__(inner.ishape, outer.oshape, np.promote_types(outer.dtype, inner.dtype))
        self.outer, self.inner = outer, inner

    def _apply(self, x):
        return self.outer._apply(self.inner._apply(x))

    def _apply_adjoint(self, y):
        return self.inner._apply_adjoint(self.outer._apply_adjoint(y))

    def __repr__(self):
        return f"({self.outer!r} @ {self.inner!r})"


class _Primitive(LinearOperator):
    """A primitive with its kernels, weights, mode and boundary fixed."""

    def __init__(self, image_shape, kernel_hw, mode, boundary, backend, dtype):
        image_shape = _validation.check_image_shape(image_shape, channels=True)
        _validation.check_mode(mode)
        _validation.check_boundary(boundary)
        _validation.check_fits(image_shape[:2], kernel_hw, mode, "kernels")
        self.mode, self.boundary, self.backend = mode, boundary, backend
        output_hw = _geometry.output_shape(image_shape[:2], kernel_hw, mode)
        super().__init__(image_shape, output_hw + image_shape[2:], dtype)

    def _options(self):
        return dict(mode=self.mode, boundary=self.boundary, backend=self.backend)


def _kernel_dtype(array):
    return _validation.working_dtype(_validation.as_numeric_array(array, "kernels"))


class Convolve(_Primitive):
    """``x ↦ fastblur.convolve(x, kernel, mode, boundary)`` as a linear operator.

    Parameters
    ----------
    kernel : array_like, shape (kh, kw)
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``.
    mode : {'same', 'full', 'valid'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.convolve`; an ``image_shape`` that is not 2 or 3 positive
        integers.
    """

    def __init__(self, kernel, image_shape, mode="same", boundary="reflect", backend="auto"):
        dtype = _kernel_dtype(kernel)
        self.kernel = _validation.as_kernel(kernel, dtype)
        super().__init__(image_shape, self.kernel.shape, mode, boundary, backend, dtype)

    def _apply(self, x):
        return convolve(x, self.kernel, **self._options())

    def _apply_adjoint(self, y):
        return convolve_adjoint(y, self.kernel, **self._options())


class BlurMasked(_Primitive):
    """``x ↦ fastblur.blur_masked(x, kernels, weights, mode, boundary)`` (gather form, SBDD).

    Parameters
    ----------
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, Ho, Wo)
        On the output grid of ``mode``.
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_masked`.
    """

    _forward, _adjoint = staticmethod(blur_masked), staticmethod(blur_masked_adjoint)
    _grid = "output"

    def __init__(self, kernels, weights, image_shape, mode="valid", boundary="reflect", backend="auto"):
        dtype = _kernel_dtype(kernels)
        self.kernels = _validation.as_kernel_stack(kernels, dtype)
        super().__init__(image_shape, self.kernels.shape[1:], mode, boundary, backend, dtype)
        grid_hw = self.oshape[:2] if self._grid == "output" else self.ishape[:2]
        self.weights = _validation.as_weights(weights, len(self.kernels), grid_hw, dtype, grid=self._grid)

    def _apply(self, x):
        return self._forward(x, self.kernels, self.weights, **self._options())

    def _apply_adjoint(self, y):
        return self._adjoint(y, self.kernels, self.weights, **self._options())


class BlurProduct(BlurMasked):
    """``x ↦ fastblur.blur_product(x, kernels, weights, mode, boundary)`` (scatter form).

    Parameters
    ----------
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, H, W)
        On the input grid.
    image_shape : tuple of int
        ``(H, W)`` or ``(H, W, C)``.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_product`.
    """

    _forward, _adjoint = staticmethod(blur_product), staticmethod(blur_product_adjoint)
    _grid = "input"
