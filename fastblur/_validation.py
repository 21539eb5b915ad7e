"""Checks and conversions shared by every public function.

Each helper names the argument it checks in its error, says what was expected, and
never broadcasts silently.

NumPy and CuPy arrays are both accepted; the checks run where the array lives.
"""
import numbers

import numpy as np

from ._array_module import get_array_module
from ._geometry import BOUNDARIES, MODES


def as_numeric_array(value, name):
    """``value`` as a real numeric NumPy or CuPy array (CuPy arrays stay on the device)."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a numeric array, got {type(value).__name__}")
    xp = get_array_module(value)
    try:
        array = xp.asarray(value)
    except Exception as error:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array: {error}") from None
    if array.dtype.kind not in "biufc":  # timedelta64 counts as a number to numpy
        raise TypeError(f"{name} must be a numeric array, got dtype {array.dtype}")
    if array.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got dtype {array.dtype}")
    return array


def is_double(dtype):
    """True for a 64-bit float dtype in either byte order."""
    return dtype.kind == "f" and dtype.itemsize == 8


def working_dtype(array):
    """float32 or float64 (native byte order): the precision results are computed in."""
    return np.dtype(np.float64) if is_double(array.dtype) else np.dtype(np.float32)


def _as_channels_last(value, name, plain_ndim, layouts):
    """``(array, had_no_channel_axis)``: a float array with a trailing channel axis."""
    array = as_numeric_array(value, name)
    if array.ndim not in (plain_ndim, plain_ndim + 1):
        raise ValueError(f"{name} must be {layouts}, got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    array = array.astype(working_dtype(array), copy=False)
    if array.ndim == plain_ndim:
        return array[..., None], True
    return array, False


def as_image(image, name="image"):
    """Return ``(image3d, was_2d)``: ``image`` as a float ``(H, W, C)`` array.

    float32 and float64 keep their precision, anything else numeric becomes float32.
    A 2-D image gets a trailing channel axis of length 1 (a view, no copy).
    """
    return _as_channels_last(image, name, 2, "2-D (H, W) or 3-D (H, W, C)")


def as_image_batch(images, name="images"):
    """Return ``(images4d, were_2d)``: ``images`` as a float ``(B, H, W, C)`` array."""
    return _as_channels_last(images, name, 3, "3-D (B, H, W) or 4-D (B, H, W, C)")


def _finite(array, name):
    if not bool(get_array_module(array).isfinite(array).all()):
        raise ValueError(f"{name} must be finite: it contains NaN or inf")
    return array


def as_kernel(kernel, dtype, name="kernel"):
    """A finite, non-empty ``(kh, kw)`` kernel cast to ``dtype``."""
    array = as_numeric_array(kernel, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (kh, kw), got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return get_array_module(array).ascontiguousarray(_finite(array.astype(dtype, copy=False), name))


def as_kernel_stack(kernels, dtype=None, name="kernels"):
    """A finite, non-empty ``(N, kh, kw)`` kernel stack cast to ``dtype``.

    ``dtype=None`` keeps float64 and computes anything else in float32.
    """
    array = as_numeric_array(kernels, name)
    dtype = working_dtype(array) if dtype is None else dtype
    if array.ndim != 3:
        raise ValueError(f"{name} must be 3-D (N, kh, kw), got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return get_array_module(array).ascontiguousarray(_finite(array.astype(dtype, copy=False), name))


def as_kernel_batch(kernels, batch, dtype=None, name="kernels"):
    """A finite ``(B, N, kh, kw)`` kernel batch for ``batch`` images, cast to ``dtype``.

    ``dtype=None`` keeps float64 and computes anything else in float32.
    """
    array = as_numeric_array(kernels, name)
    dtype = working_dtype(array) if dtype is None else dtype
    if array.ndim != 4 or array.shape[0] != batch:
        raise ValueError(f"{name} must be 4-D (B, N, kh, kw) with B = {batch}, got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    return get_array_module(array).ascontiguousarray(_finite(array.astype(dtype, copy=False), name))


def as_weights(weights, count, spatial_shape, dtype, name="weights", batch=None, grid="output",
               check_finite=True):
    """A finite ``(N, H, W)`` weight stack matching ``count`` kernels and ``spatial_shape``.

    With ``batch``, a ``(B, N, H, W)`` stack for ``batch`` images. ``grid`` ("output" or
    "input") is where the maps live, for the error message. ``check_finite=False`` skips
    the test for NaN and inf (one pass over the maps).
    """
    array = as_numeric_array(weights, name)
    expected = (count,) + tuple(spatial_shape)
    layout = "(N, H, W)"
    if batch is not None:
        expected, layout = (batch,) + expected, "(B, N, H, W)"
    if array.shape != expected:
        raise ValueError(
            f"{name} must have shape {layout} = {expected} "
            f"(one map per kernel, on the {grid} grid), "
            f"got {array.shape}"
        )
    array = array.astype(dtype, copy=False)
    if check_flag(check_finite, "check_finite"):
        array = _finite(array, name)
    return get_array_module(array).ascontiguousarray(array)


def _as_binary(masks, name, ndim, layout):
    """A boolean array of ``ndim`` dimensions whose last two (H, W) are non-empty."""
    array = as_numeric_array(masks, name)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {array.shape}")
    if array.shape[-2] == 0 or array.shape[-1] == 0:
        raise ValueError(f"{name} must have a non-empty (H, W), got shape {array.shape}")
    if array.dtype != np.bool_:
        _finite(array, name)
        array = array != 0
    return array


def as_masks(masks, name="object_masks"):
    """A boolean ``(n, H, W)`` mask stack (non-zero counts as inside); ``n`` may be 0."""
    return _as_binary(masks, name, 3, "(n, H, W)")


def as_mask_batch(masks, name="object_masks"):
    """A boolean ``(B, n, H, W)`` mask batch (non-zero counts as inside); ``n`` may be 0,
    ``B`` may not."""
    array = _as_binary(masks, name, 4, "(B, n, H, W)")
    if array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one item (B >= 1), got shape {array.shape}")
    return array


def check_choice(value, choices, name):
    """``value`` itself if it is one of ``choices``, else a ValueError listing them."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {list(choices)}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_mode(mode):
    return check_choice(mode, MODES, "mode")


