"""SBDD crop pairs formed a whole batch at a time, on the CPU (NumPy) or the GPU (CuPy).

The random choices of a pair (window, object masks, kernels, gain, streaks, boosts) are
drawn on the CPU into a :class:`CropRecipe` (:meth:`fastblur.sbdd.CropSampler.recipe`);
:func:`stack_recipes` pads a list of them into one :class:`RecipeBatch` of arrays, and
:func:`form_batch` runs the formation model of :func:`fastblur.sbdd.synthesize_pair` on
the whole batch where its arrays live: one :func:`fastblur.smooth_masks_batch`, one
:func:`fastblur.blur_masked_batch`, and element-wise response curves. Only the 8-bit
windows, the masks packed eight objects to a byte and the kernels cross to the device.

Without noise a formed pair equals :meth:`~fastblur.sbdd.CropSampler.sample`'s to
float32 accuracy (8-bit values within one code). Noise is drawn on the device from a
generator seeded by the batch's seed, pair indices and epoch, so its realisation differs
from the per-pair path (same distribution) and from one device to the other; with noise
on, so does the factor of the blurry image's saturation boost (``sat_augmentation_in_blurry``),
which the per-pair path draws after the noise. On one device, the same batch gives the
same bytes every time (streaks are added without atomics).
"""
import threading
from dataclasses import dataclass, fields

import numpy as np

from .._array_module import get_array_module
from ..primitives import blur_masked_batch, smooth_masks_batch
from . import formation
from .formation import NoiseConfig, SaturationConfig
from .pair import _check_config, valid_offset

__all__ = ["CropRecipe", "RecipeBatch", "form_batch", "stack_recipes", "unpack_masks"]

#: Mixed into the noise seed of a batch, apart from the pair seeds ``[seed, epoch, index]``.
NOISE_STREAM = 0x6E6F697365


@dataclass
class CropRecipe:
    """The random choices of one crop pair, made on the CPU.

    Attributes
    ----------
    window : ndarray, shape (Hw, Ww, C), uint8
        The sharp window; the pair is its ``valid`` grid, ``(Hw - kh + 1, Ww - kw + 1)``.
    kernels : ndarray, shape (n + 1, kh, kw), float32
        Background kernel first, stored as the reference applies them (correlation).
    masks : ndarray, shape (n, Hw, Ww), bool
        Object masks inside the window.
    gain : float
        Illumination gain (1 without the augmentation).
    streaks : list of tuple
        ``(i, j, ri, rj, spike)`` (:func:`fastblur.sbdd.formation.draw_streaks`).
    saturation_boost : float or None
        Factor of the saturated samples (``1 + 4 u``) when the boost is configured.
    blurry_boost : float or None
        Factor of the blurred saturation mask added to the blurry image (``4 u``).
    seed : list of int
        ``[seed, epoch, index]`` of the pair.
    """

    window: np.ndarray
    kernels: np.ndarray
    masks: np.ndarray
    gain: float = 1.0
    streaks: list = ()
    saturation_boost: float = None
    blurry_boost: float = None
    seed: list = ()


