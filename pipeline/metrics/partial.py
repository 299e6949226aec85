"""Sharded evaluate-maps across separate jobs (SLURM arrays, a DVC queue): ``camloc evaluate-maps
--shard K/N --out PART.npz`` scores the K-th of N contiguous shards of the boxes CSV's images (image_id
order, ``distributed.shard``) and writes its ``EvalState``; ``camloc merge-eval PART... --out JSON``
merges every shard and writes the JSON and per-image CSV a one-process run writes, byte for byte.

A partial's header carries ``shard``, ``world`` and a ``fingerprint`` of the run's inputs and params
(the boxes CSV's SHA-256, the names and sizes of the map files, the masks folder's file names and
sizes, interval, raw, size, skip_bad), so merge-eval refuses shards of different runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pipeline.distributed import World, shard
from pipeline.errors import CamlocError
from pipeline.metrics import state as S
from pipeline.metrics.boxes import taus
from pipeline.metrics.folder import check_size, count_unscored, finish, read_boxes, score
from pipeline.metrics.pointing import DEFAULT_TOLERANCE
from pipeline.progress import Bar, no_bar


def parse_shard(text: str) -> tuple[int, int]:
    """"K/N" → (K, N), 0 ≤ K < N (K is 0-based, as SLURM_ARRAY_TASK_ID with --array=0-(N-1))."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise CamlocError(f"--shard {text!r}: expected K/N with 0 <= K < N (K is 0-based), e.g. 0/4 ... 3/4")
    return int(m[1]), int(m[2])


def _listing(folder: Path | None, suffix: str) -> str:
    """SHA-256 of the sorted (name, size) of the folder's ``suffix`` files: cheap, catches a changed set."""
    if folder is None:
        return "none"
    digest = hashlib.sha256()
    try:
        with os.scandir(folder) as entries:
            for name, size in sorted((e.name, e.stat().st_size) for e in entries
                                     if e.name.endswith(suffix) and e.is_file()):
                digest.update(f"{name}\0{size}\n".encode())
    except OSError as e:
        raise CamlocError(f"{folder}: cannot list the folder ({e})") from e
    return digest.hexdigest()


def fingerprint(maps_dir: Path, boxes_csv: Path, masks_dir: Path | None, interval: float, raw: bool,
                size: int | None, skip_bad: bool, pointing_tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """What must agree between the shards of one run (see the module docstring)."""
    return {"boxes_sha256": hashlib.sha256(Path(boxes_csv).read_bytes()).hexdigest(),
            "maps": _listing(Path(maps_dir), ".npy"), "masks": _listing(masks_dir, ".png"),
            "interval": float(interval), "raw": bool(raw), "size": size, "skip_bad": bool(skip_bad),
            "pointing_tolerance": float(pointing_tolerance)}


def run_shard(maps_dir, boxes_csv, shard_spec: str, out, masks=None, interval: float = 0.01, raw: bool = False,
              skip_bad: bool = False, workers: int | None = None, bar: Bar = no_bar, size: int | None = None,
              pointing_tolerance: float = DEFAULT_TOLERANCE) -> str:
    """Score shard K of N and write its partial state to ``out``; returns a one-line summary.

    Shard 0 also counts the maps with no CSV row (once for the whole run, so counts add up).
    """
    k, n = parse_shard(shard_spec)
    maps_dir, masks_dir = Path(maps_dir), (Path(masks) if masks is not None else None)
    check_size(size)
    grid = taus(interval)
    table = read_boxes(Path(boxes_csv))
    items = list(table.items())
    part = shard(len(items), World(rank=k, size=n, local_rank=0))
    state = S.EvalState.empty(grid, masks_dir is not None, pointing_tolerance)
    if len(part):
        state = score(maps_dir, dict(items[part.start:part.stop]), masks_dir, grid, raw, skip_bad, size, workers, bar,
                      pointing_tolerance)
    state.n_unscored = count_unscored(maps_dir, table) if k == 0 else 0
    header = {"shard": k, "world": n, "images": [part.start, part.stop], "n_table": len(items),
              "boxes_csv": str(boxes_csv), "masks_dir": None if masks_dir is None else str(masks_dir),
              "fingerprint": fingerprint(maps_dir, Path(boxes_csv), masks_dir, interval, raw, size, skip_bad,
                                            pointing_tolerance)}
    S.save(Path(out), state, header)
    return (f"evaluate-maps shard {k}/{n}: {len(state.ids)} scored, {len(state.skipped)} skipped "
            f"(images {part.start}..{part.stop - 1} of {len(items)}) → {out}")


def merge_eval(partials: list, out=None, per_image=None) -> dict:
    """Merge every shard's partial state; the JSON (and per-image CSV) of the unsharded run."""
    paths = [Path(p) for p in partials]
    merged, header = S.merge_partials(paths)
    return finish(merged, header["fingerprint"]["interval"], header["boxes_csv"], header["masks_dir"], out, per_image)
