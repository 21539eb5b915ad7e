"""fastblur: fast spatially varying blur, and realistic motion-blur training pairs.

The primitives (see :mod:`fastblur.primitives`)::

    convolve(image, kernel)                  k * x
    blur_masked(image, kernels, weights)     sum_i w_i (k_i * x)     gather: SBDD
    blur_product(image, kernels, weights)    sum_i k_i * (w_i x)     scatter
    smooth_masks(object_masks, kernels)      SBDD soft weights
    projective_blur(image, homographies)     mean_s image(H_s^-1 x): camera rotation

and their batched forms :func:`blur_masked_batch` and :func:`smooth_masks_batch`.
Their exact adjoints (:mod:`fastblur.adjoints`) are :func:`convolve_adjoint`,
:func:`blur_masked_adjoint` and :func:`blur_product_adjoint`; :mod:`fastblur.operators`
wraps each pair as a linear operator.

Every function takes ``backend=`` (``"auto"`` by default); :func:`available_backends`
lists what runs here and :func:`backend_info` why the others do not.
"""
from .adjoints import blur_masked_adjoint, blur_product_adjoint, convolve_adjoint
from .backends import available_backends, backend_info, explain
from .projective import projective_blur, psf_field
from .primitives import (
    blur_masked,
    blur_masked_batch,
    blur_product,
    convolve,
    smooth_masks,
    smooth_masks_batch,
)

__version__ = "0.1.0"

__all__ = [
    "available_backends",
    "backend_info",
    "blur_masked",
    "blur_masked_adjoint",
    "blur_masked_batch",
    "blur_product",
    "blur_product_adjoint",
    "convolve",
    "convolve_adjoint",
    "explain",
    "projective_blur",
    "psf_field",
    "smooth_masks",
    "smooth_masks_batch",
]
