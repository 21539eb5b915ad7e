"""The ``webdataset`` output layout: pairs packed into tar shards.

Shard ``k`` (``OUT/shards/shard-KKKKKK.tar``) holds pairs ``[k N, (k + 1) N)``
(``N = shard_size``) in index order, each as ``KEY.blurry.png``, ``KEY.sharp.png`` (the
folder layout's bytes; ``.jpg`` with format jpg) and ``KEY.json`` (its record); ``KEY`` is
the pair's name with dots replaced by ``_``. Tar headers are normalised (mtime 0, uid/gid
0, no owner names, mode 0644), so a shard's bytes depend only on its pairs.
"""
import io
import json
import tarfile

__all__ = ["shard_name", "shard_range", "write_shard"]


def shard_name(shard):
    """The shard's name relative to ``out``."""
    return f"shards/shard-{shard:06d}.tar"


def shard_range(shard, shard_size, total):
    """The pair indices of ``shard`` in a run of ``total`` pairs."""
    return range(shard * shard_size, min((shard + 1) * shard_size, total))


def write_shard(path, pairs):
    """Write the tar of ``pairs`` (``(record, blurry bytes, sharp bytes)`` in index order) to
    the local file ``path`` (str); each ``record``'s ``blurry`` and ``sharp`` become member names."""
    with open(path, "wb") as stream, tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for record, blurry, sharp in pairs:
            key = record["name"].replace(".", "_")
            ext = record["blurry"].rsplit(".", 1)[-1]
            record["blurry"], record["sharp"] = f"{key}.blurry.{ext}", f"{key}.sharp.{ext}"
            meta = json.dumps(record, sort_keys=True).encode("utf-8")
            for name, data in ((record["blurry"], blurry), (record["sharp"], sharp), (f"{key}.json", meta)):
                info = tarfile.TarInfo(name)  # mtime 0, uid/gid 0, no owner names, mode 0644: the defaults
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
