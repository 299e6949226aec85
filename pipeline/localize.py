"""Score maps → boxes at every τ, exactly as the reference evaluator (PROTOCOL §1, §3) computes them.

Conventions: a score map is an (H, W) float64 array in [0, 1] (the "evaluation frame", S×S for
paper-style numbers); a box is int ``(x0, y0, x1, y1)``, 0-based with inclusive ends (docs/contracts.md).

Public API (no torch import: ``evaluate-maps`` starts fast):
- ``taus(interval) -> (T,)``: the τ grid ``np.arange(0, 1, interval)``.
- ``normalize_map(raw, size) -> (H, W)``: compatible-mode post-processing (bicubic in float64, min–max).
- ``boxes_at_taus(smap, taus, mode) -> list[(K, 4)]``: candidate boxes per τ (``mode`` "largest"|"all").
- ``best_ious(smap, gt_boxes, taus) -> (2, T)``: per τ the best +1 IoU, row 0 largest-contour mode
  (MaxBoxAcc v1), row 1 all-contours mode (MaxBoxAccV2); one contour pass serves both.
- ``best_iou_per_tau(smap, gt_boxes, taus, mode) -> (T,)``: one row of ``best_ious``.

Why it is fast and still exact: the binarisation ``u > int(τ·max(u))`` on ``u = uint8(255·s)`` only
changes when the integer threshold crosses a value present in ``u``, so at most 256 distinct masks exist
whatever the grid; contours are traced once per distinct mask, on the mask's bounding crop (findContours
pads with zeros, so a crop traces the same contours in the same order, shifted back with ``offset``).
Boxes and polygon areas of many contours are computed with numpy on the concatenated point list
(boundingRect and contourArea are min/max and the shoelace sum over integer points: exact in float64).
``best_ious`` (order-free) switches to connected components once a level has thousands of contours
(noise): an outer border's rect is its 8-connected component's bbox, a hole border's rect is the bbox
of its 4-connected background hole grown by one pixel, and the largest border is found by tracing only
the components whose bbox bounds its area; tests/test_localize_cc.py checks every route against RETR_TREE.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.errors import CamlocError
from pipeline.metrics import iou_matrix

MODES = ("largest", "all")
_NO_BOX = np.zeros((1, 4), dtype=np.int64)  # the reference's box when no contour exists
_VECTORISE_FROM = 12  # contours per mask above which numpy beats a Python loop over cv2 calls


def taus(interval: float) -> np.ndarray:
    """The τ grid of PROTOCOL §3: ``np.arange(0, 1, interval)`` (1.0 is never a threshold)."""
    if not (0.0 < float(interval) < 1.0) or not np.isfinite(interval):
        raise CamlocError(f"interval = {interval!r} is invalid: use a step in (0, 1), e.g. 0.01 or 0.001")
    return np.arange(0, 1, interval)


def normalize_map(raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Compatible-mode post-processing (PROTOCOL §1) of one raw 2-D map to ``size = (height, width)``.

    Bicubic (``cv2.INTER_CUBIC``) resize in float64, then per-image min–max with no epsilon. A constant
    map or one with a non-finite value becomes all zeros (the reference zeroes NaN maps; an inf would
    make it emit NaNs, so we zero those too). Returns an (H, W) float64 array in [0, 1].
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or min(raw.shape) < 1:
        raise ValueError(f"a score map must be 2-D and non-empty, got shape {raw.shape}")
    h, w = int(size[0]), int(size[1])
    cam = cv2.resize(raw, (w, h), interpolation=cv2.INTER_CUBIC)
    if not np.isfinite(cam).all() or cam.min() == cam.max():
        return np.zeros((h, w), dtype=np.float64)
    cam = cam - cam.min()  # the reference's order of operations, so results agree bit for bit
    cam /= cam.max()
    return cam


def to_uint8(smap: np.ndarray) -> np.ndarray:
    """``uint8(255·s)`` by truncation, computed in float64 as the reference does."""
    return (np.asarray(smap, dtype=np.float64) * 255).astype(np.uint8)


def _levels(u: np.ndarray, tau_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct binarisations: (thresholds (L,) of one representative per mask, index (T,) into them).

    The mask ``u > t`` equals ``u > t'`` when no value present in ``u`` lies in (t, t'], so the rank
    of t among the present values identifies the mask.
    """
    thr = (tau_grid * u.max()).astype(np.int64)  # int(τ·max(u)); τ·max ≥ 0 so truncation == int()
    present = np.bincount(u.ravel(), minlength=256) > 0  # (256,)
    rank = np.cumsum(present)[thr]  # (T,) number of present values ≤ t
    _, first, inverse = np.unique(rank, return_index=True, return_inverse=True)
    return thr[first], inverse.reshape(-1)


