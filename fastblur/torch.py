"""PyTorch datasets of SBDD pairs made on the fly: ``(blurry, sharp)`` crops, no files.

``SBDDDataset`` is an ``IterableDataset`` (an endless or fixed-length stream, sharded
over DataLoader workers and ``torch.distributed`` ranks); ``SBDDMapDataset`` is
map-style (``len`` and indexing, for samplers such as ``DistributedSampler``). Both
yield ``(blurry, sharp)`` float32 tensors of shape ``(3, H, W)`` in [0, 1].
``SBDDLoader`` yields whole batches ``(B, 3, H, W)`` formed on the GPU while DataLoader
workers draw the next batches' crops, masks and kernels on the CPU: the fastest way to
feed a GPU training loop. All three take ``(images=None, length=None, *, ...)``.

Pair ``i`` of epoch ``e`` is drawn from ``SeedSequence([seed, e, i])``: the same seed and
epoch give the same pairs in the same order whatever ``num_workers`` is (for
``SBDDDataset``, tell it the DataLoader's ``batch_size``). Call ``set_epoch(e)`` between
epochs for fresh pairs (as with ``DistributedSampler``); the epoch is kept in shared
memory, so it reaches ``persistent_workers`` too. Pairs formed in batches (on CUDA, and
by ``SBDDLoader``) are the per-pair ones but for the noise realisation and, with noise
on, the blurry image's saturation-boost factor (see :mod:`fastblur.sbdd.batch`).

Ranks: the pairs of an epoch are cut into blocks of ``batch_size`` (block ``b`` holds
pairs ``bB .. bB + B - 1``); rank ``r`` of ``R`` takes blocks ``r, r + R, r + 2R, ...``
and its DataLoader worker ``w`` of ``W`` the ``w``-th of every ``W`` of those. ``length``
is the global number of pairs; together the ranks make exactly the one-process stream.

Requires PyTorch (``pip install 'fastblur[torch]'``).
"""
import logging
import numbers
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from ._array_module import on_cuda_stream
from . import _torch_autograd
from ._torch_autograd import *  # noqa: F401,F403  (differentiable primitives, issue 14)
from ._validation import check_count
from .sbdd.batch import RecipeBatch, check_device
from .sbdd.config import DatasetConfig
from .sbdd.crops import CropSampler
from .sbdd.dataset import read_image

__all__ = sorted(["SBDDDataset", "SBDDLoader", "SBDDMapDataset", *_torch_autograd.__all__])

logger = logging.getLogger("fastblur")


# -- arguments ---------------------------------------------------------------------------
def _check_images(images, owner):
    """``images`` as a folder path or None; an integer is the old ``(length, images)`` order."""
    if images is None or isinstance(images, (str, os.PathLike)):
        return None if images is None else os.fspath(images)
    if isinstance(images, numbers.Integral) and not isinstance(images, bool):
        raise TypeError(
            f"{owner} takes (images=None, length=None, *, ...): the integer {images!r} came as images. "
            f"Pass the length by keyword: {owner}(length={images!r}) or {owner}(images, length={images!r})")
    raise TypeError(f"images must be a folder path (str or os.PathLike) or None, got {type(images).__name__}")


def _check_length(length):
    """The global pairs per epoch: a positive int, or None for an endless stream."""
    return None if length is None else check_count(length, "length", low=1)


