"""The torch-side loader, for train@B and cams@B: the decoded uint8 image cache of `prepare` as model input.

`data/prepared/images.npy` holds every usable image straight-resized to S×S (docs/contracts.md), so no
stage re-decodes JPEGs. This module turns rows of it into tensors:

- `load_split(prepared_dir, split)` → the split's manifest rows and their N×S×S×3 uint8 images;
- `eval_batch(images, image_size, mean, std, device)` → the evaluation input: a straight resize from S
  to `image_size` (no crop, aspect ratio not kept, PROTOCOL §1) and normalisation;
- `TrainDataset` + `make_train_loader` → seeded augmentation (random resized crop, or the reference's
  resize-then-random-crop, + horizontal flip) that depends only on (seed, epoch, index), so the worker
  count never changes the results.

Resizing is one function, `resize_uint8`, used by both paths, so training and evaluation see the same
pixels for the same geometry.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.contracts import read_image_cache, read_samples
from pipeline.errors import CamlocError
from pipeline.parallel import fork_safe_opencv

log = logging.getLogger(__name__)

# ImageNet statistics: every torchvision weight set uses them, so every backbone does too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def model_normalisation(meta: dict) -> tuple[Sequence[float], Sequence[float]]:
    """(mean, std) a trained model expects, from its meta.json (ImageNet's when not recorded)."""
    return meta.get("mean", IMAGENET_MEAN), meta.get("std", IMAGENET_STD)

def load_split(prepared_dir: str | Path, split: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of one split (manifest order) and their cached images, row i ↔ image i.

    Returns `(samples, images)`: `images` is a uint8 (N, S, S, 3) array — a zero-copy memmap slice when
    the split's cache rows are contiguous (prepare writes them so), else an in-memory gather.
    """
    samples = read_samples(prepared_dir)
    images = read_image_cache(prepared_dir)
    rows = samples[samples["split"] == split].reset_index(drop=True)
    if rows.empty:
        splits = sorted(samples["split"].unique())
        raise CamlocError(
            f"{Path(prepared_dir) / 'samples.parquet'} has no images in split {split!r} "
            f"(splits present: {', '.join(splits) or 'none'}); check the split sizes in params.yaml"
        )
    idx = rows["cache_index"].to_numpy(dtype=np.int64)
    if idx.min() < 0 or idx.max() >= len(images):
        raise CamlocError(
            f"{Path(prepared_dir) / 'samples.parquet'}: cache_index {int(idx.max())} is outside images.npy "
            f"({len(images)} rows); the two files come from different runs: re-run `dvc repro prepare`"
        )
    if np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        return rows, images[idx[0] : idx[0] + len(idx)]
    return rows, np.asarray(images[idx])


# --------------------------------------------------------------------------------------------------
# Pixels → tensors


def resize_uint8(image: np.ndarray, size: int) -> np.ndarray:
    """Straight resize of one uint8 (H, W, 3) image to (size, size, 3).

    INTER_AREA when shrinking (what prepare uses), bilinear when enlarging.
    """
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return np.array(image)  # a writable copy, never a view of the read-only memmap
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=interp)


def normalize(
    batch: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels_last: bool = False
) -> torch.Tensor:
    """uint8 (N, 3, s, s) on any device → float32 normalised (N, 3, s, s)."""
    m = torch.tensor(mean, device=batch.device, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    sd = torch.tensor(std, device=batch.device, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    out = (batch.float() - m) / sd
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def to_chw_uint8(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, s, s, 3) numpy → uint8 (N, 3, s, s) tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def eval_batch(
    images: np.ndarray,
    image_size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Evaluation input: uint8 (N, S, S, 3) → float (N, 3, image_size, image_size) on `device`.

    Straight resize, no crop; channels_last on CUDA (faster convolutions under autocast).
    """
    resized = np.stack([resize_uint8(im, image_size) for im in images])  # (N, s, s, 3)
    x = to_chw_uint8(resized).to(device, non_blocking=True)
    return normalize(x, mean, std, channels_last=torch.device(device).type == "cuda")


def iter_eval_batches(
    images: np.ndarray, image_size: int, batch_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, device="cpu"
) -> Iterator[torch.Tensor]:
    """`eval_batch` over consecutive slices of `images`, so a large split never sits in memory as floats."""
    for start in range(0, len(images), batch_size):
        yield eval_batch(images[start : start + batch_size], image_size, mean, std, device)


# --------------------------------------------------------------------------------------------------
# Training input


def crop_box(rng: np.random.Generator, size: int, scale_min: float, ratio=(3 / 4, 4 / 3)) -> tuple:
    """A random-resized-crop window (y, x, h, w) in a size×size image, torchvision's sampling rule."""
    area = size * size
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale_min, 1.0)
        aspect = math.exp(rng.uniform(*log_r))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= size and 0 < h <= size:
            y = int(rng.integers(0, size - h + 1))
            x = int(rng.integers(0, size - w + 1))
            return y, x, h, w
    return 0, 0, size, size  # the whole image, as torchvision falls back for square inputs


def resize_then_crop(rng: np.random.Generator, image: np.ndarray, resize: int, crop: int) -> np.ndarray:
    """The reference's training geometry: straight resize to resize×resize, then a uniformly placed
    crop×crop window (torchvision's RandomCrop). uint8 (S, S, 3) → (crop, crop, 3); no copy of the
    resize when the cache already has side `resize`."""
    resized = resize_uint8(image, resize) if image.shape[0] != resize else image
    y = int(rng.integers(0, resize - crop + 1))
    x = int(rng.integers(0, resize - crop + 1))
    return np.array(resized[y : y + crop, x : x + crop])


class TrainDataset(Dataset):
    """Augmented training samples from the uint8 cache; item `(epoch, i)` → (uint8 (3, s, s), label).

    The augmentation of image i in epoch e depends only on (seed, e, i), so any number of DataLoader
    workers, and a run resumed at epoch e, see exactly the same pixels.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, image_size: int, augment, seed: int,
                 transform: str = "random_resized_crop", resize: int | None = None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if transform not in ("random_resized_crop", "resize_crop"):
            raise ValueError(f"unknown training transform {transform!r}")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)
        self.image_size, self.augment, self.seed = image_size, augment, seed
        self.transform, self.resize = transform, resize

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        image = self.images[i]  # (S, S, 3)
        if self.transform == "resize_crop":
            out = resize_then_crop(rng, image, self.resize or image.shape[0], self.image_size)
        else:
            y, x, h, w = crop_box(rng, image.shape[0], self.augment.scale_min)
            out = resize_uint8(image[y : y + h, x : x + w], self.image_size)  # (s, s, 3)
        if self.augment.hflip and rng.random() < 0.5:
            out = out[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1), int(self.labels[i])


class EpochSampler(Sampler):
    """Yields `(epoch, i)` in a permutation seeded by (seed, epoch); call `set_epoch` before each epoch."""

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else range(self.n)
        return iter([(self.epoch, int(i)) for i in order])

    def __len__(self) -> int:
        return self.n


def make_train_loader(
    dataset: TrainDataset, batch_size: int, workers: int, pin_memory: bool = False
) -> tuple[DataLoader, EpochSampler]:
    """A DataLoader over `dataset` with an `EpochSampler` (returned too, for `set_epoch`).

    Keeps the last partial batch (tiny datasets), yields uint8 batches: normalise on the device.
    """
    sampler = EpochSampler(len(dataset), dataset.seed)
    if workers > 0:
        fork_safe_opencv()
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        worker_init_fn=_worker_init,
    )
    return loader, sampler


def _worker_init(_: int) -> None:
    # One torch thread per worker: on few cores, oversubscription costs more than it gives. (OpenCV's
    # threads were turned off in the parent before the fork: see pipeline.parallel.)
    torch.set_num_threads(1)
