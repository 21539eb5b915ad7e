"""The run behind :func:`fastblur.sbdd.generate`: pairs made in chunks, on a Dask cluster,
a local process pool or in this process; outputs on a local disk or an object store.

A **chunk** is consecutive pair indices (with ``layout="webdataset"``, the pairs of one
shard). :func:`run_chunk` is a pure function of (settings, indices): it makes the pairs,
writes them (atomically on a local disk, one put each on an object store) and returns
their manifest records. A pair's bytes depend only on ``(seed, index)``, so any cluster
size and chunking give the same bytes, and a chunk run twice writes the same files.

The manifest: with a local ``out`` the driver appends each returned record to
``manifest.jsonl``; with a remote one each chunk writes its records as the object
``manifest/part-NNNNNN.jsonl`` (its first index), consolidated into ``manifest.jsonl`` by
the driver at the end. A rerun keeps the records whose files exist and makes the rest.
"""
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import signal
import sys
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

from .. import __version__
from .._threads import available_cores
from .config import RUN_ONLY_FIELDS, DatasetConfig, pinned_backend
from .remote_inputs import InputStager, check_remote_inputs, remote_fields
from .shards import shard_name, shard_range, write_shard
from .storage import is_remote, local_paths, open_storage

__all__ = ["Job", "connect", "default_chunk_size", "generate", "generate_chunked", "needs_chunks", "plan_chunks",
           "read_done", "run_chunk"]

MANIFEST = "manifest.jsonl"
DEFAULT_SHARD_SIZE = 1000
PARTS = "manifest"


@dataclass
class Job:
    """What every chunk of a run needs; shipped to each worker once.

    Attributes
    ----------
    config : dict
        The run's settings (``DatasetConfig.to_dict``, backend pinned).
    sources : list of Source
    storage : LocalStorage or RemoteStorage
        Where the pairs go.
    total : int
        Pairs in the run.
    token : str
        Identifies the run (a worker keeps one pair maker per token).
    """

    config: dict
    sources: list
    storage: object
    total: int
    token: str


# -- on the worker ----------------------------------------------------------------------
_state = {}


def _worker_maker(job, configure=True):
    """This process's ``(PairMaker, InputStager)`` for ``job``, made on first use (an earlier
    run's dropped); ``configure``: first one thread and warm allocator pages."""
    if job.token not in _state:
        from .._memory import keep_freed_memory
        from .dataset import PairMaker

        if configure:
            import cv2

            os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
            cv2.setNumThreads(1)
            keep_freed_memory()
        config = DatasetConfig.from_dict(job.config)
        stager = InputStager(config, job.sources, config.storage_options)
        _close_state()  # one run at a time per process
        _state[job.token] = (PairMaker(replace(stager.config, out=None), stager.sources), stager)
    return _state[job.token]


def _close_state():
    for _, stager in _state.values():
        stager.close()
    _state.clear()


def _made(maker, stager, indices, records, failures, shard=None):
    """``(record, blurry bytes, sharp bytes)`` of each pair of ``indices`` made; records (tagged with
    ``shard``) also go to ``records``, the ``(index, name, message)`` of failed pairs to ``failures``."""
    from .dataset import pair_location

    for index in indices:
        try:
            record, blurry, sharp, _, _ = maker.make(index)
            with maker.timer.stage("encode"):
                blurry, sharp = maker.encode(blurry, sharp)
        except Exception as error:  # a bad image/mask/kernel file: reported, the run goes on
            source_index, variant = pair_location(index, len(maker.sources), maker.config.n_images)
            failures.append((index, f"{maker.sources[source_index].name}_{variant}",
                             f"{type(error).__name__}: {error}"))
            continue
        record = stager.restore(record)
        if shard is not None:
            record["shard"] = shard
        records.append(record)
        yield record, blurry, sharp