def check_boundary(boundary):
    return check_choice(boundary, BOUNDARIES, "boundary")


def check_fits(image_hw, kernel_hw, mode, name="kernel"):
    """In ``valid`` mode the kernel must not be larger than the image."""
    if mode == "valid" and any(k > n for k, n in zip(kernel_hw, image_hw)):
        raise ValueError(
            f"{name} of spatial shape {tuple(kernel_hw)} is larger than the image "
            f"{tuple(image_hw)}: 'valid' mode needs kh <= H and kw <= W"
        )


def check_int_choice(value, choices, name):
    """``value`` as an int if it is one of the integers ``choices`` (numpy integers too)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, one of {list(choices)}; got {value!r}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return int(value)


def check_ndim(array, ndims, name, layout):
    """``array`` itself if its ``ndim`` is one of ``ndims`` and no axis is empty.

    ``layout`` says what was expected, for the message (``"2-D (H, W) or 3-D (H, W, C)"``).
    """
    if array.ndim not in ndims:
        raise ValueError(f"{name} must be {layout}, got shape {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"{name} must be non-empty ({layout}), got shape {array.shape}")
    return array


def check_shape(array, expected, name, what=""):
    """``array`` itself if its shape is ``expected``; ``what`` explains the expected shape."""
    if array.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {what}{tuple(expected)}, got {array.shape}")
    return array


def check_sized(value, lengths, name, what):
    """``value`` as a tuple if it is a sequence (not a string) whose length is in ``lengths``;
    ``what`` describes it ("a pair (x, y) of numbers")."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if len(value) not in lengths:
        raise ValueError(f"{name} must be {what}, got {tuple(value)!r}")
    return tuple(value)


