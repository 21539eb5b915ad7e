"""The cost model behind ``backend="auto"``: direct sparse taps or tiled FFT, per call.

Two methods compete for every call:

``direct`` (``native``, else ``numba``)
    Cost ``tap x`` (non-zero taps x values evaluated) ``+ scan x`` (weight tests)
    ``+ accumulate x`` (weighted values added to the output). For ``blur_masked`` a
    kernel is evaluated only where its weight is non-zero, so the counts use each
    kernel's active area; for ``smooth_masks`` only the pixels near mask edges.
``fft`` (``fftw``, else ``numpy``)
    Per overlap-save tile of ``F`` samples: ``transform x F log2 F`` per real 2-D
    transform, ``multiply x F / 2`` per spectral product, ``tile`` of fixed overhead.
    For weighted operations only the kernels active in a tile are counted (the tile
    plan and the activity test are the FFT backends' own).

Activity is estimated from a subsample of the weights/masks (about 4 000 samples a
map), so choosing costs well under a millisecond on a 720p problem. Each side is
divided by the threads it can use (``FASTBLUR_NUM_THREADS``, at most one per tile).

The constants (seconds per unit on one thread, float32; float64 costs
``FLOAT64_FACTOR`` times more) are measured once per machine and backend by
:func:`calibrate` (about 0.1-0.5 s) and cached in ``cost_model-<machine>.json`` in
fastblur's cache directory (see :mod:`fastblur.backends._cache`). When that directory
is disabled or not writable, or ``FASTBLUR_CALIBRATE=0``, built-in :data:`DEFAULTS`
are used, so decisions stay deterministic. :func:`explain` shows a decision; every
``auto`` decision is also logged at DEBUG level on the ``fastblur`` logger.
"""
import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _problem, _threads, _validation
from .._tiling import plan_tiles
from . import _cache
from .base import ZERO_WEIGHT
from .tiled_fft import UNIFORM_BLOCK_MULTIPLE, WEIGHTED_BLOCK_MULTIPLE, TiledFFT

logger = logging.getLogger("fastblur")

CALIBRATE_ENV_VAR = "FASTBLUR_CALIBRATE"
#: Backends of each method, in order of preference; the first available one competes.
METHODS = {"direct": ("native", "numba"), "fft": ("fftw", "numpy")}
OPERATIONS = _problem.OPERATIONS
#: float64 cost / float32 cost of each constant (half the SIMD lanes; FFTs a bit less).
FLOAT64_FACTOR = {
    "tap": 2.0, "scan": 1.5, "accumulate": 2.0, "transform": 1.4, "multiply": 2.0, "tile": 1.0,
}
#: Measured on the development machine (AMD EPYC, AVX-512), one thread, float32.
DEFAULTS = {
    "native": {"tap": 2.3e-11, "scan": 8.3e-11, "accumulate": 8.9e-11},
    "numba": {"tap": 4e-11, "scan": 5.1e-10, "accumulate": 7.3e-10},
    "fftw": {"transform": 8.9e-11, "multiply": 4.1e-10, "tile": 8.7e-5},
    "numpy": {"transform": 1.2e-10, "multiply": 4e-10, "tile": 4.7e-5},
}
CACHE_VERSION = 1
#: Target number of samples per map when estimating where weights are active.
ACTIVITY_SAMPLES = 1 << 12
#: Output rows per work item of the direct backends (their threads' granularity).
DIRECT_BAND_ROWS = 16
#: Speed-up of the FFT backends per extra thread (measured 1.6x on two threads).
FFT_THREAD_EFFICIENCY = 0.6

_lock = threading.Lock()
_constants = {}  # backend name -> (dict of constants, source)


def _fresh_lock_in_child():
    global _lock  # a calibration running in another thread at fork() never ends here
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_in_child)


# -- constants ------------------------------------------------------------------------
def _cache_name():
    return f"cost_model-{_cache.machine_tag()}.json"


def _read_cache():
    text = _cache.read_text(_cache_name())
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return {}
    return data.get("backends", {})


def _write_cache(name, values):
    backends = _read_cache()
    backends[name] = values
    return _cache.write_text(
        _cache_name(), json.dumps({"version": CACHE_VERSION, "backends": backends}, indent=1)
    )


def _calibration_allowed():
    flag = os.environ.get(CALIBRATE_ENV_VAR, "1").strip().lower()
    return flag not in ("0", "off", "no", "false") and _cache.is_writable()


