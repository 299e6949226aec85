"""The reference's metadata layout (Choe et al., CVPR 2020, `metadata/<NAME>/`): parsed and checked, for
the download (`dataset.name: wsol` copies it into data/raw) and prepare stages.

A metadata folder holds `train/`, `val/` and `test/`, each with `image_ids.txt` (one image path per
line, relative to the images root), `class_labels.txt` (`id,label`), `image_sizes.txt` (`id,w,h`;
optional, OpenImages has none) and `localization.txt`: either boxes, `id,x0,y0,x1,y1`, one row per
box, or masks, `id,mask_path,ignore_path`, one row per instance mask with the image's ignore mask on
its first row (OpenImages). train is read for labels only; val (the reference's train-fullsup) chooses
τ; test is scored.

Boxes are kept exactly as written, never clipped or shifted: the reference scores them as inclusive
pixel indices, and its CUB rows have `x1 = x + w`, one past the box. The published numbers include
that, so camloc keeps it (docs/contracts.md). Every malformed row, unknown id or out-of-range label is
a CamlocError naming the file and line.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.atomic import replace_dir
from pipeline.contracts import RAW_ENTRIES
from pipeline.errors import CamlocError

WSOL_SPLITS = ("train", "val", "test")
SPLIT_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
SOURCE_FILE = "source.json"  # data/raw/source.json: where the images (and masks) of a wsol copy live


@dataclass
class WsolSplit:
    """One split of the metadata; `where[id]` is the `file:line` that listed the image."""

    name: str
    ids: list[str] = field(default_factory=list)
    where: dict[str, str] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # id → (w, h, file:line)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    masks: dict[str, list[str]] = field(default_factory=dict)  # id → mask paths (relative to mask_root)
    ignore: dict[str, str | None] = field(default_factory=dict)  # id → ignore mask path or None


@dataclass
class WsolIndex:
    """A whole dataset in the reference layout, with the folders its paths are relative to."""

    dataset: str  # cub | wsol
    splits: dict[str, WsolSplit]
    class_names: list[str]
    root: Path
    mask_root: Path

    @property
    def has_boxes(self) -> bool:
        return any(s.boxes for n, s in self.splits.items() if n != "train")

    @property
    def has_masks(self) -> bool:
        return any(s.masks for n, s in self.splits.items() if n != "train")


def _rows(path: Path, n_fields: tuple[int, ...], what: str):
    """(file:line, fields) of each non-blank line, split on commas; a wrong field count is an error."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a UTF-8 BOM is not part of the first id
    except UnicodeDecodeError:
        raise CamlocError(f"{path} is not UTF-8 text; it is not a metadata file of the reference layout") from None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split(",")
        if len(fields) not in n_fields:
            raise CamlocError(f"{path}:{i + 1}: expected {what}, got {line[:120]!r}; fix or remove that row")
        yield f"{path}:{i + 1}", fields


def _int(text: str, where: str, name: str, low: int = 0) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise CamlocError(f"{where}: {name} {text.strip()[:40]!r} is not an integer; fix that row") from None
    if value < low:
        raise CamlocError(f"{where}: {name} {value} is below {low}; fix that row")
    if value > 10 ** 9:  # no image is a billion pixels wide (and int64 tables would overflow)
        raise CamlocError(f"{where}: {name} {str(value)[:30]} is beyond any image (at most 1e9); fix that row")
    return value


def check_relative(rel: str, where: str) -> str:
    """An id or mask path must stay inside its root: relative, without `..`. Returned normalised (no
    `./`, no `//`), so that two spellings of one file are one id."""
    rel = rel.strip()
    parts = PurePosixPath(rel.replace("\\", "/")).parts
    if not rel or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":") or ".." in parts:
        raise CamlocError(f"{where}: {rel!r} is not a path relative to the images root (no leading '/', "
                          "no '..'); fix that row")
    return str(PurePosixPath(rel)) if "\\" not in rel else rel


def inside(root: Path, rel: str, where: str) -> Path:
    """``root / rel``, refused when it resolves outside ``root`` (a symlink inside the root pointing
    elsewhere on the machine)."""
    path = Path(root) / rel
    real, top = path.resolve(), Path(root).resolve()
    if real != top and top not in real.parents:
        raise CamlocError(f"{where}: {path} is a link to {real}, outside {top}; the reference layout reads "
                          "only files inside its root: replace the link by the file")
    return path


