"""Object masks for SBDD pairs: instance outputs, annotations, segmentations, shapes.

Every source returns a boolean stack ``(n, H, W)`` (``n`` may be 0), largest or most
confident object first, at most ``max_objects`` of them, each with more than
``min_area`` pixels; ``return_ids=True`` also returns the ids that identify the chosen
objects in their source (for the dataset manifest).

==========================  ===================================================  ==========
source                      reads                                                order
==========================  ===================================================  ==========
:func:`detectron2_masks`    ``.npz`` with ``pred_masks``, ``scores``,            score
                            ``pred_classes`` (the SBDD segmentation files)
:func:`coco_masks`          COCO instance annotations (polygons, RLE)            area
:func:`label_map_masks`     a label-map PNG (one integer or colour per object)   area
:func:`classical_masks`     the image itself (Felzenszwalb regions)              random
:func:`random_shape_masks`  nothing: procedural star-shaped blobs                drawn
==========================  ===================================================  ==========
"""
import json
import math
import numbers
import os

import numpy as np

from .._validation import check_count, check_real

__all__ = [
    "COCO_CLASSES",
    "class_ids",
    "classical_masks",
    "coco_masks",
    "decode_rle",
    "detectron2_masks",
    "label_map_masks",
    "random_shape_masks",
    "resize_masks",
]

#: The 80 COCO object classes in detectron2's contiguous order (``pred_classes`` ids).
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush",
)


def _finish(masks, ids, shape, return_ids):
    stack = np.stack(masks).astype(bool, copy=False) if masks else np.zeros((0,) + tuple(shape), bool)
    return (stack, [int(i) if isinstance(i, numbers.Integral) else i for i in ids]) if return_ids else stack


def resize_masks(masks, shape):
    """Resize a mask stack ``(n, h, w)`` to ``(n, H, W)`` (bilinear, thresholded at 1/2).

    Each mask is resized over its bounding box only (with a margin, on a window aligned
    with the scale's period), which gives the bytes of resizing the whole mask.
    """
    import cv2

    masks = np.asarray(masks, bool)
    height, width = shape
    if masks.shape[1:] == (height, width):
        return masks
    out = np.zeros((len(masks), height, width), bool)
    for mask, resized in zip(masks, out):
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if len(rows) == 0:
            continue
        r0, r1, y0, y1 = _aligned_window(rows[0], rows[-1] + 1, masks.shape[1], height)
        c0, c1, x0, x1 = _aligned_window(cols[0], cols[-1] + 1, masks.shape[2], width)
        scaled = cv2.resize(mask[r0:r1, c0:c1].view(np.uint8) * np.uint8(255), (x1 - x0, y1 - y0),
                            interpolation=cv2.INTER_LINEAR)
        np.greater_equal(scaled, 128, out=resized[y0:y1, x0:x1])
    return out


#: Scales whose period ``q`` (output pixels) exceeds this resize whole masks: OpenCV's
#: bilinear coefficients ``round(2048 frac(x / scale))`` then stay clear of rounding ties.
_MAX_PERIOD = 64


