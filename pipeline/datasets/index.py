"""The raw Pets-layout tree → index entries, decode tasks and manifest rows, for the prepare stage.

The index comes from the split files only (trainval.txt, test.txt), never from a folder listing; the
folder is listed afterwards only to report what the split files leave out. Every problem found is
appended to the report (`skipped` / `repaired`), never raised past a clear CamlocError.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.datasets import pets
from pipeline.datasets.images import Decoded
from pipeline.errors import CamlocError
from pipeline.params import Params


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


def rel_path(path: Path) -> str:
    """A path relative to the working directory (the repo root) when below it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def unlisted(raw: Path, listed: set[str]) -> tuple[list[dict], int]:
    """Files in images/ that no split file lists (reported, never used), and the macOS `._*` count."""
    out = []
    for p in sorted((raw / "images").iterdir()):
        if p.name.startswith(pets.APPLEDOUBLE_PREFIX):
            continue
        if p.suffix.lower() != ".jpg" or p.stem not in listed:
            kind = "a MATLAB file (not an image)" if p.suffix.lower() == ".mat" else "an image"
            out.append({"file": rel_path(p), "reason": f"{kind} listed in no split file: not used"})
    apple = sum(n.startswith(pets.APPLEDOUBLE_PREFIX) for _, _, files in os.walk(raw) for n in files)
    return out, apple


def decode_tasks(params: Params, raw: Path, trainval: list, test: list) -> list[tuple]:
    ann = raw / "annotations"
    xml = [str(ann / "xmls" / f"{e.image_id}.xml") for e in trainval] + [None] * len(test)
    return [(e.image_id, str(raw / "images" / f"{e.image_id}.jpg"), str(ann / "trimaps" / f"{e.image_id}.png"),
             x, params.dataset.max_image_pixels, params.prepare.cache_size)
            for e, x in zip(trainval + test, xml, strict=True)]


def collect(entries, decoded, labels, rel: Path, report: dict) -> tuple[list, list, dict, set]:
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
