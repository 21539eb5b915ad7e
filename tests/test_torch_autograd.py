"""fastblur.torch's differentiable primitives: forward = the NumPy primitive, gradcheck in
float64 (image, kernels, weights; forward and adjoint), every backend, and the deepinv
adapter against deepinv's own SpaceVaryingBlur."""
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastblur  # noqa: E402
import fastblur.torch as ft  # noqa: E402
from fastblur._geometry import output_shape  # noqa: E402


def _problem(operation, mode, batch=2, channels=2, image_hw=(7, 6), kernel_hw=(3, 2), count=2,
             adjoint=False, shared=False, dtype=torch.float64, seed=0):
    """Leaf tensors ``(input, kernels, weights)`` requiring grad (weights None for convolve)."""
    generator = torch.Generator().manual_seed(seed)
    out_hw = output_shape(image_hw, kernel_hw, mode)

    def leaf(*shape):
        return torch.rand(*shape, generator=generator, dtype=dtype).requires_grad_()

    tensor = leaf(batch, channels, *(out_hw if adjoint else image_hw))
    lead = () if shared else (batch,)
    if operation == "convolve":
        return tensor, leaf(*lead, *kernel_hw), None
    grid = out_hw if operation == "blur_masked" else image_hw
    return tensor, leaf(*lead, count, *kernel_hw), leaf(*lead, count, *grid)


def _function(operation, adjoint, mode, boundary, backend="auto"):
    function = getattr(ft, operation + ("_adjoint" if adjoint else ""))
    options = dict(mode=mode, boundary=boundary, backend=backend)
    if operation == "convolve":
        return lambda x, k: function(x, k, **options)
    return lambda x, k, w: function(x, k, w, **options)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product"])
@pytest.mark.parametrize("adjoint", [False, True], ids=["forward", "adjoint"])
@pytest.mark.parametrize("mode, boundary", [("valid", "reflect"), ("same", "symmetric"), ("full", "wrap"),
                                            ("same", "edge"), ("full", "constant")])
def test_gradcheck(operation, adjoint, mode, boundary):
    """Gradients with respect to every input, against finite differences (float64);
    shared kernels/weights in half the cases (their gradients sum over the batch)."""
    shared = boundary in ("symmetric", "constant")
    inputs = tuple(t for t in _problem(operation, mode, adjoint=adjoint, shared=shared) if t is not None)
    assert torch.autograd.gradcheck(_function(operation, adjoint, mode, boundary), inputs, fast_mode=True)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked"])
@pytest.mark.parametrize("mode, boundary", [("valid", "reflect"), ("same", "symmetric"), ("full", "wrap"),
                                            ("same", "edge"), ("full", "constant")])
def test_gradcheck_joint_image_gradient(operation, mode, boundary, monkeypatch):
    """The image gradient taken from the kernel gradients' transforms (forced: these
    kernels are too small for "auto" to take it), against finite differences."""
    monkeypatch.setattr("fastblur._torch_autograd.JOINT_IMAGE_GRAD", True)
    inputs = tuple(t for t in _problem(operation, mode, shared=boundary == "edge") if t is not None)
    assert torch.autograd.gradcheck(_function(operation, False, mode, boundary), inputs, fast_mode=True)


def test_gradcheck_slow_mode_full_jacobian():
    """The full Jacobian once (not the fast projection), odd 3x3 kernels, one channel."""
    inputs = _problem("blur_masked", "same", batch=1, channels=1, image_hw=(5, 4), kernel_hw=(3, 3))
    assert torch.autograd.gradcheck(_function("blur_masked", False, "same", "reflect"), inputs)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product"])
def test_gradcheck_on_every_backend(backend, operation):
    inputs = tuple(t for t in _problem(operation, "same", kernel_hw=(2, 3)) if t is not None)
    assert torch.autograd.gradcheck(_function(operation, False, "same", "reflect", backend), inputs,
                                    fast_mode=True)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked", "blur_product"])
