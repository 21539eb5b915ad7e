"""
An SBDD pair with its weights and kernels
=========================================

One sharp photograph, object masks from a classical segmentation of the photograph
itself, one camera-shake kernel for the background and one for each object, and the pair
:func:`fastblur.sbdd.synthesize_pair` forms from them (see :doc:`/guide/formation`).
"""
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from fastblur.kernels import camera_shake
from fastblur.sbdd import synthesize_pair
from fastblur.sbdd.masks import classical_masks
from fastblur.sbdd.preview import weights_image

sharp = data.chelsea()  # (300, 451, 3) uint8
masks = classical_masks(sharp, max_objects=3, min_area=2000, rng=0)  # (n, H, W) bool
kernels = np.stack([camera_shake(33, exposure=0.5, focal_length=1000, rng=np.random.default_rng([1, i]))
                    for i in range(len(masks) + 1)])  # background first
pair = synthesize_pair(sharp, kernels, masks, illumination_gain=1.3, rng=0)
blurry8, sharp8 = pair.to_uint8()
print(f"{len(masks)} object(s); sharp {sharp8.shape}, blurry {blurry8.shape}, weights {pair.weights.shape}")

# %%
# The weights are the soft partition of the ``valid`` grid the formation model blurs
# with: :math:`W_i = (K_i \star M_i) / (\sum_j K_j \star M_j + 10^{-6})`, one colour per
# kernel (the background is the first).

figure, axes = plt.subplot_mosaic([["sharp", "blurry"], ["weights", "kernels"]], figsize=(9, 6.5),
                                  layout="constrained")
axes["sharp"].imshow(sharp8)
axes["sharp"].set_title("sharp target (valid grid)")
axes["blurry"].imshow(blurry8)
axes["blurry"].set_title("blurry input")
axes["weights"].imshow(weights_image(pair.weights))
axes["weights"].set_title(f"weights of {len(kernels)} kernels")
strip = np.concatenate([np.pad(k / k.max(), 2, constant_values=1) for k in kernels], axis=1)
axes["kernels"].imshow(strip, cmap="gray_r")
axes["kernels"].set_title("kernels (background first), each scaled to its peak")
for ax in axes.values():
    ax.set_axis_off()
plt.show()
