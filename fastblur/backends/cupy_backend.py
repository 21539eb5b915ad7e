"""The ``cupy`` backend: sparse taps or batched cuFFT, fused weighted accumulation.

``blur_masked`` (and its batch) runs one of two methods, chosen per call by a cost
estimate (:func:`decide_method`, a :class:`~.cost_model.Decision` as the CPU's ``auto``
makes; ``FASTBLUR_GPU_METHOD=fft|direct`` forces one):

``direct``
    A RawKernel visits, for every output pixel, only the kernels whose weight is
    non-zero there and only their non-zero taps (motion PSFs are thin curves: about
    100 of a 65x65 kernel's 4225 taps), summing ``w_i * sum_t k_t x[p + t]`` in
    registers. No transforms and no temporaries.
``fft``
    Each image is transformed once (batched over images and channels), multiplied by
    every kernel's spectrum (batched over kernels), inverted, and a RawKernel sums
    ``w_i * (k_i * x)`` straight into the output, reading each filtered plane once.
    Kernels go in chunks whose temporaries (spectrum products, filtered planes) stay
    under ``FASTBLUR_GPU_CHUNK_BYTES`` (default 1 GiB). Kernel spectra carry the
    ``1 / F`` of the inverse transform (``norm="forward"``), and inverses overwrite
    their input: no normalisation pass over the filtered planes, no copy of the products.
    cuFFT plans are cached by CuPy's plan cache. On a GPU the transforms are cheap
    enough that tiling buys little.

Importing this module raises ImportError when CuPy or a CUDA device is missing; the
registry reports the message as the reason the backend is unavailable.
"""
import logging
import math
import os

import numpy as np

try:
    import cupy
    import cupyx.scipy.fft as cufft
except ImportError as error:  # pragma: no cover - depends on the machine
    raise ImportError(f"CuPy is not installed (pip install 'fastblur[gpu]', or 'fastblur[gpu-cuda13]' for CUDA 13): {error}") from None

from .._validation import check_choice, check_count_text
from .base import ZERO_WEIGHT, Backend, zero_fft_roundoff
from .cost_model import Decision, Estimate, activity_stride, scale_constants

logger = logging.getLogger("fastblur")


def _require_device():
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError and driver errors
        raise ImportError(f"no usable CUDA device: {error}") from None
    if count < 1:
        raise ImportError("no CUDA device found")


_require_device()

