"""All distinct levels of a score map in two compiled (numba) union-find sweeps, for ``boxes.best_ious``
(evaluate@B, ``camloc evaluate-maps``): the best IoU of every level in both modes, without tracing.

Why it is exact (tests/metrics/test_boxes_reference.py and test_leveltree.py check it against RETR_TREE):
- the masks ``u > t`` are nested: adding pixels by decreasing value, joining 8-neighbours, yields every
  level's 8-connected components; an outer border's boundingRect is its component's bbox;
- the backgrounds ``u ≤ t`` grow with t: adding pixels by increasing value, joining 4-neighbours and the
  frame's padding, yields every level's holes; a hole border's boundingRect is the hole's bbox grown by
  one pixel (``components._holes``). Holes are swept only up to the last level where one could beat
  the outer boxes (``iou.cover`` of the holed components' boxes bounds their IoU);
- 2 × contourArea of an outer border is the marching-squares sum over 2×2 cells of pixel centres of the
  component with its holes filled: 2 per cell with 4 pixels, 1 with 3. Kept per component as pixels
  arrive: the unfilled sum, the Euler number (bit quads: 4E = #1-pixel − #3-pixel − 2·#diagonal cells)
  and the one-pixel holes, each of which adds exactly 4 when filled (its 4 cells hold its two diagonal
  4-neighbours already: one more pixel is one more step). A component whose 1 − E holes are all one
  pixel has its exact area; another holed one lies between its sum and 2(w − 1)(h − 1), and is flood-
  filled in its bbox when that bound matters. Ties among equal areas go to the component whose first
  pixel in raster order comes last (findContours lists outermost borders so; nested components and
  hole borders lie inside an enclosing border). Levels beyond the fill budget are left to the caller.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from pipeline import jitcache
from pipeline.metrics import levelcells
from pipeline.metrics.levelcells import _DEULER4, _DSCORE, _GROUP_REP, _GROUPS, _SCORE

jitcache.by_content(__file__, levelcells.__file__)  # its tables are compiled in as constants


@nb.njit(cache=True, nogil=True)
def _find(parent, x):
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        nxt = parent[x]
        parent[x] = root
        x = nxt
    return root


@nb.njit(cache=True, nogil=True)
def _best_iou(x0, y0, x1, y1, gt):
    """max over GT boxes of the +1 IoU of box (x0, y0, x1, y1), computed as ``iou.iou_matrix`` does."""
    best = 0.0
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    for g in range(gt.shape[0]):
        iw = max(0, min(x1, gt[g, 2]) - max(x0, gt[g, 0]) + 1)
        ih = max(0, min(y1, gt[g, 3]) - max(y0, gt[g, 1]) + 1)
        inter = iw * ih
        union = area + (gt[g, 2] - gt[g, 0] + 1) * (gt[g, 3] - gt[g, 1] + 1) - inter
        value = 0.0 if union <= 0 else inter / union
        if g == 0 or value > best:
            best = value
    return best


@nb.njit(cache=True, nogil=True)
def _by_value(flat, order):
    """Pixel indices sorted by value (counting sort, into ``order``); the start (257,) of each value."""
    start = np.zeros(257, np.int64)
    for p in range(flat.size):
        start[flat[p] + 1] += 1
    for v in range(256):
        start[v + 1] += start[v]
    pos = start[:256].copy()
    for p in range(flat.size):
        order[pos[flat[p]]] = p
        pos[flat[p]] += 1
    return order, start


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _filled_twice_area(parent, r, x0, y0, x1, y1, wp, score_lut, member, outside, stack, stamp):
    """2 × contourArea of the outer border of the component rooted at r (bbox x0..x1, y0..y1), exact:
    the cell score of the component with its holes filled, i.e. of its bbox minus the pixels that
    reach the bbox's surrounding ring through non-members (4-connected). ``member``/``outside``:
    scratch marks compared with ``stamp`` (membership is looked up only where the fill arrives);
    ``stack``: scratch."""
    top = 0
    for y in range(y0 - 1, y1 + 2):  # the ring around the bbox: outside, and it fences the fill in
        for x in range(x0 - 1, x1 + 2):
            if y == y0 - 1 or y == y1 + 1 or x == x0 - 1 or x == x1 + 1:
                outside[(y + 2) * wp + x + 2] = stamp
    for y in range(y0, y1 + 1):  # seeds: the bbox's edge pixels that are not members
        for x in range(x0, x1 + 1):
            if y == y0 or y == y1 or x == x0 or x == x1:
                q = (y + 2) * wp + x + 2
                if parent[q] >= 0 and _find(parent, q) == r:
                    member[q] = stamp
                elif outside[q] != stamp:
                    outside[q] = stamp
                    stack[top] = q
                    top += 1
    while top > 0:
        top -= 1
        q = stack[top]
        for d in (-wp, wp, -1, 1):
            v = q + d
            if outside[v] == stamp or member[v] == stamp:
                continue
            if parent[v] >= 0 and _find(parent, v) == r:
                member[v] = stamp
                continue
            outside[v] = stamp
            stack[top] = v
            top += 1
    twice = 0
    for y in range(y0, y1 + 2):  # cells whose bottom-right pixel is (y, x)
        for x in range(x0, x1 + 2):
            q = (y + 2) * wp + x + 2
            c = (outside[q - wp - 1] != stamp) * 1 + (outside[q - wp] != stamp) * 2 \
                + (outside[q - 1] != stamp) * 4 + (outside[q] != stamp) * 8
            twice += score_lut[c]
    return twice


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _foreground(u, order, start, thresholds, gt, score_lut, dscore, deuler, groups, group_rep, budget,
                best, undecided, n_outer, hole_cover,
                parent, fg, st, live, lo, hi, exact, iou, member, outside, stack):
    """Levels from high t to low: best[0, i] (largest border; undecided[i] when not decidable),
    best[1, i] over outer borders, n_outer[i], and hole_cover[i]: the largest ``iou.cover`` of a holed
    component's box (no hole border, inside it, has a larger IoU; -1 without holes).

    Pixels live on a frame padded by two background pixels (index (y + 2)·(w + 4) + x + 2), so
    neighbours and theirs need no bounds checks; a pixel's 8 neighbours (a bit mask) index the tables.
    """
    h, w = u.shape
    wp = w + 4
    n = (h + 4) * wp
    parent[:n] = -1  # -1: background (the padding always)
    fg[:n] = 0  # foreground 0/1: the neighbour masks read it 8 times per pixel
    # st: per root, one row (a cache line): bbox x0 y0 x1 y1, cell score, 4·Euler, one-pixel holes,
    # first pixel (padded raster index), size, slot in ``live``; lo, hi, exact, iou: per live root
    member[:n], outside[:n], n_live, stamp = 0, 0, 0, 0
    g_area = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    ring = np.array([-wp, -wp + 1, 1, wp + 1, wp, wp - 1, -1, -wp - 1])  # _RING as index offsets
    value = 255
    for i in range(len(thresholds) - 1, -1, -1):
        while value > thresholds[i]:
            for k in range(start[value], start[value + 1]):
                y = order[k] // w
                x = order[k] - y * w
                p = (y + 2) * wp + x + 2
                mask = 0
                for j in range(8):
                    mask |= np.int64(fg[p + ring[j]]) << j
                fg[p] = 1
                r = -1  # the root p joins
                for g in range(groups[mask]):
                    b = _find(parent, p + ring[group_rep[mask, g]])
                    if r < 0 or b == r:
                        r = b
                        continue
                    a = r
                    if st[a, 8] < st[b, 8]:
                        a, b = b, a
                    parent[b] = a  # b joins a
                    st[a, 0], st[a, 1] = min(st[a, 0], st[b, 0]), min(st[a, 1], st[b, 1])
                    st[a, 2], st[a, 3] = max(st[a, 2], st[b, 2]), max(st[a, 3], st[b, 3])
                    st[a, 4] += st[b, 4]
                    st[a, 5] += st[b, 5]
                    st[a, 6] += st[b, 6]
                    st[a, 7] = min(st[a, 7], st[b, 7])
                    st[a, 8] += st[b, 8]
                    last = live[n_live - 1]  # swap-remove b from the live roots
                    live[st[b, 9]] = last
                    st[last, 9] = st[b, 9]
                    n_live -= 1
                    r = a
                if r < 0:  # a new component
                    r = p
                    parent[p] = p
                    st[p, 0], st[p, 1], st[p, 2], st[p, 3] = x, y, x, y
                    st[p, 4], st[p, 5], st[p, 6], st[p, 7], st[p, 8], st[p, 9] = 0, 0, 0, p, 1, n_live
                    live[n_live] = p
                    n_live += 1
                else:
                    parent[p] = r
                    st[r, 0], st[r, 1] = min(st[r, 0], x), min(st[r, 1], y)
                    st[r, 2], st[r, 3] = max(st[r, 2], x), max(st[r, 3], y)
                    st[r, 7] = min(st[r, 7], p)
                    st[r, 8] += 1
                st[r, 4] += dscore[mask]
                st[r, 5] += deuler[mask]
                # one-pixel holes: p stops being one; a 4-neighbour q may become one (its two
                # neighbours beside p are in the mask, the far one is read)
                if mask & 0x55 == 0x55:  # N, E, S, W (a padding pixel never counts: two rings)
                    st[r, 6] -= 1
                for j in range(0, 8, 2):
                    if mask >> j & 1 == 0 and mask >> ((j + 1) & 7) & 1 and mask >> ((j + 7) & 7) & 1 \
                            and fg[p + 2 * ring[j]]:
                        st[r, 6] += 1
            value -= 1
        n_outer[i] = n_live
        hole_cover[i] = -1.0
        if n_live == 0:  # empty mask: the reference's box (0, 0, 0, 0)
            best[0, i] = best[1, i] = _best_iou(0, 0, 0, 0, gt)
            continue
        top, top_lo = -1, -1
        for j in range(n_live):
            r = live[j]
            bx0, by0, bx1, by1 = st[r, 0], st[r, 1], min(st[r, 2] + 1, w - 1), min(st[r, 3] + 1, h - 1)
            iou[j] = _best_iou(bx0, by0, bx1, by1, gt)
            lo[j] = st[r, 4] + 4 * st[r, 6]
            exact[j] = st[r, 5] == 4 * (1 - st[r, 6])  # every hole (1 − E of them) is one pixel
            hi[j] = lo[j] if exact[j] else 2 * (st[r, 2] - bx0) * (st[r, 3] - by0)
            if j == 0 or iou[j] > best[1, i]:
                best[1, i] = iou[j]
            if lo[j] > top_lo:
                top_lo = lo[j]
            if st[r, 5] != 4:  # holed
                for g in range(gt.shape[0]):
                    iw = max(0, min(bx1, gt[g, 2]) - max(bx0, gt[g, 0]) + 1)
                    ih = max(0, min(by1, gt[g, 3]) - max(by0, gt[g, 1]) + 1)
                    hole_cover[i] = max(hole_cover[i], iw * ih / g_area[g])
        spent = 0  # bbox pixels filled at this level
        while True:
            n_cand, pick, top = 0, -1, -1
            for j in range(n_live):
                if hi[j] >= top_lo:
                    n_cand += 1
                    if not exact[j] and (pick < 0 or lo[j] > lo[pick]):
                        pick = j  # the inexact candidate most likely to win
                    if lo[j] == top_lo and (top < 0 or st[live[j], 7] > st[live[top], 7]):
                        top = j
            if n_cand == 1 or pick < 0:
                best[0, i] = iou[top]
                break
            r = live[pick]
            spent += (st[r, 2] - st[r, 0] + 3) * (st[r, 3] - st[r, 1] + 3)
            if spent > budget:
                undecided[i] = True
                break
            stamp += 1
            lo[pick] = hi[pick] = _filled_twice_area(parent, r, st[r, 0], st[r, 1], st[r, 2], st[r, 3], wp,
                                                     score_lut, member, outside, stack, stamp)
            exact[pick] = True
            top_lo = max(top_lo, lo[pick])


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _holes(u, order, start, thresholds, needed, last_needed, gt, best_hole, n_holes, parent, st, live):
    """Levels from low t to high, up to the last ``needed`` one: best_hole[i] over hole borders
    (-1 without holes) and n_holes[i] at needed levels.

    Background pixels on a frame padded by one pixel: the padding is the outside, one component.
    """
    h, w = u.shape
    wp = w + 2
    n = (h + 2) * wp
    parent[:n] = -1  # st per root: bbox x0 y0 x1 y1, size, slot in ``live`` (columns 0-5)
    outside = 0
    parent[:wp] = outside  # the padding, rooted at 0
    parent[n - wp:] = outside
    for y in range(1, h + 1):
        parent[y * wp] = parent[y * wp + w + 1] = outside
    st[outside, 4], st[outside, 5] = 2 * (h + w) + 4, 0
    live[0], n_live = outside, 1
    four = np.array([-wp, wp, -1, 1])
    value = 0
    for i in range(last_needed + 1):
        while value <= thresholds[i]:
            for k in range(start[value], start[value + 1]):
                y = order[k] // w
                x = order[k] - y * w
                p = (y + 1) * wp + x + 1
                r = -1
                for d in four:
                    q = p + d
                    if parent[q] < 0:
                        continue
                    b = _find(parent, q)
                    if r < 0 or b == r:
                        r = b
                        continue
                    a = r
                    if b == outside or (a != outside and st[a, 4] < st[b, 4]):
                        a, b = b, a  # the outside stays the root of the padding
                    parent[b] = a
                    st[a, 4] += st[b, 4]
                    if a != outside:
                        st[a, 0], st[a, 1] = min(st[a, 0], st[b, 0]), min(st[a, 1], st[b, 1])
                        st[a, 2], st[a, 3] = max(st[a, 2], st[b, 2]), max(st[a, 3], st[b, 3])
                    last = live[n_live - 1]
                    live[st[b, 5]] = last
                    st[last, 5] = st[b, 5]
                    n_live -= 1
                    r = a
                if r < 0:
                    parent[p] = p
                    st[p, 0], st[p, 1], st[p, 2], st[p, 3], st[p, 4], st[p, 5] = x, y, x, y, 1, n_live
                    live[n_live] = p
                    n_live += 1
                else:
                    parent[p] = r
                    st[r, 4] += 1
                    if r != outside:
                        st[r, 0], st[r, 1] = min(st[r, 0], x), min(st[r, 1], y)
                        st[r, 2], st[r, 3] = max(st[r, 2], x), max(st[r, 3], y)
            value += 1
        if not needed[i]:
            continue
        n_holes[i] = n_live - 1
        best_hole[i] = -1.0
        for j in range(n_live):
            r = live[j]
            if r == outside:
                continue
            best_hole[i] = max(best_hole[i], _best_iou(st[r, 0] - 1, st[r, 1] - 1, min(st[r, 2] + 2, w - 1),
                                                       min(st[r, 3] + 2, h - 1), gt))


_SCRATCH: dict = {}  # the work arrays of the last frame size: fresh pages per map cost more than the sweeps


class Scratch(NamedTuple):
    """The work arrays of one frame size, named as ``_foreground`` / ``_holes`` take them (n: pixels of
    the frame padded by two, m = h·w + 1: the pixels plus one)."""

    parent: np.ndarray  # (n,) int32, the union-find forest
    fg: np.ndarray  # (n,) uint8
    st: np.ndarray  # (n, 10) int32
    live: np.ndarray  # (m,) int32
    lo: np.ndarray  # (m,) int64
    hi: np.ndarray  # (m,) int64
    exact: np.ndarray  # (m,) bool
    iou: np.ndarray  # (m,) float64
    member: np.ndarray  # (n,) int32
    outside: np.ndarray  # (n,) int32
    stack: np.ndarray  # (n,) int32
    order: np.ndarray  # (m,) int64 pixel indices by value (``_by_value``)


def _scratch(h: int, w: int) -> Scratch:
    """Work arrays for an h × w map (padded by two: n pixels), reused from call to call."""
    if (h, w) not in _SCRATCH:
        n, m = (h + 4) * (w + 4), h * w + 1
        _SCRATCH.clear()
        _SCRATCH[h, w] = Scratch(
            parent=np.empty(n, np.int32), fg=np.empty(n, np.uint8), st=np.empty((n, 10), np.int32),
            live=np.empty(m, np.int32), lo=np.empty(m, np.int64), hi=np.empty(m, np.int64),
            exact=np.empty(m, np.bool_), iou=np.empty(m), member=np.empty(n, np.int32),
            outside=np.empty(n, np.int32), stack=np.empty(n, np.int32), order=np.empty(m, np.int64))
    return _SCRATCH[h, w]


def level_ious(u: np.ndarray, thresholds: np.ndarray, gt: np.ndarray, budget: float = 4.0):
    """Per distinct level t of ``u > t`` (thresholds (L,) ascending): (best (2, L) +1 IoUs, row 0
    largest border (valid where not undecided), row 1 all borders; undecided (L,) bool; contours (L,)
    number of borders, outer + hole).

    ``budget``: bbox pixels, in frames, that one level may flood-fill to settle the largest border
    (holed components); beyond it the level is left undecided for the caller to trace.
    """
    u = np.ascontiguousarray(u, dtype=np.uint8)
    thresholds = np.ascontiguousarray(thresholds, dtype=np.int64)
    gt = np.ascontiguousarray(gt, dtype=np.int64).reshape(-1, 4)
    n_levels = len(thresholds)
    best, undecided = np.zeros((2, n_levels)), np.zeros(n_levels, np.bool_)
    n_outer, n_holes = np.zeros(n_levels, np.int64), np.zeros(n_levels, np.int64)
    hole_cover, best_hole = np.empty(n_levels), np.full(n_levels, -1.0)
    w = _scratch(*u.shape)
    order, start = _by_value(u.ravel(), w.order)
    _foreground(u, order, start, thresholds, gt, _SCORE, _DSCORE, _DEULER4, _GROUPS, _GROUP_REP,
                int(budget * u.size), best, undecided, n_outer, hole_cover,
                w.parent, w.fg, w.st, w.live, w.lo, w.hi, w.exact, w.iou, w.member, w.outside, w.stack)
    proper = bool(((gt[:, 2] >= gt[:, 0]) & (gt[:, 3] >= gt[:, 1])).all())  # the cover bound needs |g| > 0
    needed = hole_cover > best[1] if proper else hole_cover != -1.0  # a hole border could beat the outer ones
    if needed.any():
        _holes(u, order, start, thresholds, needed, int(np.flatnonzero(needed)[-1]), gt, best_hole, n_holes,
               w.parent, w.st, w.live)
    np.maximum(best[1], best_hole, out=best[1])
    return best, undecided, n_outer + n_holes