def run_chunk(job, indices, shard=None):
    """Make and write the pairs ``indices`` (the whole of ``shard`` for tar shards).

    Returns
    -------
    dict
        ``records`` (manifest records of the pairs made), ``failures`` (``(index, name, message)``),
        ``pairs`` (``len(indices)``) and, with the ``timings`` setting, ``timings`` (seconds a stage).
    """
    from .dataset import pair_location

    maker, stager = _worker_maker(job)
    storage = job.storage
    stager.stage(pair_location(i, len(job.sources), maker.config.n_images)[0] for i in indices)
    records, failures = [], []
    if shard is None:
        for record, blurry, sharp in _made(maker, stager, indices, records, failures):
            with maker.timer.stage("write"):
                storage.write(record["blurry"], blurry)
                storage.write(record["sharp"], sharp)
    else:
        name = shard_name(shard)
        temporary = storage.temporary_file(name)
        try:
            write_shard(temporary, _made(maker, stager, indices, records, failures, name))
            with maker.timer.stage("write"):
                storage.commit(temporary, name)
        except BaseException:
            if os.path.exists(temporary):
                os.unlink(temporary)
            raise
    if storage.remote and records:
        lines = "".join(json.dumps(r) + "\n" for r in records)
        storage.write(f"{PARTS}/part-{indices[0]:06d}.jsonl", lines.encode("utf-8"))
    answer = {"records": records, "failures": failures, "pairs": len(indices)}
    if maker.timer.enabled:
        answer["timings"] = maker.timer.take()
    return answer


_pool_job = None


def _init_pool(job):
    global _pool_job
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    os.environ["FASTBLUR_NUM_THREADS"] = "1"
    _pool_job = job


def _run_pooled(indices, shard):
    return run_chunk(_pool_job, indices, shard)


def needs_chunks(config):
    """Whether ``config``'s run is made in chunks of pairs (a Dask scheduler, tar shards, a
    remote path) rather than pair by pair."""
    return bool(config.scheduler or config.scheduler_file or config.layout == "webdataset" or is_remote(config.out)
                or remote_fields(config))


# -- planning ---------------------------------------------------------------------------
def default_chunk_size(pairs, workers):
    """About four chunks a worker, at most 64 pairs a chunk."""
    return max(1, min(64, math.ceil(pairs / (4 * max(1, workers)))))


def plan_chunks(todo, chunk_size):
    """``todo`` (sorted indices) cut into lists of at most ``chunk_size`` consecutive ones."""
    chunks = []
    for index in todo:
        if chunks and len(chunks[-1]) < chunk_size and index == chunks[-1][-1] + 1:
            chunks[-1].append(index)
        else:
            chunks.append([index])
    return chunks


# -- the engines ------------------------------------------------------------------------
def connect(scheduler=None, scheduler_file=None, workers=None, timeout=30.0):
    """A ``distributed.Client`` of a new LocalCluster of one-thread worker processes
    (``scheduler="local"``), of a running scheduler's ``tcp://`` address, or of a scheduler file.

    Returns
    -------
    client, cluster
        ``cluster`` is the LocalCluster started here (None otherwise); the caller closes both.

    Raises
    ------
    RuntimeError
        The scheduler cannot be reached within ``timeout`` seconds, or no worker joined.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise RuntimeError('a Dask scheduler needs distributed: pip install "fastblur[dask]"') from error
    if scheduler_file is not None and not os.path.isfile(scheduler_file):
        raise RuntimeError(f"scheduler file {scheduler_file!r} does not exist")
    client = cluster = None
    where = scheduler or scheduler_file
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1,
                                   processes=True, dashboard_address=None, host="127.0.0.1")
        client = Client(scheduler if cluster is None else cluster, scheduler_file=scheduler_file, timeout=timeout)
        client.wait_for_workers(len(cluster.workers) if cluster is not None else 1, timeout=timeout)
    except (RuntimeError, OSError, TimeoutError, ValueError) as error:
        for opened in (client, cluster):
            if opened is not None:
                opened.close()
        if isinstance(error, RuntimeError):
            raise
        if client is None:
            raise RuntimeError(f"cannot reach the Dask scheduler {where!r} within {timeout:g} s: {error}") from error
        raise RuntimeError(f"no Dask worker joined the scheduler {where!r} within {timeout:g} s") from error
    return client, cluster


class _DaskEngine:
    """On ``client``, or on a client of the ``config``'s scheduler, opened here and closed with the engine."""

    def __init__(self, client, job, config):
        from distributed import as_completed

        self.owned = connect(config.scheduler, config.scheduler_file, config.workers, config.timeout) \
            if client is None else ()
        self.client = self.owned[0] if client is None else client
        self.job = self.client.scatter(job, broadcast=True, hash=False)
        self.completed = as_completed()

    def workers(self):
        return len(self.client.scheduler_info()["workers"])

    def submit(self, indices, shard):
        future = self.client.submit(run_chunk, self.job, indices, shard, pure=False, retries=0)
        self.completed.add(future)
        return future

    def finished(self, pending):
        return [next(self.completed)]

    def cancel(self, pending):
        self.client.cancel(list(pending))
        return []

    def close(self):
        try:
            self.client.cancel(self.job)
        finally:
            for opened in self.owned:
                if opened is not None:
                    opened.close()


