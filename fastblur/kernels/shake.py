"""Camera-shake PSFs from a physiological model of hand shake.

The model
---------
A hand-held camera rotates by small angles about its horizontal (pitch) and vertical
(yaw) axes while the shutter is open. Following the structure of the physiological
camera-shake model of Gavant et al. (2011), each angle is the sum of two processes,
independent between the axes:

* **Tremor** -- physiological tremor of the hand and arm: a band-limited oscillation
  around 8-12 Hz. Modelled as white noise through a damped second-order resonator
  (an AR(2) process in discrete time) whose centre frequency ``f0`` is drawn uniformly
  in [8, 12] Hz for each kernel and whose damping ratio is ``TREMOR_DAMPING`` (a -3 dB
  band of about ``2 * 0.15 * f0``, i.e. 2.4-3.6 Hz). RMS angle ``TREMOR_RMS`` (rad).
* **Drift** -- slow, unintentional wandering of the aim: a low-frequency random walk.
  Its angular velocity is an Ornstein-Uhlenbeck process (white noise through a first
  order low-pass with corner ``DRIFT_CORNER`` Hz) with RMS ``DRIFT_RMS_VELOCITY`` (rad/s),
  integrated to an angle. Over times much longer than ``1 / (2 pi DRIFT_CORNER)`` it is a
  Brownian random walk; over shorter ones it moves in nearly straight strokes.

Both amplitudes are multiplied by a per-kernel *unsteadiness* factor drawn from a
log-normal distribution (median 1, ``UNSTEADINESS_SIGMA`` in log units): some shots are
held more steadily than others. Both processes start in their stationary state, so a
kernel does not depend on when the shutter opened.

The angles are sampled at ``SAMPLE_RATE`` Hz (at least ``MIN_SEGMENTS`` segments) over
``exposure`` seconds and projected onto the image plane near the optical centre with a
pinhole camera of focal length ``focal_length`` pixels: ``x = f tan(yaw)``,
``y = f tan(pitch)``. Roll (rotation about the optical axis) moves the optical centre
by nothing, and translation of the camera matters only for scenes a few focal lengths
away, so neither is modelled: this is the PSF at the image centre of a distant scene.
The trajectory, travelled at the sampled speed, is rasterised by sub-pixel bilinear
splatting (:mod:`fastblur.kernels.rasterize`) and centred on its centroid.

Because blur extent scales with ``exposure`` (drift ~ ``sqrt(exposure)`` to
``exposure``) and linearly with ``focal_length``, large values produce trajectories that
do not fit ``size``: a trajectory that does not fit once centred on its centroid is
redrawn (new parameters and noise), up to ``MAX_ATTEMPTS`` draws, after which a
``ValueError`` says to raise ``size`` or lower ``exposure``/``focal_length``. Redrawing
truncates the extent distribution at ``size``; at the defaults (``size=65``,
``exposure=0.5``, ``focal_length=1000``) about 1 draw in 120 is redrawn.

The parameter values are not fitted to measurements: they were chosen within the ranges
the physiology literature reports (tremor in 8-12 Hz with sub-milliradian amplitude,
drift dominating at exposures beyond ~1/10 s) so that the defaults (SBDD's 65 x 65
pixels, 0.5 s exposure, 1000 px focal length) give blurs from a few pixels to about 50,
which the 65-pixel support holds with few redraws.

Statistics (``bench/kernel_stats.py``, 1000 draws; *extent* is the longer side of the
bounding box of the non-zero taps, *taps* the number of non-zero taps):

======================  ===========  ===============  =========  ===============
size, exposure, focal   extent mean  extent p5/50/95  taps mean  taps p5/50/95
======================  ===========  ===============  =========  ===============
65, 0.5 s, 1000 px      16.3         6 / 14 / 35      64         21 / 55 / 144
65, 0.1 s, 1000 px      5.9          3 / 5 / 12       18         8 / 15 / 36
65, 1.0 s, 1000 px      24.1         9 / 22 / 47      113        38 / 99 / 235
65, 0.5 s, 2000 px      26.0         10 / 24 / 50     117        42 / 108 / 231
======================  ===========  ===============  =========  ===============

Documented range (checked by the tests on 200 draws): at the defaults the mean extent
lies in [14, 19] px and the mean number of non-zero taps in [50, 80].

References
----------
F. Gavant, L. Alacoque, A. Dupret, D. David, "A physiological camera shake model for
image stabilization systems", IEEE Sensors 2011, doi:10.1109/ICSENS.2011.6127172.

G. Boracchi, A. Foi, "Modeling the performance of image restoration from motion blur",
IEEE Trans. Image Processing 21(8), 2012 (trajectories rasterised into PSFs).

G. Carbajal, P. Vitoria, P. Musé, J. Lezama, "Rethinking motion deblurring training: a
segmentation-based method for simulating non-uniform motion blurred images",
arXiv:2209.12675 (the SBDD kernel set: size 65, exposure 0.5 s, focal length 1000 px).
"""
import math

