"""A stand-in for CuPy on the CPU, to run the ``cupy`` backend's host code without a GPU.

Arrays are NumPy memory typed as CuPy arrays (:class:`DeviceArray`, whose ``get`` copies
to the host), FFTs are scipy.fft's, ``cupyx.scipy.ndimage`` is scipy.ndimage, and the
RawModule is the backend's CUDA source compiled as C++ for the host: every (block,
thread) index of a launch runs in turn, so the kernel's own index arithmetic, bounds
check and argument order are exercised. Everything but the CUDA runtime is the code a
GPU runs.
"""
import ast
import ctypes
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import scipy.fft

HOST_HARNESS = r"""
#include <cmath>
struct Index { unsigned x, y, z; };
static Index blockIdx, threadIdx, blockDim;
#define __global__
%(source)s
// Every (block, thread) of a launch in turn, as a GPU would run them (in some order).
#define LAUNCH(call) \
    blockDim.x = block; \
    for (unsigned b = 0; b < grid; ++b) \
        for (unsigned t = 0; t < block; ++t) { blockIdx.x = b; threadIdx.x = t; call; }

template <typename T>
static void launch_accumulate(unsigned grid, unsigned block, const T* filtered, const T* weights, T* out,
                              const int* ints, T zero_weight, int overwrite) {
    LAUNCH((accumulate_weighted<T>(filtered, weights, out, ints[0], ints[1], ints[2], ints[3], ints[4],
                                   ints[5], ints[6], ints[7], ints[8], ints[9], ints[10], zero_weight, overwrite)))
}
template <typename T>
static void launch_taps(unsigned grid, unsigned block, const T* images, const T* weights, const int* starts,
                        const int* offsets, const T* values, T* out, const int* ints, T zero_weight) {
    LAUNCH((blur_masked_taps<T>(images, weights, starts, offsets, values, out, ints[0], ints[1], ints[2],
                                ints[3], ints[4], ints[5], ints[6], ints[7], zero_weight)))
}
extern "C" void accumulate_weighted_float(unsigned g, unsigned b, const float* f, const float* w, float* o,
                                          const int* i, float z, int ow) { launch_accumulate<float>(g, b, f, w, o, i, z, ow); }
extern "C" void accumulate_weighted_double(unsigned g, unsigned b, const double* f, const double* w, double* o,
                                           const int* i, double z, int ow) { launch_accumulate<double>(g, b, f, w, o, i, z, ow); }
extern "C" void blur_masked_taps_float(unsigned g, unsigned b, const float* x, const float* w, const int* s,
                                       const int* f, const float* v, float* o, const int* i, float z) {
    launch_taps<float>(g, b, x, w, s, f, v, o, i, z);
}
extern "C" void blur_masked_taps_double(unsigned g, unsigned b, const double* x, const double* w, const int* s,
                                        const int* f, const double* v, double* o, const int* i, double z) {
    launch_taps<double>(g, b, x, w, s, f, v, o, i, z);
}
"""

BACKEND_MODULE = "fastblur.backends.cupy_backend"
#: Per kernel: the dtype of each array argument (``"T"``: the instantiation's), the
#: number of int32 arguments after them, and whether an int32 ``overwrite`` flag ends
#: the arguments (after the ``T`` zero weight).
SIGNATURES = {
    "accumulate_weighted": (("T", "T", "T"), 11, True),
    "blur_masked_taps": (("T", "T", "int32", "int32", "T", "T"), 8, False),
}


class HostKernel:
    """A kernel of the backend's CUDA source compiled for the host, called as a CuPy
    RawKernel is: ``kernel(grid, block, args)``; checks every argument's type."""

    def __init__(self, library, name, dtype):
        self.dtype = np.dtype(dtype)
        self.arrays, self.ints, self.flag = SIGNATURES[name]
        real = ctypes.c_float if self.dtype == np.float32 else ctypes.c_double
        self.function = getattr(library, f"{name}_{'float' if self.dtype == np.float32 else 'double'}")
        pointer = ctypes.c_void_p
        self.function.argtypes = ([ctypes.c_uint, ctypes.c_uint] + [pointer] * (len(self.arrays) + 1) + [real]
                                  + [ctypes.c_int] * self.flag)
        self.function.restype = None

    def __call__(self, grid, block, args):
        arrays, rest = args[: len(self.arrays)], args[len(self.arrays):]
        for array, kind in zip(arrays, self.arrays):
            assert array.dtype == (self.dtype if kind == "T" else np.dtype(kind)) and array.flags.c_contiguous
        ints, zero_weight, flag = rest[: self.ints], rest[self.ints], rest[self.ints + 1:]
        assert all(type(value) is np.int32 for value in ints) and len(flag) == self.flag
        assert type(zero_weight) is self.dtype.type and all(type(value) is np.int32 for value in flag)
        ints = np.array([int(value) for value in ints], np.int32)
        STATE.launches.append((STATE.device, STATE.stream.ptr, STATE.allocators[-1] is not None))
        self.function(int(grid[0]), int(block[0]), *(array.ctypes.data for array in arrays), ints.ctypes.data,
                      zero_weight, *(int(value) for value in flag))


