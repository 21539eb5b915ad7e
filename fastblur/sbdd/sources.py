"""A pair's inputs besides its sharp image, as a run's settings choose them, for both the
dataset writer (:class:`fastblur.sbdd.dataset.PairMaker`) and the crop sampler
(:class:`fastblur.sbdd.CropSampler`), so that their pairs come from the same sources."""
import os

import numpy as np

from . import masks as mask_sources
from .codecs import DecodedCache
from .config import pinned_backend
from .kernel_sources import kernel_source

__all__ = ["CACHE_BYTES", "PairInputs", "segment_missing"]

#: Bytes of decoded images, segmentations and mask files a worker keeps (11 decoded 720p images).
CACHE_BYTES = 32 * 2**20


class PairInputs:
    """The object masks, kernel source (``kernels``), illumination gain and formation
    ``options`` (backend pinned) of the run ``config`` over the sharp images ``sources``.

    Decoded sharp images, their classical segmentations and mask files share one
    :class:`~fastblur.sbdd.codecs.DecodedCache` of ``cache_bytes``: the consecutive variants
    of an image are made from one decode.
    """

    def __init__(self, config, sources, cache_bytes=CACHE_BYTES):
        self.config = config
        self.sources = sources
        self.kernels = kernel_source(config.kernels, config.kernel_size, config.kernels_root,
                                     config.exposure, config.focal_length)
        self.options = dict(config.formation_options(), backend=pinned_backend(config.backend))
        self.cache = DecodedCache(cache_bytes)

    def image(self, source_index):
        """The decoded sharp image ``source_index`` (cached, read-only)."""
        from .dataset import read_image
        return self.cache.get(("image", source_index), lambda: read_image(self.sources[source_index].path))

    def object_masks(self, source_index, image, rng):
        """``(masks (n, H, W), manifest entry)`` for the pair's image."""
        config = self.config
        shape = image.shape[:2]
        common = dict(max_objects=config.max_objects, min_area=config.min_object_area, return_ids=True)
        if config.masks == "none" or config.max_objects == 0:
            return np.zeros((0,) + shape, bool), {"source": "none", "ids": []}
        if config.masks == "shapes":
            masks, ids = mask_sources.random_shape_masks(shape, rng=rng, **common)
            return masks, {"source": "shapes", "ids": ids}
        mask_index = int(rng.integers(len(self.sources))) if config.random_masks else source_index
        source = self.sources[mask_index]
        if config.masks == "classical":
            other = image if mask_index == source_index else self.image(mask_index)
            regions = self.cache.get(("regions", mask_index), lambda: mask_sources.segment_regions(other))
            masks, ids = mask_sources.classical_masks(other, rng=rng, regions=regions, **common)
        # mask files: read once for all the variants of a source (cached with the images)
        elif config.masks in ("detectron2", "maskrcnn"):  # maskrcnn: segment_missing wrote them
            masks, ids = self.cache.get(("masks", mask_index), lambda: mask_sources.detectron2_masks(
                os.path.join(config.masks_path, source.name + ".npz"),
                score_threshold=config.score_threshold, classes=config.classes, **common))
        elif config.masks == "labels":
            masks, ids = self.cache.get(("masks", mask_index), lambda: mask_sources.label_map_masks(
                os.path.join(config.masks_path, source.name + ".png"), **common))
        else:
            masks, ids = self.cache.get(("masks", mask_index), lambda: mask_sources.coco_masks(
                config.masks_path, os.path.basename(source.path), categories=config.classes, **common))
        if masks.shape[1:] != shape:
            if mask_index == source_index:
                raise ValueError(f"the {config.masks} masks of {source.label!r} are {masks.shape[1:]}, "
                                 f"the image is {shape}")
            masks = mask_sources.resize_masks(masks, shape)
        return masks, {"source": config.masks, "from": source.label, "ids": ids}

    def illumination_gain(self, rng):
        """The gain ``1 + 2 j u`` drawn from ``rng`` (DESIGN step 3), or None without the
        augmentation (nothing drawn)."""
        if not self.config.augment_illumination:
            return None
        return 1.0 + 2.0 * self.config.jitter_illumination * float(rng.random())


def segment_missing(config, sources):
    """For ``masks="maskrcnn"``: segment the ``sources`` that have no ``NAME.npz`` in
    ``config.masks_path`` yet (:func:`fastblur.sbdd.segment.segment_sources`), so that
    their masks are then read as ``detectron2`` ones. Does nothing for other sources.

    Raises
    ------
    ValueError
        No ``masks_path``.
    fastblur.sbdd.segment.WeightsNotFoundError
        The network's weights are not in torchvision's cache.
    """
    if config.masks != "maskrcnn":
        return None
    if config.masks_path is None:
        raise ValueError("masks='maskrcnn' needs masks_path, the folder its .npz files are cached in")
    import torch

    from .segment import build_model, segment_sources
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(config.segment_model, config.segment_weights, device=device)
    return segment_sources(sources, config.masks_path, model, progress=config.progress, device=device)