def _aligned_window(low, high, size, new_size):
    """``(s0, s1, d0, d1)``: the input span around ``[low, high)`` (two zeros each side, on
    multiples of ``p`` where ``size / new_size = p / q``) and the output span it resizes to.

    Shifted by whole periods, the window's samples are the whole resize's, so both agree.
    """
    divisor = math.gcd(size, new_size)
    p, q = size // divisor, new_size // divisor
    if q > _MAX_PERIOD:
        return 0, size, 0, new_size
    start = max(0, low - 2) // p * p
    stop = min(size, -(-(high + 2) // p) * p)
    return start, stop, start // p * q, new_size if stop == size else stop // p * q


# -- detectron2 -------------------------------------------------------------------------
def class_ids(classes):
    """A COCO class filter as a set of detectron2 contiguous ids, or None for all.

    ``classes`` holds class names (looked up in :data:`COCO_CLASSES`) or ids; a single
    name or id is accepted."""
    if classes is None:
        return None
    if isinstance(classes, (str, numbers.Integral)):
        classes = [classes]
    ids = set()
    for item in classes:
        if isinstance(item, str):
            if item not in COCO_CLASSES:
                raise ValueError(f"classes: unknown COCO class {item!r}")
            ids.add(COCO_CLASSES.index(item))
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            ids.add(int(item))
        else:
            raise TypeError(f"classes must hold class names or integer ids, got {item!r}")
    return ids


def detectron2_masks(path, *, score_threshold=0.9, min_area=4000, max_objects=5, classes=None,
                     return_ids=False):
    """Instance masks from a detectron2 output saved as ``.npz`` (the SBDD segmentation files).

    Selection as the reference generator's: the instances passing every filter below,
    best score first.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` with ``pred_masks`` (N, H, W), ``scores`` (N,), ``pred_classes`` (N,).
    score_threshold : float, optional
        Minimum confidence, exclusive (0.9).
    min_area : int, optional
        Minimum mask area in pixels, exclusive (4000, the reference's default).
    max_objects : int, optional
        At most this many masks (5).
    classes : iterable of str or int, optional
        COCO class names or detectron2 class ids to keep; all by default.
    return_ids : bool, optional
        Also return the chosen instances' indices in the file.

    Returns
    -------
    masks : ndarray, shape (n, H, W), bool
    ids : list of int
        Only with ``return_ids``.

    Raises
    ------
    ValueError
        Unreadable file, missing keys or inconsistent lengths (the message names the file).
    """
    path = os.fspath(path)
    score_threshold = check_real(score_threshold, "score_threshold")
    min_area = check_count(min_area, "min_area")
    max_objects = check_count(max_objects, "max_objects")
    wanted = class_ids(classes)
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("pred_masks", "scores", "pred_classes") if k not in data]
            if missing:
                raise ValueError(f"missing keys {missing} (found {sorted(data.files)})")
            instances = np.asarray(data["pred_masks"])
            scores = np.asarray(data["scores"], np.float64).reshape(-1)
            labels = np.asarray(data["pred_classes"]).reshape(-1)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"cannot read detectron2 masks {path!r}: {error}") from error
    if instances.ndim != 3 or not (len(instances) == len(scores) == len(labels)):
        raise ValueError(f"detectron2 masks {path!r}: pred_masks must be (N, H, W) with N scores and classes, "
                         f"got shapes {instances.shape}, {scores.shape}, {labels.shape}")
    areas = np.count_nonzero(instances.reshape(len(instances), -1), axis=1)
    chosen = (scores > score_threshold) & (areas > min_area)
    if wanted is not None:
        chosen &= np.isin(labels, sorted(wanted))
    indices = np.flatnonzero(chosen)
    # best score first; ties as the reference (reversed stable ascending order)
    order = indices[np.argsort(scores[indices], kind="stable")[::-1]][:max_objects]
    return _finish([instances[i] != 0 for i in order], order.tolist(), instances.shape[1:], return_ids)


# -- COCO -------------------------------------------------------------------------------
def _decode_counts(counts):
    """COCO's compressed RLE string: 5-bit groups, continuation bit, zig-zag, deltas."""
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    runs, value, shift = [], 0, 0
    for char in counts:
        group = ord(char) - 48
        if group < 0 or group > 63:
            raise ValueError(f"invalid character {char!r} in RLE counts")
        value |= (group & 0x1F) << (5 * shift)
        shift += 1
        if group & 0x20:  # continuation bit
            continue
        if group & 0x10:  # sign bit of the last group
            value |= -1 << (5 * shift)
        runs.append(value + runs[-2] if len(runs) > 2 else value)
        value, shift = 0, 0
    if shift:
        raise ValueError("truncated RLE counts")
    return runs


