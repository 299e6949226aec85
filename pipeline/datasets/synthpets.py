"""synthpets (download stage): a seeded synthetic twin of Oxford-IIIT Pet, in exactly the Pets layout.

Each image shows one animal (an ellipse body plus an elliptic head) on a cluttered background. Body
colours, background and clutter are drawn from distributions shared by every class; the breed is
encoded ONLY on the head, as a bold head-filling texture with a class-specific colour pair. A
classifier therefore has to look at the head, and its class activation map can be scored against the
head box (xmls) and the whole-pet trimap.

Every image draws from its own RNG seeded by (seed, class, number), so any number of worker
processes produce identical bytes. The real archive's quirks are planted on purpose (see QUIRKS) so
that every default run exercises the parser's defences.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.atomic import replace_dir
from pipeline.contracts import RAW_ENTRIES
from pipeline.datasets import pets
from pipeline.parallel import fork_pool
from pipeline.params import SynthPetsParams
from pipeline.progress import Bar, no_bar

log = logging.getLogger(__name__)

# Quirks of the real archive planted on the first trainval images of classes 0 and 1.
QUIRKS_CLASS0 = ("png_as_jpg", "grayscale", "cmyk")
QUIRKS_CLASS1 = ("truncated", "gif_as_jpg", "no_xml")
PATTERNS = ("hstripes", "vstripes", "dots", "checks", "rings", "zigzag", "crosshatch", "diagonal")
COLOUR_PAIRS = (
    ((230, 30, 30), (250, 230, 40)), ((20, 40, 220), (245, 245, 245)), ((20, 170, 40), (15, 15, 15)),
    ((230, 40, 220), (40, 230, 230)), ((250, 140, 0), (20, 20, 110)), ((250, 250, 250), (10, 10, 10)),
    ((120, 30, 180), (160, 250, 60)), ((110, 60, 20), (255, 150, 200)),
)
FUR = ((150, 110, 70), (90, 70, 55), (200, 180, 150), (120, 120, 125), (60, 55, 50), (210, 140, 70))


@dataclass(frozen=True)
class Item:
    breed: str
    class_idx: int  # 0-based index into the chosen breeds (RNG key only; list ids are alphabetical)
    number: int  # the <n> of <Breed>_<n>.jpg
    split: str | None  # trainval | test | None (planted "in no split")
    quirk: str | None

    @property
    def image_id(self) -> str:
        return f"{self.breed}_{self.number}"


def class_style(class_idx: int) -> tuple[str, tuple, tuple]:
    """(pattern, colour a, colour b) of a class; unique for the first 64 classes."""
    pattern = class_idx % len(PATTERNS)
    colours = (class_idx // len(PATTERNS) + class_idx) % len(COLOUR_PAIRS)
    return PATTERNS[pattern], *COLOUR_PAIRS[colours]


def _texture(pattern: str, xx: np.ndarray, yy: np.ndarray, r: np.ndarray, p: float) -> np.ndarray:
    """Boolean pattern over head coordinates (pixels from the head centre), period p pixels."""
    h = p / 2
    if pattern == "hstripes":
        return np.floor(yy / h) % 2 == 0
    if pattern == "vstripes":
        return np.floor(xx / h) % 2 == 0
    if pattern == "dots":
        return (np.mod(xx, p) - h) ** 2 + (np.mod(yy, p) - h) ** 2 < (0.32 * p) ** 2
    if pattern == "checks":
        return (np.floor(xx / h) + np.floor(yy / h)) % 2 == 0
    if pattern == "rings":
        return np.floor(r / h) % 2 == 0
    if pattern == "zigzag":
        tri = h * np.abs(np.mod(xx / p, 1.0) * 2 - 1)
        return np.floor((yy + tri) / h) % 2 == 0
    if pattern == "crosshatch":
        return (np.mod(xx, p) < 0.3 * p) | (np.mod(yy, p) < 0.3 * p)
    return np.floor((xx + yy) / (h * 1.414)) % 2 == 0  # diagonal


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    top, bottom = rng.integers(40, 216, 3), rng.integers(40, 216, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]  # (H, 1, 1)
    img = np.ascontiguousarray(np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.uint8))
    for _ in range(int(rng.integers(6, 13))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(rng.integers(4, max(5, min(w, h) // 4)))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + size, y + int(rng.integers(3, size + 4))), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), size // 2, colour, -1)
        else:
            end = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            cv2.line(img, (x, y), end, colour, int(rng.integers(1, 4)))
    return img


def render(item: Item, seed: int, min_size: int, max_size: int):
    """Draw one image → (rgb (H, W, 3) uint8, trimap (H, W) uint8 in {1,2,3}, head box 0-based incl.)."""
    rng = np.random.default_rng([seed, item.class_idx, item.number])
    w, h = (int(v) for v in rng.integers(min_size, max_size + 1, 2))
    if w == h and max_size > min_size:  # never square, as in the real photos
        w = w + 1 if w < max_size else w - 1
    img = _background(rng, w, h)
    short = min(w, h)
    rx, ry = (float(short * rng.uniform(0.11, 0.17) * rng.uniform(0.9, 1.1)) for _ in range(2))
    hx = float(rng.uniform(rx + 1, w - rx - 2))
    hy = float(rng.uniform(ry + 1, h - ry - 2))
    theta = float(rng.uniform(0, 2 * np.pi))
    ba, bb = float(short * rng.uniform(0.22, 0.34)), float(short * rng.uniform(0.13, 0.2))
    bx, by = hx + np.cos(theta) * (ba + 0.5 * rx), hy + np.sin(theta) * (ba + 0.5 * ry)
    fur = np.clip(np.array(FUR[int(rng.integers(len(FUR)))]) + rng.integers(-20, 21, 3), 0, 255)
    body = np.zeros((h, w), np.uint8)
    cv2.ellipse(body, (round(bx), round(by)), (round(ba), round(bb)), np.degrees(theta), 0, 360, 1, -1)
    head = np.zeros((h, w), np.uint8)
    cv2.ellipse(head, (round(hx), round(hy)), (round(rx), round(ry)), 0, 0, 360, 1, -1)
    img[body > 0] = fur
    _draw_head(img, head, item.class_idx, hx, hy, min(rx, ry), rng)
    noise = rng.integers(-8, 9, img.shape, dtype=np.int16)  # sensor-like grain, cheaper than normal()
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    trimap = _trimap((body | head) > 0)
    ys, xs = np.nonzero(head)
    return img, trimap, (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))


def _draw_head(img, head, class_idx, hx, hy, r, rng) -> None:
    pattern, ca, cb = class_style(class_idx)
    ys, xs = np.nonzero(head)
    ang = np.radians(rng.uniform(-10, 10))
    dx, dy = xs - hx + rng.uniform(-2, 2), ys - hy + rng.uniform(-2, 2)
    u, v = dx * np.cos(ang) - dy * np.sin(ang), dx * np.sin(ang) + dy * np.cos(ang)
    period = 2 * r / rng.uniform(2.2, 2.8)  # 2-3 bold repeats: they survive a 4x-downsampling stem
    on = _texture(pattern, u, v, np.hypot(dx, dy), period)
    img[ys, xs] = np.where(on[:, None], np.array(ca), np.array(cb))
    for side in (-1, 1):  # two eyes, the same for every class
        cv2.circle(img, (round(hx + side * 0.4 * r), round(hy - 0.2 * r)), max(1, round(0.1 * r)), (0, 0, 0), -1)


def _trimap(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    band = cv2.dilate(m, kernel) != cv2.erode(m, kernel)
    tri = np.where(m > 0, pets.TRIMAP_PET, pets.TRIMAP_BG).astype(np.uint8)
    tri[band] = pets.TRIMAP_BORDER
    return tri


def encode_image(rgb: np.ndarray, quirk: str | None) -> bytes:
    """The bytes of `<image_id>.jpg`: a JPEG, or one of the real archive's oddities."""
    im, buf = Image.fromarray(rgb), io.BytesIO()
    if quirk == "png_as_jpg":
        im.save(buf, "PNG")
    elif quirk == "gif_as_jpg":
        im.convert("P", palette=Image.Palette.ADAPTIVE).save(buf, "GIF")
    elif quirk == "grayscale":
        im.convert("L").save(buf, "JPEG", quality=90)
    elif quirk == "cmyk":
        im.convert("CMYK").save(buf, "JPEG", quality=90)
    else:
        im.save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    if quirk == "truncated":  # cut mid-scan: decodable only with missing rows filled in
        data = data[: int(len(data) * 0.7)]
    return data