_CUDA_SOURCE = r"""
template <typename T>
__global__ void accumulate_weighted(
    const T* __restrict__ filtered,   // (B, n, C, fh, fw): this chunk's filtered planes
    const T* __restrict__ weights,    // (B, N, Ho, Wo)
    T* __restrict__ out,              // (B, Ho, Wo, C)
    int batch, int chunk, int first, int count, int channels,
    int fh, int fw, int out_h, int out_w, int offset_y, int offset_x,
    T zero_weight, int overwrite)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long pixels = (long long)batch * out_h * out_w;
    if (index >= pixels) return;
    int x = (int)(index % out_w);
    long long rest = index / out_w;
    int y = (int)(rest % out_h);
    int b = (int)(rest / out_h);
    for (int c = 0; c < channels; ++c) {
        T acc = overwrite ? T(0) : out[index * channels + c];
        for (int i = 0; i < chunk; ++i) {
            T w = weights[(((long long)b * count + first + i) * out_h + y) * out_w + x];
            if (w > zero_weight || w < -zero_weight) {  // |w| > zero_weight in T, no math header
                long long plane = ((long long)b * chunk + i) * channels + c;
                acc += w * filtered[(plane * fh + y + offset_y) * fw + x + offset_x];
            }
        }
        out[index * channels + c] = acc;
    }
}

// Direct sparse-tap blur_masked: out[b, y, x, c] = sum over kernels i with |w_i| > zero of
// w_i(y, x) * sum over the non-zero taps t of k_i: value_t * image[b, y, x, c + offset_t],
// offset_t being the tap's flat offset from the pixel's window corner. Channels go four
// at a time so that a tap's value and offset are read once for them.
template <typename T>
__global__ void blur_masked_taps(
    const T* __restrict__ images,          // (B, H, W, C)
    const T* __restrict__ weights,         // (B, N, Ho, Wo)
    const int* __restrict__ tap_counts,    // (B * N,): kernel (b, i) has tap_counts[bN + i] taps,
    const int* __restrict__ tap_offsets,   // (B * N, tap_stride): the first ones of its row here
    const T* __restrict__ tap_values,      // (B * N, tap_stride)
    T* __restrict__ out,                   // (B, Ho, Wo, C)
    int batch, int count, int height, int width, int channels, int out_h, int out_w, int tap_stride,
    T zero_weight)
{
    long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long plane = (long long)out_h * out_w;
    if (index >= batch * plane) return;
    int x = (int)(index % out_w);
    long long rest = index / out_w;
    int y = (int)(rest % out_h);
    int b = (int)(rest / out_h);
    const T* corner = images + (((long long)b * height + y) * width + x) * channels;
    const T* pixel_weights = weights + (long long)b * count * plane + (long long)y * out_w + x;
    long long first_kernel = (long long)b * count;
    for (int first = 0; first < channels; first += 4) {
        int block = channels - first < 4 ? channels - first : 4;
        T acc[4] = {T(0), T(0), T(0), T(0)};
        for (int i = 0; i < count; ++i) {
            T w = pixel_weights[i * plane];
            if (w > zero_weight || w < -zero_weight) {
                T sum[4] = {T(0), T(0), T(0), T(0)};
                long long row = (first_kernel + i) * tap_stride, end = row + tap_counts[first_kernel + i];
                for (long long t = row; t < end; ++t) {
                    const T* values = corner + tap_offsets[t] + first;
                    T k = tap_values[t];
#pragma unroll
                    for (int c = 0; c < 4; ++c)
                        if (c < block) sum[c] += k * values[c];
                }
#pragma unroll
                for (int c = 0; c < 4; ++c) acc[c] += w * sum[c];
            }
        }
        for (int c = 0; c < block; ++c) out[index * channels + first + c] = acc[c];
    }
}
"""
_MODULE = cupy.RawModule(
    code=_CUDA_SOURCE,
    options=("-std=c++14",),
    name_expressions=["accumulate_weighted<float>", "accumulate_weighted<double>",
                      "blur_masked_taps<float>", "blur_masked_taps<double>"],
)
_THREADS_PER_BLOCK = 256
#: Environment variable forcing the method of blur_masked: ``fft`` or ``direct``.
METHOD_ENV_VAR = "FASTBLUR_GPU_METHOD"
#: Seconds per unit on one H100, float32 (estimates, to be measured: bench/gpu_check.sh
#: times both methods): a tap-value of the direct method (~2.5e12 a second: a gather and
#: a fused multiply-add), a weight test, ``F log2 F`` of a real transform of F samples
#: (memory-bound), a complex sample of a spectral product or a filtered plane's pass.
GPU_COSTS = {"tap": 4e-13, "scan": 2e-12, "transform": 4e-13, "multiply": 1e-11}


def _kernel(name, dtype):
    return _MODULE.get_function(f"{name}<{'float' if dtype == np.float32 else 'double'}>")


