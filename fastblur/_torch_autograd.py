"""Differentiable primitives for PyTorch: ``(B, C, H, W)`` tensors, CPU or CUDA.

Public through :mod:`fastblur.torch`. The forward passes and the gradients with respect
to the image are the fastblur primitives and their exact adjoints
(:mod:`fastblur.adjoints`), run per batch item on the tensors' memory (CUDA tensors go
through CuPy, on PyTorch's current stream). Gradients with respect to

- the weights are one convolution (``blur_masked``) or one adjoint convolution
  (``blur_product``) per kernel, multiplied by the output gradient or the image. For
  ``blur_masked`` the forward computes those convolutions when the weights need a
  gradient (:data:`KEEP_BLURS`), makes its output their weighted sum and keeps them
  for the backward: the convolutions are needed anyway, and the weighted sum costs
  less than the mask-restricted gather it replaces;
- the kernels are ``valid`` correlations of an image-sized map with another (the
  extended image with the weighted output gradient, or the extended weighted image with
  the output gradient), cropped to the kernel: computed with ``torch.fft``, since a
  kernel-sized output of image-sized inputs is what FFTs do best, each on the box
  where both maps can be non-zero (an SBDD object's);
- the image, when the kernels need a gradient too (``convolve``, ``blur_masked``), are
  taken from those transforms of the weighted output gradients, one inverse transform a
  channel, rather than from the adjoint primitive where the kernels hold enough taps
  (:data:`JOINT_IMAGE_GRAD`).

Each function also has a differentiable adjoint (``*_adjoint``), for unrolled
networks and :class:`SpaceVaryingBlur`.
"""
import functools
import math

import numpy as np
import scipy.fft
import torch
from torch.autograd.function import once_differentiable

from . import _geometry, _validation
from .adjoints import blur_masked_adjoint as _blur_masked_adjoint
from .backends import ZERO_WEIGHT
from .adjoints import blur_product_adjoint as _blur_product_adjoint
from .adjoints import convolve_adjoint as _convolve_adjoint
from .primitives import blur_masked as _blur_masked
from .primitives import blur_product as _blur_product
from .primitives import convolve as _convolve

__all__ = [
    "SpaceVaryingBlur",
    "blur_masked",
    "blur_masked_adjoint",
    "blur_product",
    "blur_product_adjoint",
    "convolve",
    "convolve_adjoint",
]


# --- per-item operations on (H, W, C) tensors -------------------------------------------

def _channels_last(tensor):
    return tensor.permute(1, 2, 0).contiguous()  # one transposing copy, not one per backend call


def _channels_first(tensor):
    return tensor.permute(2, 0, 1)


class _Operation:
    """One primitive: forward, adjoint and the parameter gradients of one batch item.

    ``kernels`` are ``(N, kh, kw)``; ``weights`` ``(N, gh, gw)`` or None (convolve).
    Images are ``(C, H, W)`` tensors.
    """

    def __init__(self, forward, adjoint, weighted_output):
        self._forward, self._adjoint = forward, adjoint
        self.weighted_output = weighted_output  # weights on the output grid (gather form)

    def _call(self, function, image, kernels, weights, options):
        args = (kernels[0],) if weights is None else (kernels, weights)
        return _channels_first(function(_channels_last(image), *args, **options))

    def forward(self, image, kernels, weights, options):
        return self._call(self._forward, image, kernels, weights, options)

    def adjoint(self, output, kernels, weights, options):
        return self._call(self._adjoint, output, kernels, weights, options)

    def weight_grad(self, image, grad, kernels, options):
        """``d<A x, g>/dw``, shape ``(N, gh, gw)``."""
        if self.weighted_output:  # sum_c g ⊙ (k_i * x)
            return _weight_grad_of_blurs(_blurs(image, kernels, options), grad)
        grad = _channels_last(grad)
        return torch.stack([_channel_dot(_convolve_adjoint(grad, k, **options), image) for k in kernels])


def _blurs(image, kernels, options):
    """``[k_i * x]``: one ``(Ho, Wo, C)`` channels-last tensor per kernel, ``image`` ``(C, H, W)``."""
    image = _channels_last(image)
    return [_convolve(image, k, **options) for k in kernels]


def _channel_dot(channels_last, channels_first):
    """``sum_c a[..., c] * b[c]``, shape ``(H, W)``, of ``(H, W, C)`` and ``(C, H, W)`` tensors."""
    out = channels_last[..., 0] * channels_first[0]
    for c in range(1, len(channels_first)):
        out.addcmul_(channels_last[..., c], channels_first[c])
    return out


