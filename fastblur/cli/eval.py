"""``fastblur-eval``: aligned PSNR/SSIM of a folder of restored images (RealBlur, Köhler).

    fastblur-eval --restored DIR --gt DIR [--blurry DIR] --protocol realblur|kohler|plain
                  --out DIR [--workers N]

Exit status: 0 when every image was evaluated, 1 when the run finished but some images
failed (listed in ``summary.json`` and ``metrics.csv``), 2 for bad arguments or files that
could not be paired (nothing is evaluated then, unless ``--allow-unmatched``).
"""
import argparse
import sys


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastblur-eval",
        description=(
            "Evaluate restored (deblurred) images against ground truth with the RealBlur or "
            "Köhler aligned PSNR/SSIM protocol. Files are paired by name without extension."
        ),
    )
    parser.add_argument("--restored", required=True, help="folder of restored images")
    parser.add_argument(
        "--gt", required=True,
        help="folder of ground-truth images (kohler: per image NAME a folder NAME/ of "
             "candidate frames, NAME.mat with GroundTruth (H,W,3,N), or one image)",
    )
    parser.add_argument("--blurry", help="folder of blurry inputs (first panel of the visuals)")
    parser.add_argument("--protocol", required=True, choices=["realblur", "kohler", "plain"])
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument(
        "--workers", type=_positive_int, default=None,
        help="worker processes, one OpenCV thread each (default: FASTBLUR_NUM_THREADS or all cores)",
    )
    parser.add_argument(
        "--allow-unmatched", action="store_true",
        help="evaluate the pairs found and list unpaired files in the summary instead of stopping",
    )
    parser.add_argument(
        "--visuals", type=_non_negative_int, default=3, metavar="K",
        help="side-by-side PNGs for the K worst and the K best images (default 3)",
    )
    parser.add_argument(
        "--on-ecc-failure", choices=["identity", "partial"], default="identity",
        help="warp used when ECC fails: identity (the protocol) or the estimate reached "
             "when it stopped (what the SBDD scripts effectively used)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..evaluate.runner import UnmatchedFilesError, evaluate_folder

    try:
        summary = evaluate_folder(
            args.restored, args.gt, args.out, protocol=args.protocol, blurry_dir=args.blurry,
            workers=args.workers, allow_unmatched=args.allow_unmatched, n_visual=args.visuals,
            on_ecc_failure=args.on_ecc_failure, progress=not args.no_progress,
        )
    except UnmatchedFilesError as error:
        print(f"fastblur-eval: error: {error}\n(use --allow-unmatched to evaluate the pairs found)",
              file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"fastblur-eval: error: {error}", file=sys.stderr)
        return 2

    def number(value, digits):
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(
        f"{summary['protocol']}: PSNR {number(summary['psnr'], 4)} dB, "
        f"SSIM {number(summary['ssim'], 4)} over {summary['n_ok']} images "
        f"({summary['n_failed']} failed, {summary['n_unmatched']} unmatched, "
        f"{summary['n_ecc_failed']} ECC failures); reports in {args.out}"
    )
    for failure in summary["failures"]:
        print(f"  failed: {failure['name']}: {failure['error']}", file=sys.stderr)
    return 1 if summary["n_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
