"""Random-trajectory motion PSFs after Boracchi & Foi (2012).

The model
---------
A particle moves in the plane with constant speed ``length / (SAMPLES - 1)`` pixels per
step for ``SAMPLES - 1`` steps (so the whole trajectory is ``length`` pixels long) from
an initial direction drawn uniformly. At every step its velocity ``v`` receives

* a Gaussian perturbation ``anxiety * gaussian * (n1 + i n2) * step`` (``n1, n2`` standard
  normal),
* an inertial pull back towards the start, ``-anxiety * centripetal * x_t * step`` (``x_t``
  the current position, as a complex number), and
* with probability ``impulsive * anxiety``, an abrupt shake ``2 v exp(i (pi + u - 1/2))``
  (``u`` uniform in [0, 1)) that roughly reverses the motion,

and is then rescaled to the constant speed. As in Boracchi & Foi's generator, the three
strengths are drawn for every trajectory: ``centripetal ~ U(0, 0.7)``,
``gaussian ~ U(0, 10)``, ``impulsive ~ U(0, 0.2)``. ``anxiety`` scales all perturbations:
0 gives a straight line; ~0.005 gently curved paths with an occasional jerk; ~0.1 very
erratic ones.

The exposure is the fraction ``exposure`` of the trajectory's duration from its start
(their ``T``): the PSF integrates the particle's positions over the first
``exposure * (SAMPLES - 1)`` steps, interpolating inside the last one. Positions are
continuous (steps are ``length / 1999`` pixels, far below a pixel) and rasterised by
sub-pixel bilinear splatting, then centred on their centroid; a trajectory that does
not fit ``size`` is redrawn, up to ``MAX_ATTEMPTS`` draws, then ``ValueError``.

Statistics at the defaults (``size=65, length=60, anxiety=0.005``;
``bench/kernel_stats.py``, 1000 draws): with ``exposure=1`` the extent (longer side of
the bounding box of the non-zero taps) has mean 21.3 px (p5/50/95: 13/19/34) and the
number of non-zero taps mean 125 (91/125/156); with ``exposure=0.5``, 16.3 px and 72.
Documented range (checked by the tests on 200 draws, ``exposure=1``): mean extent in
[18, 25] px, mean non-zero taps in [110, 140].

Reference
---------
G. Boracchi, A. Foi, "Modeling the performance of image restoration from motion blur",
IEEE Trans. Image Processing 21(8):3502-3517, 2012, doi:10.1109/TIP.2012.2192126.
"""
import cmath
import math

import numpy as np
from numba import njit

from .._validation import as_rng, check_count, check_positive_number, check_real
from .rasterize import rasterize_centred

__all__ = ["trajectory_kernel", "random_trajectory"]

SAMPLES = 2000
CENTRIPETAL_MAX = 0.7
GAUSSIAN_MAX = 10.0
IMPULSIVE_MAX = 0.2
MAX_ATTEMPTS = 100


@njit(cache=True, nogil=True)
def _walk(step, anxiety, centripetal, gaussian, impulsive, direction, normals, uniforms):
    samples = normals.shape[0] + 1
    x = np.zeros(samples, dtype=np.complex128)
    v = step * cmath.exp(1j * direction)
    for t in range(samples - 1):
        jump = 0j
        if uniforms[t, 0] < impulsive * anxiety:
            jump = 2.0 * v * cmath.exp(1j * (math.pi + uniforms[t, 1] - 0.5))
        dv = jump + anxiety * (
            gaussian * (normals[t, 0] + 1j * normals[t, 1]) - centripetal * x[t]
        ) * step
        v = v + dv
        speed = abs(v)
        if speed > 0.0:  # a perturbation that cancels v exactly keeps the old heading
            v = v * (step / speed)
        else:
            v = step * cmath.exp(1j * direction)
        x[t + 1] = x[t] + v
    return x


