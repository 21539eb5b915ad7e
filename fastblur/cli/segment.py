"""``fastblur-segment``: object masks for a folder of sharp images (torchvision Mask R-CNN).

Writes one ``NAME.npz`` per image in detectron2's format, which
``fastblur-gen --masks detectron2 --masks-path MASKS`` reads::

    fastblur-segment --input DIV2K_train_HR --out DIV2K_masks
    fastblur-gen --input DIV2K_train_HR --masks detectron2 --masks-path DIV2K_masks --out SBDD

Weights come from torchvision's cache (``TORCH_HOME``) and are downloaded only with
``--download``. Exit status: 0 done, 1 some images failed (reported, the rest were
written), 2 bad settings or missing weights, 130 interrupted.
"""
import argparse
import logging
import os
import sys

from .gen import parse_classes

logger = logging.getLogger("fastblur")


def build_parser():
    from ..sbdd.segment import MODELS

    parser = argparse.ArgumentParser(
        prog="fastblur-segment",
        description="Instance masks (detectron2 .npz) for a folder of sharp images, by torchvision's "
                    "COCO Mask R-CNN.",
    )
    parser.add_argument("--input", "-i", help="folder of sharp images or a GoPro tree "
                        "(default: the embedded sample photographs)")
    parser.add_argument("--out", "-o", required=True, help="output folder of NAME.npz files")
    parser.add_argument("--model", choices=MODELS, default=MODELS[0], help=f"network (default {MODELS[0]})")
    parser.add_argument("--weights", default="default",
                        help="'default' (COCO weights from torchvision's cache), 'none' (untrained, "
                             "for pipeline checks) or a checkpoint file")
    parser.add_argument("--download", action="store_true",
                        help="let torchvision download the default weights if they are missing")
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default 1)")
    parser.add_argument("--score-threshold", type=float, default=0.5,
                        help="drop detections scoring below (default 0.5)")
    parser.add_argument("--classes", type=parse_classes, help="comma-separated COCO class names or ids to keep")
    parser.add_argument("--max-size", type=int, default=1333,
                        help="long side at which images are segmented (default 1333)")
    parser.add_argument("--input-layout", choices=("auto", "folder", "gopro"), default="auto",
                        help="how to read --input (default auto)")
    parser.add_argument("--split", default="train", help="GoPro split to read (default train)")
    parser.add_argument("--overwrite", action="store_true", help="segment images whose file exists")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return parser


def _device(name):
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not (name == "cuda" or name.startswith("cuda:")):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    return name


def main(argv=None):
    """Run ``fastblur-segment`` with ``argv`` (``sys.argv[1:]`` by default); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as error:
        print(f"fastblur-segment: error: {error}; install PyTorch and torchvision "
              "(pip install 'fastblur[segment]')", file=sys.stderr)
        return 2
    from .._threads import ENV_VAR
    from ..sbdd.config import DatasetConfig
    from ..sbdd.dataset import find_sources
    from ..sbdd.segment import build_model, segment_sources

    try:
        if ENV_VAR in os.environ:
            torch.set_num_threads(int(os.environ[ENV_VAR]))
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out!r} exists and is not a folder")
        device = _device(args.device)
        sources = find_sources(DatasetConfig(input=args.input, input_layout=args.input_layout,
                                             split=args.split, progress=False))
        model = build_model(args.model, args.weights, download=args.download, device=device)
        logger.info("fastblur-segment: %s on %s, %d images", args.model, device, len(sources))
        summary = segment_sources(
            sources, args.out, model, overwrite=args.overwrite, progress=args.progress,
            score_threshold=args.score_threshold, classes=args.classes, max_size=args.max_size,
            batch_size=args.batch_size, device=device)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f"fastblur-segment: error: {error}", file=sys.stderr)
        return 2
    rate = summary["written"] / summary["seconds"] if summary["seconds"] > 0 else 0.0
    print(f"{summary['written']} images segmented, {summary['skipped']} already done, "
          f"{summary['failed']} failed ({rate:.2f} images/s) -> {args.out}")
    for name, message in summary["failures"][:20]:
        print(f"  {name}: {message}", file=sys.stderr)
    if summary["interrupted"]:
        return 130
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