@dataclass
class RecipeBatch:
    """:class:`CropRecipe` s padded to common sizes (NumPy arrays, cheap to pickle).

    ``windows``, ``kernels`` and ``packed_masks``, the large fields, may also be CuPy
    arrays already on the device (e.g. copied there asynchronously from pinned memory);
    the others are read on the host.

    Attributes
    ----------
    windows : ndarray, shape (B, Hw, Ww, C), uint8
    kernels : ndarray, shape (B, N, kh, kw), float32
        ``N`` is the largest ``n + 1``; padding kernels are zero.
    packed_masks : ndarray, shape (B, ceil((N - 1) / 8), Hw, Ww), uint8
        The object masks ``(B, N - 1, Hw, Ww)`` packed eight to a byte along the object
        axis (:func:`numpy.packbits`, little bit order; :func:`unpack_masks` undoes it).
        Padding masks are empty, so their weights are zero.
    gains : ndarray, shape (B,), float64
    streak_boxes : ndarray, shape (B, S, 4), int64
        ``(i, j, ri, rj)`` of each streak; padding streaks have ``ri = rj = 0``.
    streak_spikes : ndarray, shape (B, S), float64
    saturation_boosts, blurry_boosts : ndarray, shape (B,), float64
        NaN where none was drawn.
    noise_seed : int
        Seed of the batch's noise, in ``[0, 2**64)``, from the seeds of its pairs. (64
        bits: CuPy seeds element ``i``'s Poisson draw with ``seed + i``, so batches whose
        seeds were closer than their size would share shifted noise.)
    """

    windows: np.ndarray
    kernels: np.ndarray
    packed_masks: np.ndarray
    gains: np.ndarray
    streak_boxes: np.ndarray
    streak_spikes: np.ndarray
    saturation_boosts: np.ndarray
    blurry_boosts: np.ndarray
    noise_seed: int

    def arrays(self):
        """``{name: array}`` of the array fields (e.g. to hand them to another process)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "noise_seed"}

    def __len__(self):
        return len(self.windows)


def _optional(values):
    return np.array([np.nan if value is None else value for value in values], np.float64)


def _check_recipe(recipe, name):
    """Errors naming the field of a recipe that ``form_batch`` cannot form."""
    if not isinstance(recipe, CropRecipe):
        raise TypeError(f"{name} must be a CropRecipe, got {type(recipe).__name__}")
    window, kernels, masks = (np.asarray(getattr(recipe, f)) for f in ("window", "kernels", "masks"))
    if window.dtype != np.uint8 or window.ndim != 3 or 0 in window.shape:
        raise ValueError(f"{name}.window must be a non-empty (H, W, C) uint8 image, "
                         f"got {window.dtype} of shape {window.shape}")
    if kernels.ndim != 3 or 0 in kernels.shape or not np.all(np.isfinite(kernels)):
        raise ValueError(f"{name}.kernels must be a finite (n + 1, kh, kw) stack, got shape {kernels.shape}")
    if kernels.shape[1] > window.shape[0] or kernels.shape[2] > window.shape[1]:
        raise ValueError(f"{name}.kernels of {kernels.shape[1:]} do not fit the window {window.shape[:2]}")
    if masks.shape != (len(kernels) - 1,) + window.shape[:2]:
        raise ValueError(f"{name}.masks must be (n, H, W) = {(len(kernels) - 1,) + window.shape[:2]} "
                         f"for {len(kernels)} kernels and the window, got {masks.shape}")
    gain = recipe.gain
    if isinstance(gain, bool) or not isinstance(gain, (int, float, np.integer, np.floating)) \
            or not np.isfinite(gain) or gain <= 0:
        raise ValueError(f"{name}.gain must be a positive finite number, got {gain!r}")


def stack_recipes(recipes):
    """Pad a list of recipes into one :class:`RecipeBatch`.

    Parameters
    ----------
    recipes : sequence of CropRecipe
        Non-empty; same window and kernel shapes.

    Returns
    -------
    RecipeBatch
    """
    if not recipes:
        raise ValueError("recipes must hold at least one CropRecipe")
    for b, recipe in enumerate(recipes):
        _check_recipe(recipe, f"recipes[{b}]")
    shapes = {(r.window.shape, r.kernels.shape[1:]) for r in recipes}
    if len(shapes) != 1:
        raise ValueError(f"recipes must share window and kernel shapes, got {sorted(shapes)}")
    batch = len(recipes)
    window_shape, kernel_shape = shapes.pop()
    count = max(len(r.kernels) for r in recipes)
    kernels = np.zeros((batch, count) + kernel_shape, np.float32)
    masks = np.zeros((batch, count - 1) + window_shape[:2], bool)  # padding: empty
    streaks = max(len(r.streaks) for r in recipes)
    boxes = np.zeros((batch, streaks, 4), np.int64)
    spikes = np.zeros((batch, streaks), np.float64)
    for b, recipe in enumerate(recipes):
        kernels[b, : len(recipe.kernels)] = recipe.kernels
        masks[b, : len(recipe.masks)] = recipe.masks
        for s, (i, j, ri, rj, spike) in enumerate(recipe.streaks):
            boxes[b, s] = i, j, ri, rj
            spikes[b, s] = spike
    entropy = [NOISE_STREAM, batch] + [int(value) for r in recipes for value in r.seed]
    return RecipeBatch(
        windows=np.stack([r.window for r in recipes]),
        kernels=kernels,
        packed_masks=np.packbits(masks, axis=1, bitorder="little"),
        gains=np.array([r.gain for r in recipes], np.float64),
        streak_boxes=boxes,
        streak_spikes=spikes,
        saturation_boosts=_optional(r.saturation_boost for r in recipes),
        blurry_boosts=_optional(r.blurry_boost for r in recipes),
        noise_seed=int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]),
    )


def unpack_masks(packed, count):
    """Object masks from :attr:`RecipeBatch.packed_masks`, on the array's device.

    Parameters
    ----------
    packed : ndarray, shape (B, ceil(count / 8), H, W), uint8
    count : int
        Objects per pair (``N - 1``).

    Returns
    -------
    ndarray, shape (B, count, H, W), bool
    """
    xp = get_array_module(packed)
    objects = np.arange(count)
    shifts = xp.asarray((objects % 8).astype(np.uint8)).reshape(1, -1, 1, 1)
    return ((packed[:, xp.asarray(objects // 8)] >> shifts) & np.uint8(1)).astype(bool)


# -- formation steps --------------------------------------------------------------------
def _per_pair_lookup(tables, codes):
    """``tables[b][codes[b]]``: ``(B, 256)`` float32 tables, ``(B, H, W, C)`` uint8 codes."""
    xp = get_array_module(tables)
    if xp is np:
        return np.stack([formation.lookup(table, image) for table, image in zip(tables, codes)])
    flat = codes.astype(np.int32) + (256 * xp.arange(len(codes), dtype=np.int32))[:, None, None, None]
    return xp.take(tables.reshape(-1), flat)


def _clip_bounds(values, length):
    """Slice bounds ``values`` (step 1) clipped as :meth:`slice.indices` clips them."""
    return np.where(values < 0, np.maximum(values + length, 0), np.minimum(values, length))


def _streak_pixels(batch, shape):
    """Flat ``(b, row, col)`` pixel indices covered by each streak and the spike added
    there, in the order the streaks are added (NumPy, on the host). Rectangles are
    clipped as the per-pair path's slices clip them."""
    height, width = shape
    boxes = np.asarray(batch.streak_boxes, np.int64)
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
    spikes = np.asarray(batch.streak_spikes, np.float64).reshape(-1).astype(np.float32)[streak]
    return pixels, spikes