def _grid(items):
    return ((items + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK,)


def _chunk_bytes():
    return check_count_text(os.environ.get("FASTBLUR_GPU_CHUNK_BYTES", str(1 << 30)), "FASTBLUR_GPU_CHUNK_BYTES", low=1)


def _fft_shape(height, width):
    # Circular convolution at any size >= the image is wrap-free on the valid grid.
    return (cufft.next_fast_len(height, real=True), cufft.next_fast_len(width, real=True))


def decide_method(images, kernels, weights):
    """The cheaper method for :meth:`CupyBackend.blur_masked_batch_valid`, and why.

    Direct costs ``tap`` per non-zero tap, channel and output pixel where the kernel's
    weight is non-zero, plus ``scan`` per weight tested; FFT costs ``transform`` x
    ``F log2 F`` per real transform (``C`` per image, ``N`` kernels, ``N C``
    inverses) and ``multiply`` per complex sample of its ``N C`` products and passes.
    Where weights are non-zero is estimated from a subsample of about 4 000 per map;
    the counts come back to the host in one transfer. ``"fft"``, whatever is forced,
    where the direct kernel's int32 tap offsets cannot address the image. A forced
    method reads nothing back and estimates nothing.

    Parameters
    ----------
    images : cupy.ndarray, shape (B, H, W, C)
    kernels : cupy.ndarray, shape (B, N, kh, kw)
    weights : cupy.ndarray, shape (B, N, Ho, Wo)

    Returns
    -------
    fastblur.backends.cost_model.Decision
        ``backend`` is ``"cupy"``, ``method`` ``"direct"`` or ``"fft"``; ``estimates``
        holds both methods' (cheapest first) when the choice was estimated.
    """
    forced = check_choice(os.environ.get(METHOD_ENV_VAR, "auto"), ("auto", "direct", "fft"), METHOD_ENV_VAR)
    batch, height, width, channels = images.shape
    count = kernels.shape[1]
    out_h, out_w = weights.shape[2:]
    problem = (f"{batch} x ({height}, {width})x{channels} {np.dtype(images.dtype).name} input, "
               f"{count} kernel(s) {kernels.shape[2]}x{kernels.shape[3]}")
    if not _taps_fit(kernels.shape[2:], width, channels):
        # forced or not: the direct kernel's int32 tap offsets would wrap
        return Decision("blur_masked", "cupy", "fft", [], problem + "; int32 tap offsets would wrap")
    if forced != "auto":
        return Decision("blur_masked", "cupy", forced, [], problem + f"; forced by {METHOD_ENV_VAR}")
    stride = activity_stride(out_h, out_w)
    sampled = weights[:, :, ::stride, ::stride]
    taps = cupy.count_nonzero(kernels.reshape(batch, count, -1), axis=2)
    active = cupy.count_nonzero(cupy.abs(sampled) > ZERO_WEIGHT, axis=(2, 3))
    taps, active = cupy.stack([taps, active]).get()
    fraction = active / float(sampled.shape[2] * sampled.shape[3])
    costs = scale_constants(GPU_COSTS, images.dtype)
    direct = (costs["tap"] * channels * out_h * out_w * float(np.sum(taps * fraction))
              + costs["scan"] * batch * count * out_h * out_w)
    evaluated = channels * out_h * out_w * float(np.sum(taps * fraction))
    fh, fw = _fft_shape(height, width)
    samples = fh * fw
    fft = batch * (costs["transform"] * samples * math.log2(samples) * (channels + count + count * channels)
                   + costs["multiply"] * samples * count * channels)
    transforms = batch * (channels + count + count * channels)
    estimates = [
        Estimate("direct", "cupy", direct, f"{evaluated:.3g} tap-values", "estimated"),
        Estimate("fft", "cupy", fft, f"{transforms} transforms of {fh}x{fw}", "estimated"),
    ]
    estimates.sort(key=lambda e: e.seconds)  # stable: a tie goes to direct
    problem += f", weights active on {np.sum(fraction) / batch:.2f} kernels per pixel"
    return Decision("blur_masked", "cupy", estimates[0].method, estimates, problem)


def choose_method(images, kernels, weights):
    """``"direct"`` or ``"fft"``: :func:`decide_method`'s choice (logged at DEBUG level on
    the ``fastblur`` logger, as the CPU's ``auto`` decisions are)."""
    decision = decide_method(images, kernels, weights)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", decision.summary())
    return decision.method


def _taps_fit(kernel_hw, width, channels):
    """Whether ``blur_masked_taps``'s int32 reads from a pixel's window corner reach every
    tap and channel: ``((kh - 1) W + kw - 1) C + C - 1 < 2**31`` (a 2**29-wide RGBA
    image with a 2-row kernel does not)."""
    kh, kw = kernel_hw
    return ((kh - 1) * width + kw) * channels <= 2**31


def _nonzero_taps(kernels, width, channels):
    """The non-zero taps of ``(B, N, kh, kw)`` kernels for ``blur_masked_taps``, without
    reading anything back to the host (no sync).

    Returns ``counts`` (int32, ``(B N,)``), and ``offsets`` (int32: where each tap reads,
    from the output pixel's window corner in a ``(H, W, C)`` image ``width`` wide; valid
    convolution flips the kernel) and ``values``, both ``(B N, kh kw + 1)``: row ``k``
    holds kernel ``k``'s ``counts[k]`` taps first, in row-major order (the last column
    takes the zeros' writes).
    """
    batch, count, kh, kw = kernels.shape
    size = kh * kw
    flat = kernels.reshape(batch * count, size)
    nonzero = flat != 0
    ranks = cupy.cumsum(nonzero, axis=1, dtype=np.int32)
    counts = cupy.ascontiguousarray(ranks[:, -1])
    slots = cupy.where(nonzero, ranks - 1, size)  # zeros all go to the spare last column
    rows = cupy.arange(batch * count)[:, None]
    position = cupy.arange(size)
    tap_rows, tap_cols = position // kw, position % kw
    offsets = cupy.zeros((batch * count, size + 1), np.int32)
    offsets[rows, slots] = (((kh - 1 - tap_rows) * width + (kw - 1 - tap_cols)) * channels).astype(np.int32)
    values = cupy.zeros((batch * count, size + 1), kernels.dtype)
    values[rows, slots] = flat
    return counts, offsets, values


def _kernel_spectra(kernels, shape):
    """Spectra of kernels zero-padded to ``shape``, scaled by ``1 / F`` (``norm="forward"``):
    with :func:`_inverse` a product with an unscaled image spectrum inverts to the
    convolution."""
    return cufft.rfft2(kernels, s=shape, norm="forward")


def _inverse(products, shape):
    """The real inverse transform of ``products`` without the ``1 / F`` pass (the kernel
    spectra carry it), overwriting ``products`` rather than copying them."""
    return cufft.irfft2(products, s=shape, norm="forward", overwrite_x=True)


def _planes(images):
    """(B, H, W, C) -> contiguous (B, C, H, W)."""
    return cupy.ascontiguousarray(images.transpose(0, 3, 1, 2))


class CupyBackend(Backend):
    """CUDA backend over CuPy; arrays passed in are CuPy arrays on the current device."""

    name = "cupy"
    device = "cuda"

    def estimate(self, problem):
        """The method :meth:`blur_masked_batch_valid` would take for ``problem`` (a
        :class:`fastblur._problem.Problem` on this device), as a
        :class:`~.cost_model.Decision`; None for the other operations (FFT only)."""
        if problem.operation != "blur_masked":
            return None
        images, kernels, weights = (cupy.ascontiguousarray(a) for a in problem.arrays)
        if problem.batch is None:
            images, kernels, weights = images[None], kernels[None], weights[None]
        return decide_method(images, kernels, weights)

    def _chunk(self, planes_per_kernel, shape, itemsize):
        # Live per kernel and plane, in real planes: the products (complex: 2) and the
        # filtered planes (1); the inverse transform works in place of the products.
        per_kernel = 3 * planes_per_kernel * shape[0] * shape[1] * itemsize
        return max(1, _chunk_bytes() // max(1, per_kernel))

    def convolve_valid(self, image, kernel):
        height, width, _ = image.shape
        kh, kw = kernel.shape
        shape = _fft_shape(height, width)
        spectrum = cufft.rfft2(_planes(image[None])[0], s=shape) * _kernel_spectra(kernel, shape)
        filtered = _inverse(spectrum, shape)
        return cupy.ascontiguousarray(filtered[:, kh - 1 : height, kw - 1 : width].transpose(1, 2, 0))

    def blur_masked_valid(self, image, kernels, weights):
        return self.blur_masked_batch_valid(image[None], kernels[None], weights[None])[0]

    def blur_masked_batch_valid(self, images, kernels, weights):
        # The RawKernel reads raw pointers: a dtype or layout mismatch would be garbage, not an error.
        if images.dtype not in (np.float32, np.float64) or not images.dtype == kernels.dtype == weights.dtype:
            raise TypeError(f"images, kernels and weights must share float32 or float64, got "
                            f"{images.dtype}, {kernels.dtype}, {weights.dtype}")
        images, kernels, weights = (cupy.ascontiguousarray(a) for a in (images, kernels, weights))
        if choose_method(images, kernels, weights) == "direct":
            return self._blur_masked_taps(images, kernels, weights)
        return self._blur_masked_fft(images, kernels, weights)

    def _blur_masked_taps(self, images, kernels, weights):
        batch, height, width, channels = images.shape
        count = kernels.shape[1]
        out_h, out_w = weights.shape[2:]
        counts, offsets, values = _nonzero_taps(kernels, width, channels)
        out = cupy.empty((batch, out_h, out_w, channels), images.dtype)
        _kernel("blur_masked_taps", images.dtype)(
            _grid(batch * out_h * out_w), (_THREADS_PER_BLOCK,),
            (images, weights, counts, offsets, values, out, np.int32(batch), np.int32(count),
             np.int32(height), np.int32(width), np.int32(channels), np.int32(out_h), np.int32(out_w),
             np.int32(offsets.shape[1]), images.dtype.type(ZERO_WEIGHT)),
        )
        return out

    def _blur_masked_fft(self, images, kernels, weights):
        batch, height, width, channels = images.shape
        _, count, kh, kw = kernels.shape
        out_h, out_w = weights.shape[2:]
        shape = _fft_shape(height, width)
        spectra = cufft.rfft2(_planes(images), s=shape)  # (B, C, fh, fw // 2 + 1)
        kernel_spectra = _kernel_spectra(kernels, shape)  # (B, N, fh, fw // 2 + 1)
        out = cupy.empty((batch, out_h, out_w, channels), images.dtype)
        accumulate = _kernel("accumulate_weighted", images.dtype)
        grid = _grid(batch * out_h * out_w)
        step = self._chunk(batch * channels, shape, images.dtype.itemsize)
        for first in range(0, count, step):
            last = min(count, first + step)
            products = spectra[:, None] * kernel_spectra[:, first:last, None]  # (B, n, C, ...)
            filtered = cupy.ascontiguousarray(_inverse(products, shape))
            del products
            accumulate(
                grid, (_THREADS_PER_BLOCK,),
                (filtered, weights, out, np.int32(batch), np.int32(last - first), np.int32(first),
                 np.int32(count), np.int32(channels), np.int32(shape[0]), np.int32(shape[1]),
                 np.int32(out_h), np.int32(out_w), np.int32(kh - 1), np.int32(kw - 1),
                 images.dtype.type(ZERO_WEIGHT), np.int32(first == 0)),
            )
        return out

    def blur_product_valid(self, image, kernels, weights):
        height, width, channels = image.shape
        count, kh, kw = kernels.shape
        shape = _fft_shape(height, width)
        planes = _planes(image[None])[0]  # (C, H, W)
        kernel_spectra = _kernel_spectra(kernels, shape)
        total = None
        step = self._chunk(channels, shape, image.dtype.itemsize)
        for first in range(0, count, step):
            last = min(count, first + step)
            weighted = weights[first:last, None] * planes[None]  # (n, C, H, W)
            spectrum = (cufft.rfft2(weighted, s=shape) * kernel_spectra[first:last, None]).sum(axis=0)
            total = spectrum if total is None else total + spectrum
        filtered = _inverse(total, shape)
        return cupy.ascontiguousarray(filtered[:, kh - 1 : height, kw - 1 : width].transpose(1, 2, 0))

    def convolve_masks_valid(self, masks, kernels):
        count, height, width = masks.shape
        _, kh, kw = kernels.shape
        shape = _fft_shape(height, width)
        out = cupy.empty((count, height - kh + 1, width - kw + 1), kernels.dtype)
        step = self._chunk(1, shape, kernels.dtype.itemsize)
        for first in range(0, count, step):
            last = min(count, first + step)
            spectra = cufft.rfft2(masks[first:last].astype(kernels.dtype), s=shape)
            spectra *= _kernel_spectra(kernels[first:last], shape)
            out[first:last] = _inverse(spectra, shape)[:, kh - 1 : height, kw - 1 : width]
        return zero_fft_roundoff(out, kernels)


BACKEND = CupyBackend()
