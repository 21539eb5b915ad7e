"""Projective (camera-rotation) blur by product-convolution.

A camera that rotates during the exposure blurs a distant scene by the mean of the
image warped by the homography of every instant::

    out(x) = mean_s image(H_s^-1 x)

with bilinear interpolation, pixel centres at integer coordinates ``(x, y)`` =
(column, row), and the image extended by ``boundary`` where ``H_s^-1 x`` falls outside
it. In OpenCV's terms it is the mean of ``cv2.warpPerspective(image, H_s, (W, H),
flags=INTER_LINEAR, borderMode=...)`` over the samples, with ``reflect`` =
``BORDER_REFLECT_101``, ``symmetric`` = ``BORDER_REFLECT``, ``edge`` =
``BORDER_REPLICATE``, ``wrap`` = ``BORDER_WRAP``, ``constant`` = ``BORDER_CONSTANT``
(zeros), but without OpenCV's 1/32-pixel quantisation of coordinates.

Near one pixel ``x0`` every sample is a translation by ``u_s(x0) = x0 - H_s^-1 x0``,
and the mean of bilinearly interpolated translations is a convolution with the
bilinear splat of the points ``u_s(x0)`` (weight ``1/S`` each): that PSF is exact at
``x0``. :func:`projective_blur` computes these PSFs at the nodes of a regular grid and
blends them with bilinear (hat) interpolation weights (the gather form of
:func:`fastblur.blur_masked`: weights on the output grid), so each output pixel mixes the
PSFs of the 4 nodes around it, whatever the number of nodes.

With the native backend (``backend="native"``, or ``"auto"`` on NumPy arrays where it is
available) a dedicated routine (``NativeBackend.blur_grid_valid``) does this a band of
grid rows at a time: since the weights are bilinear, it blends each node column's two
PSFs vertically once per output row, and a pixel then costs two sparse convolutions (the
blended PSFs of the node columns on either side, weighted by their hats) instead of
four; the hats are computed on the fly. Other backends run :func:`fastblur.blur_masked`
tile by tile with the hat-weight maps of the tile's nodes.

Accuracy is set by the grid spacing, chosen from ``tol`` (pixels): the largest
distance by which a sample's displacement ``u_s`` may differ between two neighbouring
nodes (estimated from the field's derivatives on a probe grid). Blending two PSFs whose
samples lie ``d`` apart spreads light over ``d`` pixels where the exact PSF does not,
an error of order ``d^2/8`` times the blurred image's second derivative (the first
moment is exact where the field is linear). A single PSF for a whole axis errs to first
order, so it is used only where the field varies by less than ``tol^2 / 8``. At the
default ``tol = 0.2`` px (rolls up to 1.5 degrees, natural images in [0, 1]) the error
against the exact warp-sum, over the full frame, has a mean of at most about 1e-4 and a
99.9th percentile of at most about 1.6e-3 (``tests/test_projective.py``); ``tol = 0.3``
is about a third faster, with a 99.9th percentile up to about 3.5e-3.

Memory: the image is processed in bands (native) or tiles of a few grid cells; only the
PSFs of a band's or tile's nodes (and, for tiles, their weight maps over the tile) exist
at a time, so nothing full-size is allocated per node (peak: the padded image, the
output, the node displacements, and one band's PSFs).
"""
import math

import numpy as np
from numba import njit

from . import _geometry, _validation
from ._array_module import get_array_module, to_numpy, torch_interop
from .backends import select_backend
from ._problem import Problem
from ._dispatch import run
from .kernels.rasterize import deposit
from .primitives import convolve

__all__ = ["projective_blur", "psf_field", "DEFAULT_TOL"]

