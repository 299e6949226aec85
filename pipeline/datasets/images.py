"""Decoding one listed image (and its trimap) for the prepare stage: every oddity is repaired or reported,
never raised.

Runs inside prepare's worker processes, so everything here is a pure function of a file path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from pipeline.datasets import pets

# What PIL raises on files that are not (whole) images; anything else is a bug and must surface.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError,
                 EOFError)


@dataclass
class Decoded:
    """The outcome for one image: its cache row, or the reason it was skipped."""

    image_id: str
    cache: np.ndarray | None = None  # (S, S, 3) uint8, straight INTER_AREA resize
    width: int = 0
    height: int = 0
    skip: str | None = None  # reason the image is unusable
    repairs: list[str] = field(default_factory=list)
    body_box: tuple[int, int, int, int] | None = None
    trimap_note: str | None = None  # why no body box came out of the trimap
    head: pets.VocObject | None = None  # first object of the xml, 0-based, not yet clipped
    head_note: str | None = None  # why the xml gave no head box


def decode_rgb(path: Path, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """Decode any PIL-readable file to RGB (H, W, 3) uint8; returns the array and the repairs made.

    Raises ValueError (with a readable reason) for empty, oversized or undecodable files.
    """
    if path.stat().st_size == 0:
        raise ValueError("empty file (0 bytes)")
    repairs: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = _open_checked(path, max_pixels)
            try:
                im.load()
            except OSError as e:
                if "truncated" not in str(e):
                    raise
                im = _load_truncated(path)
                repairs.append("truncated file: decoded with the missing part filled in")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ValueError(f"{str(e)[:60]}: more than dataset.max_image_pixels={max_pixels} pixels "
                             "(raise that key in params.yaml to keep such images)") from None
        except DECODE_ERRORS as e:
            raise ValueError(f"not a decodable image ({type(e).__name__}: {str(e)[:80]})") from None
    if im.format and im.format != "JPEG":
        repairs.append(f"{im.format} data under a .jpg name: decoded as {im.format}")
    if im.mode != "RGB":
        repairs.append(f"{im.mode} image converted to RGB")
        im = im.convert("RGBA").convert("RGB") if im.mode in ("P", "PA", "LA") else im.convert("RGB")
    rgb = np.asarray(im)  # (H, W, 3)
    if rgb.ndim != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"decodes to zero size {rgb.shape}")
    return rgb, repairs


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    im = Image.open(path)
    w, h = im.size
    if w <= 0 or h <= 0 or w * h > max_pixels:
        im.close()  # refused before any pixel is decoded
        if w <= 0 or h <= 0:
            raise ValueError(f"header says zero size {w}x{h}")
        raise Image.DecompressionBombError(f"{w}x{h}")
    return im


def _load_truncated(path: Path) -> Image.Image:
    # A module global in PIL: safe here because each worker process decodes one file at a time.
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        im = Image.open(path)
        im.load()
        return im
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def resize_cache(rgb: np.ndarray, size: int) -> np.ndarray:
    """Straight S×S resize (no crop, aspect not kept), cv2.INTER_AREA, as docs/contracts.md fixes."""
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)  # (S, S, 3)


def read_trimap(path: Path, shape: tuple[int, int]) -> tuple[tuple[int, int, int, int] | None, str | None]:
    """Body box from a trimap that must match the image's (H, W); (None, reason) when unusable."""
    try:
        with Image.open(path) as im:
            if im.size[0] * im.size[1] > 4 * shape[0] * shape[1]:
                return None, f"trimap size {im.size} does not match the image {shape[::-1]}"
            tri = np.asarray(im)
    except FileNotFoundError:
        return None, "no trimap"
    except DECODE_ERRORS as e:
        return None, f"trimap not decodable ({type(e).__name__})"
    if tri.ndim == 3:  # some editors save trimaps as RGB with equal channels
        tri = tri[..., 0]
    if tri.shape != shape:
        return None, f"trimap size {tri.shape[::-1]} does not match the image {shape[::-1]}"
    bad = pets.check_trimap_values(tri)
    if bad:
        return None, bad
    box = pets.trimap_box(tri)
    return (box, None) if box is not None else (None, "trimap marks no pet pixels")


def read_head(path: Path) -> tuple[pets.VocObject | None, str | None]:
    """The first object of a Pets VOC xml, or (None, reason)."""
    try:
        return pets.parse_voc(path.read_bytes())[1][0], None
    except FileNotFoundError:
        return None, "no head-box xml (image kept, unboxed)"
    except ValueError as e:
        return None, f"head box unusable: {e}"


def process(task: tuple[str, str, str | None, str | None, int, int]) -> Decoded:
    """Worker entry: (image_id, image path, trimap path or None, xml path or None, max_pixels,
    cache size) → Decoded."""
    image_id, path, trimap, xml, max_pixels, size = task
    out = Decoded(image_id)
    try:
        rgb, out.repairs = decode_rgb(Path(path), max_pixels)
    except FileNotFoundError:
        out.skip = "listed in a split file but missing from images/"
        return out
    except ValueError as e:
        out.skip = str(e)
        return out
    out.height, out.width = rgb.shape[:2]
    out.cache = resize_cache(rgb, size)
    if trimap is not None:
        out.body_box, out.trimap_note = read_trimap(Path(trimap), (out.height, out.width))
    if xml is not None:
        out.head, out.head_note = read_head(Path(xml))
    return out
