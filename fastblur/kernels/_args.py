"""Argument checks shared by the kernel generators (errors name the argument)."""
import numbers

import numpy as np

from .._validation import check_positive_number, check_real

__all__ = ["check_positive_number", "check_size", "check_fraction", "check_real", "as_rng"]


def check_size(size, name="size"):
    """A kernel side length: an integer >= 1."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"{name} must be an integer number of pixels, got {size!r}")
    if size < 1:
        raise ValueError(f"{name} must be at least 1 pixel, got {size}")
    return int(size)


def check_fraction(value, name, low=0.0, high=1.0, low_inclusive=True):
    """A real number in ``[low, high]`` (``(low, high]`` unless ``low_inclusive``)."""
    value = check_real(value, name)
    above = value >= low if low_inclusive else value > low
    if not (above and value <= high):
        bracket = "[" if low_inclusive else "("
        raise ValueError(f"{name} must be in {bracket}{low:g}, {high:g}], got {value!r}")
    return value


def as_rng(rng, name="rng"):
    """``numpy.random.default_rng(rng)`` for None, an integer seed or a Generator."""
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
