"""One SBDD blurry/sharp pair from a sharp image, kernels and object masks."""
from dataclasses import asdict, dataclass, field

import numpy as np

from .. import _validation
from . import formation
from .camera import ProjectiveCamera, camera_kernels
from .pipeline import PairDraws, check_options, drawn, form, valid_offset

__all__ = ["PairResult", "synthesize_pair", "valid_offset"]


@dataclass
class PairResult:
    """A synthesised pair, float32 (or, from ``synthesize_pair(..., quantize=True)``, the
    uint8 images of :meth:`to_uint8`).

    Attributes
    ----------
    blurry : ndarray, shape (Ho, Wo) or (Ho, Wo, C), float32
        sRGB values in the 0-255 scale, clipped to [0, 255].
    sharp : ndarray, shape (Ho, Wo) or (Ho, Wo, C), float32
        The target on the same ``valid`` grid, 0-255 scale, *not* clipped: highlights
        brightened by the gain exceed 255 (:meth:`to_uint8` clips).
    weights : ndarray, shape (n + 1, Ho, Wo), float32
        The soft SBDD weights, background first.
    params : dict
        What was used, JSON-serialisable: ``crf``, ``gamma``, ``exponential_factor``,
        ``illumination_gain``, ``kernel_shape``, ``offset`` (top, left of the valid grid in
        the input), ``saturated_fraction`` (or None), ``saturation_boost``,
        ``saturation_boost_in_blurry``, ``streaks`` (list of ``(i, j, ri, rj, spike)``),
        ``noise`` and, with a projective camera, ``camera``.
    """

    blurry: np.ndarray
    sharp: np.ndarray
    weights: np.ndarray
    params: dict = field(default_factory=dict)

    def to_uint8(self):
        """``(blurry, sharp)`` as the 8-bit images written to disk (clip, truncate)."""
        if self.blurry.dtype == np.uint8:  # quantised when formed
            return self.blurry, self.sharp
        return formation.quantize(self.blurry), formation.quantize(self.sharp)


def _as_sharp(sharp):
    """``(image (H, W, C), was_2d)``: uint8 kept, other real dtypes in [0, 255] as float."""
    image = np.asarray(sharp)
    if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise TypeError(f"sharp must be a real image (uint8 or float in [0, 255]), got dtype {image.dtype}")
    _validation.check_ndim(image, (2, 3), "sharp", "an (H, W) or (H, W, C) image")
    if image.dtype != np.uint8:
        if not np.all(np.isfinite(image)):
            raise ValueError("sharp must be finite: it contains NaN or inf")
        low, high = float(image.min()), float(image.max())
        if low < 0 or high > 255:
            raise ValueError(f"sharp must lie in [0, 255], got values in [{low:g}, {high:g}]")
    return (image[:, :, None], True) if image.ndim == 2 else (image, False)