def read_split(folder: Path, name: str) -> WsolSplit:
    """Parse one split folder; every inconsistency is a CamlocError naming file and line."""
    split = WsolSplit(name)
    ids_file = folder / "image_ids.txt"
    for f in ("image_ids.txt", "class_labels.txt"):
        if not (folder / f).is_file():
            raise CamlocError(f"{folder / f} is missing: every split folder of the reference layout holds "
                              "image_ids.txt and class_labels.txt (README: 'Datasets in the reference layout')")
    for where, (rel,) in _rows(ids_file, (1,), "one image path"):
        rel = check_relative(rel, where)
        if rel in split.where:
            raise CamlocError(f"{where}: {rel} is listed twice (first at {split.where[rel]}); remove one")
        split.ids.append(rel)
        split.where[rel] = where
    if not split.ids:
        raise CamlocError(f"{ids_file} lists no image")
    seen: dict[str, str] = {}
    for where, (rel, label) in _rows(folder / "class_labels.txt", (2,), "'<image id>,<integer label>'"):
        rel = _known(split, rel, where, ids_file)
        _once(seen, rel, where, "a label")
        split.labels[rel] = _int(label, where, "label")
    unlabelled = [i for i in split.ids if i not in split.labels]
    if unlabelled:
        raise CamlocError(f"{folder / 'class_labels.txt'} has no label for {len(unlabelled)} images of "
                          f"{ids_file} (first: {unlabelled[0]} at {split.where[unlabelled[0]]})")
    if (folder / "image_sizes.txt").is_file():
        seen = {}
        for where, (rel, w, h) in _rows(folder / "image_sizes.txt", (3,), "'<image id>,<width>,<height>'"):
            rel = _known(split, rel, where, ids_file)
            _once(seen, rel, where, "a size")
            split.sizes[rel] = (_int(w, where, "width", 1), _int(h, where, "height", 1), where)
    if name != "train" and (folder / "localization.txt").is_file():
        _read_localization(folder / "localization.txt", split, ids_file)
    return split


def _known(split: WsolSplit, rel: str, where: str, ids_file: Path) -> str:
    """The normalised id of a row, refused when image_ids.txt does not list it."""
    rel = check_relative(rel, where)
    if rel not in split.where:
        raise CamlocError(f"{where}: {rel} is not listed in {ids_file}; add it there or remove this row")
    return rel


def _once(seen: dict[str, str], rel: str, where: str, what: str) -> None:
    """A duplicate row (an id given ``what`` twice, equal or not) is refused naming both lines."""
    if rel in seen:
        raise CamlocError(f"{where}: {rel} is given {what} twice (first at {seen[rel]}); keep one row")
    seen[rel] = where


def _read_localization(path: Path, split: WsolSplit, ids_file: Path) -> None:
    kind = None
    for where, fields in _rows(path, (3, 5), "'<id>,<x0>,<y0>,<x1>,<y1>' (boxes) or "
                                               "'<id>,<mask path>,<ignore path>' (masks)"):
        this = "boxes" if len(fields) == 5 else "masks"
        if kind not in (None, this):
            raise CamlocError(f"{where}: a {this} row in a file of {kind} rows; one localization.txt holds "
                              "either boxes or masks")
        kind = this
        rel = _known(split, fields[0], where, ids_file)
        if this == "boxes":
            x0, y0, x1, y1 = (_int(v, where, n) for v, n in zip(fields[1:], ("x0", "y0", "x1", "y1"), strict=True))
            if x1 < x0 or y1 < y0:
                raise CamlocError(f"{where}: box ({x0}, {y0}, {x1}, {y1}) has x1 < x0 or y1 < y0; the row "
                                  "must be x0,y0,x1,y1")
            split.boxes.setdefault(rel, []).append((x0, y0, x1, y1))
            continue
        mask, ignore = check_relative(fields[1], where), fields[2].strip()
        split.masks.setdefault(rel, []).append(mask)
        if ignore:
            ignore = check_relative(ignore, where)
            if split.ignore.get(rel) not in (None, ignore):
                raise CamlocError(f"{where}: a second ignore mask {ignore} for {rel} (already "
                                  f"{split.ignore[rel]}); an image has one ignore mask")
            split.ignore[rel] = ignore
        else:
            split.ignore.setdefault(rel, None)


