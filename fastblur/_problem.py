"""One validated description of a primitive's call: what execution, ``explain`` and ``auto`` see.

Each public primitive builds a :class:`Problem` through one of the builders below
(validate → insert the background → extend for the mode); the backend runs
``problem.call`` on ``problem.arrays``, the cost model reads :attr:`Problem.workload`,
and :meth:`Problem.finish` turns the backend's ``valid`` result into the public one.
:func:`fastblur.explain` builds its Problem through the same builders.
"""
from dataclasses import dataclass
from typing import NamedTuple

from . import _geometry, _validation
from ._array_module import get_array_module

#: What the cost model distinguishes; the batched primitives count as their items.
OPERATIONS = ("convolve", "blur_masked", "blur_product", "smooth_masks")


class Workload(NamedTuple):
    """The arrays :func:`fastblur.backends.cost_model.decide` reads (their shapes, taps and
    where weights are non-zero): ``image`` ``(H, W, C)`` extended for the mode, ``kernels``
    ``(N, kh, kw)``, and ``weights`` ``(N, Ho, Wo)``/``(N, H, W)`` or, for
    ``smooth_masks``, ``masks`` ``(N, H, W)`` (background first, extended)."""

    image: object
    kernels: object
    weights: object = None
    masks: object = None


@dataclass(eq=False)
class Problem:
    """A validated call of one primitive, reduced to a ``valid`` convolution.

    Attributes
    ----------
    operation : {'convolve', 'blur_masked', 'blur_product', 'smooth_masks'}
        What is computed (the batched primitives are their item's operation).
    call : str
        The :class:`~fastblur.backends.base.Backend` method that computes it
        (``convolve_valid``, ``blur_masked_valid``, ``blur_masked_batch_valid``,
        ``blur_product_valid``, ``smooth_masks_valid``).
    arrays : tuple of ndarray
        That method's array arguments: the image (or masks, background first) extended
        for ``mode``, the kernels and, for the weighted blurs, the weights, all of one
        float dtype (masks: bool); :attr:`call_args` follow them.
    mode, boundary : str
        As passed to the primitive, validated.
    was_2d : bool
        Whether the image(s) had no channel axis (the result drops it again).
    batch : int or None
        Number of items of a batched primitive.
    eps : float or None
        ``smooth_masks``' regulariser.
    """

    operation: str
    call: str
    arrays: tuple
    mode: str
    boundary: str
    was_2d: bool = False
    batch: int = None
    eps: float = None

    @property
    def call_args(self):
        """The method's arguments after :attr:`arrays`: ``(group, eps)`` for the soft weights."""
        if self.call == "smooth_masks_valid":
            return (len(self.arrays[1]) // (self.batch or 1), self.eps)
        return ()

    @property
    def out_shape(self):
        """Spatial shape ``(Ho, Wo)`` of the result: the ``valid`` grid of the extended arrays."""
        first, kernels = self.arrays[0], self.arrays[1]
        if self.call == "smooth_masks_valid":
            spatial = first.shape[1:]
        else:
            spatial = first.shape[-3:-1]
        return _geometry.output_shape(spatial, kernels.shape[-2:], "valid")

    @property
    def dtype(self):
        """The float dtype results are computed in."""
        return self.arrays[1].dtype

    @property
    def workload(self):
        """What the cost model reads (a batch's first item), as a :class:`Workload`."""
        first, kernels = self.arrays[0], self.arrays[1]
        if self.call == "convolve_valid":
            return Workload(first, kernels[None])
        if self.call == "smooth_masks_valid":
            return Workload(None, kernels, masks=first)
        if self.batch is not None:
            return Workload(first[0], kernels[0], self.arrays[2][0])
        return Workload(first, kernels, self.arrays[2])

    def finish(self, out):
        """The public result from the backend's ``valid`` result ``out``."""
        if self.operation == "smooth_masks":
            return out if self.batch is None else out.reshape((self.batch, -1) + out.shape[1:])
        return out[..., 0] if self.was_2d else out


def convolve(image, kernel, mode="same", boundary="reflect", kernel_name="kernel"):
    """The Problem of :func:`fastblur.convolve`."""
    image3d, was_2d = _validation.as_image(image)
    kernel = _validation.as_kernel(kernel, image3d.dtype, kernel_name)
    extended = _extend_image(image3d, kernel.shape, mode, boundary, kernel_name)
    return Problem("convolve", "convolve_valid", (extended, kernel), mode, boundary, was_2d)


def blur_masked(image, kernels, weights, mode="valid", boundary="reflect", check_finite=True):
    """The Problem of :func:`fastblur.blur_masked`."""
    image3d, was_2d = _validation.as_image(image)
    kernels = _validation.as_kernel_stack(kernels, image3d.dtype)
    extended = _extend_image(image3d, kernels.shape[1:], mode, boundary, "kernels")
    out_shape = _geometry.output_shape(image3d.shape[:2], kernels.shape[1:], mode)
    weights = _validation.as_weights(weights, len(kernels), out_shape, image3d.dtype, check_finite=check_finite)
    return Problem("blur_masked", "blur_masked_valid", (extended, kernels, weights), mode, boundary, was_2d)


def blur_masked_batch(images, kernels, weights, mode="valid", boundary="reflect", check_finite=True):
    """The Problem of :func:`fastblur.blur_masked_batch`."""
    images, were_2d = _validation.as_image_batch(images)
    batch = len(images)
    kernels = _validation.as_kernel_batch(kernels, batch, images.dtype)
    kernel_hw = kernels.shape[2:]
    _check_names(mode, boundary)
    _validation.check_fits(images.shape[1:3], kernel_hw, mode, "kernels")
    out_shape = _geometry.output_shape(images.shape[1:3], kernel_hw, mode)
    weights = _validation.as_weights(weights, kernels.shape[1], out_shape, images.dtype, batch=batch,
                                     check_finite=check_finite)
    extended = _geometry.extend(images, kernel_hw, mode, boundary, first_axis=1)
    return Problem("blur_masked", "blur_masked_batch_valid", (extended, kernels, weights), mode, boundary,
                   were_2d, batch)


def blur_product(image, kernels, weights, mode="valid", boundary="reflect"):
    """The Problem of :func:`fastblur.blur_product`."""
    image3d, was_2d = _validation.as_image(image)
    kernels = _validation.as_kernel_stack(kernels, image3d.dtype)
    kernel_hw = kernels.shape[1:]
    extended = _extend_image(image3d, kernel_hw, mode, boundary, "kernels")
    weights = _validation.as_weights(weights, len(kernels), image3d.shape[:2], image3d.dtype, grid="input")
    weights = _geometry.extend(weights, kernel_hw, mode, boundary, first_axis=1)
    return Problem("blur_product", "blur_product_valid", (extended, kernels, weights), mode, boundary, was_2d)


def smooth_masks(object_masks, kernels, mode="valid", boundary="reflect", eps=1e-6):
    """The Problem of :func:`fastblur.smooth_masks`."""
    masks = _validation.as_masks(object_masks)
    kernels = _validation.as_kernel_stack(kernels)
    eps = _check_smoothing(masks.shape, kernels.shape, mode, boundary, eps)
    all_masks = _with_background(masks, axis=0)
    all_masks = _geometry.extend(all_masks, kernels.shape[1:], mode, boundary, first_axis=1)
    return Problem("smooth_masks", "smooth_masks_valid", (all_masks, kernels), mode, boundary, eps=eps)


def smooth_masks_batch(object_masks, kernels, mode="valid", boundary="reflect", eps=1e-6):
    """The Problem of :func:`fastblur.smooth_masks_batch`: all ``B (n + 1)`` masks in one stack."""
    masks = _validation.as_mask_batch(object_masks)
    batch = len(masks)
    kernels = _validation.as_kernel_batch(kernels, batch)
    eps = _check_smoothing(masks.shape[1:], kernels.shape[1:], mode, boundary, eps)
    count, kernel_hw = kernels.shape[1], kernels.shape[2:]
    all_masks = _with_background(masks, axis=1)
    all_masks = _geometry.extend(all_masks, kernel_hw, mode, boundary, first_axis=2)
    all_masks = all_masks.reshape((batch * count,) + all_masks.shape[2:])
    kernels = kernels.reshape((batch * count,) + kernel_hw)
    return Problem("smooth_masks", "smooth_masks_valid", (all_masks, kernels), mode, boundary,
                   batch=batch, eps=eps)


def describe(operation, image, kernels, weights=None, mode="valid", boundary="reflect"):
    """The Problem of ``operation`` (one of :data:`OPERATIONS`) on these arguments, as
    :func:`fastblur.explain` takes them: for ``smooth_masks`` ``image`` is the object
    masks; a ``convolve`` kernel is named ``kernels`` in errors."""
    _validation.check_choice(operation, OPERATIONS, "operation")
    if operation == "convolve":
        return convolve(image, kernels, mode, boundary, kernel_name="kernels")
    if operation == "smooth_masks":
        return smooth_masks(image, kernels, mode, boundary)
    if weights is None:
        raise ValueError(f"weights are required to explain {operation!r}")
    return (blur_masked if operation == "blur_masked" else blur_product)(image, kernels, weights, mode, boundary)


# -- the steps ------------------------------------------------------------------------
def _check_names(mode, boundary):
    _validation.check_mode(mode)
    _validation.check_boundary(boundary)


def _extend_image(image3d, kernel_hw, mode, boundary, kernel_name):
    """``image3d`` extended for ``mode`` (checked: names, and the kernel's fit in ``valid``)."""
    _check_names(mode, boundary)
    _validation.check_fits(image3d.shape[:2], kernel_hw, mode, kernel_name)
    return _geometry.extend(image3d, kernel_hw, mode, boundary)


def _check_smoothing(masks_shape, kernels_shape, mode, boundary, eps):
    """Check one ``(n, H, W)`` mask stack against its ``(n + 1, kh, kw)`` kernels; return ``eps``."""
    n, count = masks_shape[0], kernels_shape[0]
    if count != n + 1:
        raise ValueError(
            f"kernels must hold n + 1 = {n + 1} kernels (background first) for "
            f"{n} object masks, got {count}"
        )
    eps = _validation.check_positive_number(eps, "eps")
    _check_names(mode, boundary)
    _validation.check_fits(masks_shape[1:], kernels_shape[1:], mode, "kernels")
    return eps


def _with_background(masks, axis):
    """``masks`` with the background ``~union(masks)`` inserted first along ``axis``."""
    background = ~masks.any(axis=axis, keepdims=True)
    return get_array_module(masks).concatenate([background, masks], axis=axis)