def decode_rle(rle):
    """Decode a COCO run-length encoding into a mask.

    Parameters
    ----------
    rle : dict
        ``{"size": [H, W], "counts": ...}``; ``counts`` is a list of run lengths
        (uncompressed RLE) or COCO's compressed string. Runs alternate background and
        foreground, starting with background, over the pixels in column-major order.

    Returns
    -------
    ndarray, shape (H, W), bool

    Raises
    ------
    ValueError
        Malformed counts or runs that do not add up to ``H * W``.
    """
    try:
        height, width = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"an RLE must be a dict with 'size' [H, W] and 'counts', got {rle!r:.80}") from error
    runs = _decode_counts(counts) if isinstance(counts, (str, bytes)) else [int(c) for c in counts]
    runs = np.asarray(runs, np.int64)
    if (runs < 0).any() or runs.sum() != height * width:
        raise ValueError(f"RLE runs must be non-negative and add up to H * W = {height * width}, "
                         f"got a total of {int(runs.sum())}")
    foreground = np.arange(len(runs)) % 2 == 1
    return np.repeat(foreground, runs).reshape(width, height).T


def _annotation_mask(segmentation, shape):
    """The mask of a COCO segmentation: polygons (lists of x, y in pixel-corner coordinates) or an RLE."""
    if isinstance(segmentation, list):
        from skimage.draw import polygon

        mask = np.zeros(shape, bool)
        for points in segmentation:
            xy = np.asarray(points, np.float64).reshape(-1, 2)
            # pixel (r, c) covers [c, c + 1] x [r, r + 1]: its centre is at (c + .5, r + .5)
            rows, cols = polygon(xy[:, 1] - 0.5, xy[:, 0] - 0.5, shape)
            mask[rows, cols] = True
        return mask
    if isinstance(segmentation, dict):
        mask = decode_rle(segmentation)
        if mask.shape != tuple(shape):
            raise ValueError(f"RLE size {mask.shape} differs from the image size {tuple(shape)}")
        return mask
    raise ValueError(f"a segmentation must be polygons (list) or an RLE (dict), got {type(segmentation).__name__}")


_coco_cache = {}


def _coco_index(annotations):
    """``(images by id, images by file name, annotations by image id, category names)``."""
    key = None
    if isinstance(annotations, (str, os.PathLike)):
        path = os.fspath(annotations)
        key = (path, os.path.getmtime(path))
        if key in _coco_cache:
            return _coco_cache[key]
        try:
            with open(path, encoding="utf-8") as stream:
                annotations = json.load(stream)
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read COCO annotations {path!r}: {error}") from error
    if not isinstance(annotations, dict) or "images" not in annotations or "annotations" not in annotations:
        raise ValueError("COCO annotations must be a dict (or JSON file) with 'images' and 'annotations'")
    by_id = {image["id"]: image for image in annotations["images"]}
    by_name = {}
    for image in annotations["images"]:
        by_name.setdefault(os.path.basename(image["file_name"]), image)
        by_name.setdefault(os.path.splitext(os.path.basename(image["file_name"]))[0], image)
    per_image = {}
    for ann in annotations["annotations"]:
        per_image.setdefault(ann["image_id"], []).append(ann)
    categories = {c["id"]: c.get("name") for c in annotations.get("categories", [])}
    index = (by_id, by_name, per_image, categories)
    if key is not None:
        _coco_cache.clear()  # one annotation file at a time per process
        _coco_cache[key] = index
    return index