def check_image_shape(image_shape, name="image_shape", channels=False):
    """``(H, W)`` of an image shape ``(H, W)`` or ``(H, W, C)`` of positive integers; the
    whole shape with ``channels=True``."""
    shape = check_sized(image_shape, (2, 3), name, "a tuple (H, W) or (H, W, C)")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{name} must hold integers, got {shape!r}")
        if n < 1:
            raise ValueError(f"{name} must hold positive sizes, got {shape!r}")
    return tuple(int(n) for n in (shape if channels else shape[:2]))


def check_point(point, name):
    """``(x, y)`` as two floats from a pair of finite real numbers."""
    return tuple(check_real(v, name) for v in check_sized(point, (2,), name, "a pair (x, y) of numbers"))


def check_min_side(array, minimum, name, why=""):
    """``array`` itself if its first two axes (H, W) are at least ``minimum`` long."""
    if min(array.shape[:2]) < minimum:
        raise ValueError(f"{name} must be at least {minimum} pixels on each side{why}, got shape {array.shape}")
    return array


def check_same_shape(first, second, names, why=""):
    """Two arrays of one shape; ``names`` is ``(first's, second's)``, ``why`` ends the message."""
    if first.shape != second.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got "
                         f"{first.shape} and {second.shape}{why}")


def check_count_text(text, name, low=0):
    """The integer written in ``text`` (an environment variable's value), at least ``low``.

    A text is always of the right type: what it says is a value, so anything but such an
    integer raises ValueError.
    """
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {kind}, got {text!r}")
    return value


def as_rng(rng, name="rng"):
    """``numpy.random.default_rng(rng)`` for None, an integer seed, a SeedSequence or a Generator."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, bool) or not isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        raise TypeError(
            f"{name} must be None, an integer seed, a numpy.random.SeedSequence or a "
            f"numpy.random.Generator, got {type(rng).__name__}"
        )
    if isinstance(rng, numbers.Integral) and rng < 0:
        raise ValueError(f"{name} seed must be non-negative, got {rng}")
    return np.random.default_rng(rng)


def check_count(value, name, low=0, high=None):
    """An integer (not a bool) that is at least ``low`` (and at most ``high``, if given)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return int(value)


def check_real(value, name, low=None, high=None, low_inclusive=True):
    """A finite real number (not a bool) in ``[low, high]`` (``(low, high]`` unless
    ``low_inclusive``); either bound may be None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        raise ValueError(f"{name} must be {'>=' if low_inclusive else '>'} {low:g}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return value


def check_positive_number(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    if not (value > 0 and np.isfinite(value)):
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return float(value)


# -- added for sbdd --
def check_flag(value, name):
    """``value`` if it is a bool (``True``/``False``), else a TypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def check_path(value, name):
    """``value`` as a ``str`` path (``os.PathLike`` accepted), else a TypeError."""
    import os

    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {value!r}")
    return os.fspath(value)


def check_instance(value, kind, name, optional=True):
    """``value`` if it is a ``kind`` (or None when ``optional``), else a TypeError."""
    if not isinstance(value, kind) and not (optional and value is None):
        raise TypeError(f"{name} must be {'None or ' if optional else ''}a {kind.__name__}, "
                        f"got {type(value).__name__}")
    return value


def check_positive(value, name, integer=False):
    """A positive integer (numpy integers too, not a bool), or with ``integer=False`` a
    positive finite real number; errors say "``name`` must be a positive integer" (or
    "finite number")."""
    kind = "integer" if integer else "finite number"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if integer else numbers.Real):
        raise TypeError(f"{name} must be a positive {kind}, got {value!r}")
    if not (value > 0 and (integer or np.isfinite(value))):
        raise ValueError(f"{name} must be a positive {kind}, got {value!r}")
    return int(value) if integer else float(value)
