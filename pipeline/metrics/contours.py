"""Contour tracing of a score map's distinct binarisations, the reference's way (PROTOCOL §3), for
``pipeline.metrics.boxes`` (evaluate@B, ``camloc evaluate-maps``).

The binarisation ``u > int(τ·max(u))`` on ``u = uint8(255·s)`` only changes when the integer threshold
crosses a value present in ``u``, so at most 256 distinct masks exist whatever the grid; each is traced
once, on its bounding crop (findContours pads with zeros, so a crop traces the same contours in the
same order, shifted back with ``offset``). Boxes and polygon areas of many contours are computed with
numpy on the concatenated point list (boundingRect and contourArea are min/max and the shoelace sum
over integer points: exact in float64).
"""

from __future__ import annotations

import cv2
import numpy as np

NO_BOX = np.zeros((1, 4), dtype=np.int64)  # the reference's box when no contour exists
_VECTORISE_FROM = 12  # contours per mask above which numpy beats a Python loop over cv2 calls


def to_uint8(smap: np.ndarray) -> np.ndarray:
    """``uint8(255·s)`` by truncation, computed in float64 as the reference does."""
    return (np.asarray(smap, dtype=np.float64) * 255).astype(np.uint8)


def distinct_levels(u: np.ndarray, tau_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct binarisations: (thresholds (L,) of one representative per mask, index (T,) into them).

    The mask ``u > t`` equals ``u > t'`` when no value present in ``u`` lies in (t, t'], so the rank
    of t among the present values identifies the mask.
    """
    thr = (tau_grid * u.max()).astype(np.int64)  # int(τ·max(u)); τ·max ≥ 0 so truncation == int()
    present = np.bincount(u.ravel(), minlength=256) > 0  # (256,)
    rank = np.cumsum(present)[thr]  # (T,) number of present values ≤ t
    _, first, inverse = np.unique(rank, return_index=True, return_inverse=True)
    return thr[first], inverse.reshape(-1)


def twice_areas(contours, points: bool = False):
    """(K,) 2× contourArea of each contour, exact: the shoelace sum over integer points, in int64.

    With ``points``: also the concatenated points (P, 2) x, y and each contour's start (K,).
    """
    lengths = np.fromiter(map(len, contours), dtype=np.int64, count=len(contours))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)  # (P, 2) x, y
    nxt = np.arange(1, len(pts) + 1)
    nxt[starts + lengths - 1] = starts  # each polygon closes on its first point
    cross = pts[:, 0] * pts[nxt, 1] - pts[:, 1] * pts[nxt, 0]  # (P,) shoelace terms
    areas = np.abs(np.add.reduceat(cross, starts))
    return (pts, starts, areas) if points else areas


def contour_boxes(contours, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """All candidate boxes (K, 4) of one mask's contours and the index of the largest-area one."""
    h, w = shape
    n = len(contours)
    if n == 1:  # the common case for smooth maps: no area to compare
        x, y, bw, bh = cv2.boundingRect(contours[0])
        return np.array([[x, y, min(x + bw, w - 1), min(y + bh, h - 1)]], dtype=np.int64), 0
    if n < _VECTORISE_FROM:
        rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)  # (K, 4) x, y, w, h
        largest = max(range(n), key=lambda i: cv2.contourArea(contours[i]))  # first wins ties
    else:
        pts, starts, areas = twice_areas(contours, points=True)
        lo = np.minimum.reduceat(pts, starts, axis=0)  # (K, 2)
        rects = np.concatenate([lo, np.maximum.reduceat(pts, starts, axis=0) + 1 - lo], axis=1)  # (K, 4)
        largest = int(np.argmax(areas))  # argmax: first wins ties
    return rects_to_boxes(rects, (0, 0), shape), largest


def mask_crops(u: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(L, 4) bounding crop (y0, y1, x0, x1), end-exclusive, of each mask ``u > t``; empty masks → y1 = 0."""
    rows = u.max(axis=1)[None, :] > thresholds[:, None]  # (L, H)
    cols = u.max(axis=0)[None, :] > thresholds[:, None]  # (L, W)
    y0, x0 = rows.argmax(axis=1), cols.argmax(axis=1)
    y1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    x1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    y1[~rows.any(axis=1)] = 0
    return np.stack([y0, y1, x0, x1], axis=1)


def rects_to_boxes(rects: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(K, 4) x, y, w, h → clipped boxes (x, y, x+w, y+h) in the full frame."""
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) + np.array(offset * 2)
    np.minimum(boxes[:, 2], shape[1] - 1, out=boxes[:, 2])
    np.minimum(boxes[:, 3], shape[0] - 1, out=boxes[:, 3])
    return boxes


def mask_boxes(u: np.ndarray, t: int, crop: tuple[int, int, int, int]):
    """(boxes (K, 4) in findContours' order, index of the largest-contour box, K) of the mask ``u > t``."""
    y0, y1, x0, x1 = crop
    _, mask = cv2.threshold(u[y0:y1, x0:x1], t, 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[-2]
    boxes, k = contour_boxes(contours, u.shape)
    return boxes, k, len(boxes)


def prepare_levels(smap: np.ndarray, tau_grid: np.ndarray, crops: bool = True):
    """(u (H, W) uint8, thresholds (L,), τ → mask index (T,), crops (L, 4) unless not ``crops``)."""
    smap = np.asarray(smap, dtype=np.float64)
    if smap.ndim != 2:
        raise ValueError(f"a score map must be 2-D, got shape {smap.shape}")
    u = to_uint8(smap)
    thresholds, index = distinct_levels(u, np.asarray(tau_grid, dtype=np.float64))
    return (u, thresholds, index, mask_crops(u, thresholds)) if crops else (u, thresholds, index)


def level_boxes(smap: np.ndarray, tau_grid: np.ndarray):
    """Per distinct mask: all boxes in findContours' order and the largest-contour box; the τ → mask index."""
    u, thresholds, index, crops = prepare_levels(smap, tau_grid)
    all_boxes, largest = [], []
    for t, crop in zip(thresholds.tolist(), crops.tolist(), strict=True):
        if crop[1] == 0:  # empty mask: no contour
            all_boxes.append(NO_BOX)
            largest.append(NO_BOX[0])
            continue
        boxes, k, _ = mask_boxes(u, t, crop)
        all_boxes.append(boxes)
        largest.append(boxes[k])
    return all_boxes, np.stack(largest), index
