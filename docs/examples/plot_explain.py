"""
``explain()`` of an ``auto`` decision
=====================================

``backend="auto"`` predicts the time of every method that can run a call — sparse-tap
direct convolution and overlap-save FFT tiles, on each available backend — and runs the
cheapest. :func:`fastblur.explain` shows the prediction without running the call. A
sparse motion PSF favours the direct method; a dense kernel of the same size favours
the FFT.
"""
import matplotlib.pyplot as plt
import numpy as np
from skimage import data

import fastblur
from fastblur.kernels import camera_shake

image = data.astronaut().astype(np.float32)  # (512, 512, 3)
masks = np.zeros((2, 512, 512), bool)
masks[0, 100:250, 150:400] = masks[1, 300:480, 50:300] = True
sparse = np.stack([camera_shake(65, rng=np.random.default_rng([3, i])) for i in range(3)])
dense = np.full((3, 65, 65), 1 / 65**2, np.float32)

decisions = {}
for name, kernels in (("motion PSFs (sparse)", sparse), ("box kernels (dense)", dense)):
    weights = fastblur.smooth_masks(masks, kernels)
    decisions[name] = fastblur.explain("blur_masked", image, kernels, weights)
    print(name)
    print(decisions[name])
    print()

# %%
figure, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained", sharex=False)
for ax, (name, decision) in zip(axes, decisions.items()):
    labels = [f"{e.method} ({e.label})" for e in decision.estimates]
    times = [1e3 * e.seconds for e in decision.estimates]
    chosen = [e.backend == decision.backend and e.method == decision.method for e in decision.estimates]
    positions = np.arange(len(labels))[::-1]
    ax.barh(positions, times, color=["tab:orange" if c else "tab:blue" for c in chosen])
    ax.set_yticks(positions, labels, fontsize=8)
    ax.set_xlabel("predicted ms")
    ax.set_title(f"blur_masked, {name}: auto runs {decision.method} ({decision.label})", fontsize=9)
plt.show()
