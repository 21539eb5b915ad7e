"""PSNR and Gaussian SSIM restricted to a valid-region mask.

With no mask both equal the usual full-image values: :func:`masked_psnr` is
``skimage.metrics.peak_signal_noise_ratio`` and :func:`masked_ssim` is
``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, channel_axis=-1)`` computed in float64 (as scikit-image 0.17,
the version the RealBlur and SBDD scripts pin, computed it).
"""
import cv2
import numpy as np

from .._validation import check_min_side, check_ndim, check_same_shape, check_shape

SSIM_K1 = 0.01
SSIM_K2 = 0.03
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # 11 taps at sigma 1.5, as Wang et al. and scikit-image use


def _as_pair(reference, test):
    reference = np.asarray(reference)
    test = np.asarray(test)
    check_same_shape(reference, test, ("reference", "test"))
    check_ndim(reference, (2, 3), "reference", "2-D (H, W) or 3-D (H, W, C)")
    if reference.ndim == 2:
        reference, test = reference[:, :, None], test[:, :, None]
    return reference, test


def _as_mask(mask, spatial_shape):
    if mask is None:
        return None
    mask = np.asarray(mask)
    check_shape(mask, spatial_shape, "mask", "(H, W) = ")
    if mask.dtype != np.bool_ and not np.all((mask == 0) | (mask == 1)):
        raise ValueError("mask must be boolean or contain only 0 and 1")
    return mask.astype(bool, copy=False)


def masked_psnr(reference, test, mask=None, data_range=1.0):
    """Peak signal-to-noise ratio over the pixels where ``mask`` is set.

    Parameters
    ----------
    reference, test : ndarray, shape (H, W) or (H, W, C), float
        Same shape.
    mask : ndarray, shape (H, W), bool or {0, 1}, optional
        Valid region; every pixel when omitted. All channels of a valid pixel count.
    data_range : float
        Peak value (1 for images in [0, 1]).

    Returns
    -------
    float
        ``10 log10(data_range**2 / mse)`` in dB, the squared error summed in float64 over
        the valid pixels and channels and divided by their number. ``inf`` when the images
        agree exactly on the valid region, ``nan`` when the mask is empty.
    """
    reference, test = _as_pair(reference, test)
    mask = _as_mask(mask, reference.shape[:2])
    difference = reference - test
    if mask is not None:
        difference = difference[mask]
    if difference.size == 0:
        return float("nan")
    mse = np.sum(difference * difference, dtype=np.float64) / difference.size
    if mse == 0:
        return float("inf")
    return float(10 * np.log10(data_range**2 / mse))


def gaussian_window(sigma=SSIM_SIGMA, truncate=SSIM_TRUNCATE):
    """The normalised 1-D Gaussian of ``scipy.ndimage.gaussian_filter``, float64.

    Radius ``int(truncate * sigma + 0.5)``: 5 at the default sigma, so 11 taps.
    """
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-0.5 / sigma**2 * x * x)
    return window / window.sum()


def ssim_map(reference, test, data_range=1.0, sigma=SSIM_SIGMA):
    """Per-pixel SSIM with Gaussian weights and population (co)variances, float64.

    The local statistics are Gaussian-filtered with reflected borders (scipy's
    ``mode="reflect"``, OpenCV's ``BORDER_REFLECT``), channel by channel.

    Parameters
    ----------
    reference, test : ndarray, shape (H, W) or (H, W, C)
        Same shape, at least ``2 * radius + 1`` pixels on each side.
    data_range : float
    sigma : float

    Returns
    -------
    ndarray, shape (H, W, C), float64
        The SSIM map (a 2-D input gets a channel axis of length 1).
    """
    reference, test = _as_pair(reference, test)
    window = gaussian_window(sigma)
    check_min_side(reference, window.size, "images", " for SSIM")
    x = np.ascontiguousarray(reference, dtype=np.float64)
    y = np.ascontiguousarray(test, dtype=np.float64)

    def smooth(image):
        # cv2 filters up to 4 channels at once; more channels are filtered one by one
        if image.shape[2] <= 4:
            out = cv2.sepFilter2D(image, cv2.CV_64F, window, window, borderType=cv2.BORDER_REFLECT)
            return out.reshape(image.shape)
        return np.stack([smooth(image[:, :, [c]])[:, :, 0] for c in range(image.shape[2])], axis=2)

    mu_x, mu_y = smooth(x), smooth(y)
    var_x = smooth(x * x) - mu_x * mu_x
    var_y = smooth(y * y) - mu_y * mu_y
    cov_xy = smooth(x * y) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    return numerator / denominator


def masked_ssim(reference, test, mask=None, data_range=1.0, sigma=SSIM_SIGMA):
    """Mean Gaussian SSIM over the valid region, away from the image border.

    The SSIM map of :func:`ssim_map` is cropped by the window radius on every side (as
    scikit-image does), then averaged over the pixels of the cropped ``mask``, channel by
    channel, and the channel means are averaged: the RealBlur protocol's SSIM.

    Parameters
    ----------
    reference, test : ndarray, shape (H, W) or (H, W, C), float
    mask : ndarray, shape (H, W), bool or {0, 1}, optional
        Every pixel when omitted.
    data_range : float
    sigma : float

    Returns
    -------
    float
        ``nan`` when no valid pixel is left after cropping.
    """
    reference, test = _as_pair(reference, test)
    mask = _as_mask(mask, reference.shape[:2])
    similarity = ssim_map(reference, test, data_range, sigma)
    pad = gaussian_window(sigma).size // 2
    inner = (slice(pad, similarity.shape[0] - pad), slice(pad, similarity.shape[1] - pad))
    similarity = similarity[inner]
    if mask is None:
        return float(similarity.mean(dtype=np.float64))
    mask = mask[inner]
    count = np.count_nonzero(mask)
    if count == 0:
        return float("nan")
    # the mask is the same for every channel, so the mean of per-channel means is this
    return float(similarity[mask].sum(dtype=np.float64) / (count * similarity.shape[2]))
