"""Settings of a dataset run: one dataclass, loadable from TOML, mirrored by ``fastblur-gen``.

A TOML file holds the dataclass fields (the CLI's long options, with ``_`` or ``-``) at
the top level or inside tables, which only group them (docs/guide/generating.rst).
"""
import numbers
import os
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Optional

from .._validation import check_choice, check_count, check_flag, check_instance, check_path, check_real
from ..backends import GENERATION_BACKENDS, pinned_backend  # noqa: F401 (the policy lives with the backends)
from .codecs import PNG_COMPRESSIONS
from .formation import NoiseConfig, SaturationConfig, StreakConfig

__all__ = ["DatasetConfig", "load_config", "MASK_SOURCES", "LAYOUTS", "FORMATS", "INPUT_LAYOUTS", "PNG_COMPRESSIONS"]

MASK_SOURCES = ("classical", "shapes", "detectron2", "coco", "labels", "maskrcnn", "none")
#: Networks of ``masks="maskrcnn"`` (:data:`fastblur.sbdd.segment.MODELS`).
SEGMENT_MODELS = ("maskrcnn_resnet50_fpn_v2", "maskrcnn_resnet50_fpn")
LAYOUTS = ("sbdd", "gopro", "basicsr", "webdataset")
FORMATS = ("png", "jpg", "jxl")
INPUT_LAYOUTS = ("auto", "folder", "gopro")

#: Fields that do not change the pairs: a rerun may change them and resume.
#: ``png_compression`` changes the files' bytes, never their pixels.
RUN_ONLY_FIELDS = ("out", "count", "workers", "preview", "preview_count", "progress", "overwrite",
                   "png_compression", "timings", "scheduler", "scheduler_file", "chunk_size", "timeout",
                   "storage_options")


def _real(low, low_inclusive=True, high=None):
    def check(value, name):
        check_real(value, name, low, high, low_inclusive=low_inclusive)
        return value  # as given: args.json keeps the user's numbers
    return check


#: ``(field names, check)``: ``check(value, name=name)`` returns the value to store or raises.
FIELD_RULES = (
    (("out", "input", "masks_path", "kernels_root", "preview", "kernels"), check_path),
    (("input_layout",), partial(check_choice, choices=INPUT_LAYOUTS)),
    (("masks",), partial(check_choice, choices=MASK_SOURCES)),
    (("segment_model",), partial(check_choice, choices=SEGMENT_MODELS)),
    (("segment_weights",), check_path),
    (("layout",), partial(check_choice, choices=LAYOUTS)),
    (("format",), partial(check_choice, choices=FORMATS)),
    (("png_compression",), partial(check_choice, choices=PNG_COMPRESSIONS)),
    (("crf",), partial(check_choice, choices=("gamma", "exponential", "none"))),
    (("camera_model",), partial(check_choice, choices=("uniform", "projective"))),
    (("camera_exposure_spread", "camera_roll_spread"), _real(0, high=0.999)),
    (("backend",), partial(check_instance, kind=str, optional=False)),
    (("min_image_size", "seed", "min_object_area", "max_objects", "min_streaks", "count"),
     partial(check_count, low=0)),
    (("n_images", "kernel_size", "max_streaks", "preview_count", "workers"), partial(check_count, low=1)),
    (("quality",), partial(check_count, low=0, high=100)),
    (("score_threshold", "exposure", "focal_length", "jitter_illumination", "min_sat_increment", "camera_roll",
      "max_sat_increment", "min_saturated_fraction", "noise_std", "poisson_peak"), _real(0)),
    (("gamma", "exponential_factor"), _real(0, low_inclusive=False)),
    (("random_masks", "augment_illumination", "random_white_streaks", "saturation_streaks",
      "sat_augmentation_in_blurry", "gaussian_noise", "progress", "overwrite", "timings"), check_flag),
    # beyond one machine (fastblur.sbdd.distributed)
    (("scheduler",), partial(check_instance, kind=str)),
    (("scheduler_file",), check_path),
    (("chunk_size", "shard_size"), partial(check_count, low=1)),
    (("timeout",), _real(0, low_inclusive=False)),
    (("storage_options",), partial(check_instance, kind=dict)),
)


