"""Kernel files: ``.mat`` (key ``K``, the SBDD kernel files), ``.npy`` and ``.png``.

Files hold the kernel array exactly as given (no flip). fastblur's generated kernels
are PSFs: the blurred image is the PSF applied by true convolution
(:func:`fastblur.convolve`). The SBDD reference generator applies a stored ``K`` by
correlation, i.e. it blurs with ``K[::-1, ::-1]``; for the random models of
:mod:`fastblur.kernels` (and any odd-sized linear kernel) the 180-degree rotation leaves
the distribution unchanged, so a dataset written here is statistically the same to
either convention.

Writes are atomic (a temporary file in the same folder, then :func:`os.replace`), and
``.mat`` files carry a fixed header text instead of scipy's creation time, so the same
kernel always gives the same bytes.
"""
import io
import os
from collections.abc import Sequence

import numpy as np

from .._atomic import write_atomic
from .._validation import check_int_choice, check_ndim, working_dtype

__all__ = ["load", "save", "load_list", "save_list", "KernelList", "FORMATS"]

FORMATS = (".mat", ".npy", ".png")
MAT_KEY = "K"
#: Negative taps no larger than this fraction of the peak are rounding noise: they are
#: set to zero on load. Larger ones are an error.
NEGATIVE_TOLERANCE = 1e-6
_MAT_HEADER_BYTES = 116
_MAT_DESCRIPTION = b"MATLAB 5.0 MAT-file, written by fastblur"


def _format_of(path, name="path"):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"{name} must end in one of {list(FORMATS)} to choose a kernel format, "
            f"got {os.fspath(path)!r}"
        )
    return ext


def _check_kernel(array, where):
    """A finite, non-negative, non-zero 2-D float kernel (float64 kept, else float32)."""
    array = np.asarray(array)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ) or np.iscomplexobj(array):
        raise ValueError(f"{where}: a kernel must be a real numeric array, got dtype {array.dtype}")
    check_ndim(array, (2,), f"{where}: a kernel", "a 2-D array")
    array = array.astype(working_dtype(array))
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: the kernel contains NaN or inf")
    peak = float(array.max())
    low = float(array.min())
    if peak <= 0.0:
        raise ValueError(f"{where}: the kernel is all zero or negative; it must have positive mass")
    if low < 0.0:
        if low < -NEGATIVE_TOLERANCE * peak:
            raise ValueError(
                f"{where}: the kernel has negative taps (min {low:.3g}, peak {peak:.3g}); "
                "a blur kernel must be non-negative"
            )
        array = np.maximum(array, 0, out=array)
    return array


def _mat_bytes(kernel):
    import scipy.io

    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {MAT_KEY: kernel})
    data = bytearray(buffer.getvalue())
    data[:_MAT_HEADER_BYTES] = _MAT_DESCRIPTION.ljust(_MAT_HEADER_BYTES, b" ")
    return bytes(data)


def _npy_bytes(kernel):
    buffer = io.BytesIO()
    np.save(buffer, kernel, allow_pickle=False)
    return buffer.getvalue()


def _png_bytes(kernel, bit_depth):
    from PIL import Image

    top = 255 if bit_depth == 8 else 65535
    scaled = np.rint(kernel.astype(np.float64) * (top / float(kernel.max())))
    image = Image.fromarray(scaled.astype(np.uint8 if bit_depth == 8 else np.uint16))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def save(path, kernel, *, bit_depth=16):
    """Write a kernel to ``path``; the extension picks the format.

    Parameters
    ----------
    path : str or os.PathLike
        ``.mat`` (MATLAB v5, variable ``K``, as the SBDD kernel files), ``.npy`` or
        ``.png``. The folder must exist. The file is replaced atomically.
    kernel : array_like, shape (kh, kw)
        Finite, non-negative, not all zero. Stored as float64 if it is float64, else
        float32 (``.mat``/``.npy``), exactly as given (no normalisation, no flip).
    bit_depth : {16, 8}, optional
        For ``.png`` only: grey levels are ``round(kernel / kernel.max() * (2**bit_depth - 1))``,
        so taps below half a grey level of the peak are lost.

    Raises
    ------
    ValueError
        Unknown extension, bad ``bit_depth``, or a kernel that is not 2-D, not finite,
        negative or all zero.
    """
    ext = _format_of(path)
    bit_depth = check_int_choice(bit_depth, (8, 16), "bit_depth")
    kernel = _check_kernel(kernel, f"kernel for {os.fspath(path)!r}")
    if ext == ".mat":
        data = _mat_bytes(kernel)
    elif ext == ".npy":
        data = _npy_bytes(kernel)
    else:
        data = _png_bytes(kernel, bit_depth)
    write_atomic(path, data)


def _read_mat(path):
    import scipy.io

    contents = scipy.io.loadmat(path)
    if MAT_KEY not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise ValueError(f"{path!r}: no variable {MAT_KEY!r} in the .mat file (found {found})")
    return contents[MAT_KEY]


