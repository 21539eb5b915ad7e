"""fastblur's per-machine cache directory (FFTW wisdom, cost-model calibration).

``FASTBLUR_CACHE_DIR`` chooses the directory; ``none`` (or ``0``, ``off``, empty)
disables every on-disk cache. By default it is ``$XDG_CACHE_HOME/fastblur`` or
``~/.cache/fastblur``. Files are written atomically; a directory that cannot be
created or written is not an error: callers fall back to what needs no cache.
"""
import hashlib
import os
import platform
from pathlib import Path

from .._atomic import write_atomic

ENV_VAR = "FASTBLUR_CACHE_DIR"
_DISABLED = {"", "0", "none", "off", "false", "no"}


def cache_dir():
    """The cache directory, or None when caching on disk is disabled.

    Returns
    -------
    pathlib.Path or None
    """
    value = os.environ.get(ENV_VAR)
    if value is not None:
        if value.strip().lower() in _DISABLED:
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fastblur"


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith(("model name", "cpu model", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def machine_tag():
    """A short tag of this CPU (architecture, model, core count) for cache file names.

    Returns
    -------
    str
    """
    description = f"{platform.machine()}|{_cpu_model()}|{os.cpu_count()}"
    return hashlib.sha1(description.encode()).hexdigest()[:12]


def read_text(name):
    """Contents of the cache file ``name``, or None (disabled, missing, unreadable)."""
    directory = cache_dir()
    if directory is None:
        return None
    try:
        return (directory / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_text(name, text):
    """Atomically replace the cache file ``name`` with ``text``.

    Returns
    -------
    bool
        False when caching is disabled or the directory is not writable.
    """
    directory = cache_dir()
    if directory is None:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / name, text.encode("utf-8"))
    except OSError:
        return False
    return True


def is_writable():
    """Whether a cache file could be written now (the directory exists or can be made)."""
    directory = cache_dir()
    if directory is None:
        return False
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)