def constants(name):
    """The cost constants of backend ``name`` and where they come from.

    Returns
    -------
    values : dict of str to float
        Seconds per unit, one thread, float32.
    source : {'cached', 'calibrated', 'default'}
    """
    with _lock:
        if name in _constants:
            return _constants[name]
        cached = _read_cache().get(name)
        if isinstance(cached, dict) and set(cached) == set(DEFAULTS[name]):
            result = ({k: float(v) for k, v in cached.items()}, "cached")
        elif _calibration_allowed():
            try:
                values = calibrate(name)
            except Exception as error:  # a backend that loads but cannot run its kernels
                logger.warning("fastblur: calibrating %s failed (%s); using defaults", name, error)
                result = (dict(DEFAULTS[name]), "default")
            else:
                _write_cache(name, values)
                result = (values, "calibrated")
        else:
            result = (dict(DEFAULTS[name]), "default")
        _constants[name] = result
        return result


def reset():
    """Forget the constants loaded in this process (the cache file stays)."""
    with _lock:
        _constants.clear()


def _best_time(function, repeat=7):
    function()  # warm-up: caches, plans, JIT
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(name):
    """Measure the cost constants of backend ``name`` on this machine (one thread).

    Direct backends: a 33x33 kernel with 64 taps over a 192 x 512 x 3 float32 image
    (``tap``), six all-zero weight maps (``scan``) and one all-one map (``accumulate``).
    FFT backends: their engine's transforms of 128 x 128 blocks (``transform``), a stack
    of spectral products (``multiply``) and a six-tile convolution (``tile``, the rest of
    a tile's cost). Takes 0.1-0.5 s, plus FFTW planning and Numba compilation when their
    caches are cold.

    Returns
    -------
    dict of str to float
    """
    from . import get_backend

    backend = get_backend(name)
    rng = np.random.default_rng(0)
    if name in METHODS["direct"]:
        one_thread = type(backend)(threads=lambda: 1)
        image = rng.random((392, 672, 3), dtype=np.float32)
        kernel = np.zeros((33, 33), np.float32)
        kernel.flat[rng.choice(kernel.size, 64, replace=False)] = 1 / 64
        values = 360 * 640 * 3
        convolve = _best_time(lambda: one_thread.convolve_valid(image, kernel), repeat=5)
        kernels = np.stack([kernel] * 6)
        weights = np.zeros((6, 360, 640), np.float32)
        scan = _best_time(lambda: one_thread.blur_masked_valid(image, kernels, weights), repeat=5)
        weights[0] = 1
        masked = _best_time(lambda: one_thread.blur_masked_valid(image, kernels, weights), repeat=5)
        tap = convolve / (64 * values)
        # A difference of two timings: under load it can come out below zero.
        accumulate = max(tap, (masked - scan - convolve) / values)
        return {"tap": tap, "scan": scan / (6 * 360 * 640), "accumulate": accumulate}
    engine = backend.engine
    shape = (128, 128)
    samples = shape[0] * shape[1]
    unit = samples * math.log2(samples)
    blocks = rng.random((3, 112, 112), dtype=np.float32)
    transform = _best_time(lambda: engine.irfft2(engine.rfft2(blocks, shape), shape)) / (6 * unit)
    spectrum = engine.rfft2(blocks, shape)
    spectra = engine.rfft2(rng.random((4, 9, 9), dtype=np.float32), shape)

    def products():
        product = spectrum[None] * spectra[:, None]
        return product.sum(axis=0)

    multiply = _best_time(products) / (4 * 3 * spectrum[0].size)
    # The rest of a tile's cost (copies, crops, Python), from a whole convolution.
    one_thread = TiledFFT(engine, lambda: 1)
    kernel = rng.random((17, 17), dtype=np.float32)
    out_shape = (360, 640)
    plan, fft_shape = one_thread.plan(out_shape, kernel.shape, UNIFORM_BLOCK_MULTIPLE)
    image = rng.random((376, 656, 3), dtype=np.float32)
    seconds = _best_time(lambda: one_thread.convolve_valid(image, kernel), repeat=5)
    tiles = len(plan.tiles())
    samples = fft_shape[0] * fft_shape[1]
    predicted = (tiles * 3 + 1) * transform * samples * math.log2(samples)
    predicted += tiles * 3 * (transform * samples * math.log2(samples) + multiply * samples / 2)
    return {"transform": transform, "multiply": multiply, "tile": max(0.0, seconds - predicted) / tiles}


def scale_constants(values, dtype):
    """Cost constants ``values`` (float32) for ``dtype``: float64 ones cost
    :data:`FLOAT64_FACTOR` times more."""
    if np.dtype(dtype) != np.float64:
        return values
    return {k: v * FLOAT64_FACTOR[k] for k, v in values.items()}


