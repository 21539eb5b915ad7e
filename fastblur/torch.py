"""PyTorch datasets of SBDD pairs made on the fly: ``(blurry, sharp)`` crops, no files.

``SBDDDataset`` is an ``IterableDataset`` (an endless or fixed-length stream, sharded
over DataLoader workers); ``SBDDMapDataset`` is map-style (``len`` and indexing, for
samplers). Both yield ``(blurry, sharp)`` float32 tensors of shape ``(3, H, W)`` in
[0, 1]. ``SBDDLoader`` yields whole batches ``(B, 3, H, W)`` formed on the GPU while
DataLoader workers draw the next batches' crops, masks and kernels on the CPU: the
fastest way to feed a GPU training loop.

Pair ``i`` of epoch ``e`` is drawn from ``SeedSequence([seed, e, i])``: the same seed and
epoch give the same pairs in the same order whatever ``num_workers`` is (for
``SBDDDataset``, tell it the DataLoader's ``batch_size``). Call ``set_epoch(e)`` between
epochs for fresh pairs (as with ``DistributedSampler``). Pairs formed in batches (on
CUDA, and by ``SBDDLoader``) are the per-pair ones but for the noise realisation and, with
noise on, the blurry image's saturation-boost factor (see :mod:`fastblur.sbdd.batch`).

Requires PyTorch (``pip install 'fastblur[torch]'``).
"""
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from ._array_module import on_cuda_stream
from .sbdd.batch import RecipeBatch, check_device
from .sbdd.config import DatasetConfig
from .sbdd.crops import CropSampler

__all__ = ["SBDDDataset", "SBDDLoader", "SBDDMapDataset"]


def _make_sampler(images, crop_size, quantize, device, backend, options):
    if check_device(device).startswith("cuda"):
        from .backends import get_backend

        get_backend("cupy")  # pairs are formed with CuPy: say now why it cannot be
        if backend == "auto":
            backend = "cupy"
    config = DatasetConfig(input=images, backend=backend, progress=False, **options)
    return CropSampler(config, crop_size=crop_size, quantize=quantize)


def _check_length(length, name="length"):
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
        raise ValueError(f"{name} must be a positive integer, got {length!r}")
    return int(length)


def _check_epoch(epoch):
    if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return int(epoch)