def _weight_grad_of_blurs(blurs, grad):
    """``sum_c g ⊙ b_i`` for each blur ``b_i`` (:func:`_blurs`), shape ``(N, Ho, Wo)``."""
    return torch.stack([_channel_dot(b, grad) for b in blurs])


def _combine(blurs, weights):
    """``sum_i w_i ⊙ b_i``, channels-first ``(C, Ho, Wo)``: :func:`fastblur.blur_masked` from
    its kernels' blurs (:func:`_blurs`). As there, a weight of magnitude at most
    :data:`~fastblur.backends.ZERO_WEIGHT` counts as zero; each map is applied on the box
    where it is non-zero."""
    if weights.device.type == "cpu":  # NumPy's reductions are the faster ones on the CPU
        array = weights.detach().numpy()
        active = np.abs(array) > ZERO_WEIGHT
        weights = torch.from_numpy(np.where(active, array, 0))
    else:
        active = weights.abs() > ZERO_WEIGHT
        weights = torch.where(active, weights, 0)
    rows, cols = active.any(2).tolist(), active.any(1).tolist()
    out = None
    for blur, w, row, col in zip(blurs, weights, rows, cols):
        if not any(row):
            continue
        r0, r1 = row.index(True), len(row) - row[::-1].index(True)
        c0, c1 = col.index(True), len(col) - col[::-1].index(True)
        if out is None and (r0, r1, c0, c1) == (0, len(row), 0, len(col)):
            out = blur * w[..., None]  # a whole-grid map first: no zeros to add to
            continue
        if out is None:
            out = blur.new_zeros(blur.shape)
        out[r0:r1, c0:c1].addcmul_(blur[r0:r1, c0:c1], w[r0:r1, c0:c1, None])
    return _channels_first(blurs[0].new_zeros(blurs[0].shape) if out is None else out)


_OPERATIONS = {
    "convolve": _Operation(_convolve, _convolve_adjoint, weighted_output=True),
    "blur_masked": _Operation(_blur_masked, _blur_masked_adjoint, weighted_output=True),
    "blur_product": _Operation(_blur_product, _blur_product_adjoint, weighted_output=False),
}


# --- kernel gradients ---------------------------------------------------------------------

def _extend(tensor, kernel_hw, mode, boundary):
    """:func:`fastblur._geometry.extend` of the last two axes of a tensor."""
    (top, bottom), (left, right) = _geometry.pad_widths(kernel_hw, mode)
    if mode == "valid" or not (top or bottom or left or right):
        return tensor
    if boundary == "constant":
        return torch.nn.functional.pad(tensor, (left, right, top, bottom))
    rows = np.pad(np.arange(tensor.shape[-2]), (top, bottom), mode=boundary)
    cols = np.pad(np.arange(tensor.shape[-1]), (left, right), mode=boundary)
    device = tensor.device
    tensor = tensor.index_select(-2, torch.as_tensor(rows, device=device))
    return tensor.index_select(-1, torch.as_tensor(cols, device=device))


def _rows_cols(tensor):
    """Index ranges ``(r0, r1, c0, c1)`` of the non-zero rows and columns of a
    ``(B, C, H, W)`` tensor, or None where it is zero."""
    height, width = tensor.shape[-2:]
    if _edges_nonzero(tensor):  # a dense map (an image, a gradient): no full scan
        return 0, height, 0, width
    if tensor.device.type == "cpu":  # NumPy's reductions are the faster ones on the CPU
        nonzero = tensor.detach().numpy() != 0
        rows, cols = np.flatnonzero(nonzero.any(axis=(0, 1, 3))), np.flatnonzero(nonzero.any(axis=(0, 1, 2)))
    else:
        nonzero = (tensor != 0).flatten(0, -3).any(0)
        rows, cols = torch.nonzero(nonzero.any(1)).flatten(), torch.nonzero(nonzero.any(0)).flatten()
    rows, cols = rows.tolist(), cols.tolist()
    if not rows:
        return None
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _edges_nonzero(tensor):
    """Whether the first and last rows and columns of a ``(B, C, H, W)`` tensor each hold
    a non-zero: then its non-zero box is the whole grid."""
    edges = (tensor[..., 0, :], tensor[..., -1, :], tensor[..., :, 0], tensor[..., :, -1])
    return all(bool(edge.any()) for edge in edges)


def _intersect(first, second):
    """The intersection of two boxes ``(r0, r1, c0, c1)`` (None: empty), or None."""
    if first is None or second is None:
        return None
    r0, r1 = max(first[0], second[0]), min(first[1], second[1])
    c0, c1 = max(first[2], second[2]), min(first[3], second[3])
    return (r0, r1, c0, c1) if r0 < r1 and c0 < c1 else None


