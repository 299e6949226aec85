"""The `prepare` stage: a raw tree (`data/raw/`) → `data/prepared/`: samples/boxes/masks manifests,
splits, layout.json, report.json and the uint8 image cache (docs/contracts.md).

Every listed image is decoded once (in `prepare.workers` processes) into a memory-mappable cache;
reading a Pets tree is `datasets.index`, a reference-layout one (`cub`, `wsol`) `datasets.cub` /
`datasets.wsol` + `datasets.wsolprep`, decoding `datasets.images`, the tables `datasets.manifest`.
"""

from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.atomic import replace_dir, write_json, write_parquet
from pipeline.catalog.datasets import DATASETS
from pipeline.contracts import MASK_COLUMNS, PETS_LAYOUT, PREPARED_FILES, Paths
from pipeline.datasets import cub, index, manifest, wsol, wsolprep
from pipeline.datasets.images import Decoded, process
from pipeline.errors import CamlocError
from pipeline.parallel import fork_pool
from pipeline.params import Params
from pipeline.stages import bar

log = logging.getLogger(__name__)


_WORKER_CACHE: dict[str, np.ndarray] = {}  # per worker process: the memmap it writes its rows into


def _decode_into(job: tuple[str, int, tuple]) -> Decoded:
    """Worker: decode one task and write its row straight into the shared cache file, so only the small
    Decoded record travels back (not S×S×3 bytes per image through a pipe and a second copy)."""
    cache_file, row, task = job
    d = process(task)
    if d.cache is not None:
        if cache_file not in _WORKER_CACHE:
            _WORKER_CACHE[cache_file] = np.load(cache_file, mmap_mode="r+")
        _WORKER_CACHE[cache_file][row] = d.cache
        d.cache = None
    return d


def check_cache_disk(n: int, size: int, folder: Path) -> None:
    """Refuse, before the cache file exists, an image cache the disk cannot hold: the decode-order file and
    the manifest-order images.npy (N × S × S × 3 bytes each) sit side by side until the first is dropped."""
    need = 2 * n * size * size * 3
    free = shutil.disk_usage(folder).free
    if need > free:
        raise CamlocError(f"prepare.cache_size = {size}: the image cache of {n} images needs {need / 1e9:.3g} GB "
                          f"(twice {n} x {size} x {size} x 3 bytes while it is reordered) but {folder} has "
                          f"{free / 1e9:.3g} GB free; lower prepare.cache_size (128 is the default) or free disk")


def decode_all(tasks: list[tuple], workers: int, cache_file: Path, size: int) -> list[Decoded]:
    """Decode every task, writing cache rows in task order into a (N, S, S, 3) memmap at cache_file."""
    check_cache_disk(len(tasks), size, cache_file.parent)
    cache = np.lib.format.open_memmap(cache_file, mode="w+", dtype=np.uint8, shape=(len(tasks), size, size, 3))
    results: list[Decoded] = []
    if workers <= 1 or len(tasks) < 64:
        it = map(process, tasks)
        pool = None
    else:  # workers write their rows into the same file (a shared mapping: the parent sees them)
        pool = fork_pool(workers)
        it = pool.imap(_decode_into, [(str(cache_file), i, t) for i, t in enumerate(tasks)], chunksize=32)
    try:
        with bar(total=len(tasks), desc="prepare", unit="img") as progress:
            for i, d in enumerate(it):
                if d.cache is not None:
                    cache[i] = d.cache
                    d.cache = None  # the row lives in the memmap now
                results.append(d)
                progress.update(1)
    finally:
        if pool is not None:
            pool.terminate()
    cache.flush()
    del cache
    return results


def build(params: Params, raw: Path, tmp: Path) -> dict:
    """Write the prepared files into the (temporary) folder `tmp`; returns report.json's content."""
    if DATASETS.get(params.dataset.name).raw_layout != "pets_tree":
        return build_wsol(params, raw, tmp)
    trainval, test, notes = index.read_index(raw)
    classes = manifest.class_table(trainval + test, str(raw / "annotations"))
    decode_file = tmp / "decode-order.npy"
    decoded = decode_all(index.decode_tasks(params, raw, trainval, test), params.prepare.workers, decode_file,
                         params.prepare.cache_size)
    report: dict = {"skipped": [], "repaired": []}
    rows, boxes, keep, boxed = index.collect(trainval + test, decoded, classes.label, Path(index.rel_path(raw)), report)
    official = {e.image_id: "trainval" for e in trainval} | {e.image_id: "test" for e in test}
    by_class: dict[int, list[str]] = {}
    for r in rows:
        if official[r["image_id"]] == "trainval":
            by_class.setdefault(r["label"], []).append(r["image_id"])
    if not by_class:
        raise CamlocError(f"{raw / 'annotations' / 'trainval.txt'} lists no usable image (every one is "
                          "missing, empty or undecodable); re-run `camloc download`")
    split_of = manifest.assign_splits(by_class, boxed, classes.names, params.split)
    for r in rows:
        r["split"] = split_of.get(r["image_id"], "test_official")
    samples = manifest.samples_table(rows)
    _write_cache(decode_file, tmp / "images.npy", [keep[i] for i in samples["image_id"]])
    unlisted, apple = index.unlisted(raw, set(official))
    report["skipped"] += unlisted
    report |= {"counts": manifest.counts(samples, classes.names), "appledouble_ignored": apple,
               **notes, "cache_size": params.prepare.cache_size}
    write_parquet(tmp / "samples.parquet", samples)
    write_parquet(tmp / "boxes.parquet", manifest.boxes_table(boxes, samples["image_id"]))
    write_json(tmp / "classes.json", {"class_names": list(classes.names), "species": list(classes.species)})
    write_json(tmp / "report.json", report)
    write_json(tmp / "layout.json", PETS_LAYOUT.to_json())
    write_parquet(tmp / "masks.parquet", _masks_table([]))
    return report


