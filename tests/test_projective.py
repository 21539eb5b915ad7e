"""projective_blur, psf_field and camera_motion against independent references.

The reference is the warp-sum itself (``tests/reference.py``: bilinear
``scipy.ndimage.map_coordinates`` of every sample, float64), compared over the full frame.
"""
import numpy as np
import pytest

import fastblur
from fastblur.cli.bench_cases import photo
from fastblur.kernels import CameraMotion, camera_motion, camera_shake
from fastblur.kernels.camera_motion import rotation_matrices, rotation_vectors
from fastblur.projective import _Plan, _as_homographies
from reference import reference_convolve, reference_warp_sum

BOUNDARIES = ["reflect", "constant", "edge", "symmetric", "wrap"]


def natural(shape, dtype=np.float32):
    """A natural image in [0, 1]."""
    return (photo(shape, np.float64) / 255).astype(dtype)


def shake(seed, focal_length, shape, roll_degrees=None, samples=96):
    """Homographies of a camera_motion draw, its roll rescaled to peak at roll_degrees."""
    motion = camera_motion(rng=seed, samples=samples)
    if roll_degrees is not None:
        rotations = motion.rotations.copy()
        rotations[:, 2] *= np.radians(roll_degrees) / np.abs(rotations[:, 2]).max()
        motion = CameraMotion(rotations, motion.times)
    return motion.homographies(focal_length, shape)


def translations(shifts):
    h = np.tile(np.eye(3), (len(shifts), 1, 1))
    h[:, :2, 2] = shifts
    return h


def errors(out, reference):
    e = np.abs(np.asarray(out, np.float64) - reference)
    return e.mean(), np.quantile(e, 0.999), e.max()


# -- accuracy against the warp-sum ------------------------------------------------------

@pytest.mark.parametrize("seed, focal_length, roll", [
    (1, 700, 1.5), (2, 400, 1.5), (3, 1500, 0.6), (4, 900, 0.0), (5, 300, None),
])
def test_default_tol_meets_the_accuracy_targets(seed, focal_length, roll):
    image = natural((240, 320, 3))
    h = shake(seed, focal_length, image.shape, roll)
    mean, p999, _ = errors(fastblur.projective_blur(image, h), reference_warp_sum(image, h))
    assert mean <= 2e-4 and p999 <= 2e-3, (mean, p999)


def test_error_falls_with_tol():
    image = natural((120, 160))
    h = shake(2, 300, image.shape, 1.5, samples=48)
    reference = reference_warp_sum(image, h)
    coarse = errors(fastblur.projective_blur(image, h, tol=0.6), reference)
    fine = errors(fastblur.projective_blur(image, h, tol=0.05), reference)
    assert fine[2] < coarse[2] / 10 and fine[2] < 2e-4, (coarse, fine)


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_every_boundary_matches_the_warp_sum(boundary):
    image = np.random.default_rng(3).random((30, 41))
    h = translations([[2.3, -1.6], [-3.1, 0.4], [0.7, 2.9]]) @ shake(0, 60, image.shape, 2.0, samples=3)
    out = fastblur.projective_blur(image, h, boundary=boundary, tol=0.01)
    assert np.abs(out - reference_warp_sum(image, h, boundary)).max() < 2e-3


@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_translations_are_exact_at_every_boundary(boundary):
    image = np.random.default_rng(4).random((23, 30, 2))
    h = translations([[4.25, -3.5], [-6.75, 1.125], [0.3, 7.9]])
    out = fastblur.projective_blur(image, h, boundary=boundary)
    np.testing.assert_allclose(out, reference_warp_sum(image, h, boundary), atol=1e-12)


def test_cv2_warp_perspective_agrees_with_the_reference():
    cv2 = pytest.importorskip("cv2")
    image = natural((60, 80))
    h = shake(1, 200, image.shape, 1.0, samples=8)
    warped = np.mean([cv2.warpPerspective(image, m, (80, 60), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT_101) for m in h], axis=0)
    out = fastblur.projective_blur(image, h, tol=0.05)
    assert np.abs(out - warped).max() < 0.02  # OpenCV quantises coordinates to 1/32 px
    assert np.abs(out - reference_warp_sum(image, h)).max() < 2e-4


def test_every_backend(backend):
    image = natural((40, 52, 3))
    h = shake(2, 120, image.shape, 1.5, samples=12)
    out = fastblur.projective_blur(image, h, tol=0.05, backend=backend)
    assert np.abs(out - reference_warp_sum(image, h)).max() < 5e-4
    np.testing.assert_allclose(out, fastblur.projective_blur(image, h, tol=0.05, backend="numpy"), atol=2e-6)


