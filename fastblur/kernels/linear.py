"""Linear-motion PSFs: a segment travelled at constant speed, anti-aliased."""
import math

import numpy as np

from .._validation import check_count, check_real
from .rasterize import rasterize_centred

__all__ = ["linear_motion"]

#: Splatting step (pixels) for segments: fine enough that the result matches the exact
#: integral of the bilinear (tent) footprint along the segment to ~1e-3 of the peak.
LINEAR_STEP = 1.0 / 16.0


def linear_motion(length, angle, size=None):
    """The PSF of uniform linear motion: a segment of ``length`` pixels at ``angle``.

    The segment is travelled at constant speed and rasterised by sub-pixel bilinear
    splatting (every point of it spreads onto its four nearest taps), which
    anti-aliases it: the result is the exact box-along-a-line integrated against a
    bilinear footprint, to a step of 1/16 pixel. It is centred on the kernel centre.

    Parameters
    ----------
    length : float
        Distance travelled during the exposure, in pixels (>= 0; 0 gives a unit impulse).
    angle : float
        Direction in degrees, counter-clockwise from the +x axis (columns to the right)
        as the kernel is displayed (rows downwards): 0 is horizontal, 90 vertical.
        ``angle`` and ``angle + 180`` give the same kernel.
    size : int, optional
        Side of the square kernel. ``None`` picks the smallest odd size that holds the
        segment: ``2 * ceil(h) + 1`` with ``h = max(|cos|, |sin|) * length / 2``.

    Returns
    -------
    ndarray, shape (size, size), float32
        Non-negative, sums to 1, centroid on tap ``((size - 1) // 2, (size - 1) // 2)``.

    Raises
    ------
    TypeError
        Non-real ``length``/``angle``, non-integer ``size``.
    ValueError
        Negative or non-finite ``length``, non-finite ``angle``, ``size`` too small for
        the segment.

    Examples
    --------
    >>> from fastblur.kernels import linear_motion
    >>> k = linear_motion(4, 0)
    >>> k.shape
    (5, 5)
    >>> k[2].round(3).tolist()
    [0.125, 0.25, 0.25, 0.25, 0.125]
    """
    length = check_real(length, "length", low=0.0)
    angle = check_real(angle, "angle")
    radians = math.radians(angle)
    half = 0.5 * length * np.array([math.cos(radians), -math.sin(radians)])
    reach = float(np.abs(half).max())
    needed = 2 * math.ceil(reach - 1e-9) + 1
    if size is None:
        size = needed
    else:
        size = check_count(size, "size", low=1)
        if size < 2 * reach + 1 - 1e-9:
            raise ValueError(
                f"size={size} is too small for a segment of length {length} at "
                f"{angle} degrees: it needs at least {needed} pixels"
            )
    points = np.stack([-half, half])
    psf = rasterize_centred(points, np.ones(1), size, LINEAR_STEP)
    if psf is None:  # only reachable for an even size exactly at the limit
        raise ValueError(
            f"size={size} is too small for a segment of length {length} at "
            f"{angle} degrees centred on tap {(size - 1) // 2}: use at least {needed}"
        )
    return psf
