"""Camera rotation during the exposure: the physiological shake model with roll.

:func:`camera_motion` draws the yaw and pitch of :func:`~fastblur.kernels.camera_shake`
(tremor plus drift, :mod:`fastblur.kernels.shake`) and adds roll, the rotation about
the optical axis, drawn by the same model from a stream of its own. The result, a
:class:`CameraMotion`, holds the camera's orientation at every sampled instant; its
homographies ``H = K R K^-1`` give the spatially varying blur of a distant scene
(:func:`fastblur.projective_blur`), its :meth:`~CameraMotion.psf` the PSF at one pixel.

Geometry
--------
Camera frame: x right, y down, z forward (OpenCV's). The orientation at an instant is
``R = R_aim R_z(roll)``: ``R_z(roll)`` turns the camera about its optical axis, then
``R_aim`` (the smallest rotation taking the optical axis ``e_z`` to the direction
``(tan yaw, tan pitch, 1)``) aims it. The principal point therefore moves along
``f (tan yaw, tan pitch)`` whatever the roll: exactly the path
:func:`~fastblur.kernels.camera_shake` projects, so that

    ``camera_motion(exposure, rng=seed).psf(f, shape, at=principal_point, size)``
    equals ``camera_shake(size, exposure, f, rng=seed)`` to float32 rounding

whenever camera_shake's first draw fits ``size`` (it redraws otherwise: at its defaults
about one draw in 120). Roll comes from ``rng.spawn(1)``: drawing it leaves the
yaw/pitch stream, and what ``rng`` yields afterwards, as camera_shake leaves them.

Rotations are relative to the orientation the model starts from (angle 0 for the
drift; the tremor starts in its stationary state), which is where the sharp image is
taken: :meth:`CameraMotion.centred` refers them to the mean orientation instead, the
alignment a deblurring pair wants (the blurred image then has no net shift or turn).
"""
import math

import numpy as np

from .._validation import (as_rng, check_count, check_image_shape, check_point, check_positive_number,
                           check_real)
from .rasterize import rasterize_centred, splat_polyline, kernel_centre
from .shake import (
    DRIFT_CORNER, DRIFT_RMS_VELOCITY, TREMOR_BAND, TREMOR_RMS, UNSTEADINESS_SIGMA,
    _draw_angles, _segments, _shake_angles,
)

__all__ = ["CameraMotion", "camera_motion", "rotation_matrices", "rotation_vectors"]


def rotation_matrices(rotations):
    """Rotation matrices of rotation vectors (``cv2.Rodrigues``'s convention).

    Parameters
    ----------
    rotations : ndarray, shape (S, 3)
        Axis times angle (rad).

    Returns
    -------
    ndarray, shape (S, 3, 3), float64
    """
    r = np.asarray(rotations, dtype=np.float64).reshape(-1, 3)
    theta = np.linalg.norm(r, axis=1)
    small = theta < 1e-8
    safe = np.where(small, 1.0, theta)
    # sin(t)/t and (1 - cos t)/t^2, with their series near 0.
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    cross = np.zeros((len(r), 3, 3))
    cross[:, 0, 1], cross[:, 0, 2] = -r[:, 2], r[:, 1]
    cross[:, 1, 0], cross[:, 1, 2] = r[:, 2], -r[:, 0]
    cross[:, 2, 0], cross[:, 2, 1] = -r[:, 1], r[:, 0]
    return np.eye(3) + a[:, None, None] * cross + b[:, None, None] * (cross @ cross)


def rotation_vectors(matrices):
    """Rotation vectors of rotation matrices (angles below pi), inverse of
    :func:`rotation_matrices`.

    Parameters
    ----------
    matrices : ndarray, shape (S, 3, 3)

    Returns
    -------
    ndarray, shape (S, 3), float64
    """
    m = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    axis = np.stack([m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], axis=1)
    sine = 0.5 * np.linalg.norm(axis, axis=1)
    cosine = 0.5 * (np.trace(m, axis1=1, axis2=2) - 1.0)
    theta = np.arctan2(sine, cosine)
    small = sine < 1e-8
    factor = np.where(small, 0.5 + theta**2 / 12.0, theta / (2.0 * np.where(small, 1.0, sine)))
    return factor[:, None] * axis


