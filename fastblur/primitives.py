"""The public convolution primitives: validate → extend for the mode → backend → reshape.

Shapes: images are ``(H, W)`` or ``(H, W, C)`` (channels last); kernel stacks
``(N, kh, kw)``; weight stacks ``(N, H, W)``. float32 and float64 images keep their
precision, other numeric images are computed in float32; kernels and weights are cast
to the image's precision.
"""
from . import _problem
from ._array_module import torch_interop
from ._dispatch import run

__all__ = ["convolve", "blur_masked", "blur_masked_batch", "blur_product", "smooth_masks", "smooth_masks_batch"]


@torch_interop
def convolve(image, kernel, mode="same", boundary="reflect", backend="auto"):
    """Convolve an image with one kernel (true convolution, as scipy.signal.convolve).

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
        Each channel is convolved with the same kernel.
    kernel : array_like, shape (kh, kw)
    mode : {'same', 'full', 'valid'}, optional
        Output size as in :func:`scipy.signal.convolve`: ``same`` is ``(H, W)``, centred
        as scipy centres it, ``full`` is ``(H + kh - 1, W + kw - 1)``, ``valid`` is
        ``(H - kh + 1, W - kw + 1)``.
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        How the image is extended beyond its edges in ``same`` and ``full`` modes
        (``numpy.pad`` names and meanings; ``constant`` pads zeros and equals scipy).
    backend : str, optional
        ``'auto'`` or a name from :func:`fastblur.available_backends`.

    Returns
    -------
    ndarray, shape (Ho, Wo) or (Ho, Wo, C)
        float64 for a float64 image, float32 otherwise.

    Raises
    ------
    TypeError
        Non-numeric or complex ``image``/``kernel``; a non-string mode/boundary/backend.
    ValueError
        Wrong ndim, empty arrays, NaN/inf in ``kernel``, unknown ``mode``/``boundary``/
        ``backend``, a kernel larger than the image in ``valid`` mode.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> image = np.random.default_rng(0).random((64, 48, 3), dtype=np.float32)
    >>> kernel = np.full((5, 5), 1 / 25, np.float32)
    >>> fastblur.convolve(image, kernel).shape
    (64, 48, 3)
    """
    return run(_problem.convolve(image, kernel, mode, boundary), backend)


@torch_interop
def blur_masked(image, kernels, weights, mode="valid", boundary="reflect", backend="auto", check_finite=True):
    """Spatially varying blur, gather form: ``sum_i weights[i] * (kernels[i] * image)``.

    This is the SBDD formation model: each output pixel mixes the blurs of the image by
    every kernel with the weights found at that output pixel.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, Ho, Wo)
        One map per kernel on the **output** grid (``(Ho, Wo)`` as for
        :func:`convolve` in ``mode``). A kernel is not evaluated where its
        ``|weight| <= fastblur.backends.ZERO_WEIGHT`` (1e-7) over a whole tile/pixel.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        Image extension for ``same``/``full``.
    backend : str, optional
    check_finite : bool, optional
        Whether to check that ``weights`` holds only finite numbers (as in
        :mod:`scipy.linalg`). Skipping the check saves a pass over the maps where they
        are known to be finite (the SBDD writer's, from :func:`smooth_masks`); with NaN or
        inf the result is then undefined.

    Returns
    -------
    ndarray, shape (Ho, Wo) or (Ho, Wo, C)

    Raises
    ------
    TypeError, ValueError
        As :func:`convolve`; also NaN/inf in ``weights`` (with ``check_finite``) and a
        ``weights`` shape other than ``(N, Ho, Wo)``.
    """
    return run(_problem.blur_masked(image, kernels, weights, mode, boundary, check_finite), backend)


@torch_interop
def blur_masked_batch(images, kernels, weights, mode="valid", boundary="reflect", backend="auto",
                      check_finite=True):
    """:func:`blur_masked` for a batch of images, each with its own kernels and weights.

    Parameters
    ----------
    images : array_like, shape (B, H, W) or (B, H, W, C)
    kernels : array_like, shape (B, N, kh, kw)
    weights : array_like, shape (B, N, Ho, Wo)
        On the output grid of ``mode``.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional
        GPU backends process the whole batch in one launch; CPU backends loop.
    check_finite : bool, optional
        As :func:`blur_masked`.

    Returns
    -------
    ndarray, shape (B, Ho, Wo) or (B, Ho, Wo, C)

    Raises
    ------
    TypeError, ValueError
        As :func:`blur_masked`, and batch sizes that differ between the arguments.
    """
    return run(_problem.blur_masked_batch(images, kernels, weights, mode, boundary, check_finite), backend)


