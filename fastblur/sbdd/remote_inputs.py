"""Inputs on an object store: listing remote sharp images, staging files where pairs are made.

The pair code reads local files, so each process making pairs keeps a private folder of
copies: the kernels and a COCO annotation file once, a sharp image and its mask file when
a chunk needs them (dropped again, least recently used first, past a bound).
"""
import atexit
import os
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import replace

from .storage import fetch, fetch_tree, is_remote, join, open_storage

__all__ = ["remote_fields", "check_remote_inputs", "find_remote_sources", "InputStager"]

#: Settings that may name remote files.
REMOTE_FIELDS = ("input", "masks_path", "kernels", "kernels_root")


def remote_fields(config):
    """The settings of ``config`` that are remote URLs."""
    return [name for name in REMOTE_FIELDS if is_remote(getattr(config, name))]


def check_remote_inputs(config, storage_options):
    """Reach every remote input: a clear ``ValueError`` naming the URL if one cannot be read."""
    for name in remote_fields(config):
        open_storage(getattr(config, name), storage_options).check_input(name)


def find_remote_sources(config, storage_options):
    """The sharp images under the prefix ``config.input``, named as for a local folder."""
    from .dataset import _is_image, sources_from

    storage = open_storage(config.input, storage_options)
    return sources_from(config, sorted(name for name in storage.sizes() if _is_image(name.rsplit("/", 1)[-1])
                                       and not any(part.startswith(".") for part in name.split("/"))), join)


def _is_file(url, storage_options):
    import fsspec

    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs.isfile(path)


class InputStager:
    """Local copies of a run's remote inputs, for one process.

    ``config`` (:meth:`local_config`) names local copies of the kernels and masks;
    :meth:`stage` copies the images (and mask files) of the pairs about to be made and
    points ``sources`` (a list the :class:`~fastblur.sbdd.dataset.PairMaker` holds) at them.
    """

    def __init__(self, config, sources, storage_options=None, keep=32):
        self.remote = set(remote_fields(config))
        self.options = storage_options
        self.urls = list(sources)
        self.sources = list(sources)
        self.keep = keep
        self.staged = OrderedDict()
        self.mapped = []  # (local copy, URL) of the kernels
        self.folder = tempfile.mkdtemp(prefix="fastblur-inputs-")
        atexit.register(shutil.rmtree, self.folder, True)
        self.config = self._localize(config)

    def restore(self, record):
        """``record`` with the kernel files named by their URLs, not by this process's copies
        (so that records do not depend on where the pair was made)."""
        kernels = []
        for name in record.get("kernels", []):
            for local, url in self.mapped:
                if name == local or name.startswith(local + os.sep):
                    name = url + name[len(local):].replace(os.sep, "/")
                    break
            kernels.append(name)
        record["kernels"] = kernels
        return record

    def close(self):
        """Delete the local copies."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _localize(self, config):
        changes = {}
        for name in ("kernels", "kernels_root"):
            if name in self.remote:
                target = os.path.join(self.folder, name)
                os.makedirs(target, exist_ok=True)
                url = getattr(config, name)
                if name == "kernels" and config.kernels_root is None and _is_file(url, self.options):
                    # a list file's entries are relative to its folder: copy the folder
                    folder, file = url.rstrip("/").rsplit("/", 1)
                    fetch_tree(folder, target, self.options)
                    changes[name] = os.path.join(target, file)
                    self.mapped.append((target, folder))
                else:
                    changes[name] = fetch_tree(url, target, self.options)
                    self.mapped.append((changes[name], url.rstrip("/")))
        if "masks_path" in self.remote:
            target = os.path.join(self.folder, "masks")
            os.makedirs(target, exist_ok=True)
            if config.masks == "coco":
                changes["masks_path"] = fetch_tree(config.masks_path, target, self.options)
            else:
                changes["masks_path"] = target
        self.masks_url = config.masks_path
        self.masks = config.masks
        return replace(config, **changes)

    def _mask_file(self, source):
        if "masks_path" not in self.remote or self.masks not in ("detectron2", "labels"):
            return None
        ext = ".npz" if self.masks == "detectron2" else ".png"
        return join(self.masks_url, source.name + ext), os.path.join(self.config.masks_path, source.name + ext)

    def stage(self, source_indices):
        """Copy the images (and mask files) of ``source_indices`` here if remote."""
        if not self.remote & {"input", "masks_path"}:
            return
        wanted = range(len(self.urls)) if self.config.random_masks else sorted(set(source_indices))
        for index in wanted:
            if index in self.staged:
                self.staged.move_to_end(index)
                continue
            source = self.urls[index]
            files = []
            if "input" in self.remote:
                local = os.path.join(self.folder, "images", f"{index}_{source.path.rsplit('/', 1)[-1]}")
                os.makedirs(os.path.dirname(local), exist_ok=True)
                try:
                    fetch(source.path, local, self.options)
                except FileNotFoundError:
                    pass  # reported by the pair as an unreadable image
                self.sources[index] = replace(source, path=local)
                files.append(local)
            mask = self._mask_file(source)
            if mask is not None:
                try:
                    fetch(mask[0], mask[1], self.options)
                    files.append(mask[1])
                except FileNotFoundError:
                    pass  # reported by the pair as a missing mask file
            self.staged[index] = files
        limit = max(self.keep, len(wanted))
        while len(self.staged) > limit:
            index, files = self.staged.popitem(last=False)
            for file in files:
                try:
                    os.unlink(file)
                except OSError:
                    pass
            self.sources[index] = self.urls[index]
