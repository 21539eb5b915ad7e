"""
A rotating camera's PSF field
=============================

Hand shake is mostly rotation, and a rotation (roll especially) blurs each part of the
frame differently. :func:`fastblur.kernels.camera_motion` draws a rotation over the
exposure, :func:`fastblur.psf_field` shows the PSF it makes at a grid of pixels, and
:func:`fastblur.projective_blur` blurs by it (see :doc:`/guide/projective`).
"""
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

import fastblur
from fastblur.kernels import camera_motion

image = data.astronaut().astype(np.float32) / 255  # (512, 512, 3)
motion = camera_motion(exposure=1.0, rng=3, samples=64, roll=4.0)  # a strong roll, to show the field
homographies = motion.homographies(1500, image.shape)  # (S, 3, 3), focal length 1500 px
blurry = fastblur.projective_blur(image, homographies)
field = fastblur.psf_field(homographies, image.shape, grid=(3, 3), size=41)  # (3, 3, 41, 41)
print(f"{len(homographies)} samples; blurry {blurry.shape}; field {field.shape}")

# %%
figure, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
axes[0].imshow(image)
axes[0].set_title("sharp", fontsize=9)
axes[1].imshow(np.clip(blurry, 0, 1))
axes[1].set_title("projective_blur", fontsize=9)
tiles = np.block([[np.pad(psf / psf.max(), 1, constant_values=1) for psf in row] for row in field])
axes[2].imshow(tiles, cmap="gray_r")
axes[2].set_title("psf_field on a 3x3 grid of pixels (each scaled to its peak)", fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()