def voc_xml(image_id: str, size: tuple[int, int], species: str, box: tuple[int, int, int, int]) -> str:
    """A Pets-style VOC annotation with one head box, written 1-based inclusive like the real ones."""
    w, h = size
    x0, y0, x1, y1 = (v + 1 for v in box)
    return (
        f"<annotation><folder>OXIIIT</folder><filename>{image_id}.jpg</filename>"
        "<source><database>OXFORD-IIIT Pet Dataset</database><annotation>OXIIIT</annotation>"
        "<image>synthpets</image></source>"
        f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size><segmented>0</segmented>"
        f"<object><name>{species}</name><pose>Frontal</pose><truncated>0</truncated><occluded>0</occluded>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
        "<difficult>0</difficult></object></annotation>\n"
    )


def _write_one(args: tuple[Item, int, int, int, str]) -> None:
    item, seed, min_size, max_size, root = args
    rgb, trimap, box = render(item, seed, min_size, max_size)
    ann = Path(root) / "annotations"
    (Path(root) / "images" / f"{item.image_id}.jpg").write_bytes(encode_image(rgb, item.quirk))
    Image.fromarray(trimap).save(ann / "trimaps" / f"{item.image_id}.png")
    if item.split == "trainval" and item.quirk != "no_xml":
        xml = voc_xml(item.image_id, (rgb.shape[1], rgb.shape[0]), pets.species_of(item.breed), box)
        (ann / "xmls" / f"{item.image_id}.xml").write_text(xml)


