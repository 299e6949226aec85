"""Synthetic twins of the reference-layout datasets, generated with seeded images and known truth (tests
and benchmarks/bench_prepare_cub.py):

- `make_cub_tree`: the official CUB_200_2011/ tree (images.txt, image_class_labels.txt,
  train_test_split.txt, bounding_boxes.txt with float x y w h, classes.txt, images/<class>/<file>.jpg);
- `write_cub_metadata`: the same truth in the reference's metadata layout (what its metadata/CUB holds);
- `make_boxes_twin`: an ILSVRC-like metadata tree, several boxes per image;
- `make_masks_twin`: an OpenImages-like tree, instance masks and ignore masks (no image_sizes.txt).

Each image is a textured background with one class-coloured object per box (a learnable, localizable
signal). Returned dicts carry the truth so tests can compare against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

PALETTE = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 200, 30), (200, 50, 220), (30, 210, 210)]


@dataclass
class Twin:
    """The truth behind a generated twin."""

    splits: dict[str, list[str]] = field(default_factory=dict)  # split → image ids (paths)
    labels: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # id → (w, h)
    boxes: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)  # reference convention
    masks: dict[str, list[str]] = field(default_factory=dict)
    ignore: dict[str, str] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)


def _backgrounds(rng: np.random.Generator, n: int, w: int, h: int) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        small = rng.integers(40, 140, size=(max(2, h // 16), max(2, w // 16), 3), dtype=np.uint8)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        out.append(np.clip(img.astype(np.int16) + rng.integers(-12, 12, size=(h, w, 1)), 0, 255).astype(np.uint8))
    return out


def _draw(img: np.ndarray, label: int, box: tuple[int, int, int, int]) -> None:
    """An ellipse of the class colour filling the box's pixels x..x+w-1, y..y+h-1."""
    x, y, w, h = box
    colour = PALETTE[label % len(PALETTE)][::-1]  # BGR for cv2
    cv2.ellipse(img, (x + w // 2, y + h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, colour, -1)


def _random_box(rng: np.random.Generator, w: int, h: int, frac=(0.3, 0.7)) -> tuple[int, int, int, int]:
    bw, bh = (int(rng.uniform(*frac) * s) for s in (w, h))
    return int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh)), max(bw, 2), max(bh, 2)


def _size(rng, size_range) -> tuple[int, int]:
    (w0, w1), (h0, h1) = size_range
    return int(rng.integers(w0, w1 + 1)), int(rng.integers(h0, h1 + 1))


def make_cub_tree(out: Path, n_classes: int = 3, train_per_class: int = 8, test_per_class: int = 4,
                  size_range=((60, 90), (50, 80)), seed: int = 0, quality: int = 90,
                  n_backgrounds: int = 8) -> Twin:
    """The official CUB_200_2011/ tree under `out`; boxes in the twin are the reference's x0,y0,x+w,y+h."""
    rng = np.random.default_rng(seed)
    tree = out / "CUB_200_2011"
    (tree / "images").mkdir(parents=True, exist_ok=True)
    twin = Twin(splits={"train": [], "test": []})
    backgrounds: dict[tuple[int, int], list[np.ndarray]] = {}
    images, labels, split, bboxes = [], [], [], []
    n = 0
    for c in range(n_classes):
        name = f"{c + 1:03d}.Bird_{c + 1}"
        twin.class_names.append(name)
        (tree / "images" / name).mkdir(exist_ok=True)
        for k in range(train_per_class + test_per_class):
            n += 1
            rel = f"{name}/Bird_{c + 1}_{k + 1:04d}_{1000 + n}.jpg"
            w, h = _size(rng, size_range)
            if (w, h) not in backgrounds:
                backgrounds[(w, h)] = _backgrounds(rng, n_backgrounds, w, h)
            img = backgrounds[(w, h)][int(rng.integers(n_backgrounds))].copy()
            x, y, bw, bh = _random_box(rng, w, h)
            _draw(img, c, (x, y, bw, bh))
            cv2.imwrite(str(tree / "images" / rel), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            is_train = k < train_per_class
            images.append(f"{n} {rel}")
            labels.append(f"{n} {c + 1}")
            split.append(f"{n} {1 if is_train else 0}")
            bboxes.append(f"{n} {x:.1f} {y:.1f} {bw:.1f} {bh:.1f}")
            twin.splits["train" if is_train else "test"].append(rel)
            twin.labels[rel], twin.sizes[rel] = c, (w, h)
            twin.boxes[rel] = [(x, y, x + bw, y + bh)]
    for fname, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                         ("train_test_split.txt", split), ("bounding_boxes.txt", bboxes),
                         ("classes.txt", [f"{i + 1} {nm}" for i, nm in enumerate(twin.class_names)])):
        (tree / fname).write_text("\n".join(lines) + "\n")
    (out / "attributes.txt").write_text("1 has_bill_shape::curved\n")
    return twin