def _layers(pixels):
    """Order ``pixels`` (with repeats) into layers of distinct pixels: the ``k``-th
    occurrence of a pixel goes to layer ``k``, so adding layer after layer adds each
    pixel's values in their order, deterministically (no atomics on a GPU).

    Returns ``(order, bounds)``: layer ``k`` is ``pixels[order[bounds[k]:bounds[k + 1]]]``.
    """
    order = np.argsort(pixels, kind="stable")
    ranked = pixels[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    ranks = np.empty(len(pixels), np.int64)
    ranks[order] = np.arange(len(pixels)) - np.repeat(starts, np.diff(np.r_[starts, len(pixels)]))
    return np.argsort(ranks, kind="stable"), np.r_[0, np.cumsum(np.bincount(ranks))]


def _add_streaks(linear, batch):
    """Add the batch's streaks to ``linear`` (B, H, W, C) in place; the changed pixels
    as a ``(B, H, W, 1)`` bool array, or None without streaks."""
    xp = get_array_module(linear)
    pixels, spikes = _streak_pixels(batch, linear.shape[1:3])
    if not len(pixels):
        return None
    order, bounds = _layers(pixels)
    # one upload of the pixels and spikes, sorted by layer; a layer is a slice of them
    layered_pixels, layered_spikes = xp.asarray(pixels[order]), xp.asarray(spikes[order])[:, None]
    flat = linear.reshape(-1, linear.shape[3])
    for start, stop in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        flat[layered_pixels[start:stop]] += layered_spikes[start:stop]
    changed = xp.zeros(linear.shape[:3] + (1,), bool)
    changed.reshape(-1)[layered_pixels] = True
    return changed


def _per_pair(xp, values, like):
    """Host values ``(B,)`` as a float32 device array broadcasting over ``(B, H, W, C)``."""
    return xp.asarray(np.asarray(values, np.float32)).reshape((-1,) + (1,) * (like.ndim - 1))


#: Per thread: ``{(RandomState class, device id): (generator, event)}`` of the CuPy noise;
#: the event marks the end of the generator's last draws.
_DEVICE_GENERATORS = threading.local()


def _noise_generator(xp, seed):
    """``(xp.random.RandomState(seed), event or None)``. On a GPU, one generator per
    thread and device, re-seeded for each batch (the same draws as a new one): creating
    a cuRAND generator allocates its device state and destroying it frees that
    (``cudaFree`` synchronises the device), once per batch otherwise.

    The generator's state lives on the device and its next draw re-initialises it on
    the current stream, so that stream first waits for the event recorded after the
    previous batch's draws, which may have been queued on another stream (no host
    sync). Record the event on the current stream after drawing (``_add_noise`` does).
    """
    if xp is np:
        return np.random.RandomState([seed & 0xFFFFFFFF, seed >> 32]), None  # NumPy takes 32-bit words
    generators = vars(_DEVICE_GENERATORS).setdefault("generators", {})
    key = (xp.random.RandomState, xp.cuda.Device().id)
    entry = generators.get(key)
    if entry is None:
        # Philox is counter-based: seeding sets its key, where XORWOW (CuPy's default)
        # rebuilds its states with a setup kernel before the first draw after each seed.
        philox = xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10
        entry = generators[key] = (xp.random.RandomState(seed, method=philox), xp.cuda.Event(disable_timing=True))
    else:
        xp.cuda.get_current_stream().wait_event(entry[1])
        entry[0].seed(seed)
    return entry


def _add_noise(blurry, config, seed):
    """Poisson then multiplicative Gaussian noise (:class:`NoiseConfig`), drawn on the
    batch's device from a generator seeded by ``seed``."""
    xp = get_array_module(blurry)
    states, drawn = _noise_generator(xp, seed)
    if config.poisson_peak is not None:
        to_photons = config.poisson_peak / 255.0
        photons = xp.maximum(blurry, 0).astype(np.float64) * to_photons
        blurry[...] = states.poisson(photons)
        blurry *= np.float32(1.0 / to_photons)
    if config.gaussian_std > 0:
        if xp is np:  # NumPy's RandomState draws float64 only
            factor = states.standard_normal(blurry.shape).astype(np.float32)
        else:
            factor = states.standard_normal(blurry.shape, dtype=np.float32)
        factor *= np.float32(config.gaussian_std)
        factor += np.float32(1.0)
        blurry *= factor
    if drawn is not None:
        drawn.record(xp.cuda.get_current_stream())  # the generator's state is free after this
    return blurry


def _check_options(crf, gamma, exponential_factor, saturation, noise):
    crf, gamma, exponential_factor = formation.check_crf(crf, gamma, exponential_factor)
    _check_config(saturation, SaturationConfig, "saturation")
    _check_config(noise, NoiseConfig, "noise")
    return dict(crf=crf, gamma=gamma, exponential_factor=exponential_factor)


def check_device(device):
    """``device`` if it is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, else a ValueError."""
    cuda = isinstance(device, str) and (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()))
    if device != "cpu" and not cuda:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def form_batch(batch, *, gamma=2.2, crf="gamma", exponential_factor=7.0, saturation=None,
               noise=None, streaks=None, quantize=True, device="cpu", backend="auto"):
    """Form the pairs of a :class:`RecipeBatch` on ``device``.

    The steps of :func:`fastblur.sbdd.synthesize_pair`, batched: weights from the
    masks, ``L = gain f(window)``, saturation mask, streaks and boost, the blur, noise,
    blurry boost, clip, ``f^-1``; the sharp target from the per-code round trip where
    streaks and boosts left ``L`` alone.

    Parameters
    ----------
    batch : RecipeBatch
    gamma, crf, exponential_factor, saturation, noise
        As :func:`fastblur.sbdd.synthesize_pair`.
    streaks : StreakConfig, optional
        Not used: the streaks were drawn into the recipes (accepted so that
        :meth:`DatasetConfig.formation_options` can be passed whole).
    quantize : bool, optional
        8-bit values as ``fastblur-gen`` writes them (clip, truncate), or float.
    device : {'cpu', 'cuda', 'cuda:N'}, optional
        Where the pairs are formed: NumPy, or CuPy arrays on the current (or ``N``-th)
        CUDA device.
    backend : str, optional
        Of the blur and the weights (``auto`` is ``cupy`` on CUDA).

    Returns
    -------
    blurry, sharp : ndarray, shape (B, Ho, Wo, C), float32
        sRGB in [0, 1], NumPy or CuPy (``Ho = Hw - kh + 1``, ``Wo = Ww - kw + 1``).
    """
    response = _check_options(crf, gamma, exponential_factor, saturation, noise)
    if not isinstance(batch, RecipeBatch):
        raise TypeError(f"batch must be a RecipeBatch (see stack_recipes), got {type(batch).__name__}")
    if check_device(device) == "cpu":
        return _form(batch, np, response, saturation, noise, quantize, backend)
    import cupy

    with cupy.cuda.Device(int(device[5:]) if ":" in device else None):
        return _form(batch, cupy, response, saturation, noise, quantize, backend)