def _ranks(rank, world_size):
    """``(rank, world_size)``: the explicit ones, else torch.distributed's where it is
    initialised, else ``(0, 1)``."""
    if rank is None and world_size is None:
        distributed = torch.distributed
        if distributed.is_available() and distributed.is_initialized():
            return distributed.get_rank(), distributed.get_world_size()
        return 0, 1
    if rank is None or world_size is None:
        raise TypeError("give rank and world_size together, or neither (to read them from torch.distributed)")
    world_size = check_count(world_size, "world_size", low=1)
    rank = check_count(rank, "rank", low=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size = {world_size}, got {rank}")
    return rank, world_size


def _choose_device(device):
    """``device``, with ``"auto"`` resolved: CUDA where PyTorch sees a device and CuPy can
    run, else the CPU; the choice and its reason are logged."""
    if device != "auto":
        return check_device(device)
    from .backends import get_backend

    if not torch.cuda.is_available():
        device, why = "cpu", "PyTorch sees no CUDA device"
    else:
        try:
            get_backend("cupy")
        except ValueError as error:
            device, why = "cpu", f"PyTorch sees a CUDA device but CuPy cannot run ({error})"
        else:
            device, why = "cuda", "PyTorch and CuPy both see a CUDA device"
    logger.info("SBDDLoader(device='auto'): pairs are formed on %r: %s", device, why)
    return device


# -- sharp images ------------------------------------------------------------------------
def _image_size(path):
    """``(height, width)`` of an image file from its header (PIL decodes lazily); where PIL
    cannot read the file, the decoder the pairs use decides (``ValueError`` if it cannot)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        return height, width
    except Exception:  # not a format PIL knows, or not an image at all
        return read_image(path).shape[:2]


def _skip_small_images(sampler, stacklevel):
    """Read every sharp image's header now, in the main process, so that problems show when
    the dataset is made: one warning a skipped file (a log line for the embedded
    photographs), a ValueError if no image is large enough."""
    window, sources = sampler.window, sampler.sources
    need = (f"{window}×{window} pixels (crop_size + kernel_size - 1 = "
            f"{sampler.crop_size} + {sampler.config.kernel_size} - 1)")
    sizes, skipped = {}, {}
    for index, source in enumerate(sources):
        try:
            sizes[index] = _image_size(source.path)
        except ValueError as error:
            skipped[index] = f"skipping sharp image {source.label!r}: {error}"
    for index, (height, width) in sizes.items():
        if min(height, width) < window:
            skipped[index] = (f"skipping sharp image {sources[index].label!r}: it is {width}×{height} pixels "
                              f"and a crop reads a window of {need}")
    if len(skipped) == len(sources):
        if not sizes:
            raise ValueError(f"none of the {len(sources)} sharp images can be read: {next(iter(skipped.values()))}")
        def described(index):
            return f"{sources[index].label!r} ({sizes[index][1]}×{sizes[index][0]})"

        smallest = min(sizes, key=lambda index: min(sizes[index]))
        largest = max(sizes, key=lambda index: min(sizes[index]))
        raise ValueError(
            f"no sharp image is large enough: a crop needs {need}; the smallest image is {described(smallest)}"
            + (f" and the largest {described(largest)}" if largest != smallest else "")
            + ". Lower crop_size or kernel_size, or use larger images")
    for message in skipped.values():
        if sampler.config.input is None:  # the embedded photographs: not the user's choice
            logger.info(message)
        else:
            warnings.warn(message, RuntimeWarning, stacklevel=stacklevel)
    sampler.exclude(skipped)  # the sampler redraws these, as it would on finding them itself


def _make_sampler(images, crop_size, quantize, device, backend, options, stacklevel):
    if device.startswith("cuda"):
        from .backends import get_backend

        get_backend("cupy")  # pairs are formed with CuPy: say now why it cannot be
        if backend == "auto":
            backend = "cupy"
    config = DatasetConfig(input=images, backend=backend, progress=False, **options)
    sampler = CropSampler(config, crop_size=crop_size, quantize=quantize)
    _skip_small_images(sampler, stacklevel + 1)
    return sampler


# -- epochs and shares -------------------------------------------------------------------
class _SharedEpoch:
    """The epoch (and a warned-once flag) in shared memory: DataLoader workers, persistent
    ones included, read what the main process set last when they start an epoch."""

    def __init__(self):
        self._values = torch.zeros(2, dtype=torch.int64).share_memory_()

    @property
    def epoch(self):
        return int(self._values[0])

    @epoch.setter
    def epoch(self, epoch):
        self._values[0] = check_count(epoch, "epoch", low=0)

    def first_warning(self):
        """True the first time it is asked, in any process."""
        warned = bool(self._values[1])
        self._values[1] = 1
        return not warned


@dataclass(frozen=True)
class _Share:
    """The blocks of one rank. Block ``b`` holds pairs ``bB .. min(bB + B, length) - 1``;
    rank ``r`` of ``R`` takes blocks ``r, r + R, ...`` (so shares differ by one block at
    most) and its DataLoader worker ``w`` of ``W`` the ``w``-th of every ``W`` of those:
    DataLoader takes whole batches from its workers in turn, so a rank's batches come in
    block order. With ``drop_last`` every rank takes the same number of whole blocks and
    the last ``length mod (R B)`` pairs are left out."""

    size: int
    length: int = None
    rank: int = 0
    world_size: int = 1
    drop_last: bool = False

    @property
    def blocks(self):
        """The blocks of the epoch, all ranks together (None: endless)."""
        if self.length is None:
            return None
        if self.drop_last:
            return self.length // (self.size * self.world_size) * self.world_size
        return -(-self.length // self.size)

    def __len__(self):
        """The pairs of this rank's share."""
        if self.length is None:
            raise TypeError("an endless stream (length=None) has no len()")
        blocks = self.blocks
        mine = self.batches()
        pairs = mine * self.size
        if mine and (blocks - 1) % self.world_size == self.rank:  # the last block may be short
            pairs -= blocks * self.size - min(blocks * self.size, self.length)
        return pairs

    def batches(self):
        """The blocks of this rank's share (of a fixed length)."""
        return max(0, -(-(self.blocks - self.rank) // self.world_size))

    def ranges(self, worker=0, workers=1):
        """The ``range`` of pair indices of each block ``worker`` of ``workers`` makes."""
        block, step, blocks = self.rank + self.world_size * worker, self.world_size * workers, self.blocks
        while blocks is None or block < blocks:
            start = block * self.size
            stop = start + self.size if self.length is None else min(start + self.size, self.length)
            yield range(start, stop)
            block += step


def _worker():
    """``(worker id, number of workers)`` of the DataLoader process running this."""
    info = get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


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
        self.device = check_device(device)
        self.sampler = _make_sampler(images, crop_size, quantize, self.device, backend, options, stacklevel=4)
        self._shared = _SharedEpoch()

    @property
    def epoch(self):
        """The epoch whose pairs are made (shared with the DataLoader's workers)."""
        return self._shared.epoch

    @epoch.setter
    def epoch(self, epoch):
        self._shared.epoch = epoch

    def set_epoch(self, epoch):
        """Use the pairs of ``epoch`` (an int >= 0) from now on, in this process and in the
        DataLoader's workers, persistent ones included (from their next epoch on)."""
        self.epoch = epoch

    def pair(self, index, epoch=None):
        """``(blurry, sharp)`` tensors ``(3, H, W)`` of pair ``index`` of ``epoch`` (default:
        the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if self.device.startswith("cuda"):
            return tuple(t[0] for t in self.pairs([index], epoch))
        return _as_tensors(self.sampler.sample(index, epoch), self.device)

    def pairs(self, indices, epoch=None):
        """``(blurry, sharp)`` tensors ``(len(indices), 3, H, W)`` of ``epoch`` (default: the
        current one), formed in one batch on ``device`` (see :func:`fastblur.sbdd.form_batch`)."""
        epoch = self.epoch if epoch is None else epoch
        return _form_on(self.device, self.sampler.form, self.sampler.recipes(indices, epoch))


class SBDDDataset(_PairsMixin, IterableDataset):
    """A stream of SBDD crop pairs for ``torch.utils.data.DataLoader``.

    Parameters
    ----------
    images : str or os.PathLike, optional
        Folder of sharp images (or a GoPro tree); ``None``: the embedded photographs.
        Every image's header is read when the dataset is made: images smaller than the
        window a crop reads (``crop_size + kernel_size - 1``) or unreadable are skipped
        with a warning each, and a ``ValueError`` names the smallest if none is large
        enough. Grey images are used as RGB (the grey value in all three channels), the
        alpha channel of RGBA images is dropped, 16-bit images keep their top 8 bits.
    length : int, optional
        Pairs per epoch, all ranks together; ``None`` streams forever.
    crop_size : int, optional
        Side of the crops (256).
    quantize : bool, optional
        8-bit pairs as ``fastblur-gen`` writes them (default) or float precision.
    device : str, optional
        ``"cpu"`` (default) or ``"cuda[:N]"``: where the tensors are returned. With CUDA
        each block of ``batch_size`` pairs is formed in one batch on the GPU (use
        ``num_workers=0``; :class:`SBDDLoader` also draws the crops in workers).
    backend : str, optional
    batch_size : int, optional
        The DataLoader's ``batch_size``: with it, batches hold the same pairs in the same
        order for any ``num_workers``, and ``len(DataLoader)`` counts them right. Without
        it (blocks of one pair), DataLoader workers give the same pairs in another order
        unless the DataLoader's ``batch_size`` is None (a warning says so once; pass
        ``batch_size=1`` to silence it).
    drop_last : bool, optional
        Leave out the last pairs so that every rank makes the same number of whole
        batches (``length // (world_size * batch_size)`` each), as DistributedDataParallel
        needs. Default False: every pair is made; ranks differ by one batch at most.
    rank, world_size : int, optional
        This process's share of the pairs; default: torch.distributed's rank and world
        size if it is initialised when the dataset is made, else 0 and 1
        (``rank=0, world_size=1`` gives every rank the whole stream, for validation).
    **options
        Any :class:`fastblur.sbdd.DatasetConfig` field: ``masks``, ``masks_path``,
        ``kernels``, ``kernel_size``, ``augment_illumination``, ``gaussian_noise``,
        ``noise_std``, ``seed``, ...

    Notes
    -----
    ``len(dataset)`` is the number of pairs this rank makes in an epoch (``length`` with
    one process), so ``len(DataLoader(dataset, batch_size=B))`` is its number of batches.

    Examples
    --------
    A training loop (its loop is not run as a doctest: it starts workers):

    >>> from torch.utils.data import DataLoader
    >>> dataset = SBDDDataset(length=1000, seed=0, batch_size=8)
    >>> len(dataset), len(DataLoader(dataset, batch_size=8))
    (1000, 125)
    >>> loader = DataLoader(dataset, batch_size=8, num_workers=2, persistent_workers=True)
    >>> for epoch in range(3):  # doctest: +SKIP
    ...     dataset.set_epoch(epoch)
    ...     for blurry, sharp in loader: ...       # (8, 3, 256, 256) each
    """

    def __init__(self, images=None, length=None, *, crop_size=256, quantize=True, device="cpu",
                 backend="auto", batch_size=None, drop_last=False, rank=None, world_size=None, **options):
        images = _check_images(images, "SBDDDataset")
        self.length = _check_length(length)
        self.batch_size = 1 if batch_size is None else check_count(batch_size, "batch_size", low=1)
        self._unbatched = batch_size is None
        self.rank, self.world_size = _ranks(rank, world_size)
        self.drop_last = bool(drop_last)
        self._share = _Share(self.batch_size, self.length, self.rank, self.world_size, self.drop_last)
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __len__(self):
        if self.length is None:
            raise TypeError("an endless SBDDDataset (length=None) has no len()")
        return len(self._share)

    def __iter__(self):
        worker, workers = _worker()
        on_gpu = self.device.startswith("cuda")
        if on_gpu and get_worker_info() is not None:
            raise ValueError("SBDDDataset(device='cuda') forms pairs on the GPU: use num_workers=0 "
                             "in its DataLoader, or SBDDLoader to draw crops in CPU workers")
        if self._unbatched and workers > 1 and worker == 0 and self._shared.first_warning():
            warnings.warn(f"SBDDDataset without batch_size is read by {workers} DataLoader workers: with "
                          "DataLoader(batch_size=B) the pairs come in another order than with one process; "
                          "give SBDDDataset(batch_size=B) too (or batch_size=1 with DataLoader(batch_size=None))",
                          UserWarning, stacklevel=2)
        epoch = self.epoch
        for indices in self._share.ranges(worker, workers):
            if on_gpu:
                blurry, sharp = self.pairs(indices, epoch)
                yield from zip(blurry, sharp)
            else:
                for index in indices:
                    yield self.pair(index, epoch)


class SBDDMapDataset(_PairsMixin, Dataset):
    """Map-style SBDD crop pairs: ``dataset[i]`` is pair ``i`` of the current epoch.

    Parameters are those of :class:`SBDDDataset` (``images`` and ``length`` first, the
    others keyword-only), with ``length`` required and no ``batch_size``, ``drop_last``
    or ranks: samplers (``DistributedSampler`` among them) choose the indices. The old
    order ``SBDDMapDataset(length, images)`` raises a TypeError saying so.

    Examples
    --------
    >>> dataset = SBDDMapDataset(length=100, crop_size=64, kernel_size=15, seed=0)
    >>> blurry, sharp = dataset[3]
    >>> tuple(blurry.shape), blurry.dtype
    ((3, 64, 64), torch.float32)
    """

    def __new__(cls, *args, **kwargs):
        if args and "images" in kwargs:  # the old SBDDMapDataset(length, images=...)
            _check_images(args[0], cls.__name__)
        return super().__new__(cls)

    def __init__(self, images=None, length=None, *, crop_size=256, quantize=True, device="cpu",
                 backend="auto", **options):
        images = _check_images(images, "SBDDMapDataset")
        if length is None:
            raise TypeError("SBDDMapDataset needs length=, the number of pairs an epoch")
        self.length = _check_length(length)
        self._init_pairs(images, crop_size, quantize, device, backend, options)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            raise TypeError(f"index must be an integer, got {index!r}")
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} pairs")
        return self.pair(index % self.length)


class _Batches(IterableDataset):
    """The batches of one rank's share of an epoch, sharded over DataLoader workers."""

    def __init__(self, sampler, share, shared):
        self.sampler, self.share, self.shared = sampler, share, shared

    def __iter__(self):
        epoch = self.shared.epoch
        for indices in self.share.ranges(*_worker()):
            yield self.make(indices, epoch)


class _RecipeBatches(_Batches):
    """The recipes of a batch, as a dict of CPU tensors (shared memory between DataLoader
    processes), and the batch's noise seed: formed afterwards on the device."""

    def make(self, indices, epoch):
        batch = self.sampler.recipes(indices, epoch)
        return {name: torch.from_numpy(array) for name, array in batch.arrays().items()}, batch.noise_seed


class _SampledBatches(_Batches):
    """A batch of pairs made one by one on the CPU (the fastest CPU path), as tensors."""

    def make(self, indices, epoch):
        pairs = [self.sampler.sample(index, epoch) for index in indices]
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
    Batch ``k`` of an epoch holds pairs ``k B .. k B + B - 1``, whatever ``num_workers``;
    with several ranks, rank ``r`` of ``R`` makes batches ``r, r + R, ...``.

    Parameters
    ----------
    images : str or os.PathLike, optional
        Folder of sharp images (or a GoPro tree); ``None``: the embedded photographs.
        Checked when the loader is made, as :class:`SBDDDataset` does.
    length : int, optional
        Pairs per epoch, all ranks together (the last batch may be smaller); ``None``
        streams forever.
    batch_size : int, optional
        Pairs per batch (64).
    num_workers : int, optional
        CPU processes drawing recipes, or making the pairs on a CPU (0: in the main
        process).
    crop_size : int, optional
    quantize : bool, optional
        As :class:`SBDDDataset`.
    device : str, optional
        ``"auto"`` (default): ``"cuda"`` where PyTorch sees a CUDA device and CuPy can
        run, else ``"cpu"`` (the choice is logged on the ``"fastblur"`` logger); or
        ``"cpu"``, ``"cuda[:N]"``.
    backend : str, optional
    prefetch_factor : int, optional
        Batches each worker draws ahead.
    persistent_workers : bool, optional
        Keep the workers from one epoch to the next (``set_epoch`` reaches them).
    drop_last, rank, world_size :
        As :class:`SBDDDataset`.
    **options
        Any :class:`fastblur.sbdd.DatasetConfig` field, as :class:`SBDDDataset`.

    Yields
    ------
    blurry, sharp : torch.Tensor, shape (B, 3, crop_size, crop_size), float32
        sRGB in [0, 1], on ``device``.

    Examples
    --------
    A training loop (its loop is not run as a doctest: on a GPU it needs CuPy and CUDA):

    >>> loader = SBDDLoader(length=64_000, batch_size=64, num_workers=8, seed=0)
    >>> len(loader)
    1000
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     loader.set_epoch(epoch)
    ...     for blurry, sharp in loader: ...
    """

    def __init__(self, images=None, length=None, *, batch_size=64, num_workers=0, crop_size=256,
                 quantize=True, device="auto", backend="auto", prefetch_factor=2, persistent_workers=False,
                 drop_last=False, rank=None, world_size=None, **options):
        images = _check_images(images, "SBDDLoader")
        self.length = _check_length(length)
        self.batch_size = check_count(batch_size, "batch_size", low=1)
        self.num_workers = check_count(num_workers, "num_workers", low=0)
        self.prefetch_factor = check_count(prefetch_factor, "prefetch_factor", low=1)
        self.persistent_workers = bool(persistent_workers)
        self.rank, self.world_size = _ranks(rank, world_size)
        self.drop_last = bool(drop_last)
        self.device = _choose_device(device)
        self.sampler = _make_sampler(images, crop_size, quantize, self.device, backend, options, stacklevel=3)
        self._shared = _SharedEpoch()
        share = _Share(self.batch_size, self.length, self.rank, self.world_size, self.drop_last)
        on_gpu = self.device.startswith("cuda")
        self._batches = (_RecipeBatches if on_gpu else _SampledBatches)(self.sampler, share, self._shared)
        self._loader = None

    @property
    def epoch(self):
        return self._shared.epoch

    def set_epoch(self, epoch):
        """Use the pairs of ``epoch`` (an int >= 0) from the next iteration on."""
        self._shared.epoch = epoch

    def __len__(self):
        """The batches this rank makes in an epoch."""
        if self.length is None:
            raise TypeError("an endless SBDDLoader (length=None) has no len()")
        return self._batches.share.batches()

    def _data_loader(self):
        on_gpu = self.device.startswith("cuda")
        persistent = self.persistent_workers and self.num_workers > 0
        if self._loader is not None and self._loader.num_workers == self.num_workers:
            return self._loader
        options = dict(num_workers=self.num_workers, pin_memory=on_gpu)
        if self.num_workers:
            options.update(prefetch_factor=self.prefetch_factor, persistent_workers=persistent)
        loader = DataLoader(self._batches, batch_size=None, **options)
        self._loader = loader if persistent else None
        return loader

    def __iter__(self):
        on_gpu = self.device.startswith("cuda")
        for batch in self._data_loader():
            yield _form_on(self.device, self.sampler.form, batch) if on_gpu else batch