import numpy as np
from numba import njit

from .._validation import as_rng, check_count, check_positive_number
from .rasterize import rasterize_centred

__all__ = ["camera_shake", "camera_shake_trajectory"]

SAMPLE_RATE = 1000.0
MIN_SEGMENTS = 32
TREMOR_BAND = (8.0, 12.0)
TREMOR_DAMPING = 0.15
TREMOR_RMS = 0.5e-3
DRIFT_CORNER = 1.0
DRIFT_RMS_VELOCITY = 30e-3
UNSTEADINESS_SIGMA = 0.5
MAX_ATTEMPTS = 100


@njit(cache=True, nogil=True)
def _shake_angles(noise, dt, f0, tremor_rms, drift_rms_velocity, drift_corner):
    """Pitch/yaw angles (rad) at ``n + 1`` times ``k dt`` from standard normal ``noise``.

    ``noise`` has shape ``(2, 2 * (n + 1) + 2)``: per axis, ``n + 1`` tremor
    innovations, 2 values for the tremor's stationary start, ``n + 1`` drift
    innovations (the first starts the drift velocity).
    """
    n1 = (noise.shape[1] - 2) // 2
    angles = np.empty((n1, 2))
    # Tremor: AR(2) with poles r exp(+-i w), the discrete twin of a resonator at f0.
    omega0 = 2.0 * math.pi * f0
    r = math.exp(-TREMOR_DAMPING * omega0 * dt)
    w = omega0 * dt * math.sqrt(1.0 - TREMOR_DAMPING * TREMOR_DAMPING)
    a1 = 2.0 * r * math.cos(w)
    a2 = -r * r
    # Stationary variance and lag-1 correlation of x_t = a1 x_{t-1} + a2 x_{t-2} + e_t.
    gain = (1.0 - a2) / ((1.0 + a2) * ((1.0 - a2) ** 2 - a1 * a1))
    rho1 = a1 / (1.0 - a2)
    sigma_e = tremor_rms / math.sqrt(gain)
    # Drift: Ornstein-Uhlenbeck velocity, trapezoid-integrated.
    phi = math.exp(-2.0 * math.pi * drift_corner * dt)
    kick = math.sqrt(1.0 - phi * phi) * drift_rms_velocity
    for axis in range(2):
        z = noise[axis]
        prev2 = tremor_rms * z[n1]
        prev1 = tremor_rms * (rho1 * z[n1] + math.sqrt(1.0 - rho1 * rho1) * z[n1 + 1])
        velocity = drift_rms_velocity * z[n1 + 2]
        drift = 0.0
        for k in range(n1):
            tremor = a1 * prev1 + a2 * prev2 + sigma_e * z[k]
            prev2 = prev1
            prev1 = tremor
            if k > 0:
                new_velocity = phi * velocity + kick * z[n1 + 2 + k]
                drift += 0.5 * (velocity + new_velocity) * dt
                velocity = new_velocity
            angles[k, axis] = tremor + drift
    return angles


