"""Generation beyond one machine: Dask (LocalCluster, a scheduler and workers started from
the command line), tar shards read back by ``webdataset``, object storage on moto's S3
server. Every server binds to 127.0.0.1 and is stopped by the fixture that started it."""
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from fastblur.cli.gen import main
from fastblur.sbdd import DatasetConfig, generate
from fastblur.sbdd.distributed import default_chunk_size, plan_chunks
from conftest import free_port
from inputs import photo_folder

pytest.importorskip("distributed")
#: Child processes import the fastblur this process imported (the installed package in CI,
#: whose compiled extension the source tree lacks).
SYS_PATH = os.pathsep.join(sys.path)
KERNEL = 9
COUNT = 6


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return photo_folder(tmp_path_factory, ("astronaut", 6, 64, 80), ("coffee", 6, 60, 84), ("chelsea", 4, 64, 80))


def _config(out, images, **changes):
    settings = dict(out=str(out), input=str(images), kernel_size=KERNEL, min_object_area=40, max_objects=2,
                    count=COUNT, n_images=2, workers=1, progress=False, augment_illumination=True)
    settings.update(changes)
    return DatasetConfig(**settings)


def _files(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(Path(out).rglob("*.png"))}


@pytest.fixture(scope="module")
def reference(images, tmp_path_factory):
    """A one-process run of the local process pool: ``(files, manifest text)``."""
    out = tmp_path_factory.mktemp("reference") / "ds"
    summary = generate(_config(out, images))
    assert summary.written == COUNT and not summary.failures
    return _files(out), (out / "manifest.jsonl").read_text()


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two one-thread worker processes on 127.0.0.1."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


# -- the work unit ------------------------------------------------------------------------
def test_chunks_are_runs_of_consecutive_indices():
    assert plan_chunks([0, 1, 2, 3, 4], 2) == [[0, 1], [2, 3], [4]]
    assert plan_chunks([0, 1, 3, 4, 5, 9], 4) == [[0, 1], [3, 4, 5], [9]]
    assert plan_chunks([], 3) == []
    assert default_chunk_size(1000, 2) == 64 and default_chunk_size(40, 2) == 5
    assert default_chunk_size(3, 8) == 1