def compiler():
    """The host C++ compiler, or None."""
    return shutil.which("c++") or shutil.which("g++")


def build_host_kernels(folder):
    """The backend's CUDA source (``_CUDA_SOURCE``), read from its file (importing it
    needs CuPy), built for the host into ``folder``; the loaded library."""
    import fastblur.backends

    path = Path(fastblur.backends.__file__).parent / "cupy_backend.py"
    tree = ast.parse(path.read_text())
    source = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "_CUDA_SOURCE")
    harness = Path(folder) / "accumulate.cpp"
    harness.write_text(HOST_HARNESS % {"source": source})
    library = Path(folder) / "accumulate.so"
    subprocess.run([compiler(), "-std=c++14", "-O1", "-shared", "-fPIC", str(harness), "-o", str(library)],
                   check=True, capture_output=True)
    return ctypes.CDLL(str(library))


class RawModule:
    library = None

    def __init__(self, code, options=(), name_expressions=()):
        assert all(name in code for name in SIGNATURES)
        self.code = code
        self.names = list(name_expressions)

    def get_function(self, name):
        assert name in self.names
        kernel, dtype = name[:-1].split("<")
        return HostKernel(RawModule.library, kernel, {"float": np.float32, "double": np.float64}[dtype])


def _holds_host_array(value):
    if type(value) is np.ndarray:
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_host_array(item) for item in value)
    return False


def _as_plain(value):
    if isinstance(value, DeviceArray):
        return value.view(np.ndarray)
    if isinstance(value, (list, tuple)):
        return type(value)(_as_plain(item) for item in value)
    return value


class DeviceArray(np.ndarray):
    """NumPy memory posing as a CuPy array (``get_array_module`` reads the type's module).

    As with CuPy, mixing it with a NumPy array in a ufunc or a NumPy function raises
    TypeError (scalars are fine), so host/device mix-ups fail here as on a GPU.
    """

    def get(self):
        return np.asarray(self).copy()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        outputs = kwargs.get("out", ())
        if _holds_host_array(inputs) or _holds_host_array(outputs):
            raise TypeError(f"{ufunc.__name__}.{method} mixes a device array with a NumPy array: "
                            f"{[type(x).__name__ for x in inputs]}")
        if outputs:
            kwargs["out"] = _as_plain(outputs)
        result = getattr(ufunc, method)(*_as_plain(inputs), **kwargs)
        if outputs:
            return outputs[0] if len(outputs) == 1 else outputs
        if isinstance(result, tuple):
            return tuple(on_device(r) for r in result)
        return on_device(result)

    def __array_function__(self, function, types, args, kwargs):
        if _holds_host_array(args) or _holds_host_array(tuple(kwargs.values())):
            raise TypeError(f"numpy.{function.__name__} mixes a device array with a NumPy array")
        return super().__array_function__(function, types, args, kwargs)


DeviceArray.__module__ = "cupy"


#: ``cupy.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10``.
PHILOX = 161


class RandomState:
    """``cupy.random.RandomState``: NumPy's generator, results on the device."""

    def __init__(self, seed, method=None):
        assert method in (None, PHILOX)
        self.method = method
        self.seed(seed)

    def seed(self, seed):
        """As CuPy: an integer in ``[0, 2**64)``."""
        if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
            raise ValueError("Seed must be an integer between 0 and 2**64 - 1")
        self.states = np.random.RandomState([int(seed) & 0xFFFFFFFF, int(seed) >> 32])

    def __getattr__(self, name):
        method = getattr(self.states, name)

        def draw(*args, dtype=None, **kwargs):  # CuPy's draws take a dtype
            values = method(*_as_plain(args), **kwargs)
            return on_device(values if dtype is None else np.asarray(values).astype(dtype))

        return draw


def on_device(value):
    return value.view(DeviceArray) if type(value) is np.ndarray else value


def device_function(function):
    def run(*args, **kwargs):
        return on_device(function(*args, **kwargs))

    return run


def device_module(name, source, calls):
    """A module whose attributes are ``source``'s returning device arrays; the names
    looked up are appended to ``calls``."""

    def attribute(name):
        if name.startswith("__"):  # module metadata (__file__, __path__, ...) is not an array function
            raise AttributeError(name)
        calls.append(name)
        return device_function(getattr(source, name))

    module = types.ModuleType(name)
    module.__getattr__ = attribute
    return module


class CudaState:
    """The current device and stream stacks, as CuPy keeps them per thread."""

    def __init__(self):
        self.devices = [0]
        self.streams = [NULL_STREAM]
        self.allocators = [None]
        self.handovers = []  # (device, stream pointer) of each from_dlpack call
        self.launches = []  # (device, stream pointer, custom allocator in use) of each launch
        self.events = []  # ("record" | "wait", device, stream pointer, event) in order

    @property
    def device(self):
        return self.devices[-1]

    @property
    def stream(self):
        return self.streams[-1]


