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
``best_ious`` (order-free) goes from high τ to low and switches to connected components once a level
has hundreds of contours (noise): an outer border's rect is its 8-connected component's bbox, a hole
border's rect is the bbox of its 4-connected background hole grown by one pixel. Only the best IoU
matters there, so holes are labelled only when one could beat the outer boxes (a hole box lies inside
its enclosing component's box and inside its background component's box at any higher τ); the
largest border comes from per-component areas counted over 2×2 cells (exact without holes, Euler
numbers tell which have holes) and bbox bounds, tracing only undecided components; a level whose new
pixels all touch the single component above is that component grown, with no labelling.
tests/test_localize_cc.py checks every step against RETR_TREE.
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


def _twice_areas(contours, points: bool = False):
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
        pts, starts, areas = _twice_areas(contours, points=True)
        lo = np.minimum.reduceat(pts, starts, axis=0)  # (K, 2)
        hi = np.maximum.reduceat(pts, starts, axis=0) + 1
        boxes = np.concatenate([lo, hi], axis=1)
        largest = int(np.argmax(areas))  # argmax: first wins ties
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


_SQUARE = np.ones((3, 3), np.uint8)  # the 8-neighbourhood
_MANY = 256  # contours at the previous level above which connected components beat tracing them all


def _background(sub: np.ndarray, t: int) -> np.ndarray:
    """(K, 4) x, y, w, h of every 4-connected background component of ``sub > t`` (frame-touching too)."""
    _, bg = cv2.threshold(sub, t, 255, cv2.THRESH_BINARY_INV)
    _, _, st, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    return st[1:, :4].astype(np.int64)  # label 0 is the foreground


def _holes(sub: np.ndarray, t: int, st: np.ndarray | None = None) -> np.ndarray:
    """(K, 4) x, y, w, h of the hole borders of ``sub > t``, via the holes themselves.

    A hole is a 4-connected background component not touching the (zero-padded) frame; its border's
    boundingRect is the hole's bbox grown by one pixel (tests/test_localize_cc.py checks it against
    RETR_TREE on thousands of random masks). ``st``: ``_background(sub, t)`` when already computed.
    """
    st = _background(sub, t) if st is None else st
    h, w = sub.shape
    inner = (st[:, 0] > 0) & (st[:, 1] > 0) & (st[:, 0] + st[:, 2] < w) & (st[:, 1] + st[:, 3] < h)
    return st[inner] + np.array([-1, -1, 2, 2])


def _last_raster(lab: np.ndarray, st: np.ndarray, idx: np.ndarray) -> int:
    """The component among ``idx`` (indices into ``st``) whose first pixel in raster order comes last.

    findContours lists outermost borders by decreasing raster position of their first pixel, so this
    one wins a tie between areas; the first pixel lies in the component's top row.
    """
    if len(idx) == 1:
        return int(idx[0])
    ytop = st[idx, 1].max()
    labs, first = np.unique(lab[ytop], return_index=True)
    col = dict(zip(labs.tolist(), first.tolist(), strict=True))
    return max(idx[st[idx, 1] == ytop].tolist(), key=lambda i: col[i + 1])


def _blocks(own: np.ndarray) -> int:
    """Number of 2×2 pixel blocks inside the bool mask ``own`` (one 8-connected component).

    A lower bound of its outer border's contourArea: the border polygon through pixel centres
    encloses the unit square spanned by every such block, and the squares do not overlap.
    """
    return int(np.count_nonzero(own[:-1, :-1] & own[1:, :-1] & own[:-1, 1:] & own[1:, 1:]))


_POP = np.array([bin(c).count("1") for c in range(16)])  # pixels in a 2×2 cell, by code a + 2b + 4c + 8d
_CLASS = np.full(256, 4, np.uint8)  # a cv2.LUT: 0 one pixel, 1 three, 2 four, 3 a diagonal pair, 4 other
_CLASS[:16] = np.where(_POP == 1, 0, np.where(_POP == 3, 1, 4))
_CLASS[15], _CLASS[[6, 9]] = 2, 3


