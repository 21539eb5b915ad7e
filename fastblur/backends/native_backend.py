"""The ``native`` backend: sparse-tap direct convolution in C++ (``fastblur._native``).

Every operation visits only the non-zero kernel taps, vectorised along the contiguous
values of each output row and threaded with OpenMP over output tiles
(``FASTBLUR_NUM_THREADS`` caps the threads). ``blur_masked`` and ``blur_product``
evaluate a kernel only where its weight exceeds :data:`~fastblur.backends.ZERO_WEIGHT`
and accumulate into the output directly; ``convolve_masks_valid`` computes taps only
near mask edges. ``blur_grid_valid`` (projective_blur's product-convolution) blends a grid
of kernels with bilinear weights computed on the fly, at two sparse convolutions a pixel.
The GIL is released during every call.

The kernels are compiled for several instruction-set levels (``sse4``, ``avx2``,
``avx512`` on x86-64; ``baseline`` elsewhere; one ``native`` level when built with
``-DFASTBLUR_NATIVE_ARCH=ON``) and the best level this CPU runs is chosen when the
extension loads. ``FASTBLUR_SIMD=sse4|avx2|avx512|baseline`` forces a level: one the CPU
or the build lacks falls back to the best available with a ``RuntimeWarning``, and any
other value makes the backend unavailable (``backend_info()`` says why).
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
    variant : str
        The instruction-set level the calls run: ``"avx512"``, ``"avx2"``, ``"sse4"``,
        ``"baseline"`` (processors other than x86-64) or ``"native"`` (a
        ``-march=native`` build).
    simd_bytes : int
        Vector width of that level's inner loops (64: AVX-512, 32: AVX2, 16: SSE/NEON).
    has_openmp : bool
        Whether the extension runs threads; without OpenMP every call uses one core.
    """

    name = "native"
    variant = _native.variant
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

    def smooth_masks_valid(self, masks, kernels, group, eps):
        """:meth:`~fastblur.backends.base.Backend.smooth_masks_valid`, each tile normalised
        while its maps are in cache (the same bits as the separate division)."""
        return _native.smooth_masks_valid(binary_bytes(masks), kernels, group, eps, self.threads())

    def blur_grid_valid(self, image, kernels, node_rows, node_cols):
        """Kernels on a regular grid blended by bilinear (hat) weights, ``valid`` mode.

        ``out[y, x] = sum_{j,i} hat_y[j](y) hat_x[i](x) (kernels[j, i] * image)[y, x]``
        with ``hat[k](v) = max(0, 1 - |v - node[k]| / step)`` over the two nodes of the
        cell holding ``v`` (weight 1 for a single node): :meth:`blur_masked_valid` with
        hat-weight maps, without the maps, at two sparse convolutions a pixel.

        Parameters
        ----------
        image : ndarray, shape (H, W, C)
            float32 or float64, C-contiguous (else copied).
        kernels : ndarray, shape (ny, nx, kh, kw)
            The kernel of each node, ``image``'s dtype.
        node_rows, node_cols : ndarray, shape (ny,) and (nx,), float64
            Output row / column of each node row / column: evenly spaced, increasing.

        Returns
        -------
        ndarray, shape (H - kh + 1, W - kw + 1, C)
        """
        return _native.blur_grid_valid(image, kernels, node_rows, node_cols, self.threads())


BACKEND = NativeBackend()
