"""Contact sheet of generated pairs: sharp | blurry | weights (coloured) | kernels.

One row per pair. The weights panel paints each pixel with the weights' mix of the
kernels' colours (background grey-blue, objects in saturated colours); the kernels
panel shows each PSF (what a point of light becomes: the stored kernel rotated by 180
degrees) on black, scaled to its peak with a square-root stretch so faint taps show,
framed in its colour.
"""
import math

import numpy as np

from .._atomic import write_atomic
from .codecs import encode_image

__all__ = ["PALETTE", "contact_sheet", "kernels_panel", "preview_row", "weights_image"]

#: RGB colours of kernel 0 (background), 1, 2, ... (repeating after the last).
PALETTE = np.array(
    [
        (90, 110, 150), (230, 60, 50), (60, 190, 80), (60, 110, 235), (240, 200, 40),
        (200, 70, 210), (40, 200, 210), (250, 140, 40), (150, 90, 40), (250, 250, 250),
    ],
    np.float32,
)


def _colours(count):
    return PALETTE[np.arange(count) % len(PALETTE)]


def weights_image(weights):
    """``sum_i weights[i] * colour_i``: an RGB picture of the SBDD weights.

    Parameters
    ----------
    weights : ndarray, shape (N, H, W)

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    weights = np.asarray(weights, np.float32)
    image = np.tensordot(weights, _colours(len(weights)), axes=(0, 0))
    return np.clip(image, 0, 255).astype(np.uint8)


def kernels_panel(kernels, height):
    """PSFs of stored kernels in a 2-row grid, ``height`` pixels tall.

    Parameters
    ----------
    kernels : ndarray, shape (N, kh, kw)
        As stored for the reference (the PSF is ``K[::-1, ::-1]``).
    height : int

    Returns
    -------
    ndarray, shape (height, width, 3), uint8
    """
    import cv2

    kernels = np.asarray(kernels, np.float32)
    count = len(kernels)
    rows = 1 if count == 1 else 2
    cols = math.ceil(count / rows)
    cell = height // rows
    panel = np.full((height, cols * cell, 3), 255, np.uint8)
    for i, (kernel, colour) in enumerate(zip(kernels, _colours(count))):
        psf = kernel[::-1, ::-1]
        peak = float(psf.max())
        grey = np.sqrt(np.clip(psf / peak, 0, 1)) if peak > 0 else np.zeros_like(psf)
        tile = cv2.resize((grey * 255).astype(np.uint8), (cell - 4, cell - 4), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, cols)
        y, x = r * cell, c * cell
        panel[y : y + cell, x : x + cell] = colour.astype(np.uint8)
        panel[y + 2 : y + cell - 2, x + 2 : x + cell - 2] = tile[:, :, None]
    return panel


def _fit_height(image, height):
    import cv2

    image = np.atleast_3d(image)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    rgb = np.broadcast_to(image[:, :, :3], image.shape[:2] + (3,))  # grey is repeated
    return cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=cv2.INTER_AREA)


def preview_row(sharp, blurry, weights, kernels, height=160):
    """One contact-sheet row: sharp | blurry | weights | kernels, ``height`` pixels tall.

    Parameters
    ----------
    sharp, blurry : ndarray, shape (Ho, Wo, 3) or (Ho, Wo), uint8
    weights : ndarray, shape (N, Ho, Wo)
    kernels : ndarray, shape (N, kh, kw)
    height : int

    Returns
    -------
    ndarray, shape (height, width, 3), uint8
    """
    import cv2

    panels = [_fit_height(sharp, height), _fit_height(blurry, height),
              _fit_height(weights_image(weights), height), kernels_panel(kernels, height)]
    for label, panel in zip(("sharp", "blurry", "weights", "PSFs"), panels):
        (text_w, text_h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        panel[: text_h + base + 4, : text_w + 6] = 0
        cv2.putText(panel, label, (3, text_h + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    gap = np.full((height, 4, 3), 255, np.uint8)
    return np.concatenate([part for panel in panels for part in (panel, gap)][:-1], axis=1)


def contact_sheet(rows, path=None):
    """Stack preview rows (padded to the widest); write a PNG if ``path``.

    Parameters
    ----------
    rows : list of ndarray (h, w, 3), uint8
        From :func:`preview_row`.
    path : str or os.PathLike, optional

    Returns
    -------
    ndarray, shape (H, W, 3), uint8 (RGB)
    """
    if not rows:
        raise ValueError("rows must hold at least one preview row")
    width = max(r.shape[1] for r in rows)
    gap = np.full((4, width, 3), 255, np.uint8)
    padded = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    sheet = np.concatenate([part for row in padded for part in (row, gap)][:-1], axis=0)
    if path is not None:
        write_atomic(path, encode_image(sheet))
    return sheet