def _read_png(path):
    from PIL import Image

    with Image.open(path) as image:
        if image.mode in ("1", "P"):
            image = image.convert("L")
        array = np.asarray(image)
        mode = image.mode
    if array.ndim == 3:  # LA, RGB, RGBA: drop alpha, average the colour channels
        colour = array[..., :1] if mode == "LA" else array[..., :3]
        array = colour.astype(np.float32).mean(axis=2, dtype=np.float32)
    return array


def load(path, normalize=None):
    """Read a kernel file written by :func:`save` or by other tools.

    Parameters
    ----------
    path : str or os.PathLike
        ``.mat`` (variable ``K``), ``.npy`` or ``.png`` (8- or 16-bit grey; colour PNGs
        are averaged over R, G, B, alpha is ignored).
    normalize : bool, optional
        Divide by the sum so the kernel sums to 1. ``None`` (default) normalises
        ``.png`` files (their grey levels have no scale) and returns ``.mat``/``.npy``
        kernels as stored, so kernels made for the reference SBDD generator give the
        same result as there.

    Returns
    -------
    ndarray, shape (kh, kw)
        float64 if the file holds float64, else float32. Negative taps within
        ``NEGATIVE_TOLERANCE`` of the peak (rounding noise) are set to zero.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Unknown extension; a corrupt or unreadable file; a ``.mat`` without ``K``; a
        kernel that is not 2-D, not finite, all zero, or has negative taps. The message
        names ``path``.
    """
    ext = _format_of(path)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"kernel file not found: {path!r}")
    try:
        if ext == ".mat":
            array = _read_mat(path)
        elif ext == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            array = _read_png(path)
    except ValueError as error:
        if repr(path) in str(error):
            raise
        raise ValueError(f"cannot read kernel file {path!r}: {error}") from error
    except Exception as error:  # truncated, not a MAT/NPY/PNG file, ...
        raise ValueError(f"cannot read kernel file {path!r}: {error}") from error
    kernel = _check_kernel(array, f"kernel file {path!r}")
    if normalize is None:
        normalize = ext == ".png"
    if normalize:
        kernel = (kernel / kernel.sum(dtype=np.float64)).astype(kernel.dtype)
    return kernel


class KernelList(Sequence):
    """A read-only sequence of kernel files, each loaded by :func:`load` when indexed.

    ``kernels[i]`` reads the file every time (nothing is cached, so a list of tens of
    thousands of kernels costs no memory); slicing gives another ``KernelList``.
    ``paths`` holds the resolved file paths.
    """

    def __init__(self, paths, normalize=None):
        self.paths = tuple(os.fspath(p) for p in paths)
        self.normalize = normalize

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return KernelList(self.paths[index], self.normalize)
        return load(self.paths[index], self.normalize)

    def __repr__(self):
        return f"KernelList({len(self)} kernels)"


def load_list(list_file, root=None, normalize=None):
    """Kernels listed by a text file in the SBDD format, loaded lazily.

    Parameters
    ----------
    list_file : str or os.PathLike
        One path a line (e.g. ``train/kernel0000.mat``), relative to ``root`` (absolute
        paths are used as they are). Blank lines and lines starting with ``#`` are
        skipped; surrounding whitespace is stripped.
    root : str or os.PathLike, optional
        Folder the paths are relative to; defaults to the list file's folder.
    normalize : bool, optional
        Passed to :func:`load`.

    Returns
    -------
    KernelList
        A sequence whose items are the kernels as :func:`load` returns them, read on
        access. Every listed file is checked to exist up front.

    Raises
    ------
    FileNotFoundError
        ``list_file`` or a listed file does not exist (the first missing path is named).
    ValueError
        The list is empty or names a file with an unsupported extension.
    """
    list_file = os.fspath(list_file)
    if not os.path.isfile(list_file):
        raise FileNotFoundError(f"kernel list file not found: {list_file!r}")
    root = os.path.dirname(os.path.abspath(list_file)) if root is None else os.fspath(root)
    with open(list_file, encoding="utf-8") as stream:
        entries = [line.strip() for line in stream]
    entries = [e for e in entries if e and not e.startswith("#")]
    if not entries:
        raise ValueError(f"kernel list file {list_file!r} lists no kernels")
    paths = [os.path.join(root, entry) for entry in entries]
    for entry, path in zip(entries, paths):
        _format_of(path, f"entry {entry!r} of {list_file!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} kernel files listed in {list_file!r} are "
            f"missing, first: {missing[0]!r}"
        )
    return KernelList(paths, normalize)


def save_list(list_file, entries):
    """Write ``entries`` (paths relative to the list's root), one a line, atomically."""
    text = "".join(f"{os.fspath(entry)}\n" for entry in entries)
    write_atomic(list_file, text.encode("utf-8"))
