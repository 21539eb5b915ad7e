"""Alignment of a restored image to its ground truth, as the RealBlur evaluation does it.

Steps (Rim et al., RealBlur, ECCV 2020; adapted by the SBDD authors):

1. least-squares intensity matching: ``restored`` is scaled by the single gain
   ``g = sum(gt * restored) / sum(restored * restored)`` (all pixels, all channels);
2. an ECC homography (``cv2.findTransformECC``, ``MOTION_HOMOGRAPHY``, 100 iterations,
   ``eps = 0``, Gaussian pre-filter of size 5) between the grey versions, the ground truth
   being the template; the identity if ECC fails;
3. the scaled image is warped onto the ground-truth grid (bicubic, inverse map, reflected
   border) and a valid-region mask is the warp of ones (nearest, zeros outside).

Everything is computed in float32 as the reference code does (OpenCV's ECC takes 8-bit or
float32 images only), so the estimated warp is the reference's warp bit for bit.
"""
from typing import NamedTuple

import cv2
import numpy as np

from .._validation import check_choice

ECC_ITERATIONS = 100
ECC_EPS = 0.0
ECC_GAUSS_FILTER_SIZE = 5
ECC_FAILURE_POLICIES = ("identity", "partial")


class Alignment(NamedTuple):
    """What :func:`align` found and produced.

    Attributes
    ----------
    aligned : ndarray, shape (H, W, C), float32
        ``gain * restored`` warped onto the ground-truth grid, zero outside the valid region.
    gt : ndarray, shape (H, W, C), float32
        The ground truth, zero outside the valid region.
    mask : ndarray, shape (H, W), float32
        1 where the warped restored image has a source pixel, 0 elsewhere.
    warp : ndarray, shape (3, 3), float64
        The homography ``M`` with ``restored(M p) ~ gt(p)`` for ground-truth pixel
        coordinates ``p = (x, y, 1)`` (OpenCV's inverse-map convention).
    gain : float
        The intensity-matching gain applied to ``restored``.
    ecc_failed : bool
        True when ``cv2.findTransformECC`` raised (the warp is then the failure policy's).
    """

    aligned: np.ndarray
    gt: np.ndarray
    mask: np.ndarray
    warp: np.ndarray
    gain: float
    ecc_failed: bool


def check_ecc_failure_policy(on_ecc_failure):
    """Raise TypeError for a non-string ``on_ecc_failure``, ValueError unless it is one of
    :data:`ECC_FAILURE_POLICIES`."""
    check_choice(on_ecc_failure, ECC_FAILURE_POLICIES, "on_ecc_failure")


def intensity_match(restored, gt):
    """Scale ``restored`` by the least-squares gain that best matches ``gt``.

    Parameters
    ----------
    restored, gt : ndarray, shape (H, W, C), float32
        Same shape.

    Returns
    -------
    scaled : ndarray, shape (H, W, C), float32
        ``gain * restored``.
    gain : float
        ``sum(gt * restored) / sum(restored ** 2)``, summed in float32 as the reference
        does (so the scaled image, hence ECC's input, is the reference's bit for bit).
    """
    gain = np.sum(gt * restored) / np.sum(restored * restored)
    return gain * restored, float(gain)


def _grey(image):
    if image.shape[2] == 1:
        return np.ascontiguousarray(image[:, :, 0])
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def estimate_homography(restored, gt, on_ecc_failure="identity"):
    """ECC homography taking ground-truth pixel coordinates to ``restored`` coordinates.

    Parameters
    ----------
    restored, gt : ndarray, shape (H, W, C), float32, C in {1, 3}
        RGB images are converted to grey with OpenCV's ``COLOR_RGB2GRAY`` weights.
    on_ecc_failure : {"identity", "partial"}
        What to return when ``cv2.findTransformECC`` raises (it does when the correlation
        would decrease or becomes NaN, e.g. on flat or unrelated images). ``"identity"``
        (the documented protocol) returns the identity; ``"partial"`` returns the estimate
        ECC had reached when it stopped, which is what the SBDD evaluation scripts really
        used (OpenCV updates the matrix they pass in place before raising).

    Returns
    -------
    warp : ndarray, shape (3, 3), float64
        The float32 ECC estimate, widened.
    failed : bool
        Whether ECC raised.
    """
    check_ecc_failure_policy(on_ecc_failure)
    warp = np.eye(3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ECC_ITERATIONS, ECC_EPS)
    try:
        _, warp = cv2.findTransformECC(
            _grey(gt), _grey(restored), warp, cv2.MOTION_HOMOGRAPHY, criteria,
            None, ECC_GAUSS_FILTER_SIZE,
        )
    except cv2.error:
        if on_ecc_failure == "identity":
            warp = np.eye(3, dtype=np.float32)
        return warp.astype(np.float64), True
    return warp.astype(np.float64), False


def warp_to_gt(scaled, warp, shape):
    """Warp ``scaled`` onto a ground-truth grid of spatial ``shape`` with ``warp``.

    Parameters
    ----------
    scaled : ndarray, shape (h, w, C), float32
    warp : ndarray, shape (3, 3)
        Ground-truth to ``scaled`` coordinates, as returned by :func:`estimate_homography`.
    shape : tuple of int
        ``(H, W)`` of the ground truth.

    Returns
    -------
    aligned : ndarray, shape (H, W, C), float32
        Bicubic inverse warp with reflected border, multiplied by ``mask``.
    mask : ndarray, shape (H, W), float32
        Nearest-neighbour inverse warp of ones with zero border: 1 where ``aligned`` has a
        source pixel.
    """
    height, width = shape
    matrix = np.asarray(warp, dtype=np.float64)
    flags = cv2.WARP_INVERSE_MAP
    aligned = cv2.warpPerspective(
        scaled, matrix, (width, height), flags=cv2.INTER_CUBIC | flags,
        borderMode=cv2.BORDER_REFLECT,
    )
    if aligned.ndim == 2:
        aligned = aligned[:, :, None]
    mask = cv2.warpPerspective(
        np.ones((height, width), np.float32), matrix, (width, height),
        flags=cv2.INTER_NEAREST | flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )
    aligned *= mask[:, :, None]
    return aligned, mask


def align(restored, gt, on_ecc_failure="identity"):
    """Intensity-match, ECC-align and warp ``restored`` onto ``gt`` (RealBlur protocol).

    Parameters
    ----------
    restored, gt : ndarray, shape (H, W, C), float32, C in {1, 3}
        Same shape, values nominally in [0, 1].
    on_ecc_failure : {"identity", "partial"}
        See :func:`estimate_homography`.

    Returns
    -------
    Alignment
        The aligned and masked images, the mask, the warp, the gain and whether ECC failed.
    """
    scaled, gain = intensity_match(restored, gt)
    warp, failed = estimate_homography(scaled, gt, on_ecc_failure)
    aligned, mask = warp_to_gt(scaled, warp, gt.shape[:2])
    return Alignment(aligned, gt * mask[:, :, None], mask, warp, gain, failed)