def _cell_stats(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per component, without tracing: (n,) 2× its outer border's contourArea, exact unless (n,) the
    flag says it has a hole of more than one pixel (then a lower bound).

    Marching squares over the 2×2 cells of pixel centres: a cell with 4 pixels of the filled component
    lies inside the border (adds 2), with 3 half of it does (adds 1). One-pixel holes are filled first;
    Gray's bit quads then give the Euler number (8-connected foreground, 4-connected holes),
    4E = #1-pixel − #3-pixel − 2·#diagonal cells, and holes remain iff E ≠ 1. A cell's foreground
    pixels are 8-adjacent, so they belong to one component (tests/test_localize_cc.py checks both).
    """
    labp = cv2.copyMakeBorder(lab, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)  # (H+2, W+2)
    fg = (labp > 0).view(np.uint8)
    around = fg[:-2, 1:-1] + fg[2:, 1:-1] + fg[1:-1, :-2] + fg[1:-1, 2:]  # (H, W) 4-neighbours
    pin = (around == 4) & (fg[1:-1, 1:-1] == 0)
    if pin.any():  # a one-pixel hole: its 4-neighbours are 8-adjacent, one component; fill it
        np.copyto(labp[1:-1, 1:-1], labp[:-2, 1:-1], where=pin)
        fg[1:-1, 1:-1] |= pin.view(np.uint8)
    code = fg[:-1, :-1] + 2 * fg[:-1, 1:] + 4 * fg[1:, :-1] + 8 * fg[1:, 1:]  # (H+1, W+1)
    key = cv2.max(cv2.max(labp[:-1, :-1], labp[:-1, 1:]), cv2.max(labp[1:, :-1], labp[1:, 1:]))  # owner
    key *= 5
    key += cv2.LUT(code, _CLASS)  # (H+1, W+1) component and class of each cell
    q1, q3, q4, qd, _ = np.bincount(key.ravel(), minlength=(n + 1) * 5).reshape(n + 1, 5)[1:].T  # (n,)
    return 2 * q4 + q3, q1 - q3 - 2 * qd != 4


def _largest_component(lab: np.ndarray, st: np.ndarray) -> int:
    """Index of the component whose outer border has the largest contourArea (RETR_TREE's first on ties).

    A border's polygon lies in its component's bbox, so (w−1)(h−1) bounds its area; ``_cell_stats``
    gives the exact area of most components and a lower bound of the others. Only components whose
    bound reaches the largest known area are traced, and only when one of them is inexact.
    Holes and nested components never win (their polygons lie inside an enclosing outer border).
    """
    if len(st) == 1:
        return 0
    bound = (st[:, 2] - 1) * (st[:, 3] - 1)  # (n,)
    best = int(np.argmax(bound))
    if bound[best] == 0:  # every area is 0
        return _last_raster(lab, st, np.arange(len(st)))
    x, y, w, h = st[best].tolist()
    area = _blocks(lab[y:y + h, x:x + w] == best + 1)  # cheapest first: one dominant component
    if area > 0 and ((bound >= area) & (bound > 0)).sum() == 1:
        return best
    twice, holed = _cell_stats(lab, len(st))  # (n,)
    cand = np.flatnonzero(np.where(holed, 2 * bound, twice) >= twice.max())
    if len(cand) == 1 or not holed[cand].any():  # the winner, or all exact: all equal twice.max()
        return _last_raster(lab, st, cand)
    lut = np.zeros(len(st) + 1, np.uint8)
    lut[cand + 1] = 1
    x0, y0 = st[cand, :2].min(axis=0).tolist()
    x1, y1 = (st[cand, :2] + st[cand, 2:]).max(axis=0).tolist()
    contours = cv2.findContours(np.take(lut, lab[y0:y1, x0:x1]), cv2.RETR_EXTERNAL,
                                cv2.CHAIN_APPROX_SIMPLE)[-2]
    areas = _twice_areas(contours)  # (K,)
    k = int(np.argmax(areas))  # same order as RETR_TREE: first wins ties
    if areas[k] == 0:
        return _last_raster(lab, st, np.arange(len(st)))
    px, py = contours[k][0, 0].tolist()
    return int(lab[y0 + py, x0 + px]) - 1


def _rects_to_boxes(rects: np.ndarray, offset: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """(K, 4) x, y, w, h → clipped boxes (x, y, x+w, y+h) in the full frame."""
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1) + np.array(offset * 2)
    np.minimum(boxes[:, 2], shape[1] - 1, out=boxes[:, 2])
    np.minimum(boxes[:, 3], shape[0] - 1, out=boxes[:, 3])
    return boxes


def _mask_boxes(u: np.ndarray, t: int, crop: tuple[int, int, int, int]):
    """(boxes (K, 4) in findContours' order, index of the largest-contour box, K) of the mask ``u > t``."""
    y0, y1, x0, x1 = crop
    _, mask = cv2.threshold(u[y0:y1, x0:x1], t, 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))[-2]
    boxes, k = _contour_boxes(contours, u.shape)
    return boxes, k, len(boxes)


def _prepare(smap: np.ndarray, tau_grid: np.ndarray):
    """(u (H, W) uint8, thresholds (L,), τ → mask index (T,), crops (L, 4)) of a score map."""
    smap = np.asarray(smap, dtype=np.float64)
    if smap.ndim != 2:
        raise ValueError(f"a score map must be 2-D, got shape {smap.shape}")
    u = to_uint8(smap)
    thresholds, index = _levels(u, np.asarray(tau_grid, dtype=np.float64))
    return u, thresholds, index, _crops(u, thresholds)


def _level_boxes(smap: np.ndarray, tau_grid: np.ndarray):
    """Per distinct mask: all boxes in findContours' order and the largest-contour box; the τ → mask index."""
    u, thresholds, index, crops = _prepare(smap, tau_grid)
    all_boxes, largest = [], []
    for t, crop in zip(thresholds.tolist(), crops.tolist(), strict=True):
        if crop[1] == 0:  # empty mask: no contour
            all_boxes.append(_NO_BOX)
            largest.append(_NO_BOX[0])
            continue
        boxes, k, _ = _mask_boxes(u, t, crop)
        all_boxes.append(boxes)
        largest.append(boxes[k])
    return all_boxes, np.stack(largest), index


def _cover(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(G,) max over ``boxes`` (K, 4) of |box ∩ g| / |g|: no box inside any of them has a larger IoU with g.

    IoU(h, g) = |h∩g| / (|h| + |g| − |h∩g|) ≤ |h∩g| / |g| ≤ |B∩g| / |g| for h ⊆ B, and float division
    is monotone, so the computed IoU of h cannot exceed this bound either.
    """
    if not len(boxes):
        return np.zeros(len(gt))
    iw = np.minimum(boxes[:, None, 2], gt[None, :, 2]) - np.maximum(boxes[:, None, 0], gt[None, :, 0]) + 1
    ih = np.minimum(boxes[:, None, 3], gt[None, :, 3]) - np.maximum(boxes[:, None, 1], gt[None, :, 1]) + 1
    inter = (np.maximum(iw, 0) * np.maximum(ih, 0)).max(axis=0)  # (G,)
    return inter / ((gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1))


def _outer_components(sub: np.ndarray, t: int, single_above: int | None) -> tuple[np.ndarray, int]:
    """(n, 4) x, y, w, h of the 8-connected components of ``sub > t`` and the index of the largest border.

    ``single_above``: a threshold whose mask is one component. When every pixel added since touches
    that mask, the mask is still one component (its bbox: the crop), and labelling is skipped.
    """
    _, mask = cv2.threshold(sub, t, 255, cv2.THRESH_BINARY)
    if single_above is not None:
        _, above = cv2.threshold(sub, single_above, 255, cv2.THRESH_BINARY)
        if not cv2.countNonZero(cv2.subtract(mask, cv2.dilate(above, _SQUARE))):
            return np.array([[0, 0, sub.shape[1], sub.shape[0]]], dtype=np.int64), 0
    _, lab, st, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    st = st[1:, :4].astype(np.int64)  # (n, 4): an outer border's rect is its component's bbox
    return st, _largest_component(lab, st)


def _component_level(u: np.ndarray, t: int, crop, gt: np.ndarray, bg_cover: np.ndarray | None,
                     single_above: int | None):
    """Best IoUs (largest, all) of the mask ``u > t`` via connected components, labelling holes only
    when one could beat the outer boxes; also (n outer, n holes or None) and the new ``bg_cover``.

    A hole box lies inside its enclosing component's box (a ring: w, h ≥ 3) and inside the box of the
    background component holding it at any higher level already labelled (backgrounds grow with t;
    ``bg_cover`` is their ``_cover``, inf when unknown), so min of the two covers bounds every hole's IoU.
    ``bg_cover`` None: no pruning (a GT box with no area). ``single_above``: see ``_outer_components``.
    """
    y0, y1, x0, x1 = crop
    sub = u[y0:y1, x0:x1]
    st, k = _outer_components(sub, t, single_above)
    outer = _rects_to_boxes(st, (x0, y0), u.shape)
    ious = iou_matrix(outer, gt).max(axis=1)  # (n,)
    best = (ious[k], ious.max())
    ring = (st[:, 2] >= 3) & (st[:, 3] >= 3)
    if not ring.any():  # no hole without a ring
        return best, (len(outer), 0), bg_cover
    if bg_cover is not None and np.minimum(_cover(outer[ring], gt), bg_cover).max() <= best[1]:
        return best, (len(outer), None), bg_cover
    bg = _background(sub, t)
    holes = _rects_to_boxes(_holes(sub, t, bg), (x0, y0), u.shape)
    if bg_cover is not None and sub.shape == u.shape:  # outside a smaller crop, backgrounds join beyond it
        grown = _rects_to_boxes(bg + np.array([-1, -1, 2, 2]), (0, 0), u.shape)
        bg_cover = _cover(np.maximum(grown, 0), gt)
    if len(holes):
        best = (best[0], max(best[1], iou_matrix(holes, gt).max()))
    return best, (len(outer), len(holes)), bg_cover


def boxes_at_taus(smap: np.ndarray, tau_grid: np.ndarray, mode: str = "all") -> list[np.ndarray]:
    """Candidate boxes per τ: a list of T int arrays (K, 4); K = 1 in "largest" mode.

    No contour (an empty mask) gives the single box (0, 0, 0, 0), as in the reference. Boxes come in
    findContours' order (COCO AP breaks score ties by it), so this always traces every contour.
    """
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    all_boxes, largest, index = _level_boxes(smap, tau_grid)
    if mode == "largest":
        return [largest[i][None, :] for i in index]
    return [all_boxes[i] for i in index]


def best_ious(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray) -> np.ndarray:
    """(2, T) best +1 IoU per τ over candidate boxes × GT boxes: row 0 largest mode, row 1 all mode.

    ``gt_boxes`` (G, 4) must already be in the map's frame (see ``metrics.rescale_boxes``).
    """
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    u, thresholds, index, crops = _prepare(smap, tau_grid)
    best = np.empty((2, len(thresholds)))  # (2, L)
    proper = bool(((gt[:, 2] >= gt[:, 0]) & (gt[:, 3] >= gt[:, 1])).all())  # the IoU bounds need |g| > 0
    bg_cover = np.full(len(gt), np.inf) if proper else None
    counts, holes, traced, single = 0, 0, [], None  # contours (holes) at the level above
    for i in reversed(range(len(thresholds))):  # high τ first: background components shrink as τ falls
        t, crop = int(thresholds[i]), crops[i].tolist()
        if crop[1] == 0:  # empty mask: no contour
            traced.append((i, _NO_BOX, 0))
            single = None
        elif counts <= _MANY:  # few contours at the level above: tracing is fastest
            boxes, k, counts = _mask_boxes(u, t, crop)
            traced.append((i, boxes, k))
            single = None
        else:
            best[:, i], (n_outer, n_holes), bg_cover = _component_level(u, t, crop, gt, bg_cover, single)
            counts = n_outer + (holes if n_holes is None else n_holes)  # skipped holes: keep the estimate
            holes = holes if n_holes is None else n_holes
            single = t if n_outer == 1 else None  # the level above is one component
    if traced:  # one IoU call for all traced levels: smooth maps are dominated by per-call overhead
        rows, boxes, ks = zip(*traced, strict=True)
        sizes = np.fromiter(map(len, boxes), dtype=np.int64, count=len(boxes))
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        per_box = iou_matrix(np.concatenate(boxes), gt).max(axis=1)  # (sum K,)
        best[0, list(rows)] = per_box[starts + np.array(ks)]
        best[1, list(rows)] = np.maximum.reduceat(per_box, starts)
    return best[:, index]


def best_iou_per_tau(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray,
                     mode: str = "all") -> np.ndarray:
    """(T,) best +1 IoU per τ in one mode ("largest" for MaxBoxAcc v1, "all" for MaxBoxAccV2)."""
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    return best_ious(smap, gt_boxes, tau_grid)[MODES.index(mode)]