# -- workload -------------------------------------------------------------------------
def activity_stride(height, width):
    """Subsampling step that leaves about :data:`ACTIVITY_SAMPLES` of a ``height x width`` map."""
    return max(1, int(math.sqrt(height * width / ACTIVITY_SAMPLES)))


def _tile_starts(plan, stride):
    """Subsample indices of the first row/column of every tile of ``plan``."""
    (ho, wo), (th, tw) = plan.out_shape, plan.tile_shape
    rows = np.unique(np.arange(0, ho, th) // stride)
    cols = np.unique(np.arange(0, wo, tw) // stride)
    return rows, cols


def _per_tile_any(active, rows, cols):
    """(N, h, w) bool -> (N, tiles) bool: whether each map is active anywhere in a tile."""
    if active.shape[1] == 0 or active.shape[2] == 0:
        return np.zeros((active.shape[0], 0), bool)
    by_rows = np.logical_or.reduceat(active, rows, axis=1)
    return np.logical_or.reduceat(by_rows, cols, axis=2).reshape(active.shape[0], -1)


@dataclass
class Estimate:
    """Predicted seconds of one method, and what the prediction counted."""

    method: str
    backend: str
    seconds: float
    detail: str
    source: str
    variant: str = None

    @property
    def label(self):
        """``backend`` or, where the backend reports one, ``backend/variant`` (``native/avx2``)."""
        return self.backend if self.variant is None else f"{self.backend}/{self.variant}"


@dataclass
class Decision:
    """The ``auto`` choice for one call (see :func:`explain`), on the CPU between
    backends, on the GPU between the ``cupy`` backend's methods.

    Attributes
    ----------
    operation : str
    backend : str
        The backend ``auto`` runs.
    method : {'direct', 'fft'}
    estimates : list of Estimate
        Every method considered, cheapest first.
    problem : str
        The call's shapes, taps and weight activity, in words.
    threads : int
    variant : str or None
        The chosen backend's code variant (``backend.variant``, e.g. the SIMD level of
        ``native``), where it reports one.
    """

    operation: str
    backend: str
    method: str
    estimates: list = field(default_factory=list)
    problem: str = ""
    threads: int = 1
    variant: str = None

    @property
    def label(self):
        """The chosen backend, with its variant where it reports one (``native/avx2``)."""
        return self.backend if self.variant is None else f"{self.backend}/{self.variant}"

    def _chosen(self, estimate):
        return estimate.backend == self.backend and estimate.method == self.method

    def __str__(self):
        lines = [f"{self.operation}: {self.problem}; {self.threads} thread(s)"]
        for estimate in self.estimates:
            mark = "  <- chosen" if self._chosen(estimate) else ""
            lines.append(
                f"  {estimate.method:6s} ({estimate.label}): {1e3 * estimate.seconds:9.3f} ms "
                f"[{estimate.detail}; constants {estimate.source}]{mark}"
            )
        if not any(self._chosen(e) for e in self.estimates):
            lines.append(f"  {self.method} ({self.label})  <- chosen")
        return "\n".join(lines)

    def summary(self):
        """One line: the choice and the estimates."""
        parts = [f"{e.label} {e.method} {1e3 * e.seconds:.3g} ms" for e in self.estimates]
        details = "; ".join([self.method, ", ".join(parts), self.problem] if parts else [self.method, self.problem])
        return f"auto {self.operation} -> {self.label} ({details})"


def _describe_kernels(kernels, taps):
    kh, kw = kernels.shape[1:]
    span = f"{taps.min()}" if taps.min() == taps.max() else f"{taps.min()}-{taps.max()}"
    return f"{len(kernels)} kernel(s) {kh}x{kw} with {span} non-zero taps"


def _direct_estimate(name, operation, dtype, image_hw, channels, kernels, taps, activity, threads):
    values, source = constants(name)
    c = scale_constants(values, dtype)
    kh, kw = kernels.shape[1:]
    ho, wo = image_hw[0] - kh + 1, image_hw[1] - kw + 1
    pixels = ho * wo
    if operation == "convolve":
        evaluated = float(taps[0]) * pixels * channels
        seconds = c["tap"] * evaluated
        detail = f"{evaluated:.3g} tap-values"
    elif operation == "smooth_masks":
        edge = activity["edge_fraction"]
        evaluated = float(np.sum(taps * edge)) * pixels
        # Uniform tiles cost a byte scan of their input block per mask.
        seconds = c["tap"] * evaluated + 0.25 * c["scan"] * len(kernels) * image_hw[0] * image_hw[1]
        detail = f"{evaluated:.3g} tap-values near mask edges ({np.mean(edge):.0%} of pixels)"
    else:
        fraction = activity["pixel_fraction"] if operation == "blur_masked" else activity["tile_fraction"]
        evaluated = float(np.sum(taps * fraction)) * pixels * channels
        seconds = (
            c["tap"] * evaluated + c["scan"] * len(kernels) * pixels
            + c["accumulate"] * float(np.sum(fraction)) * pixels * channels
        )
        if operation == "blur_product":  # weighted copies of the input blocks, twice over
            seconds += 2 * c["accumulate"] * float(np.sum(fraction)) * image_hw[0] * image_hw[1] * channels
        detail = f"{evaluated:.3g} tap-values, {np.sum(fraction):.2f} kernels per pixel"
    units = max(1, -(-ho // DIRECT_BAND_ROWS))
    return Estimate("direct", name, seconds / min(threads, units), detail, source)


def _fft_estimate(name, operation, dtype, channels, kernels, activity, plan, fft_shape, threads):
    values, source = constants(name)
    c = scale_constants(values, dtype)
    samples = fft_shape[0] * fft_shape[1]
    transform = c["transform"] * samples * math.log2(max(samples, 2))
    multiply = c["multiply"] * samples / 2
    tiles = len(plan.tiles())
    if operation == "convolve":
        seconds = tiles * (channels * (2 * transform + multiply) + c["tile"]) + transform
        detail = f"{tiles} tile(s) of {fft_shape[0]}x{fft_shape[1]}"
    else:
        active = activity["tile_active"].sum(axis=0)  # active kernels (or mixed masks) per tile
        if operation == "smooth_masks":
            transforms, products = 2 * active, active
        else:  # one transform per channel, one per active kernel and channel
            transforms = np.where(active > 0, channels * (1 + active), 0)
            products = 2 * channels * active  # spectral product and weighted accumulation
        seconds = (
            transform * float(np.sum(transforms)) + multiply * float(np.sum(products))
            + c["tile"] * tiles + len(kernels) * transform
        )
        detail = (
            f"{tiles} tile(s) of {fft_shape[0]}x{fft_shape[1]}, "
            f"{np.mean(active) if active.size else 0:.2f} active kernels per tile"
        )
    # Tiles run in a Python thread pool: their numpy work scales, their overhead less so.
    workers = min(threads, max(1, tiles))
    return Estimate("fft", name, seconds / (1 + FFT_THREAD_EFFICIENCY * (workers - 1)), detail, source)


def _activity(operation, image_hw, kernels, weights, masks, plan):
    """Where the kernels are active: per-pixel and per-tile fractions from a subsample."""
    kh, kw = kernels.shape[1:]
    out_hw = (image_hw[0] - kh + 1, image_hw[1] - kw + 1)
    stride = activity_stride(*out_hw)
    rows, cols = _tile_starts(plan, stride)
    if operation in ("blur_masked", "blur_product"):
        maps = weights[:, : out_hw[0], : out_hw[1]] if operation == "blur_product" else weights
        active = np.abs(np.asarray(maps[:, ::stride, ::stride])) > ZERO_WEIGHT
        tile_active = _per_tile_any(active, rows, cols)
        return {
            "pixel_fraction": active.mean(axis=(1, 2)),
            "tile_active": tile_active,
            "tile_fraction": tile_active.mean(axis=1) if tile_active.size else np.zeros(len(kernels)),
        }
    # smooth_masks: an output pixel needs taps when the mask is mixed under its kernel box.
    sampled = np.asarray(masks[:, ::stride, ::stride], bool)
    box = (max(1, -(-kh // stride)), max(1, -(-kw // stride)))
    table = np.zeros((sampled.shape[0], sampled.shape[1] + 1, sampled.shape[2] + 1), np.int32)
    np.cumsum(np.cumsum(sampled, axis=1, dtype=np.int32), axis=2, out=table[:, 1:, 1:])
    bh, bw = box
    counts = table[:, bh:, bw:] - table[:, :-bh, bw:] - table[:, bh:, :-bw] + table[:, :-bh, :-bw]
    mixed = (counts > 0) & (counts < bh * bw)
    tile_mixed = _per_tile_any(mixed, rows, cols)
    edge = mixed.mean(axis=(1, 2)) if mixed.size else np.zeros(len(kernels))
    return {"edge_fraction": edge, "tile_active": tile_mixed}


def _first_available(names, available):
    return next((name for name in names if name in available), None)


def decide(operation, image=None, kernels=None, weights=None, masks=None):
    """Choose backend and method for one call; see the module docstring.

    Parameters
    ----------
    operation : {'convolve', 'blur_masked', 'blur_product', 'smooth_masks'} or Problem
        A :class:`fastblur._problem.Problem` (what the primitives and :func:`explain`
        build) brings its own arrays (:attr:`~fastblur._problem.Problem.workload`).
    image : ndarray, shape (H, W, C)
        The extended image the backend will see (only its shape and dtype are used).
    kernels : ndarray, shape (N, kh, kw)
    weights : ndarray, shape (N, Ho, Wo) or (N, H, W), optional
        For ``blur_masked`` (output grid) and ``blur_product`` (input grid).
    masks : ndarray of bool, shape (N, H, W), optional
        For ``smooth_masks``: every mask, background first, extended for the mode.

    Returns
    -------
    Decision
    """
    if isinstance(operation, _problem.Problem):
        image, kernels, weights, masks = operation.workload
        operation = operation.operation
    from . import available_backends, get_backend

    if operation not in OPERATIONS:
        _validation.check_choice(operation, OPERATIONS, "operation")
    kernels = np.asarray(kernels)
    threads = _threads.num_threads()
    if operation == "smooth_masks":
        image_hw, channels, dtype = masks.shape[1:], 1, kernels.dtype
    else:
        image_hw, channels, dtype = image.shape[:2], image.shape[2], image.dtype
    taps = np.count_nonzero(kernels.reshape(len(kernels), -1), axis=1)
    available = available_backends()
    direct_name = _first_available(METHODS["direct"], available)
    fft_name = _first_available(METHODS["fft"], available)
    if direct_name is None and fft_name is None:
        raise RuntimeError("no CPU backend is available for backend='auto'")

    kh, kw = kernels.shape[1:]
    out_hw = (image_hw[0] - kh + 1, image_hw[1] - kw + 1)
    plan = fft_shape = None
    if fft_name is not None:
        multiple = UNIFORM_BLOCK_MULTIPLE if operation == "convolve" else WEIGHTED_BLOCK_MULTIPLE
        plan, fft_shape = get_backend(fft_name).plan(out_hw, (kh, kw), multiple)
    activity = None
    if operation != "convolve":
        tiles_for_activity = plan or plan_tiles(out_hw, (kh, kw), 256)
        activity = _activity(operation, image_hw, kernels, weights, masks, tiles_for_activity)

    estimates = []
    if direct_name is not None:
        estimates.append(_direct_estimate(
            direct_name, operation, dtype, image_hw, channels, kernels, taps, activity, threads))
    if fft_name is not None:
        estimates.append(_fft_estimate(
            fft_name, operation, dtype, channels, kernels, activity, plan, fft_shape, threads))
    for estimate in estimates:
        estimate.variant = get_backend(estimate.backend).variant
    estimates.sort(key=lambda e: e.seconds)
    problem = (
        f"{tuple(image_hw)}x{channels} {np.dtype(dtype).name} input, "
        f"{_describe_kernels(kernels, taps)}"
    )
    if activity is not None and "pixel_fraction" in activity:
        problem += f", weights active on {np.sum(activity['pixel_fraction']):.2f} kernels per pixel"
    best = estimates[0]
    return Decision(operation, best.backend, best.method, estimates, problem, threads, best.variant)


def explain(operation, image, kernels, weights=None, mode="valid", boundary="reflect"):
    """How ``backend="auto"`` would run a call, and why.

    Parameters
    ----------
    operation : {'convolve', 'blur_masked', 'blur_product', 'smooth_masks'}
    image : array_like
        The image, shape (H, W) or (H, W, C); for ``smooth_masks`` the object masks,
        shape (n, H, W).
    kernels : array_like, shape (kh, kw) for ``convolve``, else (N, kh, kw)
    weights : array_like, optional
        As for :func:`fastblur.blur_masked` / :func:`fastblur.blur_product`.
    mode, boundary : str, optional
        As for the operation.

    Returns
    -------
    Decision
        ``print(decision)`` shows each method's predicted time, what it counted, and
        the choice; ``decision.backend`` is the backend ``auto`` runs.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> image = np.zeros((480, 640, 3), np.float32)
    >>> kernel = np.zeros((31, 31), np.float32); kernel[15, :] = 1 / 31
    >>> fastblur.explain("convolve", image, kernel).method
    'direct'
    """
    return decide(_problem.describe(operation, image, kernels, weights, mode, boundary))
