"""The ``numba`` backend: the ``native`` algorithms compiled by Numba instead of C++.

Sparse-tap direct convolution (only non-zero taps are visited), run by run where the
weights are active for ``blur_masked``, row by row where they are for ``blur_product``,
and only near mask edges for ``convolve_masks_valid``. The loops run in parallel
(``prange`` over output rows or bands; ``FASTBLUR_NUM_THREADS`` caps the threads),
release the GIL, and are compiled once per dtype and cached on disk (``cache=True``:
next to this module, or in ``NUMBA_CACHE_DIR``). It needs no compiler at install time,
and is the fallback of ``auto`` for direct methods when the C++ extension is missing.
A process forked after a parallel run (its thread pool does not survive ``fork``) runs
serial compilations instead.
"""
import os
import threading

import numba
import numpy as np
from numba import njit, prange

from .._threads import num_threads
from .base import ZERO_WEIGHT, Backend, binary_bytes

#: Runs of active pixels closer than this are evaluated as one (as in the C++ code).
MERGE_GAP = 8
#: Output rows of one parallel work item of ``blur_product`` and ``convolve_masks``.
BAND_ROWS = 64
#: Values of an output row processed together, so that they stay in L1.
STRIP_VALUES = 2048

_JIT = dict(parallel=True, cache=True, nogil=True, fastmath={"contract"})


def stack_taps(kernels, row_stride, channels):
    """Non-zero taps of each kernel as flat input offsets (true convolution).

    Parameters
    ----------
    kernels : ndarray, shape (N, kh, kw)
    row_stride : int
        Values per input row.
    channels : int
        Values per input pixel.

    Returns
    -------
    offsets : ndarray of int64, shape (N, T)
        ``dy * row_stride + dx * channels``, increasing; ``T`` is the largest tap count.
    values : ndarray, shape (N, T), dtype of ``kernels``
    counts : ndarray of int64, shape (N,)
        Taps of each kernel (the rest of its row is padding).
    boxes : ndarray of int64, shape (N, 4)
        ``(dy_min, dy_max, dx_min, dx_max)`` of the taps; ``(0, -1, 0, -1)`` without taps.
    """
    flipped = kernels[:, ::-1, ::-1]
    found = [np.nonzero(k) for k in flipped]
    counts = np.array([dy.size for dy, _ in found], np.int64)
    width = max(1, int(counts.max(initial=0)))
    offsets = np.zeros((len(kernels), width), np.int64)
    values = np.zeros((len(kernels), width), kernels.dtype)
    boxes = np.tile(np.array([0, -1, 0, -1], np.int64), (len(kernels), 1))
    for i, (dy, dx) in enumerate(found):
        offsets[i, : dy.size] = dy * row_stride + dx * channels
        values[i, : dy.size] = flipped[i, dy, dx]
        if dy.size:
            boxes[i] = dy.min(), dy.max(), dx.min(), dx.max()
    return offsets, values, counts, boxes


@njit(**_JIT)
def _convolve_rows(flat, in_stride, offsets, values, count, out):
    out_rows, span = out.shape
    for y in prange(out_rows):
        row = out[y]
        base = y * in_stride
        for s0 in range(0, span, STRIP_VALUES):
            s1 = min(span, s0 + STRIP_VALUES)
            dst = row[s0:s1]
            dst[:] = 0
            for t in range(count):
                # A slice per tap: LLVM vectorises a loop over slices, not over flat[a + j].
                src = flat[base + offsets[t] + s0 : base + offsets[t] + s1]
                v = values[t]
                for j in range(s1 - s0):
                    dst[j] += v * src[j]


@njit(**_JIT)
def _blur_masked_rows(flat, in_stride, channels, offsets, values, counts, weights, zero, out):
    count, out_rows, out_width = weights.shape
    for y in prange(out_rows):
        row = out[y]
        row[:] = 0
        sums = np.empty(out_width * channels, out.dtype)
        for i in range(count):
            taps = counts[i]
            if taps == 0:
                continue
            w = weights[i, y]
            x = 0
            while x < out_width:
                while x < out_width and abs(w[x]) <= zero:
                    x += 1
                if x >= out_width:
                    break
                x0 = x
                x1 = x
                gap = 0
                while x < out_width:
                    if abs(w[x]) > zero:
                        x1 = x + 1
                        gap = 0
                    else:
                        gap += 1
                        if gap > MERGE_GAP:
                            break
                    x += 1
                first = x0 * channels
                n = (x1 - x0) * channels
                sums[:n] = 0
                base = y * in_stride + first
                for t in range(taps):
                    src = flat[base + offsets[i, t] : base + offsets[i, t] + n]
                    v = values[i, t]
                    for j in range(n):
                        sums[j] += v * src[j]
                for p in range(x1 - x0):
                    wp = w[x0 + p]
                    for c in range(channels):
                        row[first + p * channels + c] += wp * sums[p * channels + c]


