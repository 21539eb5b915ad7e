"""NumPy/CuPy dispatch and PyTorch interop at the edge of the public functions.

CuPy and PyTorch are optional: nothing here imports them unless the caller hands over
one of their arrays.
"""
import contextlib

import numpy as np


def is_cupy_array(value):
    return type(value).__module__.split(".")[0] == "cupy"


def is_torch_tensor(value):
    return type(value).__module__.split(".")[0] == "torch" and hasattr(value, "__dlpack__")


def get_array_module(*arrays):
    """``cupy`` if any of ``arrays`` is a CuPy array, else ``numpy`` (as SigPy does)."""
    if any(is_cupy_array(array) for array in arrays):
        import cupy

        return cupy
    return np


def to_numpy(array):
    """A NumPy view/copy of a NumPy or CuPy array."""
    return array.get() if is_cupy_array(array) else np.asarray(array)


def to_device(array, device):
    """``array`` on ``device`` (``"cpu"`` → NumPy, ``"cuda"`` → CuPy), copied only if needed."""
    if device == "cpu":
        return to_numpy(array)
    import cupy

    return cupy.asarray(array)


class _StreamHandle:
    """A raw ``cudaStream_t`` exposing the CUDA stream protocol (``__cuda_stream__``)."""

    def __init__(self, pointer):
        self.pointer = int(pointer)

    def __cuda_stream__(self):
        return (0, self.pointer)


def cupy_stream(pointer):
    """CuPy's view of a CUDA stream it does not own (``pointer``: ``cudaStream_t`` as an
    int), on the current device. CuPy leaves such streams alive when the view is freed."""
    import cupy

    if hasattr(cupy.cuda.Stream, "from_external"):  # CuPy >= 14 deprecates ExternalStream
        return cupy.cuda.Stream.from_external(_StreamHandle(pointer))
    return cupy.cuda.ExternalStream(int(pointer), cupy.cuda.runtime.getDevice())


@contextlib.contextmanager
def on_cuda_stream(index, pointer):
    """Run CuPy work on CUDA device ``index`` and its stream ``pointer`` (PyTorch's
    ``torch.cuda.current_stream(index).cuda_stream``, say).

    The device is entered before the stream is wrapped: CuPy refuses a stream made for
    another device than the current one, and allocates on the current device.
    """
    import cupy

    with cupy.cuda.Device(index):
        with cupy_stream(pointer):
            yield


@contextlib.contextmanager
def _on_torch_stream(index):
    """PyTorch's device ``index`` and CuPy on it, on PyTorch's current stream there.

    PyTorch's device is entered too, not only CuPy's: ``Tensor.__dlpack__`` refuses to
    export a tensor of another device than ``torch.cuda.current_device()``, and PyTorch
    (CUDA 12 and later) may report a device of its own there (one it has not made
    current yet, to spare a context) rather than the CUDA runtime's, which CuPy sets.
    """
    import torch

    with torch.cuda.device(index), on_cuda_stream(index, torch.cuda.current_stream(index).cuda_stream):
        yield


class TorchBridge:
    """Zero-copy DLPack conversion of PyTorch tensors in and results back out.

    Tensors become NumPy (CPU) or CuPy (CUDA) arrays sharing their memory; results are
    handed back as tensors on the device of the first tensor argument. On CUDA, work
    runs on PyTorch's current stream so that it orders with the caller's kernels.
    """

    def __init__(self, *values):
        self.tensor = next((v for v in values if is_torch_tensor(v)), None)

    @property
    def active(self):
        return self.tensor is not None

    def to_array(self, value):
        if not is_torch_tensor(value):
            return value
        value = value.detach()
        if value.device.type == "cuda":
            import cupy

            return cupy.from_dlpack(value)
        if value.device.type != "cpu":
            raise ValueError(f"tensors on {value.device.type!r} are not supported (cpu or cuda)")
        return value.resolve_conj().numpy()

    def stream(self):
        """A context manager running CuPy work on the tensor's device and on PyTorch's
        current stream there, so that it orders with the caller's kernels."""
        if self.tensor is None or self.tensor.device.type != "cuda":
            return contextlib.nullcontext()
        import torch

        index = self.tensor.device.index
        index = torch.cuda.current_device() if index is None else index
        return _on_torch_stream(index)

    def to_tensor(self, array):
        import torch

        if is_cupy_array(array):
            return torch.from_dlpack(array)
        return torch.from_numpy(np.ascontiguousarray(array))


def torch_interop(function):
    """Let ``function`` take PyTorch tensors and return a tensor on the same device."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        bridge = TorchBridge(*args, *kwargs.values())
        if not bridge.active:
            return function(*args, **kwargs)
        with bridge.stream():  # DLPack hand-overs included: they order on the current stream
            args = [bridge.to_array(value) for value in args]
            kwargs = {name: bridge.to_array(value) for name, value in kwargs.items()}
            return bridge.to_tensor(function(*args, **kwargs))

    return wrapper
