"""The ``native`` backend: sparse-tap direct convolution in C++ (``fastblur._native``).

Every operation visits only the non-zero kernel taps, vectorised along the contiguous
values of each output row and threaded with OpenMP over output tiles
(``FASTBLUR_NUM_THREADS`` caps the threads). ``blur_masked`` and ``blur_product``
evaluate a kernel only where its weight exceeds :data:`~fastblur.backends.ZERO_WEIGHT`
and accumulate into the output directly; ``convolve_masks_valid`` computes taps only
near mask edges. The GIL is released during every call.
"""
from .. import _native
from .._threads import num_threads
from .base import ZERO_WEIGHT, Backend, binary_bytes


class NativeBackend(Backend):
    """Direct sparse-tap convolution in C++ with mask-restricted evaluation.

    Parameters
    ----------
    threads : callable, optional
        Returns the number of threads a call may use (default: ``FASTBLUR_NUM_THREADS``,
        else all cores).

    Attributes
    ----------
    simd_bytes : int
        Vector width the extension was compiled for (64: AVX-512, 32: AVX2, 16: SSE/NEON).
    has_openmp : bool
        Whether the extension runs threads; without OpenMP every call uses one core.
    """

    name = "native"
    simd_bytes = _native.simd_bytes
    has_openmp = _native.has_openmp

    def __init__(self, threads=num_threads):
        self.threads = threads

    def convolve_valid(self, image, kernel):
        return _native.convolve_valid(image, kernel, self.threads())

    def blur_masked_valid(self, image, kernels, weights):
        return _native.blur_masked_valid(image, kernels, weights, ZERO_WEIGHT, self.threads())

    def blur_product_valid(self, image, kernels, weights):
        return _native.blur_product_valid(image, kernels, weights, ZERO_WEIGHT, self.threads())

    def convolve_masks_valid(self, masks, kernels):
        return _native.convolve_masks_valid(binary_bytes(masks), kernels, self.threads())


BACKEND = NativeBackend()
