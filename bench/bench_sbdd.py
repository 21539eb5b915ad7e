"""SBDD pairs at 1280x720 with six 65x65 kernels: fastblur.sbdd against its peers.

Peers, measured in the same run on the same files:

* the reference-style pipeline (``bench/sbdd_reference.py``: float64, HSV round trip
  for the gain, one full ``scipy.signal.fftconvolve`` per mask and per kernel), with the
  same codec as fastblur;
* the codec floor: decode the input PNG, encode and write the two output PNGs.

Every case reads ``frame.png`` (1280x720), a detectron2-style ``frame.npz`` with five
objects and six ``.mat`` camera-shake kernels (65x65) from a kernel list, and writes
two PNGs, with the illumination gain on. Targets (issue 5): end-to-end >= 30x the
reference-style pipeline's pairs/s on one core; synthesis (all but decode/encode)
<= 1x the codec floor.

``pytest bench/bench_sbdd.py --benchmark-only`` runs the cases one thread each
(``bench/conftest.py``); ``python bench/bench_sbdd.py [--backend NAME]`` prints pairs/s,
the ratios, the two-worker throughput and a worker's peak memory.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sbdd_reference import reference_masks, reference_pair, to_uint8  # noqa: E402

HEIGHT, WIDTH, KERNEL, OBJECTS = 720, 1280, 65, 5


def make_case(folder):
    """Write the inputs into ``folder``; returns the DatasetConfig of a run on them."""
    import cv2

    from fastblur.cli.bench_cases import object_masks, photo
    from fastblur.kernels import camera_shake, save
    from fastblur.sbdd import DatasetConfig

    folder = Path(folder)
    for name in ("input", "seg", "kernels/train", "out"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    image = np.clip(photo((HEIGHT, WIDTH, 3), np.float64), 0, 255).astype(np.uint8)
    cv2.imwrite(str(folder / "input" / "frame.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    masks = object_masks((HEIGHT, WIDTH), OBJECTS, seed=0)
    np.savez(folder / "seg" / "frame.npz", pred_masks=masks, scores=np.full(OBJECTS, 0.99),
             pred_classes=np.zeros(OBJECTS, int))
    entries = []
    for i in range(OBJECTS + 1):
        kernel = camera_shake(KERNEL, rng=i)[::-1, ::-1].astype(np.float64)  # stored for correlation
        save(folder / "kernels" / "train" / f"kernel{i:04d}.mat", kernel)
        entries.append(f"train/kernel{i:04d}.mat")
    (folder / "kernels" / "list.txt").write_text("\n".join(entries) + "\n")
    return DatasetConfig(
        out=str(folder / "out"), input=str(folder / "input"), masks="detectron2", masks_path=str(folder / "seg"),
        kernels=str(folder / "kernels" / "list.txt"), kernel_size=KERNEL, augment_illumination=True,
        workers=1, progress=False, overwrite=True,
    )


class Pipelines:
    """The measured pipelines on one case."""

    def __init__(self, config):
        from fastblur.sbdd.dataset import PairMaker, find_sources

        self.config = config
        self.sources = find_sources(config)
        self.maker = PairMaker(config, self.sources)
        self.folder = Path(config.input).parent
        self.kernel_paths = self.maker.kernels.files.paths
        # preloaded arrays for the synthesis-only cases
        from fastblur.sbdd.dataset import read_image

        self.image = read_image(self.sources[0].path)
        self.masks = reference_masks(self.folder / "seg" / "frame.npz")
        self.kernels = np.stack([self._loadmat(p) for p in self.kernel_paths]).astype(np.float32)

    @staticmethod
    def _loadmat(path):
        import scipy.io

        return scipy.io.loadmat(path)["K"]

    def _write_pair(self, blurry, sharp):
        from fastblur.sbdd.dataset import _encode, write_atomic

        out = Path(self.config.out)
        write_atomic(out / "blurry_ref.png", _encode(blurry, self.config))
        write_atomic(out / "sharp_ref.png", _encode(sharp, self.config))

    # -- end to end --------------------------------------------------------------------
    def fastblur_pair(self, index=0):
        answer = self.maker.run(index)
        assert answer["ok"], answer
        return answer

    def reference_pair(self, seed=0):
        from fastblur.sbdd.dataset import read_image

        rng = np.random.default_rng(seed)
        image = read_image(self.sources[0].path)
        masks = reference_masks(self.folder / "seg" / "frame.npz")
        chosen = [self.kernel_paths[int(rng.integers(len(self.kernel_paths)))] for _ in range(len(masks) + 1)]
        kernels = np.stack([self._loadmat(p) for p in chosen])
        gain = 1.0 + 2.0 * rng.random()
        blurry, sharp = reference_pair(image, kernels, masks, illumination_gain=gain)
        self._write_pair(to_uint8(blurry), to_uint8(sharp))

    def codec_floor(self):
        from fastblur.sbdd.dataset import read_image

        image = read_image(self.sources[0].path)
        crop = image[32:-32, 32:-32]
        self._write_pair(crop, crop)

    # -- synthesis only -----------------------------------------------------------------
    def fastblur_synthesis(self):
        from fastblur.sbdd import synthesize_pair

        result = synthesize_pair(self.image, self.kernels, self.masks, illumination_gain=1.7,
                                 backend=self.config.backend)
        return result.to_uint8()

    def reference_synthesis(self):
        blurry, sharp = reference_pair(self.image, self.kernels, self.masks, illumination_gain=1.7)
        return to_uint8(blurry), to_uint8(sharp)


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    from fastblur._memory import keep_freed_memory

    keep_freed_memory()  # as fastblur-gen and its workers do
    return Pipelines(make_case(tmp_path_factory.mktemp("sbdd_bench")))


@pytest.mark.benchmark(group="sbdd-pair-720p-6x65")
def bench_fastblur_end_to_end(benchmark, pipelines):
    benchmark(pipelines.fastblur_pair)


@pytest.mark.benchmark(group="sbdd-pair-720p-6x65")
def bench_reference_style_end_to_end(benchmark, pipelines):
    benchmark.pedantic(pipelines.reference_pair, rounds=3, iterations=1)


@pytest.mark.benchmark(group="sbdd-pair-720p-6x65")
def bench_codec_floor(benchmark, pipelines):
    benchmark(pipelines.codec_floor)


@pytest.mark.benchmark(group="sbdd-synthesis-720p-6x65")
def bench_fastblur_synthesis(benchmark, pipelines):
    benchmark(pipelines.fastblur_synthesis)


@pytest.mark.benchmark(group="sbdd-synthesis-720p-6x65")
def bench_reference_style_synthesis(benchmark, pipelines):
    benchmark.pedantic(pipelines.reference_synthesis, rounds=3, iterations=1)


@pytest.mark.benchmark(group="sbdd-synthesis-720p-6x65")
def bench_codec_floor_for_synthesis(benchmark, pipelines):
    benchmark(pipelines.codec_floor)


@pytest.mark.benchmark(group="sbdd-dataset-720p-6x65")
@pytest.mark.parametrize("workers", [1, 2])
def bench_generate(benchmark, pipelines, workers):
    """``generate`` of 16 pairs (process start-up included for 2 workers)."""
    from dataclasses import replace

    from fastblur.sbdd import generate

    config = replace(pipelines.config, count=16, workers=workers, out=str(Path(pipelines.config.out) / f"w{workers}"))
    benchmark.pedantic(generate, args=(config,), rounds=1, iterations=1)


# -- python bench/bench_sbdd.py -----------------------------------------------------------
def _best(function, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times), float(np.median(times))


def _peak_memory_of_a_worker(config, pairs=4):
    """Peak RSS (MB) of a spawned worker process that makes ``pairs`` pairs."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_worker_memory, config.to_dict(), pairs).result()


