"""The SBDD formation model, written once: one pair or a batch, on NumPy or CuPy.

:func:`form` runs DESIGN's steps on a batch ``(B, H, W, C)``: one pair for
:func:`fastblur.sbdd.synthesize_pair`, recipes for :func:`fastblur.sbdd.form_batch`. Its
random draws come from a *draw source*, asked in the formation's order:

* ``add_streaks(linear, margin)``: draw and add the streaks; the changed pixels;
* ``saturation_boosts(wanted)``: factors ``1 + 4 u`` of the pairs whose kept mask is boosted;
* ``add_noise(blurry, config)``: the sensor noise;
* ``blurry_boosts(wanted)``: factors ``4 u`` of the blurred mask added to the blurry image.

:class:`PairDraws` draws them from a pair's Generator when asked (so the blurry boost
comes after the noise); a batch (:class:`fastblur.sbdd.batch.RecipeBatch`) reads the
streaks and boosts from its recipes and draws its noise on the device.
"""
from dataclasses import dataclass
from functools import partial

import numpy as np

from .._array_module import get_array_module
from .._validation import check_instance
from ..primitives import blur_masked, blur_masked_batch, smooth_masks, smooth_masks_batch
from ..projective import projective_blur
from . import formation
from .formation import NoiseConfig, SaturationConfig, StreakConfig

__all__ = ["Formed", "PairDraws", "check_options", "form", "to_unit_range", "valid_offset"]


def valid_offset(kernel_shape):
    """Top-left corner ``(kh // 2, kw // 2)`` of the ``valid`` grid in the input image.

    With the reference's correlation ``fftconvolve(x, K[::-1, ::-1], 'valid')`` and a kernel
    centred on tap ``(kh // 2, kw // 2)``, output pixel ``(r, c)`` is centred on input pixel
    ``(r + kh // 2, c + kw // 2)``, so the sharp target is ``L[kh // 2 : kh // 2 + Ho,
    kw // 2 : kw // 2 + Wo]``: the reference's crop ``[K // 2 : -(K // 2)]`` for odd sizes;
    for even sizes the reference's slice lacks this target's last row and column.
    """
    return kernel_shape[0] // 2, kernel_shape[1] // 2


def check_options(crf="gamma", gamma=2.2, exponential_factor=7.0, saturation=None, streaks=None, noise=None):
    """The formation options, validated (errors name the argument), as a dict."""
    crf, gamma, exponential_factor = formation.check_crf(crf, gamma, exponential_factor)
    return dict(crf=crf, gamma=gamma, exponential_factor=exponential_factor,
                saturation=check_instance(saturation, SaturationConfig, "saturation"),
                streaks=check_instance(streaks, StreakConfig, "streaks"),
                noise=check_instance(noise, NoiseConfig, "noise"))


@dataclass
class Formed:
    """What :func:`form` returns: ``blurry`` (clipped) and ``sharp`` (not clipped), sRGB
    ``(B, Ho, Wo, C)`` float32 in the 0-255 scale, and ``weights`` ``(B, N, Ho, Wo)``, on
    the inputs' device; on the host, the saturated ``fractions`` ``(B,)`` (None without
    saturation) and the ``saturation_boosts`` and ``blurry_boosts`` ``(B,)`` applied
    (NaN where none was)."""

    blurry: object
    sharp: object
    weights: object
    fractions: object
    saturation_boosts: np.ndarray
    blurry_boosts: np.ndarray


def to_unit_range(blurry, sharp, quantize):
    """``(blurry, sharp)`` of the 0-255 scale as float32 in [0, 1], in place where it
    can: quantised to 8 bits as ``fastblur-gen`` writes them (clip, truncate), or with
    the target's highlights clipped."""
    xp = get_array_module(blurry)
    if quantize:
        blurry, sharp = (xp.floor(xp.clip(image, 0, 255)) for image in (blurry, sharp))
    else:
        sharp = xp.minimum(sharp, np.float32(255.0))
    blurry *= np.float32(1 / 255)
    sharp *= np.float32(1 / 255)
    return blurry, sharp


