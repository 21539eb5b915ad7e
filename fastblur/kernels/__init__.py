"""Blur kernels: PSF generation (camera shake, random trajectories, linear motion) and I/O.

Generators return float32 ``(size, size)`` PSFs as images, non-negative, summing to 1,
with their centroid on tap ``(size - 1) // 2`` so that blurring with them by true
convolution (:func:`fastblur.convolve`) does not shift the image::

    camera_shake(size=65, exposure=0.5, focal_length=1000, rng=None)   physiological hand shake
    trajectory_kernel(size=65, length=60, anxiety=0.005, exposure=1.0, rng=None)
                                                                       Boracchi & Foi (2012)
    linear_motion(length, angle, size=None)                            uniform linear motion

:func:`camera_motion` draws the camera's rotation itself (yaw, pitch and roll): a
:class:`CameraMotion` whose homographies feed :func:`fastblur.projective_blur`.

Files: :func:`load` / :func:`save` (``.mat`` key ``K`` as the SBDD kernel files, ``.npy``,
``.png``), :func:`load_list` for SBDD list files. ``fastblur-kernels`` writes datasets.
"""
from .shake import camera_shake
from .camera_motion import CameraMotion, camera_motion
from .contact_sheet import contact_sheet
from .io import KernelList, load, load_list, save, save_list
from .linear import linear_motion
from .measure import centroid, extent, nonzero_taps
from .trajectory import trajectory_kernel

__all__ = [
    "CameraMotion",
    "KernelList",
    "camera_motion",
    "camera_shake",
    "centroid",
    "contact_sheet",
    "extent",
    "linear_motion",
    "load",
    "load_list",
    "nonzero_taps",
    "save",
    "save_list",
    "trajectory_kernel",
]
