"""The shared argument checks (fastblur._validation): one rule each, TypeError for a wrong
type, ValueError for a wrong value, numpy integer scalars accepted."""
import numpy as np
import pytest

from fastblur import _validation as v


@pytest.mark.parametrize("value, expected", [(0, 0), (np.int64(7), 7), (np.uint8(3), 3), (10, 10)])
def test_check_count_accepts_integers_in_range(value, expected):
    result = v.check_count(value, "n", low=0, high=10)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value, error, message", [
    (True, TypeError, "n must be an integer"),
    (2.0, TypeError, "n must be an integer"),
    ("3", TypeError, "n must be an integer"),
    (-1, ValueError, "n must be >= 0"),
    (11, ValueError, "n must be <= 10"),
])
def test_check_count_errors_name_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        v.check_count(value, "n", low=0, high=10)


@pytest.mark.parametrize("shape, channels, expected", [
    ((4, 5), False, (4, 5)), ([4, 5, 3], False, (4, 5)), ((np.int32(4), 5, 3), True, (4, 5, 3)),
])
def test_check_image_shape(shape, channels, expected):
    assert v.check_image_shape(shape, channels=channels) == expected


@pytest.mark.parametrize("shape, error, message", [
    (5, TypeError, "image_shape must be a tuple"),
    ("ab", TypeError, "image_shape must be a tuple"),
    ((5,), ValueError, "image_shape must be a tuple"),
    ((1, 2, 3, 4), ValueError, "image_shape must be a tuple"),
    ((5, 5.0), TypeError, "must hold integers"),
    ((5, True), TypeError, "must hold integers"),
    ((5, 0), ValueError, "must hold positive sizes"),
])
def test_check_image_shape_errors(shape, error, message):
    with pytest.raises(error, match=message):
        v.check_image_shape(shape)


def test_check_point_and_check_sized():
    assert v.check_point((1, np.float32(2.5)), "at") == (1.0, 2.5)
    assert v.check_sized([3, 4], (2,), "grid", "a pair") == (3, 4)
    with pytest.raises(TypeError, match="at must be a pair"):
        v.check_point(3.0, "at")
    with pytest.raises(ValueError, match=r"at must be a pair .*got \(1.0,\)"):
        v.check_point((1.0,), "at")
    with pytest.raises(ValueError, match="at must be finite"):
        v.check_point((1.0, np.inf), "at")
