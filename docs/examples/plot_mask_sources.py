"""
Mask sources side by side
=========================

SBDD blurs each object by its own kernel, so it needs object masks. fastblur reads them
from several sources (:mod:`fastblur.sbdd.masks`); each returns a boolean stack
``(n, H, W)``. Here, on scikit-image's photographs: a classical segmentation of the image
itself (the download-free default), procedural shapes, a label map, and a
detectron2-style ``.npz`` of scored instances (only those scoring above 0.9 are kept, as
in the reference).
"""
import os
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from scipy import ndimage
from skimage import data

from fastblur.sbdd.masks import classical_masks, detectron2_masks, label_map_masks, random_shape_masks


def overlay(image, masks):
    """The image greyed, each mask in its own colour."""
    grey = image.mean(axis=2, keepdims=True) if image.ndim == 3 else image[..., None]
    out = np.repeat(grey / 255.0, 3, axis=2) * 0.6
    colours = plt.get_cmap("tab10").colors
    for i, mask in enumerate(masks):
        out[mask] = 0.4 * out[mask] / 0.6 + 0.6 * np.array(colours[i % 10])
    return np.clip(out, 0, 1)


coffee = data.coffee()
classical = classical_masks(coffee, max_objects=5, min_area=2000, rng=0)
shapes = random_shape_masks(coffee.shape[:2], max_objects=5, min_area=2000, rng=0)

coins = data.coins()  # (303, 384) uint8
labels, count = ndimage.label(ndimage.binary_fill_holes(coins > 110))
from_labels = label_map_masks(labels, min_area=1000, max_objects=5)

# A detectron2 output: instances with scores; the selection keeps score > 0.9, the 5 best.
instances = np.stack([labels == v for v in range(1, count + 1)])
instances = instances[instances.sum(axis=(1, 2)) > 1000]
scores = np.linspace(0.99, 0.6, len(instances)).astype(np.float32)
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "coins.npz")
    np.savez(path, pred_masks=instances, scores=scores, pred_classes=np.zeros(len(instances), np.int64))
    from_detectron2 = detectron2_masks(path, min_area=1000)

# %%
panels = [("classical (Felzenszwalb)", coffee, classical), ("procedural shapes", coffee, shapes),
          ("label map", coins, from_labels), ("detectron2 .npz, score > 0.9", coins, from_detectron2)]
figure, axes = plt.subplots(2, 2, figsize=(9, 6.5), layout="constrained")
for ax, (title, image, masks) in zip(axes.flat, panels):
    ax.imshow(overlay(image, masks))
    ax.set_title(f"{title}: {len(masks)} object(s)", fontsize=9)
    ax.set_axis_off()
plt.show()