def _peak_rss_mb():
    # VmHWM is this process image's peak; ru_maxrss would include the parent's peak,
    # which survives fork + exec.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _worker_memory(config_dict, pairs):
    from fastblur.sbdd import DatasetConfig
    from fastblur.sbdd.dataset import _init_worker, _run_in_worker, find_sources

    config = DatasetConfig.from_dict(config_dict)
    _init_worker(config_dict, find_sources(config))
    before = _peak_rss_mb()
    for index in range(pairs):
        _run_in_worker(index, False)
    return before, _peak_rss_mb()


def main(argv=None):
    import argparse
    from dataclasses import replace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto", help="fastblur backend (default auto)")
    backend = parser.parse_args(argv).backend

    os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    from fastblur.sbdd import generate
    from fastblur._memory import keep_freed_memory

    keep_freed_memory()  # as fastblur-gen and its workers do

    with tempfile.TemporaryDirectory() as folder:
        config = replace(make_case(folder), backend=backend)
        p = Pipelines(config)
        p.fastblur_pair(), p.fastblur_synthesis(), p.codec_floor()  # warm-up (JIT, caches)
        rows = {
            "fastblur end-to-end": _best(p.fastblur_pair, 15),
            "reference-style end-to-end": _best(p.reference_pair, 3),
            "codec floor (decode + 2 PNG encodes)": _best(p.codec_floor, 15),
            "fastblur synthesis only": _best(p.fastblur_synthesis, 15),
            "reference-style synthesis only": _best(p.reference_synthesis, 3),
        }
        print(f"one thread, FASTBLUR_NUM_THREADS={os.environ['FASTBLUR_NUM_THREADS']}, "
              f"{WIDTH}x{HEIGHT}, {OBJECTS + 1} kernels {KERNEL}x{KERNEL}, backend={config.backend}")
        for name, (best, median) in rows.items():
            print(f"  {name:40s} {1e3 * best:8.1f} ms (median {1e3 * median:7.1f})  {1 / best:7.2f} pairs/s")
        e2e, ref = rows["fastblur end-to-end"][0], rows["reference-style end-to-end"][0]
        floor = rows["codec floor (decode + 2 PNG encodes)"][0]
        synth, ref_synth = rows["fastblur synthesis only"][0], rows["reference-style synthesis only"][0]
        print(f"  end-to-end speed-up vs reference-style: {ref / e2e:.1f}x (target >= 30x)")
        print(f"  synthesis speed-up vs reference-style:  {ref_synth / synth:.1f}x")
        print(f"  synthesis / codec floor:                {synth / floor:.2f} (target <= 1)")
        print(f"  end-to-end minus codec floor:           {1e3 * (e2e - floor):.1f} ms")
        for workers in (1, 2):
            # two runs of different lengths: their difference is the steady-state rate
            seconds = {}
            for count in (16, 64):
                run = replace(config, count=count, workers=workers, out=os.path.join(folder, f"w{workers}_{count}"))
                seconds[count] = generate(run).seconds
            print(f"  generate, {workers} worker(s): {48 / (seconds[64] - seconds[16]):.2f} pairs/s steady "
                  f"({64 / seconds[64]:.2f} pairs/s over 64 pairs with process start-up)")
        before, peak = _peak_memory_of_a_worker(config)
        print(f"  worker peak RSS: {peak:.0f} MB after 4 pairs ({before:.0f} MB after start-up; target <= 400)")


if __name__ == "__main__":
    main()
