"""
The evaluation protocol's alignment
===================================

RealBlur's protocol (``protocol="realblur"`` of :func:`fastblur.evaluate.aligned_metrics`)
does not compare a restoration with its ground truth pixel for pixel: it first matches
the intensity (a least-squares gain), then estimates a homography with ECC and warps the
restoration onto the ground truth, and scores only the valid region. Here a "restoration"
is the ground truth slightly rotated, shifted and darkened: the error vanishes once
:func:`fastblur.evaluate.align` has aligned it.
"""
import cv2
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from fastblur.evaluate import align, aligned_metrics, plain_metrics

gt = data.astronaut()[64:448, 64:448].astype(np.float32) / 255  # (384, 384, 3) in [0, 1]
angle, shift = 1.5, (4.0, -3.0)
matrix = cv2.getRotationMatrix2D((192, 192), angle, 1.0)
matrix[:, 2] += shift
restored = 0.85 * cv2.warpAffine(gt, matrix, (384, 384), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)

alignment = align(restored, gt)
before = plain_metrics(restored, gt)
after = aligned_metrics(restored, gt, protocol="realblur")
print(f"gain {alignment.gain:.3f}, ECC failed: {alignment.ecc_failed}")
print("warp:\n", np.round(alignment.warp, 3))
print(f"plain:    PSNR {before['psnr']:.2f} dB, SSIM {before['ssim']:.3f}")
print(f"realblur: PSNR {after['psnr']:.2f} dB, SSIM {after['ssim']:.3f}")

# %%
figure, axes = plt.subplots(1, 3, figsize=(11, 4), layout="constrained")
error_before = np.abs(restored - gt).mean(axis=2)
error_after = np.abs(alignment.aligned - alignment.gt).mean(axis=2)
axes[0].imshow(np.clip(restored, 0, 1))
axes[0].set_title("restoration (rotated, shifted, darker)", fontsize=9)
axes[1].imshow(error_before, cmap="magma", vmin=0, vmax=0.3)
axes[1].set_title(f"|restored - gt| before: PSNR {before['psnr']:.1f} dB", fontsize=9)
axes[2].imshow(error_after, cmap="magma", vmin=0, vmax=0.3)
axes[2].set_title(f"after gain + ECC: PSNR {after['psnr']:.1f} dB", fontsize=9)
for ax in axes:
    ax.set_axis_off()
plt.show()
