"""FASTBLUR_NUM_THREADS caps the CPU backends; forked children run on one thread."""
import os

import pytest

from fastblur._threads import num_threads


def test_environment_caps_threads(monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "3")
    assert num_threads() == 3
    monkeypatch.delenv("FASTBLUR_NUM_THREADS")
    assert num_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_values_are_named(monkeypatch, value):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", value)
    with pytest.raises(ValueError, match="FASTBLUR_NUM_THREADS must be a positive integer"):
        num_threads()


def test_forked_child_uses_one_thread(monkeypatch):
    monkeypatch.setenv("FASTBLUR_NUM_THREADS", "4")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, str(num_threads()).encode())
        os._exit(0)
    os.close(write)
    assert os.read(read, 16) == b"1"
    os.waitpid(pid, 0)
    assert num_threads() == 4
