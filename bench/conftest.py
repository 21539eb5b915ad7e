import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Benchmarks run on one thread unless FASTBLUR_NUM_THREADS is set."""
    os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
    try:
        import cv2

        cv2.setNumThreads(int(os.environ["FASTBLUR_NUM_THREADS"]))
    except ImportError:
        pass
    yield
