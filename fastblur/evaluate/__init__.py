"""Evaluation of restored images: the aligned PSNR/SSIM protocols of RealBlur and Köhler.

    aligned_metrics(restored, gt, protocol="realblur")   -> {"psnr", "ssim", "warp", ...}
    evaluate_folder(restored_dir, gt_dir, out_dir)        -> summary (and metrics.csv, ...)

The command-line front end is ``fastblur-eval`` (:mod:`fastblur.cli.eval`).
"""
from .alignment import Alignment, align, estimate_homography, intensity_match, warp_to_gt
from .metrics import masked_psnr, masked_ssim, ssim_map
from .protocols import (
    KOHLER_MAX_PSNR,
    PROTOCOLS,
    aligned_metrics,
    kohler_metrics,
    plain_metrics,
    realblur_metrics,
)
from .runner import (
    PSNR_CAP_DB,
    Pair,
    UnmatchedFilesError,
    evaluate_folder,
    evaluate_pair,
    iter_gt_frames,
    pair_files,
    read_image,
)

__all__ = [
    "Alignment",
    "KOHLER_MAX_PSNR",
    "PROTOCOLS",
    "PSNR_CAP_DB",
    "Pair",
    "UnmatchedFilesError",
    "align",
    "aligned_metrics",
    "estimate_homography",
    "evaluate_folder",
    "evaluate_pair",
    "intensity_match",
    "iter_gt_frames",
    "kohler_metrics",
    "masked_psnr",
    "masked_ssim",
    "pair_files",
    "plain_metrics",
    "read_image",
    "realblur_metrics",
    "ssim_map",
    "warp_to_gt",
]