def _form(batch, xp, response, saturation, noise, quantize, backend):
    """:func:`form_batch` with the array module ``xp`` on its current device."""
    windows = xp.asarray(batch.windows)
    kh, kw = batch.kernels.shape[2:]
    conv_kernels = xp.ascontiguousarray(xp.asarray(batch.kernels)[:, :, ::-1, ::-1])
    masks = unpack_masks(xp.asarray(batch.packed_masks), batch.kernels.shape[1] - 1)
    weights = smooth_masks_batch(masks, conv_kernels, backend=backend)
    tables = formation.response_lut(gain=batch.gains, **response)
    linear = _per_pair_lookup(xp.asarray(tables), windows)

    mask, kept = None, np.zeros(len(batch), bool)
    if saturation is not None:
        mask, fractions = formation.saturation_masks(linear, saturation.threshold)
        kept = fractions >= saturation.min_fraction
    streaked = _add_streaks(linear, batch)
    boosted = None
    if mask is not None and saturation.boost and kept.any():
        factors = np.where(kept, batch.saturation_boosts, 1.0)
        boosted = (mask == 255) & (_per_pair(xp, kept, mask) > 0)
        linear *= xp.where(boosted, _per_pair(xp, factors, mask), np.float32(1.0))

    channels = linear.shape[3]
    blur_mask = mask is not None and saturation.boost_in_blurry and kept.any()
    source = xp.concatenate([linear, mask], axis=3) if blur_mask else linear
    blurry = blur_masked_batch(source, conv_kernels, weights, backend=backend)
    blurred_mask = None
    if blur_mask:
        blurry, blurred_mask = xp.ascontiguousarray(blurry[..., :channels]), blurry[..., channels:]
    if noise is not None:
        _add_noise(blurry, noise, batch.noise_seed)
    if blur_mask:
        blurry += blurred_mask * _per_pair(xp, np.where(kept, batch.blurry_boosts, 0.0), blurred_mask)

    xp.clip(blurry, 0, 255, out=blurry)
    formation.delinearize(blurry, out=blurry, **response)
    top, left = valid_offset((kh, kw))
    ho, wo = blurry.shape[1:3]
    window = (slice(None), slice(top, top + ho), slice(left, left + wo))
    round_trips = formation.round_trip_lut(gain=batch.gains, **response)
    sharp = _per_pair_lookup(xp.asarray(round_trips), windows[window])
    changed = streaked
    if boosted is not None:
        changed = boosted if changed is None else changed | boosted
    if changed is not None:
        changed = xp.broadcast_to(changed[window], sharp.shape)
        sharp = xp.where(changed, formation.delinearize(linear[window], **response), sharp)
    if quantize:
        blurry, sharp = (xp.floor(xp.clip(image, 0, 255)) for image in (blurry, sharp))
    else:
        sharp = xp.minimum(sharp, np.float32(255.0))
    blurry *= np.float32(1 / 255)
    sharp *= np.float32(1 / 255)
    return blurry, sharp