# -- exact cases ----------------------------------------------------------------------

@pytest.mark.parametrize("dtype, atol", [(np.float32, 1e-7), (np.float64, 1e-15)])
def test_identity_returns_the_image(dtype, atol):
    image = np.random.default_rng(6).random((17, 25, 3)).astype(dtype)
    out = fastblur.projective_blur(image, np.tile(np.eye(3), (5, 1, 1)))
    assert out.dtype == dtype
    np.testing.assert_allclose(out, image, atol=atol, rtol=0)


@pytest.mark.parametrize("shape", [(31, 40), (31, 40, 3)])
def test_translations_equal_convolve_with_the_splatted_kernel(shape):
    image = np.random.default_rng(7).random(shape)
    shifts = np.random.default_rng(8).uniform(-5, 5, (9, 2))
    kernel = np.zeros((13, 13))
    for dx, dy in shifts:  # bilinear splat around the centre tap (6, 6)
        x0, y0 = int(np.floor(dx)), int(np.floor(dy))
        fx, fy = dx - x0, dy - y0
        for r, wr in ((y0, 1 - fy), (y0 + 1, fy)):
            for c, wc in ((x0, 1 - fx), (x0 + 1, fx)):
                kernel[6 + r, 6 + c] += wr * wc / len(shifts)
    out = fastblur.projective_blur(image, translations(shifts))
    np.testing.assert_allclose(out, reference_convolve(image, kernel, "same", "reflect"), atol=1e-12)
    np.testing.assert_allclose(out, fastblur.convolve(image, kernel), atol=1e-12)


def test_nodes_are_exact_and_modes_crop_consistently():
    image = np.random.default_rng(9).random((50, 70))
    h = shake(3, 150, image.shape, 1.5, samples=10)
    same = fastblur.projective_blur(image, h, tol=0.8)
    reference = reference_warp_sum(image, h)
    plan = _Plan(_as_homographies(h)[1], image.shape, "same", 0.8)
    assert len(plan.node_x) > 2 and len(plan.node_y) > 2
    checked = 0
    for y in plan.node_y:  # the nodes that fall on pixels get their exact PSF
        if float(y).is_integer():
            x = [int(v) for v in plan.node_x if float(v).is_integer()]
            np.testing.assert_allclose(same[int(y), x], reference[int(y), x], atol=1e-12)
            checked += len(x)
    assert checked >= 4
    smooth = natural((50, 70))
    reference = reference_warp_sum(smooth, h)
    r = plan.reach
    valid = fastblur.projective_blur(smooth, h, mode="valid")
    assert valid.shape == (50 - 2 * r, 70 - 2 * r)
    np.testing.assert_allclose(valid, reference[r:-r, r:-r], atol=4e-3)
    full = fastblur.projective_blur(smooth, h, mode="full")
    assert full.shape == (50 + 2 * r, 70 + 2 * r)
    xs, ys = np.arange(-r, 70 + r), np.arange(-r, 50 + r)
    np.testing.assert_allclose(full, reference_warp_sum(smooth, h, xs=xs, ys=ys), atol=4e-3)


# -- dtypes, layouts, array kinds ---------------------------------------------------------

def test_dtypes_and_layouts():
    h = shake(0, 100, (20, 30), 1.0, samples=6)
    for image, dtype in [(np.ones((20, 30), np.uint8), np.float32),
                         (np.ones((20, 30, 2), np.float64), np.float64),
                         (np.ones((20, 30), np.float32), np.float32)]:
        out = fastblur.projective_blur(image, h)
        assert out.dtype == dtype and out.shape == image.shape
        np.testing.assert_allclose(out, 1.0, rtol=1e-6)  # reflect: a constant stays constant


def test_torch_tensors_round_trip():
    torch = pytest.importorskip("torch")
    image = np.random.default_rng(10).random((24, 32, 3)).astype(np.float32)
    h = shake(1, 100, image.shape, 1.0, samples=8)
    out = fastblur.projective_blur(torch.from_numpy(image), torch.from_numpy(h))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_array_equal(out.numpy(), fastblur.projective_blur(image, h))


