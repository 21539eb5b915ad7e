"""One SBDD blurry/sharp pair from a sharp image, kernels and object masks."""
from dataclasses import dataclass, field

import numpy as np

from .. import _validation
from ..primitives import blur_masked, smooth_masks
from . import formation
from .formation import NoiseConfig, SaturationConfig, StreakConfig

__all__ = ["PairResult", "synthesize_pair", "valid_offset"]


@dataclass
class PairResult:
    """A synthesised pair, before quantisation.

    Attributes
    ----------
    blurry : ndarray, shape (Ho, Wo) or (Ho, Wo, C), float32
        sRGB values in the 0-255 scale, clipped to [0, 255].
    sharp : ndarray, shape (Ho, Wo) or (Ho, Wo, C), float32
        The target on the same ``valid`` grid, 0-255 scale, *not* clipped (highlights
        brightened by the gain exceed 255; :func:`~fastblur.sbdd.formation.quantize`
        clips).
    weights : ndarray, shape (n + 1, Ho, Wo), float32
        The soft SBDD weights, background first.
    params : dict
        What was used: ``crf``, ``gamma``, ``exponential_factor``,
        ``illumination_gain``, ``kernel_shape``, ``offset`` (top, left of the valid grid
        in the input), ``saturated_fraction`` (or None), ``saturation_boost``,
        ``saturation_boost_in_blurry``, ``streaks`` (list of ``(i, j, ri, rj, spike)``),
        ``noise``. JSON-serialisable.
    """

    blurry: np.ndarray
    sharp: np.ndarray
    weights: np.ndarray
    params: dict = field(default_factory=dict)

    def to_uint8(self):
        """``(blurry, sharp)`` as the 8-bit images written to disk (clip, truncate)."""
        return formation.quantize(self.blurry), formation.quantize(self.sharp)


def valid_offset(kernel_shape):
    """Top-left corner ``(kh // 2, kw // 2)`` of the ``valid`` grid in the input image.

    With the reference's correlation ``fftconvolve(x, K[::-1, ::-1], 'valid')``, output
    pixel ``(r, c)`` is centred on input pixel ``(r + kh // 2, c + kw // 2)`` for a kernel
    centred on tap ``(kh // 2, kw // 2)``, so the sharp target is
    ``L[kh // 2 : kh // 2 + Ho, kw // 2 : kw // 2 + Wo]``. For odd sizes this is the
    reference's crop ``[K // 2 : -(K // 2)]``; for even sizes the reference's slice is one
    row and column shorter than the blurry image (it is this target without its last
    row and column).
    """
    return kernel_shape[0] // 2, kernel_shape[1] // 2


