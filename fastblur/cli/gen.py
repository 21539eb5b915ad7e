"""``fastblur-gen``: write SBDD blurry/sharp training pairs.

With no ``--input`` it runs on its embedded default (scikit-image's sample photographs,
masks from a classical segmentation, camera-shake kernels generated on the fly)::

    fastblur-gen --out sbdd_sample --count 8

Options mirror the reference generator's (``--gamma``, ``--exponential-crf``,
``--augment-illumination``, ``--max-objects``, ``--min-object-area``,
``--score-threshold``, ``--n-images``, ``--random-masks``, streak, saturation and noise
options, ``--kernel-size``); ``--config FILE.toml`` supplies any of them (command-line
options win). ``--scheduler``/``--scheduler-file`` make the pairs on a Dask cluster,
``--out``/``--input``/``--masks-path``/``--kernels`` take fsspec URLs (``s3://...``),
``--layout webdataset`` writes tar shards. Exit status: 0 done, 1 some pairs failed
(reported, the rest were written), 2 bad settings, 130 interrupted.
"""
import argparse
import sys

from ..sbdd.config import (
    FORMATS, INPUT_LAYOUTS, LAYOUTS, MASK_SOURCES, PNG_COMPRESSIONS, SEGMENT_MODELS, DatasetConfig, load_config,
)


