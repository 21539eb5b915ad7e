"""SBDD pairs at 1280x720 with 65x65 kernels: the fastblur-gen path, and fastblur.sbdd against its peers.

``python bench/bench_sbdd.py`` times what users run: ``generate`` (the ``fastblur-gen``
command) with one worker, ``FASTBLUR_NUM_THREADS=1``, on four 1280x720 PNGs made from
scikit-image's photographs, 20 variants an image, camera-shake kernels generated on the
fly, for each mask source (``shapes``, ``classical``, and ``detectron2`` on the case
below: five objects, six kernels) and each output format; milliseconds a pair (CPU time
of the process, best of ``--repeat`` runs) and the ratio to one 720p 65x65
``scipy.signal.fftconvolve`` timed in the same run. Target (issue 16): ``shapes`` and
``classical`` with PNG <= 1.1x that peer. Default settings, as a user's first run: no
illumination gain, so a source's variants share their sharp target (written once encoded);
``--augment-illumination`` draws a gain a pair (every target encoded). ``--workers`` adds
1 vs 2 workers and a worker's peak memory (target <= 400 MB).

The pytest-benchmark cases compare, on the files below, with peers measured in the same
run:

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
(``bench/conftest.py``).
"""
import itertools
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
        from fastblur.sbdd.storage import LocalStorage

        self.config = config
        self.sources = find_sources(config)
        self.maker = PairMaker(config, self.sources)
        self.storage = LocalStorage(config.out)
        self._indices = itertools.count()
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
        """Encode both images in the run's format and write them, as the dataset writer does."""
        from fastblur.sbdd.codecs import encode_image

        config = self.config
        for name, image in (("blurry_ref", blurry), ("sharp_ref", sharp)):
            data = encode_image(image, config.format, compression=config.png_compression, quality=config.quality)
            self.storage.write(f"{name}.{config.format}", data)

    # -- end to end --------------------------------------------------------------------
    def fastblur_pair(self, index=None):
        """Make, encode and write pair ``index`` as a run's worker does (``run_chunk``);
        returns its manifest record. By default the next pair of the run: a pair made again
        would reuse its sharp target's bytes (``PairMaker.encode``), which a run with
        the illumination gain on never does."""
        index = next(self._indices) if index is None else index
        record, blurry, sharp, _, _ = self.maker.make(index)
        blurry, sharp = self.maker.encode(blurry, sharp)
        self.storage.write(record["blurry"], blurry)
        self.storage.write(record["sharp"], sharp)
        return record

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


# -- helpers of python bench/bench_sbdd.py ------------------------------------------------
def _best(function, repeat, clock=time.perf_counter):
    times = []
    for _ in range(repeat):
        start = clock()
        function()
        times.append(clock() - start)
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
    from fastblur.sbdd.dataset import find_sources
    from fastblur.sbdd.distributed import Job, run_chunk
    from fastblur.sbdd.storage import LocalStorage

    config = DatasetConfig.from_dict(config_dict)
    os.makedirs(config.out, exist_ok=True)
    job = Job(config_dict, find_sources(config), LocalStorage(config.out), pairs, "bench")
    run_chunk(job, [])  # the worker's pair maker, made as a pool worker makes it
    before = _peak_rss_mb()
    for index in range(pairs):
        answer = run_chunk(job, [index])
        assert not answer["failures"], answer
    return before, _peak_rss_mb()


# -- python bench/bench_sbdd.py: the fastblur-gen path -----------------------------------
USER_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg")


