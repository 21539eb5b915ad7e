"""Output shapes and image extension for the convolution modes.

Every primitive reduces to a ``valid`` convolution of an extended image: ``full`` and
``same`` first extend the image by the ``boundary`` rule (``numpy.pad`` names), with the
``same`` window centred exactly as :func:`scipy.signal.convolve` centres it.
"""
from ._array_module import get_array_module

MODES = ("full", "same", "valid")
BOUNDARIES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad_widths(kernel_hw, mode):
    """Rows/columns added before and after each spatial axis for ``mode``.

    Parameters
    ----------
    kernel_hw : tuple of int
        ``(kh, kw)``.
    mode : {'full', 'same', 'valid'}

    Returns
    -------
    tuple
        ``((top, bottom), (left, right))``.
    """
    if mode == "full":
        return tuple((k - 1, k - 1) for k in kernel_hw)
    if mode == "same":
        # scipy keeps full[(k - 1) // 2 : (k - 1) // 2 + n]: k // 2 samples come from before.
        return tuple((k // 2, (k - 1) // 2) for k in kernel_hw)
    return ((0, 0), (0, 0))


def output_shape(image_hw, kernel_hw, mode):
    """Spatial shape ``(Ho, Wo)`` of a ``mode`` convolution of ``image_hw`` by ``kernel_hw``."""
    if mode == "full":
        return tuple(n + k - 1 for n, k in zip(image_hw, kernel_hw))
    if mode == "same":
        return tuple(image_hw)
    return tuple(n - k + 1 for n, k in zip(image_hw, kernel_hw))


def extend(array, kernel_hw, mode, boundary, first_axis=0):
    """Extend the spatial axes of ``array`` for a ``valid`` convolution.

    Parameters
    ----------
    array : ndarray, shape (H, W, ...) or, with ``first_axis=1``, (B, H, W, ...)
    kernel_hw : tuple of int
    mode : {'full', 'same', 'valid'}
    boundary : {'constant', 'edge', 'reflect', 'symmetric', 'wrap'}
    first_axis : int, optional
        Index of the H axis; W follows it.

    Returns
    -------
    ndarray, shape (..., H + pad_h, W + pad_w, ...)
        ``array`` itself when ``mode == 'valid'``.
    """
    widths = pad_widths(kernel_hw, mode)
    if mode == "valid" or not any(sum(w) for w in widths):
        return array
    widths = ((0, 0),) * first_axis + widths + ((0, 0),) * (array.ndim - 2 - first_axis)
    return get_array_module(array).pad(array, widths, mode=boundary)