@njit(**_JIT)
def _blur_product_bands(image, offsets, values, counts, boxes, weights, zero, out):
    height, width, channels = image.shape
    count = weights.shape[0]
    out_rows, span = out.shape
    kh = height - out_rows + 1
    in_stride = width * channels
    bands = (out_rows + BAND_ROWS - 1) // BAND_ROWS
    for band in prange(bands):
        r0 = band * BAND_ROWS
        r1 = min(out_rows, r0 + BAND_ROWS)
        rows_in = r1 - r0 + kh - 1
        block = np.empty(rows_in * in_stride, out.dtype)
        active = np.zeros(rows_in, np.bool_)
        before = np.zeros(rows_in + 1, np.int64)
        out[r0:r1] = 0
        for i in range(count):
            taps = counts[i]
            if taps == 0:
                continue
            any_active = False
            for r in range(rows_in):
                active[r] = False
                wr = weights[i, r0 + r]
                for x in range(width):
                    if abs(wr[x]) > zero:
                        active[r] = True
                        any_active = True
                        break
            if not any_active:
                continue
            for r in range(rows_in):
                before[r + 1] = before[r] + (1 if active[r] else 0)
                row = block[r * in_stride : (r + 1) * in_stride]
                if not active[r]:
                    row[:] = 0
                    continue
                wr = weights[i, r0 + r]
                src = image[r0 + r]
                for x in range(width):
                    for c in range(channels):
                        row[x * channels + c] = wr[x] * src[x, c]
            for y in range(r0, r1):
                ry = y - r0
                if before[ry + boxes[i, 1] + 1] == before[ry + boxes[i, 0]]:
                    continue
                row = out[y]
                base = ry * in_stride
                for t in range(taps):
                    src = block[base + offsets[i, t] : base + offsets[i, t] + span]
                    v = values[i, t]
                    for j in range(span):
                        row[j] += v * src[j]


@njit(**_JIT)
def _convolve_masks_bands(masks, offsets, values, counts, boxes, out):
    count, height, width = masks.shape
    _, out_rows, out_width = out.shape
    kh = height - out_rows + 1
    bands = (out_rows + BAND_ROWS - 1) // BAND_ROWS
    for item in prange(count * bands):
        i = item // bands
        r0 = (item % bands) * BAND_ROWS
        r1 = min(out_rows, r0 + BAND_ROWS)
        taps = counts[i]
        if taps == 0:
            out[i, r0:r1] = 0
            continue
        dy0, dy1, dx0, dx1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        box_w = dx1 - dx0 + 1
        area = (dy1 - dy0 + 1) * box_w
        cols = out_width + box_w - 1
        total = 0
        for r in range(r0 + dy0, r1 + dy1):
            for c in range(dx0, dx0 + cols):
                total += masks[i, r, c]
        full_value = values[i, 0] - values[i, 0]  # zero of the kernels' dtype
        for t in range(taps):
            full_value += values[i, t]
        if total == 0 or total == (r1 + dy1 - r0 - dy0) * cols:
            out[i, r0:r1] = 0 if total == 0 else full_value
            continue
        # Edge runs are evaluated on a float copy of the band's input rows.
        rows_in = r1 - r0 + kh - 1
        block = np.empty(rows_in * width, out.dtype)
        for r in range(rows_in):
            for c in range(width):
                block[r * width + c] = masks[i, r0 + r, c]
        column_count = np.zeros(cols, np.int64)
        prefix = np.zeros(cols + 1, np.int64)
        for r in range(r0 + dy0, r0 + dy1 + 1):
            for c in range(cols):
                column_count[c] += masks[i, r, dx0 + c]
        for y in range(r0, r1):
            if y > r0:
                for c in range(cols):
                    column_count[c] += np.int64(masks[i, y + dy1, dx0 + c]) - np.int64(
                        masks[i, y - 1 + dy0, dx0 + c]
                    )
            for c in range(cols):
                prefix[c + 1] = prefix[c] + column_count[c]
            row = out[i, y]
            x = 0
            while x < out_width:
                covered = prefix[x + box_w] - prefix[x]
                if covered == 0 or covered == area:
                    row[x] = 0 if covered == 0 else full_value
                    x += 1
                    continue
                begin = x
                while x < out_width:
                    covered = prefix[x + box_w] - prefix[x]
                    if covered == 0 or covered == area:
                        break
                    x += 1
                dst = row[begin:x]
                dst[:] = 0
                base = (y - r0) * width + begin
                for t in range(taps):
                    src = block[base + offsets[i, t] : base + offsets[i, t] + x - begin]
                    v = values[i, t]
                    for j in range(x - begin):
                        dst[j] += v * src[j]


