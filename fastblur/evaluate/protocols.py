"""The evaluation protocols: RealBlur (aligned), Köhler (aligned, best ground-truth frame), plain.

Every protocol returns a dict with at least ``psnr``, ``ssim`` and ``warp``. PSNR is in dB
with ``data_range = 1``; an exact match on the valid region gives ``inf`` (never capped
here: averaging code decides what to do with it, see :mod:`fastblur.evaluate.runner`).
"""
import numpy as np

from .._validation import check_choice, check_min_side, check_ndim, check_same_shape
from .alignment import align, check_ecc_failure_policy
from .metrics import gaussian_window, masked_psnr, masked_ssim

PROTOCOLS = ("realblur", "kohler", "plain")

#: The SBDD Köhler script keeps the best frame among those scoring below this PSNR (dB),
#: which rules out a restored image that *is* one of the ground-truth frames.
KOHLER_MAX_PSNR = 60.0


def _as_rgb_image(image, name):
    if isinstance(image, (str, bytes)) or image is None:
        raise TypeError(f"{name} must be a float array (H, W, 3), got {type(image).__name__}")
    array = np.asarray(image)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name} must be a float array with values in [0, 1], got dtype {array.dtype} "
            "(divide 8-bit images by 255)"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    layout = "RGB (H, W, 3) or grey (H, W) / (H, W, 1)"
    check_ndim(array, (3,), name, layout)
    if array.shape[2] not in (1, 3):
        raise ValueError(f"{name} must be {layout}, got shape {array.shape}")
    radius = gaussian_window().size // 2
    check_min_side(array, 2 * radius + 1, name, " (the SSIM window)")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite: it contains NaN or inf")
    return np.ascontiguousarray(array, dtype=np.float32)


def _check_same_layout(restored, gt, gt_name="gt"):
    if restored.shape[2] != gt.shape[2]:
        kinds = {1: "grey", 3: "RGB"}
        raise ValueError(
            f"restored is {kinds[restored.shape[2]]} but {gt_name} is {kinds[gt.shape[2]]}: "
            "both must be RGB (H, W, 3) or both grey"
        )


def _check_same_size(restored, gt, gt_name="gt"):
    check_same_shape(restored, gt, ("restored", gt_name),
                     ": the alignment corrects small motions, not a different size")


def _aligned_result(restored, gt, on_ecc_failure, return_aligned):
    alignment = align(restored, gt, on_ecc_failure)
    result = {
        "psnr": masked_psnr(alignment.gt, alignment.aligned, alignment.mask),
        "ssim": None,
        "warp": alignment.warp,
        "gain": alignment.gain,
        "ecc_failed": alignment.ecc_failed,
        "valid_fraction": float(alignment.mask.mean()),
    }
    if return_aligned:
        result["aligned"] = alignment.aligned
        result["mask"] = alignment.mask
    return result, alignment


def realblur_metrics(restored, gt, on_ecc_failure="identity", return_aligned=False):
    """PSNR and SSIM after RealBlur alignment (intensity gain + ECC homography).

    Parameters
    ----------
    restored, gt : ndarray, shape (H, W, 3), float
        Same shape, values in [0, 1]; computed in float32 as the reference does.
    on_ecc_failure : {"identity", "partial"}
        See :func:`fastblur.evaluate.alignment.estimate_homography`.
    return_aligned : bool
        Also return ``aligned`` (the warped restored image, zero outside the valid region)
        and ``mask``.

    Returns
    -------
    dict
        ``psnr`` (dB, over the valid region), ``ssim`` (valid region, border cropped),
        ``warp`` ((3, 3) float64), ``gain``, ``ecc_failed``, ``valid_fraction``.
    """
    restored = _as_rgb_image(restored, "restored")
    gt = _as_rgb_image(gt, "gt")
    _check_same_layout(restored, gt)
    _check_same_size(restored, gt)
    result, alignment = _aligned_result(restored, gt, on_ecc_failure, return_aligned)
    result["ssim"] = masked_ssim(alignment.gt, alignment.aligned, alignment.mask)
    return result


def _iter_gt_frames(gt):
    if isinstance(gt, np.ndarray):
        if gt.ndim == 4:
            return iter(gt)
        return iter([gt])
    expected = "gt must be an image, a stack of frames or a sequence of frames"
    if isinstance(gt, (str, bytes)) or gt is None:
        raise TypeError(f"{expected}, got {type(gt).__name__}")
    try:
        return iter(gt)
    except TypeError:
        raise TypeError(f"{expected}, got {type(gt).__name__}") from None


def resize_to(restored, shape):
    """``restored`` resized to ``shape`` (scikit-image, range kept), as contiguous float32."""
    from skimage.transform import resize

    return np.ascontiguousarray(resize(restored, shape, preserve_range=True), dtype=np.float32)


