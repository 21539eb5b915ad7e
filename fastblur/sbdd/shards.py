"""The ``webdataset`` output layout: pairs packed into tar shards.

Shard ``k`` (``OUT/shards/shard-KKKKKK.tar``) holds pairs ``[k N, (k + 1) N)`` of the run
(``N`` = ``shard_size``), in index order; each pair is three members::

    KEY.blurry.png   the blurry image (``.jpg`` with format jpg), the folder layout's bytes
    KEY.sharp.png    the sharp target
    KEY.json         the pair's manifest record

``KEY`` is the pair's name with dots replaced by ``_`` (webdataset splits a member name
at its first dot). Tar headers are normalised (mtime 0, uid/gid 0, empty owner names,
mode 0644, members in the order above), so a shard's bytes depend only on its pairs.
A shard is streamed to a temporary file and published whole: atomically renamed on a
local disk, one put on an object store.
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


def _info(name, size):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_shard(path, pairs):
    """Write the tar of ``pairs`` to the local file ``path``.

    Parameters
    ----------
    path : str
    pairs : iterable of (record, blurry bytes, sharp bytes)
        In index order; ``record`` gets ``shard``, ``blurry`` and ``sharp`` (member names)
        set here.
    """
    with open(path, "wb") as stream, tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for record, blurry, sharp in pairs:
            key = record["name"].replace(".", "_")
            ext = record["blurry"].rsplit(".", 1)[-1]
            record["blurry"], record["sharp"] = f"{key}.blurry.{ext}", f"{key}.sharp.{ext}"
            meta = json.dumps(record, sort_keys=True).encode("utf-8")
            for name, data in ((record["blurry"], blurry), (record["sharp"], sharp), (f"{key}.json", meta)):
                tar.addfile(_info(name, len(data)), io.BytesIO(data))
