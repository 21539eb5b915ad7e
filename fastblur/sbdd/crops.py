"""Random training crops synthesised on the fly, for data loaders (no dataset on disk).

A :class:`CropSampler` turns an index into one ``(blurry, sharp)`` crop pair with the
same formation model, mask and kernel sources as :func:`fastblur.sbdd.generate`. Pair
``index`` of ``epoch`` draws everything from ``SeedSequence([seed, epoch, index])``, so a
pair does not depend on which worker makes it or on what was made before.
"""
import warnings
from collections import OrderedDict

import numpy as np

from .._validation import check_instance, check_positive
from .batch import CropRecipe, form_batch, stack_recipes
from .config import DatasetConfig
from .dataset import find_sources, read_image
from .pair import synthesize_pair
from .pipeline import PairDraws, to_unit_range
from .sources import PairInputs, segment_missing


class CropSampler:
    """Makes ``crop_size`` × ``crop_size`` SBDD pairs from random windows of sharp images.

    Parameters
    ----------
    config : DatasetConfig, optional
        Inputs, masks, kernels and formation options (``out``, ``count`` and the output
        settings are ignored). Default: the embedded photographs, classical masks and
        generated 65×65 camera-shake kernels.
    crop_size : int, optional
        Side of the returned crops (the window read from the sharp image is
        ``crop_size + kernel_size - 1``, so the crop is the blur's ``valid`` grid).
    quantize : bool, optional
        Round both images to 8 bits as the files of ``fastblur-gen`` are (default), or
        keep float precision.
    cache_images : int, optional
        Decoded sharp images kept in memory (least recently used are dropped).
    """

    def __init__(self, config=None, crop_size=256, quantize=True, cache_images=16):
        self.crop_size = check_positive(crop_size, "crop_size", integer=True)
        self._cache_images = check_positive(cache_images, "cache_images", integer=True)
        self.config = check_instance(config, DatasetConfig, "config") or DatasetConfig()
        self.quantize = bool(quantize)
        self.sources = find_sources(self.config)
        segment_missing(self.config, self.sources)
        self.window = self.crop_size + self.config.kernel_size - 1
        self._maker = PairInputs(self.config, self.sources)
        self._images = OrderedDict()
        self._unusable = set()

    def exclude(self, indices):
        """Mark the sharp images ``indices`` unusable: pairs redraw them, as they redraw an
        image they find unreadable or smaller than the crop window. ``ValueError`` if no
        image is left."""
        self._unusable.update(indices)
        if len(self._unusable) == len(self.sources):
            raise ValueError(f"no usable sharp image: all {len(self.sources)} are unreadable or "
                             f"smaller than crop_size + kernel_size - 1 = {self.window}") from None

    def _image(self, index):
        """The decoded image ``index``, or None if it is unreadable or smaller than the window."""
        if index in self._unusable:
            return None
        if index in self._images:
            self._images.move_to_end(index)
            return self._images[index]
        try:
            image = read_image(self.sources[index].path)
            if min(image.shape[:2]) < self.window:
                raise ValueError(f"image {self.sources[index].label!r} of size {image.shape[:2]} is smaller "
                                 f"than the crop window {self.window}")
        except ValueError as error:
            warnings.warn(f"skipping {error}", RuntimeWarning, stacklevel=3)
            self.exclude([index])
            return None
        self._images[index] = image
        if len(self._images) > self._cache_images:
            self._images.popitem(last=False)
        return image

    def _draw_image(self, rng):
        """A usable source image drawn by ``rng``; unusable ones are redrawn, which keeps
        the draw a function of the seed alone (the same images are unusable every time)."""
        while True:
            source = int(rng.integers(len(self.sources)))
            image = self._image(source)
            if image is not None:
                return source, image

    def _draw(self, index, epoch):
        """``(window, kernels, masks, gain, rng)`` of pair ``index``: the draws shared by
        :meth:`sample` and :meth:`recipe`; ``rng`` goes on with the formation's draws."""
        mask_seed, kernel_seed, crop_seed, formation_seed = np.random.SeedSequence(
            [self.config.seed, epoch, index]).spawn(4)
        crop_rng = np.random.default_rng(crop_seed)
        source, image = self._draw_image(crop_rng)
        masks, _ = self._maker.object_masks(source, image, np.random.default_rng(mask_seed))
        top, left = (int(crop_rng.integers(side - self.window + 1)) for side in image.shape[:2])
        rows, cols = slice(top, top + self.window), slice(left, left + self.window)
        masks = masks[:, rows, cols]
        masks = masks[masks.any(axis=(1, 2))]  # objects outside the window blur nothing
        kernels, _ = self._maker.kernels.draw(len(masks) + 1, np.random.default_rng(kernel_seed))
        rng = np.random.default_rng(formation_seed)
        return image[rows, cols], kernels, masks, self._maker.illumination_gain(rng), rng

    def sample(self, index, epoch=0):
        """Pair ``index`` of ``epoch``.

        Returns
        -------
        blurry, sharp : ndarray, shape (crop_size, crop_size, 3), float32
            sRGB in [0, 1].
        """
        window, kernels, masks, gain, rng = self._draw(index, epoch)
        result = synthesize_pair(window, kernels, masks, illumination_gain=gain, rng=rng, **self._maker.options)
        return to_unit_range(result.blurry, result.sharp, self.quantize)

    def recipe(self, index, epoch=0):
        """The random choices of pair ``index`` of ``epoch``, for :func:`form_batch`.

        Draws what :meth:`sample` draws, in its order (:meth:`PairDraws.recipe
        <fastblur.sbdd.pipeline.PairDraws.recipe>`): a formed pair equals the sampled one
        but for the noise (the batch's) and, with noise, the blurry boost's factor, which
        :meth:`sample` draws after the noise (see :mod:`fastblur.sbdd.batch`).

        Returns
        -------
        CropRecipe
        """
        window, kernels, masks, gain, rng = self._draw(index, epoch)
        options = self._maker.options
        streaks, boost, blurry_boost = PairDraws(rng, options["streaks"]).recipe(
            window.shape, kernels.shape[1:], options["saturation"])
        return CropRecipe(window=np.ascontiguousarray(window), kernels=np.asarray(kernels, np.float32),
                          masks=np.ascontiguousarray(masks, dtype=bool), gain=1.0 if gain is None else gain,
                          streaks=streaks, saturation_boost=boost, blurry_boost=blurry_boost,
                          seed=[self.config.seed, epoch, index])

    def batch(self, indices, epoch=0, device="cpu"):
        """Pairs ``indices`` of ``epoch`` formed together on ``device`` (:func:`form_batch`).

        Returns
        -------
        blurry, sharp : ndarray, shape (len(indices), crop_size, crop_size, 3), float32
            sRGB in [0, 1]; NumPy for ``"cpu"``, CuPy for ``"cuda"``.
        """
        return self.form(self.recipes(indices, epoch), device)

    def recipes(self, indices, epoch=0):
        """The :class:`RecipeBatch` of pairs ``indices`` of ``epoch`` (:func:`stack_recipes`)."""
        return stack_recipes([self.recipe(index, epoch) for index in indices])

    def form(self, batch, device="cpu"):
        """:func:`form_batch` of ``batch`` with this sampler's formation options (on
        CUDA, ``backend="auto"`` is the ``cupy`` backend rather than the CPU backend a
        generation run pins)."""
        options = dict(self._maker.options)
        if str(device).startswith("cuda") and self.config.backend == "auto":
            options["backend"] = "auto"
        return form_batch(batch, quantize=self.quantize, device=device, **options)
