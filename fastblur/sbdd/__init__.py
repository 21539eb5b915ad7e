"""SBDD training pairs: the formation model, mask and kernel sources, the dataset writer.

::

    synthesize_pair(sharp, kernels, object_masks, ...)   one pair (PairResult)
    generate(DatasetConfig(...))                          a dataset on disk (fastblur-gen)
    CropSampler(config).batch(indices, device="cuda")     random crop pairs, formed in a batch
    synthesize_pair(..., camera=draw_camera(rng))         the projective camera model

The formation model is DESIGN's "The SBDD formation model"; kernels are given as stored
for the reference generator (applied by correlation), see :func:`synthesize_pair`.
Mask readers live in :mod:`fastblur.sbdd.masks`, kernel sources in
:mod:`fastblur.sbdd.kernel_sources`, image files (PNG writers, JPEG XL, the decoded-image
cache) in :mod:`fastblur.sbdd.codecs`, per-stage timings in :mod:`fastblur.sbdd.timings`.
"""
from .formation import NoiseConfig, SaturationConfig, StreakConfig, quantize
from .camera import ProjectiveCamera, draw_camera
from .pair import PairResult, synthesize_pair

__all__ = [
    "CropRecipe",
    "CropSampler",
    "DatasetConfig",
    "GenerateSummary",
    "NoiseConfig",
    "PairResult",
    "ProjectiveCamera",
    "SaturationConfig",
    "RecipeBatch",
    "StreakConfig",
    "draw_camera",
    "form_batch",
    "generate",
    "load_config",
    "quantize",
    "stack_recipes",
    "synthesize_pair",
]


def __getattr__(name):
    # The dataset layer imports OpenCV, tqdm and scikit-image: load it on first use.
    if name in ("DatasetConfig", "load_config"):
        from . import config

        return getattr(config, name)
    if name in ("generate", "GenerateSummary"):
        from . import dataset

        return getattr(dataset, name)
    if name == "CropSampler":
        from . import crops

        return crops.CropSampler
    if name in ("CropRecipe", "RecipeBatch", "form_batch", "stack_recipes"):
        from . import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