class PairDraws:
    """The draw source of one pair: its Generator ``rng``, drawn when the formation asks;
    ``streaks`` holds the streaks drawn, ``(i, j, ri, rj, spike)`` each."""

    def __init__(self, rng, streaks=None):
        self.rng, self.config, self.streaks = rng, streaks, []

    def draw_streaks(self, shape, margin):
        self.streaks = formation.draw_streaks(shape, self.rng, self.config, margin) if self.config else []
        return self.streaks

    def add_streaks(self, linear, margin):
        self.draw_streaks(linear.shape[1:], margin)
        return formation.add_streak_boxes(linear, *formation.streak_arrays([self.streaks]))

    def _uniform(self, wanted, low):
        return np.array([low + 4.0 * float(self.rng.random()) if w else np.nan for w in wanted])

    def saturation_boosts(self, wanted):
        return self._uniform(wanted, 1.0)

    def add_noise(self, blurry, config):
        for image in blurry:
            formation.add_noise(image, self.rng, config)

    def blurry_boosts(self, wanted):
        return self._uniform(wanted, 0.0)

    def recipe(self, shape, margin, saturation):
        """``(streaks, saturation boost, blurry boost)`` drawn ahead, as :func:`form`
        draws them for a pair whose saturation mask is kept and whose noise comes from
        another generator (a batch's); boosts are None where ``saturation`` has none."""
        boost, in_blurry = (False, False) if saturation is None else (saturation.boost, saturation.boost_in_blurry)
        streaks = self.draw_streaks(shape, margin)
        return streaks, drawn(self.saturation_boosts([boost])[0]), drawn(self.blurry_boosts([in_blurry])[0])


def drawn(factor):
    """A boost factor as a float, or None where none was drawn (NaN)."""
    return None if np.isnan(factor) else float(factor)


def _per_pair(xp, values, like):
    """Host values ``(B,)`` as a float32 device array broadcasting over ``like``."""
    return xp.asarray(np.asarray(values, np.float32)).reshape((-1,) + (1,) * (like.ndim - 1))


def _primitives(batched, backend):
    """``(smooth, blur)`` on batches: the batch primitives, or the one-image primitives
    on a batch of one (whose last bits the per-pair path keeps)."""
    if batched:  # the weights come from the smoothing: finite
        return (lambda m, k: smooth_masks_batch(m, k, backend=backend),
                lambda x, k, w: blur_masked_batch(x, k, w, backend=backend, check_finite=False))
    return (lambda m, k: smooth_masks(m[0], k[0], backend=backend)[None],
            lambda x, k, w: blur_masked(x[0], k[0], w[0], backend=backend, check_finite=False)[None])


def _projective_blur_step(source, kernels, weights, camera, backend):
    """``W_0 * P(L) + sum_{i >= 1} W_i (K_i * L)`` for a batch of one: ``P`` the projective
    blur of ``camera`` on the ``valid`` grid of the stored kernels' frame."""
    if len(source) != 1:
        raise ValueError("a projective camera blurs one pair at a time (a batch of one)")
    image = source[0]
    top, left = valid_offset(kernels.shape[2:])
    height, width = weights.shape[2:]
    background = projective_blur(image, camera.homographies(image.shape), backend=backend)
    blurry = weights[0, 0][..., None] * background[top:top + height, left:left + width]
    if kernels.shape[1] > 1:
        blurry += blur_masked(image, kernels[0, 1:], weights[0, 1:], backend=backend)
    return blurry[None]


