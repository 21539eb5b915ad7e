"""The ``fftw`` backend: the tiled overlap-save FFT of ``numpy``, transformed by FFTW.

The tiling, kernel skipping and accumulation are :class:`~.tiled_fft.TiledFFT`'s; this
module supplies an FFT engine over pyFFTW:

* one 2-D plan per (direction, transform shape, precision), planned with
  ``FFTW_MEASURE`` (``FASTBLUR_FFTW_PLANNER`` = ``estimate`` / ``measure`` / ``patient``
  changes that; transforms under 64 x 64 always use ``FFTW_ESTIMATE``) and kept for the
  life of the process;
* a plan is used by one thread at a time: the tile workers borrow plans from a pool,
  which plans another copy when all are busy (FFTW's planner is serialised by pyFFTW;
  ``execute`` runs without the GIL), so tiles transform in parallel;
* FFTW wisdom is loaded from and saved to fastblur's cache directory
  (``~/.cache/fastblur/fftw_wisdom-<machine>.json``), so later processes plan a known
  shape at once. ``FASTBLUR_FFTW_WISDOM=0`` (or ``FASTBLUR_CACHE_DIR=none``) keeps
  wisdom in memory only.
"""
import functools
import json
import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager

import numpy as np
import pyfftw

from .. import _threads
from .._validation import check_choice
from . import _cache
from .base import Backend
from .tiled_fft import TiledFFT

PLANNER_ENV_VAR = "FASTBLUR_FFTW_PLANNER"
WISDOM_ENV_VAR = "FASTBLUR_FFTW_WISDOM"
#: Transforms with fewer samples are planned with FFTW_ESTIMATE whatever the setting:
#: measuring them costs more than it can save.
MEASURE_MIN_SAMPLES = 64 * 64
#: Transform shapes whose plans are kept (least recently used ones are dropped).
MAX_PLAN_SHAPES = 64
#: A leading axis this short (the channels of a block) is transformed by one batched
#: plan; longer stacks (kernels) loop over single 2-D plans, so that the number of
#: distinct plans stays small.
MAX_BATCH = 4

_PLANNERS = {"estimate": "FFTW_ESTIMATE", "measure": "FFTW_MEASURE", "patient": "FFTW_PATIENT"}
# FFTW's planner and wisdom are global and not thread-safe. pyFFTW serialises planning
# but not the export of wisdom, so fastblur plans and exports under one lock.
_planner_lock = threading.Lock()
_pools = weakref.WeakSet()


def _fresh_locks_in_child():
    # A lock held by another thread at fork() would stay locked forever in the child.
    global _planner_lock
    _planner_lock = threading.Lock()
    for pool in list(_pools):
        pool._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


def planner_flag(shape):
    """The FFTW planner flag for a transform of ``shape``.

    Raises
    ------
    ValueError
        If ``FASTBLUR_FFTW_PLANNER`` is set to something other than estimate, measure
        or patient.
    """
    value = os.environ.get(PLANNER_ENV_VAR, "measure").strip().lower()
    value = value[5:] if value.startswith("fftw_") else value
    check_choice(value, sorted(_PLANNERS), PLANNER_ENV_VAR)
    if shape[0] * shape[1] < MEASURE_MIN_SAMPLES:
        return "FFTW_ESTIMATE"
    return _PLANNERS[value]


class WisdomFile:
    """FFTW wisdom saved in fastblur's cache directory (see the module docstring)."""

    def __init__(self):
        self.name = f"fftw_wisdom-{_cache.machine_tag()}-pyfftw{pyfftw.__version__}.json"

    @staticmethod
    def enabled():
        return os.environ.get(WISDOM_ENV_VAR, "1").strip().lower() not in ("0", "off", "no", "false")

    def load(self):
        """Import the saved wisdom, if any. Returns whether some was imported."""
        if not self.enabled():
            return False
        text = _cache.read_text(self.name)
        if text is None:
            return False
        try:
            wisdom = tuple(part.encode("ascii") for part in json.loads(text))
            with _planner_lock:
                return any(pyfftw.import_wisdom(wisdom))
        except (ValueError, TypeError, UnicodeEncodeError):
            return False  # a corrupt file is replaced by the next save

    def save(self):
        """Write all of FFTW's current wisdom. Returns whether the file was written."""
        if not self.enabled():
            return False
        with _planner_lock:
            wisdom = pyfftw.export_wisdom()
        return _cache.write_text(self.name, json.dumps([part.decode("ascii") for part in wisdom]))


