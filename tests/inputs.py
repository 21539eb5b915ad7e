"""Test inputs: a folder of sharp PNG photos (scikit-image's), SBDD-like weight maps."""
import numpy as np
import scipy.ndimage
from PIL import Image


def photo_folder(tmp_path_factory, *crops):
    """Write ``a.png``, ``b.png``, ... into a fresh temporary folder and return it.

    Each crop is ``(name, step, height, width)``: ``skimage.data.<name>()`` taken every
    ``step`` pixels, then its top-left ``(height, width)``.
    """
    from skimage import data

    folder = tmp_path_factory.mktemp("sharp")
    for letter, (name, step, height, width) in zip("abcdefgh", crops):
        image = getattr(data, name)()[::step, ::step][:height, :width]
        Image.fromarray(np.ascontiguousarray(image)).save(folder / f"{letter}.png")
    return folder


def region_weights(rng, count, shape, half):
    """SBDD-like weights, float64 of shape ``(count,) + shape``, summing to one.

    Map ``i >= 1`` is one on a random rectangle of half-sides ``half = (rows, cols)``,
    map 0 on the rest, with soft (5 x 5 box-filtered) edges: each map is exactly zero
    over large areas.
    """
    labels = np.zeros(shape, int)
    for i in range(1, count):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        labels[max(0, r - half[0]) : r + half[0], max(0, c - half[1]) : c + half[1]] = i
    weights = np.stack([(labels == i).astype(float) for i in range(count)])
    weights = scipy.ndimage.uniform_filter(weights, size=(1, 5, 5))
    return weights / weights.sum(axis=0)
