"""The `prepare` stage: a raw Pets-layout tree → samples/boxes manifests, splits, report and image cache.

The index comes from the split files only (trainval.txt, test.txt), never from a folder listing; the
folder is listed afterwards only to report what the split files leave out. Every listed image is
decoded once (in `prepare.workers` processes) into a memory-mappable uint8 cache.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.datasets import manifest, pets
from pipeline.datasets.images import Decoded, process
from pipeline.datasets.layout import PREPARED_ENTRIES, replace_dir
from pipeline.errors import CamlocError
from pipeline.fsutil import write_json, write_parquet
from pipeline.parallel import fork_pool
from pipeline.params import Params

log = logging.getLogger(__name__)


def read_index(raw: Path) -> tuple[list[pets.ListEntry], list[pets.ListEntry], dict]:
    """(trainval entries, test entries, notes) from the split files, cross-checked with list.txt."""
    ann = raw / "annotations"
    if not (raw / "images").is_dir() or not ann.is_dir():
        raise CamlocError(f"{raw} is not a Pets-layout folder (images/ and annotations/ expected); "
                          "run `camloc download` first")
    trainval, test = pets.read_list(ann / "trainval.txt"), pets.read_list(ann / "test.txt")
    seen: dict[str, str] = {}
    for split, entries in (("trainval.txt", trainval), ("test.txt", test)):
        for e in entries:
            if e.image_id in seen:
                raise CamlocError(f"{ann / split}: {e.image_id} is also listed in {seen[e.image_id]}; "
                                  "the split files are damaged: re-run `camloc download`")
            seen[e.image_id] = split
    listed = {e.image_id: e for e in trainval + test}
    notes: dict = {"list_txt_only": [], "list_txt_disagrees": []}
    if (ann / "list.txt").is_file():
        for e in pets.read_list(ann / "list.txt"):
            if e.image_id not in listed:
                notes["list_txt_only"].append(e.image_id)
            elif listed[e.image_id] != e:  # the split file is what defines the sample: it wins
                notes["list_txt_disagrees"].append(e.image_id)
    return trainval, test, notes


def head_box(d: Decoded, xml: str, species: str, report: dict) -> tuple | None:
    """The decoded image's 0-based head box, clipped to the image; problems go to the report."""
    if d.head is None:
        report["skipped"].append({"file": xml, "reason": d.head_note})
        return None
    w, h = d.width, d.height
    box = d.head.box
    if d.head.name != species:
        report["repaired"].append({"file": xml, "reason": f"object name {d.head.name!r} differs from the "
                                   f"split file's species {species!r}; the split file wins, box kept"})
    clipped = (max(0, box[0]), max(0, box[1]), min(w - 1, box[2]), min(h - 1, box[3]))
    if clipped[0] > clipped[2] or clipped[1] > clipped[3]:
        report["skipped"].append({"file": xml, "reason": f"head box {box} lies outside the {w}x{h} image"})
        return None
    if clipped != box:
        report["repaired"].append({"file": xml, "reason": f"head box {box} clipped to the {w}x{h} image: "
                                   f"{clipped}"})
    return clipped


def decode_all(tasks: list[tuple], workers: int, cache_file: Path, size: int) -> list[Decoded]:
    """Decode every task, writing cache rows in task order into a (N, S, S, 3) memmap at cache_file."""
    cache = np.lib.format.open_memmap(cache_file, mode="w+", dtype=np.uint8, shape=(len(tasks), size, size, 3))
    results: list[Decoded] = []
    bar = dict(total=len(tasks), desc="prepare", unit="img", disable=None)
    if workers <= 1 or len(tasks) < 64:
        it = map(process, tasks)
        pool = None
    else:
        pool = fork_pool(workers)
        it = pool.imap(process, tasks, chunksize=32)
    try:
        for i, d in enumerate(tqdm(it, **bar)):
            if d.cache is not None:
                cache[i] = d.cache
                d.cache = None  # the row lives in the memmap now
            results.append(d)
    finally:
        if pool is not None:
            pool.terminate()
    cache.flush()
    del cache
    return results


