"""The batched formation's CuPy branch where real CuPy differs from the NumPy stand-in.

``tests/cupy_standin.py`` runs the device branch on NumPy/SciPy; these tests replace
pieces of it with CuPy 14's own behaviour (cupyx's filter arithmetic) or count what the
device branch asks of CuPy (uploads, cuRAND generators), where a difference would not
show on the plain stand-in.
"""
import sys

import numpy as np
import pytest
from scipy import ndimage

import cupy_standin
from fastblur.sbdd import NoiseConfig, formation
from fastblur.sbdd import batch as batch_module
from fastblur.sbdd.batch import CropRecipe, form_batch, stack_recipes


@pytest.fixture
def standin(monkeypatch):
    """The stand-in CuPy (the blur runs on the ``numpy`` backend: no compiled kernel)."""
    return cupy_standin.install(monkeypatch, None)


# -- cupyx.scipy.ndimage.gaussian_filter's arithmetic -----------------------------------
def _cupyx_gaussian_filter(input, sigma, order=0, output=None, mode="reflect", cval=0.0, truncate=4.0):
    """cupyx.scipy.ndimage.gaussian_filter as CuPy 14 computes it (_filters.py,
    _filters_core.py): one correlate1d per axis with sigma > 1e-15, its weights and sum
    in ``promote_types(pass input dtype, float32)`` (float32 for float32 input, where
    scipy sums in float64), taps summed in order, each pass stored in the output dtype."""
    assert mode == "nearest" and order == 0
    values = np.asarray(input).view(np.ndarray)
    out_dtype = values.dtype if output is None else np.dtype(output)
    for axis, s in enumerate(np.broadcast_to(np.asarray(sigma, float), (values.ndim,))):
        if s <= 1e-15:
            continue
        radius = int(truncate * s + 0.5)
        taps = np.arange(-radius, radius + 1)
        phi = np.exp(-0.5 / (s * s) * taps ** 2)
        phi /= phi.sum()
        kind = np.promote_types(values.dtype, np.float32)
        lines = np.moveaxis(values, axis, -1).astype(kind)
        n = lines.shape[-1]
        total = np.zeros(lines.shape, kind)
        for k, weight in enumerate(phi.astype(kind)):
            total = (total + lines[..., np.clip(np.arange(n) + k - radius, 0, n - 1)] * weight).astype(kind)
        values = np.ascontiguousarray(np.moveaxis(total, -1, axis)).astype(out_dtype)
    return cupy_standin.on_device(values)


def _saturated_batch(seed):
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((6, 48, 56, 3)), (0, 3, 3, 0))
    return (255.0 * field / np.quantile(field, 0.6)).astype(np.float32)  # 40 % at or above 255


def test_emulated_cupyx_filter_differs_from_scipy_in_float32():
    """The emulation shows the difference the device branch must not inherit."""
    mask = np.float32(255) * (_saturated_batch(0) >= 255).astype(np.float32)
    expected = ndimage.gaussian_filter(mask, sigma=(0, 1, 1, 0), mode="nearest", truncate=4.0)
    emulated = _cupyx_gaussian_filter(mask, sigma=(0, 1, 1, 0), mode="nearest").view(np.ndarray)
    assert np.count_nonzero((np.floor(emulated) == 255) != (np.floor(expected) == 255)) > 0


@pytest.mark.parametrize("seed", range(3))
def test_device_saturation_mask_equals_the_host_one_with_cupyx_arithmetic(standin, monkeypatch, seed):
    """Before the fix the device branch filtered float32 and its ``mask == 255`` (the
    pixels boosted) lost samples at the rims of saturated regions."""
    monkeypatch.setattr(sys.modules["cupyx.scipy.ndimage"], "gaussian_filter", _cupyx_gaussian_filter,
                        raising=False)
    linear = _saturated_batch(seed)
    expected, expected_fractions = formation.saturation_masks(linear)
    mask, fractions = formation.saturation_masks(cupy_standin.on_device(linear))
    assert type(mask) is cupy_standin.DeviceArray and mask.dtype == np.float32
    np.testing.assert_array_equal(mask.get(), expected)
    np.testing.assert_array_equal(fractions, expected_fractions)
    assert (expected == 255).any() and ((expected > 0) & (expected < 255)).any()


