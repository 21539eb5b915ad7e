"""The pairs of a ``fastblur-gen`` run: its inputs, its output names, one pair at a time.

Pair ``i`` of a run takes sharp image ``(i // n_images) % len(images)`` and draws all of
its randomness from ``numpy.random.SeedSequence([seed, i])``, split into independent
streams: the masks, the kernels, the formation (the illumination gain first, then
:func:`~fastblur.sbdd.synthesize_pair`'s draws) and the camera. A pair therefore has the
same bytes whichever worker makes it and however many workers there are.

:func:`pair_paths` names a pair's files in the output layouts of docs/guide/generating.rst
(``NAME`` is ``<image name>_<variant>``, as the reference names its pairs); writing them,
the manifest and resuming are :mod:`fastblur.sbdd.distributed`'s.
"""
import os
from dataclasses import dataclass, field

import numpy as np

from .._atomic import write_atomic  # noqa: F401 (its old import path)
from .codecs import check_format, decode_image, encode_image
from .config import DatasetConfig
from .distributed import generate  # noqa: F401 (the writer's entry point, fastblur.sbdd.generate)
from ..projective import psf_field
from .camera import draw_camera
from .pair import synthesize_pair
from .sources import CACHE_BYTES, PairInputs
from .timings import StageTimer

__all__ = ["GenerateSummary", "Source", "find_sources", "generate", "make_pair", "read_image", "write_atomic"]

#: Real photographs shipped inside scikit-image's wheel (no download needed).
EMBEDDED_IMAGES = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                   "hubble_deep_field.jpg")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".jxl")
_PREVIEW_HEIGHT = 160
#: ``(blurry, sharp)`` folders of the flat layouts.
LAYOUT_FOLDERS = {"sbdd": ("blurry", "sharp"), "basicsr": ("input", "target")}


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
        return (f"{self.written} pairs written, {self.skipped} already done, {self.failed} failed "
                f"({self.pairs_per_second:.2f} pairs/s, {self.seconds:.1f} s) -> {self.out}"
                + (" [interrupted]" if self.interrupted else ""))


def _embedded_sources():
    from skimage.data import data_dir
    found = [n for n in EMBEDDED_IMAGES if os.path.isfile(os.path.join(data_dir, n))]
    if not found:
        raise ValueError("no input given and scikit-image's sample photographs are not installed here; "
                         "pass input (--input) with a folder of sharp images")
    stems = [os.path.splitext(n)[0] for n in found]
    return [Source(stem, os.path.join(data_dir, n), stem, stem, f"skimage:{n}") for n, stem in zip(found, stems)]