def write_metadata(meta: Path, twin: Twin, splits: dict[str, list[str]], sizes: bool = True) -> None:
    """The reference layout for `twin`: `splits` maps train/val/test to image ids."""
    for s, ids in splits.items():
        d = meta / s
        d.mkdir(parents=True, exist_ok=True)
        (d / "image_ids.txt").write_text("".join(f"{i}\n" for i in ids))
        (d / "class_labels.txt").write_text("".join(f"{i},{twin.labels[i]}\n" for i in ids))
        if sizes:
            (d / "image_sizes.txt").write_text("".join(f"{i},{twin.sizes[i][0]},{twin.sizes[i][1]}\n" for i in ids))
        rows = []
        for i in ids:
            if twin.masks:
                rows += [f"{i},{m},{twin.ignore.get(i, '') if k == 0 else ''}" for k, m in enumerate(twin.masks[i])]
            else:
                rows += [f"{i},{x0},{y0},{x1},{y1}" for x0, y0, x1, y1 in twin.boxes[i]]
        (d / "localization.txt").write_text("".join(r + "\n" for r in rows))


def make_boxes_twin(root: Path, meta: Path, n_classes: int = 3, per_class: dict | None = None,
                    size_range=((60, 90), (50, 80)), seed: int = 1) -> Twin:
    """An ILSVRC-like tree: `train/<wnid>/<wnid>_<k>.JPEG`, `val/ILSVRC2012_val_<n>.JPEG`, 1–3 boxes each."""
    per_class = per_class or {"train": 8, "val": 2, "test": 4}
    rng = np.random.default_rng(seed)
    twin = Twin(splits={s: [] for s in per_class})
    n = 0
    for c in range(n_classes):
        wnid = f"n{1440764 + c:08d}"
        twin.class_names.append(wnid)
        for s, count in per_class.items():
            for k in range(count):
                n += 1
                rel = f"train/{wnid}/{wnid}_{k}.JPEG" if s == "train" else f"val/ILSVRC2012_val_{n:08d}.JPEG"
                w, h = _size(rng, size_range)
                img = _backgrounds(rng, 1, w, h)[0]
                boxes = []
                for _ in range(int(rng.integers(1, 4))):
                    x, y, bw, bh = _random_box(rng, w, h, (0.2, 0.45))
                    _draw(img, c, (x, y, bw, bh))
                    boxes.append((x, y, x + bw - 1, y + bh - 1))  # ILSVRC xmls: inclusive pixel boxes
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                twin.splits[s].append(rel)
                twin.labels[rel], twin.sizes[rel], twin.boxes[rel] = c, (w, h), boxes
    write_metadata(meta, twin, twin.splits)
    return twin


def make_masks_twin(root: Path, mask_root: Path, meta: Path, n_classes: int = 3, per_class: dict | None = None,
                    size_range=((60, 90), (50, 80)), seed: int = 2) -> Twin:
    """An OpenImages-like tree: `<split>/<class>/<hex>.jpg`; instance masks `<split>/<class>/<hex>_m<k>.png`
    (0/255, image size) and an ignore mask `<hex>_ignore.png` under `mask_root`; no image_sizes.txt."""
    per_class = per_class or {"train": 8, "val": 2, "test": 4}
    rng = np.random.default_rng(seed)
    twin = Twin(splits={s: [] for s in per_class})
    for c in range(n_classes):
        cls = f"{c:02d}_thing"
        twin.class_names.append(cls)
        for s, count in per_class.items():
            for _ in range(count):
                stem = f"{int(rng.integers(16 ** 8)):08x}"
                rel = f"{s}/{cls}/{stem}.jpg"
                w, h = _size(rng, size_range)
                img = _backgrounds(rng, 1, w, h)[0]
                masks = []
                for k in range(int(rng.integers(1, 3))):
                    box = _random_box(rng, w, h, (0.2, 0.5))
                    _draw(img, c, box)
                    m = np.zeros((h, w), np.uint8)
                    _draw_mask(m, box)
                    mrel = f"{s}/{cls}/{stem}_m{k}.png"
                    (mask_root / mrel).parent.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(mask_root / mrel), m)
                    masks.append(mrel)
                ignore = np.zeros((h, w), np.uint8)
                x, y, bw, bh = _random_box(rng, w, h, (0.2, 0.4))
                ignore[y: y + bh, x: x + bw] = 255
                irel = f"{s}/{cls}/{stem}_ignore.png"
                cv2.imwrite(str(mask_root / irel), ignore)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
                twin.splits[s].append(rel)
                twin.labels[rel], twin.sizes[rel], twin.masks[rel], twin.ignore[rel] = c, (w, h), masks, irel
    write_metadata(meta, twin, twin.splits, sizes=False)
    return twin


def _draw_mask(m: np.ndarray, box) -> None:
    x, y, w, h = box
    cv2.ellipse(m, (x + w // 2, y + h // 2), (max(1, w // 2), max(1, h // 2)), 0, 0, 360, 255, -1)


def reference_mask(mask_root: Path, mask_paths: list[str], ignore_path: str, size: int) -> np.ndarray:
    """The reference evaluator's GT mask (its get_mask), re-derived here for the tests."""
    fg = []
    for p in mask_paths:
        m = cv2.resize(np.float32(cv2.imread(str(mask_root / p), cv2.IMREAD_GRAYSCALE)), (size, size),
                       interpolation=cv2.INTER_NEAREST)
        fg.append(m > 0.5)
    union = np.stack(fg).any(axis=0)
    ign = cv2.resize(np.float32(cv2.imread(str(mask_root / ignore_path), cv2.IMREAD_GRAYSCALE)), (size, size),
                     interpolation=cv2.INTER_NEAREST) > 0.5
    ignore = ign & ~union
    return union.astype(np.uint8) + 255 * ignore.astype(np.uint8)
