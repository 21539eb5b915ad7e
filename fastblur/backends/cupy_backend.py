"""The ``cupy`` backend: batched cuFFT over whole images, fused weighted accumulation.

On a GPU the transforms are cheap enough that tiling buys little: each image is
transformed once (batched over images and channels), multiplied by every kernel's
spectrum (batched over kernels), inverted, and a RawKernel sums ``w_i * (k_i * x)``
straight into the output, reading each filtered plane once. Kernels are processed in
chunks so that a chunk's temporaries (spectrum products, the copy irfft2 takes of them,
filtered planes) stay under ``FASTBLUR_GPU_CHUNK_BYTES`` (default 1 GiB). cuFFT plans
are cached by CuPy's plan cache.

Importing this module raises ImportError when CuPy or a CUDA device is missing; the
registry reports the message as the reason the backend is unavailable.
"""
import os

import numpy as np

try:
    import cupy
    import cupyx.scipy.fft as cufft
except ImportError as error:  # pragma: no cover - depends on the machine
    raise ImportError(f"CuPy is not installed (pip install 'fastblur[gpu]', or 'fastblur[gpu-cuda13]' for CUDA 13): {error}") from None

from .base import ZERO_WEIGHT, Backend, zero_fft_roundoff


def _require_device():
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError and driver errors
        raise ImportError(f"no usable CUDA device: {error}") from None
    if count < 1:
        raise ImportError("no CUDA device found")


_require_device()

_ACCUMULATE_SOURCE = r"""
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
"""
_MODULE = cupy.RawModule(
    code=_ACCUMULATE_SOURCE,
    options=("-std=c++14",),
    name_expressions=["accumulate_weighted<float>", "accumulate_weighted<double>"],
)
_THREADS_PER_BLOCK = 256


def _accumulate_kernel(dtype):
    name = "accumulate_weighted<float>" if dtype == np.float32 else "accumulate_weighted<double>"
    return _MODULE.get_function(name)


def _chunk_bytes():
    return int(os.environ.get("FASTBLUR_GPU_CHUNK_BYTES", str(1 << 30)))


def _fft_shape(height, width):
    # Circular convolution at any size >= the image is wrap-free on the valid grid.
    return (cufft.next_fast_len(height, real=True), cufft.next_fast_len(width, real=True))


def _planes(images):
    """(B, H, W, C) -> contiguous (B, C, H, W)."""
    return cupy.ascontiguousarray(images.transpose(0, 3, 1, 2))


class CupyBackend(Backend):
    """CUDA backend over CuPy; arrays passed in are CuPy arrays on the current device."""

    name = "cupy"
    device = "cuda"

    def _chunk(self, planes_per_kernel, shape, itemsize):
        # Live per kernel and plane, in real planes: the products (complex: 2), the copy
        # irfft2 takes of them (a C2R transform overwrites its input unless overwrite_x: 2)
        # and the filtered planes (1).
        per_kernel = 5 * planes_per_kernel * shape[0] * shape[1] * itemsize
        return max(1, _chunk_bytes() // max(1, per_kernel))

    def convolve_valid(self, image, kernel):
        height, width, _ = image.shape
        kh, kw = kernel.shape
        shape = _fft_shape(height, width)
        spectrum = cufft.rfft2(_planes(image[None])[0], s=shape) * cufft.rfft2(kernel, s=shape)
        filtered = cufft.irfft2(spectrum, s=shape)
        return cupy.ascontiguousarray(filtered[:, kh - 1 : height, kw - 1 : width].transpose(1, 2, 0))

    def blur_masked_valid(self, image, kernels, weights):
        return self.blur_masked_batch_valid(image[None], kernels[None], weights[None])[0]

    def blur_masked_batch_valid(self, images, kernels, weights):
        # The RawKernel reads raw pointers: a dtype or layout mismatch would be garbage, not an error.
        if images.dtype not in (np.float32, np.float64) or not images.dtype == kernels.dtype == weights.dtype:
            raise TypeError(f"images, kernels and weights must share float32 or float64, got "
                            f"{images.dtype}, {kernels.dtype}, {weights.dtype}")
        weights = cupy.ascontiguousarray(weights)
        batch, height, width, channels = images.shape
        _, count, kh, kw = kernels.shape
        out_h, out_w = weights.shape[2:]
        shape = _fft_shape(height, width)
        spectra = cufft.rfft2(_planes(images), s=shape)  # (B, C, fh, fw // 2 + 1)
        kernel_spectra = cufft.rfft2(kernels, s=shape)  # (B, N, fh, fw // 2 + 1)
        out = cupy.empty((batch, out_h, out_w, channels), images.dtype)
        accumulate = _accumulate_kernel(images.dtype)
        pixels = batch * out_h * out_w
        grid = ((pixels + _THREADS_PER_BLOCK - 1) // _THREADS_PER_BLOCK,)
        step = self._chunk(batch * channels, shape, images.dtype.itemsize)
        for first in range(0, count, step):
            last = min(count, first + step)
            products = spectra[:, None] * kernel_spectra[:, first:last, None]  # (B, n, C, ...)
            filtered = cupy.ascontiguousarray(cufft.irfft2(products, s=shape))
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
        kernel_spectra = cufft.rfft2(kernels, s=shape)
        total = None
        step = self._chunk(channels, shape, image.dtype.itemsize)
        for first in range(0, count, step):
            last = min(count, first + step)
            weighted = weights[first:last, None] * planes[None]  # (n, C, H, W)
            spectrum = (cufft.rfft2(weighted, s=shape) * kernel_spectra[first:last, None]).sum(axis=0)
            total = spectrum if total is None else total + spectrum
        filtered = cufft.irfft2(total, s=shape)
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
            spectra *= cufft.rfft2(kernels[first:last], s=shape)
            out[first:last] = cufft.irfft2(spectra, s=shape)[:, kh - 1 : height, kw - 1 : width]
        return zero_fft_roundoff(out, kernels)


BACKEND = CupyBackend()