def _reach(map_box, kernel_hw):
    """The outputs whose ``valid`` window meets the non-zeros ``map_box`` of the extended
    map (None: all zero), as a box."""
    if map_box is None:
        return None
    kh, kw = kernel_hw
    return map_box[0] - kh + 1, map_box[1], map_box[2] - kw + 1, map_box[3]


def _fft_length(n):
    """A transform length >= ``n`` that is fast: a multiple of 4 with no prime factor but
    2, 3 and 5 (torch's CPU transforms take up to 3x longer a sample on odd lengths)."""
    return 4 * scipy.fft.next_fast_len(-(-n // 4), real=True)


def _irfft2(spectrum, size):
    """``torch.fft.irfft2(spectrum, s=size)``, overwriting ``spectrum``; on the CPU by
    SciPy's transform, which takes about 20 % less time there than torch's inverse (720p)."""
    if spectrum.device.type != "cpu":
        return torch.fft.irfft2(spectrum, s=size)
    real = scipy.fft.irfft2(spectrum.numpy(), s=size, workers=torch.get_num_threads(), overwrite_x=True)
    return torch.from_numpy(real)


def _kernel_spectrum(kernels, size):
    """``rfft2`` of ``(B, kh, kw)`` kernels zero-padded to ``size``: the rows' transform on
    the kernel's ``kh`` rows only, the columns' then zero-padded."""
    return torch.fft.fft(torch.fft.rfft(kernels, n=size[1], dim=-1), n=size[0], dim=-2)


def _correlation_lags(extended, grad, box, kernel_hw, kernel=None):
    """``sum_c sum_p grad[p] extended[p + r]`` for ``r`` in ``[0, kh) x [0, kw)``, shape
    (B, kh, kw), over the outputs ``p`` of ``box`` (where both can be non-zero: an SBDD
    object's box); with ``kernel`` (B, kh, kw), also ``flip(kernel) *full grad`` over the
    box, shape (B, C, r1 - r0 + kh - 1, c1 - c0 + kw - 1): the gradient's share of the
    extended map's gradient, from the same transform of ``grad`` (else None).

    ``grad`` is a callable returning the output gradient's crop to a box, zero-padded to
    a size (so that a weighted gradient is only formed there). A circular correlation or
    convolution of size >= the extended crop has no wrap-around at these lags or outputs.
    """
    kh, kw = kernel_hw
    r0, r1, c0, c1 = box
    extended = extended[..., r0 : r1 + kh - 1, c0 : c1 + kw - 1]
    crop_hw = extended.shape[-2:]
    size = tuple(_fft_length(n) for n in crop_hw)
    spectrum = torch.fft.rfft2(grad(box, size))
    # conj(G) X = conj(G conj(X)): the transform of the map is conjugated in place, where a
    # conjugate view would be materialised by each product
    spectra = spectrum, torch.fft.rfft2(extended, s=size).conj_physical_()
    product = spectra[0][:, 0] * spectra[1][:, 0]  # summed over the channels as it is formed
    for c in range(1, spectra[0].shape[1]):
        product.addcmul_(spectra[0][:, c], spectra[1][:, c])
    # irfft2 pruned to the lags: the row transform's first kh rows only go on to the columns'
    rows = torch.fft.ifft(product.conj_physical_(), dim=-2)[..., :kh, :]
    lags = torch.fft.irfft(rows, n=size[1], dim=-1)[..., :kw]
    if kernel is None:
        return lags, None
    spectrum.mul_(_kernel_spectrum(kernel.flip(-2, -1), size)[:, None])
    return lags, _irfft2(spectrum, size)[..., : crop_hw[0], : crop_hw[1]]


def _kernel_grad(extended, grad, kernel_hw, weights=None, kernels=None):
    """``flip(sum_c corr_valid(extended, w_i ⊙ grad))``: the gradient of a ``valid``
    convolution with respect to its kernel.

    Parameters
    ----------
    extended : Tensor, shape (B, Nu, C, He, We)
        The convolved maps (``Nu`` is 1 or ``N``).
    grad : Tensor, shape (B, C, He - kh + 1, We - kw + 1)
        The output gradient.
    weights : Tensor, shape (B, N, He - kh + 1, We - kw + 1), optional
        Weights of the output gradient, one map per kernel (the gather form); each
        weighted gradient is formed on the box where its map is non-zero only. A weight
        of magnitude at most :data:`~fastblur.backends.ZERO_WEIGHT` counts as zero, as
        in the forward.
    kernels : Tensor, shape (B, N, kh, kw), optional
        With them (``Nu`` = 1), also the gradient with respect to ``extended``,
        ``sum_i flip(k_i) *full (w_i ⊙ grad)``, from the transforms of the weighted
        gradients that the kernel gradients take: the image gradient at the cost of an
        inverse transform a channel.

    Returns
    -------
    d_kernels : Tensor, shape (B, N, kh, kw)
    d_extended : Tensor, shape (B, C, He, We), or None without ``kernels``
    """
    count = max(extended.shape[1], 1 if weights is None else weights.shape[1])
    grad_box = _rows_cols(grad)
    map_boxes = [_rows_cols(extended[:, i]) for i in range(extended.shape[1])]
    boxes = []
    for i in range(count):
        box = grad_box if weights is None else _intersect(grad_box, _rows_cols(weights[:, i, None]))
        if kernels is None:  # the kernel gradient needs only the outputs whose window meets the map
            box = _intersect(box, _reach(map_boxes[min(i, len(map_boxes) - 1)], kernel_hw))
        boxes.append(box)
    lags, d_extended = [extended.new_zeros((extended.shape[0],) + tuple(kernel_hw))] * count, None
    # one kernel at a time (B * C maps in memory), the largest box first: an extended map's
    # gradient on the whole grid is then kept as it is, not added to zeros
    for i in sorted((i for i in range(count) if boxes[i] is not None), key=lambda i: -_area(boxes[i])):
        w = None if weights is None else weights[:, i, None]
        kernel = None if kernels is None else kernels[:, i]
        crop = functools.partial(_weighted_crop, grad, w)
        lags[i], full = _correlation_lags(extended[:, min(i, len(map_boxes) - 1)], crop, boxes[i], kernel_hw,
                                          kernel)
        if full is not None:
            d_extended = _add_at(d_extended, full, boxes[i][0], boxes[i][2], extended.shape[-2:])
    if kernels is not None and d_extended is None:
        d_extended = grad.new_zeros(grad.shape[:2] + extended.shape[-2:])
    return torch.stack(lags, 1).flip(-2, -1), d_extended


def _area(box):
    return (box[1] - box[0]) * (box[3] - box[2])


def _weighted_crop(grad, weights, box, size):
    """``weights ⊙ grad`` (``grad`` without weights) on ``box``, zero-padded to ``size``: formed
    in its buffer (one copy, not two); a weight of magnitude at most ``ZERO_WEIGHT`` is zero."""
    r0, r1, c0, c1 = box
    part = grad[..., r0:r1, c0:c1]
    padded = part.new_empty(part.shape[:-2] + tuple(size))
    padded[..., r1 - r0 :, :].zero_()
    padded[..., : r1 - r0, c1 - c0 :].zero_()
    target = padded[..., : r1 - r0, : c1 - c0]
    if weights is None:
        target.copy_(part)
    else:
        torch.mul(part, torch.nn.functional.hardshrink(weights[..., r0:r1, c0:c1], ZERO_WEIGHT), out=target)
    return padded


def _add_at(total, part, top, left, shape):
    """``total`` (None: zeros of ``part``'s leading shape and spatial ``shape``) plus
    ``part`` placed at ``(top, left)``; ``part`` itself where it is the whole grid."""
    if total is None and tuple(part.shape[-2:]) == tuple(shape):
        return part
    if total is None:
        total = part.new_zeros(part.shape[:-2] + tuple(shape))
    total[..., top : top + part.shape[-2], left : left + part.shape[-1]] += part
    return total


def _fold(tensor, image_hw, kernel_hw, mode, boundary):
    """Adjoint of :func:`_extend`: each border sample added back onto the image sample it
    copies (dropped for ``constant``)."""
    (top, bottom), (left, right) = _geometry.pad_widths(kernel_hw, mode)
    for axis, length, before, after in ((-2, image_hw[0], top, bottom), (-1, image_hw[1], left, right)):
        if not (before or after):
            continue
        inner = tensor.narrow(axis, before, length)
        if boundary == "constant":
            tensor = inner
            continue
        source = np.pad(np.arange(length), (before, after), mode=boundary)
        border = np.r_[0:before, before + length : len(source)]
        device = tensor.device
        tensor = inner.clone().index_add_(axis, torch.as_tensor(source[border], device=device),
                                          tensor.index_select(axis, torch.as_tensor(border, device=device)))
    return tensor


def _gradients(operation, image, grad, kernels, weights, options, needs, blurs=None):
    """``(d_image, d_kernels, d_weights)`` of ``<A(kernels, weights) image, grad>``.

    Batched tensors: ``image (B, C, H, W)``, ``grad (B, C, Ho, Wo)``, ``kernels
    (B, N, kh, kw)``, ``weights (B, N, gh, gw)`` or None. ``needs`` says which to compute
    (the others are None). ``blurs``: each item's :func:`_blurs`, kept by the forward.
    """
    op = _OPERATIONS[operation]
    d_image = d_kernels = d_weights = None
    if needs[0] and needs[1] and op.weighted_output and _joint(kernels, image.shape[-2:]):
        d_kernels, d_image = _kernel_and_image_grad(image, grad, kernels, weights, options)
        needs = (False, False, needs[2])
    if needs[0]:
        d_image = torch.stack([op.adjoint(g, k, w, options) for g, k, w in _items(grad, kernels, weights)])
    if needs[2] and weights is not None and blurs is not None:
        d_weights = torch.stack([_weight_grad_of_blurs(b, g) for b, g in zip(blurs, grad)])
    elif needs[2] and weights is not None:
        d_weights = torch.stack([op.weight_grad(x, g, k, options)
                                 for x, g, k in zip(image, grad, kernels)])
    if needs[1]:
        kernel_hw = kernels.shape[-2:]
        mode, boundary = options["mode"], options["boundary"]
        if op.weighted_output:  # corr(E x, w_i ⊙ g)
            extended = _extend(image, kernel_hw, mode, boundary)[:, None]
            d_kernels, _ = _kernel_grad(extended, grad, kernel_hw, weights)
        else:  # corr(E(w_i ⊙ x), g)
            extended = _extend(weights[:, :, None] * image[:, None], kernel_hw, mode, boundary)
            d_kernels, _ = _kernel_grad(extended, grad, kernel_hw)
    return d_image, d_kernels, d_weights


#: Whether the backward of a gather form (``convolve``, ``blur_masked``) whose image and
#: kernels both need a gradient takes the image gradient from the transforms of the
#: weighted output gradients that the kernel gradients take (:func:`_kernel_grad`), an
#: inverse transform a channel, rather than from the adjoint primitive: the same numbers
#: to rounding. ``"auto"``: where the kernels hold on average at least
#: :data:`JOINT_TAPS_PER_LOG2` ``x log2(H W)`` non-zero taps (a transform costs about a
#: tap per sample and level); True, False: always, never.
JOINT_IMAGE_GRAD = "auto"
#: Measured break-even at 720p, one thread: about 20-28 non-zero taps a kernel.
JOINT_TAPS_PER_LOG2 = 1.25


def _joint(kernels, image_hw):
    """Whether :func:`_kernel_and_image_grad` computes the image gradient (:data:`JOINT_IMAGE_GRAD`)."""
    if JOINT_IMAGE_GRAD != "auto":
        return bool(JOINT_IMAGE_GRAD)
    taps = int(torch.count_nonzero(kernels)) / (kernels.shape[0] * kernels.shape[1])
    return taps >= JOINT_TAPS_PER_LOG2 * math.log2(max(image_hw[0] * image_hw[1], 2))


def _kernel_and_image_grad(image, grad, kernels, weights, options):
    """``(d_kernels, d_image)`` of a gather form, from shared transforms."""
    kernel_hw = kernels.shape[-2:]
    mode, boundary = options["mode"], options["boundary"]
    extended = _extend(image, kernel_hw, mode, boundary)[:, None]
    d_kernels, d_extended = _kernel_grad(extended, grad, kernel_hw, weights, kernels)
    return d_kernels, _fold(d_extended, image.shape[-2:], kernel_hw, mode, boundary)


#: Whether ``blur_masked``'s forward keeps the kernels' blurs when the weights need a
#: gradient (:class:`_Forward`): N output-sized tensors per item held until the backward.
#: False computes them in the backward instead (less memory, a slower backward).
KEEP_BLURS = True


def _items(tensor, kernels, weights):
    return zip(tensor, kernels, [None] * len(tensor) if weights is None else weights)


class _Forward(torch.autograd.Function):
    """``A(kernels, weights) image`` for a batch.

    With ``keep_blurs`` (``blur_masked`` whose weights need a gradient), the forward
    computes each kernel's blur ``k_i * x`` on the whole grid, which the weights'
    gradient ``sum_c g ⊙ (k_i * x)`` needs, and keeps them for the backward: the output is
    their weighted sum (:func:`_combine`) instead of the mask-restricted gather.
    """

    @staticmethod
    def forward(ctx, image, kernels, weights, operation, options, keep_blurs=False):
        ctx.save_for_backward(image, kernels, weights)
        ctx.operation, ctx.options = operation, options
        op = _OPERATIONS[operation]
        if keep_blurs:
            ctx.blurs = [_blurs(x, k, options) for x, k in zip(image, kernels)]
            return torch.stack([_combine(b, w) for b, w in zip(ctx.blurs, weights)])
        ctx.blurs = None
        return torch.stack([op.forward(x, k, w, options) for x, k, w in _items(image, kernels, weights)])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        image, kernels, weights = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        return _gradients(ctx.operation, image, grad.contiguous(), kernels, weights, ctx.options,
                          needs, ctx.blurs) + (None, None, None)


class _Adjoint(torch.autograd.Function):
    """``A(kernels, weights)ᵀ output`` for a batch.

    With ``x = Aᵀ y``: ``<Aᵀ y, g> = <y, A g>``, so the gradient with respect to ``y`` is
    ``A g`` and those with respect to the parameters are the forward's with image ``g``
    and output gradient ``y``.
    """

    @staticmethod
    def forward(ctx, output, kernels, weights, operation, options):
        ctx.save_for_backward(output, kernels, weights)
        ctx.operation, ctx.options = operation, options
        op = _OPERATIONS[operation]
        return torch.stack([op.adjoint(y, k, w, options) for y, k, w in _items(output, kernels, weights)])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        output, kernels, weights = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        op = _OPERATIONS[ctx.operation]
        grad = grad.contiguous()
        d_output = None
        if needs[0]:
            d_output = torch.stack([op.forward(g, k, w, ctx.options) for g, k, w in _items(grad, kernels, weights)])
        _, d_kernels, d_weights = _gradients(ctx.operation, grad, output, kernels, weights, ctx.options,
                                             (False,) + tuple(needs[1:]))
        return d_output, d_kernels, d_weights, None, None


# --- argument checks ------------------------------------------------------------------------

def _check_tensor(value, name):
    """A 4-D float32/float64 ``(B, C, H, W)`` tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (B, C, H, W), got {type(value).__name__}")
    if value.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {value.dtype}")
    if value.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {tuple(value.shape)}")
    if 0 in value.shape:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    return value


def _as_parameter(value, like, name):
    """``value`` as a tensor of ``like``'s dtype on its device (differentiably)."""
    if isinstance(value, torch.Tensor):
        if value.device != like.device:
            raise ValueError(f"{name} is on {value.device}, the image on {like.device}: move it first")
        if value.dtype.is_complex or not (value.dtype.is_floating_point or value.dtype in _INTEGERS):
            raise TypeError(f"{name} must be a real numeric tensor, got {value.dtype}")
        return value.to(like.dtype)
    array = _validation.as_numeric_array(value, name)
    return torch.as_tensor(np.asarray(array), dtype=like.dtype, device=like.device)


_INTEGERS = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def _batched(value, batch, plain_ndim, layout, name):
    """A stack shared by the batch (``plain_ndim`` dims) or one per item, as ``(B, ...)``."""
    if value.ndim == plain_ndim:
        return value.expand((batch,) + tuple(value.shape))
    if value.ndim == plain_ndim + 1 and value.shape[0] == batch:
        return value
    raise ValueError(f"{name} must be {layout} or (B = {batch}, {layout[1:]}, got shape {tuple(value.shape)}")


def _check_options(mode, boundary, backend):
    _validation.check_mode(mode)
    _validation.check_boundary(boundary)
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {backend!r}")
    return {"mode": mode, "boundary": boundary, "backend": backend}


def _check_grid(weights, expected, grid):
    if tuple(weights.shape[-2:]) != tuple(expected):
        raise ValueError(
            f"weights must have spatial shape {tuple(expected)} (one map per kernel, on the "
            f"{grid} grid), got shape {tuple(weights.shape)}"
        )


def _arguments(tensor, name, kernels, weights, mode, boundary, backend, operation, adjoint):
    """Checked batched arguments ``(tensor, kernels, weights, options)`` for ``operation``."""
    tensor = _check_tensor(tensor, name)
    options = _check_options(mode, boundary, backend)
    batch, spatial = tensor.shape[0], tuple(tensor.shape[-2:])
    if operation == "convolve":
        kernels = _batched(_as_parameter(kernels, tensor, "kernel"), batch, 2, "(kh, kw)", "kernel")[:, None]
    else:
        kernels = _batched(_as_parameter(kernels, tensor, "kernels"), batch, 3, "(N, kh, kw)", "kernels")
    kernel_hw = tuple(kernels.shape[-2:])
    if 0 in kernels.shape:
        raise ValueError(f"kernels must not be empty, got shape {tuple(kernels.shape)}")
    if adjoint:
        from .adjoints import input_shape

        image_hw = input_shape(spatial, kernel_hw, mode, name)
    else:
        _validation.check_fits(spatial, kernel_hw, mode, "kernels")
        image_hw = spatial
    if weights is not None:
        weights = _batched(_as_parameter(weights, tensor, "weights"), batch, 3, "(N, gh, gw)", "weights")
        if weights.shape[1] != kernels.shape[1]:
            raise ValueError(f"weights must hold one map per kernel ({kernels.shape[1]}), "
                             f"got shape {tuple(weights.shape)}")
        if operation == "blur_masked":
            _check_grid(weights, _geometry.output_shape(image_hw, kernel_hw, mode), "output")
        else:
            _check_grid(weights, image_hw, "input")
    return tensor, kernels, weights, options


def _public(operation, adjoint=False):
    """The public function of ``operation`` (or of its adjoint)."""
    function = _Adjoint if adjoint else _Forward
    name = "y" if adjoint else "image"

    def apply(tensor, kernels, weights, mode, boundary, backend):
        tensor, kernels, weights, options = _arguments(
            tensor, name, kernels, weights, mode, boundary, backend, operation, adjoint)
        if adjoint:
            return function.apply(tensor, kernels, weights, operation, options)
        keep_blurs = (operation == "blur_masked" and torch.is_grad_enabled() and weights.requires_grad
                      and KEEP_BLURS)
        return function.apply(tensor, kernels, weights, operation, options, keep_blurs)

    return apply


_apply = {(op, adj): _public(op, adj) for op in _OPERATIONS for adj in (False, True)}


# --- public functions ---------------------------------------------------------------------

def convolve(image, kernel, mode="same", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.convolve` of a batch of channels-first images.

    Parameters
    ----------
    image : Tensor, shape (B, C, H, W), float32 or float64
        On the CPU or a CUDA device (CUDA needs CuPy).
    kernel : Tensor or array_like, shape (kh, kw) or (B, kh, kw)
        Shared by the batch, or one per item; cast to the image's dtype.
    mode : {'same', 'full', 'valid'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    Tensor, shape (B, C, Ho, Wo)
        Differentiable with respect to ``image`` and ``kernel``.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.convolve`; a non-tensor or non-float ``image``, tensors on
        different devices.

    Examples
    --------
    >>> import torch, fastblur.torch
    >>> image = torch.rand(2, 3, 32, 24, dtype=torch.float64, requires_grad=True)
    >>> kernel = torch.full((5, 5), 1 / 25, dtype=torch.float64, requires_grad=True)
    >>> fastblur.torch.convolve(image, kernel).square().sum().backward()
    >>> image.grad.shape, kernel.grad.shape
    (torch.Size([2, 3, 32, 24]), torch.Size([5, 5]))
    """
    return _apply["convolve", False](image, kernel, None, mode, boundary, backend)


def blur_masked(image, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.blur_masked` (``sum_i w_i ⊙ (k_i * x)``, SBDD).

    Parameters
    ----------
    image : Tensor, shape (B, C, H, W), float32 or float64
    kernels : Tensor or array_like, shape (N, kh, kw) or (B, N, kh, kw)
    weights : Tensor or array_like, shape (N, Ho, Wo) or (B, N, Ho, Wo)
        On the output grid of ``mode``.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    Tensor, shape (B, C, Ho, Wo)
        Differentiable with respect to ``image``, ``kernels`` and ``weights``.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_masked` and :func:`convolve`.

    Examples
    --------
    >>> import torch, fastblur.torch
    >>> image = torch.rand(1, 3, 32, 24)
    >>> kernels = torch.rand(2, 5, 5, requires_grad=True)
    >>> weights = torch.rand(2, 28, 20, requires_grad=True)
    >>> fastblur.torch.blur_masked(image, kernels, weights).sum().backward()
    >>> kernels.grad.shape, weights.grad.shape
    (torch.Size([2, 5, 5]), torch.Size([2, 28, 20]))
    """
    return _apply["blur_masked", False](image, kernels, weights, mode, boundary, backend)


def blur_product(image, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.blur_product` (``sum_i k_i * (w_i ⊙ x)``).

    Parameters
    ----------
    image : Tensor, shape (B, C, H, W), float32 or float64
    kernels : Tensor or array_like, shape (N, kh, kw) or (B, N, kh, kw)
    weights : Tensor or array_like, shape (N, H, W) or (B, N, H, W)
        On the input grid.
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    backend : str, optional

    Returns
    -------
    Tensor, shape (B, C, Ho, Wo)
        Differentiable with respect to ``image``, ``kernels`` and ``weights``.

    Raises
    ------
    TypeError, ValueError
        As :func:`fastblur.blur_product` and :func:`convolve`.
    """
    return _apply["blur_product", False](image, kernels, weights, mode, boundary, backend)


def convolve_adjoint(y, kernel, mode="same", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.convolve_adjoint`; arguments as :func:`convolve`,
    with ``y`` of shape ``(B, C, Ho, Wo)``; returns ``(B, C, H, W)``."""
    return _apply["convolve", True](y, kernel, None, mode, boundary, backend)


def blur_masked_adjoint(y, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.blur_masked_adjoint`; arguments as
    :func:`blur_masked`, with ``y`` of shape ``(B, C, Ho, Wo)``; returns ``(B, C, H, W)``."""
    return _apply["blur_masked", True](y, kernels, weights, mode, boundary, backend)


def blur_product_adjoint(y, kernels, weights, mode="valid", boundary="reflect", backend="auto"):
    """Differentiable :func:`fastblur.blur_product_adjoint`; arguments as
    :func:`blur_product`, with ``y`` of shape ``(B, C, Ho, Wo)``; returns ``(B, C, H, W)``."""
    return _apply["blur_product", True](y, kernels, weights, mode, boundary, backend)


# --- deepinv ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _physics_class():
    """The ``deepinv.physics.LinearPhysics`` subclass, made on first use (importing deepinv
    takes seconds)."""
    try:
        from deepinv.physics import LinearPhysics
    except ImportError as error:
        raise ImportError("SpaceVaryingBlur needs deepinv: pip install 'fastblur[deepinv]'") from error

    class SpaceVaryingBlur(LinearPhysics):
        __doc__ = _SpaceVaryingBlurDoc.__doc__

        def __init__(self, kernels, weights, mode="valid", boundary="reflect", mask_first=False,
                     backend="auto", **kwargs):
            super().__init__(**kwargs)
            if not isinstance(mask_first, (bool, np.bool_)):
                raise TypeError(f"mask_first must be a bool, got {mask_first!r}")
            self.operation = "blur_product" if mask_first else "blur_masked"
            _check_options(mode, boundary, backend)
            self.mode, self.boundary, self.backend = mode, boundary, backend
            self.register_buffer("kernels", torch.as_tensor(kernels))
            self.register_buffer("weights", torch.as_tensor(weights))

        def _run(self, tensor, adjoint):
            return _apply[self.operation, adjoint](tensor, self.kernels, self.weights, self.mode,
                                                   self.boundary, self.backend)

        def A(self, x, **kwargs):
            return self._run(x, adjoint=False)

        def A_adjoint(self, y, **kwargs):
            return self._run(y, adjoint=True)

    SpaceVaryingBlur.__module__ = "fastblur.torch"
    SpaceVaryingBlur.__qualname__ = "SpaceVaryingBlur"
    return SpaceVaryingBlur


class _SpaceVaryingBlurDoc:
    """Spatially varying blur as a ``deepinv.physics.LinearPhysics`` (``A``, ``A_adjoint``).

    ``A`` is :func:`blur_masked` (``mask_first=False``, the SBDD model
    ``sum_i w_i ⊙ (k_i * x)``, the default) or :func:`blur_product` (``mask_first=True``,
    deepinv's product-convolution ``sum_i k_i * (w_i ⊙ x)``); ``A_adjoint`` is its exact
    adjoint. Both are differentiable. Unlike deepinv's ``SpaceVaryingBlur``, kernels and
    weights are shared by the channels and ``*`` is a true convolution.

    Parameters
    ----------
    kernels : Tensor or array_like, shape (N, kh, kw) or (B, N, kh, kw)
    weights : Tensor or array_like, shape (N, gh, gw) or (B, N, gh, gw)
        On the output grid (``mask_first=False``) or the input grid (``True``).
    mode : {'valid', 'same', 'full'}, optional
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
    mask_first : bool, optional
    backend : str, optional
    **kwargs
        Passed to ``LinearPhysics`` (``noise_model``, ``max_iter``...).

    Notes
    -----
    deepinv is imported on the first instantiation, so ``import fastblur.torch`` stays
    fast; instances are instances of ``deepinv.physics.LinearPhysics`` and of this class.
    """


class _Lazy(type):
    def __call__(cls, *args, **kwargs):
        return _physics_class()(*args, **kwargs)

    def __instancecheck__(cls, instance):
        return _physics_class.cache_info().currsize > 0 and isinstance(instance, _physics_class())


class SpaceVaryingBlur(metaclass=_Lazy):
    __doc__ = _SpaceVaryingBlurDoc.__doc__