# -- streaks: one upload, whatever the overlaps -------------------------------------------
def _streak_pixels_by_slices(batch, shape):
    """The per-pair path's slices, streak by streak (the former host loop)."""
    height, width = shape
    pixels, spikes = [], []
    for b in range(len(batch)):
        for (i, j, ri, rj), spike in zip(batch.streak_boxes[b], batch.streak_spikes[b]):
            rows = np.arange(*slice(int(i - ri), int(i + ri)).indices(height))
            cols = np.arange(*slice(int(j - rj), int(j + rj)).indices(width))
            pixels.append(((b * height + rows[:, None]) * width + cols).ravel())
            spikes.append(np.full(rows.size * cols.size, spike, np.float32))
    if not pixels:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(pixels), np.concatenate(spikes)


def _streaky_batch(seed, height=13, width=11, streaks=40):
    rng = np.random.default_rng(seed)
    window = np.zeros((height, width, 2), np.uint8)
    kernel = np.ones((1, 3, 3), np.float32)
    recipes = []
    for b in range(3):
        boxes = [(int(rng.integers(-3, height + 4)), int(rng.integers(-3, width + 4)), int(rng.integers(0, 6)),
                  int(rng.integers(0, 7)), float(rng.random() * 1e3)) for _ in range(streaks * b)]
        recipes.append(CropRecipe(window, kernel, np.zeros((0, height, width), bool), streaks=boxes))
    return stack_recipes(recipes)


@pytest.mark.parametrize("seed", range(4))
def test_streak_pixels_equal_the_per_pair_slices(seed):
    batch = _streaky_batch(seed)
    pixels, spikes = batch_module._streak_pixels(batch, (13, 11))
    expected_pixels, expected_spikes = _streak_pixels_by_slices(batch, (13, 11))
    np.testing.assert_array_equal(pixels, expected_pixels)
    np.testing.assert_array_equal(spikes, expected_spikes)
    assert pixels.dtype == np.int64 and spikes.dtype == np.float32


def test_streaks_are_uploaded_once(standin):
    batch = _streaky_batch(1, streaks=60)
    host = np.random.default_rng(2).random((3, 13, 11, 2)).astype(np.float32)
    expected = host.copy()
    covered = batch_module._add_streaks(expected, batch)
    order, bounds = batch_module._layers(batch_module._streak_pixels(batch, (13, 11))[0])
    assert len(bounds) - 1 >= 4  # overlapping streaks: several layers
    linear = cupy_standin.on_device(host.copy())
    del standin[:]
    changed = batch_module._add_streaks(linear, batch)
    assert standin.count("asarray") == 2  # before: two per layer and one more
    np.testing.assert_array_equal(linear.get(), expected)
    np.testing.assert_array_equal(changed.get(), covered)


# -- noise: one cuRAND generator per device, re-seeded --------------------------------------
def _noise_batch(index):
    rng = np.random.default_rng(index)
    window = rng.integers(30, 220, (24, 24, 3), dtype=np.uint8)
    kernel = np.full((1, 5, 5), 1 / 25, np.float32)
    return stack_recipes([CropRecipe(window, kernel, np.zeros((0, 24, 24), bool), seed=[7, 0, index])])


