"""Image files of a dataset run: encoders, the decoder, and a byte-sized cache of decoded inputs.

PNG is written by the fastest lossless writer installed; every writer makes a standard
PNG (8-bit RGB, zlib stream) that any loader reads back to the same pixels.

==============  ==============================================  ===================
compression     writer (first one installed)                    size (720p photo)
==============  ==============================================  ===================
``"fast"``      ``fpng`` (the ``fast-png`` extra); OpenCV         1.00x
``"small"``     ``imagecodecs`` PNG: zlib-ng level 1, RLE,       ~0.78x, ~7x the
                Paeth filter; OpenCV                             time of ``fpng``
==============  ==============================================  ===================

For a given set of installed writers the bytes depend only on the pixels, so a run is
byte-reproducible whatever its number of workers.

``format="jxl"`` writes lossless JPEG XL (``imagecodecs``, effort 1, one thread): as fast
as ``fpng`` and about 30% smaller, but few training pipelines read it (OpenCV and Pillow
do not); :func:`decode_image` (hence ``fastblur-gen`` and ``fastblur.torch`` inputs) does.
"""
import importlib.util
from collections import OrderedDict

import numpy as np

from .._validation import check_choice, check_count

__all__ = ["DecodedCache", "PNG_COMPRESSIONS", "check_format", "decode_image", "encode_image", "png_writer"]

_JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")

PNG_COMPRESSIONS = ("fast", "small")


# -- encoders ---------------------------------------------------------------------------
def _fpng(image):
    import fpng

    return fpng.fpng_ext.encode_ndarray(np.ascontiguousarray(image))


def _imagecodecs_png(image):
    import imagecodecs

    # level 1 with run-length matches on Paeth-filtered rows: today's OpenCV speed, ~20% smaller
    return imagecodecs.png_encode(np.ascontiguousarray(image), level=1, strategy=3, filter=128)


def _opencv(image, ext=".png", params=()):
    import cv2

    ok, data = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image, list(params))
    if not ok:
        raise ValueError(f"OpenCV cannot encode this image as {ext[1:].upper()}")
    return data.tobytes()


_opencv_png = _opencv


def _installed(module):
    return importlib.util.find_spec(module) is not None


_WRITERS = {
    "fast": (("fpng", _fpng), ("opencv", _opencv_png)),
    "small": (("imagecodecs", _imagecodecs_png), ("opencv", _opencv_png)),
}


def png_writer(compression="fast", image_ndim=3):
    """The name of the PNG writer ``encode_image`` uses for ``compression``.

    Parameters
    ----------
    compression : {"fast", "small"}
    image_ndim : int, optional
        2 for grey images (``fpng`` writes colour images only).

    Returns
    -------
    str
        ``"fpng"``, ``"imagecodecs"`` or ``"opencv"``.
    """
    check_choice(compression, PNG_COMPRESSIONS, "compression")
    return next(name for name, _ in _WRITERS[compression]
                if name == "opencv" or (_installed(name) and not (name == "fpng" and image_ndim != 3)))


def check_format(format):
    """Raise ``ValueError`` if files of ``format`` cannot be written here (JPEG XL needs
    ``imagecodecs`` with libjxl); before a run rather than at each pair."""
    check_choice(format, ("png", "jpg", "jxl"), "format")
    if format == "jxl":
        imagecodecs = importlib.import_module("imagecodecs") if _installed("imagecodecs") else None
        if imagecodecs is None or not getattr(imagecodecs.JPEGXL, "available", False):
            raise ValueError("format 'jxl' needs imagecodecs built with libjxl (pip install imagecodecs)")


