"""Pairs/s of ``fastblur-gen`` on the process pool against Dask LocalClusters, driver
overhead per pair, peak memory per worker.

    python bench/bench_scale.py --pairs 200            # the target's size (minutes)
    python bench/bench_scale.py --pairs 0 --small 400   # the driver overhead only

1. ``pairs`` pairs at ``--size`` (default 1280x720, default settings: classical masks,
   65-px generated kernels, PNG) made by the process pool of 2 workers, a LocalCluster
   of 1 and of 2 one-thread workers: first counting the cluster's start-up (the pool's
   time includes starting its processes), then again on the warm cluster;
2. the driver's CPU time per pair (this process: the LocalCluster's scheduler and the
   client, collecting records, writing the manifest) on ``--small`` tiny pairs, where
   it weighs most: over the whole run (fixed costs included: listing inputs, settings,
   the driver's own kernel check) and marginal (the difference with a run of a quarter
   as many pairs, per extra pair);
   measured twice: with the scheduler in a process of its own (``SubprocessCluster``,
   as on a real cluster: the driver alone) and inside this process (``LocalCluster``);
3. the peak resident memory of each LocalCluster worker process after the 720p run.

The machine may be shared: the engines run in turn, ``--repeats`` rounds, and each
keeps its best; ratios are taken within one invocation. Prints a table and, with ``--json FILE``, writes the figures.
"""
import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time

os.environ.setdefault("FASTBLUR_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _inputs(folder, size):
    import cv2
    from skimage import data

    width, height = size
    os.makedirs(folder, exist_ok=True)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = getattr(data, name)()
        cv2.imwrite(os.path.join(folder, name + ".png"),
                    cv2.resize(image[..., ::-1], (width, height), interpolation=cv2.INTER_CUBIC))
    return folder


def _config(out, inputs, count, **changes):
    from fastblur.sbdd import DatasetConfig

    settings = dict(out=out, input=inputs, count=count, progress=False, overwrite=True)
    settings.update(changes)
    return DatasetConfig(**settings)


def _cluster(workers, separate_scheduler=False):
    from distributed import Client, LocalCluster

    if separate_scheduler:  # the scheduler in a process of its own, as on a real cluster
        from distributed.deploy.subprocess import SubprocessCluster

        cluster = SubprocessCluster(host="127.0.0.1", n_workers=workers, threads_per_worker=1,
                                    dashboard_address=None)
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               host="127.0.0.1")
    return Client(cluster), cluster


def _worker_peaks(client):
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    return sorted(client.run(peak).values())


def _bytes_per_pair(out):
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out) for f in files
                if f.endswith(".png"))
    pairs = sum(1 for _ in open(os.path.join(out, "manifest.jsonl")))
    return total / max(pairs, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200, help="pairs at --size per engine (default 200)")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the sharp images (default 1280x720)")
    parser.add_argument("--small", type=int, default=2000, help="tiny pairs for the driver overhead (default 2000)")
    parser.add_argument("--repeats", type=int, default=1, help="best of this many runs per engine (default 1)")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    from fastblur.sbdd import generate

    size = tuple(int(v) for v in args.size.lower().split("x"))
    work = tempfile.mkdtemp(prefix="bench-scale-")
    figures = {"pairs": args.pairs, "size": list(size), "repeats": args.repeats}
    out = os.path.join(work, "out")
    try:
        if args.pairs:
            inputs = _inputs(os.path.join(work, "in"), size)
            rates = {}

            rounds = []

            def timed(name, changes=(), start_up=0.0, **run):
                summary = generate(_config(out, inputs, args.pairs, **dict(changes)), **run)
                assert summary.written == args.pairs and not summary.failures, summary
                rate = args.pairs / (summary.seconds + start_up)
                rates[name] = max(rates.get(name, 0.0), rate)
                rounds[-1][name] = rate
                print(f"{name:>34}: {rate:.3f} pairs/s", flush=True)

            for _ in range(args.repeats):  # engines interleaved: a shared machine's load hits all
                rounds.append({})
                timed("process pool, 2 (with start-up)", changes=dict(workers=2))
                figures["bytes_per_pair"] = _bytes_per_pair(out)
                for workers in (1, 2):
                    before = time.perf_counter()
                    client, cluster = _cluster(workers)
                    client.wait_for_workers(workers)
                    start_up = time.perf_counter() - before
                    try:
                        timed(f"LocalCluster, {workers} (with start-up)", start_up=start_up, client=client)
                        timed(f"LocalCluster, {workers} (warm)", client=client)
                        peaks = _worker_peaks(client)
                        figures[f"worker_peak_rss_{workers}"] = max(figures.get(f"worker_peak_rss_{workers}", []),
                                                                    peaks)
                    finally:
                        client.close()
                        cluster.close()
            figures["pairs_per_second"] = rates
            figures["rounds"] = rounds
            pool = "process pool, 2 (with start-up)"
            figures["cluster2_over_pool2"] = rates["LocalCluster, 2 (with start-up)"] / rates[pool]
            figures["cluster2_over_pool2_per_round"] = [r["LocalCluster, 2 (with start-up)"] / r[pool] for r in rounds]

        small = _inputs(os.path.join(work, "small"), (96, 72))
        figures["driver_cpu_per_pair_s"] = {}
        for separate in (True, False):
            client, cluster = _cluster(2, separate_scheduler=separate)
            try:
                def driver_cpu(count, chunk_size):  # CPU time: little moved by a shared machine's load
                    best = float("inf")
                    for _ in range(1):
                        before = time.process_time()
                        summary = generate(_config(out, small, count, kernel_size=9, min_object_area=40,
                                                   chunk_size=chunk_size), client=client)
                        assert summary.written == count, summary
                        best = min(best, time.process_time() - before)
                    return best

                for chunk_size in (None, 1):
                    few, many = driver_cpu(args.small // 4, chunk_size), driver_cpu(args.small, chunk_size)
                    name = ("driver alone" if separate else "driver + LocalCluster scheduler") + (
                        ", default chunks" if chunk_size is None else f", chunk_size={chunk_size}")
                    figures["driver_cpu_per_pair_s"][name] = {
                        "per pair": many / args.small, "marginal": (many - few) / (args.small - args.small // 4)}
            finally:
                client.close()
                cluster.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.pairs:
        per_round = ", ".join(f"{r:.2f}" for r in figures["cluster2_over_pool2_per_round"])
        print(f"LocalCluster 2 / process pool 2, both with start-up: best {figures['cluster2_over_pool2']:.3f}, "
              f"per round {per_round} (target >= 0.9)")
        print(f"bytes per pair (blurry + sharp PNG): {figures['bytes_per_pair'] / 1e6:.2f} MB")
    for name, value in figures["driver_cpu_per_pair_s"].items():
        print(f"CPU per pair, {name}: {value['per pair'] * 1e3:.3f} ms over {args.small} pairs, "
              f"{value['marginal'] * 1e3:.3f} ms marginal (target <= 1 ms)")
    for workers in (1, 2) if args.pairs else ():
        peaks = ", ".join(f"{p / 2**20:.0f}" for p in figures[f"worker_peak_rss_{workers}"])
        print(f"peak RSS per worker, LocalCluster {workers}: {peaks} MiB (target <= 400 MB)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(figures, stream, indent=2)
    return figures


if __name__ == "__main__":
    main()