@torch_interop
def blur_product(image, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Spatially varying blur, scatter form: ``sum_i kernels[i] * (weights[i] * image)``.

    The product-convolution (Nagy–O'Leary) model: each input pixel spreads its light
    with the kernels weighted at that input pixel, so light is conserved when the
    weights sum to one.

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
    kernels : array_like, shape (N, kh, kw)
    weights : array_like, shape (N, H, W)
        One map per kernel on the **input** grid. In ``same``/``full`` modes the
        products ``weights[i] * image`` are extended by ``boundary``.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    ndarray, shape (Ho, Wo) or (Ho, Wo, C)

    Raises
    ------
    TypeError, ValueError
        As :func:`blur_masked`, with ``weights`` of shape ``(N, H, W)``.
    """
    return run(_problem.blur_product(image, kernels, weights, mode, boundary), backend)


@torch_interop
def smooth_masks(object_masks, kernels, mode="valid", boundary="reflect", eps=1e-6, backend="auto"):
    """SBDD soft weights from binary object masks and their kernels.

    With the background mask ``M_0 = 1 - union(M_1..M_n)`` and
    ``S_i = kernels[i] * M_i`` (true convolution, as :func:`convolve`)::

        W_i = S_i / (sum_j S_j + eps)

    so ``blur_masked(image, kernels, smooth_masks(masks, kernels))`` is the SBDD blur.
    Kernels stored for the reference SBDD generator (which applies ``K`` by
    correlation) are passed as ``K[:, ::-1, ::-1]``; :mod:`fastblur.sbdd` does that.

    Parameters
    ----------
    object_masks : array_like, shape (n, H, W)
        Object masks; non-zero is inside. ``n`` may be 0 (background only).
    kernels : array_like, shape (n + 1, kh, kw)
        ``kernels[0]`` blurs the background, ``kernels[i]`` object ``i``.
    mode : {'valid', 'same', 'full'}, optional
        Grid of the weights, matching ``blur_masked``'s ``mode``.
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        Mask extension for ``same``/``full``.
    eps : float, optional
        Regulariser of the normalisation (the reference's 1e-6).
    backend : str, optional

    Returns
    -------
    ndarray, shape (n + 1, Ho, Wo)
        float64 for float64 kernels, float32 otherwise.

    Raises
    ------
    TypeError, ValueError
        Wrong ndim or count (``len(kernels) != n + 1``), NaN/inf, unknown names,
        kernels larger than the masks in ``valid`` mode, non-positive ``eps``.
    """
    return run(_problem.smooth_masks(object_masks, kernels, mode, boundary, eps), backend)


@torch_interop
def smooth_masks_batch(object_masks, kernels, mode="valid", boundary="reflect", eps=1e-6, backend="auto"):
    """:func:`smooth_masks` for a batch of mask stacks, each with its own kernels.

    ``result[b]`` equals ``smooth_masks(object_masks[b], kernels[b], ...)``; every pair
    has the same number ``n`` of objects and the same kernel size. All ``B * (n + 1)``
    mask convolutions go to the backend in one call.

    Parameters
    ----------
    object_masks : array_like, shape (B, n, H, W)
        Object masks; non-zero is inside. ``n`` may be 0 (background only).
    kernels : array_like, shape (B, n + 1, kh, kw)
        ``kernels[b, 0]`` blurs the background of item ``b``, ``kernels[b, i]`` its
        object ``i``.
    mode : {'valid', 'same', 'full'}, optional
        Grid of the weights, matching :func:`blur_masked_batch`'s ``mode``.
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        Mask extension for ``same``/``full``.
    eps : float, optional
        Regulariser of the normalisation (the reference's 1e-6).
    backend : str, optional

    Returns
    -------
    ndarray, shape (B, n + 1, Ho, Wo)
        float64 for float64 kernels, float32 otherwise.

    Raises
    ------
    TypeError, ValueError
        As :func:`smooth_masks`, and batch sizes that differ between the arguments.
    """
    return run(_problem.smooth_masks_batch(object_masks, kernels, mode, boundary, eps), backend)