def test_pool_run_never_imports_dask(tmp_path, images):
    # pyfftw's own interfaces import dask.array when dask is installed (not fastblur's
    # doing): with pyfftw blocked, a process-pool run imports no dask, fsspec or s3fs.
    # A file:// URL is a local path.
    script = (
        "import sys\n"
        "sys.modules['pyfftw'] = None\n"
        "from fastblur.sbdd import DatasetConfig, generate\n"
        f"s = generate(DatasetConfig(out={'file://' + str(tmp_path / 'ds')!r}, input={str(images)!r}, count=2, "
        f"kernel_size={KERNEL}, min_object_area=40, workers=1, progress=False))\n"
        "assert s.written == 2, s\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'fsspec', 's3fs'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=SYS_PATH), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    assert len((tmp_path / "ds" / "manifest.jsonl").read_text().splitlines()) == 2


def test_local_cluster_gives_the_bytes_of_one_process(tmp_path, images, reference, client):
    files, manifest = reference
    for chunk_size in (1, 4):
        out = tmp_path / f"chunks{chunk_size}"
        summary = generate(_config(out, images, chunk_size=chunk_size, timings=chunk_size == 4), client=client)
        assert (summary.written, summary.failed) == (COUNT, 0)
        if chunk_size == 4:  # --timings: the workers' stages come back with the records
            assert summary.timings.pairs == COUNT
            assert all(summary.timings.seconds[stage] > 0 for stage in ("read", "synthesis", "encode", "write"))
        assert _files(out) == files
        assert (out / "manifest.jsonl").read_text() == manifest
    again = generate(_config(tmp_path / "chunks1", images, chunk_size=3), client=client)
    assert (again.written, again.skipped) == (0, COUNT)


def test_ctrl_c_cancels_the_chunks_and_a_rerun_finishes(tmp_path, images, reference, client, monkeypatch):
    import tqdm

    files, manifest = reference
    update = tqdm.tqdm.update
    calls = []

    def interrupted(self, n=1):  # Ctrl-C as the first chunk comes back
        calls.append(n)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return update(self, n)

    monkeypatch.setattr(tqdm.tqdm, "update", interrupted)
    out = tmp_path / "ds"
    summary = generate(_config(out, images, chunk_size=1), client=client)
    assert summary.interrupted and summary.written < COUNT
    client.wait_for_workers(2)
    time.sleep(0.5)  # chunks already running when cancelled finish on their workers
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    lines = (out / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == summary.written
    monkeypatch.setattr(tqdm.tqdm, "update", update)
    again = generate(_config(out, images, chunk_size=2), client=client)
    assert again.skipped == summary.written and again.written == COUNT - summary.written
    assert _files(out) == files
    assert (out / "manifest.jsonl").read_text() == manifest


def test_unreachable_scheduler_is_a_clear_error(tmp_path, images, capsys):
    start = time.monotonic()
    status = main(["--out", str(tmp_path / "ds"), "--input", str(images), "--count", "2", "--no-progress",
                   "--scheduler", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2"])
    assert status == 2
    assert time.monotonic() - start < 30
    error = capsys.readouterr().err
    assert "cannot reach the Dask scheduler" in error and "127.0.0.1" in error
    assert not list((tmp_path / "ds").rglob("*.png"))


@pytest.fixture
def dask_processes(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed worker stays
    dead) on 127.0.0.1; yields ``(scheduler file, [worker processes])``."""
    import shutil

    if shutil.which("dask") is None:
        pytest.skip("the dask command is not installed")
    scheduler_file = tmp_path / "scheduler.json"
    env = dict(os.environ, PYTHONPATH=SYS_PATH)
    started = []

    def start(*args):
        started.append(subprocess.Popen(["dask", *args], env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        return started[-1]

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = [start("worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                         "--no-dashboard", "--nthreads", "1", "--no-nanny") for _ in range(2)]
        from distributed import Client

        with Client(scheduler_file=str(scheduler_file), timeout=60) as probe:
            probe.wait_for_workers(2, timeout=60)
        yield scheduler_file, workers
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_scheduler_and_workers_survive_a_killed_worker(tmp_path, images, dask_processes):
    scheduler_file, workers = dask_processes
    count = 24
    expected = tmp_path / "one_process"
    generate(_config(expected, images, count=count, n_images=8))
    out = tmp_path / "ds"
    made_before_kill = []

    def kill_when_started():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            made = list(out.glob("blurry/*.png"))
            if made:  # pairs are being made: kill one worker mid-run
                workers[0].send_signal(signal.SIGKILL)
                made_before_kill.append(len(made))
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_when_started, daemon=True)
    watcher.start()
    status = main(["--out", str(out), "--input", str(images), "--count", str(count), "--n-images", "8",
                   "-K", str(KERNEL), "--min-object-area", "40", "--max-objects", "2", "--augment-illumination",
                   "--no-progress", "--scheduler-file", str(scheduler_file), "--chunk-size", "2"])
    watcher.join()
    assert made_before_kill and made_before_kill[0] < count // 2
    assert workers[0].wait(timeout=10) == -signal.SIGKILL
    assert status == 0
    assert _files(out) == _files(expected)
    assert (out / "manifest.jsonl").read_text() == (expected / "manifest.jsonl").read_text()  # a line a pair
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


# -- tar shards -------------------------------------------------------------------------
def test_webdataset_shards(tmp_path, images, reference, client):
    wds = pytest.importorskip("webdataset")

    files, manifest = reference
    records = [json.loads(line) for line in manifest.splitlines()]
    out = tmp_path / "wds"
    summary = generate(_config(out, images, layout="webdataset", shard_size=4))
    assert (summary.written, summary.failed) == (COUNT, 0)
    shards = sorted((out / "shards").iterdir())
    assert [p.name for p in shards] == ["shard-000000.tar", "shard-000001.tar"]
    with tarfile.open(shards[0]) as tar:
        members = tar.getmembers()
        assert [m.name for m in members[:3]] == ["a_0.blurry.png", "a_0.sharp.png", "a_0.json"]
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {(0, 0, 0, "", "", 0o644)}
    # read back through webdataset: shard k holds [4k, 4k + 4), in index order
    samples = list(wds.WebDataset([str(p) for p in shards], shardshuffle=False))
    assert [s["__key__"] for s in samples] == [r["name"] for r in records]
    for sample, record in zip(samples, records):
        meta = json.loads(sample["json"])
        assert meta["index"] == record["index"] and meta["shard"] == f"shards/shard-{record['index'] // 4:06d}.tar"
        assert meta["seed"] == record["seed"] and meta["kernels"] == record["kernels"]
        assert sample["blurry.png"] == files[record["blurry"]]
        assert sample["sharp.png"] == files[record["sharp"]]
    # the same shard bytes on a cluster
    on_cluster = tmp_path / "wds_cluster"
    generate(_config(on_cluster, images, layout="webdataset", shard_size=4), client=client)
    assert [p.read_bytes() for p in sorted((on_cluster / "shards").iterdir())] == [p.read_bytes() for p in shards]
    # resumed shard by shard: a finished shard is not rewritten
    first = shards[0].stat()
    kept = shards[1].read_bytes()
    shards[1].unlink()
    again = generate(_config(out, images, layout="webdataset", shard_size=4))
    assert (again.written, again.skipped) == (2, 4)
    assert shards[1].read_bytes() == kept
    assert (shards[0].stat().st_ino, shards[0].stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)


def test_interrupted_shard_leaves_no_partial_file(tmp_path, images, monkeypatch):
    from fastblur.sbdd import dataset

    make = dataset.PairMaker.make

    def interrupted(self, index):
        if index == 5:
            raise KeyboardInterrupt
        return make(self, index)

    monkeypatch.setattr(dataset.PairMaker, "make", interrupted)
    out = tmp_path / "wds"
    summary = generate(_config(out, images, layout="webdataset", shard_size=4))
    assert summary.interrupted
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["args.json", "manifest.jsonl", "shard-000000.tar"]
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 4


# -- object storage (moto's S3 server on 127.0.0.1) -------------------------------------------
@pytest.fixture(scope="module")
def s3():
    """``(endpoint URL, storage options)`` of a moto S3 server holding the bucket ``data``;
    fake credentials in the environment, restored afterwards."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                            "AWS_EC2_METADATA_DISABLED")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        options = {"endpoint_url": endpoint}
        fs = _fs(options)
        fs.mkdir("data")
        yield endpoint, options
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _fs(options):
    import s3fs

    return s3fs.S3FileSystem(skip_instance_cache=True, **options)


def _objects(fs, prefix):
    fs.invalidate_cache()
    return {name[len(prefix) + 1:]: fs.cat_file(name) for name in fs.find(prefix)}


def test_s3_output_with_parts_and_resume(images, reference, s3):
    endpoint, options = s3
    files, manifest = reference
    fs = _fs(options)
    summary = generate(_config("s3://data/run1", images, storage_options=options))
    assert (summary.written, summary.failed) == (COUNT, 0)
    objects = _objects(fs, "data/run1")
    assert {k: v for k, v in objects.items() if k.endswith(".png")} == files
    assert objects["manifest.jsonl"].decode() == manifest
    assert not [k for k in objects if k.startswith("manifest/")]  # parts consolidated
    assert "storage_options" not in json.loads(objects["args.json"])["settings"]  # no credentials stored
    # a driver killed before consolidating: the parts are what a rerun reads
    fs.pipe_file("data/run1/manifest/part-000000.jsonl", objects["manifest.jsonl"])
    fs.rm_file("data/run1/manifest.jsonl")
    fs.rm_file("data/run1/blurry/b_1.png")
    again = generate(_config("s3://data/run1", images, storage_options=options))
    assert (again.written, again.skipped) == (1, COUNT - 1)
    objects = _objects(fs, "data/run1")
    assert {k: v for k, v in objects.items() if k.endswith(".png")} == files
    assert objects["manifest.jsonl"].decode() == manifest
    assert not [k for k in objects if k.startswith("manifest/")]


def test_s3_on_a_cluster_and_remote_inputs(images, reference, s3, client, monkeypatch):
    endpoint, options = s3
    files, manifest = reference
    fs = _fs(options)
    for path in sorted(images.iterdir()):
        fs.put_file(str(path), f"data/inputs/{path.name}")
    # inputs and outputs in the bucket, pairs made by the cluster's workers
    # the cluster's workers started before the credentials were set: they come with the options
    config = _config("s3://data/run2", "s3://data/inputs", chunk_size=2,
                     storage_options=dict(options, key="testing", secret="testing"),
                     layout="webdataset", shard_size=4)
    summary = generate(config, client=client)
    assert (summary.written, summary.failed) == (COUNT, 0)
    objects = _objects(fs, "data/run2")
    with tarfile.open(fileobj=io.BytesIO(objects["shards/shard-000000.tar"])) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert members["a_0.blurry.png"] == files["blurry/a_0.png"] and members["b_1.sharp.png"] == files["sharp/b_1.png"]
    # the driver reads the fsspec endpoint configuration too
    monkeypatch.setenv("FSSPEC_S3_ENDPOINT_URL", endpoint)
    import fsspec.config

    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": endpoint})
    folder = generate(_config("s3://data/run3", "s3://data/inputs"))
    assert folder.written == COUNT
    assert {k: v for k, v in _objects(fs, "data/run3").items() if k.endswith(".png")} == files


def test_s3_kernel_list_gives_the_local_pairs(tmp_path, images, s3):
    from fastblur.kernels import camera_shake, save

    endpoint, options = s3
    fs = _fs(options)
    kernels = tmp_path / "kernels"
    (kernels / "train").mkdir(parents=True)
    for i in range(3):
        save(kernels / "train" / f"k{i}.npy", camera_shake(KERNEL, rng=10 + i))
    (kernels / "list.txt").write_text("".join(f"train/k{i}.npy\n" for i in range(3)))
    for path in sorted(p for p in kernels.rglob("*") if p.is_file()):
        fs.put_file(str(path), f"data/kernels/{path.relative_to(kernels)}")
    local = generate(_config(tmp_path / "local", images, count=3, kernels=str(kernels / "list.txt")))
    remote = generate(_config(tmp_path / "remote", images, count=3, kernels="s3://data/kernels/list.txt",
                              storage_options=options))
    assert local.written == remote.written == 3
    assert _files(tmp_path / "remote") == _files(tmp_path / "local")
    records = [json.loads(line) for line in (tmp_path / "remote" / "manifest.jsonl").read_text().splitlines()]
    assert {k for r in records for k in r["kernels"]} <= {f"s3://data/kernels/train/k{i}.npy" for i in range(3)}


def test_s3_bad_urls_fail_before_any_pair(tmp_path, images, s3, monkeypatch, capsys):
    endpoint, options = s3
    fs = _fs(options)
    with pytest.raises(ValueError, match="s3://missing-bucket/ds.*does not exist"):
        generate(_config("s3://missing-bucket/ds", images, storage_options=options))
    with pytest.raises(ValueError, match="s3://data/no-such-input.*does not exist"):
        generate(_config(tmp_path / "ds", "s3://data/no-such-input", storage_options=options))
    assert not (tmp_path / "ds").exists() or not list((tmp_path / "ds").rglob("*.png"))
    with pytest.raises(ValueError, match="nosuchproto://x/y"):
        generate(_config("nosuchproto://x/y", images))
    fs.pipe_file("data/a-file", b"x")
    with pytest.raises(ValueError, match="s3://data/a-file.*is an object"):
        generate(_config("s3://data/a-file", images, storage_options=options))
    # no credentials anywhere: a clear error naming the URL, through the command line
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    status = main(["--out", "s3://data/nocreds", "--input", str(images), "--count", "1", "--no-progress",
                   "-K", str(KERNEL), "--storage-options", json.dumps(dict(options, skip_instance_cache=True))])
    assert status == 2
    error = capsys.readouterr().err
    assert "s3://data/nocreds" in error and "redential" in error
    assert not [k for k in _objects(_fs(dict(options, key="testing", secret="testing")), "data")
                if k.startswith("nocreds")]


def test_out_that_is_a_file_is_a_clear_error(tmp_path, images, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    assert main(["--out", str(target), "--input", str(images), "--count", "1", "--no-progress"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert target.read_text() == "not a folder"
    assert main(["--out", str(target), "--input", str(images), "--count", "1", "--no-progress",
                 "--layout", "webdataset"]) == 2
    assert target.read_text() == "not a folder"


def test_cluster_settings_from_a_config_file(tmp_path):
    from fastblur.sbdd import load_config

    path = tmp_path / "run.toml"
    path.write_text('out = "s3://bucket/run"\nscheduler = "tcp://127.0.0.1:8786"\nchunk_size = 16\n'
                    '[storage_options]\nendpoint_url = "http://127.0.0.1:9000"\nanon = false\n')
    config = load_config(path)
    assert config.out == "s3://bucket/run" and config.scheduler == "tcp://127.0.0.1:8786"
    assert config.storage_options == {"endpoint_url": "http://127.0.0.1:9000", "anon": False}


def test_cluster_settings_are_checked():
    with pytest.raises(ValueError, match="chunk_size"):
        DatasetConfig(out="x", chunk_size=0)
    with pytest.raises(TypeError, match="timeout"):
        DatasetConfig(out="x", timeout="soon")
    with pytest.raises(ValueError, match="timeout"):
        DatasetConfig(out="x", timeout=0)
    with pytest.raises(TypeError, match="storage_options"):
        DatasetConfig(out="x", storage_options=["anon"])
    with pytest.raises(ValueError, match="shard_size"):
        DatasetConfig(out="x", layout="webdataset", shard_size=0)
    with pytest.raises(ValueError, match="scheduler"):
        DatasetConfig(out="x", scheduler="local", scheduler_file="f.json")
    with pytest.raises(SystemExit):
        main(["--out", "x", "--storage-options", "[1]"])