def coco_masks(annotations, image, *, min_area=4000, max_objects=5, categories=None,
               include_crowd=False, return_ids=False):
    """Instance masks of one image from COCO-style annotations.

    Parameters
    ----------
    annotations : str, os.PathLike or dict
        A COCO instances JSON file (parsed once per process) or its parsed content.
    image : int or str
        The image's ``id``, or its ``file_name`` (with or without folder/extension).
    min_area, max_objects : int, optional
        Masks of more than ``min_area`` pixels; the ``max_objects`` largest are kept.
    categories : iterable of int or str, optional
        Category ids or names to keep; all by default.
    include_crowd : bool, optional
        Keep ``iscrowd`` annotations (groups of objects); off by default.
    return_ids : bool, optional
        Also return the chosen annotation ids.

    Returns
    -------
    masks : ndarray, shape (n, H, W), bool
        ``H, W`` from the image entry. Polygons are filled at the pixels whose centres
        they contain; RLEs (``counts`` list or compressed string) are decoded exactly.
    ids : list
        Only with ``return_ids``.

    Raises
    ------
    ValueError
        Unreadable file, an unknown image, malformed segmentations.
    """
    min_area = check_count(min_area, "min_area")
    max_objects = check_count(max_objects, "max_objects")
    by_id, by_name, per_image, names = _coco_index(annotations)
    if isinstance(image, str):
        key = os.path.basename(image)
        entry = by_name.get(key) or by_name.get(os.path.splitext(key)[0])
    else:
        entry = by_id.get(image)
    if entry is None:
        raise ValueError(f"image {image!r} is not in the COCO annotations")
    shape = (int(entry["height"]), int(entry["width"]))
    wanted = None
    if categories is not None:
        wanted = set(categories)
        wanted |= {cid for cid, name in names.items() if isinstance(name, str) and name in wanted}
    found = []
    for ann in per_image.get(entry["id"], []):
        if ann.get("iscrowd", 0) and not include_crowd:
            continue
        if wanted is not None and ann.get("category_id") not in wanted:
            continue
        try:
            mask = _annotation_mask(ann["segmentation"], shape)
        except (KeyError, ValueError) as error:
            raise ValueError(f"annotation {ann.get('id')!r} of image {image!r}: {error}") from error
        area = int(np.count_nonzero(mask))
        if area > min_area:
            found.append((area, ann.get("id"), mask))
    found = sorted(found, key=lambda item: -item[0])[:max_objects]
    return _finish([m for _, _, m in found], [i for _, i, _ in found], shape, return_ids)


# -- label maps -------------------------------------------------------------------------
def _read_labels(source):
    if not isinstance(source, (str, os.PathLike)):
        labels = np.asarray(source)
    else:
        from PIL import Image

        path = os.fspath(source)
        try:
            with Image.open(path) as image:  # palette ("P") indices are the labels
                labels = np.asarray(image.convert("RGB") if image.mode in ("RGB", "RGBA") else image)
        except FileNotFoundError:
            raise
        except Exception as error:
            raise ValueError(f"cannot read label map {path!r}: {error}") from error
    if labels.ndim == 3:  # colours: pack R, G, B into one integer (black = 0)
        colours = labels[..., :3].astype(np.int64)
        labels = (colours[..., 0] << 16) | (colours[..., 1] << 8) | colours[..., 2]
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"a label map must be a 2-D integer (or colour) image, got shape {labels.shape}, "
                         f"dtype {labels.dtype}")
    return labels


def label_map_masks(labels, *, min_area=4000, max_objects=5, background=0, ignore=(),
                    return_ids=False):
    """One mask per label of a label map (a panoptic/instance PNG, or an array).

    Parameters
    ----------
    labels : str, os.PathLike or array_like
        A PNG (8/16-bit grey: the values are the labels; palette: the indices; RGB: each
        colour is a label, black being 0) or an integer array ``(H, W)``.
    min_area, max_objects : int, optional
        As :func:`coco_masks`.
    background : int, optional
        The label that is not an object (0).
    ignore : iterable of int, optional
        Further labels to skip (e.g. 255, VOC's boundary label).
    return_ids : bool, optional
        Also return the chosen labels.

    Returns
    -------
    masks : ndarray, shape (n, H, W), bool
    ids : list of int
        Only with ``return_ids``.
    """
    min_area = check_count(min_area, "min_area")
    max_objects = check_count(max_objects, "max_objects")
    labels = _read_labels(labels)
    values, areas = np.unique(labels, return_counts=True)
    skip = {int(background)} | {int(v) for v in ignore}
    keep = [(int(a), int(v)) for v, a in zip(values, areas) if int(v) not in skip and a > min_area]
    keep = sorted(keep, key=lambda item: (-item[0], item[1]))[:max_objects]
    return _finish([labels == v for _, v in keep], [v for _, v in keep], labels.shape, return_ids)


