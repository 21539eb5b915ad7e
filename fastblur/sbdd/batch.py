"""SBDD crop pairs formed a whole batch at a time, on the CPU (NumPy) or the GPU (CuPy).

A pair's random choices are drawn on the CPU into a :class:`CropRecipe`
(:meth:`fastblur.sbdd.CropSampler.recipe`); :func:`stack_recipes` pads a list of them
into a :class:`RecipeBatch`, and :func:`form_batch` forms it where its arrays live
(:func:`fastblur.sbdd.pipeline.form`, with the batch primitives). Only the 8-bit
windows, the masks packed eight objects to a byte and the kernels cross to the device.

Without noise a formed pair equals :meth:`~fastblur.sbdd.CropSampler.sample`'s to
float32 accuracy (8-bit values within one code). Noise is drawn on the device from a
generator seeded by the batch's seed, pair indices and epoch: its realisation, and with
it the blurry boost's factor (``sat_augmentation_in_blurry``, drawn after the noise per
pair), differs from the per-pair path's (same distribution) and from one device to the
other. On one device, the same batch gives the same bytes every time (no atomics).
"""
import contextlib
import threading
from dataclasses import dataclass, fields

import numpy as np

from .._array_module import get_array_module
from .._validation import as_kernel_stack, check_instance, check_positive
from . import formation
from .pipeline import check_options, form, to_unit_range

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

    The large fields, ``windows``, ``kernels`` and ``packed_masks``, may also be CuPy arrays
    already on the device (e.g. copied from pinned memory); the others are read on the host.

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
    check_instance(recipe, CropRecipe, name, optional=False)
    window, masks = np.asarray(recipe.window), np.asarray(recipe.masks)
    if window.dtype != np.uint8 or window.ndim != 3 or 0 in window.shape:
        raise ValueError(f"{name}.window must be a non-empty (H, W, C) uint8 image, "
                         f"got {window.dtype} of shape {window.shape}")
    try:
        kernels = as_kernel_stack(recipe.kernels, name=f"{name}.kernels")
    except ValueError as error:
        raise ValueError(f"{name}.kernels must be a finite (n + 1, kh, kw) stack: {error}") from None
    if kernels.shape[1] > window.shape[0] or kernels.shape[2] > window.shape[1]:
        raise ValueError(f"{name}.kernels of {kernels.shape[1:]} do not fit the window {window.shape[:2]}")
    if masks.shape != (len(kernels) - 1,) + window.shape[:2]:
        raise ValueError(f"{name}.masks must be (n, H, W) = {(len(kernels) - 1,) + window.shape[:2]} "
                         f"for {len(kernels)} kernels and the window, got {masks.shape}")
    check_positive(recipe.gain, f"{name}.gain")


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
    for b, recipe in enumerate(recipes):
        kernels[b, : len(recipe.kernels)] = recipe.kernels
        masks[b, : len(recipe.masks)] = recipe.masks
    boxes, spikes = formation.streak_arrays([list(r.streaks) for r in recipes])
    entropy = [NOISE_STREAM, batch] + [int(value) for r in recipes for value in r.seed]
    return RecipeBatch(windows=np.stack([r.window for r in recipes]), kernels=kernels,
                       packed_masks=np.packbits(masks, axis=1, bitorder="little"),
                       gains=np.array([r.gain for r in recipes], np.float64), streak_boxes=boxes, streak_spikes=spikes,
                       saturation_boosts=_optional(r.saturation_boost for r in recipes),
                       blurry_boosts=_optional(r.blurry_boost for r in recipes),
                       noise_seed=int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0]))


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


# -- the draws of a batch --------------------------------------------------------------
def _add_streaks(linear, batch):
    """Add the batch's streaks to ``linear`` in place (:func:`formation.add_streak_boxes`)."""
    return formation.add_streak_boxes(linear, batch.streak_boxes, batch.streak_spikes)


def _streak_pixels(batch, shape):
    return formation.streak_pixels(batch.streak_boxes, batch.streak_spikes, shape)


_layers = formation.streak_layers

#: Per thread: ``{(RandomState class, device id): (generator, event)}`` of the CuPy noise;
#: the event marks the end of the generator's last draws.
_DEVICE_GENERATORS = threading.local()


def _noise_generator(xp, seed):
    """``(xp.random.RandomState(seed), event or None)``. On a GPU, one generator per
    thread and device, re-seeded for each batch (the same draws as a new one): a new
    cuRAND generator per batch would free the last one's state (``cudaFree`` synchronises
    the device). Its next draw re-initialises that state on the current stream, so the
    stream first waits for the event recorded after the previous batch's draws, maybe on
    another stream (no host sync); ``BatchDraws`` records it after drawing."""
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


class BatchDraws:
    """The draw source (:mod:`fastblur.sbdd.pipeline`) of a :class:`RecipeBatch`: the
    streaks and boosts its recipes drew, and noise drawn on the batch's device from a
    generator seeded by ``batch.noise_seed``."""

    def __init__(self, batch):
        self.batch = batch

    def add_streaks(self, linear, margin):
        return _add_streaks(linear, self.batch)

    def saturation_boosts(self, wanted):
        return np.where(wanted, self.batch.saturation_boosts, np.nan)

    def add_noise(self, blurry, config):
        xp = get_array_module(blurry)
        states, drawn = _noise_generator(xp, self.batch.noise_seed)
        formation.add_noise(blurry, states, config)
        if drawn is not None:
            drawn.record(xp.cuda.get_current_stream())  # the generator's state is free after this

    def blurry_boosts(self, wanted):
        return np.where(wanted, self.batch.blurry_boosts, np.nan)


def check_device(device):
    """``device`` if it is ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, else a ValueError."""
    cuda = isinstance(device, str) and (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()))
    if device != "cpu" and not cuda:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return device


def form_batch(batch, *, gamma=2.2, crf="gamma", exponential_factor=7.0, saturation=None,
               noise=None, streaks=None, quantize=True, device="cpu", backend="auto"):
    """Form the pairs of a :class:`RecipeBatch` on ``device``: the steps of
    :func:`fastblur.sbdd.synthesize_pair`, batched (:func:`fastblur.sbdd.pipeline.form`).

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
    options = check_options(crf, gamma, exponential_factor, saturation, streaks, noise)
    check_instance(batch, RecipeBatch, "batch", optional=False)
    xp, where = np, contextlib.nullcontext()
    if check_device(device) != "cpu":
        import cupy as xp

        where = xp.cuda.Device(int(device[5:]) if ":" in device else None)
    with where:
        masks = unpack_masks(xp.asarray(batch.packed_masks), batch.kernels.shape[1] - 1)
        formed = form(xp.asarray(batch.windows), xp.asarray(batch.kernels), masks, batch.gains, BatchDraws(batch),
                      backend=backend, **options)
        return to_unit_range(formed.blurry, formed.sharp, quantize)