def camera_shake_trajectory(exposure=0.5, focal_length=1000, rng=None):
    """One draw of the image-plane trajectory of the camera-shake model.

    Parameters
    ----------
    exposure : float, optional
        Exposure time in seconds.
    focal_length : float, optional
        Focal length in pixels.
    rng : None, int or numpy.random.Generator, optional

    Returns
    -------
    points : ndarray, shape (n + 1, 2), float64
        Positions ``(x, y)`` in pixels (``x`` along columns, ``y`` along rows) at times
        ``k * exposure / n``, relative to an arbitrary origin.
    """
    exposure = check_positive_number(exposure, "exposure")
    focal_length = check_positive_number(focal_length, "focal_length")
    return _draw_points(exposure, focal_length, as_rng(rng))


def _segments(exposure):
    """Number of segments the exposure is sampled in, and their duration (s)."""
    segments = max(MIN_SEGMENTS, int(math.ceil(exposure * SAMPLE_RATE)))
    return segments, exposure / segments


def _draw_angles(exposure, rng):
    """Yaw and pitch (rad), shape ``(segments + 1, 2)``, at the instants ``k dt``."""
    segments, dt = _segments(exposure)
    f0 = rng.uniform(*TREMOR_BAND)
    unsteadiness = math.exp(UNSTEADINESS_SIGMA * rng.standard_normal())
    noise = rng.standard_normal((2, 2 * (segments + 1) + 2))
    angles = _shake_angles(
        noise, dt, f0, unsteadiness * TREMOR_RMS, unsteadiness * DRIFT_RMS_VELOCITY,
        DRIFT_CORNER,
    )
    return angles


def _draw_points(exposure, focal_length, rng):
    return focal_length * np.tan(_draw_angles(exposure, rng))


def camera_shake(size=65, exposure=0.5, focal_length=1000, rng=None):
    """A camera-shake PSF drawn from a physiological model of hand shake.

    The angles of the camera (tremor around 8-12 Hz plus low-frequency drift) are
    integrated over ``exposure`` seconds and projected with ``focal_length`` pixels;
    the trajectory is rasterised by sub-pixel bilinear splatting. Longer exposures and
    longer focal lengths give longer blur. The model, its parameter values and
    references are described in :mod:`fastblur.kernels.shake`.

    Parameters
    ----------
    size : int, optional
        Side of the square kernel in pixels (SBDD uses 65).
    exposure : float, optional
        Exposure time in seconds (> 0).
    focal_length : float, optional
        Focal length in pixels (> 0).
    rng : None, int or numpy.random.Generator, optional
        Source of randomness (``numpy.random.default_rng(rng)``). The same seed gives the
        same kernel.

    Returns
    -------
    ndarray, shape (size, size), float32
        Non-negative, sums to 1, centroid on tap ``((size - 1) // 2, (size - 1) // 2)``
        (the tap :func:`fastblur.convolve` treats as the origin), so blurring with it by
        true convolution does not shift the image. A PSF as an image: row = y (down),
        column = x (right).

    Raises
    ------
    TypeError
        Non-integer ``size``, non-real ``exposure``/``focal_length``, bad ``rng``.
    ValueError
        Non-positive or non-finite arguments; no draw fitting ``size`` in
        ``MAX_ATTEMPTS`` attempts (blur too long for the kernel).

    Notes
    -----
    A trajectory that does not fit ``size`` after centring on its centroid is redrawn,
    so very long blurs are under-represented as the kernel gets tight.

    Examples
    --------
    >>> from fastblur.kernels import camera_shake
    >>> k = camera_shake(rng=0)
    >>> k.shape, k.dtype, round(float(k.sum()), 5)
    ((65, 65), dtype('float32'), 1.0)
    """
    size = check_count(size, "size", low=1)
    exposure = check_positive_number(exposure, "exposure")
    focal_length = check_positive_number(focal_length, "focal_length")
    rng = as_rng(rng)
    for _ in range(MAX_ATTEMPTS):
        points = _draw_points(exposure, focal_length, rng)
        weights = np.full(len(points) - 1, 1.0 / (len(points) - 1))
        psf = rasterize_centred(points, weights, size)
        if psf is not None:
            return psf
    raise ValueError(
        f"camera_shake: no trajectory out of {MAX_ATTEMPTS} draws fits size={size} with "
        f"exposure={exposure} s and focal_length={focal_length} px; raise size or lower "
        "exposure/focal_length"
    )
