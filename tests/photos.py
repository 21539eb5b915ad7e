"""A folder of sharp PNG photos (scikit-image's) for the dataset-writer tests."""
import numpy as np
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
