"""SBDD pairs split over torch.distributed ranks: disjoint shares whose union is the
one-process stream, balanced, in step over epochs, composed with DataLoader workers.

Most checks give ``rank=`` and ``world_size=`` explicitly (one process); one test starts
two gloo processes on 127.0.0.1 and lets the datasets read both from torch.distributed.
"""
import datetime
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, DistributedSampler  # noqa: E402

from fastblur.torch import SBDDDataset, SBDDLoader, SBDDMapDataset  # noqa: E402
from conftest import free_port  # noqa: E402

TINY = dict(crop_size=32, kernel_size=7, masks="shapes", max_objects=2, min_object_area=100, seed=11)
LENGTH, BATCH = 7, 2  # blocks of 2, 2, 2 and 1 pairs


def _batches(loader):
    return [(blurry.clone(), sharp.clone()) for blurry, sharp in loader]


def _one_process(epoch, length=LENGTH):
    """The batches of the one-process stream of ``epoch``."""
    dataset = SBDDDataset(length=length, batch_size=BATCH, **TINY)
    dataset.set_epoch(epoch)
    batches = _batches(DataLoader(dataset, batch_size=BATCH))
    pairs = [bytes(blurry.numpy()) for batch, _ in batches for blurry in batch]
    assert len(set(pairs)) == length  # every pair differs from the others
    return batches


def _assert_same(first, second):
    assert len(first) == len(second)
    for (b0, s0), (b1, s1) in zip(first, second, strict=True):
        assert torch.equal(b0, b1) and torch.equal(s0, s1)


def _assert_shares(shares, alone):
    """Rank ``r`` of ``R`` holds the one-process batches ``r, r + R, ...``: the shares are
    disjoint, their union is the one-process stream, their sizes differ by a batch at most."""
    world_size = len(shares)
    for rank, share in enumerate(shares):
        _assert_same(share, alone[rank::world_size])
    pairs = [sum(len(blurry) for blurry, _ in share) for share in shares]
    assert sum(pairs) == sum(len(blurry) for blurry, _ in alone)
    assert max(pairs) - min(pairs) <= BATCH


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_share_the_one_process_stream(world_size):
    for epoch in (0, 1):
        alone = _one_process(epoch)
        shares = []
        for rank in range(world_size):
            dataset = SBDDDataset(length=LENGTH, batch_size=BATCH, rank=rank, world_size=world_size, **TINY)
            dataset.set_epoch(epoch)
            loader = DataLoader(dataset, batch_size=BATCH, num_workers=2 if rank == world_size - 1 else 0)
            shares.append(_batches(loader))
            assert len(dataset) == sum(len(blurry) for blurry, _ in shares[-1])
            assert len(loader) == len(shares[-1])
        _assert_shares(shares, alone)


def test_drop_last_gives_every_rank_the_same_whole_batches():
    alone = _one_process(0, length=11)  # blocks 2 2 2 2 2 1: with 2 ranks, 4 whole ones are kept
    shares = []
    for rank in range(2):
        dataset = SBDDDataset(length=11, batch_size=BATCH, drop_last=True, rank=rank, world_size=2, **TINY)
        shares.append(_batches(DataLoader(dataset, batch_size=BATCH, num_workers=2 * rank)))
        assert len(dataset) == 4
    _assert_shares(shares, alone[:4])
    assert [len(blurry) for share in shares for blurry, _ in share] == [BATCH] * 4


def test_loader_ranks_share_the_one_process_stream():
    alone = _one_process(1)
    shares = []
    for rank in range(3):
        loader = SBDDLoader(length=LENGTH, batch_size=BATCH, device="cpu", rank=np.int64(rank), world_size=3,
                            num_workers=2 * (rank == 1), **TINY)
        loader.set_epoch(1)
        shares.append(_batches(loader))
        assert len(loader) == len(shares[-1]) == (2 if rank == 0 else 1)
    _assert_shares(shares, alone)