def _contour_boxes(contours, shape: tuple[int, int]) -> tuple[np.ndarray, int]:
    """All candidate boxes (K, 4) of one mask's contours and the index of the largest-area one."""
    h, w = shape
    n = len(contours)
    if n == 1:  # the common case for smooth maps: no area to compare
        x, y, bw, bh = cv2.boundingRect(contours[0])
        return np.array([[x, y, min(x + bw, w - 1), min(y + bh, h - 1)]], dtype=np.int64), 0
    if n < _VECTORISE_FROM:
        rects = np.array([cv2.boundingRect(c) for c in contours], dtype=np.int64)  # (K, 4) x, y, w, h
        largest = max(range(n), key=lambda i: cv2.contourArea(contours[i]))  # first wins ties
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)
    else:
        lengths = np.fromiter(map(len, contours), dtype=np.int64, count=n)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)  # (P, 2) x, y
        lo = np.minimum.reduceat(pts, starts, axis=0)  # (K, 2)
        hi = np.maximum.reduceat(pts, starts, axis=0) + 1
        boxes = np.concatenate([lo, hi], axis=1)
        nxt = np.arange(1, len(pts) + 1)
        nxt[starts + lengths - 1] = starts  # each polygon closes on its first point
        cross = pts[:, 0] * pts[nxt, 1] - pts[:, 1] * pts[nxt, 0]  # (P,) shoelace terms
        largest = int(np.argmax(np.abs(np.add.reduceat(cross, starts))))  # argmax: first wins ties
    np.minimum(boxes[:, 2], w - 1, out=boxes[:, 2])
    np.minimum(boxes[:, 3], h - 1, out=boxes[:, 3])
    return boxes, largest


