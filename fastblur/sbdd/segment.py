"""Instance masks for any folder of sharp images: torchvision's COCO Mask R-CNN, saved in
detectron2's ``.npz`` format (the files ``fastblur-gen --masks detectron2`` reads).

::

    model = build_model("maskrcnn_resnet50_fpn_v2", weights="default")   # no download
    for instances in segment_images(images, model):                        # (H, W, 3) uint8
        instances["pred_masks"], instances["scores"], instances["pred_classes"]

The masks are at each image's own size; ``pred_classes`` are detectron2's contiguous COCO
ids (0-79, the order of :data:`fastblur.sbdd.masks.COCO_CLASSES`), torchvision's labels (1-90
with gaps) mapped by :data:`TORCHVISION_TO_CONTIGUOUS`. Weights are read from torchvision's
own cache (``TORCH_HOME``); they are downloaded only when asked (``download=True``).

Requires PyTorch and torchvision (``pip install "fastblur[segment]"``).
"""
import io
import itertools
import os
import sys
import time
from urllib.parse import urlparse

import numpy as np

from .._atomic import write_atomic
from .._validation import check_choice, check_count, check_real
from .config import SEGMENT_MODELS
from .masks import class_ids, shrink

__all__ = ["MODELS", "TORCHVISION_TO_CONTIGUOUS", "WeightsNotFoundError", "build_model", "save_instances",
           "segment_images", "weights_path"]

#: torchvision COCO Mask R-CNN builders this module knows.
MODELS = SEGMENT_MODELS

#: COCO category ids (torchvision's labels) of the 80 object classes, in detectron2's
#: contiguous order: label ``COCO_CATEGORY_IDS[i]`` is class ``i``. The other labels of
#: 1-90 are unused ("N/A") and 0 is the background.
COCO_CATEGORY_IDS = (
    tuple(range(1, 12)) + tuple(range(13, 26)) + (27, 28) + tuple(range(31, 45))
    + tuple(range(46, 66)) + (67, 70) + tuple(range(72, 83)) + tuple(range(84, 91))
)

#: torchvision label (COCO category id) -> detectron2 contiguous class id.
TORCHVISION_TO_CONTIGUOUS = {label: index for index, label in enumerate(COCO_CATEGORY_IDS)}

#: Mask probability at which a pixel is inside (torchvision's and detectron2's 0.5).
MASK_THRESHOLD = 0.5


class WeightsNotFoundError(FileNotFoundError):
    """The pretrained weights are not in torchvision's cache (the message says how to get them)."""


def _weights_enum(model):
    from torchvision.models import detection

    check_choice(model, MODELS, "model")
    enums = {"maskrcnn_resnet50_fpn_v2": detection.MaskRCNN_ResNet50_FPN_V2_Weights,
             "maskrcnn_resnet50_fpn": detection.MaskRCNN_ResNet50_FPN_Weights}
    return enums[model].DEFAULT


def weights_path(model="maskrcnn_resnet50_fpn_v2"):
    """Where torchvision keeps (or would download) ``model``'s COCO weights:
    ``<torch.hub.get_dir()>/checkpoints/<file>``, i.e. ``$TORCH_HOME/hub/checkpoints``.

    Returns
    -------
    str
    """
    import torch

    file = os.path.basename(urlparse(_weights_enum(model).url).path)
    return os.path.join(torch.hub.get_dir(), "checkpoints", file)


