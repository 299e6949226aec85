"""Training across processes (torch DistributedDataParallel), for train@B; one process is the N = 1 case.

The global batch (`backbones.<key>.batch_size`) means the same at every process count: step k of an
epoch takes the same images as in a one-process run — items [k·B, (k+1)·B) of the epoch's permutation,
seeded by (seed, epoch) — and rank r takes its contiguous share of them (B/N each). Augmentation
depends only on (seed, epoch, image), so every rank sees the pixels one process would.

Gradients: each rank's loss is its *sum* of per-image losses × N / (images in the global step), and DDP
averages gradients over the N ranks, so the update is the gradient of the global-batch mean loss, also
for the last, smaller step of an epoch (nothing dropped, nothing counted twice). Only when that last
step has fewer images than ranks does a rank get a padding image, whose label is IGNORE (no loss, no
gradient): DDP needs every rank in every step. With BatchNorm the batch statistics are per process
(B/N images each) unless `sync_bn: true` (torch's SyncBatchNorm, GPUs only), so N > 1 then trains a
slightly different model than one process; without BatchNorm it is the same model up to float
summation order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.distributed import SINGLE, World, shard
from pipeline.errors import CamlocError
from pipeline.parallel import fork_safe_opencv

IGNORE = -100  # cross_entropy's ignore_index: a padding image


class Padded(Dataset):
    """`dataset` read by keys (epoch, i, keep): a kept image as is, a padding image with label IGNORE."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int, bool]):
        epoch, i, keep = key
        image, label = self.dataset[(epoch, i)]
        return image, (label if keep else IGNORE)


class GlobalBatchSampler(Sampler):
    """This rank's share of every global batch of an epoch, as lists of (epoch, i, keep) keys.

    Call `set_epoch` before each epoch. `step_sizes()` are the global batch sizes (images, not padding)."""

    def __init__(self, n: int, seed: int, global_batch: int, world: World = SINGLE):
        if global_batch % world.size:
            raise CamlocError(f"the global batch size {global_batch} does not split evenly over {world.size} "
                              f"processes; make backbones.<key>.batch_size a multiple of {world.size}")
        self.n, self.seed, self.batch, self.world, self.epoch = n, seed, global_batch, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def step_sizes(self) -> list[int]:
        return [min(self.batch, self.n - start) for start in range(0, self.n, self.batch)]

    def __iter__(self) -> Iterator[list[tuple[int, int, bool]]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)  # the one-process order
        for start in range(0, self.n, self.batch):
            step = order[start : start + self.batch]
            mine = step[shard(len(step), self.world).start : shard(len(step), self.world).stop]
            if len(mine):
                yield [(self.epoch, int(i), True) for i in mine]
            else:  # fewer images than ranks in the last step
                yield [(self.epoch, int(step[0]), False)]

    def __len__(self) -> int:
        return len(self.step_sizes())


def make_loader(dataset, global_batch: int, workers: int, world: World = SINGLE,
                pin_memory: bool = False) -> tuple[DataLoader, GlobalBatchSampler]:
    """A DataLoader yielding this rank's uint8 share of each global batch, and its sampler (for set_epoch)."""
    sampler = GlobalBatchSampler(len(dataset), dataset.seed, global_batch, world)
    if workers > 0:
        fork_safe_opencv()
    batches = DataLoader(Padded(dataset), batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                         persistent_workers=workers > 0, worker_init_fn=_worker_init)
    return batches, sampler


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # as datasets.loader: on few cores oversubscription costs more than it gives


def global_mean_loss(logits: torch.Tensor, labels: torch.Tensor, step_size: int, world: World) -> torch.Tensor:
    """This rank's share of the global-batch mean cross-entropy; DDP's gradient average makes it whole."""
    total = nn.functional.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
    return total * (world.size / step_size)


def wrap(model: nn.Module, world: World, device: torch.device, sync_bn: bool) -> nn.Module:
    """The module to train: `model` itself for one process, else DDP around it (SyncBatchNorm first when
    asked). Optimisers, checkpoints and evaluation keep using `model`: DDP shares its parameters."""
    if not world.distributed:
        return model
    if sync_bn:
        if device.type != "cuda":
            raise CamlocError("sync_bn: true needs GPUs (torch's SyncBatchNorm has no CPU kernel); set "
                              "sync_bn: false (BatchNorm statistics per process) for CPU runs")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else world.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(net: nn.Module) -> nn.Module:
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net


def broadcast_buffers(model: nn.Module, world: World) -> None:
    """Rank 0's BatchNorm running statistics on every rank (each rank updated its own in the last step),
    so validation on any rank scores the model rank 0 saves."""
    if not world.distributed:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        dist.broadcast(buf.data, src=0)
