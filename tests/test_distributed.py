"""The one-process world and exact sharding (the multi-process runs are tested by the stages)."""

import pytest

from pipeline import distributed
from pipeline.distributed import World


@pytest.mark.parametrize("n", [0, 1, 5, 7, 64])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_cover_every_item_once_in_order(n, size):
    shards = [distributed.shard(n, World(rank=r, size=size, local_rank=r)) for r in range(size)]
    assert [i for s in shards for i in s] == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_plain_process_is_rank_zero_of_one(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.init("cpu") == distributed.SINGLE
    assert not distributed.under_torchrun()


def test_torchrun_environment_is_read_and_checked(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.world_from_env() == World(rank=2, size=4, local_rank=0)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(distributed.DistributedError, match="RANK=4"):
        distributed.world_from_env()


def test_nccl_without_gpus_names_gloo(monkeypatch):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(distributed.DistributedError, match="gloo"):
        distributed.init("cuda")


@pytest.mark.parametrize("n,batch,size", [(21, 10, 2), (21, 8, 2), (20, 4, 4), (5, 4, 4), (7, 6, 3)])
def test_ranks_share_each_global_batch_of_the_one_process_order(n, batch, size):
    pytest.importorskip("torch")
    from pipeline.training.ddp import GlobalBatchSampler

    one = GlobalBatchSampler(n, seed=3, global_batch=batch)
    ranks = [GlobalBatchSampler(n, seed=3, global_batch=batch, world=World(r, size, r)) for r in range(size)]
    for s in (one, *ranks):
        s.set_epoch(2)
    steps = [list(step) for step in zip(*ranks, strict=True)]  # every rank runs every step
    assert len(steps) == len(one) == len(list(one))
    for whole, parts in zip(one, steps, strict=True):
        kept = [key for part in parts for key in part if key[2]]
        assert kept == whole, "the ranks' kept images are the one-process batch, in order"
        assert all(part for part in parts), "no rank has an empty step (DDP needs all of them)"
        assert max(len(p) for p in parts) <= batch // size
    assert one.step_sizes() == [len(b) for b in one]


def test_a_global_batch_that_does_not_split_is_refused():
    pytest.importorskip("torch")
    from pipeline.errors import CamlocError, ParamsError
    from pipeline.params import BackboneParams
    from pipeline.training.ddp import GlobalBatchSampler

    with pytest.raises(CamlocError, match="multiple of 4"):
        GlobalBatchSampler(10, 0, 6, World(0, 4, 0))
    with pytest.raises(ParamsError, match=r"batch_size = 6 .*multiple of b.nproc \(4\)"):
        BackboneParams(batch_size=6, nproc=4).validate("b")
    with pytest.raises(ParamsError, match=r"b.nproc = 0"):
        BackboneParams(nproc=0).validate("b")


def test_relaunch_goes_through_torchruns_own_entry_point():
    cmd = distributed.relaunch_command(3, ["train", "B", "--params", "p.yaml"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=3" in cmd
    assert cmd[-6:] == ["-m", "pipeline", "train", "B", "--params", "p.yaml"]


def test_a_failed_relaunch_names_torchruns_report():
    pytest.importorskip("torch")
    # One process is enough to see the failure path: the child exits 2 (unknown command), torchrun reports it.
    with pytest.raises(distributed.DistributedError, match=r"torchrun \(1 processes\) failed .*ChildFailedError"):
        distributed.relaunch(1, ["no-such-command"], "test")