def find_sources(config):
    """The sharp images of a run, in a fixed order.

    ``input=None`` gives the embedded photographs. A GoPro tree (``[split/]SEQ/sharp/*``)
    is flattened as the reference's prepare step does (``SEQ_image``); any other folder
    (or prefix of an object store, :mod:`fastblur.sbdd.storage`) is searched recursively
    for images. Names come from the paths relative to ``input``: ``/`` becomes ``_``.

    Returns
    -------
    list of Source

    Raises
    ------
    ValueError
        No images, or an input that is not a folder.
    """
    from .storage import is_remote, join, open_storage
    if config.input is None:
        return _embedded_sources()
    if not is_remote(config.input) and not os.path.isdir(config.input):
        raise ValueError(f"input must be a folder of sharp images, got {config.input!r}")
    listed = open_storage(config.input, config.storage_options).sizes()
    relative = sorted(name for name in listed if name.lower().endswith(IMAGE_EXTENSIONS)
                      and not any(part.startswith(".") for part in name.split("/")))
    if config.input_layout in ("auto", "gopro"):
        for prefix in (config.split + "/", ""):
            parts = [(r, r[len(prefix):].split("/")) for r in relative if r.startswith(prefix)]
            gopro = sorted((p[0], os.path.splitext(p[2])[0], r) for r, p in parts if len(p) == 3 and p[1] == "sharp")
            if gopro:
                return [Source(f"{sequence}_{stem}", join(config.input, r), sequence, stem, r)
                        for sequence, stem, r in gopro]
        if config.input_layout == "gopro":
            raise ValueError(f"input {config.input!r} is not a GoPro tree ([{config.split}/]SEQUENCE/sharp/*.png)")
    names = [os.path.splitext(r)[0].replace("/", "_") for r in relative]
    clash = {n for n in names if names.count(n) > 1}
    sources = []
    for rel, name in zip(relative, names):
        if name in clash:  # a.png and a.jpg: keep both, told apart by the extension
            name = rel.replace("/", "_").replace(".", "_")
        group = rel.rsplit("/", 1)[0].replace("/", "_") if "/" in rel else "images"
        sources.append(Source(name, join(config.input, rel), group, os.path.basename(name), rel))
    if not sources:
        raise ValueError(f"input {config.input!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return sources


def read_image(path):
    """An RGB ``(H, W, 3)`` uint8 image; ``ValueError`` naming the file if it cannot be read."""
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as error:
        raise ValueError(f"cannot read image {path!r}: {error}") from error
    return decode_image(data, os.fspath(path))


def pair_location(index, n_sources, n_images):
    """``(source index, variant)`` of pair ``index``: images in turn, ``n_images`` each."""
    cycle, rest = divmod(index, n_sources * n_images)
    source_index, variant = divmod(rest, n_images)
    return source_index, variant + cycle * n_images


def pair_paths(config, source, variant):
    """``(name, blurry path, sharp path)`` of a pair in the configured layout, relative to ``out``."""
    name = f"{source.name}_{variant}"
    if config.layout in LAYOUT_FOLDERS:
        folders, file = LAYOUT_FOLDERS[config.layout], name
    else:
        folder = os.path.join(config.split, source.group)
        folders, file = (os.path.join(folder, "blur"), os.path.join(folder, "sharp")), f"{source.stem}_{variant}"
    return (name, *(os.path.normpath(os.path.join(f, f"{file}.{config.format}")) for f in folders))


def _encode(image, config):
    return encode_image(image, config.format, compression=config.png_compression, quality=config.quality)


class PairMaker(PairInputs):
    """Makes the pairs of one run in one process from its :class:`~fastblur.sbdd.sources.PairInputs`;
    with ``config.timings``, ``timer`` gets the time of each stage."""

    def __init__(self, config, sources, cache_bytes=CACHE_BYTES):
        super().__init__(config, sources, cache_bytes)
        check_format(config.format)
        self.timer = StageTimer(enabled=config.timings)
        self._last_sharp = None  # (sharp image, its file bytes)

    def encode(self, blurry, sharp):
        """The file bytes ``(blurry, sharp)`` of a pair; a sharp target equal to the previous one
        (a source's variants without gains, streaks or boosts) reuses its bytes."""
        if self._last_sharp is None or not np.array_equal(self._last_sharp[0], sharp):
            self._last_sharp = (sharp, _encode(sharp, self.config))
        return _encode(blurry, self.config), self._last_sharp[1]

    def make(self, index):
        """Synthesise pair ``index``: ``(record, blurry uint8, sharp uint8, result, kernels)``."""
        config = self.config
        source_index, variant = pair_location(index, len(self.sources), config.n_images)
        source = self.sources[source_index]
        name, blurry_path, sharp_path = pair_paths(config, source, variant)
        # spawn(4)[:3] are spawn(3): the uniform model's streams do not change.
        mask_seed, kernel_seed, formation_seed, camera_seed = np.random.SeedSequence([config.seed, index]).spawn(4)
        with self.timer.stage("read"):
            image = self.image(source_index)
        smallest = max(config.min_image_size, config.kernel_size)
        if min(image.shape[:2]) <= smallest:
            raise ValueError(f"image {source.label!r} of size {image.shape[:2]} is too small: "
                             f"its shorter side must exceed {smallest}")
        with self.timer.stage("masks"):
            masks, mask_entry = self.object_masks(source_index, image, np.random.default_rng(mask_seed))
        with self.timer.stage("kernels"):
            kernels, kernel_ids = self.kernels.draw(len(masks) + 1, np.random.default_rng(kernel_seed))
        with self.timer.stage("synthesis"):
            rng = np.random.default_rng(formation_seed)
            gain = self.illumination_gain(rng)
            camera = "uniform"
            if config.camera_model != "uniform":
                camera = draw_camera(np.random.default_rng(camera_seed), config.exposure, config.focal_length,
                                     config.camera_roll, config.camera_exposure_spread, config.camera_roll_spread)
            result = synthesize_pair(image, kernels, masks, illumination_gain=gain, rng=rng, camera=camera,
                                     quantize=True, **self.options)
            blurry, sharp = result.to_uint8()
        params = result.params
        record = dict(index=index, name=name, blurry=blurry_path, sharp=sharp_path, source=source.label,
                      variant=variant, seed=[config.seed, index], masks=mask_entry, kernels=kernel_ids, gain=gain,
                      size=list(blurry.shape[:2]), offset=params["offset"],
                      saturated_fraction=params["saturated_fraction"], saturation_boost=params["saturation_boost"],
                      saturation_boost_in_blurry=params["saturation_boost_in_blurry"], streaks=len(params["streaks"]))
        if camera != "uniform":
            record["camera"] = params["camera"]
            # the preview shows the camera's PSF field (3 x 3, as stored kernels)
            field = psf_field(camera.homographies(image.shape), image.shape, (3, 3), config.kernel_size)
            kernels = np.ascontiguousarray(field.reshape(-1, *field.shape[2:])[:, ::-1, ::-1])
        return record, blurry, sharp, result, kernels

    def preview(self, index):
        """The contact-sheet row of pair ``index``, made in memory; None if it fails."""
        from .preview import preview_row
        try:
            _, blurry, sharp, result, kernels = self.make(index)
        except Exception:  # reported when the pair was made
            return None
        return preview_row(sharp, blurry, result.weights, kernels, _PREVIEW_HEIGHT)


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
