"""Sharded evaluate-maps across separate jobs (SLURM arrays, a DVC queue): ``camloc evaluate-maps
--shard K/N --out PART.npz`` scores the K-th of N contiguous shards of the boxes CSV's images (image_id
order, ``distributed.shard``) and writes its ``EvalState``; ``camloc merge-eval PART... --out JSON``
merges every shard and writes the JSON and per-image CSV a one-process run writes, byte for byte.

A partial's header carries ``shard``, ``world`` and a ``fingerprint`` of the run's inputs and params
(the boxes CSV's SHA-256, the names and sizes of the map files, the masks folder's file names and
sizes, interval, raw, size, skip_bad), so merge-eval refuses shards of different runs; the partial also
holds the SHA-256 of every map and mask it read (hashed from the bytes read for scoring), and merge-eval
checks those and the CSV's against the files on disk, so a shard scored on other contents is refused.
The file itself is checked by ``metrics.partialfile`` (its arrays' digests, sizes, consistency).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from pipeline.atomic import check_replaceable
from pipeline.distributed import World, shard
from pipeline.errors import CamlocError
from pipeline.metrics import partialfile as F
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

    Shard 0 also counts the maps with no CSV row (once for the whole run, so counts add up). The partial
    records the SHA-256 of every map and mask it read, computed from the bytes read for scoring.
    """
    k, n = parse_shard(shard_spec)
    maps_dir, masks_dir = Path(maps_dir), (Path(masks) if masks is not None else None)
    check_size(size)
    grid = taus(interval)
    table = read_boxes(Path(boxes_csv))
    items = list(table.items())
    if n > len(items):
        raise CamlocError(f"--shard {k}/{n}: {n} shards of {len(items)} images in {boxes_csv}; use at most "
                          f"{len(items)} shards (one image each), so that no shard is empty")
    check_replaceable(out, "file")  # before the scoring, not after it
    part = shard(len(items), World(rank=k, size=n, local_rank=0))
    reads: dict[str, str] = {}
    state = score(maps_dir, dict(items[part.start:part.stop]), masks_dir, grid, raw, skip_bad, size, workers, bar,
                  pointing_tolerance, digests=reads)
    state.n_unscored = count_unscored(maps_dir, table) if k == 0 else 0
    header = {"shard": k, "world": n, "images": [part.start, part.stop], "n_table": len(items),
              "boxes_csv": str(boxes_csv), "masks_dir": None if masks_dir is None else str(masks_dir),
              "maps_dir": str(maps_dir),
              "fingerprint": fingerprint(maps_dir, Path(boxes_csv), masks_dir, interval, raw, size, skip_bad,
                                         pointing_tolerance)}
    labelled = {f"{'masks' if name.endswith('.png') else 'maps'}/{name}": d for name, d in reads.items()}
    F.save(Path(out), state, header, labelled)
    return (f"evaluate-maps shard {k}/{n}: {len(state.ids)} scored, {len(state.skipped)} skipped "
            f"(images {part.start}..{part.stop - 1} of {len(items)}) → {out}")


def _sha256(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None


def verify_inputs(path: Path, header: dict, reads: dict[str, str]) -> None:
    """The inputs a partial says it scored are the ones on disk now: the boxes CSV (its SHA-256) and every
    map and mask it read (theirs), and its image ids are the CSV's for its shard. Refuses, naming both."""
    csv_path = Path(header["boxes_csv"])
    if _sha256(csv_path) != header["fingerprint"].get("boxes_sha256"):
        raise CamlocError(f"{path}: the boxes CSV it scored ({csv_path}) is missing or has changed since; "
                          "merge where the shard's inputs are, or re-run every shard")
    folders = {"maps": header.get("maps_dir"), "masks": header.get("masks_dir")}
    for name, digest in reads.items():
        kind, _, file = name.partition("/")
        if folders.get(kind) is None or "/" in file or file in ("", ".", ".."):
            raise CamlocError(f"{path}: records a read of {name!r}, not a file of its maps or masks folder; "
                              "re-run its `camloc evaluate-maps --shard K/N`")
        if _sha256(Path(folders[kind]) / file) != digest:
            raise CamlocError(f"{path}: scored {Path(folders[kind]) / file} with other contents than the file "
                              "holds now (or it is gone); re-run that shard on the current maps")


def _check_cover(path: Path, header: dict, state: S.EvalState, table_ids: list[str]) -> None:
    start, stop = header["images"]
    have = set(state.ids) | {s["image_id"] for s in state.skipped}
    if header["n_table"] != len(table_ids) or have != set(table_ids[start:stop]):
        raise CamlocError(f"{path}: its images are not the CSV's images {start}..{stop - 1} of "
                          f"{len(table_ids)} (a row dropped, added or renamed); re-run its shard")


def merge_eval(partials: list, out=None, per_image=None) -> dict:
    """Merge every shard's partial state; the JSON (and per-image CSV) of the unsharded run."""
    paths = [Path(p) for p in partials]
    for target in (out, per_image):
        if target is not None:
            check_replaceable(target, "file")
    merged, header = merge_partials(paths)
    return finish(merged, header["fingerprint"]["interval"], header["boxes_csv"], header["masks_dir"], out, per_image)


def merge_partials(paths: list[Path]) -> tuple[S.EvalState, dict]:
    """(merged state, shard 0's header) of one sharded run; refuses mixed runs, missing, extra and duplicate
    shards, and any partial whose inputs are not the files on disk (``verify_inputs``)."""
    if not paths:
        raise CamlocError("no partial-state file given; pass every PARTIAL written by `evaluate-maps --shard K/N`")
    loaded = [(Path(p), *F.load(Path(p))) for p in paths]
    first_path, _, first, _ = loaded[0]
    for p, _, h, _ in loaded[1:]:
        if h["world"] != first["world"]:
            raise CamlocError(f"{p} is shard {h['shard']}/{h['world']} but {first_path} is shard "
                              f"{first['shard']}/{first['world']}: partials of different world sizes cannot be "
                              "merged; re-run every shard with the same N")
        if h["fingerprint"] != first["fingerprint"]:
            diff = sorted(k for k in set(h["fingerprint"]) | set(first["fingerprint"])
                          if h["fingerprint"].get(k) != first["fingerprint"].get(k))
            raise CamlocError(f"{p} and {first_path} come from different inputs or params (they differ in "
                              f"{', '.join(diff)}); merge only the shards of one run")
    by_shard: dict[int, Path] = {}
    for p, _, h, _ in loaded:
        if h["shard"] in by_shard:
            raise CamlocError(f"shard {h['shard']}/{h['world']} is given twice ({by_shard[h['shard']]} and {p}); "
                              "pass each shard once")
        by_shard[h["shard"]] = p
    missing = sorted(set(range(first["world"])) - set(by_shard))
    if missing:
        raise CamlocError(f"shard(s) {missing} of {first['world']} are missing (have {sorted(by_shard)}, "
                          f"{first_path} claims {first['world']} shards); run `camloc evaluate-maps --shard "
                          f"K/{first['world']}` for them and pass every partial")
    table_ids = list(read_boxes(Path(first["boxes_csv"])))
    for p, state, h, reads in loaded:
        verify_inputs(p, h, reads)
        _check_cover(p, h, state, table_ids)
    merged = loaded[0][1]
    for _, state, _, _ in loaded[1:]:
        merged = merged.merge(state)
    return merged, next(h for _, _, h, _ in loaded if h["shard"] == 0)