def parse_classes(text):
    """``--classes`` text: comma-separated COCO class names or integer ids."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    return [int(item) if item.isdigit() else item for item in items]


def _json_object(text):
    import json

    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {text!r}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastblur-gen",
        description="Write SBDD motion-blur training pairs (segmentation-based non-uniform blur).",
        argument_default=argparse.SUPPRESS,
    )
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--out", "-o", help="output folder")
    io.add_argument("--input", "-i",
                    help="folder of sharp images or a GoPro tree (default: embedded sample photographs)")
    io.add_argument("--input-layout", choices=INPUT_LAYOUTS, help="how to read --input (default auto)")
    io.add_argument("--split", help="GoPro split to read (default train); also the gopro output layout's split")
    io.add_argument("--count", type=int, help="number of pairs (default: n-images per input image)")
    io.add_argument("--n-images", type=int, help="pairs per sharp image (default 1)")
    io.add_argument("--min-image-size", type=int, help="skip images whose shorter side is not larger (default 0)")
    io.add_argument("--layout", choices=LAYOUTS, help="output layout (default sbdd: OUT/blurry, OUT/sharp)")
    io.add_argument("--format", choices=FORMATS,
                    help="image format (default png; jxl: lossless JPEG XL, ~30%% smaller, few loaders read it)")
    io.add_argument("--quality", type=int, help="JPEG quality (default 95)")
    io.add_argument("--png-compression", choices=PNG_COMPRESSIONS,
                    help="lossless PNG writer: fast (default) or small (15-26%% smaller, about 7x slower)")
    io.add_argument("--preview", metavar="FILE.png", help="write a contact sheet of the first pairs")
    io.add_argument("--preview-count", type=int, help="pairs on the contact sheet (default 4)")
    io.add_argument("--config", metavar="FILE.toml", help="settings file (options given here win)")

    masks = parser.add_argument_group("object masks")
    masks.add_argument("--masks", choices=MASK_SOURCES, help="mask source (default classical)")
    masks.add_argument("--masks-path", "--segmentation-dir",
                       help="folder of NAME.npz (detectron2; maskrcnn's cache, default OUT/masks) / "
                            "NAME.png (labels), or a COCO json")
    masks.add_argument("--score-threshold", type=float, help="detectron2 minimum score (default 0.9)")
    masks.add_argument("--min-object-area", type=int, help="minimum object area in pixels (default 4000)")
    masks.add_argument("--max-objects", type=int, help="at most this many moving objects (default 5)")
    masks.add_argument("--classes", type=parse_classes, help="comma-separated COCO class names or ids to keep")
    masks.add_argument("--random-masks", action="store_true", help="use the masks of a random input image")
    masks.add_argument("--segment-model", choices=SEGMENT_MODELS,
                       help="--masks maskrcnn: the network (default maskrcnn_resnet50_fpn_v2)")
    masks.add_argument("--segment-weights",
                       help="--masks maskrcnn: 'default' (torchvision's cache, see fastblur-segment), "
                            "'none' or a checkpoint file")

    kernels = parser.add_argument_group("kernels")
    kernels.add_argument("--kernels", help="'generated' (default) or a kernel list file / folder")
    kernels.add_argument("--kernels-root", help="folder the list file's entries are relative to")
    kernels.add_argument("--kernel-size", "-K", type=int, help="kernel side in pixels (default 65)")
    kernels.add_argument("--exposure", type=float, help="generated kernels: exposure in s (default 0.5)")
    kernels.add_argument("--focal-length", type=float, help="generated kernels: focal length in px (default 1000)")

    camera = parser.add_argument_group("camera")
    camera.add_argument("--camera-model", choices=("uniform", "projective"),
                        help="uniform: the background kernel blurs the background (default); projective: "
                             "the spatially varying blur of a drawn camera rotation (--exposure, --focal-length)")
    camera.add_argument("--camera-roll", type=float, help="projective: roll scale relative to yaw/pitch (default 1)")
    camera.add_argument("--camera-roll-spread", type=float,
                        help="projective: relative spread of the roll scale, in [0, 1) (default 0)")
    camera.add_argument("--camera-exposure-spread", type=float,
                        help="projective: relative spread of the exposure, in [0, 1) (default 0)")

    formation = parser.add_argument_group("formation model")
    formation.add_argument("--crf", choices=("gamma", "exponential", "none"), help="camera response (default gamma)")
    formation.add_argument("--gamma", "--gamma-factor", type=float, help="gamma of the response (default 2.2)")
    formation.add_argument("--exponential-crf", action="store_true", help="use the exponential response")
    formation.add_argument("--exponential-factor", type=float, help="a of the exponential response (default 7)")
    formation.add_argument("--augment-illumination", action="store_true", help="multiply linear light by 1 + 2 j u")
    formation.add_argument("--jitter-illumination", type=float, help="j of the illumination gain (default 1)")
    formation.add_argument("--random-white-streaks", "--random-whyte-streaks", action="store_true",
                           help="add random bright streaks")
    formation.add_argument("--prob-streaks", type=float, help="probability of streaks in an image (default 0.5)")
    formation.add_argument("--min-streaks", type=int, help="fewest streaks (default 10)")
    formation.add_argument("--max-streaks", type=int, help="most streaks, exclusive (default 100)")
    formation.add_argument("--min-sat-increment", type=float, help="smallest streak spike (default 0)")
    formation.add_argument("--max-sat-increment", type=float, help="largest streak spike (default 2000)")
    formation.add_argument("--saturation-streaks", action="store_true",
                           help="boost saturated regions before blurring")
    formation.add_argument("--sat-augmentation-in-blurry", action="store_true",
                           help="boost saturated regions in the blurry image only")
    formation.add_argument("--min-saturated-fraction", type=float, help="saturation mask kept above (default 1e-3)")
    formation.add_argument("--gaussian-noise", action="store_true", help="multiplicative Gaussian noise")
    formation.add_argument("--noise-std", type=float, help="its relative std (default 0)")
    formation.add_argument("--poisson-peak", type=float, help="Poisson noise: photons at value 255")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, help="seed of the whole dataset (default 0)")
    run.add_argument("--workers", "-j", type=int, help="worker processes (default: all cores)")
    run.add_argument("--backend", help="fastblur backend (default auto)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    run.add_argument("--overwrite", action="store_true", help="remake every pair, even finished ones")
    run.add_argument("--timings", action="store_true",
                     help="print the mean ms a pair of each stage (read, masks, kernels, synthesis, encode, "
                          "write, manifest) at the end")

    cluster = parser.add_argument_group("beyond one machine (Dask, object storage, tar shards)")
    cluster.add_argument("--scheduler", metavar="local|tcp://HOST:PORT",
                         help="make the pairs on Dask: 'local' starts a LocalCluster of --workers processes")
    cluster.add_argument("--scheduler-file", metavar="FILE", help="the file `dask scheduler --scheduler-file` writes")
    cluster.add_argument("--chunk-size", type=int, help="pairs a Dask task makes (default: from count and workers)")
    cluster.add_argument("--timeout", type=float, help="seconds to reach the scheduler (default 30)")
    cluster.add_argument("--storage-options", type=_json_object, metavar="JSON",
                         help="fsspec options for URL paths (s3://, gs://), e.g. '{\"anon\": false}'")
    cluster.add_argument("--shard-size", type=int, help="pairs a tar shard holds with --layout webdataset (default 1000)")
    return parser


def main(argv=None):
    """Run ``fastblur-gen`` with ``argv`` (``sys.argv[1:]`` by default); returns the exit status."""
    from .._memory import keep_freed_memory
    from ..sbdd.dataset import generate

    parser = build_parser()
    options = vars(parser.parse_args(argv))
    config_file = options.pop("config", None)
    try:
        config = load_config(config_file, **options) if config_file else DatasetConfig.from_dict(options)
        if config.out is None:
            parser.error("--out is required (or out = ... in --config)")
        keep_freed_memory()  # this process makes the pairs itself when workers is 1
        summary = generate(config)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as error:
        print(f"fastblur-gen: error: {error}", file=sys.stderr)
        return 2
    print(summary)
    if config.timings:
        print(f"fastblur-gen timings: {summary.timings.report()}")
    if summary.failures:
        print(f"fastblur-gen: {summary.failed} pairs failed:", file=sys.stderr)
        for index, name, message in summary.failures[:20]:
            print(f"  pair {index} ({name}): {message}", file=sys.stderr)
        if summary.failed > 20:
            print(f"  ... and {summary.failed - 20} more", file=sys.stderr)
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
