"""Does the training input pipeline starve the model?

Trains the same backbone, batch size and resolution two ways in one process, interleaved in rounds so
machine load hits both alike:
  loader  — the real input: `datasets.loader.TrainDataset` (random resized crop + flip from the uint8 cache)
            through `make_train_loader` with --workers processes;
  tensors — the same loop fed pre-made uint8 batches (no decoding, no augmentation).
Prints images/s for both and RATIO = loader / tensors (goal >= 0.9).

  python benchmarks/bench_train_loader.py [--prepared data/prepared] [--arch tiny_gap_cnn] [--size 128]

Without a prepared dir (or when it is missing) a random uint8 cache of --cache px is used; the
augmentation cost is the same for any pixel values.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from pipeline.datasets import loader as imagecache
from pipeline.models import build_backbone
from pipeline.params import AugmentParams, BackboneParams
from pipeline.training.loop import make_optimizer


def _images(args) -> tuple[np.ndarray, np.ndarray]:
    if args.prepared and (Path(args.prepared) / "images.npy").is_file():
        rows, images = imagecache.load_split(args.prepared, "train")
        return images, rows["label"].to_numpy()
    rng = np.random.default_rng(0)
    n = args.batch * args.batches * 2
    return rng.integers(0, 256, (n, args.cache, args.cache, 3), dtype=np.uint8), rng.integers(0, 6, n)


def _step(model, optimizer, images: torch.Tensor, labels: torch.Tensor) -> None:
    x = imagecache.normalize(images, imagecache.IMAGENET_MEAN, imagecache.IMAGENET_STD)
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--arch", default="tiny_gap_cnn")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--cache", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=8, help="batches per round and way")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    args = ap.parse_args()

    torch.manual_seed(0)
    images, labels = _images(args)
    num_classes = int(labels.max()) + 1
    model = build_backbone(args.arch, num_classes).train()
    optimizer = make_optimizer(model, BackboneParams(lr=0.01))
    dataset = imagecache.TrainDataset(images, labels, args.size, AugmentParams(), seed=0)
    loader, sampler = imagecache.make_train_loader(dataset, args.batch, args.workers)
    premade_x = torch.stack([dataset[(0, i)][0] for i in range(args.batch)])  # (B, 3, s, s) uint8
    premade_y = torch.tensor(labels[: args.batch], dtype=torch.long)

    for _ in range(2):  # warm-up: allocator, oneDNN kernels, worker start
        _step(model, optimizer, premade_x, premade_y)
    stream = iter(())
    epoch = itertools.count()
    totals = {"loader": 0.0, "tensors": 0.0}
    for _ in range(args.rounds):
        start = time.perf_counter()
        for _ in range(args.batches):
            batch = next(stream, None)
            if batch is None:
                sampler.set_epoch(next(epoch))
                stream = iter(loader)
                batch = next(stream)
            _step(model, optimizer, *batch)
        totals["loader"] += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.batches):
            _step(model, optimizer, premade_x, premade_y)
        totals["tensors"] += time.perf_counter() - start
    n = args.rounds * args.batches * args.batch
    ips = {k: n / v for k, v in totals.items()}
    print(f"{args.arch} @ {args.size}px, batch {args.batch}, workers {args.workers}, {torch.get_num_threads()} threads")
    print(f"loader  {ips['loader']:8.1f} images/s")
    print(f"tensors {ips['tensors']:8.1f} images/s")
    print(f"RATIO {ips['loader'] / ips['tensors']:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