def test_memory_holds_no_full_size_map_per_node():
    tracemalloc = pytest.importorskip("tracemalloc")
    image = np.random.default_rng(11).random((240, 320, 3)).astype(np.float32)
    h = shake(2, 300, image.shape, 1.5, samples=24)
    plan = _Plan(_as_homographies(h)[1], image.shape[:2], "same", 0.1)
    nodes = len(plan.node_x) * len(plan.node_y)
    assert nodes > 200
    fastblur.projective_blur(image, h, tol=0.1)  # warm caches
    tracemalloc.start()
    fastblur.projective_blur(image, h, tol=0.1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # Padded image, output, per-node displacements and one tile's scratch; a map per
    # node would be nodes * H * W * 4 bytes (about 2 GB here).
    assert peak < 16 * image.nbytes, (peak, image.nbytes, nodes)


# -- psf_field ------------------------------------------------------------------------

def test_psf_field_shows_the_displacements():
    h = translations([[3.0, 0.0], [3.5, -2.0]])
    field = fastblur.psf_field(h, (40, 60), grid=(2, 3), size=9)
    assert field.shape == (2, 3, 9, 9) and field.dtype == np.float32
    expected = np.zeros((9, 9), np.float32)
    expected[4, 7] = 0.5
    expected[2, 7] = expected[2, 8] = 0.25
    for psf in field.reshape(-1, 9, 9):
        np.testing.assert_allclose(psf, expected, atol=1e-7)


def test_psf_field_varies_with_roll():
    h = shake(1, 800, (720, 1280), 1.5, samples=32)
    field = fastblur.psf_field(h, (720, 1280), grid=(3, 3), size=129)
    np.testing.assert_allclose(field.sum(axis=(2, 3)), 1.0, atol=1e-5)
    assert np.abs(field[0, 0] - field[2, 2]).sum() > 0.5


# -- camera_motion --------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_camera_shake_is_the_principal_point_psf(seed):
    expected = camera_shake(rng=seed)
    psf = camera_motion(rng=seed).psf(1000, (720, 1280))
    np.testing.assert_allclose(psf, expected, atol=1e-7, rtol=0)


def test_camera_shake_relation_other_settings_and_stream():
    expected = camera_shake(size=33, exposure=0.2, focal_length=700, rng=5)
    motion = camera_motion(exposure=0.2, rng=5, roll=2.0)
    np.testing.assert_allclose(motion.psf(700, (100, 90), size=33), expected, atol=1e-7, rtol=0)
    first, second = np.random.default_rng(42), np.random.default_rng(42)
    camera_motion(rng=first)
    camera_shake(rng=second)
    assert first.random() == second.random()  # roll came from a stream of its own


def test_roll_leaves_the_principal_point_and_turns_the_corners():
    motion = camera_motion(rng=3, samples=40)
    assert np.abs(motion.rotations[:, 2]).max() > 1e-4
    flat = CameraMotion(motion.rotations * [1, 1, 0], motion.times)
    centre = (639.5, 359.5)
    # zeroing the roll component of the rotation vector is not removing the roll exactly,
    # but the principal point's path is the yaw/pitch projection for the real motion:
    path = motion.path(1000, (720, 1280), centre)
    assert np.ptp(path, axis=0).max() > 1
    corner_shift = motion.path(1000, (720, 1280), (0, 0)) - path
    flat_shift = flat.path(1000, (720, 1280), (0, 0)) - flat.path(1000, (720, 1280), centre)
    assert np.abs(corner_shift - flat_shift).max() > 0.5
    assert camera_motion(rng=3, samples=40, roll=0.0).rotations[:, 2].std() < 1e-6


def test_rotation_vectors_follow_cv2_rodrigues():
    cv2 = pytest.importorskip("cv2")
    rotations = np.random.default_rng(12).normal(scale=0.4, size=(6, 3))
    rotations[0] = 0
    matrices = rotation_matrices(rotations)
    for r, m in zip(rotations, matrices):
        np.testing.assert_allclose(m, cv2.Rodrigues(r)[0], atol=1e-12)
    np.testing.assert_allclose(rotation_vectors(matrices), rotations, atol=1e-12)


def test_homographies_and_centring():
    motion = camera_motion(rng=0, samples=20)
    h = motion.homographies(500, (100, 200), principal_point=(10.0, 20.0))
    k = np.array([[500, 0, 10.0], [0, 500, 20.0], [0, 0, 1]])
    np.testing.assert_allclose(h, k @ motion.matrices() @ np.linalg.inv(k), atol=1e-12)
    centred = motion.centred()
    assert np.abs(centred.rotations.mean(axis=0)).max() < 1e-4
    assert np.abs(motion.rotations.mean(axis=0)).max() > np.abs(centred.rotations.mean(axis=0)).max()
    assert len(centred) == 20 and np.array_equal(centred.times, motion.times)


def test_same_seed_same_bytes():
    a, b = camera_motion(rng=9, samples=30), camera_motion(rng=9, samples=30)
    assert a.rotations.tobytes() == b.rotations.tobytes()
    h = a.homographies(300, (40, 50))
    image = np.random.default_rng(1).random((40, 50)).astype(np.float32)
    assert fastblur.projective_blur(image, h).tobytes() == fastblur.projective_blur(image, h).tobytes()


# -- errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("homographies, error, match", [
    (np.eye(3), ValueError, r"\(S, 3, 3\)"),
    (np.zeros((0, 3, 3)), ValueError, r"\(S, 3, 3\)"),
    (np.ones((2, 3, 4)), ValueError, r"\(S, 3, 3\)"),
    (np.full((1, 3, 3), np.nan), ValueError, "finite"),
    (np.array([np.eye(3), np.zeros((3, 3))]), ValueError, "invertible"),
    (np.array([np.eye(3), [[1, 0, 0], [0, 1, 0], [0, 0, -1.0]]]), ValueError, "horizon"),
    ("eye", TypeError, "homographies"),
    (np.eye(3, dtype=complex)[None], TypeError, "real"),
])
def test_bad_homographies(homographies, error, match):
    with pytest.raises(error, match=match):
        fastblur.projective_blur(np.ones((10, 12)), homographies)
    if error is ValueError:
        with pytest.raises(error, match=match):
            fastblur.psf_field(homographies, (10, 12))


