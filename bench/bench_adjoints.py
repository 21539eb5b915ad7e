"""720p, six 65x65 motion PSFs, SBDD-like weights: adjoints and gradients against their
forwards and against deepinv's SpaceVaryingBlur, one thread.

Targets (issue 14): the adjoint <= 1.5x the forward; forward + adjoint >= 100x faster than
deepinv's SpaceVaryingBlur on the same case (deepinv optional; the pytest-benchmark cases
time it on a 360x640 crop with two rounds, fastblur on the same crop in the same group;
``--deepinv`` below times both at 720p); the backward of ``fastblur.torch.blur_masked``
<= 3x its forward (the forward with the same leaves requiring grad: with the weights, it
computes and keeps the kernels' blurs).

``python bench/bench_adjoints.py [--deepinv]`` prints the backward/forward ratios (and
forward + adjoint against deepinv at 720p, about a minute).
``pytest bench/bench_adjoints.py --benchmark-only`` (``--benchmark-timer time.process_time``
gives CPU times, steadier on a shared machine).
"""
import numpy as np
import pytest

import fastblur
from fastblur.cli.bench_cases import sbdd_case


@pytest.fixture(scope="module")
def case():
    image, kernels, weights = sbdd_case(720, 1280)
    return image, kernels, weights, fastblur.blur_masked(image, kernels, weights)


@pytest.mark.benchmark(group="adjoint-sbdd-720p-6x65")
def bench_blur_masked_forward(benchmark, case):
    image, kernels, weights, _ = case
    benchmark(fastblur.blur_masked, image, kernels, weights)


@pytest.mark.benchmark(group="adjoint-sbdd-720p-6x65")
def bench_blur_masked_adjoint(benchmark, case):
    _, kernels, weights, blurry = case
    benchmark(fastblur.blur_masked_adjoint, blurry, kernels, weights)


@pytest.mark.benchmark(group="adjoint-uniform-720p-6x65")
def bench_blur_product_forward(benchmark, case):
    image, kernels, _, _ = case
    weights = np.full((6,) + image.shape[:2], 1 / 6, np.float32)
    benchmark(fastblur.blur_product, image, kernels, weights)


@pytest.mark.benchmark(group="adjoint-uniform-720p-6x65")
def bench_blur_product_adjoint(benchmark, case):
    image, kernels, _, _ = case
    weights = np.full((6,) + image.shape[:2], 1 / 6, np.float32)
    blurry = fastblur.blur_product(image, kernels, weights)
    benchmark(fastblur.blur_product_adjoint, blurry, kernels, weights)


