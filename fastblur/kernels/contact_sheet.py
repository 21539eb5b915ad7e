"""A grid image of kernels, for looking at a kernel set at a glance."""
import numpy as np

from .._validation import check_count, check_ndim

__all__ = ["contact_sheet"]


def contact_sheet(kernels, columns=8, gap=2):
    """Tile kernels into one 8-bit grey image, each scaled so its peak is white.

    Parameters
    ----------
    kernels : sequence of array_like, each shape (kh, kw)
        Kernels of any (possibly different) sizes; tiles are as large as the largest
        and each kernel is centred in its tile.
    columns : int, optional
        Tiles per row.
    gap : int, optional
        Grey (level 64) pixels between tiles and around the sheet; tiles are black.

    Returns
    -------
    ndarray, shape (H, W), uint8
        ``H = rows * (th + gap) + gap``, ``W = min(columns, n) * (tw + gap) + gap``.

    Raises
    ------
    ValueError
        No kernels, a kernel that is not 2-D, ``columns < 1`` or ``gap < 0``.
    """
    kernels = [np.asarray(k, dtype=np.float64) for k in kernels]
    if not kernels:
        raise ValueError("kernels must hold at least one kernel")
    for i, k in enumerate(kernels):
        check_ndim(k, (2,), f"kernels[{i}]", "a 2-D array")
    columns = check_count(columns, "columns", low=1)
    gap = check_count(gap, "gap")
    th = max(k.shape[0] for k in kernels)
    tw = max(k.shape[1] for k in kernels)
    cols = min(columns, len(kernels))
    rows = -(-len(kernels) // cols)
    sheet = np.full((rows * (th + gap) + gap, cols * (tw + gap) + gap), 64, dtype=np.uint8)
    for i, k in enumerate(kernels):
        r, c = divmod(i, cols)
        top, left = gap + r * (th + gap), gap + c * (tw + gap)
        sheet[top: top + th, left: left + tw] = 0
        top += (th - k.shape[0]) // 2
        left += (tw - k.shape[1]) // 2
        peak = k.max()
        scaled = np.clip(k / peak, 0, 1) if peak > 0 else np.zeros_like(k)
        sheet[top: top + k.shape[0], left: left + k.shape[1]] = np.rint(255 * scaled)
    return sheet
