"""Overlap-save tile plans on the ``valid`` output grid.

A plan cuts the output ``(Ho, Wo)`` into near-equal tiles; output tile ``[r0:r1, c0:c1]``
needs input rows ``r0 : r1 + kh - 1`` and columns ``c0 : c1 + kw - 1``. Backends that
work per tile (FFT blocks, skipped kernels) share these plans.
"""
import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering a ``valid`` output grid.

    Attributes
    ----------
    out_shape : tuple of int
        ``(Ho, Wo)``.
    kernel_shape : tuple of int
        ``(kh, kw)``.
    tile_shape : tuple of int
        Largest output tile ``(th, tw)``; edge tiles may be smaller.
    """

    out_shape: tuple
    kernel_shape: tuple
    tile_shape: tuple

    @property
    def block_shape(self):
        """Input block of the largest tile: ``(th + kh - 1, tw + kw - 1)``."""
        return tuple(t + k - 1 for t, k in zip(self.tile_shape, self.kernel_shape))

    def tiles(self):
        """Output tiles ``(r0, r1, c0, c1)``, row-major.

        Returns
        -------
        list of tuple of int
        """
        (ho, wo), (th, tw) = self.out_shape, self.tile_shape
        return [
            (r0, min(r0 + th, ho), c0, min(c0 + tw, wo))
            for r0 in range(0, ho, th)
            for c0 in range(0, wo, tw)
        ]


def _balanced_tile(out_len, max_tile, min_tile):
    """Split ``out_len`` into near-equal tiles of about ``max_tile``, none below ``min_tile``."""
    count = min(math.ceil(out_len / max_tile), max(1, out_len // min_tile))
    return math.ceil(out_len / count)


def plan_tiles(out_shape, kernel_shape, max_block):
    """Tiles whose input blocks are at most ``max_block`` on a side when possible.

    Parameters
    ----------
    out_shape : tuple of int
        ``(Ho, Wo)`` of the ``valid`` output.
    kernel_shape : tuple of int
        ``(kh, kw)``.
    max_block : int or tuple of int
        Target input-block side(s); a block is never smaller than twice the kernel, so
        that overlap stays below half of the work.

    Returns
    -------
    TilePlan
    """
    if isinstance(max_block, numbers.Integral):
        max_block = (max_block, max_block)
    tile = tuple(
        _balanced_tile(n, max(b - (k - 1), k), k)
        for n, k, b in zip(out_shape, kernel_shape, max_block)
    )
    return TilePlan(tuple(out_shape), tuple(kernel_shape), tile)
