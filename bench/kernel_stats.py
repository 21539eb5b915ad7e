"""Statistics of generated kernels: extent and non-zero taps, per model.

Run: ``PYTHONPATH=. python bench/kernel_stats.py [--count 400]``. The documented ranges
(module docstrings of :mod:`fastblur.kernels.shake` and
:mod:`fastblur.kernels.trajectory`) and ``tests/test_kernels_generation.py`` use these
figures. Kernel ``i`` is drawn from ``numpy.random.default_rng([0, i])``, as
``fastblur-kernels --seed 0`` draws it.
"""
import argparse
import time

import numpy as np

from fastblur.kernels import camera_shake, extent, linear_motion, nonzero_taps, trajectory_kernel

MODELS = {
    "camera_shake (65, 0.5 s, f=1000 px)": lambda rng: camera_shake(65, 0.5, 1000, rng),
    "camera_shake (65, 0.1 s, f=1000 px)": lambda rng: camera_shake(65, 0.1, 1000, rng),
    "camera_shake (65, 1.0 s, f=1000 px)": lambda rng: camera_shake(65, 1.0, 1000, rng),
    "camera_shake (65, 0.5 s, f=2000 px)": lambda rng: camera_shake(65, 0.5, 2000, rng),
    "trajectory (65, L=60, anxiety=0.005, T=1)": lambda rng: trajectory_kernel(65, 60, 0.005, 1.0, rng),
    "trajectory (65, L=60, anxiety=0.005, T=0.5)": lambda rng: trajectory_kernel(65, 60, 0.005, 0.5, rng),
    "linear (65, L~U(0,60), angle~U(0,180))": lambda rng: linear_motion(
        rng.uniform(0, 60), rng.uniform(0, 180), 65),
}


def summarise(make, count):
    start = time.perf_counter()
    kernels = [make(np.random.default_rng([0, i])) for i in range(count)]
    seconds = time.perf_counter() - start
    ext = np.array([extent(k) for k in kernels])
    taps = np.array([nonzero_taps(k) for k in kernels])
    return {
        "ms/kernel": 1e3 * seconds / count,
        "extent mean": ext.mean(),
        "extent p5/p50/p95": np.percentile(ext, [5, 50, 95]),
        "taps mean": taps.mean(),
        "taps p5/p50/p95": np.percentile(taps, [5, 50, 95]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    args = parser.parse_args()
    camera_shake(rng=0), trajectory_kernel(rng=0), linear_motion(3, 0)  # compile first
    print(f"{args.count} kernels per model (extent: px, longer side of the support's "
          "bounding box; taps: non-zero taps)")
    for name, make in MODELS.items():
        s = summarise(make, args.count)
        print(f"{name:45s} extent mean {s['extent mean']:5.1f} "
              f"p5/50/95 {'/'.join(f'{v:.0f}' for v in s['extent p5/p50/p95']):>9s}  "
              f"taps mean {s['taps mean']:6.1f} "
              f"p5/50/95 {'/'.join(f'{v:.0f}' for v in s['taps p5/p50/p95']):>11s}  "
              f"{s['ms/kernel']:.3f} ms/kernel")


if __name__ == "__main__":
    main()
