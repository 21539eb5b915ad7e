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
import importlib

from .formation import NoiseConfig, SaturationConfig, StreakConfig, quantize
from .camera import ProjectiveCamera, draw_camera
from .pair import PairResult, synthesize_pair

__all__ = [
    "CropRecipe", "CropSampler", "DatasetConfig", "GenerateSummary", "NoiseConfig", "PairResult", "ProjectiveCamera",
    "SaturationConfig", "RecipeBatch", "StreakConfig", "draw_camera", "form_batch", "generate", "load_config",
    "quantize", "stack_recipes", "synthesize_pair",
]

#: Where the names loaded on first use live: the dataset layer imports OpenCV, tqdm and scikit-image.
_LAZY = dict(DatasetConfig="config", load_config="config", generate="dataset", GenerateSummary="dataset",
             CropSampler="crops", CropRecipe="batch", RecipeBatch="batch", form_batch="batch", stack_recipes="batch")


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