class Device:
    def __init__(self, index=None):
        self.id = STATE.device if index is None else int(index)

    def __enter__(self):
        STATE.devices.append(self.id)
        return self

    def __exit__(self, *exc):
        STATE.devices.pop()
        return False


class Stream:
    """``cupy.cuda.Stream`` views of streams it does not own (``from_external``); as in
    CuPy, entering one made for another device than the current one raises."""

    def __init__(self, ptr, device_id):
        self.ptr, self.device_id = ptr, device_id

    @classmethod
    def from_external(cls, handle):
        version, ptr = handle.__cuda_stream__()
        assert version == 0 and isinstance(ptr, int)
        return cls(ptr, STATE.device)

    def __enter__(self):
        if self.device_id != STATE.device:
            raise RuntimeError(f"The device that the stream is created on ({self.device_id}) "
                               f"does not match with the current device ({STATE.device})")
        STATE.streams.append(self)
        return self

    def __exit__(self, *exc):
        STATE.streams.pop()
        return False

    def synchronize(self):
        pass

    def wait_event(self, event):
        """As CuPy: later work on this stream waits for ``event`` (no host sync)."""
        STATE.events.append(("wait", STATE.device, self.ptr, event))


class Event:
    """``cupy.cuda.Event``, made on the current device: ``record`` logs the stream."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.device = STATE.device

    def record(self, stream=None):
        stream = STATE.stream if stream is None else stream
        if self.device != STATE.device:
            raise RuntimeError(f"event of device {self.device} recorded on device {STATE.device}")
        STATE.events.append(("record", STATE.device, stream.ptr, self))


NULL_STREAM = Stream(0, -1)
STATE = CudaState()


class using_allocator:
    def __init__(self, allocator):
        self.allocator = allocator

    def __enter__(self):
        STATE.allocators.append(self.allocator)

    def __exit__(self, *exc):
        STATE.allocators.pop()
        return False


def from_dlpack(value):
    """A CPU tensor (posing as a CUDA one) or array as a device array sharing its memory."""
    STATE.handovers.append((STATE.device, STATE.stream.ptr))
    array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    return array.view(DeviceArray)


def transform(function):
    """``cupyx.scipy.fft``'s 2-D transform over the last two axes; with ``overwrite_x``
    the input is left as garbage (NaN), as cuFFT's C2R transforms may leave it."""

    def run(x, s=None, axes=(-2, -1), norm=None, overwrite_x=False):
        result = function(np.asarray(x), s=s, axes=axes, norm=norm)
        if overwrite_x:
            x[...] = np.nan
        return result

    return run


def install(monkeypatch, library):
    """Put the stand-in ``cupy``, ``cupyx.scipy.fft`` and ``cupyx.scipy.ndimage`` in
    ``sys.modules`` (undone by ``monkeypatch``); the list of names looked up in them."""
    from scipy import ndimage

    global STATE
    STATE = CudaState()
    RawModule.library = library
    calls = STATE.lookups = []
    cupy = device_module("cupy", np, calls)
    cupy.random = types.SimpleNamespace(RandomState=RandomState)
    cupy.RawModule = RawModule
    cupy.from_dlpack = from_dlpack
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 2, getDevice=lambda: STATE.device)
    cupy.cuda = types.SimpleNamespace(Device=Device, Stream=Stream, Event=Event, runtime=runtime,
                                      using_allocator=using_allocator, get_current_stream=lambda: STATE.stream,
                                      curand=types.SimpleNamespace(CURAND_RNG_PSEUDO_PHILOX4_32_10=PHILOX))
    fft = types.ModuleType("cupyx.scipy.fft")
    fft.rfft2 = device_function(transform(scipy.fft.rfft2))
    fft.irfft2 = device_function(transform(scipy.fft.irfft2))
    fft.next_fast_len = lambda n, real=False: scipy.fft.next_fast_len(n, real=real)
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    cupyx.scipy, cupyx_scipy.fft = cupyx_scipy, fft
    cupyx_scipy.ndimage = device_module("cupyx.scipy.ndimage", ndimage, calls)
    modules = {"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy, "cupyx.scipy.fft": fft,
               "cupyx.scipy.ndimage": cupyx_scipy.ndimage}
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def reload_backend():
    """Make the registry load the ``cupy`` backend again (against whatever ``cupy`` is now)."""
    from fastblur.backends import _MODULES, register_backend

    import fastblur.backends

    sys.modules.pop(BACKEND_MODULE, None)
    if "cupy_backend" in vars(fastblur.backends):  # the submodule attribute an import leaves
        delattr(fastblur.backends, "cupy_backend")
    register_backend("cupy", _MODULES["cupy"])