def form(images, kernels, masks, gains, draws, *, crf="gamma", gamma=2.2, exponential_factor=7.0,
         saturation=None, noise=None, streaks=None, batched=True, backend="auto", camera=None, quantize=False):
    """Form the pairs of a batch (DESIGN, "The SBDD formation model"); only ``draws`` is random.

    Parameters
    ----------
    images : ndarray, shape (B, H, W, C)
        Sharp sRGB images: uint8, or (NumPy only) float in [0, 255].
    kernels : ndarray, shape (B, N, kh, kw), float32
        Background first, stored as the reference applies them (correlation).
    masks : ndarray, shape (B, N - 1, H, W), bool
    gains : numpy.ndarray, shape (B,)
        Illumination gains.
    draws : draw source
        See the module's docstring (:class:`PairDraws` for one pair).
    crf, gamma, exponential_factor, saturation, noise
        As :func:`fastblur.sbdd.synthesize_pair`, checked (:func:`check_options`);
        ``streaks`` is the draw source's business.
    batched : bool
        Blur with the batch primitives, or (a batch of one) with the one-image ones.
    backend : str
    camera : fastblur.sbdd.camera.ProjectiveCamera, optional
        A batch of one only: its projective field blurs the background and ``kernels``
        are the ones :func:`~fastblur.sbdd.camera.camera_kernels` made; None: uniform.
    quantize : bool
        Return ``blurry`` and ``sharp`` as the uint8 images written to disk (``quantize`` of
        the float ones, made without them by :func:`~fastblur.sbdd.formation.encode_8bit`).

    Returns
    -------
    Formed
    """
    xp = get_array_module(images)
    response = dict(crf=crf, gamma=gamma, exponential_factor=exponential_factor)
    smooth, blur = _primitives(batched, backend)
    conv_kernels = xp.ascontiguousarray(kernels[:, :, ::-1, ::-1])
    weights = smooth(masks, conv_kernels)
    gains = np.asarray(gains, np.float64)
    linear = formation.linearize(images, gain=gains, **response)

    mask, fractions = None, None
    boost = in_blurry = np.zeros(len(gains), bool)
    if saturation is not None:
        mask, fractions = formation.saturation_masks(linear, saturation.threshold)
        kept = fractions >= saturation.min_fraction
        boost, in_blurry = kept & saturation.boost, kept & saturation.boost_in_blurry
    changed = draws.add_streaks(linear, kernels.shape[2:])
    boosts = draws.saturation_boosts(boost)
    boosted = ~np.isnan(boosts)
    if boosted.any():
        where = (mask == 255) & (_per_pair(xp, boosted, mask) > 0)
        linear *= xp.where(where, _per_pair(xp, np.where(boosted, boosts, 1.0), mask), np.float32(1.0))
        changed = where if changed is None else changed | where

    channels = linear.shape[3]
    source = xp.concatenate([linear, mask], axis=3) if in_blurry.any() else linear
    blurry = (blur(source, conv_kernels, weights) if camera is None
              else _projective_blur_step(source, conv_kernels, weights, camera, backend))
    if in_blurry.any():
        blurry, blurred_mask = xp.ascontiguousarray(blurry[..., :channels]), blurry[..., channels:]
    if noise is not None:
        draws.add_noise(blurry, noise)
    blurry_boosts = draws.blurry_boosts(in_blurry)
    if in_blurry.any():
        blurry += blurred_mask * _per_pair(xp, np.where(in_blurry, blurry_boosts, 0.0), blurred_mask)

    if quantize:
        blurry = formation.encode_8bit(blurry, **response)
        sharp_of = partial(formation.encode_8bit, clip=False, **response)
    else:
        xp.clip(blurry, 0, 255, out=blurry)
        formation.delinearize(blurry, out=blurry, **response)
        sharp_of = partial(formation.delinearize, **response)
    top, left = valid_offset(kernels.shape[2:])
    window = (slice(None), slice(top, top + blurry.shape[1]), slice(left, left + blurry.shape[2]))
    if images.dtype == np.uint8:  # a function of the 8-bit code where streaks and boosts left L alone
        table = formation.round_trip_lut(gain=gains, **response)
        sharp = formation.lookup(formation.quantize(table) if quantize else table, images[window])
        if changed is not None:
            changed = xp.broadcast_to(changed[window], sharp.shape)
            sharp = xp.where(changed, sharp_of(linear[window]), sharp)
    else:
        sharp = sharp_of(linear[window])
    return Formed(blurry, sharp, weights, fractions, boosts, blurry_boosts)
