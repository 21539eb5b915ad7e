"""PyTorch datasets of SBDD pairs made on the fly: ``(blurry, sharp)`` crops, no files.

``SBDDDataset`` is an ``IterableDataset`` (an endless or fixed-length stream, sharded
over DataLoader workers); ``SBDDMapDataset`` is map-style (``len`` and indexing, for
samplers). Both yield ``(blurry, sharp)`` float32 tensors of shape ``(3, H, W)`` in
[0, 1]. Pair ``i`` of epoch ``e`` is drawn from ``SeedSequence([seed, e, i])``: the
same seed and epoch give the same pairs in the same order whatever ``num_workers`` is
(for ``SBDDDataset``, tell it the DataLoader's ``batch_size``).
Call ``set_epoch(e)`` between epochs for fresh pairs (as with ``DistributedSampler``).

Requires PyTorch (``pip install 'fastblur[torch]'``).
"""
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .sbdd.config import DatasetConfig
from .sbdd.crops import CropSampler

__all__ = ["SBDDDataset", "SBDDMapDataset"]


def _make_sampler(images, crop_size, quantize, device, backend, options):
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if backend == "auto" and str(device).startswith("cuda"):
        backend = "cupy"
    config = DatasetConfig(input=images, backend=backend, progress=False, **options)
    return CropSampler(config, crop_size=crop_size, quantize=quantize)


def _as_tensors(pair, device):
    return tuple(torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(device) for a in pair)


class _PairsMixin:
    def _init_pairs(self, images, crop_size, quantize, device, backend, options):
        self.sampler = _make_sampler(images, crop_size, quantize, device, backend, options)
        self.device = device
        self.epoch = 0

    def set_epoch(self, epoch):
        """Use the pairs of ``epoch`` (an int >= 0) from now on."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        self.epoch = int(epoch)

    def pair(self, index):
        """``(blurry, sharp)`` tensors ``(3, H, W)`` of pair ``index`` in this epoch."""
        return _as_tensors(self.sampler.sample(index, self.epoch), self.device)


class SBDDDataset(_PairsMixin, IterableDataset):
    """A stream of SBDD crop pairs for ``torch.utils.data.DataLoader``.

    Parameters
    ----------
    images : str, optional
        Folder of sharp images (or a GoPro tree); ``None``: the embedded photographs.
    length : int, optional
        Pairs per epoch; ``None`` streams forever.
    crop_size : int, optional
        Side of the crops (256).
    quantize : bool, optional
        8-bit pairs as ``fastblur-gen`` writes them (default) or float precision.
    device : str, optional
        ``"cpu"`` or ``"cuda"``: where the tensors are returned; with CUDA the blur runs
        on the GPU (``backend="cupy"``). Use ``num_workers=0`` with CUDA.
    backend : str, optional
    batch_size : int, optional
        The DataLoader's ``batch_size``: with it, batches hold the same pairs in the same
        order for any ``num_workers`` (without it, the same pairs in another order).
    **options
        Any :class:`fastblur.sbdd.DatasetConfig` field: ``masks``, ``masks_path``,
        ``kernels``, ``kernel_size``, ``augment_illumination``, ``gaussian_noise``,
        ``noise_std``, ``seed``, ...

    Examples
    --------
    >>> loader = DataLoader(SBDDDataset(length=1000, seed=0, batch_size=8), batch_size=8, num_workers=2)
    >>> for blurry, sharp in loader: ...       # (8, 3, 256, 256) each
    """

    def __init__(self, images=None, length=None, crop_size=256, quantize=True, device="cpu",
                 backend="auto", batch_size=1, **options):
        if length is not None and (isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1):
            raise ValueError(f"length must be a positive integer or None, got {length!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.length = None if length is None else int(length)
        self.batch_size = int(batch_size)
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __iter__(self):
        # DataLoader takes whole batches from its workers in turn, so worker w makes the
        # w-th of every num_workers consecutive blocks of batch_size pairs.
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        block = self.batch_size
        start = worker * block
        while self.length is None or start < self.length:
            stop = start + block if self.length is None else min(start + block, self.length)
            for index in range(start, stop):
                yield self.pair(index)
            start += workers * block


class SBDDMapDataset(_PairsMixin, Dataset):
    """Map-style SBDD crop pairs: ``dataset[i]`` is pair ``i`` of the current epoch.

    Parameters are those of :class:`SBDDDataset`, with ``length`` required.
    """

    def __init__(self, length, images=None, crop_size=256, quantize=True, device="cpu",
                 backend="auto", **options):
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.length = int(length)
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pairs")
        return self.pair(index % self.length)
