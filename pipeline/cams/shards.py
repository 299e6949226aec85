"""Map dumping across processes (torchrun), for cams@B; one process is the plain per-split loop.

Sharding is exact: the splits' batches (the same `cams.batch_size` batches one process runs, in
manifest order) are dealt out contiguously to the ranks — every image on exactly one rank, never the
stock DistributedSampler's padding with repeats. As each rank runs the very batches one process
would, predictions and maps come out as a one-process run computes them. Each rank writes its part of
each split to a scratch file next to the output (on the shared file system for several nodes); after
a barrier rank 0 concatenates the parts in rank order, which is manifest order, and hands each split
to the stage to store. A rank that dies leaves only scratch files, which the next run removes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.atomic import TMP_PREFIX
from pipeline.cams.dump import dump_split
from pipeline.distributed import World, barrier, shard
from pipeline.progress import Bar, no_bar

PRED_KEYS = ("pred", "top5", "top5_prob")


def rank_ranges(sizes: dict[str, int], batch_size: int, world: World) -> dict[str, range]:
    """Per split, the rows this rank dumps: a contiguous run of whole batches, balanced over all splits."""
    units = [(split, start) for split, n in sizes.items() for start in range(0, n, batch_size)]
    mine = units[shard(len(units), world).start : shard(len(units), world).stop]
    out = {}
    for split, n in sizes.items():
        starts = [s for sp, s in mine if sp == split]
        out[split] = range(starts[0], min(starts[-1] + batch_size, n)) if starts else range(0)
    return out


def scratch_file(out_dir: Path, split: str, rank: int) -> Path:
    """Where `rank` leaves its part of `split`: an atomic_path-style sibling that clean_own_tmp removes."""
    return out_dir.parent / f"{TMP_PREFIX}{out_dir.name}.part-{split}-{rank:05d}.npz"


def dump_splits(model, meta, splits: dict, params_cams, desc: str, world: World, out_dir: Path,
                bar: Bar = no_bar, methods=None) -> Iterator[tuple[str, dict, dict, float]]:
    """Yield (split, {(method, kind): (N, h, w) float32}, predictions, images/s) in split order: on every
    split for one process; under torchrun on rank 0 only, once all ranks have dumped their shares
    (the other ranks yield nothing). `methods`: names or MapJobs (default `params_cams.methods`)."""
    methods = params_cams.methods if methods is None else methods
    if not world.distributed:
        for split, (rows, images) in splits.items():
            yield (split, *dump_split(model, meta, images, rows["label"].to_numpy(copy=True), methods,
                                      params_cams, f"{desc} {split}", bar))
        return
    start = time.perf_counter()
    ranges = rank_ranges({s: len(rows) for s, (rows, _) in splits.items()}, params_cams.batch_size, world)
    for split, (rows, images) in splits.items():
        r = ranges[split]
        if not len(r):
            continue
        labels = rows["label"].to_numpy(copy=True)[r.start : r.stop]
        maps, preds, _ = dump_split(model, meta, images[r.start : r.stop], labels, methods, params_cams,
                                    f"{desc} {split} (rank {world.rank})", bar if world.is_root else no_bar)
        arrays = {f"map:{m}:{kind}": a for (m, kind), a in maps.items()} | {f"pred:{k}": preds[k] for k in PRED_KEYS}
        with open(scratch_file(out_dir, split, world.rank), "wb") as f:
            np.savez(f, **arrays)
    barrier(world)  # every part is on disk
    if not world.is_root:
        return
    rate = sum(len(rows) for rows, _ in splits.values()) / max(time.perf_counter() - start, 1e-9)
    for split in splits:
        maps, preds = _gather(out_dir, split, world)
        yield split, maps, preds, rate


def _gather(out_dir: Path, split: str, world: World) -> tuple[dict, dict]:
    parts = []
    for rank in range(world.size):
        path = scratch_file(out_dir, split, rank)
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                parts.append({k: z[k] for k in z.files})
            path.unlink()
    maps = {tuple(k.split(":")[1:]): np.concatenate([p[k] for p in parts]) for k in parts[0] if k.startswith("map:")}
    preds = {k: np.concatenate([p[f"pred:{k}"] for p in parts]) for k in PRED_KEYS}
    return maps, preds