def synthesize_pair(sharp, kernels, object_masks, *, gamma=2.2, crf="gamma", exponential_factor=7.0,
                    illumination_gain=None, saturation=None, streaks=None, noise=None, rng=None, backend="auto",
                    camera="uniform", quantize=False):
    """Synthesise one SBDD blurry/sharp pair (DESIGN, "The SBDD formation model").

    Weights ``W = smooth_masks(object_masks, K[:, ::-1, ::-1])``; ``L = gain * f(sharp)``,
    ``f`` the camera response, then changed by the saturation boost and streaks;
    ``B = sum_i W_i * (K_i ⋆ L)``, then noise, blurry boost and ``clip(B, 0, 255)``;
    ``blurry = f^-1(B)`` and ``sharp = f^-1(L)`` (not clipped) on the ``valid`` grid.
    ``⋆`` is the reference generator's correlation ``fftconvolve(x, K[::-1, ::-1], 'valid')``:
    kernels are given as stored for the reference (SBDD ``.mat`` files); a PSF ``P`` for
    true convolution (:mod:`fastblur.kernels`) is passed as ``P[::-1, ::-1]``.

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
        Random stream, drawn in this order: the streaks
        (:func:`~fastblur.sbdd.formation.add_streaks`), the saturation boost ``u`` (factor
        ``1 + 4 u``) if it applies, the noise (:func:`~fastblur.sbdd.formation.add_noise`),
        the blurry boost ``u`` (factor ``4 u``) if it applies.
    backend : str, optional
        Passed to :func:`fastblur.smooth_masks` and :func:`fastblur.blur_masked`.
    camera : 'uniform' or ProjectiveCamera, optional
        ``'uniform'`` (the reference's model): ``kernels[0]`` blurs the background. A
        :class:`~fastblur.sbdd.camera.ProjectiveCamera`: its projective field blurs the
        background, each object's kernel is convolved with the camera's PSF at its centroid
        and the weights take the PSF at the principal point instead of ``kernels[0]``
        (:mod:`fastblur.sbdd.camera`); ``params["camera"]`` is its record.
    quantize : bool, optional
        Return ``blurry`` and ``sharp`` as uint8, what ``fastblur-gen`` writes: equal to
        :meth:`PairResult.to_uint8` of the float32 pair, made in one pass without it.

    Returns
    -------
    PairResult
        ``blurry`` and ``sharp`` of shape ``(H - kh + 1, W - kw + 1[, C])``, float32 (uint8
        with ``quantize``); ``weights`` ``(n + 1, Ho, Wo)``; ``params``. The sharp target is
        the input cropped by ``(kh // 2, kw // 2)`` at the top left (:func:`valid_offset`).

    Raises
    ------
    TypeError, ValueError
        Bad dtype/shape or NaN/inf in ``sharp``, ``kernels`` or ``object_masks`` (masks must
        be ``(len(kernels) - 1, H, W)``), a kernel larger than the image, an unknown ``crf``,
        non-positive ``gamma``/``exponential_factor``/gain, a config of the wrong type, or
        streaks on an image not larger than twice the kernel.

    Notes
    -----
    Where the reference generator's code departs from DESIGN's model, this follows DESIGN
    (the formation guide lists the differences). Outputs are made 8-bit as the reference
    makes them, by clipping and truncation: the sharp target of a uint8 image has the
    reference's bytes (except where streaks or boosts changed ``L``); the blurry image
    agrees to float32 accuracy (within one code).

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
    _validation.check_shape(masks, (len(masks),) + image.shape[:2], "object_masks", "(n, H, W) = ")
    if len(kernels) != len(masks) + 1:
        raise ValueError(f"kernels must hold n + 1 = {len(masks) + 1} kernels (background first) for "
                         f"{len(masks)} object masks, got {len(kernels)}")
    _validation.check_fits(image.shape[:2], kernels.shape[1:], "valid", "kernels")
    options = check_options(crf, gamma, exponential_factor, saturation, streaks, noise)
    gain = 1.0 if illumination_gain is None else _validation.check_real(illumination_gain, "illumination_gain", 0.0,
                                                                         low_inclusive=False)
    projective = _check_camera(camera)
    if projective is not None:
        kernels = camera_kernels(kernels, masks, projective, image.shape[:2])
    draws = PairDraws(np.random.default_rng(rng), options["streaks"])
    formed = form(image[None], kernels[None], masks[None], [gain], draws, batched=False, backend=backend,
                  camera=projective, quantize=_validation.check_flag(quantize, "quantize"), **options)
    params = dict(crf=options["crf"], gamma=options["gamma"], exponential_factor=options["exponential_factor"],
                  illumination_gain=gain, kernel_shape=[int(n) for n in kernels.shape[1:]],
                  offset=[int(n) for n in valid_offset(kernels.shape[1:])],
                  saturated_fraction=None if formed.fractions is None else float(formed.fractions[0]),
                  saturation_boost=drawn(formed.saturation_boosts[0]),
                  saturation_boost_in_blurry=drawn(formed.blurry_boosts[0]), streaks=[list(s) for s in draws.streaks],
                  noise=None if options["noise"] is None else asdict(options["noise"]))
    if projective is not None:
        params["camera"] = projective.record()
    channels = 0 if was_2d else slice(None)
    return PairResult(blurry=formed.blurry[0, ..., channels], sharp=formed.sharp[0, ..., channels],
                      weights=formed.weights[0], params=params)


def _check_camera(camera):
    """None for the uniform model, the ProjectiveCamera itself for the projective one."""
    if isinstance(camera, ProjectiveCamera):
        return camera
    if camera == "uniform":
        return None
    if isinstance(camera, str):
        raise ValueError(f"camera must be 'uniform' or a ProjectiveCamera, got {camera!r}")
    raise TypeError(f"camera must be 'uniform' or a ProjectiveCamera, got {type(camera).__name__}")