@dataclass
class DatasetConfig:
    """Everything ``generate`` needs; field names follow the reference's options.

    Inputs
        ``input`` (folder of sharp images, or a GoPro ``GOPRO_Large`` root; ``None``: the
        embedded scikit-image photographs), ``input_layout`` (``auto``/``folder``/
        ``gopro``), ``split`` (GoPro split), ``min_image_size`` (shorter side must be
        larger), ``n_images`` (pairs per sharp image), ``count`` (pairs in all; default
        ``n_images`` per input image).
    Masks
        ``masks`` (one of :data:`MASK_SOURCES`), ``masks_path`` (folder of ``NAME.npz`` /
        ``NAME.png``, or a COCO JSON), ``score_threshold``, ``min_object_area``,
        ``max_objects``, ``classes``, ``random_masks`` (masks of a random input image);
        for ``masks="maskrcnn"`` (segmented on the fly into ``masks_path``, default
        ``OUT/masks``, then read as ``detectron2``): ``segment_model`` and
        ``segment_weights`` (see :mod:`fastblur.sbdd.segment`).
    Kernels
        ``kernels`` (``"generated"`` or a list file / folder), ``kernels_root``,
        ``kernel_size``, ``exposure``, ``focal_length``.
    Camera
        ``camera_model`` (``uniform``: the background kernel; ``projective``: the
        projective field of a drawn camera rotation, :mod:`fastblur.sbdd.camera`, with
        ``exposure`` and ``focal_length``), ``camera_roll`` (roll scale relative to yaw
        and pitch), ``camera_roll_spread`` and ``camera_exposure_spread`` (relative
        spreads in [0, 1)).
    Formation
        ``crf`` (``gamma``/``exponential``/``none``), ``gamma``, ``exponential_factor``,
        ``augment_illumination``, ``jitter_illumination``; streaks
        (``random_white_streaks``, ``prob_streaks``, ``min_streaks``, ``max_streaks``,
        ``min_sat_increment``, ``max_sat_increment``); saturation
        (``saturation_streaks``, ``sat_augmentation_in_blurry``,
        ``min_saturated_fraction``); noise (``gaussian_noise`` with ``noise_std``,
        ``poisson_peak``).
    Output
        ``out``, ``layout``, ``format``, ``quality``, ``png_compression`` (``"fast"`` or
        ``"small"``, both lossless: :mod:`fastblur.sbdd.codecs`), ``preview``,
        ``preview_count``.
    Run
        ``seed``, ``workers`` (``None``: all cores), ``backend`` (``"auto"`` is pinned to
        one backend for the whole run, :data:`GENERATION_BACKENDS`, so that bytes do not
        depend on the number of workers), ``progress``, ``overwrite``, ``timings``
        (measure the stages of each pair: ``GenerateSummary.timings``).
    """

    out: Optional[str] = None
    input: Optional[str] = None
    input_layout: str = "auto"
    split: str = "train"
    min_image_size: int = 0
    n_images: int = 1
    count: Optional[int] = None
    seed: int = 0
    workers: Optional[int] = None

    masks: str = "classical"
    masks_path: Optional[str] = None
    score_threshold: float = 0.9
    min_object_area: int = 4000
    max_objects: int = 5
    classes: Optional[list] = None
    random_masks: bool = False
    segment_model: str = "maskrcnn_resnet50_fpn_v2"
    segment_weights: str = "default"

    kernels: str = "generated"
    kernels_root: Optional[str] = None
    kernel_size: int = 65
    exposure: float = 0.5
    focal_length: float = 1000.0
    camera_model: str = "uniform"
    camera_roll: float = 1.0
    camera_roll_spread: float = 0.0
    camera_exposure_spread: float = 0.0

    crf: str = "gamma"
    gamma: float = 2.2
    exponential_factor: float = 7.0
    augment_illumination: bool = False
    jitter_illumination: float = 1.0
    random_white_streaks: bool = False
    prob_streaks: float = 0.5
    min_streaks: int = 10
    max_streaks: int = 100
    min_sat_increment: float = 0.0
    max_sat_increment: float = 2000.0
    saturation_streaks: bool = False
    sat_augmentation_in_blurry: bool = False
    min_saturated_fraction: float = 1e-3
    gaussian_noise: bool = False
    noise_std: float = 0.0
    poisson_peak: Optional[float] = None

    layout: str = "sbdd"
    format: str = "png"
    quality: int = 95
    png_compression: str = "fast"
    preview: Optional[str] = None
    preview_count: int = 4
    backend: str = "auto"
    progress: bool = True
    overwrite: bool = False
    timings: bool = False

    # beyond one machine (fastblur.sbdd.distributed): none of these changes the pairs
    scheduler: Optional[str] = None
    scheduler_file: Optional[str] = None
    chunk_size: Optional[int] = None
    timeout: float = 30.0
    storage_options: Optional[dict] = None
    shard_size: Optional[int] = None

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Raise ``ValueError``/``TypeError`` naming the first bad field (:data:`FIELD_RULES`)."""
        optional = {f.name for f in fields(self) if f.default is None}  # the fields that may be None
        for names, check in FIELD_RULES:
            for name in names:
                value = getattr(self, name)
                if value is not None or name not in optional:
                    setattr(self, name, check(value, name=name))
        if self.masks in ("detectron2", "coco", "labels") and self.masks_path is None:
            raise ValueError(f"masks={self.masks!r} needs masks_path (--masks-path)")
        if self.classes is not None:
            self.classes = [self.classes] if isinstance(self.classes, (str, numbers.Integral)) else list(self.classes)
        if self.scheduler is not None and self.scheduler_file is not None:
            raise ValueError("give scheduler or scheduler_file, not both")
        self.formation_options()  # the formation configs validate themselves
        return self

    @property
    def response_curve(self):
        """``crf`` as :func:`fastblur.sbdd.synthesize_pair` takes it (``None`` for ``none``)."""
        return None if self.crf == "none" else self.crf

    def formation_options(self):
        """Keyword arguments of :func:`fastblur.sbdd.synthesize_pair` (all but the gain)."""
        streaks = saturation = noise = None
        if self.random_white_streaks:
            streaks = StreakConfig(self.prob_streaks, self.min_streaks, self.max_streaks,
                                   float(self.min_sat_increment), float(self.max_sat_increment))
        if self.saturation_streaks or self.sat_augmentation_in_blurry:
            saturation = SaturationConfig(self.saturation_streaks, self.sat_augmentation_in_blurry,
                                          min_fraction=float(self.min_saturated_fraction))
        std = float(self.noise_std) if self.gaussian_noise else 0.0
        if std > 0 or self.poisson_peak is not None:
            noise = NoiseConfig(None if self.poisson_peak is None else float(self.poisson_peak), std)
        return dict(crf=self.response_curve, gamma=float(self.gamma),
                    exponential_factor=float(self.exponential_factor), saturation=saturation,
                    streaks=streaks, noise=noise, backend=self.backend)

    def to_dict(self):
        """The settings as a JSON-serialisable dict (what ``args.json`` holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """Build from a dict of field names (``-`` accepted for ``_``); unknown names fail."""
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in data.items():
            name = key.replace("-", "_")
            if name == "exponential_crf":  # the reference's switch
                if value:
                    values["crf"] = "exponential"
                continue
            name = "gamma" if name == "gamma_factor" else name
            if name not in known:
                raise ValueError(f"unknown setting {key!r}; known settings: {sorted(known)}")
            values[name] = value
        return cls(**values)


def _flatten(table, where="config"):
    flat = {}
    for key, value in table.items():
        grouped = isinstance(value, dict) and key != "storage_options"  # a table only groups, except that one
        for inner, item in (_flatten(value, f"{where}.{key}") if grouped else {key: value}).items():
            if inner in flat:
                raise ValueError(f"setting {inner!r} is given twice in {where}")
            flat[inner] = item
    return flat


def load_config(path, **overrides):
    """A :class:`DatasetConfig` from a TOML file, with ``overrides`` on top.

    Relative paths in the file (``input``, ``out``, ``masks_path``, ``kernels``,
    ``kernels_root``, ``preview``) are taken relative to the file's folder.
    """
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    path = os.fspath(path)
    try:
        with open(path, "rb") as stream:
            table = tomllib.load(stream)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path!r}") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"config file {path!r} is not valid TOML: {error}") from error
    data = _flatten(table, os.path.basename(path))
    base = os.path.dirname(os.path.abspath(path))
    for key in ("input", "out", "masks_path", "kernels", "kernels_root", "preview"):
        value = data.get(key)
        if isinstance(value, str) and "://" not in value and not (
                key == "kernels" and value in ("generated", "camera_shake")):
            data[key] = os.path.join(base, os.path.expanduser(value))
    data.update(overrides)
    return DatasetConfig.from_dict(data)
