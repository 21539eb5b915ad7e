"""
Camera-shake kernel statistics
==============================

:func:`fastblur.kernels.camera_shake` integrates a physiological model of hand shake
(tremor plus drift) over the exposure and projects it with the focal length. Longer
exposures and longer lenses make longer kernels; here are the extents (the longer side of
the support's bounding box, :func:`fastblur.kernels.extent`) and non-zero taps of a few
hundred draws per setting, and samples of each.
"""
import matplotlib.pyplot as plt
import numpy as np

from fastblur.kernels import camera_shake, extent, nonzero_taps

settings = [(0.1, 1000), (0.5, 1000), (1.0, 1000), (0.5, 2000)]  # (exposure s, focal length px)
draws = 300
stats = {}
samples = {}
for exposure, focal in settings:
    kernels = [camera_shake(65, exposure=exposure, focal_length=focal, rng=np.random.default_rng([7, i]))
               for i in range(draws)]
    stats[exposure, focal] = (np.array([extent(k) for k in kernels]),
                              np.array([nonzero_taps(k) for k in kernels]))
    samples[exposure, focal] = kernels[:4]
    print(f"exposure {exposure} s, f = {focal} px: mean extent {stats[exposure, focal][0].mean():.1f} px, "
          f"p5/50/95 {np.percentile(stats[exposure, focal][0], [5, 50, 95]).round(1)}, "
          f"mean taps {stats[exposure, focal][1].mean():.0f}")

# %%
figure = plt.figure(figsize=(10, 6.5), layout="constrained")
top, bottom = figure.subfigures(2, 1, height_ratios=[1.2, 1])
hist, taps = top.subplots(1, 2)
bins = np.arange(0, 66, 2)
for (exposure, focal), (extents, counts) in stats.items():
    label = f"{exposure} s, f = {focal}"
    hist.hist(extents, bins=bins, histtype="step", linewidth=1.5, label=label)
    taps.hist(counts, bins=30, histtype="step", linewidth=1.5, label=label)
hist.set_xlabel("extent (px)")
hist.set_ylabel(f"kernels (of {draws})")
hist.legend(fontsize=8)
taps.set_xlabel("non-zero taps")
taps.legend(fontsize=8)
grid = bottom.subplots(1, len(settings))
for ax, ((exposure, focal), kernels) in zip(grid, samples.items()):
    tiles = np.block([[kernels[0] / kernels[0].max(), kernels[1] / kernels[1].max()],
                      [kernels[2] / kernels[2].max(), kernels[3] / kernels[3].max()]])
    ax.imshow(tiles, cmap="gray_r")
    ax.set_title(f"{exposure} s, f = {focal}", fontsize=9)
    ax.set_axis_off()
plt.show()