class _PoolEngine:
    def __init__(self, job, workers):
        self.count = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_pool, initargs=(job,))

    def workers(self):
        return self.count

    def submit(self, indices, shard):
        return self.pool.submit(_run_pooled, indices, shard)

    def finished(self, pending):
        return wait(pending, return_when=FIRST_COMPLETED).done

    def cancel(self, pending):
        for future in pending:
            future.cancel()
        return [f for f in pending if not f.cancelled()]  # in progress: they finish

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)


def _result(future):
    try:
        return future.result()
    except (KeyboardInterrupt, BrokenProcessPool):
        raise
    except Exception as error:  # not a bad pair (those are reported): the engine or the store failed
        raise RuntimeError(f"a fastblur-gen chunk failed: {type(error).__name__}: {error}; rerun to resume") from error


class _InlineEngine(_PoolEngine):
    """One worker: the chunks run in this process, one at a time, when collected."""

    def __init__(self, job):
        self.job, self.count = job, 1
        _worker_maker(job, configure=False)  # this process keeps its thread settings

    def submit(self, indices, shard):
        future = Future()
        future.task = (indices, shard)
        return future

    def finished(self, pending):
        future = min(pending, key=lambda f: f.task[0][0])
        future.set_result(run_chunk(self.job, *future.task))
        return [future]

    def close(self):
        _close_state()


# -- the run ----------------------------------------------------------------------------
def _check_settings(storage, config, current):
    """Refuse to resume a dataset made with other settings (unless overwriting); settings
    added since an older run count as their default."""
    if config.overwrite:
        return
    try:  # no args.json (FileNotFoundError) or an unreadable one: nothing to compare
        previous = json.loads(storage.read("args.json")).get("settings", {})
    except (OSError, ValueError):
        return
    defaults = DatasetConfig().to_dict()
    differing = sorted(key for key in set(previous) | set(current)
                       if key not in RUN_ONLY_FIELDS and previous.get(key, defaults.get(key)) != current.get(key))
    if differing:
        raise ValueError(f"{config.out!r} holds a dataset made with other settings ({', '.join(differing)} "
                         "differ); use another out folder, or overwrite (--overwrite) to remake it")


def read_done(storage, config, total):
    """Finished pairs ``{index: record}``: manifest lines (and parts) whose files exist.

    Files are not fsynced (that would cost more than the pair); an empty file, what a
    power loss can leave behind a completed rename, counts as missing and is redone.
    For tar shards a shard counts only when it exists and every pair of its range
    (for this ``total``) has a record: a shard is redone whole or not at all.
    """
    records = {}
    if config.overwrite:
        return records
    files = storage.sizes()
    for name in sorted(files):
        if name == MANIFEST or (name.startswith(PARTS + "/part-") and name.endswith(".jsonl")):
            for line in storage.read(name).decode("utf-8", "replace").splitlines():
                try:
                    record = json.loads(line)
                    records[int(record["index"])] = record
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
    if config.layout != "webdataset":
        return {i: r for i, r in records.items()
                if files.get(r.get("blurry"), 0) > 0 and files.get(r.get("sharp"), 0) > 0}
    whole = set()
    for name in {record.get("shard") for record in records.values()}:
        if name and files.get(name, 0) > 0:
            wanted = shard_range(int(name.rsplit("-", 1)[1].split(".")[0]), config.shard_size, total)
            if len(wanted) and all(records.get(i, {}).get("shard") == name for i in wanted):
                whole.add(name)
    return {i: r for i, r in records.items() if r.get("shard") in whole}