def kohler_metrics(restored, gt, on_ecc_failure="identity", return_aligned=False,
                   max_psnr=KOHLER_MAX_PSNR):
    """Köhler protocol: RealBlur alignment against each ground-truth frame, best PSNR wins.

    The Köhler et al. benchmark records a sequence of sharp frames along the camera
    trajectory; a restored image is scored against the frame it matches best.

    Parameters
    ----------
    restored : ndarray, shape (H, W, 3), float
    gt : ndarray (H, W, 3) or (N, H, W, 3), or an iterable of (H, W, 3) arrays
        The candidate ground-truth frames; an iterable (a generator reading files, say) is
        consumed one frame at a time.
    on_ecc_failure, return_aligned
        As for :func:`realblur_metrics`.
    max_psnr : float or None
        Frames scoring ``max_psnr`` dB or more are passed over (the SBDD script's rule); if
        every frame does, the best of all is taken. ``None``: no ceiling.

    Returns
    -------
    dict
        As :func:`realblur_metrics`, plus ``gt_index`` (the chosen frame) and
        ``frame_psnr`` (the PSNR against every frame, a list).

    Notes
    -----
    As in the SBDD Köhler script, a restored image whose size differs from the frames'
    is first resized to it (bilinear, ``skimage.transform.resize``). SSIM is computed for
    the chosen frame only, which gives the script's result without its per-frame cost.
    """
    restored = _as_rgb_image(restored, "restored")
    best = None
    frame_psnr = []
    # frames are consumed one at a time, so a long sequence can be streamed from disk
    for index, frame in enumerate(_iter_gt_frames(gt)):
        name = f"gt[{index}]"
        frame = _as_rgb_image(frame, name)
        _check_same_layout(restored, frame, name)
        candidate = restored
        if candidate.shape != frame.shape:
            candidate = resize_to(candidate, frame.shape)
        result, alignment = _aligned_result(candidate, frame, on_ecc_failure, return_aligned)
        psnr = result["psnr"]
        frame_psnr.append(psnr)
        if np.isnan(psnr):
            continue
        rank = (max_psnr is None or psnr < max_psnr, psnr)  # below the ceiling first
        if best is None or rank > best[0]:
            best = (rank, index, result, alignment)
    if not frame_psnr:
        raise ValueError("gt must hold at least one ground-truth frame, got none")
    if best is None:
        raise ValueError("the alignment left no valid pixel against any ground-truth frame")
    _, index, result, alignment = best
    result["ssim"] = masked_ssim(alignment.gt, alignment.aligned, alignment.mask)
    result["gt_index"] = index
    result["frame_psnr"] = frame_psnr
    return result


def plain_metrics(restored, gt, return_aligned=False):
    """PSNR and SSIM of the images as they are: no intensity matching, no alignment.

    Parameters
    ----------
    restored, gt : ndarray, shape (H, W, 3), float
        Same shape.
    return_aligned : bool
        Also return ``aligned`` (``restored`` itself) and ``mask`` (all ones).

    Returns
    -------
    dict
        ``psnr``, ``ssim`` (border cropped by the window radius), ``warp`` (identity),
        ``gain`` (1), ``ecc_failed`` (False), ``valid_fraction`` (1).
    """
    restored = _as_rgb_image(restored, "restored")
    gt = _as_rgb_image(gt, "gt")
    _check_same_layout(restored, gt)
    _check_same_size(restored, gt)
    result = {
        "psnr": masked_psnr(gt, restored),
        "ssim": masked_ssim(gt, restored),
        "warp": np.eye(3),
        "gain": 1.0,
        "ecc_failed": False,
        "valid_fraction": 1.0,
    }
    if return_aligned:
        result["aligned"] = restored
        result["mask"] = np.ones(restored.shape[:2], np.float32)
    return result


def aligned_metrics(restored, gt, protocol="realblur", *, on_ecc_failure="identity",
                    return_aligned=False):
    """PSNR and SSIM of a restored image under a published evaluation protocol.

    Parameters
    ----------
    restored : ndarray, shape (H, W, 3), float
        The restored (deblurred) image, values in [0, 1]. Grey (H, W) images are accepted
        when ``gt`` is grey too.
    gt : ndarray, shape (H, W, 3), float
        The ground truth, values in [0, 1]. For ``protocol="kohler"`` also a stack
        (N, H, W, 3) or a sequence of candidate frames.
    protocol : {"realblur", "kohler", "plain"}
        ``"realblur"``: least-squares intensity matching, ECC homography (identity if ECC
        fails), bicubic warp, PSNR over the valid region, Gaussian SSIM averaged over the
        valid region after cropping the window radius. ``"kohler"``: the same against every
        candidate frame, keeping the best PSNR (see :func:`kohler_metrics`). ``"plain"``:
        no alignment.
    on_ecc_failure : {"identity", "partial"}
        ``"identity"`` (the protocol as documented) or ``"partial"`` (what the SBDD
        scripts effectively did, see :func:`~fastblur.evaluate.alignment.estimate_homography`).
        Ignored by ``"plain"``.
    return_aligned : bool
        Also return ``aligned`` ((H, W, C) float32) and ``mask`` ((H, W) float32).

    Returns
    -------
    dict
        ``psnr`` (float, dB; ``inf`` for an exact match), ``ssim`` (float), ``warp``
        ((3, 3) float64 homography from ground-truth to restored pixel coordinates),
        ``gain`` (intensity-matching gain), ``ecc_failed`` (bool), ``valid_fraction``
        (share of ground-truth pixels covered after warping); for ``"kohler"`` also
        ``gt_index`` and ``frame_psnr``.

    Raises
    ------
    TypeError
        Non-float images.
    ValueError
        Unknown protocol, grey against RGB, different sizes (``"realblur"``, ``"plain"``),
        images smaller than the SSIM window, NaN or inf.
    """
    check_choice(protocol, PROTOCOLS, "protocol")
    check_ecc_failure_policy(on_ecc_failure)
    if protocol == "realblur":
        return realblur_metrics(restored, gt, on_ecc_failure, return_aligned)
    if protocol == "kohler":
        return kohler_metrics(restored, gt, on_ecc_failure, return_aligned)
    return plain_metrics(restored, gt, return_aligned)
