"""The non-linear steps of the SBDD formation model, on float32 images in place.

Images here are ``(H, W, C)`` (or batches ``(B, H, W, C)``) float32 arrays in the 0-255
scale. The steps, in the order of DESIGN's "The SBDD formation model":

* camera response: :func:`linearize` (sRGB -> linear, times the illumination gain) and
  :func:`delinearize`, for the ``"gamma"`` curve ``L = 255 (S/255)^gamma`` and the
  ``"exponential"`` curve ``L = -255 log(1 - S/255 + 1e-9) / a``;
* :func:`saturation_mask` (pixels at or above 255, closed 3x3, smoothed with sigma 1);
* :func:`add_streaks` (small bright rectangles that the blur turns into streaks);
* :func:`add_noise` (Poisson, then multiplicative Gaussian ``B + std * B * n``);
* :func:`quantize` (clip to [0, 255], then truncate to 8 bits, as the reference);
  :func:`encode_8bit` is ``quantize(delinearize(...))`` in one pass.

Each step's docstring lists its random draws: together, the stream a pair consumes.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .._array_module import get_array_module, to_numpy
from .._validation import check_choice, check_count, check_flag, check_real

__all__ = [
    "CRFS", "NoiseConfig", "SaturationConfig", "StreakConfig", "add_noise", "add_streak_boxes", "add_streaks",
    "delinearize", "draw_streaks", "encode_8bit", "linearize", "lookup", "quantize", "response_lut",
    "round_trip_lut", "saturation_mask", "saturation_masks", "streak_arrays", "streak_layers", "streak_pixels",
]

#: Camera response curves: ``None`` treats the sRGB values as linear.
CRFS = ("gamma", "exponential", None)

#: Offset inside the exponential response's logarithm (the reference's 1e-9).
EXPONENTIAL_EPS = 1e-9

#: Rows processed at a time by the noise draws, to bound their float64 temporaries.
_NOISE_CHUNK_ELEMENTS = 1 << 18


def check_crf(crf, gamma, exponential_factor):
    """Validated ``(crf, gamma, exponential_factor)``; errors name the argument."""
    if crf is not None:
        check_choice(crf, CRFS, "crf")
    gamma = check_real(gamma, "gamma", 0.0, low_inclusive=False)
    exponential_factor = check_real(exponential_factor, "exponential_factor", 0.0, low_inclusive=False)
    return crf, gamma, exponential_factor


@dataclass(frozen=True)
class StreakConfig:
    """Random white streaks (the reference's ``--random_whyte_streaks``).

    With probability ``probability`` an image gets ``count`` rectangles, ``count`` uniform
    in ``[min_count, max_count)``, each adding a spike uniform in ``[min_increment,
    max_increment)`` to the linear image: a saturated light trail after the blur.
    """

    probability: float = 0.5
    min_count: int = 10
    max_count: int = 100
    min_increment: float = 0.0
    max_increment: float = 2000.0

    def __post_init__(self):
        check_real(self.probability, "streaks.probability", 0.0, high=1.0)
        low = check_count(self.min_count, "streaks.min_count", 0)
        high = check_count(self.max_count, "streaks.max_count", 0)
        if high <= low:
            raise ValueError(f"streaks.max_count must be greater than streaks.min_count (the count is drawn "
                             f"in [min_count, max_count)), got {low} and {high}")
        lo = check_real(self.min_increment, "streaks.min_increment", 0.0)
        hi = check_real(self.max_increment, "streaks.max_increment", 0.0)
        if hi < lo:
            raise ValueError(f"streaks.max_increment must be >= streaks.min_increment, got {lo:g} and {hi:g}")


@dataclass(frozen=True)
class SaturationConfig:
    """The saturation mask, computed when this config is given, and the boosts made from it.

    Attributes
    ----------
    boost : bool
        Multiply the saturated pixels (mask value 255) of the linear image by
        ``1 + 4 u`` before blurring (the reference's ``--saturation_streaks``).
    boost_in_blurry : bool
        Add ``4 u`` times the blurred mask to the blurry image only, after the noise (the
        reference's ``--sat_augmentation_in_blurry``).
    threshold : float
        Linear value from which a sample counts as saturated (255).
    min_fraction : float
        Saturated (pixel, channel) samples per pixel below which the mask is dropped, with
        no boost (the reference's 1/1000).
    """

    boost: bool = False
    boost_in_blurry: bool = False
    threshold: float = 255.0
    min_fraction: float = 1e-3

    def __post_init__(self):
        check_flag(self.boost, "saturation.boost")
        check_flag(self.boost_in_blurry, "saturation.boost_in_blurry")
        check_real(self.threshold, "saturation.threshold", 0.0, low_inclusive=False)
        check_real(self.min_fraction, "saturation.min_fraction", 0.0)


@dataclass(frozen=True)
class NoiseConfig:
    """Sensor noise added to the linear blurry image.

    Attributes
    ----------
    poisson_peak : float or None
        Photons collected at linear value 255: the blurry image becomes
        ``255 / peak * Poisson(B * peak / 255)``. ``None``: no Poisson noise.
    gaussian_std : float
        Relative standard deviation of the multiplicative Gaussian noise
        ``B + std * B * n`` (the reference's ``--noise_std``); 0: none.
    """

    poisson_peak: float = None
    gaussian_std: float = 0.0

    def __post_init__(self):
        if self.poisson_peak is not None:
            check_real(self.poisson_peak, "noise.poisson_peak", 0.0, low_inclusive=False)
        check_real(self.gaussian_std, "noise.gaussian_std", 0.0)


# -- camera response --------------------------------------------------------------------
def _forward64(values, crf, gamma, exponential_factor):
    """sRGB (0-255, float64) -> linear (0-255 scale), float64."""
    if crf == "gamma":
        return 255.0 * (values / 255.0) ** gamma
    if crf == "exponential":
        return -255.0 * np.log(1.0 - values / 255.0 + EXPONENTIAL_EPS) / exponential_factor
    return values


def response_lut(crf="gamma", gamma=2.2, exponential_factor=7.0, gain=1.0):
    """Linear value of every 8-bit code, times ``gain``: ``gain * f(0..255)``.

    Parameters
    ----------
    crf : {'gamma', 'exponential', None}
    gamma, exponential_factor : float
    gain : float or array_like
        One gain, or one per table (e.g. per pair of a batch).

    Returns
    -------
    ndarray, shape gain.shape + (256,), float32
        Evaluated in float64 and rounded once.
    """
    crf, gamma, exponential_factor = check_crf(crf, gamma, exponential_factor)
    gain = np.asarray(gain, np.float64)[..., None]
    return (gain * _forward64(np.arange(256.0), crf, gamma, exponential_factor)).astype(np.float32)


def round_trip_lut(crf="gamma", gamma=2.2, exponential_factor=7.0, gain=1.0):
    """sRGB value of the sharp target for every 8-bit code: ``f^-1(gain * f(0..255))``.

    Evaluated in float64 with the reference generator's operations, in its order, then
    rounded to float32 so that truncation gives the reference's 8-bit value: a float64
    result just below an integer (the round trip loses a few ulps, e.g. for 75 of the 256
    codes with gamma 2.2) becomes the float32 just below it (at most one ulp off).

    Parameters
    ----------
    crf, gamma, exponential_factor, gain
        As :func:`response_lut` (``gain`` may hold one gain per table).

    Returns
    -------
    ndarray, shape gain.shape + (256,), float32
    """
    crf, gamma, exponential_factor = check_crf(crf, gamma, exponential_factor)
    codes = np.arange(256, dtype=np.float64)
    if crf == "exponential":  # the reference's expression, whose rounding differs from _forward64's
        linear = 255.0 * (-(np.log(-(codes / 255.0) + EXPONENTIAL_EPS + 1) / 1) / exponential_factor)
    else:
        linear = _forward64(codes, crf, gamma, exponential_factor)
    values = linear = linear * np.asarray(gain, np.float64)[..., None]
    if crf == "gamma":
        values = 255.0 * ((linear / 255.0) ** (1.0 / gamma))
    elif crf == "exponential":
        values = 255.0 * -(np.exp(exponential_factor * -(linear / 255.0)) - 1)
    table = values.astype(np.float32)
    rounded_up = np.floor(table) > np.floor(values)
    table[rounded_up] = np.nextafter(np.floor(table[rounded_up]), np.float32(-np.inf))
    return table


def lookup(table, codes):
    """``table[codes]``: a 256-entry table and uint8 codes, or a table per image of a batch
    (OpenCV's LUT on the CPU, about twice as fast as :func:`numpy.take`).

    Parameters
    ----------
    table : ndarray, shape (256,) or (B, 256), float32 or uint8
        NumPy, or (with a batch) on the codes' device.
    codes : ndarray, shape (H, W, C) or (B, H, W, C), uint8
        May be a view with strided rows (a crop).

    Returns
    -------
    ndarray, shape of ``codes``, the table's dtype
    """
    xp = get_array_module(codes)
    if table.ndim == 2:
        if xp is np:
            return np.stack([lookup(one, image) for one, image in zip(table, codes)]) if len(codes) > 1 \
                else lookup(table[0], codes[0])[None]
        flat = codes.astype(np.int32) + (256 * xp.arange(len(codes), dtype=np.int32))[:, None, None, None]
        return xp.take(xp.asarray(table).reshape(-1), flat)
    import cv2

    if codes.ndim == 3 and codes.shape[2] <= 4 and codes.strides[2] == 1 and codes.strides[1] == codes.shape[2]:
        return cv2.LUT(codes, table).reshape(codes.shape)
    return np.take(table, codes)


def linearize(image, crf="gamma", gamma=2.2, exponential_factor=7.0, gain=1.0):
    """sRGB image to linear light, times the illumination gain.

    Parameters
    ----------
    image : ndarray, shape (H, W, C) or (B, H, W, C)
        uint8 (looked up in a 256-entry table), or float in [0, 255] (evaluated in
        float64, then rounded to float32; NumPy only).
    crf : {'gamma', 'exponential', None}
    gamma, exponential_factor : float
    gain : float or ndarray of shape (B,)
        Multiplies the linear image, one per image of a batch; values above 255 are kept.

    Returns
    -------
    ndarray, shape of ``image``, float32
        A new array, on the image's device.
    """
    if image.dtype == np.uint8:
        return lookup(response_lut(crf, gamma, exponential_factor, gain), image)
    out = _forward64(image.astype(np.float64), crf, gamma, exponential_factor)
    out *= np.reshape(gain, np.shape(gain) + (1,) * 3)
    return out.astype(np.float32)


def delinearize(linear, crf="gamma", gamma=2.2, exponential_factor=7.0, out=None):
    """Linear light back to sRGB values (0-255 scale, not clipped, not quantised).

    Parameters
    ----------
    linear : ndarray, float32
        Non-negative (clip first if need be); NumPy or CuPy, any shape.
    crf : {'gamma', 'exponential', None}
    gamma, exponential_factor : float
    out : ndarray, optional
        Where to write (``out=linear`` works in place); a new array by default.

    Returns
    -------
    ndarray, float32
    """
    xp = get_array_module(linear)
    if out is None:
        out = xp.empty(linear.shape, np.float32)
    if crf == "gamma":
        # 255 (x / 255)^(1/g) = 255^(1 - 1/g) x^(1/g): one power and one product; OpenCV's vectorised
        # pow, on contiguous float32 images, is about 1.3x numpy's, within 3e-7 relative
        exponent = 1.0 / gamma
        if (xp is np and linear.flags.c_contiguous and out.flags.c_contiguous and linear.ndim in (3, 4)
                and linear.shape[-1] <= 4 and linear.dtype == out.dtype == np.float32):
            import cv2

            images = (-1,) + linear.shape[-2:]  # a batch (B, H, W, C) as one tall (B H, W, C) image
            cv2.pow(linear.reshape(images), exponent, out.reshape(images))
        else:
            xp.power(linear, linear.dtype.type(exponent), out=out)
        out *= np.float32(255.0 ** (1.0 - exponent))
    elif crf == "exponential":
        # 255 (1 - exp(-a x / 255)) = -255 expm1(-a x / 255), accurate near 0
        xp.multiply(linear, np.float32(-exponential_factor / 255.0), out=out)
        xp.expm1(out, out=out)
        out *= np.float32(-255.0)
    elif out is not linear:
        out[...] = linear
    return out


# -- saturation -------------------------------------------------------------------------
def saturation_mask(linear, threshold=255.0):
    """The reference's saturation mask of a linear image.

    ``255 * (linear >= threshold)`` per channel, closed with a 3x3 square (grey-level
    closing, borders reflected, as :func:`skimage.morphology.closing`), smoothed by a
    Gaussian of sigma 1 (borders extended, truncated at 4 sigma, as
    :func:`skimage.filters.gaussian`) and floored (the reference stores it as integers).

    Parameters
    ----------
    linear : ndarray, shape (H, W, C), float32
    threshold : float

    Returns
    -------
    mask : ndarray, shape (H, W, C), float32
        Values in {0, 1, ..., 255}; 255 marks fully saturated samples.
    fraction : float
        Number of non-zero samples divided by ``H * W`` (the reference's measure).
    """
    mask, fractions = saturation_masks(linear[None], threshold)
    return mask[0], float(fractions[0])


def saturation_masks(linear, threshold=255.0):
    """:func:`saturation_mask` of each image of a batch, on the batch's device.

    Parameters
    ----------
    linear : ndarray, shape (B, H, W, C), float32
        NumPy, or CuPy (filtered by :mod:`cupyx.scipy.ndimage`).
    threshold : float

    Returns
    -------
    mask : ndarray, shape (B, H, W, C), float32
    fractions : numpy.ndarray, shape (B,), float64
        Each image's non-zero samples divided by ``H * W``.
    """
    xp = get_array_module(linear)
    if xp is np:
        from scipy import ndimage
    else:
        from cupyx.scipy import ndimage
    saturated = (linear >= np.float32(threshold)).view(np.uint8)
    closed = ndimage.grey_closing(saturated, size=(1, 3, 3, 1), mode="reflect")
    smoothing = dict(mode="nearest", truncate=4.0)
    if xp is np:
        mask = xp.multiply(closed, np.float32(255.0), dtype=np.float32)
        ndimage.gaussian_filter(mask, output=mask, sigma=(0.0, 1.0, 1.0, 0.0), **smoothing)
    else:
        # scipy sums each pass in float64 and stores float32 between the passes. cupyx
        # filters float32 input with float32 weights and sums, a few ulps off: at the
        # rims of saturated regions values within an ulp of 255 floor to 254 on one
        # side and 255 on the other, so the boost takes other pixels. Float64 input
        # makes cupyx use float64 weights and sums; each pass stores float32, as scipy.
        mask = xp.multiply(closed, 255.0, dtype=np.float64)
        for sigma in ((0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0)):
            mask = ndimage.gaussian_filter(mask.astype(np.float64, copy=False), sigma=sigma,
                                           output=np.float32, **smoothing)
    xp.floor(mask, out=mask)
    counts = xp.count_nonzero(mask.reshape(len(mask), -1), axis=1)
    fractions = to_numpy(counts) / float(linear.shape[1] * linear.shape[2])
    return mask, fractions


# -- streaks ----------------------------------------------------------------------------
def draw_streaks(shape, rng, config, margin):
    """The reference's random white streaks of an image of ``shape``, drawn from ``rng``.

    Random draws, in order: ``u = rng.random()``; if ``u < config.probability``:
    ``count = rng.integers(min_count, max_count)``, then for each streak
    ``i = rng.integers(mh, H - mh)``, ``j = rng.integers(mw, W - mw)``,
    ``ri = rng.integers(4)``, ``rj = rng.integers(5)``, ``v = rng.random()``. The streak
    adds ``min_increment + (max_increment - min_increment) v`` to
    ``linear[i - ri : i + ri, j - rj : j + rj, :]`` (empty when ``ri`` or ``rj`` is 0).

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` or ``(H, W, C)`` of the linear image.
    rng : numpy.random.Generator
    config : StreakConfig
    margin : tuple of int
        ``(mh, mw)``: streak centres keep this far from the border (the kernel size).

    Returns
    -------
    list of tuple
        ``(i, j, ri, rj, spike)`` for each streak drawn (empty if none).

    Raises
    ------
    ValueError
        If the image is not larger than twice ``margin`` (no room for a centre).
    """
    height, width = shape[:2]
    mh, mw = margin
    if height - mh <= mh or width - mw <= mw:
        raise ValueError(f"streaks need an image larger than twice the kernel ({2 * mh} x {2 * mw}), "
                         f"got {height} x {width}")
    if rng.random() >= config.probability:
        return []
    drawn = []
    span = config.max_increment - config.min_increment
    for _ in range(int(rng.integers(config.min_count, config.max_count))):
        i, j = int(rng.integers(mh, height - mh)), int(rng.integers(mw, width - mw))
        ri, rj = int(rng.integers(4)), int(rng.integers(5))
        spike = config.min_increment + span * float(rng.random())
        drawn.append((i, j, ri, rj, spike))
    return drawn


def add_streaks(linear, rng, config, margin):
    """Add the random white streaks of :func:`draw_streaks` to ``linear`` in place.

    Parameters
    ----------
    linear : ndarray, shape (H, W, C), float32
    rng, config, margin
        As :func:`draw_streaks`.

    Returns
    -------
    list of tuple
        The streaks drawn, as :func:`draw_streaks` returns them.
    """
    drawn = draw_streaks(linear.shape, rng, config, margin)
    add_streak_boxes(linear[None], *streak_arrays([drawn]))
    return drawn


def streak_arrays(streaks):
    """``(boxes (B, S, 4) int64, spikes (B, S) float64)`` of a list of each pair's streak
    list; padding streaks have ``ri = rj = 0`` (they cover nothing)."""
    boxes = np.zeros((len(streaks), max(map(len, streaks), default=0), 4), np.int64)
    spikes = np.zeros(boxes.shape[:2], np.float64)
    for b, drawn in enumerate(streaks):
        for s, (i, j, ri, rj, spike) in enumerate(drawn):
            boxes[b, s] = i, j, ri, rj
            spikes[b, s] = spike
    return boxes, spikes


def _clip_bounds(values, length):
    """Slice bounds ``values`` (step 1) clipped as :meth:`slice.indices` clips them."""
    return np.where(values < 0, np.maximum(values + length, 0), np.minimum(values, length))


def streak_pixels(boxes, spikes, shape):
    """Flat ``(b, row, col)`` pixel indices covered by each streak of ``boxes``
    (:func:`streak_arrays`) and the spike added there, in the order the streaks are
    added (NumPy, on the host). Rectangles are clipped as Python slices clip them."""
    height, width = shape
    boxes = np.asarray(boxes, np.int64)
    pairs = np.repeat(np.arange(boxes.shape[0], dtype=np.int64), boxes.shape[1])
    i, j, ri, rj = boxes.reshape(-1, 4).T
    top, left = _clip_bounds(i - ri, height), _clip_bounds(j - rj, width)
    rows = np.maximum(_clip_bounds(i + ri, height) - top, 0)
    cols = np.maximum(_clip_bounds(j + rj, width) - left, 0)
    sizes = rows * cols
    total = int(sizes.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    # one entry per covered pixel, streak after streak, row-major inside a streak
    streak = np.repeat(np.arange(len(sizes)), sizes)
    within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    row, col = np.divmod(within, cols[streak])
    pixels = (pairs[streak] * height + top[streak] + row) * width + left[streak] + col
    return pixels, np.asarray(spikes, np.float64).reshape(-1).astype(np.float32)[streak]


def streak_layers(pixels):
    """``(order, bounds)``: layer ``k``, ``pixels[order[bounds[k]:bounds[k + 1]]]``, holds the
    ``k``-th occurrence of each repeated pixel, so adding layer after layer adds each
    pixel's values in their order, deterministically (no atomics on a GPU)."""
    order = np.argsort(pixels, kind="stable")
    ranked = pixels[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ranks = np.empty(len(pixels), np.int64)
    ranks[order] = np.arange(len(pixels)) - np.repeat(starts, np.diff(np.r_[starts, len(pixels)]))
    return np.argsort(ranks, kind="stable"), np.r_[0, np.cumsum(np.bincount(ranks))]


def add_streak_boxes(linear, boxes, spikes):
    """Add the streaks ``boxes``/``spikes`` (:func:`streak_arrays`) to ``linear``
    ``(B, H, W, C)`` in place, each pixel's spikes in their order; the changed pixels as
    a ``(B, H, W, 1)`` bool array, or None without streaks."""
    xp = get_array_module(linear)
    pixels, spikes = streak_pixels(boxes, spikes, linear.shape[1:3])
    if not len(pixels):
        return None
    order, bounds = streak_layers(pixels)
    # one upload of the pixels and spikes, sorted by layer; a layer is a slice of them
    layered_pixels, layered_spikes = xp.asarray(pixels[order]), xp.asarray(spikes[order])[:, None]
    flat = linear.reshape(-1, linear.shape[3])
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        flat[layered_pixels[start:stop]] += layered_spikes[start:stop]
    changed = xp.zeros(linear.shape[:3] + (1,), bool)
    changed.reshape(-1)[layered_pixels] = True
    return changed


# -- noise ------------------------------------------------------------------------------
def add_noise(blurry, rng, config):
    """Add Poisson then multiplicative Gaussian noise to ``blurry`` in place.

    Random draws, in order: if ``config.poisson_peak`` is set,
    ``rng.poisson(max(B, 0) * peak / 255)`` over the whole image in C order; if
    ``config.gaussian_std > 0``, ``rng.standard_normal(B.shape)`` in float32 (on NumPy by
    blocks of rows, which consumes the generator as one draw of the whole shape does).

    Parameters
    ----------
    blurry : ndarray, shape (H, W, C) or (B, H, W, C), float32, C-contiguous
    rng : numpy.random.Generator, or numpy/cupy.random.RandomState
        A pair's generator, or the seeded generator of a batch on its device.
    config : NoiseConfig or None

    Returns
    -------
    ndarray
        ``blurry``.
    """
    if config is None:
        return blurry
    xp = get_array_module(blurry)
    rows = max(1, _NOISE_CHUNK_ELEMENTS // max(1, blurry[0].size)) if xp is np else len(blurry)
    chunks = [blurry[start : start + rows] for start in range(0, len(blurry), rows)]
    if config.poisson_peak is not None:
        to_photons = config.poisson_peak / 255.0
        for chunk in chunks:
            photons = xp.maximum(chunk, 0).astype(np.float64)
            photons *= to_photons
            chunk[...] = rng.poisson(photons)
            chunk *= np.float32(1.0 / to_photons)
    if config.gaussian_std > 0:
        for chunk in chunks:
            if isinstance(rng, np.random.RandomState):  # draws float64 only
                factor = rng.standard_normal(chunk.shape).astype(np.float32)
            else:
                factor = rng.standard_normal(chunk.shape, dtype=np.float32)
            factor *= np.float32(config.gaussian_std)
            factor += np.float32(1.0)
            chunk *= factor
    return blurry


# -- 8-bit output -----------------------------------------------------------------------
def quantize(image):
    """8-bit image as the reference writes it: clip to [0, 255], then truncate.

    Parameters
    ----------
    image : ndarray, float

    Returns
    -------
    ndarray, uint8
    """
    return np.clip(image, 0, 255).astype(np.uint8)


_FLOAT32_INF_BITS = 0x7F800000
_BITS_OF_255 = int(np.float32(255.0).view(np.uint32))
#: Bucket sizes tried, largest first: ``bits >> shift`` indexes the codes where counting
#: starts (a table that fits the L1 cache for the usual curves).
_BUCKET_SHIFTS = tuple(range(20, 3, -1))
#: Float32 neighbours of each threshold checked when a table is made (see _code_table).
_CHECKED_NEIGHBOURS = 256


def _codes_by_formula(bits, response, opencv):
    """``quantize(delinearize(x))`` of the float32 values with these ``bits``, with the power
    :func:`delinearize` takes for an image (``opencv``; padded to a multiple of 64 values,
    as a 720p frame is, so OpenCV runs its vector code throughout) or a strided crop."""
    count = len(bits)
    padded = np.zeros(-(-count // 64) * 64, np.uint32)
    padded[:count] = bits
    values = padded.view(np.float32).reshape((1, 1, -1, 1) if opencv else -1)
    return quantize(delinearize(values, **response)).reshape(-1)[:count]


@lru_cache(maxsize=8)
def _code_table(crf, gamma, exponential_factor, opencv):
    """``(threshold_bits (257,) uint32, buckets uint32, shift, sharp_clamp_bits)`` of a
    response for the native ``quantize_by_thresholds``, or None where the thresholds do
    not reproduce the formula. ``buckets``: the code of each bucket's first value, and the
    offset in the bucket where the next code starts, shifted by 8.

    ``threshold_bits[k]`` is the smallest non-negative float32 (as bits) whose code
    ``quantize(delinearize(x))`` is at least ``k``, found by bisection; a code is the count
    of thresholds reached where codes do not decrease as ``x`` grows. That is checked on
    the ``_CHECKED_NEIGHBOURS`` floats each side of every threshold, the only places where
    the power's rounding could matter (the tests check every float32 near a boundary and a
    sweep of the others; all of [0, inf] was checked once for gamma 2.2, both powers).
    """
    response = dict(crf=crf, gamma=gamma, exponential_factor=exponential_factor)
    wanted = np.arange(1, 256)
    low = np.zeros(255, np.int64)
    high = np.full(255, _FLOAT32_INF_BITS + 1, np.int64)  # past +inf: never reached
    while np.any(low < high):
        middle = (low + high) // 2
        codes = _codes_by_formula(np.minimum(middle, _FLOAT32_INF_BITS).astype(np.uint32), response, opencv)
        reached, searching = (codes >= wanted) & (middle <= _FLOAT32_INF_BITS), low < high
        high = np.where(searching & reached, middle, high)
        low = np.where(searching & ~reached, middle + 1, low)
    thresholds = np.concatenate([[0], low, [np.iinfo(np.uint32).max]]).astype(np.int64)
    finite = thresholds[1:256][thresholds[1:256] <= _FLOAT32_INF_BITS]
    offsets = np.arange(-_CHECKED_NEIGHBOURS, _CHECKED_NEIGHBOURS)
    neighbours = np.clip((finite[:, None] + offsets).reshape(-1), 0, _FLOAT32_INF_BITS)
    counted = np.searchsorted(thresholds[1:256], neighbours, side="right")
    if not np.array_equal(counted, _codes_by_formula(neighbours.astype(np.uint32), response, opencv)):
        return None
    sharp_clamp = int(min(thresholds[255], _FLOAT32_INF_BITS))
    for shift in _BUCKET_SHIFTS:  # the largest buckets holding one threshold at most
        starts = np.arange((max(sharp_clamp, _BITS_OF_255) >> shift) + 2, dtype=np.int64) << shift
        codes = np.searchsorted(thresholds[1:256], starts, side="right")
        if np.diff(codes).max() <= 1:
            codes, starts = codes[:-1], starts[:-1]
            offsets = np.minimum(thresholds[codes + 1] - starts, 1 << shift)  # where the next code starts
            return thresholds.astype(np.uint32), (codes | offsets << 8).astype(np.uint32), shift, sharp_clamp
    return None


def encode_8bit(linear, crf="gamma", gamma=2.2, exponential_factor=7.0, clip=True):
    """The 8-bit sRGB image of a linear one: ``quantize(delinearize(linear))``.

    On the CPU with the native extension this is one pass: a value's code is the number of
    per-code thresholds it reaches, found once per response by bisection with
    :func:`delinearize` itself and the power it takes for ``linear`` (OpenCV's for an image or
    its clipped copy, numpy's for a strided crop): the codes of the float path, used elsewhere.

    Parameters
    ----------
    linear : ndarray, float32
        Any shape; NumPy or CuPy. Non-negative unless ``clip`` (negative values then give 0).
    crf, gamma, exponential_factor
        The camera response, as :func:`delinearize`.
    clip : bool
        Clip to [0, 255] before the response (True: the blurry image's order), or only
        after it (False: values above 255 still map through the curve, as the sharp
        target's do).

    Returns
    -------
    ndarray, shape of ``linear``, uint8
    """
    crf, gamma, exponential_factor = check_crf(crf, gamma, exponential_factor)
    table = None
    if get_array_module(linear) is np and linear.dtype == np.float32:
        # the power delinearize takes for linear (clip: for its clipped, contiguous copy)
        opencv = linear.ndim in (3, 4) and linear.shape[-1] <= 4 and (clip or linear.flags.c_contiguous)
        table = _code_table(crf, gamma, exponential_factor, bool(opencv))
    native = _native_module()
    if table is None or native is None:
        values = get_array_module(linear).clip(linear, 0, 255) if clip else linear
        return quantize(delinearize(values, crf, gamma, exponential_factor))
    from .._threads import num_threads

    _, buckets, shift, sharp_clamp = table
    clamp = _BITS_OF_255 if clip else sharp_clamp
    return native.quantize_by_thresholds(np.ascontiguousarray(linear), buckets, shift, clamp, num_threads())


def _native_module():
    try:
        from .. import _native
    except ImportError:
        return None
    return _native if hasattr(_native, "quantize_by_thresholds") else None