def _consolidate(storage, records):
    lines = "".join(json.dumps(records[i]) + "\n" for i in sorted(records))
    storage.write(MANIFEST, lines.encode("utf-8"))
    if storage.remote:  # the parts are in manifest.jsonl now
        for name in [n for n in storage.sizes(PARTS) if n.startswith(PARTS + "/part-")]:
            storage.remove(name)


def _tasks(config, todo, total, size):
    """``[(indices, shard)]`` in index order, ``size`` pairs a chunk."""
    if config.layout == "webdataset":
        shards = sorted({i // config.shard_size for i in todo})
        return [(list(shard_range(s, config.shard_size, total)), s) for s in shards]
    return [(chunk, None) for chunk in plan_chunks(todo, size)]


def _drive(engine, tasks, pending, collect, progress):
    """Keep about four chunks a worker in flight (the count followed as workers come and
    go), collect each as it finishes."""
    queue = iter(tasks)
    checked = -math.inf  # the worker count is read now, then every two seconds
    while True:
        if time.monotonic() - checked > 2.0:
            workers = engine.workers()
            window = max(8, 4 * workers)
            progress.set_postfix(workers=workers, refresh=False)
            checked = time.monotonic()
        for task in itertools.islice(queue, max(0, window - len(pending))):
            pending.add(engine.submit(*task))
        if not pending:
            return
        for future in engine.finished(pending):
            pending.discard(future)
            collect(_result(future))


def generate(config, client=None):
    """Write an SBDD dataset as ``config`` says (the ``fastblur-gen`` command).

    Parameters
    ----------
    config : DatasetConfig or dict
        ``out`` is required; see :class:`~fastblur.sbdd.config.DatasetConfig`.
    client : distributed.Client, optional
        Make the pairs on this Dask cluster (:mod:`fastblur.sbdd.distributed`). So do
        runs with ``scheduler``/``scheduler_file``; the others use a local process pool
        (one pair a chunk for a local ``out`` unless ``chunk_size`` says otherwise), or
        this process for one worker, and never import Dask.

    Returns
    -------
    GenerateSummary

    Raises
    ------
    ValueError
        Bad settings, no input images, or an ``out`` folder holding a dataset made with
        other settings. Problems with single images or mask files do not raise: they
        are reported (stderr) and counted in the summary.
    RuntimeError
        A worker process died (killed, out of memory).

    Notes
    -----
    With more than one worker the pairs are made in processes started with ``spawn``,
    which import the calling script again: a script calling ``generate`` must do so
    under ``if __name__ == "__main__":``.
    """
    from tqdm import tqdm

    from .dataset import GenerateSummary, PairMaker, find_sources
    from .sources import segment_missing
    from .timings import StageTimer

    if not isinstance(config, DatasetConfig):
        config = DatasetConfig.from_dict(dict(config))
    config = replace(config, backend=pinned_backend(config.backend))
    if config.out is None:
        raise ValueError("out must name the output folder (--out)")
    if config.masks == "maskrcnn" and config.masks_path is None:
        config = replace(config, masks_path=os.path.join(config.out, "masks"))
    config = local_paths(config)
    local = client is None and not needs_chunks(config)  # pair by pair, as a process pool
    if config.layout == "webdataset" and config.shard_size is None:
        config = replace(config, shard_size=DEFAULT_SHARD_SIZE)
    check_remote_inputs(config, config.storage_options)
    sources = find_sources(config)
    total = config.count if config.count is not None else len(sources) * config.n_images
    stager = InputStager(config, sources, config.storage_options) if remote_fields(config) else None
    maker = PairMaker(stager.config if stager else config, stager.sources if stager else sources)  # fails early
    storage = open_storage(config.out, config.storage_options)
    storage.check_output()
    if config.masks == "maskrcnn" and (is_remote(config.masks_path) or is_remote(config.input)):
        raise ValueError("masks='maskrcnn' segments into a local masks_path from local input images; "
                         "make the masks with fastblur-segment first and pass them as --masks detectron2")
    settings = dict(config.to_dict(), storage_options=None)  # credentials may sit there: a local run records null
    if not local:
        del settings["storage_options"]
    _check_settings(storage, config, settings)
    storage.clean()
    storage.write("args.json", (json.dumps({"fastblur": __version__, "settings": settings}, indent=2) + "\n")
                  .encode("utf-8"))
    segment_missing(config, sources)
    records = read_done(storage, config, total)
    _consolidate(storage, records)

    timer = StageTimer(enabled=config.timings)
    summary = GenerateSummary(out=config.out, total=total, timings=timer if config.timings else None)
    summary.skipped = sum(1 for i in records if i < total)
    todo = [i for i in range(total) if i not in records]
    job = Job(config.to_dict(), sources, storage, total, token=uuid.uuid4().hex)

    if not todo:
        engine = None
    elif client is not None or config.scheduler or config.scheduler_file:
        engine = _DaskEngine(client, job, config)
    else:
        processes = min(config.workers or available_cores(), len(_tasks(config, todo, total, 1)))
        engine = _PoolEngine(job, processes) if processes > 1 else _InlineEngine(job)
    workers = engine.workers() if engine else 0
    size = config.chunk_size or (1 if local else default_chunk_size(len(todo), workers))

    manifest = None if storage.remote else open(storage.path(MANIFEST), "a", encoding="utf-8")
    progress = tqdm(total=len(todo), unit="pair", desc="fastblur-gen", disable=not config.progress,
                    file=sys.stderr, dynamic_ncols=True, postfix={"workers": workers})
    start = time.perf_counter()

    def collect(answer):
        with timer.stage("manifest"):
            for record in answer["records"]:
                summary.written += record["index"] not in records
                records[record["index"]] = record
            if manifest is not None:
                manifest.write("".join(json.dumps(record) + "\n" for record in answer["records"]))
                manifest.flush()
        timer.add(answer.get("timings", {}), pairs=len(answer["records"]))
        for failure in answer["failures"]:
            summary.failed += 1
            summary.failures.append(tuple(failure))
            progress.write(f"fastblur-gen: skipped pair {failure[0]} ({failure[1]}): {failure[2]}", file=sys.stderr)
        progress.update(answer["pairs"])

    pending = set()
    try:
        if engine is not None:
            _drive(engine, _tasks(config, todo, total, size), pending, collect, progress)
    except KeyboardInterrupt:
        summary.interrupted = True
        for future in engine.cancel(pending):  # the chunks in progress finish: no partial file
            with contextlib.suppress(Exception):
                collect(future.result())
    except BrokenProcessPool as error:
        raise RuntimeError("a fastblur-gen worker process died (killed, out of memory, or a script that calls "
                           "generate() outside `if __name__ == '__main__':`); rerun to resume") from error
    finally:
        progress.close()
        if manifest is not None:
            manifest.close()
        if engine is not None:
            with contextlib.suppress(Exception):
                engine.close()
        summary.seconds = time.perf_counter() - start
        storage.clean()  # temporaries of workers killed mid-write
    _consolidate(storage, records)

    if config.preview and not summary.interrupted:
        from .preview import contact_sheet

        rows = [row for row in map(maker.preview, range(min(config.preview_count, total))) if row is not None]
        if rows:
            contact_sheet(rows, config.preview)
    if stager is not None:
        stager.close()
    return summary


generate_chunked = generate  # its name in this module's first release