def test_map_dataset_with_distributed_sampler():
    dataset = SBDDMapDataset(length=LENGTH, **TINY)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        seen = []
        for rank in range(2):
            sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=4, drop_last=True)
            sampler.set_epoch(epoch)
            indices = list(sampler)
            batches = _batches(DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=2 * rank))
            for (blurry, sharp), start in zip(batches, range(0, len(indices), BATCH), strict=True):
                for row, index in enumerate(indices[start : start + BATCH]):
                    expected = dataset.pair(index, epoch)
                    assert torch.equal(blurry[row], expected[0]) and torch.equal(sharp[row], expected[1])
            seen += indices
        assert len(seen) == len(set(seen)) == LENGTH - 1  # drop_last: disjoint, one left out


def test_bad_ranks_are_named():
    with pytest.raises(TypeError, match="rank and world_size together"):
        SBDDDataset(rank=1, **TINY)
    with pytest.raises(ValueError, match="rank must be < world_size = 2, got 2"):
        SBDDDataset(rank=2, world_size=2, **TINY)
    with pytest.raises(ValueError, match="world_size must be >= 1"):
        SBDDLoader(device="cpu", rank=0, world_size=0, **TINY)
    with pytest.raises(TypeError, match="rank must be an integer"):
        SBDDLoader(device="cpu", rank=0.0, world_size=2, **TINY)
    dataset = SBDDDataset(**TINY)
    assert (dataset.rank, dataset.world_size) == (0, 1)  # torch.distributed not initialised


# -- two real processes -------------------------------------------------------------------
def _rank_main(rank, world_size, out):
    """One rank: rank and world size from torch.distributed; its batches saved to ``out``."""
    # DataLoader workers fork, as in the plain processes torchrun starts (the spawned rank
    # inherits "spawn", and a spawned worker imports everything again: seconds each)
    torch.multiprocessing.set_start_method("fork", force=True)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size,
                                         timeout=datetime.timedelta(seconds=120))
    try:
        dataset = SBDDDataset(length=LENGTH, batch_size=BATCH, **TINY)
        loader = SBDDLoader(length=LENGTH, batch_size=BATCH, device="cpu", **TINY)
        mapped = SBDDMapDataset(length=LENGTH, **TINY)
        persistent = DataLoader(dataset, batch_size=BATCH, num_workers=2, persistent_workers=True)
        result = {"ranks": [(dataset.rank, dataset.world_size), (loader.rank, loader.world_size)],
                  "len": (len(dataset), len(loader))}
        for epoch in (0, 1):
            for each in (dataset, loader, mapped):
                each.set_epoch(epoch)
            for workers in (0, 2):
                result["stream", epoch, workers] = _batches(DataLoader(dataset, batch_size=BATCH, num_workers=workers))
            result["stream", epoch, "persistent"] = _batches(persistent)
            result["loader", epoch] = _batches(loader)
            sampler = DistributedSampler(mapped, shuffle=False)
            sampler.set_epoch(epoch)
            result["map", epoch] = list(sampler), _batches(DataLoader(mapped, batch_size=BATCH, sampler=sampler))
        torch.save(result, os.path.join(out, f"rank{rank}.pt"))
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "lo")
    torch.multiprocessing.spawn(_rank_main, args=(2, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=False) for rank in range(2)]
    assert [r["ranks"] for r in results] == [[(0, 2)] * 2, [(1, 2)] * 2]
    assert [r["len"] for r in results] == [(4, 2), (3, 2)]
    mapped = SBDDMapDataset(length=LENGTH, **TINY)
    for epoch in (0, 1):
        alone = _one_process(epoch)
        for key in [("stream", epoch, 0), ("stream", epoch, 2), ("stream", epoch, "persistent"), ("loader", epoch)]:
            _assert_shares([r[key] for r in results], alone)
        # DistributedSampler pads 7 indices to 8 (index 0 twice): every pair is dataset[i] of the epoch
        assert sorted(i for r in results for i in r["map", epoch][0]) == [0, 0, 1, 2, 3, 4, 5, 6]
        for indices, batches in (r["map", epoch] for r in results):
            blurry = torch.cat([b for b, _ in batches])
            for row, index in enumerate(indices):
                assert torch.equal(blurry[row], mapped.pair(index, epoch)[0])