# -- classical segmentation -------------------------------------------------------------
def shrink(image, long_side):
    """``image`` resized (area interpolation) so that its long side is at most ``long_side``."""
    import cv2

    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def segment_regions(image, working_size=256, scale=300.0, sigma=0.8, min_fraction=0.01):
    """Felzenszwalb region labels ``0 .. n - 1``, int ``(h, w)``, of a copy of ``image`` about
    ``working_size`` wide; regions smaller than ``min_fraction`` of it are merged into a
    neighbour (the algorithm's ``min_size``), which leaves object-sized segments."""
    from skimage.segmentation import felzenszwalb

    small = shrink(np.asarray(image), working_size)
    min_size = max(1, int(min_fraction * small.shape[0] * small.shape[1]))
    channel_axis = -1 if small.ndim == 3 else None
    return felzenszwalb(small, scale=scale, sigma=sigma, min_size=min_size, channel_axis=channel_axis)


def classical_masks(image, *, max_objects=5, min_area=4000, max_area_fraction=0.35, rng=None,
                    regions=None, return_ids=False):
    """Object-sized regions of the image itself: the download-free mask source.

    Of the image's Felzenszwalb regions (:func:`segment_regions`) that are neither small
    nor background, up to ``max_objects`` are drawn at random and upsampled with smooth edges.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, C)
    max_objects, min_area : int, optional
        At most ``max_objects`` regions of more than ``min_area`` full-resolution pixels.
    max_area_fraction : float, optional
        Regions covering more of the image than this are background.
    rng : None, int or numpy.random.Generator, optional
        Draws ``rng.permutation(number of eligible regions)`` once.
    regions : ndarray, optional
        Labels from :func:`segment_regions` of this image, to reuse a segmentation.
    return_ids : bool, optional
        Also return the chosen region labels.

    Returns
    -------
    masks : ndarray, shape (n, H, W), bool
        Largest first.
    ids : list of int
        Only with ``return_ids``.
    """
    max_objects = check_count(max_objects, "max_objects")
    min_area = check_count(min_area, "min_area")
    max_area_fraction = check_real(max_area_fraction, "max_area_fraction", 0.0, 1.0)
    rng = np.random.default_rng(rng)
    image = np.asarray(image)
    height, width = image.shape[:2]
    if regions is None:
        regions = segment_regions(image)
    counts = np.bincount(regions.ravel())
    areas = counts * (height * width / regions.size)
    eligible = np.flatnonzero((areas > min_area) & (areas <= max_area_fraction * height * width))
    chosen = eligible[rng.permutation(len(eligible))[:max_objects]]
    chosen = sorted(chosen.tolist(), key=lambda label: (-counts[label], label))
    masks = resize_masks(regions == np.reshape(chosen, (-1, 1, 1)), (height, width))  # one mask per label
    keep = [i for i, m in enumerate(masks) if np.count_nonzero(m) > min_area]
    masks = masks[keep] if len(keep) < len(masks) else masks  # rare: no copy otherwise
    return (masks, [int(chosen[i]) for i in keep]) if return_ids else masks


