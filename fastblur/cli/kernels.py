"""``fastblur-kernels``: write a kernel dataset in the SBDD layout.

::

    fastblur-kernels --count 1000 --size 65 --exposure 0.5 --focal-length 1000 \\
        --model camera_shake --seed 0 --out ks65_texp05_F1000 --workers 4

writes ``OUT/train/kernel0000.mat`` ... (MATLAB v5, variable ``K``), the list file
``OUT/train_kernels.txt`` (``train/kernel0000.mat`` a line, readable by
:func:`fastblur.kernels.load_list`), ``OUT/params.json`` and ``OUT/contact_sheet.png``
(the first 64 kernels, each scaled to its peak).

Kernel ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so a dataset is the
same, byte for byte, whatever ``--workers`` is, and a larger ``--count`` extends a
dataset without changing the kernels already in it. Files are written atomically, and a
rerun into the same folder skips the kernel files that exist (the parameters in
``params.json`` must match, apart from ``count``).
"""
import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import numpy as np

MODELS = ("camera_shake", "trajectory", "linear")
FORMATS = ("mat", "npy", "png")
SUBDIR = "train"
LIST_FILE = "train_kernels.txt"
PARAMS_FILE = "params.json"
SHEET_FILE = "contact_sheet.png"
SHEET_KERNELS = 64