def build_wsol(params: Params, raw: Path, tmp: Path) -> dict:
    """A reference-layout dataset (`cub_tree`: the official CUB tree, val carved from train;
    `reference_metadata`: the metadata copy written by the dataset's fetch)."""
    dp = params.dataset
    if DATASETS.get(dp.name).raw_layout == "cub_tree":
        idx = cub.read_cub(raw, dp.cub.val_per_class, dp.cub.seed)
    else:
        idx = wsol.read_raw_wsol(raw)
    entries, tasks = wsolprep.decode_tasks(params, idx)
    decode_file = tmp / "decode-order.npy"
    decoded = decode_all(tasks, params.prepare.workers, decode_file, params.prepare.cache_size)
    report: dict = {"skipped": [], "repaired": []}
    rows, boxes, masks, keep = wsolprep.collect(idx, entries, decoded, report)
    for split in ("train", "val", "test"):
        if not any(r["split"] == split for r in rows):
            raise CamlocError(f"no usable {split} image: every one listed is missing, undecodable or unscorable "
                              f"(first reasons: {[s['reason'] for s in report['skipped'][:2]]})")
    samples = manifest.samples_table(rows)
    _write_cache(decode_file, tmp / "images.npy", [keep[i] for i in samples["image_id"]])
    layout = wsolprep.layout_of(idx)
    report |= {"counts": manifest.counts(samples, tuple(idx.class_names)), "cache_size": params.prepare.cache_size,
               "dataset": idx.dataset, "root": str(idx.root)}
    write_parquet(tmp / "samples.parquet", samples)
    write_parquet(tmp / "boxes.parquet", manifest.boxes_table(boxes, samples["image_id"]))
    write_parquet(tmp / "masks.parquet", _masks_table(masks))
    write_json(tmp / "classes.json", {"class_names": list(idx.class_names),
                                      "species": [idx.dataset] * len(idx.class_names)})
    write_json(tmp / "report.json", report)
    write_json(tmp / "layout.json", layout.to_json())
    return report


def _masks_table(masks: list[tuple]):
    import pandas as pd

    return pd.DataFrame(masks, columns=list(MASK_COLUMNS)).astype(object)


def _write_cache(src: Path, dst: Path, rows: list[int], chunk: int = 512) -> None:
    """Reorder the decode-order cache into manifest order (rows = cache_index), chunk by chunk; a cache
    already in manifest order (nothing skipped, tasks in manifest order) is renamed, not copied."""
    a = np.load(src, mmap_mode="r")
    if len(rows) == len(a) and np.array_equal(rows, np.arange(len(a))):
        del a
        src.replace(dst)
        return
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.uint8, shape=(len(rows), *a.shape[1:]))
    for s in range(0, len(rows), chunk):
        out[s: s + chunk] = a[rows[s: s + chunk]]
    out.flush()
    del out, a
    src.unlink()


def run(params: Params, paths: Paths) -> str:
    """Prepare `paths.raw` into `paths.prepared` (replaced atomically); returns a one-paragraph summary."""
    raw, out_dir = Path(paths.raw), Path(paths.prepared)
    with replace_dir(out_dir, PREPARED_FILES) as tmp:
        report = build(params, raw, tmp)
    c = report["counts"]
    reasons = Counter(s["reason"].split(":")[0] for s in report["skipped"])
    log.info("prepare: skipped %s", dict(reasons))
    n_classes = len(next(iter(c["per_class"].values())))
    splits = ", ".join(f"{k} {v}" for k, v in c["per_split"].items() if v or k != "test_official")
    return (f"prepared {c['total']} images of {n_classes} classes into {out_dir} ({splits}); "
            f"{len(report['repaired'])} repaired, {len(report['skipped'])} skipped "
            f"(details in {Path(out_dir) / 'report.json'})")