def _orientations(yaw, pitch, roll):
    """``R_aim R_z(roll)`` with ``R_aim e_z`` along ``(tan yaw, tan pitch, 1)``."""
    d = np.stack([np.tan(yaw), np.tan(pitch), np.ones_like(yaw)], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    lateral = np.hypot(d[:, 0], d[:, 1])
    angle = np.arctan2(lateral, d[:, 2])
    unit = np.where(lateral > 0, 1.0 / np.where(lateral > 0, lateral, 1.0), 0.0)
    aim = rotation_matrices(np.stack([-d[:, 1] * unit * angle, d[:, 0] * unit * angle,
                                      np.zeros_like(angle)], axis=1))
    turn = rotation_matrices(np.stack([np.zeros_like(roll), np.zeros_like(roll), roll], axis=1))
    return aim @ turn


def _intrinsics(focal_length, image_shape, principal_point):
    focal_length = check_positive_number(focal_length, "focal_length")
    shape = check_image_shape(image_shape)
    if principal_point is None:
        cx, cy = (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0
    else:
        cx, cy = check_point(principal_point, "principal_point")
    return np.array([[focal_length, 0.0, cx], [0.0, focal_length, cy], [0.0, 0.0, 1.0]])


class CameraMotion:
    """The orientation of a camera at sampled instants of one exposure.

    Parameters
    ----------
    rotations : array_like, shape (S, 3)
        Rotation vectors (rad, ``cv2.Rodrigues`` convention) in the camera frame
        (x right, y down, z forward), relative to the orientation of the sharp image.
    times : array_like, shape (S,)
        The sampling instants in seconds, increasing.

    Attributes
    ----------
    rotations : ndarray, shape (S, 3), float64
    times : ndarray, shape (S,), float64
    """

    def __init__(self, rotations, times):
        rotations = np.array(rotations, dtype=np.float64)
        times = np.array(times, dtype=np.float64)
        if rotations.ndim != 2 or rotations.shape[1] != 3 or len(rotations) < 1:
            raise ValueError(f"rotations must have shape (S, 3), S >= 1, got {rotations.shape}")
        if times.shape != (len(rotations),):
            raise ValueError(f"times must have shape ({len(rotations)},), got {times.shape}")
        if not (np.isfinite(rotations).all() and np.isfinite(times).all()):
            raise ValueError("rotations and times must be finite")
        if np.any(np.diff(times) <= 0):
            raise ValueError("times must be increasing")
        self.rotations = rotations
        self.times = times

    def __len__(self):
        return len(self.rotations)

    def __repr__(self):
        return (f"CameraMotion({len(self)} samples over {self.times[-1] - self.times[0]:.3g} s, "
                f"largest angle {np.degrees(np.abs(self.rotations).max()):.3g} deg)")

    def matrices(self):
        """Rotation matrices, shape (S, 3, 3), float64."""
        return rotation_matrices(self.rotations)

    def centred(self):
        """The same motion relative to its mean orientation (the chordal mean of the
        rotations, projected back onto rotations), as a new :class:`CameraMotion`."""
        matrices = self.matrices()
        u, _, vt = np.linalg.svd(matrices.mean(axis=0))
        mean = u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt
        return CameraMotion(rotation_vectors(matrices @ mean.T), self.times)

    def homographies(self, focal_length, image_shape, principal_point=None):
        """The homographies ``H = K R K^-1`` of the sampled orientations.

        ``H`` maps a pixel of the sharp image (pixel centres at integer coordinates,
        ``(x, y)`` = (column, row)) to where the instant's image puts it; the blurred
        image is ``mean_s image(H_s^-1 x)`` (:func:`fastblur.projective_blur`).

        Parameters
        ----------
        focal_length : float
            In pixels.
        image_shape : tuple
            ``(H, W)`` or ``(H, W, C)``.
        principal_point : (float, float), optional
            ``(cx, cy)`` in pixels; ``((W - 1) / 2, (H - 1) / 2)`` by default.

        Returns
        -------
        ndarray, shape (S, 3, 3), float64
        """
        k = _intrinsics(focal_length, image_shape, principal_point)
        return k @ self.matrices() @ np.linalg.inv(k)

    def path(self, focal_length, image_shape, at, principal_point=None):
        """Where the sharp pixel ``at = (x, y)`` is at each instant, shape (S, 2)."""
        x, y = check_point(at, "at")
        h = self.homographies(focal_length, image_shape, principal_point)
        p = h @ np.array([x, y, 1.0])
        return p[:, :2] / p[:, 2:]

    def psf(self, focal_length, image_shape, at=None, size=65, principal_point=None, centred=True):
        """The PSF at one pixel: its path over the exposure, rasterised as
        :func:`~fastblur.kernels.camera_shake` rasterises (a polyline travelled at
        piecewise-constant speed, bilinear splatting).

        Parameters
        ----------
        focal_length : float
        image_shape : tuple
        at : (float, float), optional
            The pixel ``(x, y)``; the principal point by default.
        size : int, optional
        principal_point : (float, float), optional
        centred : bool, optional
            True: centroid on tap ``(size - 1) // 2`` (as camera_shake). False: the
            pixel's own position on that tap, so the PSF also shows the net shift.

        Returns
        -------
        ndarray, shape (size, size), float32
            Sums to 1 (to the mass that falls inside when ``centred=False``).

        Raises
        ------
        ValueError
            ``centred=True`` and the path does not fit ``size``.
        """
        size = check_count(size, "size", low=1)
        k = _intrinsics(focal_length, image_shape, principal_point)
        at = (k[0, 2], k[1, 2]) if at is None else at
        points = self.path(focal_length, image_shape, at, principal_point)
        if len(points) < 2:
            points = np.concatenate([points, points])
        weights = np.diff(self.times) if len(self.times) > 1 else np.ones(1)
        if centred:
            psf = rasterize_centred(points, weights, size)
            if psf is None:
                raise ValueError(f"the path at {tuple(at)} does not fit size={size}; raise size")
            return psf
        psf = splat_polyline(points - np.asarray(at, dtype=np.float64) + kernel_centre(size),
                             weights / weights.sum(), size)
        return psf.astype(np.float32)


def _roll_stream(rng):
    """A generator for roll that leaves ``rng``'s stream untouched (``rng.spawn``)."""
    try:
        return rng.spawn(1)[0]
    except (AttributeError, TypeError, ValueError):  # a bit generator without a SeedSequence
        return np.random.default_rng(np.random.SeedSequence(rng.bit_generator.state["state"]["state"]))


def camera_motion(exposure=0.5, rng=None, samples=None, roll=1.0):
    """A camera rotation over one exposure: camera_shake's hand-shake model with roll.

    Yaw and pitch are drawn as :func:`~fastblur.kernels.camera_shake` draws them (same
    ``rng`` draws: the PSF at the principal point equals camera_shake's, see
    :mod:`fastblur.kernels.camera_motion`); roll follows the same tremor and drift model,
    with its own tremor frequency and noise, from ``rng.spawn(1)``, and the shot's
    unsteadiness times ``roll``.

    Parameters
    ----------
    exposure : float, optional
        Seconds (> 0).
    rng : None, int or numpy.random.Generator, optional
    samples : int, optional
        Number of instants, evenly spaced over the exposure (>= 2), the angles linearly
        interpolated from the model's 1 kHz sampling. Default: the model's own sampling
        (``max(32, ceil(1000 exposure)) + 1`` instants).
    roll : float, optional
        Scale of the roll relative to yaw and pitch (>= 0; 0: no roll).

    Returns
    -------
    CameraMotion

    Examples
    --------
    >>> from fastblur.kernels import camera_motion
    >>> motion = camera_motion(rng=0, samples=96)
    >>> motion.rotations.shape, motion.homographies(1000, (720, 1280)).shape
    ((96, 3), (96, 3, 3))
    """
    exposure = check_positive_number(exposure, "exposure")
    roll = check_real(roll, "roll", low=0.0)
    if samples is not None:
        samples = check_count(samples, "samples", low=2)
    rng = as_rng(rng)
    roll_rng = _roll_stream(rng)
    angles = _draw_angles(exposure, rng)  # exactly camera_shake's draws, in its order
    segments, dt = _segments(exposure)
    f0 = roll_rng.uniform(*TREMOR_BAND)
    unsteadiness = roll * math.exp(UNSTEADINESS_SIGMA * roll_rng.standard_normal())
    noise = roll_rng.standard_normal((2, 2 * (segments + 1) + 2))
    roll_angle = _shake_angles(noise, dt, f0, unsteadiness * TREMOR_RMS,
                               unsteadiness * DRIFT_RMS_VELOCITY, DRIFT_CORNER)[:, 0]
    times = np.arange(segments + 1) * dt
    yaw, pitch = angles[:, 0], angles[:, 1]
    if samples is not None:
        resampled = np.linspace(0.0, exposure, int(samples))
        yaw, pitch, roll_angle = (np.interp(resampled, times, a) for a in (yaw, pitch, roll_angle))
        times = resampled
    return CameraMotion(rotation_vectors(_orientations(yaw, pitch, roll_angle)), times)
