"""Ground-truth pixel masks (the reference layout's OpenImages30k instance masks, and Pets trimaps) in the S×S evaluation frame, for
evaluate@B's PxAP / PxIoU, exactly as the reference evaluator builds them:

each instance mask is read as 8-bit grayscale, resized to S×S with nearest-neighbour, and is foreground
where its value is > 0.5 (so any non-zero value); the image's foreground is the union of its instances.
The ignore mask (also > 0.5 after the same resize) marks pixels scored as neither class — only where
they are not foreground (the reference's "ignore box minus the foreground").
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.errors import CamlocError
from pipeline.metrics.pixels import IGNORE


def _read(path: str, size: int) -> np.ndarray:
    """(S, S) bool: the file's pixels > 0.5 after a nearest-neighbour resize to S×S."""
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)  # (H, W) uint8
    if img is None:
        raise CamlocError(f"{path}: the mask cannot be read (missing or not an image); check the mask "
                          "paths of localization.txt and dataset.wsol.mask_root, then re-run prepare")
    resized = cv2.resize(img.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    return resized > 0.5


def instance_mask(mask_files: tuple[str, ...], ignore_file: str | None, size: int) -> np.ndarray:
    """(S, S) uint8: 1 foreground (any instance), 0 background, IGNORE where the ignore mask covers
    background."""
    if not mask_files:
        raise CamlocError("an image scored on masks has no mask file; re-run `dvc repro prepare`")
    fg = np.zeros((size, size), dtype=bool)
    for f in mask_files:
        fg |= _read(f, size)
    out = fg.astype(np.uint8)
    if ignore_file:
        out[_read(ignore_file, size) & ~fg] = IGNORE
    return out


def trimap_mask(path: str, size: int) -> np.ndarray:
    """Pets trimap → (S, S) mask: 1 pet → 1, 2 background → 0, anything else (3 boundary) → ignore."""
    tri = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if tri is None:
        raise CamlocError(f"{path}: the trimap cannot be read; re-run `dvc repro prepare`")
    if tri.ndim == 3:
        tri = tri[..., 0]
    tri = cv2.resize(tri, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.where(tri == 1, 1, np.where(tri == 2, 0, IGNORE)).astype(np.uint8)
