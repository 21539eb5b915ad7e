"""The camera of an SBDD pair: one uniform kernel, or the projective field of a rotation.

``uniform`` (the reference's model): the background kernel ``K_0`` blurs the whole
background. ``projective``: a :class:`ProjectiveCamera` (a camera rotation over the
exposure, :func:`fastblur.kernels.camera_motion`, seen with ``focal_length`` pixels)
blurs the background by :func:`fastblur.projective_blur`, so the blur varies across the
frame as hand shake's does (roll turns it toward the corners). Its approximations, by
design (:func:`camera_kernels`):

* each moving object is blurred by its own kernel convolved with the camera's PSF at
  the object's centroid (the camera's blur is taken as uniform over the object), cropped
  to the kernel frame and renormalised to the object kernel's mass;
* the soft weights (:func:`fastblur.smooth_masks`) smooth the background mask with the
  camera's PSF at the principal point; ``K_0`` itself is not used;
* the rotations are referred to their mean orientation
  (:meth:`~fastblur.kernels.CameraMotion.centred`), so the sharp target is aligned with
  the blurred background on average.

A pair is recomputed from its manifest record by :meth:`ProjectiveCamera.from_record`.
"""
from dataclasses import dataclass

import numpy as np

from .._validation import check_real
from ..kernels.camera_motion import CameraMotion, camera_motion
from ..projective import psf_field

__all__ = ["CAMERA_MODELS", "ProjectiveCamera", "draw_camera", "camera_kernels"]

CAMERA_MODELS = ("uniform", "projective")
#: Instants a drawn trajectory is sampled at (the warp-sum's samples).
CAMERA_SAMPLES = 64


@dataclass(frozen=True)
class ProjectiveCamera:
    """A camera rotation over the exposure and the focal length it is seen with.

    Parameters
    ----------
    focal_length : float
        In pixels; the principal point is the image centre.
    rotations : array_like, shape (S, 3)
        Rotation vectors (rad, ``cv2.Rodrigues`` convention, camera frame x right,
        y down, z forward) relative to the sharp image's orientation.
    """

    focal_length: float
    rotations: tuple

    def __post_init__(self):
        check_real(self.focal_length, "focal_length", 0.0, low_inclusive=False)
        rotations = np.asarray(self.rotations, np.float64)
        if rotations.ndim != 2 or rotations.shape[1] != 3 or len(rotations) < 1:
            raise ValueError(f"rotations must have shape (S, 3), got {rotations.shape}")
        if not np.isfinite(rotations).all():
            raise ValueError("rotations must be finite")
        object.__setattr__(self, "focal_length", float(self.focal_length))
        object.__setattr__(self, "rotations", tuple(map(tuple, rotations.tolist())))

    @classmethod
    def from_motion(cls, motion, focal_length):
        return cls(focal_length, motion.rotations)

    @classmethod
    def from_record(cls, record):
        """The camera of a manifest record (``record["camera"]``)."""
        if record.get("model") != "projective":
            raise ValueError(f"not a projective camera record: {record!r}")
        return cls(record["focal_length"], record["rotations"])

    def record(self):
        """The manifest record: ``{"model", "focal_length", "rotations"}`` (JSON-ready)."""
        return {"model": "projective", "focal_length": self.focal_length,
                "rotations": [list(r) for r in self.rotations]}

    def homographies(self, image_shape):
        """``(S, 3, 3)`` homographies ``K R K^-1`` for an image of ``image_shape``."""
        rotations = np.asarray(self.rotations)
        motion = CameraMotion(rotations, np.arange(len(rotations), dtype=np.float64))
        return motion.homographies(self.focal_length, image_shape)

    def psf(self, image_shape, at, size):
        """The camera's PSF (true convolution, zero displacement on the centre tap) at
        pixel ``at = (x, y)``, ``(size, size)`` float32."""
        # psf_field's grid with one node: put that node at ``at`` by translating the frame.
        shift = np.array([[1.0, 0.0, -at[0]], [0.0, 1.0, -at[1]], [0.0, 0.0, 1.0]])
        local = shift @ self.homographies(image_shape) @ np.linalg.inv(shift)
        return psf_field(local, (1, 1), grid=(1, 1), size=size)[0, 0]


def draw_camera(rng, exposure=0.5, focal_length=1000.0, roll=1.0, exposure_spread=0.0,
                roll_spread=0.0, samples=CAMERA_SAMPLES):
    """Draw a :class:`ProjectiveCamera`: exposure ``exposure * (1 + exposure_spread * v)``
    and roll scale ``roll * (1 + roll_spread * v')``, ``v, v'`` uniform in [-1, 1], then
    :func:`~fastblur.kernels.camera_motion` (``samples`` instants) referred to its mean
    orientation.

    Parameters
    ----------
    rng : numpy.random.Generator
    exposure, focal_length : float
    roll : float
        Roll scale relative to yaw and pitch (0: none).
    exposure_spread, roll_spread : float
        Relative spreads in [0, 1).
    samples : int

    Returns
    -------
    ProjectiveCamera
    """
    exposure_spread = check_real(exposure_spread, "exposure_spread", 0.0, 0.999)
    roll_spread = check_real(roll_spread, "roll_spread", 0.0, 0.999)
    exposure = exposure * (1.0 + exposure_spread * rng.uniform(-1.0, 1.0))
    roll = roll * (1.0 + roll_spread * rng.uniform(-1.0, 1.0))
    motion = camera_motion(exposure, rng, samples=samples, roll=roll).centred()
    return ProjectiveCamera.from_motion(motion, focal_length)


def camera_kernels(kernels, masks, camera, image_hw):
    """The stored kernels of a projective pair (the module's first two approximations):
    ``K_0`` replaced by the camera's PSF at the principal point, each object's kernel
    convolved with the camera's PSF at its centroid.

    Parameters
    ----------
    kernels : ndarray, shape (n + 1, kh, kw), float32
        Stored (correlation) kernels, as :func:`~fastblur.sbdd.synthesize_pair` takes them.
    masks : ndarray, shape (n, H, W), bool
    camera : ProjectiveCamera
    image_hw : tuple

    Returns
    -------
    ndarray, shape (n + 1, kh, kw), float32
    """
    from scipy.signal import convolve

    kh, kw = kernels.shape[1:]
    size = max(kh, kw)
    height, width = image_hw
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    top, left = (size - 1) // 2 - (kh - 1) // 2, (size - 1) // 2 - (kw - 1) // 2
    frame = (slice(top, top + kh), slice(left, left + kw))  # the kernels' frame in the camera's PSFs
    out = np.empty_like(kernels)
    background = camera.psf(image_hw, centre, size)[frame].astype(np.float64)
    out[0] = (background / background.sum())[::-1, ::-1]
    for i, mask in enumerate(masks, start=1):
        own = kernels[i][::-1, ::-1].astype(np.float64)  # as a true-convolution PSF
        rows, cols = np.nonzero(mask)
        centroid = (float(cols.mean()), float(rows.mean())) if len(rows) else centre  # (x, y)
        shake = camera.psf(image_hw, centroid, size)[frame].astype(np.float64)
        both = convolve(own, shake, mode="same")
        total = both.sum()
        out[i] = (both * (own.sum() / total if total > 0 else 0.0))[::-1, ::-1]
    return out
