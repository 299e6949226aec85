"""Box geometry of PROTOCOL §2 and §4: the one IoU (+1 pixel convention) and the move of boxes into the
evaluation frame; used by every metric (evaluate@B, ``camloc evaluate-maps``, the report's galleries).

Boxes are int ``(x0, y0, x1, y1)``, 0-based with inclusive ends (docs/contracts.md).
"""

from __future__ import annotations

import numpy as np


def _boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)  # (K, 4)


def areas(boxes: np.ndarray) -> np.ndarray:
    """(K,) pixel areas of inclusive boxes: (x1 − x0 + 1)(y1 − y0 + 1)."""
    b = _boxes(boxes)
    return (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)


def intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) int64 pixel counts of box a ∩ box b (inclusive ends; 0 when disjoint)."""
    a, b = _boxes(a)[:, None, :], _boxes(b)[None, :, :]  # (A, 1, 4), (1, B, 4)
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    return iw * ih


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) float64 IoU with the +1 convention; a non-positive union gives 0 (PROTOCOL §4)."""
    inter = intersections(a, b)  # (A, B)
    union = areas(a)[:, None] + areas(b)[None, :] - inter
    bad = union <= 0
    return np.where(bad, 0, inter) / np.where(bad, 1, union)


def cover(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(G,) max over ``boxes`` (K, 4) of |box ∩ g| / |g|: no box inside any of them has a larger IoU with g.

    IoU(h, g) = |h∩g| / (|h| + |g| − |h∩g|) ≤ |h∩g| / |g| ≤ |B∩g| / |g| for h ⊆ B, and float division
    is monotone, so the computed IoU of h cannot exceed this bound either.
    """
    if not len(boxes):
        return np.zeros(len(gt))
    return intersections(boxes, gt).max(axis=0) / areas(gt)


def rescale_boxes(boxes: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> np.ndarray:
    """Move (G, 4) boxes from a src W×H image to the dst frame: ``int(x·dst_w/src_w)``, ``int(y·dst_h/src_h)``.

    Product first, then the division, in float64, truncated (PROTOCOL §2). Equal sizes change nothing.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (sw, sh), (dw, dh) = src_wh, dst_wh
    scale_num = np.array([dw, dh, dw, dh], dtype=np.float64)
    scale_den = np.array([sw, sh, sw, sh], dtype=np.float64)
    return np.trunc(boxes * scale_num / scale_den).astype(np.int64)
