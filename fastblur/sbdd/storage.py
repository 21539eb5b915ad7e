"""Where a run's files live: a local folder or an fsspec URL (``s3://``, ``gs://``, ...).

:class:`LocalStorage` writes each file atomically (:func:`fastblur._atomic.write_atomic`;
``file://`` URLs are local paths); :class:`RemoteStorage` writes each object with one put,
so no partial object is ever visible. Credentials: fsspec's configuration plus
``storage_options`` (docs/guide/cluster.rst).
"""
import contextlib
import os
import secrets
import tempfile
from dataclasses import replace

from .._atomic import remove_temporaries, write_atomic

__all__ = ["LocalStorage", "RemoteStorage", "is_remote", "open_storage", "local_path", "join"]


def _protocol(path):
    path = os.fspath(path)
    return path.split("://", 1)[0].lower() if "://" in path else None


def is_remote(path):
    """Whether ``path`` is a URL that is not a local file (``s3://``, ``gs://``, ``memory://``...)."""
    return path is not None and _protocol(path) not in (None, "file", "local")


def local_path(path):
    """A local path for ``path`` (``file://`` stripped)."""
    path = os.fspath(path)
    return path.split("://", 1)[1] if _protocol(path) in ("file", "local") else path


def join(base, *parts):
    """``base/part/...`` for a URL or a local path."""
    if is_remote(base):
        return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts if p])
    return os.path.join(local_path(base), *parts)


def local_paths(config):
    """``config`` with its ``file://`` URLs made plain paths (the local behaviour)."""
    changes = {name: local_path(getattr(config, name)) for name in ("out", "input", "masks_path", "kernels",
                                                                     "kernels_root", "preview")
               if isinstance(getattr(config, name), str) and _protocol(getattr(config, name)) in ("file", "local")}
    return replace(config, **changes) if changes else config


class LocalStorage:
    """A local folder (today's behaviour). Relative names use ``/``."""

    remote = False

    def __init__(self, root):
        self.url = self.root = local_path(root)

    def path(self, name):
        return os.path.join(self.root, *name.split("/"))

    def check_output(self):
        """Refuse an ``out`` that exists and is not a folder; create the folder."""
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise ValueError(f"out {self.url!r} exists and is not a folder; pass a folder (--out)")
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as error:
            raise ValueError(f"cannot create the out folder {self.url!r}: {error}") from error

    def write(self, name, data):
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, data)

    def temporary_file(self, name):
        """A new local file beside ``name``'s target, to fill and then :meth:`commit`; named like
        :func:`write_atomic`'s temporaries, so that :meth:`clean` removes what a crash leaves."""
        folder, base = os.path.split(self.path(name))
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")

    def commit(self, temporary, name):
        os.replace(temporary, self.path(name))

    def read(self, name):
        with open(self.path(name), "rb") as stream:
            return stream.read()

    def sizes(self, folder=""):
        """``{name: size}`` of the files under ``folder`` (names relative to the root)."""
        found = {}
        for directory, _, files in os.walk(self.path(folder)):
            for file in files:
                full = os.path.join(directory, file)
                name = os.path.relpath(full, self.root).replace(os.sep, "/")
                with contextlib.suppress(OSError):
                    found[name] = os.path.getsize(full)
        return found

    def clean(self):
        """Remove the temporaries interrupted writes left behind."""
        remove_temporaries(self.root)


class RemoteStorage:
    """A prefix on an fsspec filesystem; every object is written by one put."""

    remote = True

    def __init__(self, url, storage_options=None):
        import fsspec

        self.url = url.rstrip("/")
        self.options = dict(storage_options or {})
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.options)
        except (ValueError, ImportError, TypeError) as error:
            raise ValueError(f"cannot open {url!r}: {error}") from error
        self.root = self.root.rstrip("/")

    def __reduce__(self):  # filesystems are rebuilt where the object lands (a worker)
        return RemoteStorage, (self.url, self.options)

    def path(self, name):
        return f"{self.root}/{name}" if name else self.root

    def _reach(self, path, what, missing):
        """Check that ``path`` exists: ``ValueError(missing)`` if not, one naming ``what`` if the store
        cannot be reached. ``info``, not ``exists``: exists answers False for missing credentials too."""
        try:
            self.fs.invalidate_cache()
            self.fs.info(path)
        except FileNotFoundError:
            raise ValueError(missing) from None
        except Exception as error:  # credentials, endpoint, permissions: botocore's own types
            raise ValueError(f"cannot reach {what} {self.url!r}: {type(error).__name__}: {error}") from error

    def check_output(self):
        """Reach the store (bucket, credentials) and refuse an ``out`` that is an object."""
        bucket = self.root.split("/", 1)[0]
        self._reach(bucket, "out", f"out {self.url!r}: the bucket {bucket!r} does not exist")
        if self.root != bucket and self.fs.isfile(self.root):  # isfile answers False on any error
            raise ValueError(f"out {self.url!r} exists and is an object, not a prefix; pass a prefix (--out)")

    def check_input(self, what):
        """Reach the store and check that ``url`` exists (an input)."""
        self._reach(self.root, what, f"{what} {self.url!r} does not exist")

    def write(self, name, data):
        self.fs.pipe_file(self.path(name), data)

    def temporary_file(self, name):
        handle, path = tempfile.mkstemp(prefix="fastblur-", suffix="-" + name.rsplit("/", 1)[-1])
        os.close(handle)
        return path

    def commit(self, temporary, name):
        try:
            self.fs.put_file(temporary, self.path(name))
        finally:
            os.unlink(temporary)

    def read(self, name):
        return self.fs.cat_file(self.path(name))

    def sizes(self, folder=""):
        self.fs.invalidate_cache()
        try:
            listing = self.fs.find(self.path(folder), detail=True)
        except FileNotFoundError:
            return {}
        prefix = self.root + "/"
        return {name[len(prefix):]: info.get("size") or 0 for name, info in listing.items()
                if name.startswith(prefix) and info.get("type", "file") == "file"}

    def remove(self, name):
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(name))

    def clean(self):
        pass  # single puts leave nothing behind


def open_storage(url, storage_options=None):
    """:class:`LocalStorage` for a path or ``file://`` URL, else :class:`RemoteStorage`."""
    return RemoteStorage(url, storage_options) if is_remote(url) else LocalStorage(url)


def fetch_tree(url, target, storage_options=None):
    """Copy everything under the prefix (or the single object) ``url`` into the folder ``target``;
    returns the local path standing for ``url``: ``target`` itself, or the file in it."""
    store = RemoteStorage(url, storage_options)
    single = store.fs.isfile(store.root)
    top = store.root.rsplit("/", 1)[0] if single else store.root
    for name in [store.root] if single else store.fs.find(store.root):
        local = os.path.join(target, *name[len(top) + 1:].split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        store.fs.get_file(name, local)
    return local if single else target
