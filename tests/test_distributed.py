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
