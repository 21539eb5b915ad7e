"""Overlap-save FFT convolution over tiles, shared by the FFT backends.

Every tile is transformed once per channel; each kernel is applied only in the tiles
where its weight is non-zero (``|w| > ZERO_WEIGHT``), so a pixel pays for the kernels
that touch it rather than for all of them. The FFT itself comes from an *engine*
(scipy.fft, pyFFTW), which provides:

``fast_len(n) -> int``
    A fast transform length >= n.
``rfft2(blocks, shape) -> complex ndarray (..., shape[0], shape[1] // 2 + 1)``
    Real 2-D transform over the last two axes, zero-padding ``blocks`` to ``shape``.
``irfft2(spectra, shape) -> real ndarray (..., shape[0], shape[1])``
    Its inverse.

Engines are called with ``threads=1`` from a pool of tile workers.
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .._tiling import plan_tiles
from .base import ZERO_WEIGHT, zero_fft_roundoff


#: Block side / (kernel length - 1). A uniform convolution wants large blocks (the
#: overlap wastes (k - 1) / block of each transform); a weighted one wants smaller
#: blocks, so that kernels with zero weight are skipped over more of the image. Measured
#: on 720p with 65x65 kernels and SBDD weights (bench/): 8 and 4 are the optima.
UNIFORM_BLOCK_MULTIPLE = 8
WEIGHTED_BLOCK_MULTIPLE = 4


def block_side(kernel_len, engine, multiple):
    """FFT block side for a kernel of length ``kernel_len``: ``multiple * (kernel_len - 1)``.

    Never below 128 (tiny transforms are call-bound).
    """
    return engine.fast_len(max(128, multiple * (kernel_len - 1)))


class TiledFFT:
    """Tiled FFT implementations of the backend operations for one engine.

    Parameters
    ----------
    engine : object
        Provides ``fast_len``, ``rfft2`` and ``irfft2`` (see the module docstring).
    threads : callable
        Returns how many tiles may be processed at once.
    """

    def __init__(self, engine, threads):
        self.engine = engine
        self.threads = threads

    # -- planning ---------------------------------------------------------------------
    def plan(self, out_shape, kernel_shape, multiple=WEIGHTED_BLOCK_MULTIPLE):
        """The overlap-save tiles of a ``valid`` convolution and their transform shape.

        Parameters
        ----------
        out_shape : tuple of int
            ``(Ho, Wo)`` of the ``valid`` output.
        kernel_shape : tuple of int
            ``(kh, kw)``.
        multiple : int, optional
            Block side / (kernel length - 1): :data:`UNIFORM_BLOCK_MULTIPLE` for
            ``convolve``, :data:`WEIGHTED_BLOCK_MULTIPLE` for the weighted operations.

        Returns
        -------
        plan : fastblur._tiling.TilePlan
        fft_shape : tuple of int
            The transform shape of every block.
        """
        sides = tuple(block_side(k, self.engine, multiple) for k in kernel_shape)
        plan = plan_tiles(out_shape, kernel_shape, sides)
        fft_shape = tuple(self.engine.fast_len(b) for b in plan.block_shape)
        return plan, fft_shape

    def _run(self, function, tiles):
        workers = min(self.threads(), len(tiles))
        if workers <= 1:
            for tile in tiles:
                function(tile)
            return
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(function, tiles):
                pass

    def _crop(self, blocks, kernel_shape, tile_hw):
        (kh, kw), (th, tw) = kernel_shape, tile_hw
        return blocks[..., kh - 1 : kh - 1 + th, kw - 1 : kw - 1 + tw]

    # -- operations -------------------------------------------------------------------
    def convolve_valid(self, image, kernel):
        """See :meth:`fastblur.backends.base.Backend.convolve_valid`."""
        kh, kw = kernel.shape
        out_shape = (image.shape[0] - kh + 1, image.shape[1] - kw + 1)
        plan, fft_shape = self.plan(out_shape, kernel.shape, UNIFORM_BLOCK_MULTIPLE)
        spectrum = self.engine.rfft2(kernel, fft_shape)
        out = np.empty(out_shape + image.shape[2:], image.dtype)

        def one_tile(tile):
            r0, r1, c0, c1 = tile
            block = image[r0 : r1 + kh - 1, c0 : c1 + kw - 1].transpose(2, 0, 1)
            filtered = self.engine.irfft2(self.engine.rfft2(block, fft_shape) * spectrum, fft_shape)
            out[r0:r1, c0:c1] = self._crop(filtered, kernel.shape, (r1 - r0, c1 - c0)).transpose(1, 2, 0)

        self._run(one_tile, plan.tiles())
        return out

    def blur_masked_valid(self, image, kernels, weights):
        """See :meth:`fastblur.backends.base.Backend.blur_masked_valid`."""
        _, kh, kw = kernels.shape
        out_shape = weights.shape[1:]
        plan, fft_shape = self.plan(out_shape, (kh, kw))
        spectra = self.engine.rfft2(kernels, fft_shape)
        out = np.empty(tuple(out_shape) + image.shape[2:], image.dtype)

        def one_tile(tile):
            r0, r1, c0, c1 = tile
            w = weights[:, r0:r1, c0:c1]
            active = np.flatnonzero(np.abs(w).max(axis=(1, 2)) > ZERO_WEIGHT)
            if active.size == 0:
                out[r0:r1, c0:c1] = 0
                return
            block = image[r0 : r1 + kh - 1, c0 : c1 + kw - 1].transpose(2, 0, 1)
            spectrum = self.engine.rfft2(block, fft_shape)  # (C, fh, fw // 2 + 1)
            products = spectrum[None] * spectra[active, None]  # (A, C, ...)
            filtered = self._crop(
                self.engine.irfft2(products, fft_shape), (kh, kw), (r1 - r0, c1 - c0)
            )
            acc = filtered[0] * w[active[0], None]
            for a in range(1, active.size):
                acc += filtered[a] * w[active[a], None]
            out[r0:r1, c0:c1] = acc.transpose(1, 2, 0)

        self._run(one_tile, plan.tiles())
        return out

    def blur_product_valid(self, image, kernels, weights):
        """See :meth:`fastblur.backends.base.Backend.blur_product_valid`."""
        _, kh, kw = kernels.shape
        out_shape = (image.shape[0] - kh + 1, image.shape[1] - kw + 1)
        plan, fft_shape = self.plan(out_shape, (kh, kw))
        spectra = self.engine.rfft2(kernels, fft_shape)
        out = np.empty(out_shape + image.shape[2:], image.dtype)

        def one_tile(tile):
            r0, r1, c0, c1 = tile
            w = weights[:, r0 : r1 + kh - 1, c0 : c1 + kw - 1]
            active = np.flatnonzero(np.abs(w).max(axis=(1, 2)) > ZERO_WEIGHT)
            if active.size == 0:
                out[r0:r1, c0:c1] = 0
                return
            block = image[r0 : r1 + kh - 1, c0 : c1 + kw - 1].transpose(2, 0, 1)
            weighted = w[active, None] * block[None]  # (A, C, ih, iw)
            spectrum = self.engine.rfft2(weighted, fft_shape) * spectra[active, None]
            summed = spectrum.sum(axis=0)
            filtered = self.engine.irfft2(summed, fft_shape)
            out[r0:r1, c0:c1] = self._crop(filtered, (kh, kw), (r1 - r0, c1 - c0)).transpose(1, 2, 0)

        self._run(one_tile, plan.tiles())
        return out

    def convolve_masks_valid(self, masks, kernels):
        """See :meth:`fastblur.backends.base.Backend.convolve_masks_valid`.

        A mask that is all False over a tile's input block gives 0 there, one that is
        all True gives ``kernels[i].sum()``; only blocks crossing a mask edge are
        transformed, and their round-off around 0 is set to 0 (:func:`zero_fft_roundoff`).
        """
        n, kh, kw = kernels.shape
        out_shape = (masks.shape[1] - kh + 1, masks.shape[2] - kw + 1)
        plan, fft_shape = self.plan(out_shape, (kh, kw))
        spectra = self.engine.rfft2(kernels, fft_shape)
        kernel_sums = kernels.sum(axis=(1, 2))
        out = np.empty((n,) + out_shape, kernels.dtype)

        def one_tile(tile):
            r0, r1, c0, c1 = tile
            block = masks[:, r0 : r1 + kh - 1, c0 : c1 + kw - 1]
            inside = block.any(axis=(1, 2))
            full = block.all(axis=(1, 2))
            for i in np.flatnonzero(~inside | full):
                out[i, r0:r1, c0:c1] = kernel_sums[i] if full[i] else 0
            edge = np.flatnonzero(inside & ~full)
            if edge.size:
                spectrum = self.engine.rfft2(block[edge].astype(kernels.dtype), fft_shape)
                filtered = self.engine.irfft2(spectrum * spectra[edge], fft_shape)
                out[edge, r0:r1, c0:c1] = self._crop(filtered, (kh, kw), (r1 - r0, c1 - c0))

        self._run(one_tile, plan.tiles())
        return zero_fft_roundoff(out, kernels)
