"""How many threads the CPU backends may use (``FASTBLUR_NUM_THREADS``)."""
import os

ENV_VAR = "FASTBLUR_NUM_THREADS"

_in_forked_child = False


def _mark_forked_child():
    global _in_forked_child
    _in_forked_child = True


# An OpenMP runtime used before fork() deadlocks when the child starts threads again
# (DataLoader workers, multiprocessing "fork"): forked children compute on one thread,
# as PyTorch's do. Spawned processes are not affected.
os.register_at_fork(after_in_child=_mark_forked_child)


def num_threads() -> int:
    """Threads a CPU backend may use: ``FASTBLUR_NUM_THREADS`` if set, else all cores.

    Always 1 in a process forked from one that imported fastblur (see above).

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If ``FASTBLUR_NUM_THREADS`` is set to something other than a positive integer.
    """
    if _in_forked_child:
        return 1
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