def _channels_first(array):
    """A NumPy ``(..., H, W, C)`` array as a contiguous ``(..., C, H, W)`` CPU tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, -3)))


def _as_tensors(pair, device):
    return tuple(_channels_first(a).to(device) for a in pair)


def _torch_memory(index):
    """A CuPy allocator taking GPU memory from PyTorch's caching allocator, so that the
    two libraries share one cache in a training loop instead of each holding its own.

    The blocks belong to the stream current when they are taken; cuFFT plans cached by
    CuPy keep their work areas, so form batches on one stream (PyTorch's current one
    when iterating), as a training loop does."""
    import cupy

    def allocate(size):
        block = torch.empty(size, dtype=torch.uint8, device=torch.device("cuda", index))
        return cupy.cuda.MemoryPointer(cupy.cuda.UnownedMemory(block.data_ptr(), size, block, index), 0)

    return allocate


#: The large fields of a RecipeBatch, copied to the GPU from pinned memory by SBDDLoader.
_UPLOADED_FIELDS = ("windows", "kernels", "packed_masks")


def _form_on(device, form, batch):
    """``form(batch, device)`` as ``(B, C, H, W)`` tensors on ``device``.

    ``batch`` is a RecipeBatch, or ``(tensors, noise_seed)`` as ``_RecipeBatches`` yields
    it. On CUDA, CuPy runs on that device, on PyTorch's current stream there and in
    memory from PyTorch's allocator; pinned tensors of the large fields are copied to
    the device asynchronously on that stream, and results are handed over by DLPack.
    """
    if not device.startswith("cuda"):
        batch = _as_recipe_batch(batch, lambda tensor: tensor.numpy())
        return tuple(_channels_first(a) for a in form(batch, "cpu"))
    import cupy

    target = torch.device(device)
    index = target.index if target.index is not None else torch.cuda.current_device()
    target = torch.device("cuda", index)
    stream = torch.cuda.current_stream(index).cuda_stream
    with torch.cuda.device(index), on_cuda_stream(index, stream), cupy.cuda.using_allocator(_torch_memory(index)):
        batch = _as_recipe_batch(batch, lambda tensor: cupy.from_dlpack(tensor.to(target, non_blocking=True)))
        pair = form(batch, f"cuda:{index}")
        return tuple(_to_tensor(array.transpose(0, 3, 1, 2), target) for array in pair)


def _to_tensor(array, device):
    """A CuPy array copied into a tensor PyTorch allocated itself (so that the caller's
    ``record_stream`` and the allocator's stream tracking apply to it)."""
    import cupy

    tensor = torch.empty(array.shape, dtype=torch.float32, device=device)
    cupy.from_dlpack(tensor)[...] = array
    return tensor


def _as_recipe_batch(batch, upload):
    """``batch`` itself, or the RecipeBatch of ``(tensors, noise_seed)``: the large
    fields through ``upload``, the others as NumPy arrays."""
    if isinstance(batch, RecipeBatch):
        return batch
    tensors, noise_seed = batch
    fields = {name: upload(tensor) if name in _UPLOADED_FIELDS else tensor.numpy() for name, tensor in tensors.items()}
    return RecipeBatch(**fields, noise_seed=int(noise_seed))


class _PairsMixin:
    def _init_pairs(self, images, crop_size, quantize, device, backend, options):
        self.sampler = _make_sampler(images, crop_size, quantize, device, backend, options)
        self.device = device
        self.epoch = 0

    def set_epoch(self, epoch):
        """Use the pairs of ``epoch`` (an int >= 0) from now on."""
        self.epoch = _check_epoch(epoch)

    def pair(self, index):
        """``(blurry, sharp)`` tensors ``(3, H, W)`` of pair ``index`` in this epoch."""
        if self.device.startswith("cuda"):
            return tuple(t[0] for t in self.pairs([index]))
        return _as_tensors(self.sampler.sample(index, self.epoch), self.device)

    def pairs(self, indices):
        """``(blurry, sharp)`` tensors ``(len(indices), 3, H, W)``, formed in one batch on
        ``device`` (see :func:`fastblur.sbdd.form_batch`)."""
        return _form_on(self.device, self.sampler.form, self.sampler.recipes(indices, self.epoch))


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
        ``"cpu"`` or ``"cuda[:N]"``: where the tensors are returned. With CUDA each
        block of ``batch_size`` pairs is formed in one batch on the GPU (use
        ``num_workers=0``; :class:`SBDDLoader` also draws the crops in workers).
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
    A training loop (not run as a doctest: it spawns workers and makes 1000 pairs):

    >>> from torch.utils.data import DataLoader
    >>> loader = DataLoader(SBDDDataset(length=1000, seed=0, batch_size=8), batch_size=8, num_workers=2)  # doctest: +SKIP
    >>> for blurry, sharp in loader: ...       # doctest: +SKIP
    """

    def __init__(self, images=None, length=None, crop_size=256, quantize=True, device="cpu",
                 backend="auto", batch_size=1, **options):
        self.length = None if length is None else _check_length(length, "length (or None)")
        self.batch_size = _check_length(batch_size, "batch_size")
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        on_gpu = self.device.startswith("cuda")
        if on_gpu and info is not None:
            raise ValueError("SBDDDataset(device='cuda') forms pairs on the GPU: use num_workers=0 "
                             "in its DataLoader, or SBDDLoader to draw crops in CPU workers")
        for start, stop in _blocks(worker, workers, self.batch_size, self.length):
            if on_gpu:
                blurry, sharp = self.pairs(range(start, stop))
                yield from zip(blurry, sharp)
            else:
                for index in range(start, stop):
                    yield self.pair(index)


class SBDDMapDataset(_PairsMixin, Dataset):
    """Map-style SBDD crop pairs: ``dataset[i]`` is pair ``i`` of the current epoch.

    Parameters are those of :class:`SBDDDataset`, with ``length`` required.
    """

    def __init__(self, length, images=None, crop_size=256, quantize=True, device="cpu",
                 backend="auto", **options):
        self.length = _check_length(length)
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pairs")
        return self.pair(index % self.length)


def _blocks(worker, workers, size, length):
    """``(start, stop)`` of the blocks of ``size`` pairs that ``worker`` makes.

    DataLoader takes whole batches from its workers in turn, so worker ``w`` makes the
    ``w``-th of every ``workers`` consecutive blocks (all of them with one process).
    """
    start = worker * size
    while length is None or start < length:
        yield start, start + size if length is None else min(start + size, length)
        start += workers * size


class _Batches(IterableDataset):
    """Consecutive batches of an epoch, sharded over DataLoader workers by ``_blocks``."""

    def __init__(self, sampler, batch_size, length):
        self.sampler, self.batch_size, self.length = sampler, batch_size, length
        self.epoch = 0

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        for start, stop in _blocks(worker, workers, self.batch_size, self.length):
            yield self.make(range(start, stop))


class _RecipeBatches(_Batches):
    """The recipes of a batch, as a dict of CPU tensors (shared memory between DataLoader
    processes), and the batch's noise seed: formed afterwards on the device."""

    def make(self, indices):
        batch = self.sampler.recipes(indices, self.epoch)
        return {name: torch.from_numpy(array) for name, array in batch.arrays().items()}, batch.noise_seed


class _SampledBatches(_Batches):
    """A batch of pairs made one by one on the CPU (the fastest CPU path), as tensors."""

    def make(self, indices):
        pairs = [self.sampler.sample(index, self.epoch) for index in indices]
        return tuple(_channels_first(np.stack(images)) for images in zip(*pairs))


class SBDDLoader:
    """Batches of SBDD crop pairs for a training loop, formed on the GPU.

    On CUDA, DataLoader workers draw each batch's random choices on the CPU (windows,
    masks, kernels: :meth:`fastblur.sbdd.CropSampler.recipe`); the main process forms the
    whole batch on the GPU in one go (:func:`fastblur.sbdd.form_batch`: one
    ``smooth_masks_batch``, one ``blur_masked_batch``), on PyTorch's current stream (keep
    to one stream while iterating), in memory from PyTorch's caching allocator. On the
    CPU, the workers make the pairs one by one, as :class:`SBDDDataset` does (the same
    pairs; batches of padded pairs cost more on a CPU).
    Batch ``k`` of an epoch holds pairs ``k B .. k B + B - 1``, whatever ``num_workers``.

    Parameters
    ----------
    images : str, optional
        Folder of sharp images (or a GoPro tree); ``None``: the embedded photographs.
    batch_size : int, optional
        Pairs per batch (64).
    length : int, optional
        Pairs per epoch (the last batch may be smaller); ``None`` streams forever.
    num_workers : int, optional
        CPU processes drawing recipes, or making the pairs on a CPU (0: in the main
        process).
    crop_size : int, optional
    quantize : bool, optional
        As :class:`SBDDDataset`.
    device : str, optional
        ``"cuda[:N]"`` (default) or ``"cpu"``.
    backend : str, optional
    prefetch_factor : int, optional
        Batches each worker draws ahead.
    **options
        Any :class:`fastblur.sbdd.DatasetConfig` field, as :class:`SBDDDataset`.

    Yields
    ------
    blurry, sharp : torch.Tensor, shape (B, 3, crop_size, crop_size), float32
        sRGB in [0, 1], on ``device``.

    Examples
    --------
    A training loop on a GPU (not run as a doctest: it needs CuPy and a CUDA device):

    >>> loader = SBDDLoader(batch_size=64, length=64_000, num_workers=8, seed=0)  # doctest: +SKIP
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for blurry, sharp in loader: ...
    """

    def __init__(self, images=None, batch_size=64, length=None, num_workers=0, crop_size=256,
                 quantize=True, device="cuda", backend="auto", prefetch_factor=2, **options):
        self.batch_size = _check_length(batch_size, "batch_size")
        self.length = None if length is None else _check_length(length, "length (or None)")
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"num_workers must be a non-negative integer, got {num_workers!r}")
        self.num_workers = int(num_workers)
        self.prefetch_factor = _check_length(prefetch_factor, "prefetch_factor")
        self.device = check_device(device)
        self.sampler = _make_sampler(images, crop_size, quantize, device, backend, options)
        on_gpu = self.device.startswith("cuda")
        self._batches = (_RecipeBatches if on_gpu else _SampledBatches)(self.sampler, self.batch_size, self.length)

    @property
    def epoch(self):
        return self._batches.epoch

    def set_epoch(self, epoch):
        """Use the pairs of ``epoch`` (an int >= 0) from the next iteration on."""
        self._batches.epoch = _check_epoch(epoch)

    def __len__(self):
        if self.length is None:
            raise TypeError("an endless SBDDLoader (length=None) has no len()")
        return -(-self.length // self.batch_size)

    def __iter__(self):
        on_gpu = self.device.startswith("cuda")
        options = dict(num_workers=self.num_workers, pin_memory=on_gpu)
        if self.num_workers:
            options["prefetch_factor"] = self.prefetch_factor
        for batch in DataLoader(self._batches, batch_size=None, **options):
            yield _form_on(self.device, self.sampler.form, batch) if on_gpu else batch