def _crops(u: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(L, 4) bounding crop (y0, y1, x0, x1), end-exclusive, of each mask ``u > t``; empty masks → y1 = 0."""
    rows = u.max(axis=1)[None, :] > thresholds[:, None]  # (L, H)
    cols = u.max(axis=0)[None, :] > thresholds[:, None]  # (L, W)
    y0, x0 = rows.argmax(axis=1), cols.argmax(axis=1)
    y1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    x1 = cols.shape[1] - cols[:, ::-1].argmax(axis=1)
    y1[~rows.any(axis=1)] = 0
    return np.stack([y0, y1, x0, x1], axis=1)


_MANY = 256  # contours at the previous level above which connected components beat tracing them all


def _holes(sub: np.ndarray, t: int) -> np.ndarray:
    """(K, 4) x, y, w, h of the hole borders of ``sub > t``, via the holes themselves.

    A hole is a 4-connected background component not touching the (zero-padded) frame; its border's
    boundingRect is the hole's bbox grown by one pixel (tests/test_localize_cc.py checks it against
    RETR_TREE on thousands of random masks).
    """
    _, bg = cv2.threshold(sub, t, 255, cv2.THRESH_BINARY_INV)
    _, _, st, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    st = st[1:, :4].astype(np.int64)  # (K, 4); label 0 is the foreground
    h, w = sub.shape
    inner = (st[:, 0] > 0) & (st[:, 1] > 0) & (st[:, 0] + st[:, 2] < w) & (st[:, 1] + st[:, 3] < h)
    return st[inner] + np.array([-1, -1, 2, 2])


def _last_raster(lab: np.ndarray, st: np.ndarray) -> int:
    """Index (into ``st``) of the component whose first pixel in raster order comes last.

    findContours lists outermost borders by decreasing raster position of their first pixel, so this
    one wins a tie between areas; the first pixel lies in the component's top row.
    """
    ytop = st[:, 1].max()
    labs, first = np.unique(lab[ytop], return_index=True)
    keep = labs > 0
    labs, first = labs[keep], first[keep]
    keep = st[labs - 1, 1] == ytop
    return int(labs[keep][np.argmax(first[keep])]) - 1


def _largest_component(lab: np.ndarray, st: np.ndarray) -> int:
    """Index of the component whose outer border has the largest contourArea (RETR_TREE's first on ties).

    A border's polygon lies in its component's bbox, so (w−1)(h−1) bounds its area: only components
    whose bound reaches the area of the most promising one are traced. Holes and nested components
    never win (their polygons lie inside an enclosing outer border, which comes first).
    """
    if len(st) == 1:
        return 0
    bound = (st[:, 2] - 1) * (st[:, 3] - 1)  # (n,)
    best = int(np.argmax(bound))
    if bound[best] == 0:  # every area is 0
        return _last_raster(lab, st)
    x, y, w, h = st[best].tolist()
    top = cv2.findContours((lab[y:y + h, x:x + w] == best + 1).astype(np.uint8), cv2.RETR_EXTERNAL,
                           cv2.CHAIN_APPROX_SIMPLE)[-2]
    cand = np.flatnonzero((bound >= cv2.contourArea(top[0])) & (bound > 0))
    lut = np.zeros(len(st) + 1, np.uint8)
    lut[cand + 1] = 1
    x0, y0 = st[cand, :2].min(axis=0).tolist()
    x1, y1 = (st[cand, :2] + st[cand, 2:]).max(axis=0).tolist()
    contours = cv2.findContours(lut[lab[y0:y1, x0:x1]], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[-2]
    areas = [cv2.contourArea(c) for c in contours]
    k = max(range(len(contours)), key=areas.__getitem__)  # same order as RETR_TREE: first wins ties
    if areas[k] == 0:
        return _last_raster(lab, st)
    px, py = contours[k][0, 0].tolist()
    return int(lab[y0 + py, x0 + px]) - 1


def _rects_to_boxes(rects: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(K, 4) x, y, w, h → clipped boxes (x, y, x+w, y+h) in the full frame."""
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) + np.array(offset * 2)
    np.minimum(boxes[:, 2], shape[1] - 1, out=boxes[:, 2])
    np.minimum(boxes[:, 3], shape[0] - 1, out=boxes[:, 3])
    return boxes


def _mask_boxes(u: np.ndarray, t: int, crop: tuple[int, int, int, int], many: tuple[bool, bool]):
    """(boxes (K, 4), index of the largest-contour box, (n outer, n holes)) of the mask ``u > t``.

    ``many`` = (many outer borders, many holes) expected: tracing is fastest for a few contours,
    connected components for thousands; every route gives the same boxes (up to order) and largest.
    """
    y0, y1, x0, x1 = crop
    sub = u[y0:y1, x0:x1]
    _, mask = cv2.threshold(sub, t, 255, cv2.THRESH_BINARY)
    if not any(many):
        contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[-2]
        boxes, k = _contour_boxes(contours, u.shape)
        return boxes, k, (len(boxes), len(boxes))
    if not many[0]:  # few outer borders: trace them (RETR_EXTERNAL keeps RETR_TREE's largest)
        holes = _holes(sub, t)
        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[-2]
        outer, k = _contour_boxes(contours, u.shape)
        # RETR_EXTERNAL misses components nested in holes; one needs a hole of at least 3×3 (5×5 grown)
        if ((holes[:, 2] >= 5) & (holes[:, 3] >= 5)).any():
            _, _, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
            box, outer = outer[k], _rects_to_boxes(st[1:, :4].astype(np.int64), (x0, y0), u.shape)
            k = int(np.flatnonzero((outer == box).all(axis=1))[0])  # its component has the same rect
    else:
        _, lab, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        st = st[1:, :4].astype(np.int64)  # (n, 4) x, y, w, h: an outer border's rect is its component's bbox
        outer, k = _rects_to_boxes(st, (x0, y0), u.shape), _largest_component(lab, st)
        holes = _holes(sub, t) if ((st[:, 2] >= 3) & (st[:, 3] >= 3)).any() else _NO_BOX[:0]  # needs a ring
    holes = _rects_to_boxes(holes, (x0, y0), u.shape)
    return np.concatenate([outer, holes]), k, (len(outer), len(holes))


