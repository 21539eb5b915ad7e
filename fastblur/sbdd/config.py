"""Settings of a dataset run: one dataclass, loadable from TOML, mirrored by ``fastblur-gen``.

A TOML file holds the same names as the dataclass fields (the CLI's long options with
``_`` or ``-``), at the top level or inside tables, which are only for grouping::

    out = "sbdd_out"
    count = 1000
    seed = 7

    [formation]
    gamma = 2.2
    augment_illumination = true

    [kernels]
    kernels = "ks65_texp05_F1000/blur_kernels_train.txt"
    kernels_root = "ks65_texp05_F1000"
"""
import numbers
import os
from dataclasses import asdict, dataclass, fields

from .formation import NoiseConfig, SaturationConfig, StreakConfig, check_crf

__all__ = ["DatasetConfig", "load_config", "MASK_SOURCES", "LAYOUTS", "FORMATS", "INPUT_LAYOUTS"]

MASK_SOURCES = ("classical", "shapes", "detectron2", "coco", "labels", "none")
LAYOUTS = ("sbdd", "gopro", "basicsr", "webdataset")
FORMATS = ("png", "jpg")
INPUT_LAYOUTS = ("auto", "folder", "gopro")

#: Fields that do not change the pairs: a rerun may change them and resume.
RUN_ONLY_FIELDS = ("out", "count", "workers", "preview", "preview_count", "progress", "overwrite",
                   "scheduler", "scheduler_file", "chunk_size", "timeout", "storage_options")

#: What ``backend="auto"`` means when making pairs: the first available of these, fixed
#: for the whole run. The per-call ``auto`` choice depends on the thread count (and on
#: the machine's calibration), and backends differ in the last bits, so a pair's bytes
#: would depend on how many workers made it; the direct backends suit motion PSFs.
GENERATION_BACKENDS = ("native", "numba", "numpy")