def test_noise_generator_is_reused_and_reseeded(standin, monkeypatch):
    created = []

    class CountingRandomState(cupy_standin.RandomState):
        def __init__(self, seed, method=None):
            created.append(method)
            super().__init__(seed, method)

    monkeypatch.setattr(sys.modules["cupy"].random, "RandomState", CountingRandomState)
    noise = NoiseConfig(poisson_peak=300.0, gaussian_std=0.05)
    first, second = _noise_batch(0), _noise_batch(1)
    assert first.noise_seed != second.noise_seed

    def noisy(batch):
        return form_batch(batch, noise=noise, quantize=False, device="cuda", backend="numpy")[0].get()

    alone = noisy(first)
    other = noisy(second)
    again = noisy(first)
    assert len(created) == 1  # before: one generator (cuRAND state alloc/free) per batch
    assert created == [cupy_standin.PHILOX]  # re-seeding Philox needs no state setup kernel
    np.testing.assert_array_equal(again, alone)  # re-seeding draws as a new generator does
    assert not np.array_equal(other, alone)
    np.testing.assert_array_equal(other, noisy(second))


def test_noise_seeds_are_64_bit_and_gaussian_draws_float32(standin, monkeypatch):
    """CuPy seeds the Poisson draw of element ``i`` with ``seed + i``: 32-bit seeds of two
    batches often lie closer than a batch's millions of elements, sharing shifted noise.
    The Gaussian factor is drawn in float32 on the device (no float64 temporary)."""
    seeds = [_noise_batch(index).noise_seed for index in range(16)]
    assert len(set(seeds)) == 16 and min(seeds) >= 2**32 and max(seeds) < 2**64
    dtypes = []

    class RecordingRandomState(cupy_standin.RandomState):
        def standard_normal(self, size, dtype=float):
            dtypes.append(np.dtype(dtype))
            return cupy_standin.on_device(self.states.standard_normal(size).astype(dtype))

    monkeypatch.setattr(sys.modules["cupy"].random, "RandomState", RecordingRandomState)
    monkeypatch.setattr(batch_module, "_DEVICE_GENERATORS", type(batch_module._DEVICE_GENERATORS)())
    form_batch(_noise_batch(0), noise=NoiseConfig(gaussian_std=0.05), quantize=False, device="cuda", backend="numpy")
    assert dtypes == [np.float32]
    host = form_batch(_noise_batch(0), noise=NoiseConfig(poisson_peak=300.0), quantize=False)[0]
    assert np.all(np.isfinite(host))  # NumPy's generator takes the 64-bit seed too


class _ForeignStream:
    """A stream CuPy does not own (``__cuda_stream__``), as PyTorch's or another library's."""

    def __init__(self, pointer):
        self.pointer = pointer

    def __cuda_stream__(self):
        return (0, self.pointer)


def test_reused_generator_orders_its_draws_across_streams(standin, monkeypatch):
    """The reused generator's cuRAND state is re-initialised on the stream of the next
    batch's draw: formed on another stream, that batch must wait (on the device) for the
    event recorded after the previous batch's draws, or both kernels race on the state."""
    import cupy

    events = cupy_standin.STATE.events

    class RecordingRandomState(cupy_standin.RandomState):
        def standard_normal(self, size, dtype=float):
            events.append(("draw", cupy_standin.STATE.device, cupy_standin.STATE.stream.ptr, None))
            return cupy_standin.on_device(self.states.standard_normal(size).astype(dtype))

    monkeypatch.setattr(sys.modules["cupy"].random, "RandomState", RecordingRandomState)
    monkeypatch.setattr(batch_module, "_DEVICE_GENERATORS", type(batch_module._DEVICE_GENERATORS)())
    noise = NoiseConfig(poisson_peak=300.0, gaussian_std=0.05)
    form_batch(_noise_batch(0), noise=noise, quantize=False, device="cuda", backend="numpy")
    with cupy.cuda.Stream.from_external(_ForeignStream(77)):
        form_batch(_noise_batch(1), noise=noise, quantize=False, device="cuda", backend="numpy")
    assert [event[:3] for event in events] == [("draw", 0, 0), ("record", 0, 0),
                                               ("wait", 0, 77), ("draw", 0, 77), ("record", 0, 77)]
    assert events[2][3] is events[1][3]  # stream 77 waits for the event stream 0 recorded
