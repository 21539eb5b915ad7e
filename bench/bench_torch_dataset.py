"""SBDDDataset throughput: 256x256 crop pairs per second into a training loop.

CPU always; CUDA (blur on the GPU, issue 7 target >= 5000 pairs/s) where available.
Sharp images are decoded once and cached, so decoding is excluded as the target says.
"""
import pytest

torch = pytest.importorskip("torch")

from fastblur.torch import SBDDMapDataset  # noqa: E402


def _consume(dataset, count):
    for index in range(count):
        blurry, sharp = dataset[index]
    return blurry


@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_dataset_cpu(benchmark):
    dataset = SBDDMapDataset(10_000, seed=0)
    _consume(dataset, 8)  # warm the image and segmentation caches
    benchmark.pedantic(_consume, args=(dataset, 32), rounds=3)


@pytest.mark.benchmark(group="sbdd-dataset-256")
def bench_dataset_cuda(benchmark):
    import fastblur

    if fastblur.backend_info().get("cupy") != "available" or not torch.cuda.is_available():
        pytest.skip("needs CuPy and PyTorch with CUDA")
    dataset = SBDDMapDataset(10_000, seed=0, device="cuda")
    _consume(dataset, 8)
    benchmark.pedantic(lambda: (_consume(dataset, 32), torch.cuda.synchronize()), rounds=3)
