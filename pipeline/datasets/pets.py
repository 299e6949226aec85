"""The Oxford-IIIT Pet on-disk format (download and prepare stages): breed names, annotation parsers.

Both datasets (the real `pets` and the generated `synthpets`) are read by these functions only.

Box convention: Pets VOC xmls are 1-based inclusive; everything returned here is 0-based inclusive
(`x0, y0, x1, y1`, a whole W×H image is `(0, 0, W-1, H-1)`), so the parser subtracts 1 from all four.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as StdET
from dataclasses import dataclass
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from pipeline.errors import CamlocError

log = logging.getLogger(__name__)

CAT_BREEDS = (
    "Abyssinian", "Bengal", "Birman", "Bombay", "British_Shorthair", "Egyptian_Mau", "Maine_Coon",
    "Persian", "Ragdoll", "Russian_Blue", "Siamese", "Sphynx",
)
DOG_BREEDS = (
    "american_bulldog", "american_pit_bull_terrier", "basset_hound", "beagle", "boxer", "chihuahua",
    "english_cocker_spaniel", "english_setter", "german_shorthaired", "great_pyrenees", "havanese",
    "japanese_chin", "keeshond", "leonberger", "miniature_pinscher", "newfoundland", "pomeranian", "pug",
    "saint_bernard", "samoyed", "scottish_terrier", "shiba_inu", "staffordshire_bull_terrier",
    "wheaten_terrier", "yorkshire_terrier",
)
SPECIES = {1: "cat", 2: "dog"}
LIST_HEADER = (
    "#Image CLASS-ID SPECIES BREED ID\n"
    "#ID: 1:37 Class ids\n"
    "#SPECIES: 1:Cat 2:Dog\n"
    "#BREED ID: 1-25:Cat 1:12:Dog\n"
    "#All images with 1st letter as captial are cat images\n"
    "#images with small first letter are dog images\n"
)
TRIMAP_PET, TRIMAP_BG, TRIMAP_BORDER = 1, 2, 3
APPLEDOUBLE_PREFIX = "._"  # macOS resource-fork files shipped in the real archive


def interleaved_breeds() -> list[str]:
    """All 37 breeds, cat and dog alternating, so the first k of them hold both species (k >= 2)."""
    out: list[str] = []
    for i in range(max(len(CAT_BREEDS), len(DOG_BREEDS))):
        out += [b[i] for b in (CAT_BREEDS, DOG_BREEDS) if i < len(b)]
    return out


def species_of(breed: str) -> str:
    """Cat breeds are capitalised, dog breeds lower-case (the real archive's rule)."""
    return "cat" if breed[:1].isupper() else "dog"


def breed_of(image_id: str) -> str:
    return image_id.rsplit("_", 1)[0]


@dataclass(frozen=True)
class ListEntry:
    image_id: str
    class_id: int  # 1..C
    species: str  # cat | dog
    breed_id: int  # 1-based within the species


def parse_list_line(line: str, where: str) -> ListEntry | None:
    """One line of list.txt / trainval.txt / test.txt: `<image_id> <class id> <species 1|2> <breed id>`.

    Returns None for blank and `#` comment lines; raises CamlocError naming `where` (file:line).
    """
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    fields = text.split()
    if len(fields) != 4:
        raise CamlocError(f"{where}: expected '<image> <class id> <species 1|2> <breed id>', got {text!r}; "
                          "the annotations are damaged: delete data/raw and re-run `camloc download`")
    name, *nums = fields
    try:
        class_id, species, breed_id = (int(v) for v in nums)
    except ValueError:
        raise CamlocError(f"{where}: non-integer ids in {text!r}; re-run `camloc download`") from None
    if class_id < 1 or breed_id < 1 or species not in SPECIES:
        raise CamlocError(f"{where}: ids out of range in {text!r} (class and breed ids start at 1, "
                          "species is 1=cat or 2=dog); re-run `camloc download`")
    if "/" in name or "\\" in name or name.startswith("."):
        raise CamlocError(f"{where}: image name {name!r} is not a plain file stem; re-run `camloc download`")
    return ListEntry(name, class_id, SPECIES[species], breed_id)


def read_list(path: Path) -> list[ListEntry]:
    """All entries of a Pets list file, in file order; a missing file is a CamlocError."""
    if not path.is_file():
        raise CamlocError(f"{path} is missing: the raw dataset is incomplete; re-run `camloc download`")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise CamlocError(f"{path} is not UTF-8 text; re-run `camloc download`") from None
    entries = (parse_list_line(line, f"{path}:{i + 1}") for i, line in enumerate(lines))
    return [e for e in entries if e is not None]


@dataclass(frozen=True)
class VocObject:
    name: str
    box: tuple[int, int, int, int]  # 0-based inclusive x0, y0, x1, y1


def parse_voc(data: bytes) -> tuple[tuple[int, int] | None, list[VocObject]]:
    """A Pets VOC xml → ((width, height) or None, objects with 0-based boxes).

    Parsed with defusedxml: entity declarations (billion laughs, external entities) are refused.
    Raises ValueError with the reason on anything malformed; callers report the file as skipped.
    """
    try:
        root = SafeET.fromstring(data)
    except defusedxml.DefusedXmlException as e:
        raise ValueError(f"refused unsafe XML ({type(e).__name__})") from None
    except StdET.ParseError as e:
        raise ValueError(f"malformed XML ({e})") from None
    size = None
    w, h = root.findtext("size/width"), root.findtext("size/height")
    if w is not None and h is not None:
        size = (_int(w, "size/width"), _int(h, "size/height"))
    objects = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if bb is None:
            raise ValueError("an <object> without <bndbox>")
        x0, y0, x1, y1 = (_int(bb.findtext(k), f"bndbox/{k}") - 1 for k in ("xmin", "ymin", "xmax", "ymax"))
        if x1 < x0 or y1 < y0:
            raise ValueError(f"empty box xmin..xmax={x0 + 1}..{x1 + 1}, ymin..ymax={y0 + 1}..{y1 + 1}")
        objects.append(VocObject(name, (x0, y0, x1, y1)))
    if not objects:
        raise ValueError("no <object> with a box")
    return size, objects


def _int(text: str | None, tag: str) -> int:
    if text is None:
        raise ValueError(f"missing <{tag}>")
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"<{tag}> is not a number: {text.strip()[:40]!r}") from None
    if not np.isfinite(value) or abs(value) > 1e9:
        raise ValueError(f"<{tag}> is out of range: {text.strip()[:40]!r}")
    return int(round(value))


def trimap_box(trimap: np.ndarray) -> tuple[int, int, int, int] | None:
    """Whole-pet box = extent of trimap pixels != 2 (pet and boundary), 0-based inclusive; None if none."""
    if trimap.ndim != 2:
        raise ValueError(f"a trimap must be one channel, got shape {trimap.shape}")
    fg = trimap != TRIMAP_BG  # (H, W)
    rows, cols = np.flatnonzero(fg.any(axis=1)), np.flatnonzero(fg.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def check_trimap_values(trimap: np.ndarray) -> str | None:
    """The reason a trimap is not a Pets trimap (values outside {1, 2, 3}), or None when it is."""
    if trimap.size and TRIMAP_PET <= trimap.min() and trimap.max() <= TRIMAP_BORDER:
        return None  # the fast path: np.unique sorts, min/max do not
    bad = np.setdiff1d(np.unique(trimap), (TRIMAP_PET, TRIMAP_BG, TRIMAP_BORDER))
    if bad.size:
        return f"trimap holds values {bad[:5].tolist()} outside 1 (pet), 2 (background), 3 (boundary)"
    return None
