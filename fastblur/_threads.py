"""How many threads the CPU backends may use (``FASTBLUR_NUM_THREADS``)."""
import os

from ._validation import check_count_text

ENV_VAR = "FASTBLUR_NUM_THREADS"

_in_forked_child = False


def _mark_forked_child():
    global _in_forked_child
    _in_forked_child = True


# An OpenMP runtime used before fork() deadlocks when the child starts threads again
# (DataLoader workers, multiprocessing "fork"): forked children compute on one thread,
# as PyTorch's do. Spawned processes are not affected.
os.register_at_fork(after_in_child=_mark_forked_child)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
    cores = available_cores()
    value = os.environ.get(ENV_VAR, "").strip()
    if not value:
        return cores
    return check_count_text(value, ENV_VAR, low=1)