# -- procedural shapes ------------------------------------------------------------------
def random_shape_masks(shape, *, max_objects=5, min_area=4000, max_area_fraction=0.15, rng=None,
                       return_ids=False):
    """Procedural objects: random star-shaped blobs (no image, no model).

    Random draws: the count ``n = rng.integers(1, max_objects + 1)``; for each blob its
    area (uniform between ``min_area`` and ``max_area_fraction`` of the image, in log),
    elongation, angle, centre, and 16 radial jitters.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)``.
    max_objects, min_area, max_area_fraction, rng, return_ids
        As :func:`classical_masks`.

    Returns
    -------
    masks : ndarray, shape (n, H, W), bool
    ids : list of int
        ``0 .. n - 1``, only with ``return_ids``.
    """
    max_objects = check_count(max_objects, "max_objects")
    min_area = check_count(min_area, "min_area")
    max_area_fraction = check_real(max_area_fraction, "max_area_fraction", 0.0, 1.0)
    height, width = (int(v) for v in shape)
    rng = np.random.default_rng(rng)
    top_area = max(max_area_fraction * height * width, 1.5 * (min_area + 1))
    count = int(rng.integers(1, max_objects + 1)) if max_objects else 0
    masks = np.zeros((count, height, width), bool)
    for mask in masks:
        area = np.exp(rng.uniform(np.log(1.5 * (min_area + 1)), np.log(top_area)))
        elongation = rng.uniform(1.0, 2.5)
        angle = rng.uniform(0, np.pi)
        radius = np.sqrt(area / np.pi)
        a, b = radius * np.sqrt(elongation), radius / np.sqrt(elongation)
        centre = rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width
        theta = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        jitter = rng.uniform(0.75, 1.25, 16)
        x, y = a * np.cos(theta) * jitter, b * np.sin(theta) * jitter
        rows = centre[0] + x * np.sin(angle) + y * np.cos(angle)
        cols = centre[1] + x * np.cos(angle) - y * np.sin(angle)
        fill_polygon(mask, rows, cols)
    keep = [i for i, mask in enumerate(masks) if np.count_nonzero(mask) > min_area]
    masks = masks[keep] if len(keep) < count else masks
    return (masks, list(range(len(keep)))) if return_ids else masks


def fill_polygon(mask, rows, cols):
    """Set the pixels of ``mask`` (bool ``(H, W)``) whose centres lie inside the closed polygon
    of vertices ``rows``, ``cols`` (float ``(n,)``, in order); in place, returns ``mask``.

    The pixels of ``skimage.draw.polygon(rows, cols, mask.shape)`` (same crossing rule),
    filled span by span along the polygon's rows: a blob costs its bounding box.

    Examples
    --------
    >>> mask = np.zeros((5, 6), bool)
    >>> fill_polygon(mask, np.array([0.5, 0.5, 3.5, 3.5]), np.array([1.0, 4.5, 4.5, 1.0])).astype(int)
    array([[0, 0, 0, 0, 0, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 1, 1, 1, 1, 0],
           [0, 0, 0, 0, 0, 0]])
    """
    height, width = mask.shape
    yi, xi = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    first = max(0, int(np.ceil(yi.min())))
    last = min(height - 1, int(np.floor(yi.max())))
    left = max(0, int(np.ceil(xi.min())))
    right = min(width, int(np.floor(xi.max())) + 1)
    if last < first or right <= left:
        return mask
    yj, xj = np.roll(yi, 1), np.roll(xi, 1)  # edge i runs from vertex i - 1 to vertex i
    y = np.arange(first, last + 1, dtype=np.float64)[:, None]
    crosses = ((yi <= y) & (y < yj)) | ((yj <= y) & (y < yi))
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (xj - xi) * (y - yi) / (yj - yi) + xi  # skimage's expression, for the same ties
    x = np.sort(np.where(crosses, x, np.inf), axis=1)
    # crossings come in pairs along a row; columns c with x_2k <= c < x_2k+1 are inside
    x = x[:, : 2 * (int(crosses.sum(axis=1).max()) // 2)]
    edges = np.clip(np.ceil(x), left, right)[:, :, None] - left
    columns = np.arange(right - left, dtype=np.float64)
    # a row crossed more than twice (a concave side) has several spans
    mask[first : last + 1, left:right] |= ((columns >= edges[:, 0::2]) & (columns < edges[:, 1::2])).any(axis=1)
    return mask