@pytest.mark.parametrize("kwargs, error, match", [
    ({"mode": "circular"}, ValueError, "mode"),
    ({"boundary": "mirror"}, ValueError, "boundary"),
    ({"backend": "nope"}, ValueError, "backend"),
    ({"tol": 0}, ValueError, "tol"),
    ({"tol": np.inf}, ValueError, "tol"),
    ({"tol": "0.3"}, TypeError, "tol"),
    ({"mode": 3}, TypeError, "mode"),
])
def test_bad_arguments(kwargs, error, match):
    h = shake(0, 100, (10, 12), 1.0, samples=4)
    with pytest.raises(error, match=match):
        fastblur.projective_blur(np.ones((10, 12)), h, **kwargs)


def test_bad_images_and_valid_without_output():
    h = translations([[0, 0], [1, 0]])
    with pytest.raises(ValueError, match="image"):
        fastblur.projective_blur(np.ones(5), h)
    with pytest.raises(TypeError, match="image"):
        fastblur.projective_blur("image", h)
    with pytest.raises(ValueError, match="valid"):
        fastblur.projective_blur(np.ones((3, 3)), translations([[0, 0], [5, 0]]), mode="valid")


@pytest.mark.parametrize("call, error, match", [
    (lambda: camera_motion(exposure=0), ValueError, "exposure"),
    (lambda: camera_motion(samples=1), ValueError, "samples"),
    (lambda: camera_motion(samples=2.5), TypeError, "samples"),
    (lambda: camera_motion(roll=-1), ValueError, "roll"),
    (lambda: camera_motion(rng="x"), TypeError, "rng"),
    (lambda: camera_motion(rng=0).homographies(0, (10, 10)), ValueError, "focal_length"),
    (lambda: camera_motion(rng=0).homographies(10, (10,)), ValueError, "image_shape"),
    (lambda: camera_motion(rng=0).homographies(10, (10, 10), principal_point=(1,)), ValueError, "principal_point"),
    (lambda: camera_motion(rng=0).psf(10000, (10, 10), size=3), ValueError, "size"),
    (lambda: camera_motion(rng=0).psf(10, (10, 10), at="c"), TypeError, "at"),
    (lambda: CameraMotion(np.zeros((3, 2)), np.arange(3)), ValueError, "rotations"),
    (lambda: CameraMotion(np.zeros((3, 3)), [0, 2, 1]), ValueError, "times"),
    (lambda: fastblur.psf_field(np.eye(3)[None], (10, 10), grid=(0, 2)), ValueError, "grid"),
    (lambda: fastblur.psf_field(np.eye(3)[None], (10, 10), grid=3), TypeError, "grid"),
    (lambda: fastblur.psf_field(np.eye(3)[None], (10, 10), size=2.0), TypeError, "size"),
])
def test_camera_motion_and_psf_field_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
