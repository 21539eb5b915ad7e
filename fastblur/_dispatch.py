"""Running a validated :class:`~fastblur._problem.Problem` on the backend chosen for it."""
from ._array_module import get_array_module, to_device
from .backends import get_backend, select_backend


def run(problem, backend):
    """Run ``problem`` on the chosen backend, where that backend computes; its public result.

    CuPy inputs choose the ``cupy`` backend under ``auto``; arrays are moved to the
    backend's device and the result comes back to the caller's kind (NumPy or CuPy).
    """
    xp = get_array_module(*problem.arrays)
    on_gpu = xp.__name__ == "cupy"
    chosen = get_backend("cupy") if backend == "auto" and on_gpu else select_backend(backend, problem)
    device = getattr(chosen, "device", "cpu")
    arrays = (_contiguous(to_device(array, device)) for array in problem.arrays)
    result = getattr(chosen, problem.call)(*arrays, *problem.call_args)
    return problem.finish(to_device(result, "cuda" if on_gpu else "cpu"))


def _contiguous(array):
    return get_array_module(array).ascontiguousarray(array)