_workqueue_lock = threading.Lock()
# Numba's OpenMP (and TBB) thread pools do not survive fork(): a child of a process
# that has run a parallel kernel aborts when it runs one. Such a child runs serial
# compilations of the same kernels instead (compiled on first use, not cached).
_parallel_used = False
_forked_after_parallel = False
_serial_kernels = {}


def _after_fork_in_child():
    global _forked_after_parallel
    _forked_after_parallel = _forked_after_parallel or _parallel_used


os.register_at_fork(after_in_child=_after_fork_in_child)


def _kernel(dispatcher):
    """``dispatcher``, or its serial compilation in a process forked after a parallel run."""
    if not _forked_after_parallel:
        return dispatcher
    serial = _serial_kernels.get(dispatcher)
    if serial is None:
        options = {k: v for k, v in _JIT.items() if k not in ("parallel", "cache")}
        serial = _serial_kernels[dispatcher] = njit(**options)(dispatcher.py_func)
    return serial


class _NumbaThreads:
    """Numba's thread count for one call, and exclusive use of the ``workqueue`` layer.

    The OpenMP and TBB layers may be entered from several threads at once; the
    ``workqueue`` fallback may not (it aborts the process), so calls then take turns.
    """

    def __init__(self, threads):
        self._threads = threads

    def __enter__(self):
        global _parallel_used
        self._lock = None
        if _forked_after_parallel:
            return self
        try:
            layer = numba.threading_layer()
        except ValueError:  # nothing has run in parallel yet
            layer = None
        self._lock = None if layer in ("omp", "tbb") else _workqueue_lock
        if self._lock is not None:
            self._lock.acquire()
        numba.set_num_threads(max(1, min(self._threads(), numba.config.NUMBA_NUM_THREADS)))
        _parallel_used = True
        return self

    def __exit__(self, *exc):
        if self._lock is not None:
            self._lock.release()
        return False


class NumbaBackend(Backend):
    """Direct sparse-tap convolution compiled by Numba (parallel, cached, GIL released).

    Parameters
    ----------
    threads : callable, optional
        Returns the number of threads a call may use (default: ``FASTBLUR_NUM_THREADS``,
        else all cores; never more than ``NUMBA_NUM_THREADS``).
    """

    name = "numba"

    def __init__(self, threads=num_threads):
        self.threads = threads

    def convolve_valid(self, image, kernel):
        height, width, channels = image.shape
        kh, kw = kernel.shape
        offsets, values, counts, _ = stack_taps(kernel[None], width * channels, channels)
        out = np.empty((height - kh + 1, width - kw + 1, channels), image.dtype)
        with _NumbaThreads(self.threads):
            _kernel(_convolve_rows)(
                image.reshape(-1), width * channels, offsets[0], values[0], counts[0],
                out.reshape(out.shape[0], -1),
            )
        return out

    def blur_masked_valid(self, image, kernels, weights):
        height, width, channels = image.shape
        offsets, values, counts, _ = stack_taps(kernels, width * channels, channels)
        out = np.empty(weights.shape[1:] + (channels,), image.dtype)
        with _NumbaThreads(self.threads):
            _kernel(_blur_masked_rows)(
                image.reshape(-1), width * channels, channels, offsets, values, counts,
                weights, image.dtype.type(ZERO_WEIGHT), out.reshape(out.shape[0], -1),
            )
        return out

    def blur_product_valid(self, image, kernels, weights):
        height, width, channels = image.shape
        _, kh, kw = kernels.shape
        offsets, values, counts, boxes = stack_taps(kernels, width * channels, channels)
        out = np.empty((height - kh + 1, width - kw + 1, channels), image.dtype)
        with _NumbaThreads(self.threads):
            _kernel(_blur_product_bands)(
                image, offsets, values, counts, boxes, weights,
                image.dtype.type(ZERO_WEIGHT), out.reshape(out.shape[0], -1),
            )
        return out

    def convolve_masks_valid(self, masks, kernels):
        count, height, width = masks.shape
        _, kh, kw = kernels.shape
        masks = binary_bytes(masks)
        offsets, values, counts, boxes = stack_taps(kernels, width, 1)
        out = np.empty((count, height - kh + 1, width - kw + 1), kernels.dtype)
        with _NumbaThreads(self.threads):
            _kernel(_convolve_masks_bands)(masks, offsets, values, counts, boxes, out)
        return out


BACKEND = NumbaBackend()
