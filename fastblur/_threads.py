"""How many threads the CPU backends may use (``FASTBLUR_NUM_THREADS``)."""
import os

ENV_VAR = "FASTBLUR_NUM_THREADS"


def num_threads() -> int:
    """Threads a CPU backend may use: ``FASTBLUR_NUM_THREADS`` if set, else all cores.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If ``FASTBLUR_NUM_THREADS`` is set to something other than a positive integer.
    """
    cores = os.cpu_count() or 1
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return cores
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{ENV_VAR} must be a positive integer, got {value!r}")
    return threads
