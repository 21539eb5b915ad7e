"""Where a pair's kernels come from: kernel files (:class:`KernelFiles`), or PSFs generated
on the fly (:class:`GeneratedKernels`).

A source's ``draw(count, rng)`` returns ``count`` kernels, all ``(size, size)``, **as
stored for the reference generator** (applied by correlation, as
:func:`fastblur.sbdd.synthesize_pair` takes them), plus ids for the manifest.
"""
import os

import numpy as np

from ..kernels import KernelList, camera_shake, load_list

__all__ = ["GeneratedKernels", "KernelFiles", "kernel_source", "open_kernel_list"]


def open_kernel_list(list_file, root=None):
    """The kernel files of an SBDD list file, as a :class:`fastblur.kernels.KernelList`.

    Entries are resolved against ``root`` (:func:`fastblur.kernels.load_list`). If they
    are not found there, the reference generator's rule is tried: ``root`` is the folder
    holding the files and each entry's first component is dropped (the reference joins
    ``--kernels_dir .../train`` with ``kernel0000.mat`` for ``train/kernel0000.mat``).
    """
    try:
        return load_list(list_file, root)
    except FileNotFoundError:
        if root is None or not os.path.isfile(os.fspath(list_file)):
            raise
        with open(list_file, encoding="utf-8") as stream:
            entries = [line.strip() for line in stream]
        paths = [os.path.join(os.fspath(root), os.path.basename(e)) for e in entries if e and not e.startswith("#")]
        if not paths or not all(os.path.isfile(p) for p in paths):
            raise
        return KernelList(paths)


class KernelFiles:
    """Kernels drawn from files, uniformly with replacement (``rng.integers(len(files))``)
    as the reference does; a kernel smaller than ``size`` is zero-padded around its centre
    tap ``k // 2``.

    Parameters
    ----------
    source : str, os.PathLike or sequence of paths
        An SBDD list file (``.txt``, ``train/kernel0000.mat`` lines,
        :func:`fastblur.kernels.load_list`), a folder (every ``.mat``/``.npy``/``.png``
        inside, sorted), or explicit paths.
    size : int
        Side of the returned kernels.
    root : str or os.PathLike, optional
        Root of a list file's entries.
    """

    def __init__(self, source, size=65, root=None):
        self.size = int(size)
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        if path is None:
            self.files = KernelList(list(source))
        elif os.path.isdir(path):
            names = sorted(n for n in os.listdir(path) if n.lower().endswith((".mat", ".npy", ".png")))
            if not names:
                raise ValueError(f"kernels: no .mat/.npy/.png kernel files in folder {path!r}")
            self.files = KernelList([os.path.join(path, n) for n in names])
        elif os.path.isfile(path):
            self.files = open_kernel_list(path, root)
        else:
            raise FileNotFoundError(f"kernels: no such list file or folder {path!r}")
        if len(self.files) == 0:
            raise ValueError("kernels: the kernel source is empty")

    def __len__(self):
        return len(self.files)

    def draw(self, count, rng):
        """``count`` kernels ``(count, size, size)`` float32 and their file paths."""
        indices = [int(rng.integers(len(self.files))) for _ in range(count)]
        kernels = np.zeros((count, self.size, self.size), np.float32)
        for out, index in zip(kernels, indices):
            kernel = self.files[index]
            kh, kw = kernel.shape
            if kh > self.size or kw > self.size:
                raise ValueError(f"kernel file {self.files.paths[index]!r}: kernel of shape {kernel.shape} "
                                 f"is larger than kernel_size={self.size}")
            top, left = self.size // 2 - kh // 2, self.size // 2 - kw // 2
            out[top : top + kh, left : left + kw] = kernel
        return kernels, [self.files.paths[i] for i in indices]


class GeneratedKernels:
    """Camera-shake PSFs generated on the fly (:func:`fastblur.kernels.camera_shake`).

    A PSF is meant for true convolution, so it is returned rotated by 180 degrees: the pair
    is blurred by the PSF itself. Each kernel uses its own generator, seeded by
    ``rng.integers(2**63, size=count)``, so a kernel does not depend on how many draws the
    previous one took.
    """

    def __init__(self, size=65, exposure=0.5, focal_length=1000.0):
        self.size = int(size)
        self.exposure = float(exposure)
        self.focal_length = float(focal_length)

    def draw(self, count, rng):
        """``count`` kernels ``(count, size, size)`` float32 and their ids."""
        kernels = np.empty((count, self.size, self.size), np.float32)
        for out, seed in zip(kernels, rng.integers(2**63, size=count)):
            psf = camera_shake(self.size, exposure=self.exposure, focal_length=self.focal_length,
                               rng=np.random.default_rng(int(seed)))
            out[...] = psf[::-1, ::-1]
        return kernels, ["camera_shake"] * count


def kernel_source(spec="generated", size=65, root=None, exposure=0.5, focal_length=1000.0):
    """A kernel source from a spec: ``"generated"`` or a list file / folder path."""
    if spec in (None, "generated", "camera_shake"):
        return GeneratedKernels(size, exposure, focal_length)
    return KernelFiles(spec, size, root)