class PlanPool:
    """FFTW plans by (direction, shape, precision), each lent to one thread at a time.

    Attributes
    ----------
    created : int
        Plans made so far (a second thread using a shape at the same time makes one).
    reused : int
        Borrowings served by an existing plan.
    """

    def __init__(self, wisdom):
        self._wisdom = wisdom
        self._free = OrderedDict()  # key -> idle plans
        self._lock = threading.Lock()
        self.created = 0
        self.reused = 0
        _pools.add(self)

    @contextmanager
    def borrow(self, direction, shape, real_dtype, batch=1):
        """An idle plan of ``batch`` 2-D transforms of ``shape``.

        ``direction`` is "forward" (real to complex) or "backward" (complex to real);
        the plan's arrays are ``(batch,) + shape`` (real) and
        ``(batch, shape[0], shape[1] // 2 + 1)`` (complex).
        """
        key = (direction, tuple(int(n) for n in shape), np.dtype(real_dtype).str, int(batch))
        with self._lock:
            idle = self._free.get(key)
            plan = idle.pop() if idle else None
            if plan is not None:
                self.reused += 1
        if plan is None:
            plan = self._create(*key)
        try:
            yield plan
        finally:
            with self._lock:
                self._free.setdefault(key, []).append(plan)
                self._free.move_to_end(key)
                while len(self._free) > MAX_PLAN_SHAPES:
                    self._free.popitem(last=False)

    def _create(self, direction, shape, real_str, batch):
        real = np.dtype(real_str)
        complex_ = np.result_type(real, np.complex64)
        samples = (batch,) + shape
        spectrum = (batch, shape[0], shape[1] // 2 + 1)
        flag = planner_flag(shape)
        if direction == "forward":
            source = pyfftw.empty_aligned(samples, real)
            target = pyfftw.empty_aligned(spectrum, complex_)
        else:
            source = pyfftw.empty_aligned(spectrum, complex_)
            target = pyfftw.empty_aligned(samples, real)
        with _planner_lock:
            plan = pyfftw.FFTW(
                source, target, axes=(1, 2), direction=f"FFTW_{direction.upper()}",
                flags=(flag,), threads=1,
            )
        source.fill(0)  # measuring scribbles on the arrays
        with self._lock:
            self.created += 1
        if flag != "FFTW_ESTIMATE":
            self._wisdom.save()
        return plan


@functools.lru_cache(maxsize=None)
def fast_len(n):
    """The smallest even ``m >= n`` with no prime factor above 7.

    FFTW's real transforms are markedly slower on odd lengths (125 takes 2.5x the time
    of 128), which scipy's ``next_fast_len(real=True)`` allows.
    """
    m = max(2, int(n) + (int(n) & 1))
    while True:
        rest = m
        for prime in (2, 3, 5, 7):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return m
        m += 2


def _batch(lead):
    return lead[-1] if lead and lead[-1] <= MAX_BATCH else 1


class FFTWEngine:
    """The TiledFFT engine over pyFFTW: plans from a :class:`PlanPool`.

    Stacks are transformed through the plan's own aligned arrays, a short last leading
    axis (the channels) at once and the other leading axes one after the other, so a
    few plans serve any leading shape.
    """

    def __init__(self, plans):
        self.plans = plans

    @staticmethod
    def fast_len(n):
        return fast_len(n)

    def rfft2(self, blocks, shape):
        blocks = np.asarray(blocks)
        real = np.float32 if blocks.dtype == np.float32 else np.float64
        shape = (int(shape[0]), int(shape[1]))
        rows, cols = min(blocks.shape[-2], shape[0]), min(blocks.shape[-1], shape[1])
        lead = blocks.shape[:-2]
        batch = _batch(lead)
        stack = blocks.reshape((-1, batch) + blocks.shape[-2:])
        out = np.empty(
            (stack.shape[0], batch, shape[0], shape[1] // 2 + 1), np.result_type(real, np.complex64)
        )
        with self.plans.borrow("forward", shape, real, batch) as plan:
            source = plan.input_array
            source[:, rows:] = 0  # r2c plans preserve their input: the padding stays zero
            source[:, :rows, cols:] = 0
            for k in range(stack.shape[0]):
                source[:, :rows, :cols] = stack[k, :, :rows, :cols]
                plan.execute()
                out[k] = plan.output_array
        return out.reshape(lead + out.shape[2:])

    def irfft2(self, spectra, shape):
        spectra = np.asarray(spectra)
        real = np.float32 if spectra.dtype == np.complex64 else np.float64
        shape = (int(shape[0]), int(shape[1]))
        lead = spectra.shape[:-2]
        batch = _batch(lead)
        stack = spectra.reshape((-1, batch) + spectra.shape[-2:])
        out = np.empty((stack.shape[0], batch) + shape, real)
        scale = real(1.0 / (shape[0] * shape[1]))  # FFTW does not normalise
        with self.plans.borrow("backward", shape, real, batch) as plan:
            source = plan.input_array
            for k in range(stack.shape[0]):
                source[...] = stack[k]  # c2r plans destroy their input: refill every time
                plan.execute()
                np.multiply(plan.output_array, scale, out=out[k])
        return out.reshape(lead + shape)


class FFTWBackend(TiledFFT, Backend):
    """Tiled overlap-save FFT convolution with FFTW plans, tiles spread over threads.

    Attributes
    ----------
    plans : PlanPool
        The plan cache (``plans.created``, ``plans.reused``).
    wisdom : WisdomFile
    wisdom_loaded : bool
        Whether saved wisdom was imported when the backend was created.
    """

    name = "fftw"

    def __init__(self):
        self.wisdom = WisdomFile()
        self.wisdom_loaded = self.wisdom.load()
        self.plans = PlanPool(self.wisdom)
        TiledFFT.__init__(self, FFTWEngine(self.plans), _threads.num_threads)


BACKEND = FFTWBackend()