def random_trajectory(length=60, anxiety=0.005, rng=None):
    """One Boracchi-Foi trajectory of ``SAMPLES`` positions, ``length`` pixels long.

    Parameters
    ----------
    length : float, optional
        Total path length in pixels (> 0).
    anxiety : float, optional
        Strength of the perturbations, in [0, 1].
    rng : None, int or numpy.random.Generator, optional

    Returns
    -------
    ndarray, shape (SAMPLES, 2), float64
        Positions ``(x, y)`` in pixels at equal time steps, starting at the origin.
    """
    length = check_positive_number(length, "length")
    anxiety = check_real(anxiety, "anxiety", 0.0, 1.0)
    return _draw_points(length, anxiety, as_rng(rng))


def _draw_points(length, anxiety, rng):
    centripetal = rng.uniform(0.0, CENTRIPETAL_MAX)
    gaussian = rng.uniform(0.0, GAUSSIAN_MAX)
    impulsive = rng.uniform(0.0, IMPULSIVE_MAX)
    direction = rng.uniform(0.0, 2.0 * math.pi)
    normals = rng.standard_normal((SAMPLES - 1, 2))
    uniforms = rng.random((SAMPLES - 1, 2))
    x = _walk(length / (SAMPLES - 1), anxiety, centripetal, gaussian, impulsive,
              direction, normals, uniforms)
    return np.stack([x.real, x.imag], axis=1)


def _exposed(points, exposure):
    """The polyline over the first ``exposure`` of its duration, with segment weights."""
    end = exposure * (len(points) - 1)
    whole = int(math.floor(end))
    partial = end - whole
    if partial > 1e-12:
        last = points[whole] + partial * (points[whole + 1] - points[whole])
        kept = np.concatenate([points[: whole + 1], last[None]])
        weights = np.ones(whole + 1)
        weights[-1] = partial
    else:
        kept = points[: whole + 1]
        weights = np.ones(whole)
    if len(kept) < 2:  # shorter than one step: a point
        kept = np.concatenate([points[:1], points[:1]])
        weights = np.ones(1)
    return kept, weights


def trajectory_kernel(size=65, length=60, anxiety=0.005, exposure=1.0, rng=None):
    """A motion PSF from a Boracchi & Foi (2012) random trajectory.

    A particle with inertia, Gaussian and impulsive perturbations travels ``length``
    pixels; the PSF integrates its continuous positions over the first ``exposure``
    fraction of the trajectory, rasterised by sub-pixel bilinear splatting. The model
    and its parameters are described in :mod:`fastblur.kernels.trajectory`.

    Parameters
    ----------
    size : int, optional
        Side of the square kernel in pixels.
    length : float, optional
        Length of the whole trajectory in pixels (> 0); the blur path is
        ``exposure * length`` long.
    anxiety : float, optional
        Strength of the perturbations in [0, 1]; 0 is a straight line.
    exposure : float, optional
        Fraction of the trajectory's duration the shutter is open, in (0, 1].
    rng : None, int or numpy.random.Generator, optional
        Source of randomness (``numpy.random.default_rng(rng)``).

    Returns
    -------
    ndarray, shape (size, size), float32
        Non-negative, sums to 1, centroid on tap ``((size - 1) // 2, (size - 1) // 2)``.

    Raises
    ------
    TypeError
        Non-integer ``size``, non-real numbers, bad ``rng``.
    ValueError
        Out-of-range arguments; no draw fitting ``size`` in ``MAX_ATTEMPTS`` attempts.

    Examples
    --------
    >>> from fastblur.kernels import trajectory_kernel
    >>> k = trajectory_kernel(size=33, length=24, rng=1)
    >>> k.shape, round(float(k.sum()), 5)
    ((33, 33), 1.0)
    """
    size = check_count(size, "size", low=1)
    length = check_positive_number(length, "length")
    anxiety = check_real(anxiety, "anxiety", 0.0, 1.0)
    exposure = check_real(exposure, "exposure", 0.0, 1.0, low_inclusive=False)
    rng = as_rng(rng)
    for _ in range(MAX_ATTEMPTS):
        points, weights = _exposed(_draw_points(length, anxiety, rng), exposure)
        psf = rasterize_centred(points, weights, size)
        if psf is not None:
            return psf
    raise ValueError(
        f"trajectory_kernel: no trajectory out of {MAX_ATTEMPTS} draws fits size={size} "
        f"with length={length} px and exposure={exposure}; raise size or lower "
        "length/exposure"
    )
