"""The ``numpy`` backend: overlap-save tiles transformed with :mod:`scipy.fft`."""
import scipy.fft

from .._threads import num_threads
from .base import Backend
from .tiled_fft import TiledFFT


class ScipyFFTEngine:
    """FFT engine over :mod:`scipy.fft` (pocketfft); float32 stays float32."""

    @staticmethod
    def fast_len(n):
        return scipy.fft.next_fast_len(int(n), real=True)

    @staticmethod
    def rfft2(blocks, shape):
        return scipy.fft.rfft2(blocks, s=shape, axes=(-2, -1), workers=1)

    @staticmethod
    def irfft2(spectra, shape):
        return scipy.fft.irfft2(spectra, s=shape, axes=(-2, -1), workers=1)


class NumpyBackend(TiledFFT, Backend):
    """Tiled overlap-save FFT convolution with scipy.fft, tiles spread over threads."""

    name = "numpy"

    def __init__(self):
        TiledFFT.__init__(self, ScipyFFTEngine(), num_threads)


BACKEND = NumpyBackend()
