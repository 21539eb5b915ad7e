"""Atomic file writes: a finished file or none, never a partial one."""
import os
import re
import secrets

#: Names of the temporary files :func:`write_atomic` leaves behind if the process dies.
TEMPORARY_NAME = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")


def write_atomic(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file and :func:`os.replace`.

    The temporary file ``.NAME.PID.TOKEN.tmp`` sits in the same folder (so the rename is
    atomic) and is created with mode ``0o666`` minus the umask, like any new file; it is
    removed if writing fails or is interrupted.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    temp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    handle = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def remove_temporaries(folder):
    """Delete the temporary files that interrupted writes left anywhere under ``folder``.

    Only names :func:`write_atomic` makes (:data:`TEMPORARY_NAME`); a finished file is
    never one of them.
    """
    for directory, _, files in os.walk(folder):
        for name in files:
            if TEMPORARY_NAME.match(name):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    pass