def read_metadata(metadata: Path, root: Path, mask_root: Path | None = None, dataset: str = "wsol") -> WsolIndex:
    """The three splits of a metadata folder, cross-checked: labels in val/test must be classes that
    train has (0..C-1), val and test localize the same way (boxes or masks)."""
    if not metadata.is_dir():
        raise CamlocError(f"{metadata} is not a folder: set dataset.wsol.metadata to a folder holding "
                          "train/, val/ and test/ in the reference layout")
    missing = [s for s in WSOL_SPLITS if not (metadata / s).is_dir()]
    if missing:
        raise CamlocError(f"{metadata} lacks the split folders {missing}: the reference layout has "
                          "train/, val/ and test/")
    splits = {s: read_split(metadata / s, s) for s in WSOL_SPLITS}
    seen: dict[str, str] = {}
    for s in WSOL_SPLITS:
        for rel in splits[s].ids:
            if rel in seen:
                raise CamlocError(f"{splits[s].where[rel]}: {rel} is also listed at {seen[rel]}; an image "
                                  "belongs to one split")
            seen[rel] = splits[s].where[rel]
    n_classes = max(splits["train"].labels.values()) + 1
    for s in ("val", "test"):
        for rel, label in splits[s].labels.items():
            if label >= n_classes:
                raise CamlocError(f"{metadata / s / 'class_labels.txt'}: label {label} of {rel} is out of "
                                  f"range: train/class_labels.txt has labels 0..{n_classes - 1}")
    kinds = {s: ("boxes" if splits[s].boxes else "masks" if splits[s].masks else None) for s in ("val", "test")}
    if kinds["test"] is None:
        raise CamlocError(f"{metadata / 'test' / 'localization.txt'} is missing or empty: test is the scored "
                          "split and needs boxes or masks")
    if kinds["val"] != kinds["test"]:
        raise CamlocError(f"{metadata}: val localizes with {kinds['val'] or 'nothing (no localization.txt)'} "
                          f"but test with {kinds['test']}; val needs the same kind, it chooses τ")
    names = [f"class_{i:04d}" for i in range(n_classes)]
    return WsolIndex(dataset, splits, names, root, mask_root or root)


# --------------------------------------------------------------------------------------------------
# The download stage for `dataset.name: wsol`: a checked copy of the metadata, and where the images are


def fetch_wsol(metadata: Path, root: Path, mask_root: Path | None, out_dir: Path) -> str:
    """Check the metadata folder, copy its split files into `out_dir/metadata/` (tracked by DVC) and
    record the images root in `out_dir/source.json`; the images themselves are not copied."""
    if not root.is_dir():
        raise CamlocError(f"dataset.wsol.root = {root} is not a folder: point it at the folder the "
                          "image ids of image_ids.txt are relative to")
    if mask_root is not None and not mask_root.is_dir():
        raise CamlocError(f"dataset.wsol.mask_root = {mask_root} is not a folder")
    index = read_metadata(metadata, root, mask_root)
    with replace_dir(out_dir, RAW_ENTRIES) as tmp:
        for s in WSOL_SPLITS:
            (tmp / "metadata" / s).mkdir(parents=True)
            for f in SPLIT_FILES:
                if (metadata / s / f).is_file():
                    shutil.copyfile(metadata / s / f, tmp / "metadata" / s / f)
        source = {"root": str(root.resolve()), "mask_root": str((mask_root or root).resolve())}
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=1) + "\n")
    counts = ", ".join(f"{s} {len(index.splits[s].ids)}" for s in WSOL_SPLITS)
    return (f"wsol: metadata of {len(index.class_names)} classes ({counts}) checked and copied into "
            f"{out_dir / 'metadata'}; images stay in {root}")


def read_raw_wsol(raw: Path) -> WsolIndex:
    """The prepare stage's view of a wsol raw tree (metadata copy + source.json)."""
    src = raw / SOURCE_FILE
    if not src.is_file() or not (raw / "metadata").is_dir():
        raise CamlocError(f"{raw} is not a wsol raw tree (metadata/ and {SOURCE_FILE} expected): run "
                          "`dvc repro download` with dataset.name: wsol first")
    try:
        source = json.loads(src.read_text())
        root, mask_root = Path(source["root"]), Path(source["mask_root"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CamlocError(f"{src} is damaged ({e}): re-run `dvc repro download`") from None
    return read_metadata(raw / "metadata", root, mask_root)