def _state_dict(model, weights, download):
    """The state dict ``weights`` names, or None for an untrained network."""
    import torch

    if weights == "none":
        return None
    if weights == "default":
        path = weights_path(model)
        if not os.path.isfile(path):
            if not download:
                raise WeightsNotFoundError(
                    f"the COCO weights of {model} are not installed: torchvision looks for {path!r} (TORCH_HOME "
                    f"sets the folder). Get them with --download (download=True), or copy the file "
                    f"{os.path.basename(path)!r} there from {_weights_enum(model).url}")
            return _weights_enum(model).get_state_dict(progress=True, check_hash=True)
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise WeightsNotFoundError(f"weights file {path!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a training checkpoint
    return state


def build_model(model="maskrcnn_resnet50_fpn_v2", weights="default", *, download=False, device="cpu"):
    """A torchvision COCO Mask R-CNN in evaluation mode.

    Parameters
    ----------
    model : {'maskrcnn_resnet50_fpn_v2', 'maskrcnn_resnet50_fpn'}, optional
    weights : {'default', 'none'} or path, optional
        ``'default'``: the COCO weights from torchvision's cache (:func:`weights_path`);
        ``'none'``: an untrained network (for pipeline checks); a path: a local
        checkpoint (a state dict, or a dict whose ``'model'`` entry is one).
    download : bool, optional
        Let torchvision download the default weights when they are missing. Without
        it, nothing opens a network connection.
    device : str or torch.device, optional

    Returns
    -------
    torch.nn.Module

    Raises
    ------
    WeightsNotFoundError
        (a ``FileNotFoundError``) The weights file is missing; the message names it,
        where torchvision looks, and how to get it.
    ValueError
        Unknown ``model``.
    """
    from torchvision.models import detection

    check_choice(model, MODELS, "model")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'default', 'none' or a path, got {weights!r}")
    state = _state_dict(model, weights, download)
    network = getattr(detection, model)(weights=None, weights_backbone=None, num_classes=91)
    if state is not None:
        network.load_state_dict(state)
    return network.eval().to(device)


def _instances(output, shape, score_threshold, wanted, packed):
    """One image's detections: kept, mapped to contiguous ids, best score first, masks
    at ``shape`` (made in place: they are the bulk of the memory at large sizes);
    ``packed`` keeps them eight pixels to a byte along rows (``pred_masks_packed``)."""
    import cv2

    scores = output["scores"].detach().float().cpu().numpy()
    labels = output["labels"].detach().cpu().numpy()
    contiguous = np.array([TORCHVISION_TO_CONTIGUOUS.get(int(label), -1) for label in labels], np.int64)
    keep = (scores >= score_threshold) & (contiguous >= 0)
    if wanted is not None:
        keep &= np.isin(contiguous, sorted(wanted))
    indices = np.flatnonzero(keep)
    indices = indices[np.argsort(scores[indices], kind="stable")[::-1]]  # best score first
    height, width = shape
    masks = np.zeros((len(indices), height, -(-width // 8) if packed else width), np.uint8 if packed else bool)
    for row, index in enumerate(indices):
        probability = output["masks"][index, 0].detach().float().cpu().numpy()
        if probability.shape != (height, width):
            probability = cv2.resize(probability, (width, height), interpolation=cv2.INTER_LINEAR)
        inside = probability >= MASK_THRESHOLD
        masks[row] = np.packbits(inside, axis=1) if packed else inside
    result = {"scores": scores[indices].astype(np.float32), "pred_classes": contiguous[indices]}
    result["pred_masks_packed" if packed else "pred_masks"] = masks
    if packed:
        result["shape"] = (height, width)
    return result


def segment_images(images, model, *, score_threshold=0.5, classes=None, max_size=1333,
                   batch_size=1, device=None):
    """Instance masks of each image, as detectron2's outputs.

    Parameters
    ----------
    images : iterable of ndarray, each shape (H, W, 3), uint8
        RGB images (a generator is consumed lazily, ``batch_size`` at a time).
    model : callable
        torchvision's detection-model interface: called with a list of ``(3, h, w)``
        float tensors in [0, 1], returns a list of dicts with ``scores`` ``(N,)``,
        ``labels`` ``(N,)`` (COCO category ids 1-90) and ``masks`` ``(N, 1, h, w)``
        (probabilities). Called under ``torch.inference_mode``.
    score_threshold : float, optional
        Detections scoring below are dropped (0.5; ``fastblur-gen`` selects again, with
        its own ``score_threshold``, 0.9 by default).
    classes : iterable of str or int, optional
        COCO class names or contiguous ids to keep; all by default.
    max_size : int, optional
        Long side at which images are segmented (1333, torchvision's); larger images are
        shrunk for the model and the masks resized back. Also set as the model's
        ``transform.max_size`` when it has one.
    batch_size : int, optional
        Images per model call.
    device : str or torch.device, optional
        Where the input tensors go; default: the device of the model's parameters (CPU
        for a model without any).

    Yields
    ------
    dict
        ``pred_masks`` ``(n, H, W)`` bool, ``scores`` ``(n,)`` float32,
        ``pred_classes`` ``(n,)`` int64, best score first.
    """
    return _segment(images, model, score_threshold, classes, max_size, batch_size, device, packed=False)


def _segment(images, model, score_threshold, classes, max_size, batch_size, device, packed):
    """:func:`segment_images`; ``packed`` gives ``pred_masks_packed`` (see :func:`_instances`)."""
    import torch

    if not callable(model):
        raise TypeError(f"model must be callable (a torchvision detection model), got {type(model).__name__}")
    score_threshold = check_real(score_threshold, "score_threshold", 0.0, 1.0)
    max_size = check_count(max_size, "max_size", 1)
    batch_size = check_count(batch_size, "batch_size", 1)
    wanted = class_ids(classes)
    if device is None:
        parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        device = parameter.device if parameter is not None else "cpu"
    if hasattr(getattr(model, "transform", None), "max_size"):
        model.transform.max_size = max_size

    images = iter(images)
    for first in itertools.count(0, batch_size):
        batch = [np.asarray(image) for image in itertools.islice(images, batch_size)]
        for index, image in enumerate(batch, first):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"images[{index}] must be an (H, W, 3) uint8 RGB image, "
                                 f"got {image.dtype} of shape {image.shape}")
        if not batch:
            return
        with torch.inference_mode():  # the model sees (3, h, w) floats in [0, 1], long side <= max_size
            shrunk = [torch.from_numpy(np.ascontiguousarray(shrink(image, max_size))).to(device) for image in batch]
            outputs = model([tensor.permute(2, 0, 1).float().div_(255.0) for tensor in shrunk])
        for image, output in zip(batch, outputs):
            yield _instances(output, image.shape[:2], score_threshold, wanted, packed)


def save_instances(path, instances):
    """Write ``instances`` (a :func:`segment_images` result) as a detectron2 ``.npz``
    (``pred_masks``, ``scores``, ``pred_classes``), compressed, atomically.

    The masks are streamed into the archive one at a time, so a packed result
    (``pred_masks_packed`` and ``shape``, as :func:`segment_sources` keeps them) is
    never unpacked whole.
    """
    import zipfile

    packed = "pred_masks_packed" in instances
    masks = instances["pred_masks_packed" if packed else "pred_masks"]
    height, width = instances["shape"] if packed else masks.shape[1:]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("pred_masks.npy", "w", force_zip64=True) as stream:
            header = {"descr": np.lib.format.dtype_to_descr(np.dtype(bool)), "fortran_order": False,
                      "shape": (len(masks), height, width)}
            np.lib.format.write_array_header_1_0(stream, header)
            for mask in masks:
                mask = np.unpackbits(mask, axis=1, count=width).view(bool) if packed else mask
                stream.write(np.ascontiguousarray(mask, bool).tobytes())
        for key in ("scores", "pred_classes"):
            with archive.open(key + ".npy", "w") as stream:
                np.lib.format.write_array(stream, np.ascontiguousarray(instances[key]))
    write_atomic(path, buffer.getvalue())


def _mask_file(folder, source):
    return os.path.join(folder, source.name + ".npz")


def segment_sources(sources, out, model, *, score_threshold=0.5, classes=None, max_size=1333, batch_size=1,
                    device=None, overwrite=False, progress=True):
    """Segment ``sources`` (:class:`fastblur.sbdd.dataset.Source`) into ``OUT/NAME.npz``
    files (``out`` is created), written atomically, that
    ``fastblur-gen --masks detectron2 --masks-path OUT`` reads.

    ``NAME`` is the source's name (its path below the input folder, ``/`` as ``_``). Files
    already there are skipped unless ``overwrite``; an unreadable image is reported on
    stderr, skipped and counted. ``progress`` shows a bar on stderr; the other arguments
    are :func:`segment_images`'s. Returns a dict: ``written``, ``skipped``, ``failed``
    (counts), ``failures`` (list of ``(name, message)``), ``seconds``, ``interrupted``.
    """
    from tqdm import tqdm

    from .dataset import read_image

    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    done = [not overwrite and os.path.isfile(path) and os.path.getsize(path) > 0
            for path in (_mask_file(out, source) for source in sources)]
    todo = [source for source, skip in zip(sources, done) if not skip]
    summary = {"written": 0, "skipped": sum(done), "failed": 0, "failures": [], "seconds": 0.0, "interrupted": False}
    bar = tqdm(total=len(todo), unit="image", desc="fastblur-segment", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    readable = []

    def images():
        for source in todo:
            try:
                image = read_image(source.path)
            except ValueError as error:
                summary["failed"] += 1
                summary["failures"].append((source.name, str(error)))
                bar.write(f"fastblur-segment: skipped {source.label}: {error}", file=sys.stderr)
                bar.update(1)
                continue
            readable.append(source)
            yield image

    start = time.perf_counter()
    try:
        segmented = _segment(images(), model, score_threshold, classes, max_size, batch_size, device, packed=True)
        for done, instances in enumerate(segmented):
            save_instances(_mask_file(out, readable[done]), instances)
            summary["written"] += 1
            bar.update(1)
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        bar.close()
        summary["seconds"] = time.perf_counter() - start
    return summary
