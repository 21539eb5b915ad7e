"""Evaluate a folder of restored images against ground truth, in parallel.

Files are paired by name without extension (``img_01.png`` with ``img_01.jpg``). For the
Köhler protocol the ground truth of ``NAME`` is a folder ``GT/NAME/`` of candidate frames,
a MATLAB file ``GT/NAME.mat`` holding ``GroundTruth`` (H, W, 3, N) as the Köhler
benchmark ships it, or a single image ``GT/NAME.png``.

Outputs in ``out_dir``: ``metrics.csv`` (one row per image, failures included),
``summary.json`` (means, counts, failures) and ``visual/`` with side-by-side PNGs
(blurry | restored aligned | ground truth) of the worst and best images by PSNR.
"""
import concurrent.futures
import csv
import json
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import NamedTuple, Optional

import cv2
import numpy as np

from .._memory import keep_freed_memory
from .._validation import check_choice, check_count
from .alignment import check_ecc_failure_policy, warp_to_gt
from .metrics import masked_psnr
from .protocols import PROTOCOLS, aligned_metrics, resize_to

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm")

#: Infinite PSNRs (exact matches) count as this many dB in the summary's mean.
PSNR_CAP_DB = 100.0

CSV_COLUMNS = (
    "name", "status", "psnr", "ssim", "blurry_psnr", "gain", "ecc_failed", "valid_fraction",
    "gt_index", "h00", "h01", "h02", "h10", "h11", "h12", "h20", "h21", "h22", "error",
)


class Pair(NamedTuple):
    """One image to evaluate: its name and where its files are."""

    name: str
    restored: Path
    gt: Path
    blurry: Optional[Path] = None


class UnmatchedFilesError(ValueError):
    """Files in one folder without a partner in another; ``unmatched`` maps folder to names."""

    def __init__(self, unmatched):
        self.unmatched = unmatched
        lines = ["files could not be paired by name (without extension):"]
        for role, names in unmatched.items():
            if names:
                shown = ", ".join(names[:20])
                if len(names) > 20:
                    shown += f", ... ({len(names)} in all)"
                lines.append(f"  only in --{role}: {shown}")
        super().__init__("\n".join(lines))


