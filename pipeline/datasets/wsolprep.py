"""A dataset in the reference layout (`WsolIndex`, from `cub` or `wsol`) → the prepare stage's rows,
boxes, masks and layout. Decoding is the stage's (`images.process`, one task per listed image).

Every image that cannot be used is a reported skip naming the file and the metadata line that listed
it: missing or undecodable, a size that contradicts image_sizes.txt, a val/test image without boxes
or masks, a mask file that is not there.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2

from pipeline.contracts import OBJECT_KIND, Layout, wsol_layout
from pipeline.datasets.images import Decoded
from pipeline.datasets.index import rel_path
from pipeline.datasets.wsol import WSOL_SPLITS, WsolIndex, inside
from pipeline.errors import CamlocError
from pipeline.params import Params

KIND = OBJECT_KIND  # the box kind of every reference-layout dataset
log = logging.getLogger(__name__)


def layout_of(index: WsolIndex) -> Layout:
    return wsol_layout(index.dataset, index.has_boxes, index.has_masks)


def decode_tasks(params: Params, index: WsolIndex) -> tuple[list[tuple[str, str]], list[tuple]]:
    """((split, image id) per task, decode tasks) over every listed image in manifest order (split, then
    id), so that with nothing skipped the decoded cache is already images.npy (renamed, not copied)."""
    entries = [(s, rel) for s in WSOL_SPLITS for rel in sorted(index.splits[s].ids)]
    tasks = [(rel, str(inside(index.root, rel, index.splits[s].where[rel])), None, None,
              params.dataset.max_image_pixels, params.prepare.cache_size) for s, rel in entries]
    return entries, tasks


def collect(index: WsolIndex, entries: list[tuple[str, str]], decoded: list[Decoded],
            report: dict) -> tuple[list[dict], list[tuple], list[tuple], dict[str, int]]:
    """Decoded images → sample rows, object boxes, mask rows and the decode row of each kept image."""
    rows, boxes, masks, keep, off_size = [], [], [], {}, []
    for row, ((split, rel), d) in enumerate(zip(entries, decoded, strict=True)):
        s = index.splits[split]
        img = rel_path(index.root / rel)
        if d.skip:
            report["skipped"].append({"file": img, "reason": f"{d.skip} (listed at {s.where[rel]})"})
            continue
        report["repaired"] += [{"file": img, "reason": r} for r in d.repairs]
        if rel in s.sizes and s.sizes[rel][:2] != (d.width, d.height):
            w, h, where = s.sizes[rel]
            report["skipped"].append({"file": where, "reason": f"image_sizes.txt says {w}x{h} but {img} decodes "
                                      f"to {d.width}x{d.height}: its boxes cannot be placed; fix the row"})
            continue
        if split != "train":
            why = _unscorable(index, split, rel)
            if why:
                report["skipped"].append({"file": s.where[rel], "reason": why})
                continue
            off_size += _check_masks(index, split, rel, (d.height, d.width))
            boxes += [(rel, KIND, *b) for b in s.boxes.get(rel, [])]
            ignore = s.ignore.get(rel)
            masks += [(rel, str(index.mask_root / m), str(index.mask_root / ignore) if ignore else None)
                      for m in s.masks.get(rel, [])]
        keep[rel] = row
        rows.append({"image_id": rel, "path": img, "label": s.labels[rel], "class_name": index.class_names[s.labels[rel]],
                     "species": index.dataset, "split": split, "width": d.width, "height": d.height,
                     "trimap_path": None})
    if off_size:
        log.warning("%d mask file(s) are not the size of their image (first: %s); they are resized to the "
                    "scoring frame as the reference does, check the masks", len(off_size), off_size[0])
        report["masks_off_size"] = {"count": len(off_size), "first": off_size[:5]}
    return rows, boxes, masks, keep


def _check_masks(index: WsolIndex, split: str, rel: str, hw: tuple[int, int]) -> list[str]:
    """Every mask file of a kept image decodes (else a CamlocError now, at prepare, not at evaluate) and
    stays inside the mask root; returns those whose size differs from the image's (warned, counted)."""
    s, off = index.splits[split], []
    for f in [*s.masks.get(rel, []), *([s.ignore[rel]] if s.ignore.get(rel) else [])]:
        path = inside(index.mask_root, f, s.where[rel])
        mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if mask is None or mask.ndim not in (2, 3):
            raise CamlocError(f"mask file {path} of {rel} (listed at {s.where[rel]}) does not decode as an "
                              f"image; replace the file or remove its row from {split}/localization.txt")
        if mask.shape[:2] != hw:
            off.append(f"{path} is {mask.shape[1]}x{mask.shape[0]}, its image {hw[1]}x{hw[0]}")
    return off


def _unscorable(index: WsolIndex, split: str, rel: str) -> str | None:
    """Why a val/test image cannot be scored (no boxes or masks, a mask file missing), or None."""
    s = index.splits[split]
    if index.has_boxes and rel not in s.boxes:
        return f"{rel} has no box in {split}/localization.txt: not scorable, left out"
    if index.has_masks:
        if rel not in s.masks:
            return f"{rel} has no mask in {split}/localization.txt: not scorable, left out"
        files = [*s.masks[rel], *([s.ignore[rel]] if s.ignore.get(rel) else [])]
        absent = [f for f in files if not (index.mask_root / f).is_file()]
        if absent:
            return f"mask file {Path(index.mask_root) / absent[0]} of {rel} is missing: left out"
    return None