#: Default largest displacement difference between neighbouring grid nodes (pixels).
DEFAULT_TOL = 0.2
#: Points per side of the grid the displacement field's derivatives are probed on.
PROBES = 17
#: Displacement values computed at once while planning (bounds the plan's memory).
BLOCK_VALUES = 1 << 21
#: Closest node spacing (pixels), whatever ``tol`` asks (nodes on every pixel: exact).
MIN_SPACING = 1
#: Output pixels per tile side (about): tiles hold whole grid cells.
TILE_ROWS = 96
TILE_COLS = 384
#: Most grid cells a tile holds along (y, x) (bounds the weight maps of a tile).
MAX_TILE_CELLS = (4, 4)
#: Output rows per band of the native grid routine (about), and its most grid cells.
BAND_ROWS = 128
MAX_BAND_CELLS = 8


def _as_homographies(homographies):
    """A host float64 ``(S, 3, 3)`` stack, finite and invertible, and its inverses."""
    array = _validation.as_numeric_array(homographies, "homographies")
    array = np.asarray(to_numpy(array), dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (3, 3) or len(array) == 0:
        raise ValueError(f"homographies must have shape (S, 3, 3), S >= 1, got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("homographies must be finite: they contain NaN or inf")
    scale = np.abs(array).max(axis=(1, 2))
    det = np.linalg.det(array / np.where(scale > 0, scale, 1.0)[:, None, None])
    if np.any(np.abs(det) < 1e-12):
        bad = int(np.argmin(np.abs(det)))
        raise ValueError(f"homographies must be invertible: homographies[{bad}] is singular")
    return array, np.linalg.inv(array)


def _displacements(inverses, xs, ys):
    """``u_s(p) = p - H_s^-1 p`` for the points ``(xs, ys)``: shape (S, P, 2)."""
    p = np.stack([xs, ys, np.ones_like(xs)], axis=0)
    q = inverses @ p
    w = q[:, 2]
    if np.any(w <= 1e-12 * np.abs(q[:, :2]).max(axis=1)):
        raise ValueError("homographies map part of the image through the horizon (w <= 0)")
    return np.stack([xs - q[:, 0] / w, ys - q[:, 1] / w], axis=-1)


def _slopes(inverses, x_range, y_range):
    """Largest change of any sample's displacement per pixel along x and along y."""
    xs = np.linspace(*x_range, PROBES)
    ys = np.linspace(*y_range, PROBES)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    u = _displacements(inverses, gx, gy)
    along_x = np.linalg.norm(_displacements(inverses, gx + 1.0, gy) - u, axis=-1).max()
    along_y = np.linalg.norm(_displacements(inverses, gx, gy + 1.0) - u, axis=-1).max()
    return along_x, along_y


def _node_count(extent, slope, tol):
    """Nodes along an axis of ``extent + 1`` pixels so that neighbours differ by <= tol.

    One node (one PSF for the whole axis) errs to first order, not second as blending
    does, so it is used only where the field varies by at most ``tol**2 / 8``.
    """
    if extent <= 0 or slope * extent / 2.0 <= tol * tol / 8.0:
        return 1
    # Nodes closer than MIN_SPACING pixels would not make PSFs any more exact.
    return int(min(math.ceil(slope * extent / tol), extent // MIN_SPACING)) + 1


def _nodes(extent, slope, tol):
    """Node coordinates along an axis spanning ``extent = (first, last)``: evenly spaced
    from edge to edge, or the middle alone when one PSF is within ``tol`` everywhere."""
    count = _node_count(extent[1] - extent[0], slope, tol)
    if count == 1:
        return np.array([0.5 * (extent[0] + extent[1])])
    return np.linspace(extent[0], extent[1], count)


@njit(cache=True, nogil=True)
def _splat_into(u, out):
    count, samples, _ = u.shape
    centre = (out.shape[1] - 1) // 2
    share = 1.0 / samples
    for m in range(count):
        grid = out[m]
        for s in range(samples):
            deposit(grid, u[m, s, 0] + centre, u[m, s, 1] + centre, share)


def _splat(u, size, dtype=np.float64, buffer=None):
    """Bilinear splats of displacement sets: ``u`` (M, S, 2) -> (M, size, size).

    Tap ``(c + dy, c + dx)``, ``c = (size - 1) // 2``, receives the share ``1/S`` of
    each sample displaced by ``(dx, dy)``, split bilinearly; mass falling outside the
    kernel is dropped. ``buffer`` (a :class:`_Scratch`) reuses memory between calls.
    """
    shape = (len(u), size, size)
    if buffer is None:
        out = np.zeros(shape, dtype=dtype)
    else:
        out = buffer("kernels", shape)
        out.fill(0)
    _splat_into(np.ascontiguousarray(u, dtype=np.float64), out)
    return out


@njit(cache=True, nogil=True)
def _outer_into(wy, wx, out):
    """``out[j, i] = outer(wy[j], wx[i])``: the tile's weight maps, zero rows skipped."""
    for j in range(wy.shape[0]):
        for i in range(wx.shape[0]):
            for y in range(wy.shape[1]):
                a = wy[j, y]
                for x in range(wx.shape[1]):
                    out[j, i, y, x] = a * wx[i, x]


def _hats(coords, nodes):
    """Bilinear interpolation weights of ``nodes`` at ``coords``: (len(nodes), len(coords))."""
    if len(nodes) == 1:
        return np.ones((1, len(coords)))
    step = nodes[1] - nodes[0]
    return np.maximum(0.0, 1.0 - np.abs(coords[None, :] - nodes[:, None]) / step)


def _groups(coords, nodes, cells_per_tile):
    """Tiles along one axis: ``[(start, stop, node_first, node_stop), ...]`` (indices)."""
    if len(nodes) == 1:
        return [(0, len(coords), 0, 1)]
    cell = np.minimum(((coords - nodes[0]) / (nodes[1] - nodes[0])).astype(np.int64), len(nodes) - 2)
    group = cell // cells_per_tile
    edges = np.flatnonzero(np.diff(group)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(coords)]])
    out = []
    for start, stop in zip(starts, stops):
        first = int(cell[start])
        out.append((int(start), int(stop), first, int(cell[stop - 1]) + 2))
    return out


def _cells_per_tile(nodes, pixels, most):
    """Grid cells a tile holds along an axis: about ``pixels``, at most ``most``."""
    if len(nodes) == 1:
        return 1
    return int(min(most, max(1, round(pixels / (nodes[1] - nodes[0])))))


class _Plan:
    """Output grid, node grid, kernel reach and padding of one projective_blur call."""

    def __init__(self, inverses, image_hw, mode, tol):
        height, width = image_hw
        # The reach over the image sets the output size of 'full'/'valid', as a kernel of
        # side 2 * reach + 1 would for convolve.
        corners = _displacements(inverses, *self._probe_points((0, width - 1), (0, height - 1)))
        self.reach = int(math.ceil(np.abs(corners).max())) + 1
        size = 2 * self.reach + 1
        self.out_hw = _geometry.output_shape(image_hw, (size, size), mode)
        if min(self.out_hw) < 1:
            raise ValueError(
                f"mode='valid' leaves no output: the blur reaches {self.reach} px, the image is "
                f"{height}x{width}")
        offset = {"same": 0, "full": -self.reach, "valid": self.reach}[mode]
        self.ys = offset + np.arange(self.out_hw[0], dtype=np.float64)
        self.xs = offset + np.arange(self.out_hw[1], dtype=np.float64)
        x_range, y_range = (self.xs[0], self.xs[-1]), (self.ys[0], self.ys[-1])
        slope_x, slope_y = _slopes(inverses, x_range, y_range)
        self.node_x = _nodes(x_range, slope_x, tol)
        self.node_y = _nodes(y_range, slope_y, tol)
        self.inverses = inverses
        # Node displacements are made per tile (memory: a tile's nodes); the reach is
        # their largest, found a block of node rows at a time. A grid that fits in one
        # block keeps it for the tiles.
        step = max(1, BLOCK_VALUES // (len(self.node_x) * len(inverses)))
        self._band = (None, None)
        if step >= len(self.node_y):
            every = slice(0, len(self.node_y))
            self._band = ((every.start, every.stop), self.displacements(every, slice(None)))
            largest = np.abs(self._band[1]).max()
        else:
            largest = max(np.abs(self.displacements(slice(j, j + step), slice(None))).max()
                          for j in range(0, len(self.node_y), step))
        self.kernel_reach = int(math.ceil(largest)) + 1
        self.pad = self.kernel_reach + max(0, -offset)

    def displacements(self, rows, cols):
        """``u_s`` at node rows ``rows`` x node columns ``cols``: (rows, cols, S, 2)."""
        gx, gy = np.meshgrid(self.node_x[cols], self.node_y[rows])
        u = _displacements(self.inverses, gx.ravel(), gy.ravel())  # (S, N, 2)
        return np.ascontiguousarray(u.transpose(1, 0, 2)).reshape(gx.shape + u.shape[:1] + (2,))

    @staticmethod
    def _probe_points(x_range, y_range):
        gx, gy = np.meshgrid(np.linspace(*x_range, PROBES), np.linspace(*y_range, PROBES))
        return gx.ravel(), gy.ravel()

    @property
    def kernel_size(self):
        return 2 * self.kernel_reach + 1

    def kernels(self, rows, cols, dtype=np.float64, buffer=None):
        """Node PSFs of node rows ``rows`` x node columns ``cols`` (in ``buffer``, a
        :class:`_Scratch` of ``dtype``, if given)."""
        held = self._band[0]
        if held is not None and held[0] <= rows.start and rows.stop <= held[1]:
            u = self._band[1][rows.start - held[0]:rows.stop - held[0], cols]
        else:  # tiles come a band of node rows at a time
            self._band = ((rows.start, rows.stop), self.displacements(rows, slice(None)))
            u = self._band[1][:, cols]
        return _splat(u.reshape(-1, *u.shape[2:]), self.kernel_size, dtype, buffer)

    def tiles(self):
        """Output tiles of whole grid cells: ``((r0, r1, node_rows), (c0, c1, node_cols))``."""
        cells_y = _cells_per_tile(self.node_y, TILE_ROWS, MAX_TILE_CELLS[0])
        cells_x = _cells_per_tile(self.node_x, TILE_COLS, MAX_TILE_CELLS[1])
        for r0, r1, j0, j1 in _groups(self.ys, self.node_y, cells_y):
            for c0, c1, i0, i1 in _groups(self.xs, self.node_x, cells_x):
                yield (r0, r1, slice(j0, j1)), (c0, c1, slice(i0, i1))

    def input_window(self, r0, r1, c0, c1):
        """Rows/columns of the padded image a 'valid' blur of output tile needs."""
        top = int(self.ys[r0]) + self.pad - self.kernel_reach
        left = int(self.xs[c0]) + self.pad - self.kernel_reach
        size = self.kernel_size
        return slice(top, top + r1 - r0 + size - 1), slice(left, left + c1 - c0 + size - 1)


class _Scratch:
    """Reused flat buffers (fresh large arrays cost page faults at every tile)."""

    def __init__(self, xp, dtype):
        self.xp, self.dtype, self.buffers = xp, dtype, {}

    def __call__(self, name, shape):
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self.buffers[name] = self.xp.empty(size, dtype=self.dtype)
        return buffer[:size].reshape(shape)


def _blend_tiles(padded, plan, backend, out):
    """``out`` tile by tile: blur_masked of the tile's window by its nodes' PSFs and hats."""
    xp = get_array_module(padded)
    dtype = out.dtype
    scratch = _Scratch(xp, dtype)
    chosen = backend
    for (r0, r1, node_rows), (c0, c1, node_cols) in plan.tiles():
        kernels = xp.asarray(plan.kernels(node_rows, node_cols, dtype))
        wy = xp.asarray(_hats(plan.ys[r0:r1], plan.node_y[node_rows]).astype(dtype))
        wx = xp.asarray(_hats(plan.xs[c0:c1], plan.node_x[node_cols]).astype(dtype))
        weights = scratch("weights", (len(wy), len(wx), r1 - r0, c1 - c0))
        if xp is np:
            _outer_into(wy, wx, weights)
        else:
            xp.multiply(wy[:, None, :, None], wx[None, :, None, :], out=weights)
        weights = weights.reshape(-1, r1 - r0, c1 - c0)
        rows, cols = plan.input_window(r0, r1, c0, c1)
        window = scratch("window", (rows.stop - rows.start, cols.stop - cols.start, out.shape[2]))
        xp.copyto(window, padded[rows, cols])
        # blur_masked's Problem, without re-validating arrays built valid here.
        problem = Problem("blur_masked", "blur_masked_valid", (window, kernels, weights), "valid", "reflect")
        if chosen == "auto" and xp is np:  # decide once, for every tile alike
            chosen = select_backend("auto", problem).name
        out[r0:r1, c0:c1] = run(problem, chosen)


def _native_grid():
    """The native backend's grid routine, or None where the extension is unavailable."""
    from .backends import available_backends, get_backend

    if "native" not in available_backends():
        return None
    return getattr(get_backend("native"), "blur_grid_valid", None)


def _blend_bands(padded, plan, grid, out):
    """``out`` a band of grid cells at a time through the native grid routine: the hats
    are computed on the fly, so only a band's node PSFs exist at a time."""
    dtype = out.dtype
    cells = _cells_per_tile(plan.node_y, BAND_ROWS, MAX_BAND_CELLS)
    node_cols = plan.node_x - plan.xs[0]
    scratch = _Scratch(np, dtype)
    for r0, r1, j0, j1 in _groups(plan.ys, plan.node_y, cells):
        kernels = plan.kernels(slice(j0, j1), slice(None), dtype, scratch)
        kernels = kernels.reshape(j1 - j0, len(plan.node_x), *kernels.shape[1:])
        rows, cols = plan.input_window(r0, r1, 0, plan.out_hw[1])
        node_rows = plan.node_y[j0:j1] - plan.ys[r0]
        # Contiguous: the binding would otherwise convert a float64 window to float32.
        window = np.ascontiguousarray(padded[rows, cols])
        out[r0:r1] = grid(window, kernels, node_rows, node_cols)


@torch_interop
def projective_blur(image, homographies, mode="same", boundary="reflect", tol=DEFAULT_TOL,
                    backend="auto"):
    """Blur by a camera's rotation: the mean of the image warped by each homography.

    ``out(x) = mean_s image(H_s^-1 x)``, bilinear, pixel centres at integer coordinates,
    computed by product-convolution (PSFs at grid nodes blended by bilinear weights, as
    :func:`fastblur.blur_masked` would; see :mod:`fastblur.projective`).

    Parameters
    ----------
    image : array_like, shape (H, W) or (H, W, C)
        float32 or float64 (other numbers are computed in float32); NumPy, CuPy or
        PyTorch.
    homographies : array_like, shape (S, 3, 3)
        Finite, invertible; ``H_s`` maps a sharp pixel ``(x, y, 1)`` (x = column) to
        where sample ``s`` puts it (:meth:`fastblur.kernels.CameraMotion.homographies`).
    mode : {'same', 'valid', 'full'}, optional
        ``same``: the image's grid. ``valid``/``full``: cropped/extended by the blur's
        reach ``r`` (the largest displacement over the image, rounded up, plus 1) on
        each side, as :func:`fastblur.convolve` would with a ``2r + 1`` kernel.
    boundary : {'reflect', 'constant', 'edge', 'symmetric', 'wrap'}, optional
        Extension of the image where a sample looks outside it (``numpy.pad`` names).
    tol : float, optional
        Grid fineness, in pixels: the largest difference between a sample's
        displacement at two neighbouring grid nodes (> 0; default 0.2). Smaller is more
        accurate (error about proportional to ``tol^2``) and somewhat slower: a pixel
        always mixes 4 PSFs, but finer grids cut the image into shorter runs.
    backend : str, optional
        Backend of :func:`fastblur.blur_masked`. ``"native"``, and ``"auto"`` for NumPy
        inputs where the native backend is available, run the native grid routine (two
        sparse convolutions a pixel; equal to the blur_masked path to float rounding).

    Returns
    -------
    ndarray, shape (Ho, Wo) or (Ho, Wo, C)
        float64 for float64 images, float32 otherwise; the input's array kind.

    Raises
    ------
    TypeError
        Non-numeric ``image``/``homographies``; non-string mode/boundary/backend;
        non-real ``tol``.
    ValueError
        ``homographies`` not ``(S, 3, 3)``, not finite, singular, or mapping the image
        through the horizon; bad image shape; unknown mode/boundary/backend; ``tol <= 0``;
        no output in ``valid`` mode.

    Examples
    --------
    >>> import numpy as np, fastblur
    >>> from fastblur.kernels import camera_motion
    >>> image = np.random.default_rng(0).random((120, 160, 3), dtype=np.float32)
    >>> h = camera_motion(rng=1, samples=32).homographies(400, image.shape)
    >>> fastblur.projective_blur(image, h).shape
    (120, 160, 3)
    """
    image3d, was_2d = _validation.as_image(image)
    _validation.check_mode(mode)
    _validation.check_boundary(boundary)
    tol = _validation.check_real(tol, "tol", low=0.0, low_inclusive=False)
    _, inverses = _as_homographies(homographies)
    plan = _Plan(inverses, image3d.shape[:2], mode, tol)
    xp = get_array_module(image3d)
    dtype = image3d.dtype
    pad = plan.pad
    padded = xp.pad(image3d, ((pad, pad), (pad, pad), (0, 0)), mode=boundary)
    if len(plan.node_x) == len(plan.node_y) == 1:  # one PSF: a plain convolution
        kernel = plan.kernels(slice(0, 1), slice(0, 1), dtype)[0]
        rows, cols = plan.input_window(0, plan.out_hw[0], 0, plan.out_hw[1])
        out = convolve(padded[rows, cols], xp.asarray(kernel), mode="valid", backend=backend)
        return out[..., 0] if was_2d else out
    out = xp.empty(plan.out_hw + image3d.shape[2:], dtype=dtype)
    grid = _native_grid() if xp is np and backend in ("auto", "native") else None
    if grid is not None:
        _blend_bands(padded, plan, grid, out)
    else:
        _blend_tiles(padded, plan, backend, out)
    return out[..., 0] if was_2d else out


def psf_field(homographies, image_shape, grid=(5, 5), size=65):
    """The PSFs of a projective blur on a grid of pixels, for inspection.

    These are the PSFs :func:`projective_blur` blends: at each pixel ``x`` the bilinear
    splat of the displacements ``x - H_s^-1 x`` (weight ``1/S`` each), with zero
    displacement on tap ``(size - 1) // 2`` (so a net shift shows).

    Parameters
    ----------
    homographies : array_like, shape (S, 3, 3)
    image_shape : tuple
        ``(H, W)`` or ``(H, W, C)``.
    grid : (int, int), optional
        ``(ny, nx)`` pixels, evenly spaced from edge to edge: rows
        ``linspace(0, H - 1, ny)``, columns ``linspace(0, W - 1, nx)``.
    size : int, optional
        Kernel side; mass displaced farther than ``size // 2`` is dropped.

    Returns
    -------
    ndarray, shape (ny, nx, size, size), float32

    Examples
    --------
    >>> import fastblur
    >>> from fastblur.kernels import camera_motion
    >>> h = camera_motion(rng=0, samples=48).homographies(1000, (720, 1280))
    >>> fastblur.psf_field(h, (720, 1280), grid=(3, 4)).shape
    (3, 4, 65, 65)
    """
    _, inverses = _as_homographies(homographies)
    height, width = _validation.check_image_shape(image_shape)
    grid = _validation.check_sized(grid, (2,), "grid", "a pair (ny, nx) of integers")
    ny, nx = (_validation.check_count(n, "grid", low=1) for n in grid)
    size = _validation.check_count(size, "size", low=1)
    gx, gy = np.meshgrid(np.linspace(0, width - 1, nx), np.linspace(0, height - 1, ny))
    u = _displacements(inverses, gx.ravel(), gy.ravel()).transpose(1, 0, 2)
    return _splat(np.ascontiguousarray(u), size).astype(np.float32).reshape(ny, nx, size, size)
