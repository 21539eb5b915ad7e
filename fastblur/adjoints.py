"""Exact adjoints of the convolution primitives: validate → full correlation → fold.

Every forward primitive is ``A = V E``: the extension ``E`` of the image for ``mode``
and ``boundary`` (:func:`fastblur._geometry.extend`) followed by a ``valid`` operation
``V``. Its adjoint is ``Aᵀ = Eᵀ Vᵀ``:

- ``Vᵀ`` of a ``valid`` convolution by ``k`` is a ``full`` convolution by the flipped
  kernel ``k[::-1, ::-1]`` with zero boundary, and the adjoint of the gather form
  ``sum_i w_i (k_i * .)`` is the scatter form ``sum_i flip(k_i) * (w_i .)`` (and the
  other way round), so ``Vᵀ`` is the public primitives run on ``y`` with ``backend=``
  passed through: every backend computes the adjoints;
- ``Eᵀ`` (:func:`fold`) adds each sample of the border back onto the image sample it
  copies (``reflect``, ``symmetric``, ``wrap``, ``edge``) and drops it for ``constant``.

Shapes follow the forward primitives: ``y`` is ``(Ho, Wo)`` or ``(Ho, Wo, C)``, the
forward's output; the result has the image's shape ``(H, W[, C])``, which ``y``'s shape,
the kernel size and ``mode`` determine. float32 and float64 keep their precision, other
numeric ``y`` are computed in float32.

The forward primitives skip a kernel where its weight is at most
:data:`fastblur.backends.ZERO_WEIGHT` (1e-7); forward and adjoint are exact adjoints of
the operator whose weights are zero there.
"""
import numpy as np

from . import _geometry, _problem, _validation
from ._array_module import get_array_module, is_cupy_array, to_numpy, torch_interop
from .backends import select_backend
from ._dispatch import run
from .primitives import blur_masked, convolve

__all__ = ["blur_masked_adjoint", "blur_product_adjoint", "convolve_adjoint", "fold"]


def input_shape(output_hw, kernel_hw, mode, name="y"):
    """Spatial shape ``(H, W)`` of the image whose ``mode`` output is ``output_hw``.

    Raises
    ------
    ValueError
        In ``full`` mode, an output smaller than the kernel (no image has it).
    """
    if mode == "full":
        if any(n < k for n, k in zip(output_hw, kernel_hw)):
            raise ValueError(
                f"{name} of spatial shape {tuple(output_hw)} cannot be a 'full' output of a "
                f"{tuple(kernel_hw)} kernel: it needs at least the kernel's size"
            )
        return tuple(n - k + 1 for n, k in zip(output_hw, kernel_hw))
    if mode == "same":
        return tuple(output_hw)
    return tuple(n + k - 1 for n, k in zip(output_hw, kernel_hw))


def _source_index(length, widths, boundary):
    """For each sample of an axis extended by ``widths``, the sample it copies."""
    return np.pad(np.arange(length), widths, mode=boundary)


def _fold_axis(array, axis, length, widths, boundary):
    """Adjoint of extending ``axis`` (of original ``length``) by ``widths``."""
    before, _ = widths
    xp = get_array_module(array)
    moved = xp.moveaxis(array, axis, 0)
    folded = moved[before : before + length]
    if boundary != "constant":
        folded = folded.copy()
        source = _source_index(length, widths, boundary)
        border = np.r_[0:before, before + length : len(source)]
        targets, group = np.unique(source[border], return_inverse=True)
        # Border samples are summed per target by a 0/1 matrix product: one call, and
        # several samples may copy the same one (edge, or pads longer than the axis).
        gather = np.zeros((len(targets), len(border)), dtype=array.dtype)
        gather[group.ravel(), np.arange(len(border))] = 1
        rows = moved[xp.asarray(border)].reshape(len(border), -1)
        sums = (xp.asarray(gather) @ rows).reshape((len(targets),) + folded.shape[1:])
        folded[xp.asarray(targets)] += sums
    return xp.moveaxis(folded, 0, axis)


