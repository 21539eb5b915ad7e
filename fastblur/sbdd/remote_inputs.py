"""Inputs on an object store, staged where pairs are made (:func:`fastblur.sbdd.dataset.find_sources` lists them).

The pair code reads local files, so each process making pairs keeps a private folder of
copies: the kernels and a COCO annotation file once, a sharp image and its mask file when
a chunk needs them (dropped again, least recently used first, past a bound).
"""
import atexit
import contextlib
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import replace

from .storage import RemoteStorage, fetch_tree, is_remote, join, open_storage

__all__ = ["remote_fields", "check_remote_inputs", "InputStager"]

#: Settings that may name remote files.
REMOTE_FIELDS = ("input", "masks_path", "kernels", "kernels_root")


def remote_fields(config):
    """The settings of ``config`` that are remote URLs."""
    return [name for name in REMOTE_FIELDS if is_remote(getattr(config, name))]


def check_remote_inputs(config, storage_options):
    """Reach every remote input: a clear ``ValueError`` naming the URL if one cannot be read."""
    for name in remote_fields(config):
        open_storage(getattr(config, name), storage_options).check_input(name)


class InputStager:
    """Local copies of a run's remote inputs, for one process.

    ``config`` names local copies of the kernels and masks; :meth:`stage` copies the images
    (and mask files) of the pairs about to be made and points ``sources`` (a list the
    :class:`~fastblur.sbdd.dataset.PairMaker` holds) at them.
    """

    def __init__(self, config, sources, storage_options=None, keep=32):
        self.remote = set(remote_fields(config))
        self.options = storage_options
        self.urls, self.sources = list(sources), list(sources)
        self.keep = keep
        self.staged = OrderedDict()
        self.mapped = []  # (local copy, URL) of the kernels
        self.folder = tempfile.mkdtemp(prefix="fastblur-inputs-")
        atexit.register(shutil.rmtree, self.folder, True)
        self.masks_url, self.masks = config.masks_path, config.masks
        self.config = self._localize(config)

    def _url(self, name):
        for local, url in self.mapped:
            if name == local or name.startswith(local + os.sep):
                return url + name[len(local):].replace(os.sep, "/")
        return name

    def restore(self, record):
        """``record`` with the kernel files named by their URLs, not by this process's copies
        (so that records do not depend on where the pair was made)."""
        record["kernels"] = [self._url(name) for name in record.get("kernels", [])]
        return record

    def close(self):
        """Delete the local copies."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _localize(self, config):
        changes = {}
        for name in (name for name in ("kernels", "kernels_root") if name in self.remote):
            url, file = getattr(config, name).rstrip("/"), None
            target = os.path.join(self.folder, name)
            os.makedirs(target, exist_ok=True)
            store = RemoteStorage(url, self.options)
            if name == "kernels" and config.kernels_root is None and store.fs.isfile(store.root):
                url, file = url.rsplit("/", 1)  # a list file's entries are relative to its folder: copy the folder
            local = fetch_tree(url, target, self.options)
            self.mapped.append((local, url))
            changes[name] = local if file is None else os.path.join(local, file)
        if "masks_path" in self.remote:
            target = os.path.join(self.folder, "masks")
            os.makedirs(target, exist_ok=True)
            coco = config.masks == "coco"
            changes["masks_path"] = fetch_tree(config.masks_path, target, self.options) if coco else target
        return replace(config, **changes)

    def stage(self, source_indices):
        """Copy the images (and mask files) of ``source_indices`` here if remote."""
        if not self.remote & {"input", "masks_path"}:
            return
        wanted = range(len(self.urls)) if self.config.random_masks else sorted(set(source_indices))
        for index in wanted:
            if index in self.staged:
                self.staged.move_to_end(index)
                continue
            source, copies = self.urls[index], []
            if "input" in self.remote:
                local = os.path.join(self.folder, "images", f"{index}_{source.path.rsplit('/', 1)[-1]}")
                copies.append((source.path, local))
                self.sources[index] = replace(source, path=local)
            if "masks_path" in self.remote and self.masks in ("detectron2", "labels"):
                file = source.name + (".npz" if self.masks == "detectron2" else ".png")
                copies.append((join(self.masks_url, file), os.path.join(self.config.masks_path, file)))
            self.staged[index] = []
            for url, local in copies:
                os.makedirs(os.path.dirname(local), exist_ok=True)
                with contextlib.suppress(FileNotFoundError):  # reported by the pair: an unreadable image, no mask file
                    store = RemoteStorage(url, self.options)
                    store.fs.get_file(store.root, local)
                    self.staged[index].append(local)
        while len(self.staged) > max(self.keep, len(wanted)):
            index, files = self.staged.popitem(last=False)
            for file in files:
                with contextlib.suppress(OSError):
                    os.unlink(file)
            self.sources[index] = self.urls[index]