def _as_sharp(sharp):
    """``(image (H, W, C), was_2d)``: uint8 kept, other real dtypes in [0, 255] as float."""
    image = np.asarray(sharp)
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise TypeError(f"sharp must be a real image (uint8 or float in [0, 255]), got dtype {image.dtype}")
    if image.ndim not in (2, 3) or 0 in image.shape:
        raise ValueError(f"sharp must be a non-empty (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        if not np.all(np.isfinite(image)):
            raise ValueError("sharp must be finite: it contains NaN or inf")
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise ValueError(f"sharp must lie in [0, 255], got values in [{low:g}, {high:g}]")
    if image.ndim == 2:
        return image[:, :, None], True
    return image, False


def _changed_samples(shape, streaks, boosted_mask):
    """Where streaks or the saturation boost changed the linear image, or None."""
    if not streaks and boosted_mask is None:
        return None
    changed = np.zeros(shape, bool) if boosted_mask is None else boosted_mask == 255
    for i, j, ri, rj, _ in streaks:
        changed[i - ri : i + ri, j - rj : j + rj, :] = True
    return changed


def _check_config(value, kind, name):
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be None or a {kind.__name__}, got {type(value).__name__}")
    return value


def synthesize_pair(
    sharp,
    kernels,
    object_masks,
    *,
    gamma=2.2,
    crf="gamma",
    exponential_factor=7.0,
    illumination_gain=None,
    saturation=None,
    streaks=None,
    noise=None,
    rng=None,
    backend="auto",
):
    """Synthesise one SBDD blurry/sharp pair (DESIGN, "The SBDD formation model").

    1. Weights ``W = smooth_masks(object_masks, K[:, ::-1, ::-1])``: ``W_i = (K_i ⋆ M_i) /
       (sum_j K_j ⋆ M_j + 1e-6)`` with the background ``M_0 = 1 - union(M_i)``.
    2. ``L = gain * f(sharp)``, ``f`` the camera response (``crf``).
    3. Optional saturation mask, streaks and saturation boost change ``L``.
    4. ``B = sum_i W_i * (K_i ⋆ L)``; optional noise; optional boost of the blurry
       image; ``clip(B, 0, 255)``.
    5. ``blurry = f^-1(B)``, ``sharp = f^-1(L)`` on the ``valid`` grid (not clipped).

    ``⋆`` is the reference generator's application of a stored kernel,
    ``scipy.signal.fftconvolve(x, K[::-1, ::-1], 'valid')``: kernels are given as stored
    for the reference (SBDD ``.mat`` files), and a PSF ``P`` meant for true convolution
    (:mod:`fastblur.kernels`) is passed as ``P[::-1, ::-1]``.

    Parameters
    ----------
    sharp : ndarray, shape (H, W) or (H, W, C)
        sRGB image, uint8 (the norm) or float in [0, 255].
    kernels : array_like, shape (n + 1, kh, kw)
        Background kernel first, then one per object mask; computed in float32.
    object_masks : array_like, shape (n, H, W)
        Object masks (non-zero inside); ``n`` may be 0.
    gamma : float, optional
        Exponent of the ``"gamma"`` response (2.2).
    crf : {'gamma', 'exponential', None}, optional
        Camera response; ``None`` blurs the sRGB values as they are.
    exponential_factor : float, optional
        ``a`` of the ``"exponential"`` response (7).
    illumination_gain : float, optional
        The gain ``g`` multiplying the linear image (the dataset layer draws
        ``g = 1 + 2 j u``); ``None`` means 1.
    saturation : SaturationConfig, optional
        Compute the saturation mask and apply its boosts; ``None``: no mask.
    streaks : StreakConfig, optional
        Random white streaks; ``None``: none.
    noise : NoiseConfig, optional
        Poisson / Gaussian noise on the blurry image; ``None``: none.
    rng : None, int or numpy.random.Generator, optional
        Random stream of the streaks, boosts and noise. Draws, in order: streaks
        (:func:`~fastblur.sbdd.formation.add_streaks`); the saturation boost
        ``u`` (factor ``1 + 4 u``) if it applies; the noise
        (:func:`~fastblur.sbdd.formation.add_noise`); the blurry boost ``u`` (factor
        ``4 u``) if it applies.
    backend : str, optional
        Passed to :func:`fastblur.smooth_masks` and :func:`fastblur.blur_masked`.

    Returns
    -------
    PairResult
        ``blurry`` and ``sharp`` of shape ``(H - kh + 1, W - kw + 1[, C])``, float32;
        ``weights`` ``(n + 1, Ho, Wo)``; ``params``. The sharp target is the input
        cropped by ``(kh // 2, kw // 2)`` at the top left (:func:`valid_offset`).

    Raises
    ------
    TypeError, ValueError
        Bad dtype/shape of ``sharp``, ``kernels`` or ``object_masks`` (masks must be
        ``(len(kernels) - 1, H, W)``), a kernel larger than the image, NaN/inf, an
        unknown ``crf``, non-positive ``gamma``/``exponential_factor``/gain, a config
        of the wrong type, or streaks on an image not larger than twice the kernel.

    Notes
    -----
    Where the reference generator's code departs from DESIGN's model, this follows
    DESIGN:

    * exponential response: the reference leaves its gamma correction on, so it also
      raises both images to ``1 / gamma`` after the exponential inverse, and it clips
      the blurry image after the inverse instead of before; here the exponential
      inverse is applied alone, after clipping;
    * Poisson noise (never enabled by the reference's command line) is a photon count
      at 255 here, where the reference scales by the number of distinct values;
    * the saturation mask is computed only when ``saturation`` is given.

    As the reference, outputs are made 8-bit by clipping and truncation
    (:meth:`PairResult.to_uint8`). The sharp target of a uint8 image is looked up per
    8-bit code from the reference's float64 round trip (except where streaks or boosts
    changed ``L``), so its bytes equal the reference's; the blurry image agrees to
    float32 accuracy and can differ by one code where a value lies within that of an
    integer.

    Examples
    --------
    >>> import numpy as np
    >>> from fastblur.sbdd import synthesize_pair
    >>> rng = np.random.default_rng(0)
    >>> sharp = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    >>> kernels = np.full((2, 9, 9), 1 / 81, np.float32)
    >>> masks = np.zeros((1, 64, 80), bool); masks[0, 20:40, 30:60] = True
    >>> pair = synthesize_pair(sharp, kernels, masks)
    >>> pair.blurry.shape, pair.sharp.shape, pair.weights.shape
    ((56, 72, 3), (56, 72, 3), (2, 56, 72))
    """
    image, was_2d = _as_sharp(sharp)
    kernels = _validation.as_kernel_stack(kernels, np.dtype(np.float32))
    masks = _validation.as_masks(object_masks)
    if masks.shape[1:] != image.shape[:2]:
        raise ValueError(
            f"object_masks must have the image's spatial shape {image.shape[:2]}, "
            f"got {masks.shape[1:]}"
        )
    if len(kernels) != len(masks) + 1:
        raise ValueError(
            f"kernels must hold n + 1 = {len(masks) + 1} kernels (background first) for "
            f"{len(masks)} object masks, got {len(kernels)}"
        )
    kh, kw = kernels.shape[1:]
    _validation.check_fits(image.shape[:2], (kh, kw), "valid", "kernels")
    crf, gamma, exponential_factor = formation.check_crf(crf, gamma, exponential_factor)
    gain = 1.0 if illumination_gain is None else _validation.check_real(
        illumination_gain, "illumination_gain", 0.0, low_inclusive=False
    )
    saturation = _check_config(saturation, SaturationConfig, "saturation")
    streaks = _check_config(streaks, StreakConfig, "streaks")
    noise = _check_config(noise, NoiseConfig, "noise")
    rng = np.random.default_rng(rng)
    response = dict(crf=crf, gamma=gamma, exponential_factor=exponential_factor)

    conv_kernels = np.ascontiguousarray(kernels[:, ::-1, ::-1])
    weights = smooth_masks(masks, conv_kernels, backend=backend)
    linear = formation.linearize(image, gain=gain, **response)

    mask, fraction = None, None
    if saturation is not None:
        mask, fraction = formation.saturation_mask(linear, saturation.threshold)
        if fraction < saturation.min_fraction:
            mask = None
    drawn_streaks = formation.add_streaks(linear, rng, streaks, (kh, kw)) if streaks else []
    boost = None
    if mask is not None and saturation.boost:
        boost = 1.0 + 4.0 * float(rng.random())
        linear[mask == 255] *= np.float32(boost)

    channels = linear.shape[2]
    blur_mask = mask is not None and saturation.boost_in_blurry
    if blur_mask:
        both = blur_masked(np.concatenate([linear, mask], axis=2), conv_kernels, weights, backend=backend)
        blurry = np.ascontiguousarray(both[..., :channels])
        blurred_mask = both[..., channels:]
    else:
        blurry = blur_masked(linear, conv_kernels, weights, backend=backend)
    formation.add_noise(blurry, rng, noise)
    blurry_boost = None
    if blur_mask:
        blurry_boost = 4.0 * float(rng.random())
        blurred_mask *= np.float32(blurry_boost)
        blurry += blurred_mask

    np.clip(blurry, 0, 255, out=blurry)
    formation.delinearize(blurry, out=blurry, **response)
    top, left = valid_offset((kh, kw))
    ho, wo = blurry.shape[:2]
    window = (slice(top, top + ho), slice(left, left + wo))
    if image.dtype == np.uint8:
        # a function of the 8-bit code where streaks and boosts left L alone
        target = formation.lookup(formation.round_trip_lut(gain=gain, **response), image[window])
        changed = _changed_samples(linear.shape, drawn_streaks, mask if boost is not None else None)
        if changed is not None:
            changed = changed[window]
            target[changed] = formation.delinearize(linear[window][changed], **response)
    else:
        target = formation.delinearize(linear[window], **response)

    params = dict(
        response,
        illumination_gain=gain,
        kernel_shape=[int(kh), int(kw)],
        offset=[int(top), int(left)],
        saturated_fraction=fraction,
        saturation_boost=boost,
        saturation_boost_in_blurry=blurry_boost,
        streaks=[list(s) for s in drawn_streaks],
        noise=None if noise is None else dict(
            poisson_peak=noise.poisson_peak, gaussian_std=noise.gaussian_std
        ),
    )
    if was_2d:
        blurry, target = blurry[:, :, 0], target[:, :, 0]
    return PairResult(blurry=blurry, sharp=target, weights=weights, params=params)