def fold(extended, image_hw, kernel_hw, mode, boundary, first_axis=0):
    """Adjoint of :func:`fastblur._geometry.extend`: fold the border back onto the image.

    Parameters
    ----------
    extended : ndarray, shape (..., H + pad_h, W + pad_w, ...)
        The spatial axes are ``first_axis`` and ``first_axis + 1``.
    image_hw : tuple of int
        ``(H, W)`` of the image that was extended.
    kernel_hw : tuple of int
    mode : {'full', 'same', 'valid'}
    boundary : {'constant', 'edge', 'reflect', 'symmetric', 'wrap'}
    first_axis : int, optional

    Returns
    -------
    ndarray, shape (..., H, W, ...)
        ``<extend(x), z> = <x, fold(z)>`` for every ``x`` and ``z``; ``extended`` itself
        in ``valid`` mode.

    Examples
    --------
    >>> import numpy as np
    >>> from fastblur.adjoints import fold
    >>> fold(np.arange(5.0)[:, None], (3, 1), (3, 1), "same", "edge")[:, 0]
    array([1., 2., 7.])
    """
    widths = _geometry.pad_widths(kernel_hw, mode)
    if mode == "valid":
        return extended
    for axis, (length, pads) in enumerate(zip(image_hw, widths)):
        if sum(pads):
            extended = _fold_axis(extended, first_axis + axis, length, pads, boundary)
    return extended


#: A kernel whose weights are non-zero on a box smaller than this fraction of the grid is
#: scattered on that box alone (an SBDD object); the others go in one call on the grid.
SMALL_BOX = 0.5


def _nonzero_boxes(stack):
    """For each 2-D slice of a 3-D ``stack``, the smallest box ``(r0, r1, c0, c1)`` holding
    its non-zeros, or None; from one comparison of the whole stack."""
    nonzero = stack != 0
    rows, cols = to_numpy(nonzero.any(axis=2)), to_numpy(nonzero.any(axis=1))
    boxes = []
    for row, col in zip(rows, cols):
        r, c = np.flatnonzero(row), np.flatnonzero(col)
        boxes.append((int(r[0]), int(r[-1]) + 1, int(c[0]), int(c[-1]) + 1) if r.size else None)
    return boxes


def _union(boxes):
    return (min(b[0] for b in boxes), max(b[1] for b in boxes),
            min(b[2] for b in boxes), max(b[3] for b in boxes))


def _scatter_full(y, kernels, weights, backend):
    """``sum_i kernels[i] *full (weights[i] y)``, shape ``(Ho + kh - 1, Wo + kw - 1, C)``.

    Exactly :func:`fastblur.blur_product` in ``full`` mode with zero boundary, computed
    where it can be non-zero: a full convolution spreads each weighted pixel by the
    kernel, so the ring of ``kh - 1`` rows and ``kw - 1`` columns that ``full`` adds
    around each weight map's support costs as much as the support itself for an SBDD
    object. Each kernel is trimmed to its non-zero taps, and a kernel whose weights are
    non-zero on a small box (:data:`SMALL_BOX`) is scattered on that box alone. The
    inputs are validated already: each box goes to the backend as the ``valid`` problem
    of its zero-padded crop (:func:`_scatter_problem`), with the backend ``auto``
    picks for the first (largest) one; the whole-grid group is padded so that its result
    is the whole output, which the objects' results are added to.
    """
    xp = get_array_module(y)
    kh, kw = kernels.shape[1:]
    height, width = y.shape[:2]
    shape = (height + kh - 1, width + kw - 1, y.shape[2])
    out = None
    large, small = [], []
    for i, (box, taps) in enumerate(zip(_nonzero_boxes(weights), _nonzero_boxes(kernels))):
        if box is None or taps is None:
            continue
        area = (box[1] - box[0]) * (box[3] - box[2])
        (small if area < SMALL_BOX * height * width else large).append((i, box, taps))
    groups = ([large] if large else []) + [[item] for item in small]
    for group in groups:
        index = [i for i, _, _ in group]
        r0, r1, c0, c1 = _union([box for _, box, _ in group])
        t0, t1, s0, s1 = _union([taps for _, _, taps in group])
        reach = shape[:2] if group is large else None
        problem = _scatter_problem(y[r0:r1, c0:c1], kernels[index, t0:t1, s0:s1],
                                   weights[index, r0:r1, c0:c1], (r0 + t0, c0 + s0) if reach else None, reach)
        if backend == "auto" and not is_cupy_array(y):
            backend = select_backend(backend, problem).name  # one decision, on the largest group
        part = run(problem, backend)
        top, left = (0, 0) if reach else (r0 + t0, c0 + s0)
        where = (slice(top, top + part.shape[0]), slice(left, left + part.shape[1]))
        if out is None:
            out = _placed(part, shape, where)
        else:
            out[where] += part
    return xp.zeros(shape, y.dtype) if out is None else out


