"""The dataset writer behind ``fastblur-gen``: many pairs, reproducible, resumable.

Pair ``i`` of a run takes sharp image ``(i // n_images) % len(images)`` and draws all of
its randomness from ``numpy.random.SeedSequence([seed, i])``, split into three
independent streams: the masks, the kernels, and the formation (the illumination gain
first, then :func:`~fastblur.sbdd.synthesize_pair`'s draws). A pair therefore has the
same bytes whichever worker makes it and however many workers there are.

Files are written atomically (a temporary ``.NAME.PID.TOKEN.tmp`` beside the target, then
:func:`os.replace`); the manifest (``manifest.jsonl``, one JSON line per finished pair)
is appended by the parent process after both images are in place. A pair counts as
finished when its manifest line exists and both of its files do; a rerun with the same
settings skips finished pairs and makes the others (missing, partial, failed), and
``count`` may grow between runs. Ctrl-C stops handing out pairs, lets the pairs in
progress finish, and leaves no partial file.

Layouts (``NAME`` is ``<image name>_<variant>``, as the reference names its pairs):

* ``sbdd``: ``OUT/blurry/NAME.png`` and ``OUT/sharp/NAME.png``;
* ``gopro``: ``OUT/<split>/<sequence>/blur/<image>_<variant>.png`` and ``.../sharp/...``;
* ``basicsr``: ``OUT/input/NAME.png`` and ``OUT/target/NAME.png`` (paired-image folders);

plus ``OUT/args.json`` (the settings) and ``OUT/manifest.jsonl``.
"""
import json
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

import numpy as np

from .._atomic import remove_temporaries, write_atomic
from .._memory import keep_freed_memory
from .codecs import check_format, decode_image, encode_image
from .config import RUN_ONLY_FIELDS, DatasetConfig, pinned_backend
from ..projective import psf_field
from .camera import draw_camera
from .pair import synthesize_pair
from .sources import CACHE_BYTES, PairInputs, segment_missing
from .timings import StageTimer

__all__ = ["GenerateSummary", "Source", "find_sources", "generate", "make_pair", "read_image", "write_atomic"]

