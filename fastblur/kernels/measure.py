"""Simple measurements of a kernel: its extent and its number of non-zero taps."""
import numpy as np

from .._validation import check_ndim

__all__ = ["extent", "nonzero_taps", "centroid"]


def _as_2d(kernel):
    return check_ndim(np.asarray(kernel), (2,), "kernel", "a 2-D array")


def extent(kernel):
    """Blur extent in pixels: the longer side of the bounding box of the taps > 0.

    A unit impulse has extent 1; a horizontal bilinear segment of length ``L`` starting
    on a tap has extent ``L + 1``. Returns 0 for a kernel without positive taps.
    """
    rows, cols = np.nonzero(_as_2d(kernel) > 0)
    if rows.size == 0:
        return 0
    return int(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1)


def nonzero_taps(kernel):
    """Number of taps > 0 (what a sparse-tap direct convolution pays for)."""
    return int(np.count_nonzero(_as_2d(kernel) > 0))


def centroid(kernel):
    """Centre of mass ``(row, col)`` of a kernel with positive sum, in tap indices."""
    kernel = _as_2d(kernel).astype(np.float64)
    total = kernel.sum()
    if not total > 0:
        raise ValueError("kernel must have a positive sum to have a centroid")
    rows = np.arange(kernel.shape[0]) @ kernel.sum(axis=1) / total
    cols = np.arange(kernel.shape[1]) @ kernel.sum(axis=0) / total
    return float(rows), float(cols)
