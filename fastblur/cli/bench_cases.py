"""Synthetic workloads shared by ``fastblur-bench`` and the pytest-benchmark suite.

Deterministic for a seed, no downloads: a photograph from scikit-image (when present)
tiled to the requested size, random-walk motion PSFs with about a hundred non-zero taps,
and SBDD-like weights made by :func:`fastblur.smooth_masks` from elliptical objects.
"""
import numpy as np

from ..primitives import smooth_masks


def photo(shape, dtype=np.float32):
    """A natural image of ``shape`` (H, W[, C]) in [0, 255], tiled from a skimage sample.

    Falls back to smooth noise when scikit-image's sample data is not available.
    """
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else None
    try:
        from skimage import data

        source = data.astronaut().astype(np.float64)
    except Exception:
        rng = np.random.default_rng(0)
        source = np.cumsum(np.cumsum(rng.standard_normal((512, 512, 3)), 0), 1)
        source = 255 * (source - source.min()) / np.ptp(source)
    reps = (-(-height // source.shape[0]), -(-width // source.shape[1]), 1)
    image = np.tile(source, reps)[:height, :width]
    image = image[..., :channels] if channels else image.mean(axis=2)
    return np.ascontiguousarray(image, dtype=dtype)


def motion_kernel(size=65, steps=None, rng=None):
    """A random-walk motion PSF of shape (size, size), float32, summing to 1.

    A particle with inertia takes ``steps`` unit steps from the centre; its path is
    splatted bilinearly and the PSF is recentred on its centroid.
    """
    rng = np.random.default_rng(rng)
    steps = steps or int(1.3 * size)
    position = np.zeros(2)
    velocity = rng.standard_normal(2)
    path = []
    for _ in range(steps):
        velocity = 0.8 * velocity + 0.6 * rng.standard_normal(2)
        velocity /= max(1.0, np.linalg.norm(velocity))
        position = position + velocity
        path.append(position.copy())
    path = np.asarray(path)
    path -= path.mean(axis=0)
    path = np.clip(path + (size - 1) / 2, 0, size - 1.001)
    kernel = np.zeros((size, size))
    base = np.floor(path).astype(int)
    frac = path - base
    for (r, c), (fr, fc) in zip(base, frac):
        kernel[r, c] += (1 - fr) * (1 - fc)
        kernel[r + 1, c] += fr * (1 - fc)
        kernel[r, c + 1] += (1 - fr) * fc
        kernel[r + 1, c + 1] += fr * fc
    return (kernel / kernel.sum()).astype(np.float32)


def motion_kernels(count, size=65, seed=0):
    """``count`` motion PSFs, shape (count, size, size), float32."""
    return np.stack([motion_kernel(size, rng=[seed, i]) for i in range(count)])


def object_masks(shape, count, seed=0):
    """``count`` elliptical object masks, shape (count, H, W), bool (about 5–10 % each)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    rows, cols = np.ogrid[:height, :width]
    masks = np.zeros((count, height, width), bool)
    for i in range(count):
        r, c = rng.uniform(0.15, 0.85) * height, rng.uniform(0.15, 0.85) * width
        a, b = rng.uniform(0.08, 0.18) * height, rng.uniform(0.06, 0.14) * width
        masks[i] = ((rows - r) / a) ** 2 + ((cols - c) / b) ** 2 < 1
    return masks


def sbdd_case(height=720, width=1280, n_kernels=6, size=65, seed=0, dtype=np.float32):
    """The SBDD-like workload: ``(image (H, W, 3), kernels (N, k, k), weights (N, Ho, Wo))``."""
    image = photo((height, width, 3), dtype)
    kernels = motion_kernels(n_kernels, size, seed).astype(dtype)
    masks = object_masks((height, width), n_kernels - 1, seed)
    weights = smooth_masks(masks, kernels).astype(dtype)
    return image, kernels, weights


def projective_case(height=720, width=1280, samples=96, extent=30.0, roll_degrees=0.6, seed=0,
                    dtype=np.float32):
    """The projective camera-shake workload: ``(image (H, W, 3) in [0, 1], homographies (S, 3, 3))``.

    A :func:`~fastblur.kernels.camera_motion` draw of ``samples`` instants whose path at
    the principal point spans ``extent`` pixels (the longer side of its bounding box; the
    focal length is scaled to make it so), its roll scaled to peak at ``roll_degrees``.
    """
    from ..kernels.camera_motion import CameraMotion, camera_motion

    image = photo((height, width, 3), dtype) / dtype(255)
    motion = camera_motion(rng=seed, samples=samples)
    path = motion.path(1.0, (height, width), ((width - 1) / 2, (height - 1) / 2))
    focal_length = extent / np.ptp(path, axis=0).max()
    rotations = motion.rotations.copy()
    rotations[:, 2] *= np.radians(roll_degrees) / np.abs(rotations[:, 2]).max()
    motion = CameraMotion(rotations, motion.times)
    return image, motion.homographies(focal_length, (height, width))
