"""Independent float64 references: direct convolution by summing shifted copies.

Nothing here imports fastblur; the padding for each mode is re-derived from the
definition of scipy.signal.convolve (``same`` keeps ``full[(k - 1) // 2 :][:n]``).
"""
import numpy as np


def direct_convolve_valid(image, kernel):
    """float64 ``valid`` true convolution of (H, W[, C]) by (kh, kw)."""
    image = np.asarray(image, np.float64)
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape
    ho, wo = image.shape[0] - kh + 1, image.shape[1] - kw + 1
    out = np.zeros((ho, wo) + image.shape[2:])
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * image[kh - 1 - a : kh - 1 - a + ho, kw - 1 - b : kw - 1 - b + wo]
    return out


def extend_for_mode(image, kernel_shape, mode, boundary):
    """Pad the spatial axes so a ``valid`` convolution gives the ``mode`` output."""
    kh, kw = kernel_shape
    if mode == "valid":
        return np.asarray(image)
    if mode == "full":
        widths = [(kh - 1, kh - 1), (kw - 1, kw - 1)]
    else:
        widths = [(kh // 2, (kh - 1) // 2), (kw // 2, (kw - 1) // 2)]
    widths += [(0, 0)] * (np.ndim(image) - 2)
    return np.pad(np.asarray(image, np.float64), widths, mode=boundary)


def reference_convolve(image, kernel, mode, boundary):
    return direct_convolve_valid(extend_for_mode(image, np.shape(kernel), mode, boundary), kernel)


def _expand(weights, image):
    return weights if image.ndim == 2 else weights[..., None]


def reference_blur_masked(image, kernels, weights, mode, boundary):
    """``sum_i w_i (k_i * x)`` from its definition."""
    image = np.asarray(image, np.float64)
    return sum(
        _expand(np.asarray(w, np.float64), image) * reference_convolve(image, k, mode, boundary)
        for k, w in zip(kernels, weights)
    )


def reference_blur_product(image, kernels, weights, mode, boundary):
    """``sum_i k_i * (w_i x)`` from its definition (the products are extended)."""
    image = np.asarray(image, np.float64)
    return sum(
        reference_convolve(_expand(np.asarray(w, np.float64), image) * image, k, mode, boundary)
        for k, w in zip(kernels, weights)
    )


def reference_smooth_masks(object_masks, kernels, mode, boundary, eps=1e-6):
    """SBDD weights from DESIGN.md step 1, with true convolution by ``kernels``."""
    masks = np.asarray(object_masks).astype(bool)
    background = 1.0 - masks.any(axis=0)
    stack = [background] + [m.astype(np.float64) for m in masks]
    smoothed = np.stack([reference_convolve(m, k, mode, boundary) for m, k in zip(stack, kernels)])
    return smoothed / (smoothed.sum(axis=0) + eps)


def relative_error(result, expected):
    """max |result - expected| / max |expected| (or the absolute error if that is 0)."""
    expected = np.asarray(expected, np.float64)
    scale = np.abs(expected).max()
    error = np.abs(np.asarray(result, np.float64) - expected).max()
    return error / scale if scale > 0 else error


#: numpy.pad boundary names -> scipy.ndimage modes that extend the samples the same way.
NDIMAGE_MODES = {"reflect": "mirror", "symmetric": "reflect", "edge": "nearest",
                 "wrap": "grid-wrap", "constant": "grid-constant"}


def reference_warp_sum(image, homographies, boundary="reflect", xs=None, ys=None):
    """``mean_s image(H_s^-1 x)`` by bilinear ``scipy.ndimage.map_coordinates``, float64.

    Pixel centres at integer coordinates, ``x`` = column; the output grid is the image's
    unless ``xs``/``ys`` (1-D output coordinates) are given.
    """
    from scipy import ndimage

    image = np.asarray(image, np.float64)
    planes = image[..., None] if image.ndim == 2 else image
    h, w = image.shape[:2]
    xs = np.arange(w, dtype=np.float64) if xs is None else np.asarray(xs, np.float64)
    ys = np.arange(h, dtype=np.float64) if ys is None else np.asarray(ys, np.float64)
    gx, gy = np.meshgrid(xs, ys)
    points = np.stack([gx.ravel(), gy.ravel(), np.ones(gx.size)])
    out = np.zeros(gx.shape + planes.shape[2:])
    for homography in homographies:
        q = np.linalg.inv(homography) @ points
        coords = [q[1] / q[2], q[0] / q[2]]
        for c in range(planes.shape[2]):
            out[..., c] += ndimage.map_coordinates(
                planes[..., c], coords, order=1, mode=NDIMAGE_MODES[boundary], cval=0.0
            ).reshape(gx.shape)
    out /= len(homographies)
    return out[..., 0] if image.ndim == 2 else out