def _parser():
    parser = argparse.ArgumentParser(
        prog="fastblur-kernels",
        description="Generate a dataset of blur kernels (PSFs) in the SBDD layout.",
    )
    parser.add_argument("--count", type=int, required=True, help="number of kernels")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", choices=MODELS, default="camera_shake",
                        help="kernel model (default: camera_shake)")
    parser.add_argument("--size", type=int, default=65, help="kernel side in pixels (default: 65)")
    parser.add_argument("--exposure", type=float, default=0.5,
                        help="camera_shake: exposure in seconds; trajectory: fraction of the "
                             "trajectory in (0, 1]; linear: unused (default: 0.5)")
    parser.add_argument("--focal-length", type=float, default=1000.0,
                        help="camera_shake: focal length in pixels (default: 1000)")
    parser.add_argument("--length", type=float, default=None,
                        help="trajectory: path length in pixels; linear: longest segment, "
                             "lengths are drawn uniformly in [0, LENGTH] (default: size - 5)")
    parser.add_argument("--anxiety", type=float, default=0.005,
                        help="trajectory: perturbation strength in [0, 1] (default: 0.005)")
    parser.add_argument("--seed", type=int, default=0, help="non-negative seed (default: 0)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes generating kernels; the output does not depend on "
                             "it (default: 1)")
    parser.add_argument("--format", choices=FORMATS, default="mat",
                        help="kernel file format (default: mat, as SBDD)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def _params(args, parser):
    """The parameters that define the dataset (what params.json records), validated."""
    from fastblur._validation import check_count, check_real

    try:
        for name, value, low in (("--count", args.count, 1), ("--size", args.size, 1),
                                 ("--seed", args.seed, 0), ("--workers", args.workers, 1)):
            check_count(value, name, low)
        params = {"model": args.model, "count": args.count, "size": args.size, "seed": args.seed}
        default_length = max(args.size - 5, min(1, args.size - 1))
        length = default_length if args.length is None else args.length
        if args.model == "camera_shake":
            check_real(args.exposure, "--exposure", low=0.0, low_inclusive=False)
            check_real(args.focal_length, "--focal-length", low=0.0, low_inclusive=False)
            params.update(exposure=args.exposure, focal_length=args.focal_length)
        elif args.model == "trajectory":
            check_real(length, "--length", low=0.0, low_inclusive=False)
            check_real(args.anxiety, "--anxiety", 0.0, 1.0)
            check_real(args.exposure, "--exposure", 0.0, 1.0, low_inclusive=False)
            params.update(length=length, anxiety=args.anxiety, exposure=args.exposure)
        else:
            # a segment centred on tap (size - 1) // 2 fits any angle up to size - 1 when
            # size is odd; an even size leaves one pixel less on one side
            longest = args.size - 1 if args.size % 2 else args.size - 2
            check_real(length, f"--length (linear model, size {args.size})", 0.0, longest)
            params.update(max_length=length)
    except (TypeError, ValueError) as error:
        parser.error(str(error))
    params.update(
        format=args.format,
        files=f"{SUBDIR}/kernel%04d.{args.format}",
        list_file=LIST_FILE,
        rng="kernel i is drawn from numpy.random.default_rng([seed, i])",
        convention="PSF as an image, applied by true convolution; centroid on tap (size-1)//2",
    )
    return params


def make_kernel(params, index):
    """Kernel ``index`` of the dataset described by ``params`` (as in params.json)."""
    from fastblur import kernels

    rng = np.random.default_rng([params["seed"], index])
    model = params["model"]
    if model == "camera_shake":
        return kernels.camera_shake(params["size"], params["exposure"], params["focal_length"], rng)
    if model == "trajectory":
        return kernels.trajectory_kernel(
            params["size"], params["length"], params["anxiety"], params["exposure"], rng
        )
    length = rng.uniform(0.0, params["max_length"])
    angle = rng.uniform(0.0, 180.0)
    return kernels.linear_motion(length, angle, params["size"])


def _relative_path(params, index):
    return params["files"] % index


def _write_one(params, out, index):
    from fastblur.kernels import save

    save(os.path.join(out, _relative_path(params, index)), make_kernel(params, index))
    return index


def _comparable(params):
    return {k: v for k, v in params.items() if k not in ("count", "fastblur_version")}


def _check_existing(params, out):
    """Why ``out`` cannot take this dataset (other parameters, kernels already there), or None."""
    path = os.path.join(out, PARAMS_FILE)
    train = os.path.join(out, SUBDIR)
    if not (os.path.isdir(train) and os.listdir(train)):
        return None
    if not os.path.exists(path):
        return f"{train} holds files but {path} is missing: cannot tell how they were made; use another --out"
    try:
        with open(path, encoding="utf-8") as stream:
            previous = json.load(stream)
    except (OSError, ValueError) as error:
        return f"cannot read {path}: {error}"
    if _comparable(previous) != _comparable(params):
        changed = sorted(
            k for k in set(_comparable(previous)) | set(_comparable(params))
            if previous.get(k) != params.get(k)
        )
        return (
            f"{out} holds a dataset made with other parameters (different: "
            f"{', '.join(changed)}); use another --out"
        )
    return None


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    params = _params(args, parser)

    import fastblur
    from fastblur.kernels import contact_sheet, load
    from fastblur._atomic import remove_temporaries
    from fastblur.kernels.io import save_list, write_atomic
    from PIL import Image
    from tqdm import tqdm

    params["fastblur_version"] = fastblur.__version__
    out = args.out
    problem = _check_existing(params, out)
    if problem:
        print(f"fastblur-kernels: error: {problem}", file=sys.stderr)
        return 2
    os.makedirs(os.path.join(out, SUBDIR), exist_ok=True)
    remove_temporaries(os.path.join(out, SUBDIR))
    write_atomic(os.path.join(out, PARAMS_FILE),
                 (json.dumps(params, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    todo = [i for i in range(args.count)
            if not os.path.exists(os.path.join(out, _relative_path(params, i)))]
    task = partial(_write_one, params, out)
    try:
        with tqdm(total=args.count, initial=args.count - len(todo), unit="kernel",
                  desc="fastblur-kernels", disable=args.quiet) as bar:
            if args.workers == 1 or len(todo) <= 1:
                for index in todo:
                    task(index)
                    bar.update()
            else:
                chunk = max(1, min(64, len(todo) // (4 * args.workers)))
                with ProcessPoolExecutor(max_workers=args.workers) as pool:
                    for _ in pool.map(task, todo, chunksize=chunk):
                        bar.update()
    except ValueError as error:
        print(f"fastblur-kernels: error: {error}", file=sys.stderr)
        return 1

    entries = [_relative_path(params, i) for i in range(args.count)]
    save_list(os.path.join(out, LIST_FILE), entries)
    first = [load(os.path.join(out, e), normalize=False) for e in entries[:SHEET_KERNELS]]
    buffer = _png_bytes(Image.fromarray(contact_sheet(first)))
    write_atomic(os.path.join(out, SHEET_FILE), buffer)
    if not args.quiet:
        print(f"fastblur-kernels: {args.count} kernels in {out} "
              f"({args.count - len(todo)} already there)", file=sys.stderr)
    return 0


def _png_bytes(image):
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
