"""The SBDD pair written the reference generator's way: the bench peer of fastblur.sbdd.

This restates, step for step, how the original SBDD generator (Carbajal et al.) forms a
pair: float64 throughout, one full :func:`scipy.signal.fftconvolve` per mask (soft
weights) and per kernel (blur), the illumination gain applied through an HSV round trip
(scale V), the camera response by ``**`` on float64 arrays. Nothing here imports fastblur.

It is used as the peer in ``bench/bench_sbdd.py`` and as a parity check in
``tests/test_sbdd_formation.py`` (fastblur's pairs must match it).
"""
import numpy as np
from scipy.signal import fftconvolve
from skimage.color import hsv2rgb, rgb2hsv


def reference_masks(npz_path, score_threshold=0.9, max_objects=5, min_area=4000):
    """Object masks from a detectron2 ``.npz``, selected as the reference selects them."""
    data = np.load(npz_path, allow_pickle=False)
    instances = data["pred_masks"]
    areas = np.count_nonzero(instances, axis=(1, 2))
    scores = data["scores"]
    chosen = np.logical_and(scores > score_threshold, areas > min_area)
    chosen_masks = instances[[i for i, c in enumerate(chosen) if c]]
    order = np.argsort(scores[chosen])[::-1][:max_objects]
    return np.array([chosen_masks[n] for n in order], bool).reshape((-1,) + instances.shape[1:])


def reference_weights(object_masks, kernels):
    """Soft weights as the reference computes them (float64, valid grid, background first).

    Parameters
    ----------
    object_masks : ndarray, shape (n, H, W), bool
    kernels : ndarray, shape (n + 1, kh, kw)
        As stored for the reference (applied by correlation).

    Returns
    -------
    ndarray, shape (Ho, Wo, n + 1), float64
        The reference keeps the weights channels-last.
    """
    height, width = object_masks.shape[1:]
    background = np.ones((height, width), np.float32)
    masks = [background]
    for mask in object_masks:
        masks.append(mask.astype(np.float32))
        background[mask] = 0
    kh, kw = kernels.shape[1:]
    smoothed = np.zeros((height - kh + 1, width - kw + 1, len(masks)))
    for i, (mask, kernel) in enumerate(zip(masks, kernels)):
        smoothed[:, :, i] = fftconvolve(mask, kernel[::-1, ::-1], mode="valid")
    return smoothed / (smoothed.sum(axis=2)[:, :, None] + 1e-6)


def reference_pair(sharp, kernels, object_masks, gamma=2.2, crf="gamma", exponential_factor=7.0,
                   illumination_gain=None, gaussian_std=0.0, rng=None):
    """One pair, the reference's way.

    Parameters
    ----------
    sharp : ndarray, shape (H, W, 3), uint8
    kernels : ndarray, shape (n + 1, kh, kw)
        As stored for the reference.
    object_masks : ndarray, shape (n, H, W), bool
    gamma, crf, exponential_factor
        As :func:`fastblur.sbdd.synthesize_pair` (``crf`` in ``'gamma'``,
        ``'exponential'``, ``None``).
    illumination_gain : float, optional
        Applied by scaling V in HSV, as the reference does.
    gaussian_std : float
        Multiplicative Gaussian noise ``B + std * B * n``, ``n`` drawn in float64.
    rng : numpy.random.Generator, optional

    Returns
    -------
    blurry, sharp : ndarray, shape (Ho, Wo, 3), float64
        Before quantisation; ``sharp`` cropped to the valid grid by ``kh // 2``,
        ``kw // 2`` at the top left.
    """
    weights = reference_weights(object_masks, kernels)
    image = sharp.astype(np.float64)
    if crf == "exponential":
        image = -255.0 * np.log(-image / 255.0 + 1e-9 + 1.0) / exponential_factor
    elif crf == "gamma":
        image = 255.0 * (image / 255.0) ** gamma
    if illumination_gain is not None:
        hsv = rgb2hsv(image / 255.0)
        hsv[:, :, 2] *= illumination_gain
        image = 255.0 * hsv2rgb(hsv)
    kh, kw = kernels.shape[1:]
    blurry = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1, 3))
    for i, kernel in enumerate(kernels):
        blurred = fftconvolve(image, kernel[::-1, ::-1, None], mode="valid")
        blurry += weights[:, :, i][:, :, None] * blurred
    if gaussian_std:
        blurry += blurry * gaussian_std * rng.standard_normal(blurry.shape)
    np.clip(blurry, 0, 255, out=blurry)
    ho, wo = blurry.shape[:2]
    target = image[kh // 2 : kh // 2 + ho, kw // 2 : kw // 2 + wo]
    if crf == "exponential":
        blurry = 255.0 * (1.0 - np.exp(-exponential_factor * blurry / 255.0))
        target = 255.0 * (1.0 - np.exp(-exponential_factor * target / 255.0))
    elif crf == "gamma":
        blurry = 255.0 * (blurry / 255.0) ** (1.0 / gamma)
        target = 255.0 * (target / 255.0) ** (1.0 / gamma)
    return blurry, target


def to_uint8(image):
    """The reference's 8-bit conversion: clip, then truncate."""
    return np.clip(image, 0, 255).astype(np.uint8)