def write_user_inputs(folder):
    """Four 1280x720 PNGs made from scikit-image's photographs (cover-resized, cubic)."""
    import cv2
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in USER_PHOTOS:
        image = cv2.imread(os.path.join(data.data_dir, name), cv2.IMREAD_COLOR)
        scale = max(WIDTH / image.shape[1], HEIGHT / image.shape[0])
        size = (max(WIDTH, round(image.shape[1] * scale)), max(HEIGHT, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        top, left = (image.shape[0] - HEIGHT) // 2, (image.shape[1] - WIDTH) // 2
        cv2.imwrite(str(folder / (os.path.splitext(name)[0] + ".png")), image[top:top + HEIGHT, left:left + WIDTH])
    return str(folder)


def fftconvolve_peer():
    """One 720p 65x65 ``scipy.signal.fftconvolve`` (720x1280x3 float32, valid), as fastblur-bench."""
    import scipy.signal

    from fastblur.cli.bench_cases import motion_kernel, photo

    image = photo((HEIGHT, WIDTH, 3), np.float32)
    kernel = motion_kernel(KERNEL, rng=0)[:, :, None]
    return lambda: scipy.signal.fftconvolve(image, kernel, mode="valid", axes=(0, 1))


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files
               if f.endswith((".png", ".jpg", ".jxl")))


def time_generate(config, repeat):
    """Best of ``repeat`` runs of ``generate(config)`` (one worker, overwriting), in CPU time of
    this process: ``(ms a pair, bytes a pair, summary of the best run)``."""
    from dataclasses import replace

    from fastblur.sbdd import generate

    best, best_seconds = None, float("inf")
    for _ in range(repeat):
        start = time.process_time()
        summary = generate(replace(config, overwrite=True))
        seconds = time.process_time() - start
        assert summary.written == config.count and not summary.failed, summary.failures[:3]
        if seconds < best_seconds:
            best, best_seconds = summary, seconds
    return 1e3 * best_seconds / best.written, _folder_bytes(config.out) / best.written, best


def main(argv=None):
    import argparse
    from dataclasses import fields, replace

    parser = argparse.ArgumentParser(description="fastblur-gen end to end, one core, 720p, 65x65 kernels")
    parser.add_argument("--backend", default="auto", help="fastblur backend (default auto)")
    parser.add_argument("--count", type=int, default=40, help="pairs a run (default 40: 2 images x 20 variants)")
    parser.add_argument("--repeat", type=int, default=2, help="runs a case, best kept (default 2)")
    parser.add_argument("--masks", default="shapes,classical,detectron2", help="mask sources (comma-separated)")
    parser.add_argument("--formats", default="png,jpg", help="output formats: png, png-small, jpg (comma-separated)")
    parser.add_argument("--workers", action="store_true", help="also 1 vs 2 workers and a worker's peak memory")
    parser.add_argument("--augment-illumination", action="store_true",
                        help="draw an illumination gain a pair (then no two sharp targets are alike)")
    options = parser.parse_args(argv)

    os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)
    from fastblur._memory import keep_freed_memory
    from fastblur.sbdd import DatasetConfig

    keep_freed_memory()  # as fastblur-gen and its workers do
    known = {f.name for f in fields(DatasetConfig)}
    peer = fftconvolve_peer()
    with tempfile.TemporaryDirectory() as folder:
        case = make_case(folder)  # detectron2 masks of frame.png
        inputs = write_user_inputs(os.path.join(folder, "photos"))
        print(f"fastblur-gen path (generate, 1 worker), FASTBLUR_NUM_THREADS={os.environ['FASTBLUR_NUM_THREADS']}, "
              f"{WIDTH}x{HEIGHT}, kernels generated {KERNEL}x{KERNEL}, {options.count} pairs a run, "
              f"20 variants an image, best of {options.repeat}, illumination gain "
              f"{'on' if options.augment_illumination else 'off'}; CPU time of this process (the machine is shared)")
        peer()  # warm-up
        block = lambda: [peer() for _ in range(10)]  # noqa: E731  a mean over calls, as a pair's
        reference = _best(block, 2, time.process_time)[0] / 10
        print(f"  peer: one 720p 65x65 fftconvolve (720x1280x3 float32, valid) {1e3 * reference:.1f} ms")
        from fastblur.sbdd import generate

        generate(DatasetConfig(input=inputs, masks="shapes", count=2, workers=1, progress=False,  # warm-up: JIT
                               backend=options.backend, out=os.path.join(folder, "warm-up")))
        rows = []
        for masks in options.masks.split(","):
            for fmt in options.formats.split(","):
                settings = dict(input=inputs, masks=masks, n_images=20, count=options.count, workers=1,
                                progress=False, format=fmt[:3], backend=options.backend, max_objects=5,
                                kernel_size=KERNEL, out=os.path.join(folder, f"out_{masks}_{fmt}"),
                                augment_illumination=options.augment_illumination)
                if masks == "detectron2":  # the case of make_case: five objects, six kernels
                    settings.update(input=case.input, masks_path=case.masks_path)
                if "timings" in known:
                    settings["timings"] = True
                if fmt == "png-small":
                    settings["png_compression"] = "small"
                config = DatasetConfig(**settings)
                ms, size, summary = time_generate(config, options.repeat)
                reference = min(reference, _best(block, 1, time.process_time)[0] / 10)
                rows.append((masks, fmt, ms, size))
                print(f"  --masks {masks:10s} --format {fmt}: {ms:6.1f} ms a pair ({1e3 / ms:5.1f} pairs/s), "
                      f"{size / 1e6:.2f} MB a pair", flush=True)
                if getattr(summary, "timings", None) is not None:
                    print(f"      wall-clock {summary.timings.report()}")
        print(f"  peer: fftconvolve, best mean of 10 calls over the run {1e3 * reference:.1f} ms (CPU time)")
        for masks, fmt, ms, size in rows:
            print(f"  {masks:10s} {fmt}: {ms:6.1f} ms a pair = {ms / (1e3 * reference):.2f}x one fftconvolve; "
                  f"original script (~2.4 s a pair) / this = {2400 / ms:.0f}x")
        if options.workers:
            config = DatasetConfig(input=inputs, masks="shapes", n_images=20, progress=False,
                                   backend=options.backend, kernel_size=KERNEL)
            for workers in (1, 2):
                seconds = {}
                for count in (16, 64):
                    run = replace(config, count=count, workers=workers, overwrite=True,
                                  out=os.path.join(folder, f"w{workers}_{count}"))
                    seconds[count] = generate(run).seconds
                print(f"  generate --masks shapes, {workers} worker(s): {48 / (seconds[64] - seconds[16]):.2f} "
                      f"pairs/s steady ({64 / seconds[64]:.2f} pairs/s over 64 pairs with process start-up)")
            for masks in ("shapes", "classical"):
                before, peak = _peak_memory_of_a_worker(replace(config, masks=masks, out=os.path.join(folder, "mem")),
                                                        pairs=45)
                print(f"  worker peak RSS, --masks {masks}: {peak:.0f} MB after 45 pairs over 3 images "
                      f"({before:.0f} MB after start-up; target <= 400)")


if __name__ == "__main__":
    main()