#: Real photographs shipped inside scikit-image's wheel (no download needed).
EMBEDDED_IMAGES = (
    "astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
    "hubble_deep_field.jpg",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jxl")
_PREVIEW_HEIGHT = 160


@dataclass(frozen=True)
class Source:
    """One sharp input image.

    Attributes
    ----------
    name : str
        Unique name: output files are ``NAME_<variant>``; mask files ``NAME.npz`` /
        ``NAME.png``. The path relative to the input folder without extension, ``/``
        replaced by ``_`` (GoPro: ``<sequence>_<image>``, the reference's flattening).
    path : str
    group, stem : str
        Sequence and image name for the ``gopro`` output layout.
    label : str
        How the manifest names it.
    """

    name: str
    path: str
    group: str
    stem: str
    label: str


@dataclass
class GenerateSummary:
    """What a run did.

    Attributes
    ----------
    out : str
    total : int
        Pairs the dataset should hold (``count``).
    written : int
        Pairs made by this run.
    skipped : int
        Pairs already finished by an earlier run.
    failed : int
        Pairs that could not be made (bad image or mask file...); see ``failures``.
    failures : list of tuple
        ``(index, name, message)``.
    interrupted : bool
        Ctrl-C stopped the run early.
    seconds : float
    timings : StageTimer or None
        With ``timings``: the seconds of each stage over the pairs made
        (:meth:`~fastblur.sbdd.timings.StageTimer.mean_ms`, ``.report()``).
    """

    out: str
    total: int
    written: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list = field(default_factory=list)
    interrupted: bool = False
    seconds: float = 0.0
    timings: StageTimer = None

    @property
    def pairs_per_second(self):
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def __str__(self):
        text = (
            f"{self.written} pairs written, {self.skipped} already done, {self.failed} failed "
            f"({self.pairs_per_second:.2f} pairs/s, {self.seconds:.1f} s) -> {self.out}"
        )
        return text + (" [interrupted]" if self.interrupted else "")


# -- inputs -----------------------------------------------------------------------------
def _embedded_sources():
    from skimage import data

    folder = data.data_dir
    found = [n for n in EMBEDDED_IMAGES if os.path.isfile(os.path.join(folder, n))]
    if not found:
        raise ValueError(
            "no input given and scikit-image's sample photographs are not installed here; "
            "pass input (--input) with a folder of sharp images"
        )
    return [
        Source(os.path.splitext(n)[0], os.path.join(folder, n), os.path.splitext(n)[0],
               os.path.splitext(n)[0], f"skimage:{n}")
        for n in found
    ]


def _gopro_root(folder, split):
    """The folder holding GoPro sequences (``SEQ/sharp/*.png``), or None."""
    for candidate in (os.path.join(folder, split), folder):
        if os.path.isdir(candidate) and any(
            os.path.isdir(os.path.join(candidate, s, "sharp")) for s in os.listdir(candidate)
        ):
            return candidate
    return None


def _is_image(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def find_sources(config):
    """The sharp images of a run, in a fixed order.

    ``input=None`` gives the embedded photographs. A GoPro tree (``[split/]SEQ/sharp/*``)
    is flattened as the reference's prepare step does (``SEQ_image``); any other folder
    is searched recursively for images.

    Returns
    -------
    list of Source

    Raises
    ------
    ValueError
        No images, or an input that is not a folder.
    """
    if config.input is None:
        return _embedded_sources()
    folder = config.input
    if not os.path.isdir(folder):
        raise ValueError(f"input must be a folder of sharp images, got {folder!r}")
    sources = []
    root = _gopro_root(folder, config.split) if config.input_layout in ("auto", "gopro") else None
    if root is not None:
        for sequence in sorted(os.listdir(root)):
            sharp_dir = os.path.join(root, sequence, "sharp")
            if not os.path.isdir(sharp_dir):
                continue
            for name in sorted(filter(_is_image, os.listdir(sharp_dir))):
                stem = os.path.splitext(name)[0]
                path = os.path.join(sharp_dir, name)
                sources.append(Source(f"{sequence}_{stem}", path, sequence, stem, os.path.relpath(path, folder)))
    elif config.input_layout == "gopro":
        raise ValueError(f"input {folder!r} is not a GoPro tree ([{config.split}/]SEQUENCE/sharp/*.png)")
    else:
        paths = []
        for directory, subdirs, files in os.walk(folder):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            paths += [os.path.join(directory, f) for f in files if _is_image(f)]
        relative = sorted(os.path.relpath(p, folder) for p in paths)
        names = [os.path.splitext(r)[0].replace(os.sep, "_") for r in relative]
        clash = {n for n in names if names.count(n) > 1}
        for rel, name in zip(relative, names):
            if name in clash:  # a.png and a.jpg: keep both, told apart by the extension
                name = rel.replace(os.sep, "_").replace(".", "_")
            group = os.path.dirname(rel).replace(os.sep, "_") or "images"
            sources.append(Source(name, os.path.join(folder, rel), group, os.path.basename(name), rel))
    if not sources:
        raise ValueError(f"input {folder!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sources


def read_image(path):
    """An RGB ``(H, W, 3)`` uint8 image; ``ValueError`` naming the file if it cannot be read."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ValueError(f"cannot read image {path!r}: {error}") from error
    return decode_image(data, os.fspath(path))


# -- outputs ----------------------------------------------------------------------------
def pair_location(index, n_sources, n_images):
    """``(source index, variant)`` of pair ``index``: images in turn, ``n_images`` each."""
    cycle, rest = divmod(index, n_sources * n_images)
    source_index, variant = divmod(rest, n_images)
    return source_index, variant + cycle * n_images


def pair_paths(config, source, variant):
    """``(name, blurry path, sharp path)`` of a pair in the configured layout."""
    ext = "." + config.format
    name = f"{source.name}_{variant}"
    out = config.out if config.out is not None else "."
    if config.layout == "sbdd":
        return name, os.path.join(out, "blurry", name + ext), os.path.join(out, "sharp", name + ext)
    if config.layout == "basicsr":
        return name, os.path.join(out, "input", name + ext), os.path.join(out, "target", name + ext)
    folder = os.path.join(out, config.split, source.group)
    file = f"{source.stem}_{variant}{ext}"
    return name, os.path.join(folder, "blur", file), os.path.join(folder, "sharp", file)


def _encode(image, config):
    return encode_image(image, config.format, compression=config.png_compression, quality=config.quality)


# -- one pair ---------------------------------------------------------------------------
class PairMaker(PairInputs):
    """Makes (and writes) the pairs of one run in one process; their inputs come from
    :class:`~fastblur.sbdd.sources.PairInputs` (which caches decoded images, their
    segmentations and mask files in ``cache_bytes``), the time of each stage goes to
    ``timer`` when ``config.timings`` is set."""

    def __init__(self, config, sources, cached_segmentations=None, cache_bytes=CACHE_BYTES):
        super().__init__(config, sources, cached_segmentations, cache_bytes)
        check_format(config.format)
        self.timer = StageTimer(enabled=config.timings)

    def make(self, index):
        """Synthesise pair ``index``: ``(record, blurry uint8, sharp uint8, result, kernels)``."""
        config = self.config
        source_index, variant = pair_location(index, len(self.sources), config.n_images)
        source = self.sources[source_index]
        name, blurry_path, sharp_path = pair_paths(config, source, variant)
        # spawn(4)[:3] are spawn(3): the uniform model's streams do not change.
        mask_seed, kernel_seed, formation_seed, camera_seed = np.random.SeedSequence([config.seed, index]).spawn(4)
        timer = self.timer
        with timer.stage("read"):
            image = self.image(source_index)
        smallest = max(config.min_image_size, config.kernel_size)
        if min(image.shape[:2]) <= smallest:
            raise ValueError(f"image {source.label!r} of size {image.shape[:2]} is too small: "
                             f"its shorter side must exceed {smallest}")
        with timer.stage("masks"):
            masks, mask_entry = self.object_masks(source_index, image, np.random.default_rng(mask_seed))
        with timer.stage("kernels"):
            kernels, kernel_ids = self.kernels.draw(len(masks) + 1, np.random.default_rng(kernel_seed))
        with timer.stage("synthesis"):
            rng = np.random.default_rng(formation_seed)
            gain = self.illumination_gain(rng)
            camera = self.camera(np.random.default_rng(camera_seed))
            result = synthesize_pair(image, kernels, masks, illumination_gain=gain, rng=rng, camera=camera,
                                     quantize=True, **self.options)
            blurry, sharp = result.to_uint8()
        params = result.params
        out = config.out if config.out is not None else "."
        record = {
            "index": index,
            "name": name,
            "blurry": os.path.relpath(blurry_path, out),
            "sharp": os.path.relpath(sharp_path, out),
            "source": source.label,
            "variant": variant,
            "seed": [config.seed, index],
            "masks": mask_entry,
            "kernels": kernel_ids,
            "gain": gain,
            "size": [int(blurry.shape[0]), int(blurry.shape[1])],
            "offset": params["offset"],
            "saturated_fraction": params["saturated_fraction"],
            "saturation_boost": params["saturation_boost"],
            "saturation_boost_in_blurry": params["saturation_boost_in_blurry"],
            "streaks": len(params["streaks"]),
        }
        if camera != "uniform":
            record["camera"] = params["camera"]
            # the preview shows the camera's PSF field (3 x 3, as stored kernels)
            field = psf_field(camera.homographies(image.shape), image.shape, (3, 3), config.kernel_size)
            kernels = np.ascontiguousarray(field.reshape(-1, *field.shape[2:])[:, ::-1, ::-1])
        return record, blurry, sharp, result, kernels

    def camera(self, rng):
        """``'uniform'``, or a :class:`~fastblur.sbdd.camera.ProjectiveCamera` drawn from ``rng``."""
        config = self.config
        if config.camera_model == "uniform":
            return "uniform"
        return draw_camera(rng, config.exposure, config.focal_length, config.camera_roll,
                           config.camera_exposure_spread, config.camera_roll_spread)

    def run(self, index, preview=False, write=True):
        """Make (and write) pair ``index``; never raises for a bad input.

        Returns
        -------
        dict
            ``index``, ``ok``, then ``record`` or ``message``, and ``preview`` (a
            contact-sheet row) when asked.
        """
        from .preview import preview_row

        try:
            record, blurry, sharp, result, kernels = self.make(index)
            if write:
                blurry_path = os.path.join(self.config.out, record["blurry"])
                sharp_path = os.path.join(self.config.out, record["sharp"])
                with self.timer.stage("encode"):
                    blurry_bytes, sharp_bytes = _encode(blurry, self.config), _encode(sharp, self.config)
                with self.timer.stage("write"):
                    os.makedirs(os.path.dirname(blurry_path), exist_ok=True)
                    os.makedirs(os.path.dirname(sharp_path), exist_ok=True)
                    write_atomic(blurry_path, blurry_bytes)
                    write_atomic(sharp_path, sharp_bytes)
            answer = {"index": index, "ok": True, "record": record}
            if self.timer.enabled:
                answer["timings"] = self.timer.take()
            if preview:
                answer["preview"] = preview_row(sharp, blurry, result.weights, kernels, _PREVIEW_HEIGHT)
            return answer
        except Exception as error:  # a bad image/mask/kernel file: reported, the run goes on
            self.timer.take()
            source_index, variant = pair_location(index, len(self.sources), self.config.n_images)
            name = f"{self.sources[source_index].name}_{variant}"
            return {"index": index, "ok": False, "name": name, "message": f"{type(error).__name__}: {error}"}


# -- worker processes -------------------------------------------------------------------
_worker = None


def _init_worker(config_dict, sources):
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    os.environ["FASTBLUR_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)
    keep_freed_memory()
    _worker = PairMaker(DatasetConfig.from_dict(config_dict), sources)


def _run_in_worker(index, preview):
    return _worker.run(index, preview)


# -- the run ----------------------------------------------------------------------------
def _check_settings(config):
    """Refuse to resume a dataset made with other settings (unless overwriting)."""
    path = os.path.join(config.out, "args.json")
    if not os.path.isfile(path) or config.overwrite:
        return
    try:
        with open(path, encoding="utf-8") as stream:
            previous = json.load(stream).get("settings", {})
    except (OSError, ValueError):
        return
    # Settings added since an older run count as their default.
    _refuse_other_settings(config, previous, config.to_dict(), RUN_ONLY_FIELDS, DatasetConfig().to_dict())


def _refuse_other_settings(config, previous, current, ignored, defaults=None):
    """A ValueError naming the settings (but ``ignored``) in which ``previous`` (a stored
    run's, missing ones read from ``defaults``) and ``current`` differ, if any."""
    defaults = defaults or {}
    differing = sorted(
        key for key in set(previous) | set(current)
        if key not in ignored and previous.get(key, defaults.get(key)) != current.get(key)
    )
    if differing:
        raise ValueError(
            f"{config.out!r} holds a dataset made with other settings ({', '.join(differing)} "
            "differ); use another out folder, or overwrite (--overwrite) to remake it"
        )


def _read_manifest(config):
    """Finished pairs: ``{index: record}`` for manifest lines whose two files exist.

    Files are not fsynced (that would cost more than the pair); an empty file, what a
    power loss can leave behind a completed rename, counts as missing and is redone.
    """
    path = os.path.join(config.out, "manifest.jsonl")
    done = {}
    if config.overwrite or not os.path.isfile(path):
        return done
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            try:
                record = json.loads(line)
                index = int(record["index"])
                files = [os.path.join(config.out, record[k]) for k in ("blurry", "sharp")]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash
            if all(os.path.isfile(f) and os.path.getsize(f) > 0 for f in files):
                done[index] = record
    return done


def _write_manifest(config, records):
    lines = "".join(json.dumps(records[i]) + "\n" for i in sorted(records))
    write_atomic(os.path.join(config.out, "manifest.jsonl"), lines.encode("utf-8"))


def _write_settings(config):
    from .. import __version__

    data = {"fastblur": __version__, "settings": config.to_dict()}
    write_atomic(os.path.join(config.out, "args.json"), (json.dumps(data, indent=2) + "\n").encode("utf-8"))


def _pair_total(config, sources):
    """How many pairs the run makes: ``count``, or ``n_images`` for each source."""
    return config.count if config.count is not None else len(sources) * config.n_images


def _start_run(config, total, records):
    """A run's summary and stage timer, the indices still to make (not in ``records``)
    and those shown in the preview (a range)."""
    summary = GenerateSummary(out=config.out, total=total)
    timer = StageTimer(enabled=config.timings)
    summary.timings = timer if config.timings else None
    summary.skipped = sum(1 for i in records if i < total)
    todo = [i for i in range(total) if i not in records]
    return summary, timer, todo, range(min(config.preview_count, total) if config.preview else 0)


def generate(config, client=None):
    """Write an SBDD dataset as ``config`` says (the ``fastblur-gen`` command).

    Parameters
    ----------
    config : DatasetConfig or dict
        ``out`` is required; see :class:`~fastblur.sbdd.config.DatasetConfig`.
    client : distributed.Client, optional
        Make the pairs on this Dask cluster (:mod:`fastblur.sbdd.distributed`). So do
        runs with ``scheduler``/``scheduler_file``, ``layout="webdataset"`` or fsspec URLs
        for paths; the others use a local process pool and never import Dask.

    Returns
    -------
    GenerateSummary

    Raises
    ------
    ValueError
        Bad settings, no input images, or an ``out`` folder holding a dataset made with
        other settings. Problems with single images or mask files do not raise: they
        are reported (stderr) and counted in the summary.
    RuntimeError
        A worker process died (killed, out of memory).

    Notes
    -----
    With more than one worker the pairs are made in processes started with ``spawn``,
    which import the calling script again: a script calling ``generate`` must do so
    under ``if __name__ == "__main__":``.
    """
    from tqdm import tqdm

    if not isinstance(config, DatasetConfig):
        config = DatasetConfig.from_dict(dict(config))
    config = replace(config, backend=pinned_backend(config.backend))
    if config.out is None:
        raise ValueError("out must name the output folder (--out)")
    if config.masks == "maskrcnn" and config.masks_path is None:
        config = replace(config, masks_path=os.path.join(config.out, "masks"))
    from .distributed import generate_chunked, needs_chunks
    from .storage import local_paths

    config = local_paths(config)
    if client is not None or needs_chunks(config):
        return generate_chunked(config, client)
    if os.path.exists(config.out) and not os.path.isdir(config.out):
        raise ValueError(f"out {config.out!r} exists and is not a folder; pass a folder (--out)")
    config = replace(config, storage_options=None)  # nothing remote here; never in args.json
    sources = find_sources(config)
    total = _pair_total(config, sources)
    maker = PairMaker(config, sources)  # fails early on a bad kernel source
    os.makedirs(config.out, exist_ok=True)
    _check_settings(config)
    remove_temporaries(config.out)
    _write_settings(config)
    segment_missing(config, sources)
    records = _read_manifest(config)
    _write_manifest(config, records)
    summary, timer, todo, preview_indices = _start_run(config, total, records)
    previews = {}
    workers = min(config.workers or os.cpu_count() or 1, max(1, len(todo)))

    manifest = open(os.path.join(config.out, "manifest.jsonl"), "a", encoding="utf-8")
    progress = tqdm(total=len(todo), unit="pair", desc="fastblur-gen", disable=not config.progress,
                    file=sys.stderr, dynamic_ncols=True)
    start = time.perf_counter()

    def collect(answer):
        if answer["ok"]:
            record = answer["record"]
            records[record["index"]] = record
            with timer.stage("manifest"):
                manifest.write(json.dumps(record) + "\n")
                manifest.flush()
            timer.add(answer.get("timings", {}))
            summary.written += 1
        else:
            summary.failed += 1
            summary.failures.append((answer["index"], answer["name"], answer["message"]))
            progress.write(f"fastblur-gen: skipped pair {answer['index']} ({answer['name']}): {answer['message']}",
                           file=sys.stderr)
        if "preview" in answer:
            previews[answer["index"]] = answer["preview"]
        progress.update(1)

    try:
        if workers <= 1:
            try:
                for index in todo:
                    collect(maker.run(index, index in preview_indices))
            except KeyboardInterrupt:
                summary.interrupted = True
        else:
            summary.interrupted = _run_pool(config, sources, todo, preview_indices, workers, collect)
    finally:
        progress.close()
        manifest.close()
        summary.seconds = time.perf_counter() - start
    _write_manifest(config, records)

    if config.preview and not summary.interrupted:
        _write_preview(config, maker, sorted(preview_indices), previews)
    return summary


def _run_pool(config, sources, todo, preview_indices, workers, collect):
    """Run ``todo`` on a process pool; returns whether Ctrl-C interrupted it."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(config.to_dict(), sources))
    pending = set()
    queue = iter(todo)
    interrupted = False

    def refill():
        while len(pending) < 2 * workers:
            index = next(queue, None)
            if index is None:
                return
            pending.add(pool.submit(_run_in_worker, index, index in preview_indices))

    try:
        refill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                pending.discard(future)
                collect(future.result())
            refill()
    except BrokenProcessPool as error:
        raise RuntimeError(
            "a fastblur-gen worker process died (killed, out of memory, or a script that "
            "calls generate() outside `if __name__ == '__main__':`); rerun to resume"
        ) from error
    except KeyboardInterrupt:
        interrupted = True
        for future in pending:
            future.cancel()
        for future in pending:  # the pairs in progress finish: no partial file
            if not future.cancelled():
                try:
                    collect(future.result())
                except Exception:
                    pass
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return interrupted


def _write_preview(config, maker, indices, previews):
    from .preview import contact_sheet

    rows = []
    for index in indices:
        row = previews.get(index)
        if row is None:  # finished by an earlier run: remake it in memory
            answer = maker.run(index, preview=True, write=False)
            row = answer.get("preview")
        if row is not None:
            rows.append(row)
    if rows:
        contact_sheet(rows, config.preview)


def make_pair(config, index, sources=None):
    """Pair ``index`` of the dataset ``config`` describes, in memory (nothing written).

    Returns
    -------
    record : dict
        Its manifest line.
    result : PairResult
    kernels : ndarray, shape (n + 1, k, k)
        As stored for the reference.
    """
    if not isinstance(config, DatasetConfig):
        config = DatasetConfig.from_dict(dict(config))
    sources = sources if sources is not None else find_sources(config)
    record, _, _, result, kernels = PairMaker(config, sources).make(index)
    return record, result, kernels