def encode_image(image, format="png", *, compression="fast", quality=95):
    """Encode an 8-bit image as a file's bytes.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3), uint8
        RGB (channels last) or grey.
    format : {"png", "jpg", "jxl"}
        ``"jxl"`` is lossless JPEG XL (needs ``imagecodecs`` built with libjxl).
    compression : {"fast", "small"}, optional
        PNG only: ``"fast"`` (about 3-4 ms for a 720p image with ``fpng``) or ``"small"``
        (15-26% smaller files, about 7x the time). Both are lossless.
    quality : int, optional
        JPEG quality, 0-100.

    Returns
    -------
    bytes

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    >>> data = encode_image(image)
    >>> data[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
    True
    >>> bool((decode_image(data) == image).all())
    True
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got dtype {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or 0 in image.shape:
        raise ValueError(f"image must be a non-empty (H, W) or (H, W, 3) array, got shape {image.shape}")
    if format == "png":
        name = png_writer(compression, image.ndim)
        return dict(_WRITERS[compression])[name](image)
    if format == "jpg":
        import cv2

        return _opencv(image, ".jpg", (cv2.IMWRITE_JPEG_QUALITY, int(quality)))
    if format == "jxl":
        import imagecodecs

        return imagecodecs.jpegxl_encode(np.ascontiguousarray(image), lossless=True, effort=1, numthreads=1)
    raise ValueError(f"format must be 'png', 'jpg' or 'jxl', got {format!r}")


# -- decoder ----------------------------------------------------------------------------
def decode_image(data, name="image"):
    """An RGB ``(H, W, 3)`` uint8 image from a file's bytes (what OpenCV reads, and JPEG XL).

    Raises
    ------
    ValueError
        Empty or undecodable data; the message names ``name``.
    """
    import cv2

    buffer = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else np.asarray(data)
    if buffer[:12].tobytes().startswith(_JXL_SIGNATURES):
        return _decode_jxl(buffer, name)
    image = cv2.imdecode(buffer, cv2.IMREAD_COLOR) if buffer.size else None
    if image is None:
        raise ValueError(f"cannot decode image {name!r} (corrupt or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _decode_jxl(buffer, name):
    try:
        import imagecodecs

        image = imagecodecs.jpegxl_decode(buffer.tobytes())
    except Exception as error:  # ImportError, imagecodecs.JpegxlError
        raise ValueError(f"cannot decode JPEG XL image {name!r}: {error}") from error
    if image.dtype != np.uint8:
        raise ValueError(f"JPEG XL image {name!r} is not 8-bit ({image.dtype})")
    channels = np.atleast_3d(image)[:, :, :3]  # grey is repeated
    return np.ascontiguousarray(np.broadcast_to(channels, image.shape[:2] + (3,)))


# -- cache ------------------------------------------------------------------------------
def _freeze(value):
    """Make the arrays of ``value`` (an array, or a tuple or list of them) read-only; their bytes."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
        return value.nbytes
    if isinstance(value, (tuple, list)):
        return sum(_freeze(item) for item in value)
    return 64


class DecodedCache:
    """A least-recently-used cache of arrays, bounded in bytes.

    One per worker process, shared by the decoded input images and their segmentations:
    the consecutive variants of a sharp image are made from one decode. Cached arrays are
    made read-only, so that no caller can change what the next one gets.

    Parameters
    ----------
    max_bytes : int
        Total size of the values kept (``ndarray.nbytes``); the least recently used are
        dropped beyond it. A value larger than the whole cache is returned, not kept.

    Examples
    --------
    >>> cache = DecodedCache(1000)
    >>> a = cache.get("a", lambda: np.zeros(100, np.uint8))
    >>> b = cache.get("b", lambda: np.zeros(800, np.uint8))
    >>> c = cache.get("c", lambda: np.zeros(200, np.uint8))  # drops "a"
    >>> sorted(cache.keys()), cache.nbytes
    (['b', 'c'], 1000)
    """

    def __init__(self, max_bytes):
        self.max_bytes = check_count(max_bytes, "max_bytes")
        self.nbytes = self.hits = self.misses = 0
        self._items = OrderedDict()

    def keys(self):
        return list(self._items)

    def __contains__(self, key):
        return key in self._items

    def __len__(self):
        return len(self._items)

    def get(self, key, compute):
        """The value of ``key``, from the cache or ``compute()`` (then kept)."""
        if key in self._items:
            self.hits += 1
            self._items.move_to_end(key)
            return self._items[key][0]
        self.misses += 1
        value = compute()
        size = _freeze(value)
        if size <= self.max_bytes:
            while self._items and self.nbytes + size > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped
            self._items[key] = (value, size)
            self.nbytes += size
        return value