def _scatter_problem(y, kernels, weights, offset=None, reach=None):
    """The Problem of ``blur_product(y, kernels, weights, 'full', 'constant')``, validated arrays;
    with ``offset`` and ``reach``, of that result placed at ``offset`` in zeros of shape ``reach``."""
    xp = get_array_module(y)
    kh, kw = kernels.shape[1:]
    height, width = y.shape[:2]
    top, left = (kh - 1, kw - 1) if offset is None else (kh - 1 + offset[0], kw - 1 + offset[1])
    rows, cols = ((height + kh - 1, width + kw - 1) if reach is None else reach)
    inner = (slice(top, top + height), slice(left, left + width))
    padded = xp.zeros((rows + kh - 1, cols + kw - 1, y.shape[2]), y.dtype)
    padded[inner] = y
    padded_weights = xp.zeros((len(kernels),) + padded.shape[:2], weights.dtype)
    padded_weights[(slice(None),) + inner] = weights
    return _problem.Problem("blur_product", "blur_product_valid",
                            (padded, xp.ascontiguousarray(kernels), padded_weights), "full", "constant")


def _placed(part, shape, where):
    """An array of ``shape``, ``part`` at ``where`` and zeros around it."""
    xp = get_array_module(part)
    if part.shape == tuple(shape):
        return part
    out = xp.empty(shape, part.dtype)
    rows, cols = where
    out[: rows.start] = 0
    out[rows.stop :] = 0
    out[rows, : cols.start] = 0
    out[rows, cols.stop :] = 0
    out[where] = part
    return out


def _prepare(y, kernel_hw, mode, boundary):
    """``(y3d, was_2d)`` and the image's ``(H, W)``, after the shared checks."""
    _validation.check_mode(mode)
    _validation.check_boundary(boundary)
    y3d, was_2d = y
    return y3d, was_2d, input_shape(y3d.shape[:2], kernel_hw, mode)


def _check_grid(y_hw, grid_hw, name):
    """``y`` must lie on the forward's output grid, ``grid_hw``, which ``name`` implies."""
    if tuple(y_hw) != tuple(grid_hw):
        raise ValueError(
            f"y must have the forward's output shape: spatial shape {tuple(grid_hw)} for "
            f"these {name}, got {tuple(y_hw)}"
        )


def _weights_grid(weights):
    """The spatial shape of a 3-D ``weights`` stack, else None (as_weights then says why)."""
    return tuple(weights.shape[1:]) if weights.ndim == 3 else None


def _finish(out, was_2d):
    return out[:, :, 0] if was_2d else out


def _flipped(kernels):
    return get_array_module(kernels).ascontiguousarray(kernels[..., ::-1, ::-1])


@torch_interop
def convolve_adjoint(y, kernel, mode="same", boundary="reflect", backend="auto"):
    """Adjoint of :func:`fastblur.convolve`: ``<convolve(x, k), y> = <x, convolve_adjoint(y, k)>``.

    A ``full`` correlation of ``y`` with ``kernel``, then the adjoint of the image
    extension for ``mode`` and ``boundary`` (see :func:`fold`).

    Parameters
    ----------
    y : array_like, shape (Ho, Wo) or (Ho, Wo, C)
        An array of the forward's output shape.
    kernel : array_like, shape (kh, kw)
    mode : {'same', 'full', 'valid'}, optional
        The forward's mode; the image is ``(Ho, Wo)`` for ``same``,
        ``(Ho - kh + 1, Wo - kw + 1)`` for ``full``, ``(Ho + kh - 1, Wo + kw - 1)`` for
        ``valid``.
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        The forward's image extension.
    backend : str, optional
        ``'auto'`` or a name from :func:`fastblur.available_backends`.

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)
        float64 for a float64 ``y``, float32 otherwise.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.convolve`, naming ``y``; in ``full`` mode, a ``y`` smaller
        than the kernel.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> rng = np.random.default_rng(0)
    >>> x, y, k = rng.random((32, 24)), rng.random((32, 24)), rng.random((5, 4))
    >>> forward = np.vdot(fastblur.convolve(x, k, boundary="wrap"), y)
    >>> adjoint = np.vdot(x, fastblur.convolve_adjoint(y, k, boundary="wrap"))
    >>> bool(np.isclose(forward, adjoint, rtol=1e-12))
    True
    """
    prepared = _validation.as_image(y, "y")
    kernel = _validation.as_kernel(kernel, prepared[0].dtype)
    y3d, was_2d, image_hw = _prepare(prepared, kernel.shape, mode, boundary)
    correlated = convolve(y3d, _flipped(kernel), mode="full", boundary="constant", backend=backend)
    return _finish(fold(correlated, image_hw, kernel.shape, mode, boundary), was_2d)


