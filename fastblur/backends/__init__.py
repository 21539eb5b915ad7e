"""Backend registry: which implementations exist, which can run here, and ``auto``.

Each backend lives in its own module and exposes ``BACKEND`` (a
:class:`~fastblur.backends.base.Backend` instance); a module that cannot be imported
here (a missing optional dependency, no GPU, no compiled extension) makes the backend
unavailable, and :func:`backend_info` reports why.
"""
import importlib
import logging

from .. import _validation
from . import cost_model
from .base import ZERO_WEIGHT, Backend

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "GENERATION_BACKENDS",
    "ZERO_WEIGHT",
    "available_backends",
    "backend_info",
    "explain",
    "get_backend",
    "pinned_backend",
    "register_backend",
]

#: name -> module path; the order is the order of preference in listings.
_MODULES = {
    "numpy": "fastblur.backends.numpy_backend",
    "native": "fastblur.backends.native_backend",
    "numba": "fastblur.backends.numba_backend",
    "fftw": "fastblur.backends.fftw_backend",
    "cupy": "fastblur.backends.cupy_backend",
}
#: What ``backend="auto"`` means when making training pairs: the first available of
#: these, fixed for a whole run. The per-call ``auto`` choice depends on the thread count
#: (and on the machine's calibration), and backends differ in the last bits, so a pair's
#: bytes would depend on how many workers made it; the direct backends suit motion PSFs.
GENERATION_BACKENDS = ("native", "numba", "numpy")
_loaded = {}
_failures = {}
logger = logging.getLogger("fastblur")


class BackendUnavailableError(ValueError):
    """A known backend that cannot run on this machine (the message says why)."""


def register_backend(name, module_path):
    """Register a backend module by dotted path (it must define ``BACKEND``)."""
    _MODULES[name] = module_path
    _loaded.pop(name, None)
    _failures.pop(name, None)


def _load(name):
    if name in _loaded:
        return _loaded[name]
    if name in _failures:
        return None
    try:
        module = importlib.import_module(_MODULES[name])
        backend = module.BACKEND
    except Exception as error:  # ImportError, missing GPU, broken extension, ...
        _failures[name] = f"{type(error).__name__}: {error}"
        return None
    _loaded[name] = backend
    return backend


def backend_info(variants=False):
    """Every registered backend and whether it can run here.

    Parameters
    ----------
    variants : bool, optional
        Also name the code variant an available backend runs, where it has several
        (the ``native`` backend's instruction-set level): ``"available (avx512)"``.

    Returns
    -------
    dict
        ``{name: "available" | reason it is not}``.
    """
    variants = _validation.check_flag(variants, "variants")
    return {name: _status(name, variants) for name in _MODULES}


def _status(name, variants):
    backend = _load(name)
    if backend is None:
        return _failures[name]
    variant = getattr(backend, "variant", None)
    return f"available ({variant})" if variants and variant is not None else "available"


def available_backends():
    """Names of the backends that can run here, in order of preference.

    Returns
    -------
    list of str
    """
    return [name for name in _MODULES if _load(name) is not None]


def get_backend(name):
    """The backend called ``name``; ``"auto"`` is resolved by :func:`select_backend`.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If ``name`` is not a registered backend.
    BackendUnavailableError
        (a ``ValueError``) if it is registered but cannot run here.
    """
    backend = _loaded.get(name) if isinstance(name, str) else None
    if backend is not None:  # the common case, checked
        return backend
    _validation.check_choice(name, ["auto", *_MODULES], "backend")
    if name == "auto":
        raise ValueError("backend 'auto' is chosen per call: see select_backend")
    backend = _load(name)
    if backend is None:
        raise BackendUnavailableError(f"backend {name!r} is not available here: {_failures[name]}")
    return backend


def select_backend(name, operation, **arrays):
    """Resolve ``name`` (possibly ``"auto"``) to a backend for one call.

    Parameters
    ----------
    name : str
        A backend name or ``"auto"``.
    operation : str or fastblur._problem.Problem
        ``"convolve"``, ``"blur_masked"``, ``"blur_product"`` or ``"smooth_masks"``
        with the call's ``arrays``, or the Problem the primitive built.
    **arrays
        The call's arrays (``image``, ``kernels``, ``weights``...), for the cost model
        (see :func:`.cost_model.decide`).
    """
    if name == "auto":
        decision = cost_model.decide(operation, **arrays)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s", decision.summary())
        return get_backend(decision.backend)
    return get_backend(name)


def pinned_backend(name):
    """``name``, or for ``"auto"`` the backend every pair of a generation run is made
    with: the first available of :data:`GENERATION_BACKENDS`.

    Returns
    -------
    str
    """
    if name != "auto":
        return name
    available = available_backends()
    return next(candidate for candidate in GENERATION_BACKENDS if candidate in available)


def explain(operation, image, kernels, weights=None, mode="valid", boundary="reflect"):
    """How ``backend="auto"`` would run a call, and why (see :mod:`.cost_model`).

    Parameters
    ----------
    operation : {'convolve', 'blur_masked', 'blur_product', 'smooth_masks'}
    image : array_like
        The image, shape (H, W) or (H, W, C); for ``smooth_masks`` the object masks
        (n, H, W).
    kernels : array_like
        ``(kh, kw)`` for ``convolve``, else ``(N, kh, kw)``.
    weights : array_like, optional
        Required for ``blur_masked`` (output grid) and ``blur_product`` (input grid).
    mode, boundary : str, optional
        As for the operation.

    Returns
    -------
    fastblur.backends.cost_model.Decision
        ``decision.backend`` and ``decision.method`` are the choice; ``print(decision)``
        lists every method's predicted time and what it counted.
    """
    return cost_model.explain(operation, image, kernels, weights, mode=mode, boundary=boundary)