def _rel(path: Path) -> str:
    """A path relative to the working directory (the repo root) when below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _unlisted(raw: Path, listed: set[str]) -> tuple[list[dict], int]:
    """Files in images/ that no split file lists (reported, never used), and the macOS `._*` count."""
    out = []
    for p in sorted((raw / "images").iterdir()):
        if p.name.startswith(pets.APPLEDOUBLE_PREFIX):
            continue
        if p.suffix.lower() != ".jpg" or p.stem not in listed:
            kind = "a MATLAB file (not an image)" if p.suffix.lower() == ".mat" else "an image"
            out.append({"file": _rel(p), "reason": f"{kind} listed in no split file: not used"})
    apple = sum(n.startswith(pets.APPLEDOUBLE_PREFIX) for _, _, files in os.walk(raw) for n in files)
    return out, apple


def _tasks(params: Params, raw: Path, trainval: list, test: list) -> list[tuple]:
    ann = raw / "annotations"
    xml = [str(ann / "xmls" / f"{e.image_id}.xml") for e in trainval] + [None] * len(test)
    return [(e.image_id, str(raw / "images" / f"{e.image_id}.jpg"), str(ann / "trimaps" / f"{e.image_id}.png"),
             x, params.dataset.max_image_pixels, params.prepare.cache_size)
            for e, x in zip(trainval + test, xml, strict=True)]


def _collect(entries, decoded, labels, rel: Path, report: dict) -> tuple[list, list, dict, set]:
    """Decoded images → sample rows, boxes, row of each kept image in decode order, boxed ids."""
    rows, boxes, keep, boxed = [], [], {}, set()
    for row, (e, d) in enumerate(zip(entries, decoded, strict=True)):
        img, trimap = rel / "images" / f"{e.image_id}.jpg", rel / "annotations" / "trimaps" / f"{e.image_id}.png"
        if d.skip:
            report["skipped"].append({"file": str(img), "reason": d.skip})
            continue
        report["repaired"] += [{"file": str(img), "reason": r} for r in d.repairs]
        if d.body_box is not None:
            boxes.append((e.image_id, "body", *d.body_box))
        else:
            report["skipped"].append({"file": str(trimap), "reason": f"no body box: {d.trimap_note}"})
        if d.head is not None or d.head_note is not None:
            hb = head_box(d, str(rel / "annotations" / "xmls" / f"{e.image_id}.xml"), e.species, report)
            if hb is not None:
                boxes.append((e.image_id, "head", *hb))
                boxed.add(e.image_id)
        keep[e.image_id] = row
        rows.append({"image_id": e.image_id, "path": str(img), "label": labels(e.class_id),
                     "class_name": pets.breed_of(e.image_id), "species": e.species,
                     "width": d.width, "height": d.height,
                     "trimap_path": str(trimap) if d.trimap_note != "no trimap" else None})
    return rows, boxes, keep, boxed


def build(params: Params, raw: Path, tmp: Path) -> dict:
    """Write the prepared files into the (temporary) folder `tmp`; returns report.json's content."""
    trainval, test, notes = read_index(raw)
    classes = manifest.class_table(trainval + test, str(raw / "annotations"))
    decode_file = tmp / "decode-order.npy"
    decoded = decode_all(_tasks(params, raw, trainval, test), params.prepare.workers, decode_file,
                         params.prepare.cache_size)
    report: dict = {"skipped": [], "repaired": []}
    rows, boxes, keep, boxed = _collect(trainval + test, decoded, classes.label, Path(_rel(raw)), report)
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
    unlisted, apple = _unlisted(raw, set(official))
    report["skipped"] += unlisted
    report |= {"counts": manifest.counts(samples, classes.names), "appledouble_ignored": apple,
               **notes, "cache_size": params.prepare.cache_size}
    write_parquet(tmp / "samples.parquet", samples)
    write_parquet(tmp / "boxes.parquet", manifest.boxes_table(boxes, samples["image_id"]))
    write_json(tmp / "classes.json", {"class_names": list(classes.names), "species": list(classes.species)})
    write_json(tmp / "report.json", report)
    return report


def _write_cache(src: Path, dst: Path, rows: list[int], chunk: int = 512) -> None:
    """Reorder the decode-order cache into manifest order (rows = cache_index), chunk by chunk."""
    a = np.load(src, mmap_mode="r")
    out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.uint8, shape=(len(rows), *a.shape[1:]))
    for s in range(0, len(rows), chunk):
        out[s: s + chunk] = a[rows[s: s + chunk]]
    out.flush()
    del out, a
    src.unlink()


def run(params: Params, raw_dir: str | Path, out_dir: str | Path) -> str:
    """Prepare `raw_dir` into `out_dir` (replaced atomically); returns a one-paragraph summary."""
    raw = Path(raw_dir)
    with replace_dir(out_dir, PREPARED_ENTRIES) as tmp:
        report = build(params, raw, tmp)
    c = report["counts"]
    reasons = Counter(s["reason"].split(":")[0] for s in report["skipped"])
    log.info("prepare: skipped %s", dict(reasons))
    n_classes = len(next(iter(c["per_class"].values())))
    splits = ", ".join(f"{k} {v}" for k, v in c["per_split"].items())
    return (f"prepared {c['total']} images of {n_classes} classes into {out_dir} ({splits}); "
            f"{len(report['repaired'])} repaired, {len(report['skipped'])} skipped "
            f"(details in {Path(out_dir) / 'report.json'})")