def plan(sp: SynthPetsParams) -> list[Item]:
    """Every image to draw, with its split and planted quirk; deterministic in sp.seed."""
    items: list[Item] = []
    for c, breed in enumerate(pets.interleaved_breeds()[: sp.num_classes]):
        total = sp.trainval_per_class + sp.test_per_class
        rng = np.random.default_rng([sp.seed, c, 1 << 20])
        test = set(rng.choice(np.arange(1, total + 1), sp.test_per_class, replace=False).tolist())
        quirks = list(QUIRKS_CLASS0 if c == 0 else QUIRKS_CLASS1 if c == 1 else ())
        for n in range(1, total + 1):
            split = "test" if n in test else "trainval"
            quirk = quirks.pop(0) if split == "trainval" and quirks else None
            items.append(Item(breed, c, n, split, quirk))
        if c == 0:  # the real archive has images listed in no split file
            items.append(Item(breed, c, total + 1, None, None))
    return items


def _list_lines(items: list[Item], breeds: list[str]) -> dict[str, list[str]]:
    class_id = {b: i + 1 for i, b in enumerate(sorted(breeds, key=str.lower))}
    out: dict[str, list[str]] = {"trainval": [], "test": []}
    for it in sorted(items, key=lambda i: (class_id[i.breed], i.image_id)):
        if it.split is None:
            continue
        sp = pets.species_of(it.breed)
        breed_id = (pets.CAT_BREEDS if sp == "cat" else pets.DOG_BREEDS).index(it.breed) + 1
        out[it.split].append(f"{it.image_id} {class_id[it.breed]} {1 if sp == 'cat' else 2} {breed_id}")
    return out


def _write_lists(root: Path, items: list[Item], breeds: list[str]) -> None:
    lines = _list_lines(items, breeds)
    ann = root / "annotations"
    both = sorted(lines["trainval"] + lines["test"], key=lambda s: (int(s.split()[1]), s))
    (ann / "list.txt").write_text(pets.LIST_HEADER + "".join(f"{x}\n" for x in both))
    for split in ("trainval", "test"):
        (ann / f"{split}.txt").write_text("".join(f"{x}\n" for x in lines[split]))


def _plant_files(root: Path, items: list[Item]) -> None:
    """Files the real archive ships that must never reach the manifest."""
    first = items[0].image_id
    apple = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(64)
    for rel in ("annotations/._trainval.txt", f"annotations/xmls/._{first}.xml",
                f"annotations/trimaps/._{first}.png"):
        (root / rel).write_bytes(apple)
    header = b"MATLAB 5.0 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2012"
    (root / "images" / f"{first}.mat").write_bytes(header.ljust(128, b" ") + bytes(16))


def generate(sp: SynthPetsParams, out_dir: str | Path, workers: int | None = None, bar: Bar = no_bar) -> dict:
    """Write the synthpets tree to `out_dir` (replaced atomically); returns counts for the summary."""
    items = plan(sp)
    breeds = pets.interleaved_breeds()[: sp.num_classes]
    workers = sp.workers if workers is None else workers
    with replace_dir(out_dir, RAW_ENTRIES) as root:
        for sub in ("images", "annotations/xmls", "annotations/trimaps"):
            (root / sub).mkdir(parents=True)
        tasks = [(it, sp.seed, sp.min_size, sp.max_size, str(root)) for it in items]
        with bar(total=len(tasks), desc="synthpets", unit="img") as progress:
            if workers <= 1:
                for t in tasks:
                    _write_one(t)
                    progress.update(1)
            else:
                with fork_pool(workers) as pool:
                    for _ in pool.imap_unordered(_write_one, tasks, chunksize=16):
                        progress.update(1)
        _write_lists(root, items, breeds)
        _plant_files(root, items)
    counts = {s: sum(it.split == s for it in items) for s in ("trainval", "test")}
    log.info("synthpets: %d classes, %s, %d quirks planted", len(breeds), counts,
             sum(it.quirk is not None for it in items))
    return {"classes": len(breeds), "images": len(items), **counts}
