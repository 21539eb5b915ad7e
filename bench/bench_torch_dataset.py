"""On-the-fly SBDD pairs: 256x256 crop pairs per second into a training loop.

CPU always (``SBDDMapDataset``, ``SBDDLoader(device="cpu")``, ``SBDDDataset`` through a
DataLoader with 0 and 2 persistent workers, one rank's share of two, and the batched
formation alone); CUDA where available (issue 7 target >= 5000 pairs/s): ``SBDDLoader`` with CPU
workers drawing recipes and whole batches formed on the GPU, and the GPU formation alone
(per pair: divide the time by ``extra_info["pairs"]``).
Sharp images are decoded once and cached, so decoding is excluded as the target says.
Pairs/s = pairs per round / mean round time (``extra_info["pairs"]``).
"""
import os

import pytest

torch = pytest.importorskip("torch")

import fastblur  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from fastblur.torch import SBDDDataset, SBDDLoader, SBDDMapDataset  # noqa: E402

BATCH = 64


def _gpu_status():
    status = fastblur.backend_info().get("cupy")
    if status != "available":
        return f"cupy backend unavailable: {status}"
    return None if torch.cuda.is_available() else "PyTorch has no CUDA device"


needs_gpu = pytest.mark.skipif(_gpu_status() is not None, reason=str(_gpu_status()))


def _consume(dataset, count):
    for index in range(count):
        blurry, sharp = dataset[index]
    return blurry


def _consume_batches(iterator, count):
    for _ in range(count):
        blurry, sharp = next(iterator)
    if blurry.is_cuda:
        torch.cuda.synchronize()
    return blurry


@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_dataset_cpu(benchmark):
    dataset = SBDDMapDataset(length=10_000, seed=0)
    _consume(dataset, 16)  # warm the image and segmentation caches
    benchmark.extra_info["pairs"] = 32
    benchmark.pedantic(_consume, args=(dataset, 32), rounds=3)


@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_loader_cpu(benchmark):
    stream = iter(SBDDLoader(batch_size=16, device="cpu", seed=0))
    _consume_batches(stream, 2)
    benchmark.extra_info["pairs"] = 32
    benchmark.pedantic(_consume_batches, args=(stream, 2), rounds=3)


@pytest.fixture
def torch_threads():
    """PyTorch's own threads (the DataLoader's collation) capped as fastblur's are; DataLoader
    workers run on one thread each anyway."""
    threads = torch.get_num_threads()
    torch.set_num_threads(int(os.environ["FASTBLUR_NUM_THREADS"]))
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_dataset_workers(benchmark, workers, torch_threads):
    """SBDDDataset through a DataLoader, as a training loop reads it (with 2 workers, the
    machine's cores are shared by the workers and the main process)."""
    dataset = SBDDDataset(batch_size=16, seed=0)
    loader = DataLoader(dataset, batch_size=16, num_workers=workers, persistent_workers=workers > 0)
    stream = iter(loader)
    try:
        _consume_batches(stream, 4 * max(1, workers))  # start the workers, warm their caches
        benchmark.extra_info.update(pairs=32, workers=workers)
        benchmark.pedantic(_consume_batches, args=(stream, 2), rounds=3)
    finally:
        del stream, loader  # stop the workers


@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_dataset_rank_share(benchmark, torch_threads):
    """One rank's share of two (rank=0, world_size=2), in one process: the per-rank
    throughput, the peer of bench_dataset_workers[0] (one process, all the pairs)."""
    stream = iter(DataLoader(SBDDDataset(batch_size=16, rank=0, world_size=2, seed=0), batch_size=16))
    _consume_batches(stream, 4)
    benchmark.extra_info.update(pairs=32, rank=0, world_size=2)
    benchmark.pedantic(_consume_batches, args=(stream, 2), rounds=3)


def _formation(device, batch_size):
    """A batch of recipes drawn beforehand, and a function forming it on ``device``."""
    loader = SBDDLoader(batch_size=batch_size, device=device, seed=0)
    batch = loader.sampler.recipes(range(batch_size))
    loader.sampler.form(batch, device)
    return lambda: loader.sampler.form(batch, device)


@pytest.mark.benchmark(group="sbdd-formation-256")
def bench_formation_cpu(benchmark):
    """The formation alone on the CPU (NumPy, one batch), the peer of bench_formation_cuda."""
    form = _formation("cpu", 16)
    benchmark.extra_info["pairs"] = 16
    benchmark.pedantic(form, rounds=3, warmup_rounds=1)


@needs_gpu
@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_loader_cuda(benchmark):
    workers = max(1, min(15, (os.cpu_count() or 2) - 1))
    stream = iter(SBDDLoader(batch_size=BATCH, device="cuda", num_workers=workers, prefetch_factor=4, seed=0))
    try:
        _consume_batches(stream, 2 * workers)  # start the workers, warm their caches
        benchmark.extra_info.update(pairs=8 * BATCH, workers=workers)
        benchmark.pedantic(_consume_batches, args=(stream, 8), rounds=3)
    finally:
        stream.close()  # stop the workers: left running, they would load the CPU under later benchmarks


@needs_gpu
@pytest.mark.benchmark(group="sbdd-formation-256")
def bench_formation_cuda(benchmark):
    """The GPU's share alone: one batch of recipes drawn beforehand, formed on the GPU."""
    import cupy

    form = _formation("cuda", BATCH)

    def synchronized():
        form()
        cupy.cuda.Device().synchronize()

    benchmark.extra_info["pairs"] = BATCH
    benchmark.pedantic(synchronized, rounds=10, warmup_rounds=1)