@torch_interop
def blur_masked_adjoint(y, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Adjoint of :func:`fastblur.blur_masked`: ``sum_i flip(k_i) *full (w_i y)``, folded.

    The scatter form (:func:`fastblur.blur_product`) with the flipped kernels in
    ``full`` mode, then the adjoint of the image extension (see :func:`fold`).

    Parameters
    ----------
    y : array_like, shape (Ho, Wo) or (Ho, Wo, C)
        An array of the forward's output shape.
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, Ho, Wo)
        The forward's weights, on the output grid (``y``'s).
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)
        The image's shape (see :func:`convolve_adjoint`); float64 for a float64 ``y``,
        float32 otherwise.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_masked`, naming ``y``; ``weights`` of another shape
        than ``(N, Ho, Wo)``.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> rng = np.random.default_rng(0)
    >>> x, k = rng.random((40, 30, 3)), rng.random((2, 5, 5))
    >>> w, y = rng.random((2, 36, 26)), rng.random((36, 26, 3))
    >>> forward = np.vdot(fastblur.blur_masked(x, k, w), y)
    >>> adjoint = np.vdot(x, fastblur.blur_masked_adjoint(y, k, w))
    >>> bool(np.isclose(forward, adjoint, rtol=1e-12))
    True
    """
    prepared = _validation.as_image(y, "y")
    dtype = prepared[0].dtype
    kernels = _validation.as_kernel_stack(kernels, dtype)
    y3d, was_2d, image_hw = _prepare(prepared, kernels.shape[1:], mode, boundary)
    weights = _validation.as_numeric_array(weights, "weights")
    grid = _weights_grid(weights)
    if grid is not None:
        _check_grid(y3d.shape[:2], grid, "weights (output grid)")
    weights = _validation.as_weights(weights, len(kernels), y3d.shape[:2], dtype)
    scattered = _scatter_full(y3d, _flipped(kernels), weights, backend)
    return _finish(fold(scattered, image_hw, kernels.shape[1:], mode, boundary), was_2d)


@torch_interop
def blur_product_adjoint(y, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Adjoint of :func:`fastblur.blur_product`: ``sum_i E(w_i) (flip(k_i) *full y)``, folded.

    The gather form (:func:`fastblur.blur_masked`) with the flipped kernels in ``full``
    mode and the weights extended as the forward extends them, then the adjoint of the
    image extension (see :func:`fold`).

    Parameters
    ----------
    y : array_like, shape (Ho, Wo) or (Ho, Wo, C)
        An array of the forward's output shape for an ``(H, W)`` image.
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, H, W)
        The forward's weights, on the input grid.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    ndarray, shape (H, W) or (H, W, C)
        float64 for a float64 ``y``, float32 otherwise.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_product`, naming ``y``; a ``y`` that is not the
        forward's output shape for ``weights``' grid.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> rng = np.random.default_rng(0)
    >>> x, k, w = rng.random((40, 30)), rng.random((2, 4, 5)), rng.random((2, 40, 30))
    >>> y = rng.random((40, 30))
    >>> forward = np.vdot(fastblur.blur_product(x, k, w, "same", "symmetric"), y)
    >>> adjoint = np.vdot(x, fastblur.blur_product_adjoint(y, k, w, "same", "symmetric"))
    >>> bool(np.isclose(forward, adjoint, rtol=1e-12))
    True
    """
    prepared = _validation.as_image(y, "y")
    dtype = prepared[0].dtype
    kernels = _validation.as_kernel_stack(kernels, dtype)
    kernel_hw = kernels.shape[1:]
    y3d, was_2d, image_hw = _prepare(prepared, kernel_hw, mode, boundary)
    weights = _validation.as_numeric_array(weights, "weights")
    grid = _weights_grid(weights)
    if grid is not None:
        _validation.check_fits(grid, kernel_hw, mode, "kernels")
        _check_grid(y3d.shape[:2], _geometry.output_shape(grid, kernel_hw, mode), "weights (input grid)")
    weights = _validation.as_weights(weights, len(kernels), image_hw, dtype, grid="input")
    extended = _geometry.extend(weights, kernel_hw, mode, boundary, first_axis=1)
    gathered = blur_masked(y3d, _flipped(kernels), extended, mode="full", boundary="constant",
                           backend=backend)
    return _finish(fold(gathered, image_hw, kernel_hw, mode, boundary), was_2d)