@pytest.mark.parametrize("shared", [False, True])
def test_forward_and_adjoint_are_the_primitives(operation, shared):
    """Channels-first batches give the NumPy primitives of each channels-last item."""
    for mode, adjoint in itertools.product(["valid", "same"], [False, True]):
        tensor, kernels, weights = _problem(operation, mode, batch=3, channels=3, image_hw=(12, 10),
                                            kernel_hw=(4, 3), adjoint=adjoint, shared=shared,
                                            dtype=torch.float32)
        result = _function(operation, adjoint, mode, "reflect")(*[t for t in (tensor, kernels, weights)
                                                                  if t is not None])
        reference = getattr(fastblur, operation + ("_adjoint" if adjoint else ""))
        for b in range(3):
            args = [kernels.detach().numpy() if shared else kernels[b].detach().numpy()]
            if weights is not None:
                args.append(weights.detach().numpy() if shared else weights[b].detach().numpy())
            expected = reference(tensor[b].detach().permute(1, 2, 0).numpy(), *args, mode, "reflect")
            assert result.dtype == torch.float32
            np.testing.assert_array_equal(result[b].detach().permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize("operation, keep_blurs", [("blur_masked", True), ("blur_masked", False),
                                                   ("blur_product", True)])
def test_gradients_of_large_kernels_against_autograd_reference(operation, keep_blurs, monkeypatch):
    """Image, kernel (FFT path) and weight gradients against torch's own conv2d autograd,
    9x8 kernels; one weight map zero but on a box (the kernel gradient's cropped path);
    blur_masked with and without the blurs kept by the forward."""
    monkeypatch.setattr("fastblur._torch_autograd.KEEP_BLURS", keep_blurs)
    image, kernels, weights = _problem(operation, "valid", batch=2, channels=3, image_hw=(30, 27),
                                       kernel_hw=(9, 8), count=3)
    with torch.no_grad():
        weights[:, 1, :6] = 0
        weights[:, 1, :, 12:] = 0
    grad = torch.rand(2, 3, 22, 20, dtype=torch.float64)
    getattr(ft, operation)(image, kernels, weights).backward(grad)
    expected = [t.grad.clone() for t in (image, kernels, weights)]
    for t in (image, kernels, weights):
        t.grad = None

    def true_convolution(x, k):  # (C, H, W) by (N, kh, kw) -> (N, C, Ho, Wo); conv2d correlates
        return torch.nn.functional.conv2d(x[:, None], k.flip(-2, -1)[:, None]).permute(1, 0, 2, 3)

    if operation == "blur_masked":  # sum_i w_i (k_i * x)
        out = torch.stack([(weights[b][:, None] * true_convolution(image[b], kernels[b])).sum(0)
                           for b in range(2)])
    else:  # sum_i k_i * (w_i x)
        out = torch.stack([
            sum(true_convolution(weights[b, i][None] * image[b], kernels[b, i][None])[0] for i in range(3))
            for b in range(2)
        ])
    out.backward(grad)
    for got, want in zip(expected, (image.grad, kernels.grad, weights.grad)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode, boundary", [("valid", "reflect"), ("same", "wrap"), ("full", "constant")])
@pytest.mark.parametrize("kernel_hw", [(5, 4), (3, 3)])
def test_kept_blurs_equal_the_gather(mode, boundary, kernel_hw, monkeypatch):
    """With weights needing a gradient, the forward's weighted sum of kept blurs and the
    backward's gradients from them equal the gather path's, float64 to 1e-10: maps on the
    whole grid (first, and not first), on a box, all zero, and weights at most ZERO_WEIGHT
    (zero for the gather) in the mix; the forward equals fastblur.blur_masked."""
    from fastblur.backends import ZERO_WEIGHT

    for order in ([0, 1, 2, 3], [2, 0, 3, 1]):
        image, kernels, weights = _problem("blur_masked", mode, batch=2, channels=3, image_hw=(19, 17),
                                           kernel_hw=kernel_hw, count=4)
        with torch.no_grad():
            weights[:, 1] = 0
            weights[:, 1, 3:8, 2:9] = 0.7
            weights[:, 2] = 0
            weights[:, 3, ::2] = ZERO_WEIGHT / 2
            weights.copy_(weights[:, order])
        grad = torch.rand(image.shape[:2] + weights.shape[-2:], dtype=torch.float64)
        results = []
        for keep in (False, True):
            monkeypatch.setattr("fastblur._torch_autograd.KEEP_BLURS", keep)
            for t in (image, kernels, weights):
                t.grad = None
            out = ft.blur_masked(image, kernels, weights, mode, boundary)
            out.backward(grad)
            results.append([out.detach()] + [t.grad.clone() for t in (image, kernels, weights)])
        for gather, kept in zip(*results):
            torch.testing.assert_close(kept, gather, rtol=1e-10, atol=1e-10)
        expected = fastblur.blur_masked(image[0].detach().permute(1, 2, 0).numpy(), kernels[0].detach().numpy(),
                                        weights[0].detach().numpy(), mode, boundary)
        np.testing.assert_allclose(results[1][0][0].permute(1, 2, 0).numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("operation", ["convolve", "blur_masked"])
@pytest.mark.parametrize("mode, boundary", [("valid", "reflect"), ("same", "symmetric"), ("same", "edge"),
                                            ("full", "wrap"), ("full", "constant")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_joint_image_gradient_equals_the_adjoint(operation, mode, boundary, dtype, monkeypatch):
    """With the kernels needing a gradient too, the image gradient taken from the kernel
    gradients' transforms (then folded) equals the adjoint primitive's, and the kernel
    gradients are unchanged: 9x8 and 5x5 kernels, the image zero but on a box (the kernel
    gradients alone would crop to it), weight maps on a box, all zero, at most ZERO_WEIGHT
    (zero for the adjoint) and on the whole grid but not first; shared kernels with an
    output gradient zero but on a box."""
    from fastblur.backends import ZERO_WEIGHT

    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-4)
    for kernel_hw, shared in (((9, 8), False), ((5, 5), True)):
        image, kernels, weights = _problem(operation, mode, batch=2, channels=3, image_hw=(23, 21),
                                           kernel_hw=kernel_hw, count=4, shared=shared, dtype=dtype)
        with torch.no_grad():
            image[..., :4, :] = 0
            image[..., :, 15:] = 0
            if weights is not None:
                box = weights[..., 0, 5:11, 3:9].clone()  # the whole-grid map second
                weights[..., 0, :, :] = 0
                weights[..., 0, 5:11, 3:9] = box
                weights[..., 2, :, :] = 0
                weights[..., 3, :, :] = ZERO_WEIGHT / 2
        inputs = [t for t in (image, kernels, weights) if t is not None]
        grad = torch.rand((2, 3) + output_shape((23, 21), kernel_hw, mode), dtype=dtype)
        if shared:  # an output gradient zero but on a box
            grad[..., -5:, :] = 0
            grad[..., :, :6] = 0
        results = []
        for joint in (False, True):
            monkeypatch.setattr("fastblur._torch_autograd.JOINT_IMAGE_GRAD", joint)
            for t in inputs:
                t.grad = None
            _function(operation, False, mode, boundary)(*inputs).backward(grad)
            results.append([t.grad.clone() for t in inputs])
        for plain, joint in zip(*results):
            torch.testing.assert_close(joint, plain, **tolerance)


def test_joint_image_gradient_is_taken_for_kernels_with_many_taps(monkeypatch):
    """"auto": 5x5 dense kernels on 32x32 (25 >= 1.25 log2(1024) taps) take the joint
    path, 3x3 ones do not; and only when the image and the kernels both need a gradient."""
    import fastblur._torch_autograd as autograd

    calls = []
    joint = autograd._kernel_and_image_grad
    monkeypatch.setattr(autograd, "_kernel_and_image_grad", lambda *args: calls.append(1) or joint(*args))
    for kernel_hw, expected in (((5, 5), 1), ((3, 3), 0)):
        calls.clear()
        image, kernels, weights = _problem("blur_masked", "same", image_hw=(32, 32), kernel_hw=kernel_hw)
        ft.blur_masked(image, kernels, weights, "same").sum().backward()
        assert len(calls) == expected
    image, kernels, weights = _problem("blur_masked", "same", image_hw=(32, 32), kernel_hw=(5, 5))
    kernels.requires_grad_(False)
    ft.blur_masked(image, kernels, weights, "same").sum().backward()
    assert len(calls) == 0


def test_blurs_are_kept_only_when_the_weights_need_a_gradient(monkeypatch):
    """Kept blurs with a weight gradient; none without one or under no_grad (the gather)."""
    import fastblur._torch_autograd as autograd

    calls = []
    blurs = autograd._blurs
    monkeypatch.setattr(autograd, "_blurs", lambda *args: calls.append(1) or blurs(*args))
    image, kernels, weights = _problem("blur_masked", "valid")
    ft.blur_masked(image, kernels, weights)
    assert len(calls) == 2  # one per batch item
    weights.requires_grad_(False)
    ft.blur_masked(image, kernels, weights)
    weights.requires_grad_()
    with torch.no_grad():
        ft.blur_masked(image, kernels, weights)
    assert len(calls) == 2


def test_backward_skips_what_is_not_needed():
    image, kernels, weights = _problem("blur_product", "same")
    kernels.requires_grad_(False)
    weights.requires_grad_(False)
    ft.blur_product(image, kernels, weights, "same").sum().backward()
    assert image.grad is not None and kernels.grad is None and weights.grad is None


@pytest.mark.parametrize("call, error, match", [
    (lambda: ft.convolve(np.ones((1, 1, 5, 5)), np.ones((3, 3))), TypeError, "image must be a torch.Tensor"),
    (lambda: ft.convolve(torch.ones(1, 1, 5, 5, dtype=torch.int32), np.ones((3, 3))), TypeError, "float32"),
    (lambda: ft.convolve(torch.ones(1, 5, 5), np.ones((3, 3))), ValueError, r"image must be 4-D \(B, C, H, W\)"),
    (lambda: ft.convolve(torch.ones(2, 1, 5, 5), torch.ones(3, 3, 3)), ValueError, "kernel must be"),
    (lambda: ft.convolve(torch.ones(1, 1, 5, 5), np.ones((3, 3)), "nearest"), ValueError, "mode must be"),
    (lambda: ft.convolve(torch.ones(1, 1, 2, 5), np.ones((3, 3)), "valid"), ValueError, "larger than"),
    (lambda: ft.convolve(torch.ones(1, 1, 5, 5), np.full((3, 3), np.nan)), ValueError, "kernel must be finite"),
    (lambda: ft.blur_masked(torch.ones(1, 1, 5, 5), np.ones((2, 3, 3)), np.ones((2, 5, 5))), ValueError,
     "output grid"),
    (lambda: ft.blur_product(torch.ones(1, 1, 5, 5), np.ones((2, 3, 3)), np.ones((2, 3, 3))), ValueError,
     "input grid"),
    (lambda: ft.blur_product(torch.ones(1, 1, 5, 5), np.ones((2, 3, 3)), np.ones((3, 5, 5))), ValueError,
     "one map per kernel"),
    (lambda: ft.blur_masked(torch.ones(1, 1, 5, 5), "k", np.ones((2, 3, 3))), TypeError, "kernels"),
    (lambda: ft.blur_masked_adjoint(torch.ones(1, 1, 2, 2), np.ones((2, 3, 3)), np.ones((2, 2, 2)), "full"),
     ValueError, "y of spatial shape"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.gpu
def test_cuda_gradients_match_the_cpu():
    pytest.importorskip("cupy")
    inputs = _problem("blur_masked", "same", batch=2, channels=3, image_hw=(40, 36), kernel_hw=(7, 6),
                      dtype=torch.float64)
    function = _function("blur_masked", False, "same", "reflect")
    grad = torch.rand(2, 3, 40, 36, dtype=torch.float64)
    function(*inputs).backward(grad)
    cpu = [t.grad.clone() for t in inputs]
    cuda = [t.detach().cuda().requires_grad_() for t in inputs]
    out = function(*cuda)
    assert out.device.type == "cuda"
    out.backward(grad.cuda())
    for a, b in zip(cpu, cuda):
        torch.testing.assert_close(b.grad.cpu(), a, rtol=1e-9, atol=1e-9)


# --- deepinv ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def deepinv():
    return pytest.importorskip("deepinv")


@pytest.mark.parametrize("mask_first", [False, True])
def test_space_varying_blur_is_deepinv_physics(deepinv, mask_first):
    """A and A_adjoint against deepinv's own SpaceVaryingBlur (a true convolution too; its
    kernels and weights are per channel: expanded), and the adjointness."""
    image, kernels, weights = _problem("blur_product" if mask_first else "blur_masked", "valid",
                                       batch=2, channels=3, image_hw=(20, 17), kernel_hw=(5, 4), count=3)
    physics = ft.SpaceVaryingBlur(kernels.detach(), weights.detach(), mode="valid", mask_first=mask_first)
    assert isinstance(physics, deepinv.physics.LinearPhysics)
    assert isinstance(physics, ft.SpaceVaryingBlur)
    theirs = deepinv.physics.SpaceVaryingBlur(
        filters=kernels.detach()[:, None].expand(2, 3, 3, 5, 4),
        multipliers=weights.detach()[:, None].expand(-1, 3, -1, -1, -1),
        padding="valid", mask_first=mask_first)
    x = image.detach()
    y = physics.A(x)
    torch.testing.assert_close(y, theirs.A(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(physics.A_adjoint(y), theirs.A_adjoint(y), rtol=1e-10, atol=1e-12)
    shared = ft.SpaceVaryingBlur(kernels.detach()[0], weights.detach()[0], mode="valid", mask_first=mask_first)
    assert abs(float(shared.adjointness_test(x[:1]))) < 1e-10  # deepinv's dot test, batch of one


def test_space_varying_blur_adjoint_is_differentiable(deepinv):
    image, kernels, weights = _problem("blur_masked", "same", batch=1)
    physics = ft.SpaceVaryingBlur(kernels.detach(), weights.detach(), mode="same", boundary="wrap")
    x = image.detach().requires_grad_()
    (physics.A_adjoint(physics.A(x)) ** 2).sum().backward()
    normal = lambda v: physics.A_adjoint(physics.A(v))  # noqa: E731
    torch.testing.assert_close(x.grad, 2 * normal(normal(x.detach())), rtol=1e-10, atol=1e-12)