@pytest.fixture(scope="module")
def crop():
    """The same case at 360x640 (deepinv takes seconds a call at 720p)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    image, kernels, weights = sbdd_case(360, 640)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    return x, torch.from_numpy(kernels), torch.from_numpy(weights)


@pytest.mark.benchmark(group="forward+adjoint-sbdd-360p-6x65")
def bench_fastblur_forward_adjoint(benchmark, crop):
    import fastblur.torch as ft

    x, kernels, weights = crop
    physics = ft.SpaceVaryingBlur(kernels, weights, mode="valid")
    benchmark(lambda: physics.A_adjoint(physics.A(x)))


@pytest.mark.benchmark(group="forward+adjoint-sbdd-360p-6x65")
def bench_deepinv_forward_adjoint(benchmark, crop):
    deepinv = pytest.importorskip("deepinv")
    x, kernels, weights = crop
    physics = deepinv.physics.SpaceVaryingBlur(
        filters=kernels[None, None].expand(1, 3, -1, -1, -1),
        multipliers=weights[None, None].expand(1, 3, -1, -1, -1),
        padding="valid", mask_first=False)
    benchmark.pedantic(lambda: physics.A_adjoint(physics.A(x)), rounds=2, iterations=1)


@pytest.fixture(scope="module")
def tensors(case):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    image, kernels, weights, _ = case
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    return x, torch.from_numpy(kernels), torch.from_numpy(weights)


WRT = ["image", "image+weights", "image+weights+kernels", "image+kernels"]


def _leaves(tensors, wrt):
    x, kernels, weights = (t.detach().clone() for t in tensors)
    leaves = {"image": x, "weights": weights, "kernels": kernels}
    for name in wrt.split("+"):
        leaves[name].requires_grad_()
    return x, kernels, weights


@pytest.mark.benchmark(group="torch-blur_masked-720p-6x65")
@pytest.mark.parametrize("wrt", WRT)
def bench_torch_forward(benchmark, tensors, wrt):
    """The forward with these leaves requiring grad (weights: it keeps the kernels' blurs)."""
    import fastblur.torch as ft

    x, kernels, weights = _leaves(tensors, wrt)
    benchmark.pedantic(ft.blur_masked, (x, kernels, weights), rounds=5, iterations=1)


@pytest.mark.benchmark(group="torch-blur_masked-720p-6x65")
@pytest.mark.parametrize("wrt", WRT)
def bench_torch_backward(benchmark, tensors, wrt):
    """The backward pass alone (the forward is taken outside the timing)."""
    import fastblur.torch as ft

    x, kernels, weights = _leaves(tensors, wrt)

    def setup():
        out = ft.blur_masked(x, kernels, weights)
        return (out, out.detach()), {}  # backward of <out, out>: an output gradient of out's size

    benchmark.pedantic(lambda out, grad: out.backward(grad), setup=setup, rounds=5, iterations=1)


def main(rounds=7, warmup=10):
    """Print the backward/forward CPU-time ratio of ``fastblur.torch.blur_masked`` for each
    combination of leaves requiring grad (one thread, best of ``rounds`` after ``warmup``
    untimed ones, forward and backward alternated); ``python bench/bench_adjoints.py``.

    The warm-up matters: run alone, image+kernels' backward took 15-20 calls to settle,
    the first ones up to ~40 % slower (it allocates tens of MB a call: page faults, and a
    process's first calls fault more); the combinations run before one warm it up too."""
    import os
    import time

    os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
    import torch

    import fastblur.torch as ft

    torch.set_num_threads(1)
    image, kernels, weights = sbdd_case(720, 1280)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    tensors = x, torch.from_numpy(kernels), torch.from_numpy(weights)
    print("fastblur.torch.blur_masked, 720p, six 65x65 PSFs, one thread: best CPU times "
          f"of {rounds} after {warmup} warm-up rounds (target: backward <= 3x forward)")
    for wrt in ["image", "weights", "kernels"] + WRT[1:]:
        leaves = _leaves(tensors, wrt)
        forward = backward = float("inf")
        for round_ in range(-warmup, rounds):
            start = time.process_time()
            out = ft.blur_masked(*leaves)
            middle = time.process_time()
            out.backward(out.detach())
            end = time.process_time()
            for leaf in leaves:
                leaf.grad = None
            if round_ >= 0:
                forward, backward = min(forward, middle - start), min(backward, end - middle)
        print(f"  {wrt:22s} forward {forward * 1e3:6.1f} ms  backward {backward * 1e3:6.1f} ms  "
              f"ratio {backward / forward:.2f}")


def deepinv_ratio(rounds=5):
    """Forward + adjoint at 720p: ``fastblur.torch.SpaceVaryingBlur`` (best of ``rounds``)
    against deepinv's (one call: about 20 s), CPU time, one thread (target >= 100x)."""
    import time

    import deepinv
    import torch

    import fastblur.torch as ft

    torch.set_num_threads(1)
    image, kernels, weights = sbdd_case(720, 1280)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    kernels, weights = torch.from_numpy(kernels), torch.from_numpy(weights)
    ours = ft.SpaceVaryingBlur(kernels, weights, mode="valid")
    theirs = deepinv.physics.SpaceVaryingBlur(
        filters=kernels[None, None].expand(1, 3, -1, -1, -1),
        multipliers=weights[None, None].expand(1, 3, -1, -1, -1), padding="valid", mask_first=False)

    def best(physics, count):
        seconds = float("inf")
        for _ in range(count):
            start = time.process_time()
            physics.A_adjoint(physics.A(x))
            seconds = min(seconds, time.process_time() - start)
        return seconds

    fast = best(ours, rounds)
    slow = best(theirs, 1)
    fast = min(fast, best(ours, rounds))
    print(f"forward + adjoint, 720p, six 65x65 PSFs, one thread: fastblur {fast * 1e3:.1f} ms, "
          f"deepinv {slow:.2f} s: {slow / fast:.0f}x (target >= 100x)")


if __name__ == "__main__":
    import sys

    main()
    if "--deepinv" in sys.argv:
        deepinv_ratio()