def read_image(path):
    """Read an image file as float32 (H, W, C) in [0, 1], RGB channel order.

    8- and 16-bit files are divided by 255 and 65535; an alpha channel is dropped; grey
    files give C = 1.

    Raises
    ------
    ValueError
        If the file cannot be decoded.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ValueError(f"cannot read image {path.name}: not a decodable image file")
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 2:
        image = image[:, :, None]
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    if np.issubdtype(image.dtype, np.floating):
        return image.astype(np.float32)
    raise ValueError(f"cannot read image {path.name}: unsupported sample type {image.dtype}")


def iter_gt_frames(path):
    """Köhler candidate frames, read one at a time, from a folder of images, a ``.mat``
    file holding ``GroundTruth`` (H, W, 3, N) or a single image; float32 in [0, 1]."""
    path = Path(path)
    if path.is_dir():
        return (read_image(p) for p in _frame_files(path))
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        stack = loadmat(path).get("GroundTruth")
        if stack is None or stack.ndim != 4:
            raise ValueError(f"{path.name} must hold GroundTruth of shape (H, W, 3, N)")
        scale = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}.get(stack.dtype, 1)
        return (stack[..., index].astype(np.float32) / scale for index in range(stack.shape[3]))
    return iter([read_image(path)])


def _frame_files(folder):
    files = sorted(p for p in folder.iterdir() if _is_image(p))
    if not files:
        raise ValueError(f"ground-truth folder {folder.name} holds no image")
    return files


def read_gt_frame(path, index):
    """Frame ``index`` of :func:`iter_gt_frames`."""
    path = Path(path)
    if path.is_dir():
        return read_image(_frame_files(path)[index])
    for position, frame in enumerate(iter_gt_frames(path)):
        if position == index:
            return frame
    raise ValueError(f"{path.name} has no frame {index}")


def _is_image(path):
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _index_folder(folder, role, kohler_gt=False):
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--{role} must be an existing folder, got {str(folder)!r}")
    entries = {}
    duplicates = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        usable = _is_image(path) or (
            kohler_gt and (path.is_dir() or (path.is_file() and path.suffix.lower() == ".mat"))
        )
        if not usable:
            continue
        stem = path.name if path.is_dir() else path.stem
        if stem in entries:
            duplicates.append(f"{entries[stem].name} / {path.name}")
        entries[stem] = path
    if duplicates:
        raise ValueError(f"--{role} has several files with the same name: {', '.join(duplicates)}")
    return entries


def pair_files(restored_dir, gt_dir, blurry_dir=None, protocol="realblur"):
    """Pair the files of the folders by name without extension.

    Returns
    -------
    pairs : list of Pair
        Sorted by name.
    unmatched : dict
        ``{"restored": [...], "gt": [...], "blurry": [...]}``: file names without a partner.

    Raises
    ------
    ValueError
        A folder does not exist, or two files in one folder share a name.
    """
    restored = _index_folder(restored_dir, "restored")
    gt = _index_folder(gt_dir, "gt", kohler_gt=(protocol == "kohler"))
    blurry = _index_folder(blurry_dir, "blurry") if blurry_dir is not None else None
    names = set(restored) & set(gt)
    if blurry is not None:
        names &= set(blurry)
    unmatched = {
        "restored": sorted(restored[n].name for n in set(restored) - names),
        "gt": sorted(gt[n].name for n in set(gt) - names),
        "blurry": sorted(blurry[n].name for n in set(blurry) - names) if blurry is not None else [],
    }
    pairs = [
        Pair(n, restored[n], gt[n], blurry[n] if blurry is not None else None) for n in sorted(names)
    ]
    return pairs, unmatched


def evaluate_pair(pair, protocol="realblur", on_ecc_failure="identity"):
    """Evaluate one :class:`Pair`; never raises: failures come back as ``status="error"``.

    Returns
    -------
    dict
        One row of ``metrics.csv`` (keys :data:`CSV_COLUMNS`), numbers unformatted.
    """
    row = {column: None for column in CSV_COLUMNS}
    row["name"] = pair.name
    try:
        restored = read_image(pair.restored)
        gt = iter_gt_frames(pair.gt) if protocol == "kohler" else read_image(pair.gt)
        result = aligned_metrics(restored, gt, protocol, on_ecc_failure=on_ecc_failure)
    except Exception as error:  # noqa: BLE001 - every per-image failure is reported, the run goes on
        row.update(status="error", error=f"{type(error).__name__}: {error}")
        return row
    if math.isnan(result["psnr"]) or math.isnan(result["ssim"]):
        row.update(status="error", error="alignment left no valid pixel away from the border")
        return row
    row.update(
        status="ok", psnr=result["psnr"], ssim=result["ssim"], gain=result["gain"],
        ecc_failed=result["ecc_failed"], valid_fraction=result["valid_fraction"],
        gt_index=result.get("gt_index"),
    )
    for index, value in enumerate(np.asarray(result["warp"]).ravel()):
        row[f"h{index // 3}{index % 3}"] = float(value)
    if pair.blurry is not None:
        try:
            blurry = read_image(pair.blurry)
            frame = read_gt_frame(pair.gt, result["gt_index"]) if protocol == "kohler" else gt
            row["blurry_psnr"] = masked_psnr(frame, blurry)
        except Exception as error:  # noqa: BLE001 - the blurry image only adds context
            row["error"] = f"blurry: {type(error).__name__}: {error}"
    return row


def _row_warp(row):
    return np.array([row[f"h{index // 3}{index % 3}"] for index in range(9)], np.float64).reshape(3, 3)


def side_by_side(pair, row, protocol):
    """The (H, 3W, 3) uint8 panel blurry | restored aligned | gt of an evaluated row.

    Re-applies the row's gain and warp (no second ECC run). Without a blurry image the
    first panel is the restored image as it came.
    """
    restored = read_image(pair.restored)
    if protocol == "kohler":
        gt = read_gt_frame(pair.gt, row["gt_index"])
    else:
        gt = read_image(pair.gt)
    if restored.shape[:2] != gt.shape[:2]:
        restored = resize_to(restored, gt.shape)
    if protocol == "plain":
        aligned = restored
    else:
        aligned, _ = warp_to_gt(np.float32(row["gain"]) * restored, _row_warp(row), gt.shape[:2])
    first = restored
    if pair.blurry is not None:
        try:
            first = read_image(pair.blurry)
        except ValueError:
            pass
    panels = []
    for image in (first, aligned, gt):
        if image.shape[:2] != gt.shape[:2]:
            image = cv2.resize(image, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_AREA)
            image = image.reshape(gt.shape[:2] + (-1,))
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        panels.append(image)
    return (np.clip(np.concatenate(panels, axis=1), 0, 1) * 255 + 0.5).astype(np.uint8)


def _worker_setup(opencv_threads):
    cv2.setNumThreads(opencv_threads)  # one OpenCV thread a worker: workers scale, not threads
    keep_freed_memory(1 << 30)


def _run_pairs(pairs, protocol, on_ecc_failure, workers, progress):
    from tqdm import tqdm

    rows = []
    # spawn: a clean interpreter a worker (forking a process that holds OpenCV's thread
    # pool is not safe everywhere); one worker is a pool too, so that it runs exactly as
    # each of N workers does and leaves the calling process's settings alone
    context = multiprocessing.get_context("spawn")
    with tqdm(total=len(pairs), desc="fastblur-eval", unit="img", disable=not progress) as bar, \
            concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_worker_setup, initargs=(1,)
            ) as pool:
        futures = {pool.submit(evaluate_pair, pair, protocol, on_ecc_failure): pair for pair in pairs}
        for future in concurrent.futures.as_completed(futures):
            try:
                rows.append(future.result())
            except Exception as error:  # noqa: BLE001 - a worker died (crash, out of memory)
                row = {column: None for column in CSV_COLUMNS}
                row.update(name=futures[future].name, status="error",
                           error=f"worker process failed: {type(error).__name__}: {error}")
                rows.append(row)
            bar.update()
    return rows


def _format(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_format(row[column]) for column in CSV_COLUMNS])


def _mean(values):
    return float(np.mean(values)) if values else None


def _pick_visuals(ok_rows, count):
    ranked = sorted(ok_rows, key=lambda row: (row["psnr"], row["name"]))
    count = min(count, len(ranked) // 2 if len(ranked) > 1 else len(ranked))
    worst = ranked[:count]
    best = ranked[::-1][:count] if len(ranked) > 1 else []
    return worst, best


def evaluate_folder(restored_dir, gt_dir, out_dir, protocol="realblur", blurry_dir=None,
                    workers=None, allow_unmatched=False, n_visual=3,
                    on_ecc_failure="identity", progress=True):
    """Evaluate every restored image of a folder and write the reports.

    Parameters
    ----------
    restored_dir, gt_dir : path
        Restored images and ground truth, paired by name without extension.
    out_dir : path
        Created if needed; receives ``metrics.csv``, ``summary.json`` and ``visual/``.
    protocol : {"realblur", "kohler", "plain"}
    blurry_dir : path, optional
        Blurry inputs: first panel of the side-by-side images, and ``blurry_psnr``.
    workers : int, optional
        Worker processes (spawned; each limited to one OpenCV thread; one worker is a
        process too). Default: ``FASTBLUR_NUM_THREADS`` or the number of cores, at most
        the number of images.
    allow_unmatched : bool
        Evaluate the pairs found and list the unpaired files in the summary instead of
        raising :class:`UnmatchedFilesError`.
    n_visual : int
        Side-by-side images written for the worst and for the best images each.
    on_ecc_failure : {"identity", "partial"}
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Raises
    ------
    UnmatchedFilesError
        Some files have no partner and ``allow_unmatched`` is False (nothing is written).
    ValueError
        Bad arguments or folders.
    """
    from .. import __version__
    from .._threads import num_threads

    check_choice(protocol, PROTOCOLS, "protocol")
    check_ecc_failure_policy(on_ecc_failure)
    if workers is not None:
        workers = check_count(workers, "workers", low=1)
    n_visual = check_count(n_visual, "n_visual")
    pairs, unmatched = pair_files(restored_dir, gt_dir, blurry_dir, protocol)
    if any(unmatched.values()) and not allow_unmatched:
        raise UnmatchedFilesError(unmatched)
    if not pairs:
        raise ValueError("no restored image could be paired with a ground truth")
    workers = min(workers or num_threads(), len(pairs))

    started = time.perf_counter()
    rows = _run_pairs(pairs, protocol, on_ecc_failure, workers, progress)
    rows.sort(key=lambda row: row["name"])
    elapsed = time.perf_counter() - started

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "metrics.csv", rows)

    ok_rows = [row for row in rows if row["status"] == "ok"]
    worst, best = _pick_visuals(ok_rows, n_visual)
    by_name = {pair.name: pair for pair in pairs}
    visual_dir = out_dir / "visual"
    for label, chosen in (("worst", worst), ("best", best)):
        for rank, row in enumerate(chosen, start=1):
            visual_dir.mkdir(exist_ok=True)
            panel = side_by_side(by_name[row["name"]], row, protocol)
            cv2.imwrite(str(visual_dir / f"{label}_{rank}_{row['name']}.png"),
                        cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))

    psnrs = [min(row["psnr"], PSNR_CAP_DB) for row in ok_rows]
    blurry_psnrs = [
        min(row["blurry_psnr"], PSNR_CAP_DB) for row in ok_rows if row["blurry_psnr"] is not None
    ]
    summary = {
        "protocol": protocol,
        "psnr": _mean(psnrs),
        "ssim": _mean([row["ssim"] for row in ok_rows]),
        "blurry_psnr": _mean(blurry_psnrs),
        "n_images": len(rows),
        "n_ok": len(ok_rows),
        "n_failed": len(rows) - len(ok_rows),
        "n_unmatched": sum(len(names) for names in unmatched.values()),
        "n_ecc_failed": sum(1 for row in ok_rows if row["ecc_failed"]),
        "n_psnr_infinite": sum(1 for row in ok_rows if math.isinf(row["psnr"])),
        "psnr_cap_db": PSNR_CAP_DB,
        "on_ecc_failure": on_ecc_failure,
        "failures": [
            {"name": row["name"], "error": row["error"]} for row in rows if row["status"] != "ok"
        ],
        "unmatched": unmatched,
        "worst": [row["name"] for row in worst],
        "best": [row["name"] for row in best],
        "restored_dir": os.fspath(restored_dir),
        "gt_dir": os.fspath(gt_dir),
        "blurry_dir": os.fspath(blurry_dir) if blurry_dir is not None else None,
        "workers": workers,
        "seconds": round(elapsed, 3),
        "fastblur_version": __version__,
    }
    with open(out_dir / "summary.json", "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, allow_nan=False)
        handle.write("\n")
    return summary
