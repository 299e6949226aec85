"""Training throughput of the real train@B loop (issue 13's GPU check; runs on CPU with small settings).

The product code end to end — `datasets.loader.TrainDataset` (random resized crop + flip from a uint8
cache), `training.ddp.make_loader` / `wrap`, `training.loop.train_epoch` (on CUDA: bf16 autocast and
channels_last) — on a random uint8 cache, plus the same loop fed GPU-resident uint8 batches (no
loading: the model's ceiling). Prints global images/s. Under torchrun every rank trains its share of
each global batch (DDP; nccl on GPUs, gloo on CPU) and rank 0 prints.

  python benchmarks/bench_gpu_train.py --arch resnet50 --size 224 --batch 256 --epochs 4
  python -m torch.distributed.run --standalone --nproc-per-node=8 benchmarks/bench_gpu_train.py ...
  python benchmarks/bench_gpu_train.py --arch tiny_gap_cnn --size 64 --batch 32 --images 256   # CPU smoke
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pipeline import distributed
from pipeline.datasets import loader
from pipeline.models import build_backbone
from pipeline.params import AugmentParams, BackboneParams
from pipeline.training import ddp
from pipeline.training.loop import make_optimizer, make_scheduler, setup_determinism, train_epoch


class _Resident:
    """Pre-made uint8 batches already on the device, shaped like `ddp.make_loader`'s output."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, steps: int, global_batch: int, world):
        self.x, self.y, self.steps = x, y, steps
        self.batch_sampler = type("S", (), {"step_sizes": lambda _: [global_batch] * steps})()

    def __iter__(self):
        return iter([(self.x, self.y)] * self.steps)

    def __len__(self) -> int:
        return self.steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224, help="training input size")
    ap.add_argument("--cache", type=int, default=256, help="side of the uint8 cache images")
    ap.add_argument("--batch", type=int, default=256, help="global batch size")
    ap.add_argument("--images", type=int, default=4096, help="images per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="the first is warm-up; the best of the rest counts")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--classes", type=int, default=100)
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    world = distributed.init(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
    setup_determinism(0, device)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.cache, args.cache, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, args.images)
    model = build_backbone(args.arch, args.classes).to(
        device, memory_format=torch.channels_last if device.type == "cuda" else torch.preserve_format)
    bp = BackboneParams(arch=args.arch, epochs=args.epochs, batch_size=args.batch, image_size=args.size)
    optimizer = make_optimizer(model, bp)
    net = ddp.wrap(model, world, device, sync_bn=False)
    dataset = loader.TrainDataset(images, labels, args.size, AugmentParams(), seed=0)
    batches, sampler = ddp.make_loader(dataset, args.batch, args.workers, world, device.type == "cuda")
    scheduler = make_scheduler(optimizer, bp, len(batches))
    rates = []
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        rates.append(train_epoch(net, batches, optimizer, scheduler, device, "train", world=world)[2])
    local = args.batch // world.size
    x = torch.randint(0, 256, (local, 3, args.size, args.size), dtype=torch.uint8, device=device)
    y = torch.randint(0, args.classes, (local,), device=device)
    resident = _Resident(x, y, max(2, len(batches)), args.batch, world)
    ceiling = max(train_epoch(net, resident, optimizer, scheduler, device, "resident", world=world)[2]
                  for _ in range(2))
    if world.is_root:
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        best = max(rates[1:] or rates)
        print(f"train {args.arch} {args.size}px, global batch {args.batch}, {world.size} × {name}"
              f"{' (bf16 autocast, channels_last)' if device.type == 'cuda' else ''}: {best:.0f} images/s with "
              f"the real loader ({args.workers} workers/process), {ceiling:.0f} images/s from resident batches")
    distributed.finish(world)


if __name__ == "__main__":
    main()