def _level_boxes(smap: np.ndarray, tau_grid: np.ndarray, ordered: bool):
    """Per distinct mask: all boxes and the largest-contour box; plus the τ → mask index.

    ``ordered``: boxes in findContours' order (always trace); otherwise the same set in any order.
    """
    smap = np.asarray(smap, dtype=np.float64)
    if smap.ndim != 2:
        raise ValueError(f"a score map must be 2-D, got shape {smap.shape}")
    u = to_uint8(smap)
    thresholds, index = _levels(u, np.asarray(tau_grid, dtype=np.float64))
    all_boxes, largest, counts = [], [], (0, 0)
    for t, crop in zip(thresholds.tolist(), _crops(u, thresholds).tolist(), strict=True):
        if crop[1] == 0:  # empty mask: no contour
            all_boxes.append(_NO_BOX)
            largest.append(_NO_BOX[0])
            continue
        many = (False, False)
        if not ordered and sum(counts) > _MANY:
            many = (counts[0] > _MANY, counts[1] > _MANY)
        boxes, k, counts = _mask_boxes(u, t, crop, many)
        all_boxes.append(boxes)
        largest.append(boxes[k])
    return all_boxes, np.stack(largest), index


def boxes_at_taus(smap: np.ndarray, tau_grid: np.ndarray, mode: str = "all") -> list[np.ndarray]:
    """Candidate boxes per τ: a list of T int arrays (K, 4); K = 1 in "largest" mode.

    No contour (an empty mask) gives the single box (0, 0, 0, 0), as in the reference. Boxes come in
    findContours' order (COCO AP breaks score ties by it), so this always traces every contour.
    """
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    all_boxes, largest, index = _level_boxes(smap, tau_grid, ordered=True)
    if mode == "largest":
        return [largest[i][None, :] for i in index]
    return [all_boxes[i] for i in index]


def best_ious(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray) -> np.ndarray:
    """(2, T) best +1 IoU per τ over candidate boxes × GT boxes: row 0 largest mode, row 1 all mode.

    ``gt_boxes`` (G, 4) must already be in the map's frame (see ``metrics.rescale_boxes``).
    """
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    all_boxes, largest, index = _level_boxes(smap, tau_grid, ordered=False)
    counts = np.fromiter(map(len, all_boxes), dtype=np.int64, count=len(all_boxes))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_box = iou_matrix(np.concatenate(all_boxes), gt).max(axis=1)  # (sum K,)
    best_all = np.maximum.reduceat(per_box, starts)  # (L,)
    best_largest = iou_matrix(largest, gt).max(axis=1)  # (L,)
    return np.stack([best_largest[index], best_all[index]])


def best_iou_per_tau(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray,
                     mode: str = "all") -> np.ndarray:
    """(T,) best +1 IoU per τ in one mode ("largest" for MaxBoxAcc v1, "all" for MaxBoxAccV2)."""
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    return best_ious(smap, gt_boxes, tau_grid)[MODES.index(mode)]
