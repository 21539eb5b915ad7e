"""Rasterising a continuous trajectory into a PSF: sub-pixel bilinear splatting.

A trajectory is a polyline of positions ``(x, y)`` in pixels (``x`` along columns,
``y`` along rows, as in an image) visited at piecewise-constant speed: segment ``k``
(from point ``k`` to point ``k + 1``) is travelled in time ``weights[k]``. The PSF is the
time the point spends near each pixel: every segment is cut into pieces no longer than
``max_step`` pixels and the midpoint of each piece is splatted bilinearly onto the four
pixels around it with that piece's share of the segment's time.

Bilinear splatting preserves the first moment exactly, and the midpoint rule integrates
a linear function exactly, so the PSF's centroid is the trajectory's time-weighted mean
position (:func:`trajectory_centroid`) to rounding. :func:`rasterize_centred` uses this to
put the centroid on the kernel centre, which is what makes blurring with the PSF
(true convolution, :func:`fastblur.convolve`) leave the image where it was.
"""
import math

import numpy as np
from numba import njit

__all__ = ["kernel_centre", "trajectory_centroid", "splat_polyline", "rasterize_centred"]

#: Longest piece (pixels) a segment is cut into before splatting.
MAX_STEP = 0.125
#: How far (pixels) a centred trajectory may poke out of the grid and still count as fitting.
FIT_SLACK = 1e-9


def kernel_centre(size):
    """The index a kernel of ``size`` taps is centred on: ``(size - 1) // 2``.

    This is the tap :func:`scipy.signal.convolve` (and so :func:`fastblur.convolve`)
    treats as the origin in ``same`` mode, and the offset ``valid`` mode crops by: a unit
    impulse there convolves to the identity. For odd sizes it is the middle tap.
    """
    return (int(size) - 1) // 2


def trajectory_centroid(points, weights):
    """Time-weighted mean position of a polyline travelled at piecewise-constant speed.

    Parameters
    ----------
    points : ndarray, shape (n, 2), float64
        Positions ``(x, y)`` in pixels, ``n >= 2``.
    weights : ndarray, shape (n - 1,), float64
        Time spent on each segment (non-negative, positive sum).

    Returns
    -------
    ndarray, shape (2,), float64
    """
    midpoints = 0.5 * (points[1:] + points[:-1])
    return weights @ midpoints / weights.sum()


@njit(cache=True, nogil=True)
def deposit(out, x, y, weight):
    """Add ``weight`` at ``(x, y)`` of the 2-D ``out``, split bilinearly over the four
    neighbouring taps; taps outside the grid are skipped."""
    rows, cols = out.shape
    c0 = int(math.floor(x))
    r0 = int(math.floor(y))
    fx = x - c0
    fy = y - r0
    for dr in range(2):
        r = r0 + dr
        if r < 0 or r >= rows:
            continue
        wr = weight * (fy if dr else 1.0 - fy)
        for dc in range(2):
            c = c0 + dc
            if 0 <= c < cols:
                out[r, c] += wr * (fx if dc else 1.0 - fx)


@njit(cache=True, nogil=True)
def _splat_polyline(xs, ys, weights, out, max_step):
    for k in range(xs.shape[0] - 1):
        w = weights[k]
        if w == 0.0:
            continue
        dx = xs[k + 1] - xs[k]
        dy = ys[k + 1] - ys[k]
        pieces = max(1, int(math.ceil(math.sqrt(dx * dx + dy * dy) / max_step)))
        piece_w = w / pieces
        for j in range(pieces):
            s = (j + 0.5) / pieces
            # Taps outside the grid carry zero weight whenever the trajectory lies in
            # [0, size - 1] (a point exactly on the last row/column).
            deposit(out, xs[k] + s * dx, ys[k] + s * dy, piece_w)


def splat_polyline(points, weights, size, max_step=MAX_STEP):
    """Splat a polyline onto a ``(size, size)`` grid (no centring, no normalisation).

    Parameters
    ----------
    points : array_like, shape (n, 2)
        Positions ``(x, y)`` in pixel coordinates of the output grid (``x`` = column).
    weights : array_like, shape (n - 1,)
        Time spent on each segment.
    size : int
    max_step : float, optional
        Longest piece, in pixels, a segment is cut into.

    Returns
    -------
    ndarray, shape (size, size), float64
        Mass that falls outside the grid is dropped.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    out = np.zeros((size, size), dtype=np.float64)
    _splat_polyline(
        np.ascontiguousarray(points[:, 0]), np.ascontiguousarray(points[:, 1]),
        weights, out, float(max_step),
    )
    return out


def rasterize_centred(points, weights, size, max_step=MAX_STEP):
    """A float32 PSF of the polyline with its centroid on :func:`kernel_centre`, or None.

    The polyline is translated so that its time-weighted centroid lands on
    ``(c, c)``, ``c = (size - 1) // 2``. If it then does not lie inside
    ``[0, size - 1]`` in both coordinates it does not fit and ``None`` is returned (the
    caller redraws); otherwise the splatted PSF, normalised to sum 1, is returned.

    Parameters
    ----------
    points : ndarray, shape (n, 2), float64
        Positions ``(x, y)`` in pixels (any origin).
    weights : ndarray, shape (n - 1,), float64
    size : int
    max_step : float, optional

    Returns
    -------
    ndarray, shape (size, size), float32, or None
    """
    centre = kernel_centre(size)
    shifted = points - trajectory_centroid(points, weights) + centre
    # The slack absorbs rounding when a trajectory exactly spans the grid.
    if shifted.min() < -FIT_SLACK or shifted.max() > size - 1 + FIT_SLACK:
        return None
    psf = splat_polyline(shifted, weights, size, max_step)
    psf /= psf.sum()
    psf = psf.astype(np.float32)
    psf /= psf.sum(dtype=np.float64)
    return psf