def pinned_backend(name):
    """``name``, or for ``"auto"`` the backend every pair of a run is made with."""
    if name != "auto":
        return name
    from ..backends import available_backends

    available = available_backends()
    return next(candidate for candidate in GENERATION_BACKENDS if candidate in available)


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
        ``max_objects``, ``classes``, ``random_masks`` (masks of a random input image).
    Kernels
        ``kernels`` (``"generated"`` or a list file / folder), ``kernels_root``,
        ``kernel_size``, ``exposure``, ``focal_length``.
    Formation
        ``crf`` (``gamma``/``exponential``/``none``), ``gamma``, ``exponential_factor``,
        ``augment_illumination``, ``jitter_illumination``; streaks
        (``random_white_streaks``, ``prob_streaks``, ``min_streaks``, ``max_streaks``,
        ``min_sat_increment``, ``max_sat_increment``); saturation
        (``saturation_streaks``, ``sat_augmentation_in_blurry``,
        ``min_saturated_fraction``); noise (``gaussian_noise`` with ``noise_std``,
        ``poisson_peak``).
    Output
        ``out``, ``layout``, ``format``, ``quality``, ``preview``, ``preview_count``.
    Run
        ``seed``, ``workers`` (``None``: all cores), ``backend`` (``"auto"`` is pinned to
        one backend for the whole run, :data:`GENERATION_BACKENDS`, so that bytes do not
        depend on the number of workers), ``progress``, ``overwrite``.
    """

    out: str = None
    input: str = None
    input_layout: str = "auto"
    split: str = "train"
    min_image_size: int = 0
    n_images: int = 1
    count: int = None
    seed: int = 0
    workers: int = None

    masks: str = "classical"
    masks_path: str = None
    score_threshold: float = 0.9
    min_object_area: int = 4000
    max_objects: int = 5
    classes: list = None
    random_masks: bool = False

    kernels: str = "generated"
    kernels_root: str = None
    kernel_size: int = 65
    exposure: float = 0.5
    focal_length: float = 1000.0

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
    poisson_peak: float = None

    layout: str = "sbdd"
    format: str = "png"
    quality: int = 95
    preview: str = None
    preview_count: int = 4
    backend: str = "auto"
    progress: bool = True
    overwrite: bool = False

    # beyond one machine (fastblur.sbdd.distributed): none of these changes the pairs
    scheduler: str = None
    scheduler_file: str = None
    chunk_size: int = None
    timeout: float = 30.0
    storage_options: dict = None
    shard_size: int = None

    def __post_init__(self):
        self.validate()

    # -- checks -------------------------------------------------------------------------
    def validate(self):
        """Raise ``ValueError``/``TypeError`` naming the first bad field."""
        def choice(name, options):
            value = getattr(self, name)
            if value not in options:
                raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")

        def integer(name, low, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise TypeError(f"{name} must be an integer, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value!r}")

        def real(name, low=None, optional=False):
            value = getattr(self, name)
            if optional and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number, got {value!r}")
            if low is not None and value < low:
                raise ValueError(f"{name} must be >= {low}, got {value!r}")

        def flag(name):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be true or false, got {getattr(self, name)!r}")

        def path(name, optional=True):
            value = getattr(self, name)
            if value is None and optional:
                return
            if not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a path, got {value!r}")
            setattr(self, name, os.fspath(value))

        for name in ("out", "input", "masks_path", "kernels_root", "preview"):
            path(name)
        path("kernels", optional=False)
        choice("input_layout", INPUT_LAYOUTS)
        choice("masks", MASK_SOURCES)
        choice("layout", LAYOUTS)
        choice("format", FORMATS)
        if self.crf not in ("gamma", "exponential", "none"):
            raise ValueError(f"crf must be one of ['gamma', 'exponential', 'none'], got {self.crf!r}")
        for name, low in (("min_image_size", 0), ("n_images", 1), ("seed", 0), ("min_object_area", 0),
                          ("max_objects", 0), ("kernel_size", 1), ("min_streaks", 0), ("max_streaks", 1),
                          ("quality", 0), ("preview_count", 1)):
            integer(name, low)
        integer("count", 0, optional=True)
        integer("workers", 1, optional=True)
        if self.quality > 100:
            raise ValueError(f"quality must be in [0, 100], got {self.quality}")
        for name in ("score_threshold", "exposure", "focal_length", "jitter_illumination",
                     "min_sat_increment", "max_sat_increment", "min_saturated_fraction", "noise_std"):
            real(name, 0)
        real("poisson_peak", 0, optional=True)
        for name in ("random_masks", "augment_illumination", "random_white_streaks", "saturation_streaks",
                     "sat_augmentation_in_blurry", "gaussian_noise", "progress", "overwrite"):
            flag(name)
        if self.masks in ("detectron2", "coco", "labels") and self.masks_path is None:
            raise ValueError(f"masks={self.masks!r} needs masks_path (--masks-path)")
        if self.classes is not None:
            if isinstance(self.classes, (str, numbers.Integral)):
                self.classes = [self.classes]
            self.classes = list(self.classes)
        if not isinstance(self.backend, str):
            raise TypeError(f"backend must be a string, got {self.backend!r}")
        _check_cluster_fields(self)
        check_crf(self.response_curve, self.gamma, self.exponential_factor)
        self.formation_options()  # the formation configs validate themselves
        return self

    # -- views --------------------------------------------------------------------------
    @property
    def response_curve(self):
        """``crf`` as :func:`fastblur.sbdd.synthesize_pair` takes it (``None`` for ``none``)."""
        return None if self.crf == "none" else self.crf

    def formation_options(self):
        """Keyword arguments of :func:`fastblur.sbdd.synthesize_pair` (all but the gain)."""
        streaks = None
        if self.random_white_streaks:
            streaks = StreakConfig(self.prob_streaks, self.min_streaks, self.max_streaks,
                                   float(self.min_sat_increment), float(self.max_sat_increment))
        saturation = None
        if self.saturation_streaks or self.sat_augmentation_in_blurry:
            saturation = SaturationConfig(self.saturation_streaks, self.sat_augmentation_in_blurry,
                                          min_fraction=float(self.min_saturated_fraction))
        noise = None
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
            if name == "gamma_factor":
                name = "gamma"
            if name not in known:
                raise ValueError(f"unknown setting {key!r}; known settings: {sorted(known)}")
            values[name] = value
        return cls(**values)


def _check_cluster_fields(config):
    """The settings of :mod:`fastblur.sbdd.distributed`: scheduler, chunks, shards, storage."""
    for name in ("scheduler", "scheduler_file"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a string, got {value!r}")
    if config.scheduler is not None and config.scheduler_file is not None:
        raise ValueError("give scheduler or scheduler_file, not both")
    for name in ("chunk_size", "shard_size"):
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an integer, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value!r}")
    if isinstance(config.timeout, bool) or not isinstance(config.timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds, got {config.timeout!r}")
    if not config.timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {config.timeout!r}")
    if config.storage_options is not None and not isinstance(config.storage_options, dict):
        raise TypeError(f"storage_options must be a dict (JSON object), got {config.storage_options!r}")


def _flatten(table, where="config"):
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict) and key != "storage_options":  # a table only groups, except that one
            for inner, item in _flatten(value, f"{where}.{key}").items():
                if inner in flat:
                    raise ValueError(f"setting {inner!r} is given twice in {where}")
                flat[inner] = item
        else:
            if key in flat:
                raise ValueError(f"setting {key!r} is given twice in {where}")
            flat[key] = value
    return flat


def read_toml(path):
    """The settings in a TOML file as a flat dict (tables flattened)."""
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
    return _flatten(table, os.path.basename(path))


def load_config(path, **overrides):
    """A :class:`DatasetConfig` from a TOML file, with ``overrides`` on top.

    Relative paths in the file (``input``, ``out``, ``masks_path``, ``kernels``,
    ``kernels_root``, ``preview``) are taken relative to the file's folder.
    """
    data = read_toml(path)
    base = os.path.dirname(os.path.abspath(os.fspath(path)))
    for key in ("input", "out", "masks_path", "kernels", "kernels_root", "preview"):
        value = data.get(key)
        if isinstance(value, str) and "://" not in value and not (
                key == "kernels" and value in ("generated", "camera_shake")):
            data[key] = os.path.join(base, os.path.expanduser(value))
    data.update(overrides)
    return DatasetConfig.from_dict(data)
