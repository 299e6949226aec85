"""torch.distributed plumbing for the stages that run under torchrun (train, cams, evaluate).

We use torch's own engine and launcher (`torchrun` / `python -m torch.distributed.run`), never one of
our own. A plain `python -m pipeline ...` is the one-process world: rank 0 of 1, no process group,
and no torch import, so the torch-free stages stay torch-free when they are not distributed.

Sharding is contiguous and exact (every item on exactly one rank, no padding), unlike the stock
DistributedSampler, which repeats items to even out the ranks: a repeated image would be dumped or
scored twice. Contiguous shards let the root assemble outputs in manifest order by concatenation.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass

from .errors import CamlocError

log = logging.getLogger(__name__)

# torchrun sets these for every process it launches.
_ENV_RANK, _ENV_WORLD, _ENV_LOCAL = "RANK", "WORLD_SIZE", "LOCAL_RANK"
_ENV_LOCAL_WORLD = "LOCAL_WORLD_SIZE"


class DistributedError(CamlocError):
    """A distributed run that cannot start or finish; the message names the fix."""


@dataclass(frozen=True)
class World:
    rank: int  # global rank of this process
    size: int  # number of processes in the job
    local_rank: int  # rank on this node: picks the GPU

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World(rank=0, size=1, local_rank=0)


def world_from_env() -> World:
    """The world torchrun describes in the environment; the one-process world otherwise."""
    try:
        size = int(os.environ.get(_ENV_WORLD, "1"))
        rank = int(os.environ.get(_ENV_RANK, "0"))
        local = int(os.environ.get(_ENV_LOCAL, "0"))
    except ValueError as err:
        raise DistributedError(f"bad torchrun environment ({err}); launch with torchrun or unset "
                               f"{_ENV_RANK}/{_ENV_WORLD}/{_ENV_LOCAL}") from None
    if size < 1 or not 0 <= rank < size:
        raise DistributedError(f"bad torchrun environment: {_ENV_RANK}={rank} {_ENV_WORLD}={size}")
    return World(rank=rank, size=size, local_rank=local)


def under_torchrun() -> bool:
    return _ENV_WORLD in os.environ


def backend_for(device: str) -> str:
    """nccl for CUDA devices, gloo for CPU: the backends torch supports best on each."""
    return "nccl" if device.startswith("cuda") else "gloo"


def init(device: str = "cpu", backend: str | None = None) -> World:
    """Join the process group torchrun set up (no-op for one process) and return this process's world.

    `device` is the device the stage will run on ("cpu", "cuda"); under torchrun a CUDA process uses
    the GPU of its local rank.
    """
    world = world_from_env()
    if not world.distributed:
        return world
    import torch
    import torch.distributed as dist

    backend = backend or backend_for(device)
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError("the nccl backend needs CUDA GPUs and none is visible; on CPU use the "
                               "gloo backend (it is chosen automatically for device cpu)")
    if backend == "nccl":
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
        log.info("rank %d/%d joined the %s process group", world.rank, world.size, backend)
    return world


def shard(n: int, world: World) -> range:
    """This rank's contiguous share of n items: sizes differ by at most one, none repeated."""
    base, extra = divmod(n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return range(start, start + base + (1 if world.rank < extra else 0))


def gather_to_root(obj, world: World) -> list | None:
    """Every rank's picklable `obj` on rank 0, in rank order (other ranks get None); [obj] for one process.

    With contiguous `shard`s, concatenating the list gives the items in their original order.
    """
    if not world.distributed:
        return [obj]
    import torch.distributed as dist

    out = [None] * world.size if world.is_root else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def finish(world: World) -> None:
    """Leave the process group cleanly (a no-op for one process)."""
    if world.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def local_processes() -> int:
    """Processes of this job on this node (torchrun's LOCAL_WORLD_SIZE; 1 outside torchrun): they share
    its cores, so each takes its share of the threads."""
    try:
        return max(1, int(os.environ.get(_ENV_LOCAL_WORLD, "1")))
    except ValueError:
        return 1


def all_reduce_sum(values: list[float], world: World) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64; the values themselves for one process)."""
    if not world.distributed:
        return list(values)
    import torch
    import torch.distributed as dist

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.cpu().tolist()


def relaunch_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that re-runs `python -m pipeline <argv>` as nproc processes through torchrun's own
    entry point, on this node (used when params ask for nproc > 1 and we are not under torchrun yet)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "pipeline", *argv]


def relaunch(nproc: int, argv: list[str], what: str) -> None:
    """Run `python -m pipeline <argv>` as nproc processes under torchrun, on this node, and wait.

    For a stage whose params ask for nproc > 1 when it was started without torchrun (`dvc repro`), so one
    dvc.yaml serves every process count. A failed job raises DistributedError naming torchrun's report
    (printed above by torchrun: the ChildFailedError table names the rank, its exit code and error).
    """
    import subprocess

    from pipeline import threads

    cmd = relaunch_command(nproc, argv)
    log.info("%s: relaunching as %d processes: %s", what, nproc, " ".join(cmd))
    # torchrun gives each child OMP_NUM_THREADS=1 unless it is set; the thread policy divides this
    # process's allowed cores among the children instead (CAMLOC_THREADS is read before OMP_NUM_THREADS)
    env = os.environ | {threads.ENV_THREADS: str(threads.allowed_cores())}
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise DistributedError(
            f"{what}: torchrun ({nproc} processes) failed with exit code {rc}; its ChildFailedError report "
            f"above names the rank that failed and why. No final output was written; rerun the stage "
            f"(training with resume: true continues from the last finished epoch)")
