"""CUB-200-2011 (Wah et al. 2011) for `dataset.name: cub`: the official archive fetched, verified and
extracted (download stage), and its official files read into the reference layout (prepare stage).

The archive `CUB_200_2011.tgz` holds `CUB_200_2011/` with `images.txt` (`<n> <class>/<file>.jpg`),
`image_class_labels.txt` (`<n> <class id 1..200>`), `train_test_split.txt` (`<n> <1 train | 0 test>`),
`bounding_boxes.txt` (`<n> <x> <y> <w> <h>`, floats), `classes.txt` and `images/<class>/<file>.jpg`.

Boxes follow the reference's `metadata/CUB/*/localization.txt` exactly: `x0, y0 = x, y` and
`x1, y1 = x + w, y + h` (one past the box), scored as inclusive indices, e.g.
`Black_Footed_Albatross_0046_18.jpg` → `60,27,385,331`. The official train split (5,994 images) gives
train, minus `dataset.cub.val_per_class` boxed images per class carved out as val (seeded); the official
test split (5,794) is test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.datasets.wsol import WsolIndex, WsolSplit, check_relative
from pipeline.errors import CamlocError, ParamsError

TREE = "CUB_200_2011"
ARCHIVE = "CUB_200_2011.tgz"
ARCHIVE_MD5 = "97eceeb196236b17998738112f37df78"
ARCHIVE_BYTES = 1_150_585_339
OFFICIAL_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt",
                  "classes.txt")


def _table(path: Path, n_values: int, what: str) -> dict[int, tuple[list[str], str]]:
    """`<image number> <values...>` rows → number → (values, file:line); damage is a CamlocError."""
    if not path.is_file():
        raise CamlocError(f"{path} is missing: the CUB tree is incomplete; delete data/raw and re-run "
                          "`camloc download`")
    out: dict[int, tuple[list[str], str]] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        if not line.strip():
            continue
        where = f"{path}:{i + 1}"
        fields = line.split(maxsplit=n_values) if n_values == 1 else line.split()
        if len(fields) != n_values + 1:
            raise CamlocError(f"{where}: expected '<n> {what}', got {line[:120]!r}; the CUB files are damaged")
        try:
            n = int(fields[0])
        except ValueError:
            raise CamlocError(f"{where}: {fields[0]!r} is not an image number; the CUB files are damaged") from None
        if n in out:
            raise CamlocError(f"{where}: image number {n} is listed twice (first at {out[n][1]})")
        out[n] = (fields[1:], where)
    return out


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CamlocError(f"{where}: {text!r} is not a number; the CUB files are damaged") from None
    if not np.isfinite(value) or value < 0 or value > 1e9:  # no image is a billion pixels wide
        raise CamlocError(f"{where}: {text!r} is out of range (0 to 1e9); the CUB files are damaged")
    return value


def read_cub(raw: Path, val_per_class: int, seed: int) -> WsolIndex:
    """The official CUB tree under `raw/CUB_200_2011` → train / val / test in the reference layout."""
    tree = raw / TREE
    if not tree.is_dir():
        raise CamlocError(f"{tree} is missing: run `dvc repro download` with dataset.name: cub first")
    images = _table(tree / "images.txt", 1, "<class folder>/<file>.jpg")
    labels = _table(tree / "image_class_labels.txt", 1, "<class id>")
    split = _table(tree / "train_test_split.txt", 1, "<1 train | 0 test>")
    bboxes = _table(tree / "bounding_boxes.txt", 4, "<x> <y> <width> <height>")
    classes = _table(tree / "classes.txt", 1, "<class name>")
    names = [classes[k][0][0] for k in sorted(classes)]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise CamlocError(f"{tree / 'classes.txt'}: class ids must be 1..{len(classes)} without gaps")
    out = {s: WsolSplit(s) for s in ("train", "val", "test")}
    by_class: dict[int, list[str]] = {}
    for n, ((rel,), where) in sorted(images.items()):
        rel = check_relative(rel, where)
        for table, file in ((labels, "image_class_labels.txt"), (split, "train_test_split.txt"),
                            (bboxes, "bounding_boxes.txt")):
            if n not in table:
                raise CamlocError(f"{tree / file} has no row for image {n} ({rel}, {where})")
        (cls,), lwhere = labels[n]
        label = int(_number(cls, lwhere)) - 1
        if not 0 <= label < len(names):
            raise CamlocError(f"{lwhere}: class id {cls} is out of range 1..{len(names)} (classes.txt)")
        (flag,), swhere = split[n]
        if flag not in ("0", "1"):
            raise CamlocError(f"{swhere}: split flag {flag!r} must be 1 (train) or 0 (test)")
        x, y, w, h = (_number(v, bboxes[n][1]) for v in bboxes[n][0])
        s = out["train" if flag == "1" else "test"]
        s.ids.append(rel)
        s.where[rel] = where
        s.labels[rel] = label
        # The reference's convention: x1 = x + w (one past the box), scored inclusive (module docstring).
        s.boxes[rel] = [(int(x), int(y), int(x + w), int(y + h))]
        if flag == "1":
            by_class.setdefault(label, []).append(rel)
    _carve_val(out, by_class, names, val_per_class, seed)
    return WsolIndex("cub", out, names, tree / "images", tree / "images")


def _carve_val(out: dict[str, WsolSplit], by_class: dict[int, list[str]], names: list[str],
               val_per_class: int, seed: int) -> None:
    """Move `val_per_class` seeded images of each class from train to val (their boxes go with them)."""
    train, val = out["train"], out["val"]
    chosen: set[str] = set()
    for label in sorted(by_class):
        ids = sorted(by_class[label])
        if len(ids) <= val_per_class:
            raise ParamsError("dataset.cub.val_per_class", val_per_class,
                              f"less than {len(ids)}: class {names[label]} has {len(ids)} train images")
        order = np.random.default_rng([seed, label]).permutation(len(ids))
        chosen.update(ids[k] for k in order[:val_per_class])
    for rel in [i for i in train.ids if i in chosen]:
        val.ids.append(rel)
        val.where[rel] = train.where.pop(rel)
        val.labels[rel] = train.labels.pop(rel)
        val.boxes[rel] = train.boxes.pop(rel)
    train.ids = [i for i in train.ids if i not in chosen]
    train.boxes.clear()  # train has image labels only, as in the reference
