"""The interface every backend implements.

The public functions in :mod:`fastblur.primitives` validate their arguments, extend the
image for the requested mode and boundary, and then call one of these methods, which
only ever compute a ``valid`` convolution on already-checked, C-contiguous arrays of one
float dtype (float32 or float64) in channels-last layout.
"""
import numpy as np

from .._array_module import get_array_module

#: A kernel whose |weight| is at most this over a whole tile (or at a pixel, for the
#: direct backends) is not evaluated there. Weights are meant to be in [0, 1], so the
#: error this makes at a pixel is at most ``ZERO_WEIGHT * max|x| * sum|k|``, a relative
#: 1e-7 for a normalised PSF: below float32 resolution.
ZERO_WEIGHT = 1e-7


#: FFT round-off bound, in units of ``eps * sum|k|``, of a binary-mask convolution.
ROUNDOFF_EPS = 64


def zero_fft_roundoff(smoothed, kernels):
    """Set the FFT round-off around 0 of mask convolutions to exactly 0, in place.

    Where no mask reaches, an FFT leaves noise of about ``eps * sum|k|`` instead of 0;
    SBDD normalises by ``sum_j S_j + 1e-6``, which turns that noise into weights far
    outside [0, 1]. Values with ``|S_i| <= ROUNDOFF_EPS * eps * sum|k_i|`` (7.6e-6 for a
    float32 PSF, 1.4e-14 in float64) become 0, as the direct backends compute them.

    Parameters
    ----------
    smoothed : ndarray, shape (N, Ho, Wo)
    kernels : ndarray, shape (N, kh, kw)
    """
    xp = get_array_module(smoothed)
    bound = ROUNDOFF_EPS * np.finfo(smoothed.dtype).eps * xp.abs(kernels).sum(axis=(1, 2))
    # copyto, not a boolean-mask assignment: on a GPU that reads the count back (a sync)
    xp.copyto(smoothed, 0, where=xp.abs(smoothed) <= bound.astype(smoothed.dtype)[:, None, None])
    return smoothed


def normalise_groups(smoothed, group, eps):
    """``smoothed / (sum of its group + eps)`` in place, for maps ``(B * group, H, W)``."""
    grouped = smoothed.reshape((-1, group) + smoothed.shape[1:])
    total = grouped.sum(axis=1, keepdims=True)
    total += smoothed.dtype.type(eps)
    grouped /= total
    return smoothed


def binary_bytes(masks):
    """``masks`` as a C-contiguous uint8 array of 0/1 (a view when already boolean)."""
    masks = np.asarray(masks)
    if masks.dtype != np.bool_:
        masks = masks != 0
    return np.ascontiguousarray(masks).view(np.uint8)


class Backend:
    """Base class of the backends; subclasses override the ``*_valid`` methods.

    Attributes
    ----------
    name : str
        Registry name (``"numpy"``, ``"native"``, ...).
    variant : str or None
        Which build of the backend's code runs (the native backend's SIMD level, for
        example), where it has more than one; :func:`fastblur.explain` prints it.
    """

    name = "base"
    variant = None

    def estimate(self, problem):
        """How this backend would run ``problem`` (a :class:`fastblur._problem.Problem`).

        Returns
        -------
        fastblur.backends.cost_model.Decision or None
            Its choice between its own methods, with their estimates, for a backend
            that has more than one for the call (``cupy``'s ``blur_masked``); None
            where it has one way only (the ``auto`` cost model compares the CPU
            backends with each other).
        """
        return None

    def convolve_valid(self, image, kernel):
        """``valid`` convolution of every channel.

        Parameters
        ----------
        image : ndarray, shape (H, W, C)
        kernel : ndarray, shape (kh, kw)

        Returns
        -------
        ndarray, shape (H - kh + 1, W - kw + 1, C)
        """
        raise NotImplementedError

    def blur_masked_valid(self, image, kernels, weights):
        """``sum_i weights[i] * (kernels[i] * image)`` (gather form).

        Parameters
        ----------
        image : ndarray, shape (H, W, C)
        kernels : ndarray, shape (N, kh, kw)
        weights : ndarray, shape (N, Ho, Wo)
            On the output grid, ``Ho = H - kh + 1``, ``Wo = W - kw + 1``.

        Returns
        -------
        ndarray, shape (Ho, Wo, C)
        """
        raise NotImplementedError

    def blur_product_valid(self, image, kernels, weights):
        """``sum_i kernels[i] * (weights[i] * image)`` (scatter form).

        Parameters
        ----------
        image : ndarray, shape (H, W, C)
        kernels : ndarray, shape (N, kh, kw)
        weights : ndarray, shape (N, H, W)
            On the input grid.

        Returns
        -------
        ndarray, shape (H - kh + 1, W - kw + 1, C)
        """
        raise NotImplementedError

    def convolve_masks_valid(self, masks, kernels):
        """``kernels[i] * masks[i]`` for binary masks (before SBDD normalisation).

        Parameters
        ----------
        masks : ndarray of bool, shape (N, H, W)
        kernels : ndarray, shape (N, kh, kw)

        Returns
        -------
        ndarray, shape (N, H - kh + 1, W - kw + 1), dtype of ``kernels``
        """
        raise NotImplementedError

    def smooth_masks_valid(self, masks, kernels, group, eps):
        """SBDD's soft weights: :meth:`convolve_masks_valid`, then each map divided by the
        sum of its group's maps plus ``eps`` (backends may fuse the two).

        Parameters
        ----------
        masks : ndarray of bool, shape (B * group, H, W)
            Each item's ``group`` masks, background first.
        kernels : ndarray, shape (B * group, kh, kw)
        group : int
        eps : float

        Returns
        -------
        ndarray, shape (B * group, H - kh + 1, W - kw + 1), dtype of ``kernels``
        """
        return normalise_groups(self.convolve_masks_valid(masks, kernels), group, eps)

    def blur_masked_batch_valid(self, images, kernels, weights):
        """:meth:`blur_masked_valid` for a batch; backends may fuse it (one launch).

        Parameters
        ----------
        images : ndarray, shape (B, H, W, C)
        kernels : ndarray, shape (B, N, kh, kw)
        weights : ndarray, shape (B, N, Ho, Wo)

        Returns
        -------
        ndarray, shape (B, Ho, Wo, C)
        """
        return np.stack([self.blur_masked_valid(*item) for item in zip(images, kernels, weights)])
