"""Boxes of every binarisation of a smooth map at once, without tracing: the fast path of
``boxes.best_ious`` (evaluate@B, ``camloc evaluate-maps``) for maps with few local maxima.

Why it is exact. Order pixels by (value, raster index) and send each pixel to its greatest 8-neighbour
when that one is greater: every pixel climbs a non-decreasing path to a local maximum (a root), so a
root's basin meets any mask ``u > t`` in one connected piece. Two pieces touch iff an 8-adjacent pixel
pair across the basins has min(u_p, u_q) > t; the greatest such min per basin pair is an edge weight,
and Kruskal over those edges gives the components of every mask at once (a tree of basin sets, each
alive for a range of t). Then, per level t:
- the holes: the Euler number E(t) = C(t) − H(t) (8-connected foreground, 4-connected holes) from
  Gray's 2×2 bit quads, 4E = Q1 − Q3 − 2·QD, for all t from each cell's sorted values;
- a hole-free level's contours (RETR_TREE) are the outer borders of its C(t) components: each border's
  boundingRect is its component's bbox, from row/column maxima of the basins in it;
- the largest contour: 2·contourArea of a hole-free component's border = 2·#4-pixel cells + #3-pixel
  cells (marching squares over pixel centres), per basin and level from histograms.
A level with a hole, or a tie for the largest area (findContours' order would decide), is left to the
tracer. tests/metrics/test_basins.py checks every level against tests/reference.py.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.metrics.iou import iou_matrix

MAX_BASINS = 48  # more local maxima (noisy maps): tracing and components are faster
_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
_EDGES = ((0, 1), (1, 0), (1, 1), (1, -1))  # each 8-neighbour pair once


def _pairs(a: np.ndarray, dy: int, dx: int) -> tuple[np.ndarray, np.ndarray]:
    """Views (p, q) over every pair of pixels q = p + (dy, dx), dy ≥ 0."""
    h, w = a.shape
    if dx >= 0:
        return a[:h - dy, :w - dx], a[dy:, dx:]
    return a[:h - dy, -dx:], a[dy:, :w + dx]


def _basins(u: np.ndarray, smap: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(labels (H, W) uint8 of each pixel's root, root values (k,)), or None beyond MAX_BASINS roots.

    The order is u first (so every climb is non-decreasing in u), then the float map inside a u
    plateau (quantised; a smooth map has few local maxima, a uint8 plateau many), then raster index.
    """
    h, w = u.shape
    n = h * w
    idx_bits = max(1, (n - 1).bit_length())
    if idx_bits > 40:
        return None
    q_bits = 55 - idx_bits
    q = np.clip(smap * float(2 ** q_bits), 0, 2 ** q_bits - 1).astype(np.int64)
    idx = np.arange(n, dtype=np.int64).reshape(h, w)
    key = (u.astype(np.int64) << 55) | (q << idx_bits) | idx  # (H, W) a strict total order
    pad = np.full((h + 2, w + 2), -1, np.int64)
    pad[1:-1, 1:-1] = key
    best = key.copy()
    for dy, dx in _NEIGHBOURS:
        np.maximum(best, pad[1 + dy:1 + dy + h, 1 + dx:1 + dx + w], out=best)
    parent = (best & ((1 << idx_bits) - 1)).ravel()  # (n,) the greatest neighbour, or the pixel itself at a root
    roots = np.flatnonzero(parent == idx.ravel())
    if len(roots) > MAX_BASINS:
        return None
    while True:  # pointer jumping: log2(longest climb) rounds
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    label = np.zeros(n, np.uint8)
    label[roots] = np.arange(len(roots))
    return label[parent].reshape(h, w), u.ravel()[roots]


def _merge_tree(lab: np.ndarray, u: np.ndarray, peaks: np.ndarray):
    """Kruskal over the basins: (nodes' basin sets (m, k) bool, alive from lo (m,) to hi (m,) exclusive)."""
    k = len(peaks)
    keys, weights = [], []
    for dy, dx in _EDGES:
        (a, b), (ua, ub) = _pairs(lab, dy, dx), _pairs(u, dy, dx)
        cross = a != b
        lo, hi = np.minimum(a[cross], b[cross]).astype(np.int64), np.maximum(a[cross], b[cross])
        keys.append(lo * k + hi)
        weights.append(np.minimum(ua[cross], ub[cross]))
    edge = np.zeros(k * k, np.int64)
    if keys:
        np.maximum.at(edge, np.concatenate(keys), np.concatenate(weights).astype(np.int64))
    pairs = np.flatnonzero(edge > 0)  # weight 0 joins only below every threshold
    order = pairs[np.argsort(-edge[pairs], kind="stable")]
    members = [np.eye(k, dtype=bool)[i] for i in range(k)]
    lo, hi = [0] * k, peaks.astype(np.int64).tolist()
    find, node = list(range(k)), list(range(k))  # union-find over basins; each set's current node

    def root(i: int) -> int:
        while find[i] != i:
            find[i] = find[find[i]]
            i = find[i]
        return i

    for pair in order.tolist():
        ra, rb = root(pair // k), root(pair % k)
        if ra == rb:
            continue
        w = int(edge[pair])
        na, nb = node[ra], node[rb]
        lo[na] = lo[nb] = w  # joined below w: each part is alive down to w
        members.append(members[na] | members[nb])
        lo.append(0)
        hi.append(w)
        find[rb] = ra
        node[ra] = len(members) - 1
    return np.array(members), np.array(lo), np.array(hi)


def _cells(u: np.ndarray, lab: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(4·E(t) (256,), per basin 2·area (k, 256)) for t = 0..255 from the 2×2 cells of the zero-padded map."""
    up = cv2.copyMakeBorder(u, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    lp = cv2.copyMakeBorder(lab, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    p00, p01, p10, p11 = up[:-1, :-1], up[:-1, 1:], up[1:, :-1], up[1:, 1:]
    m1, n1, m2, n2 = cv2.max(p00, p01), cv2.min(p00, p01), cv2.max(p10, p11), cv2.min(p10, p11)
    a, d = cv2.max(m1, m2), cv2.min(n1, n2)  # largest and smallest of the 4
    b, c = cv2.max(cv2.min(m1, m2), cv2.max(n1, n2)), cv2.min(cv2.min(m1, m2), cv2.max(n1, n2))
    diag = (cv2.min(p00, p11) > cv2.max(p01, p10)) | (cv2.min(p01, p10) > cv2.max(p00, p11))

    def above(x: np.ndarray) -> np.ndarray:  # (256,) how many cells have x > t
        hist = np.bincount(x.ravel(), minlength=256)
        return hist.sum() - np.cumsum(hist)

    euler4 = above(a) - above(b) - 2 * (above(b[diag]) - above(c[diag])) - (above(c) - above(d))
    owner = np.where(p00 == a, lp[:-1, :-1], np.where(p01 == a, lp[:-1, 1:],
                                                      np.where(p10 == a, lp[1:, :-1], lp[1:, 1:])))
    own = owner.astype(np.int64).ravel() * 256
    hist = (np.bincount(own + c.ravel(), minlength=k * 256) + np.bincount(own + d.ravel(), minlength=k * 256))
    hist = hist.reshape(k, 256)
    return euler4, hist.sum(axis=1, keepdims=True) - np.cumsum(hist, axis=1)


def _first_above(profiles: np.ndarray) -> np.ndarray:
    """(m, 256): per profile (m, L) uint8 and t, the first index whose value is > t (L when none)."""
    m, n = profiles.shape
    prefix = np.maximum.accumulate(profiles, axis=1)  # non-decreasing: index < first ⇔ prefix ≤ t
    hist = np.bincount((np.arange(m)[:, None] * 256 + prefix).ravel(), minlength=m * 256).reshape(m, 256)
    return np.cumsum(hist, axis=1)


def fast_levels(u: np.ndarray, smap: np.ndarray, thresholds: np.ndarray, gt: np.ndarray):
    """(done (L,) bool, best (2, L)): best +1 IoUs (largest, all) at each level solved without tracing.

    None when the map has more than MAX_BASINS local maxima. Levels not done (holes, area ties, empty
    masks) are left to the caller.
    """
    got = _basins(u, np.asarray(smap, dtype=np.float64))
    if got is None:
        return None
    lab, peaks = got
    k = len(peaks)
    members, lo, hi = _merge_tree(lab, u, peaks)
    euler4, area2_basin = _cells(u, lab, k)
    rows = np.stack([cv2.reduce(np.where(lab == b, u, 0).astype(np.uint8), 1, cv2.REDUCE_MAX).ravel()
                     for b in range(k)])  # (k, H) row maxima per basin
    cols = np.stack([cv2.reduce(np.where(lab == b, u, 0).astype(np.uint8), 0, cv2.REDUCE_MAX).ravel()
                     for b in range(k)])  # (k, W)
    node_rows = np.stack([rows[m].max(axis=0) for m in members])  # (M, H)
    node_cols = np.stack([cols[m].max(axis=0) for m in members])  # (M, W)
    t = thresholds.astype(np.int64)  # (L,)
    alive = (lo[:, None] <= t[None, :]) & (t[None, :] < hi[:, None])  # (M, L)
    n_comp = alive.sum(axis=0)  # (L,) C(t)
    area2 = (members.astype(np.int64) @ area2_basin)[:, t]  # (M, L)
    h, w = u.shape
    y0, x0 = _first_above(node_rows)[:, t], _first_above(node_cols)[:, t]
    y1 = h - 1 - _first_above(node_rows[:, ::-1])[:, t]
    x1 = w - 1 - _first_above(node_cols[:, ::-1])[:, t]
    masked = np.where(alive, area2, -1)
    top = masked.max(axis=0)  # (L,)
    done = (n_comp > 0) & (4 * n_comp == euler4[t]) & ((masked == top).sum(axis=0) == 1)  # no hole, no tie
    best = np.zeros((2, len(t)))
    node, level = np.nonzero(alive & done[None, :])
    if len(node):
        boxes = np.stack([x0[node, level], y0[node, level], np.minimum(x1[node, level] + 1, w - 1),
                          np.minimum(y1[node, level] + 1, h - 1)], axis=1)
        per_box = iou_matrix(boxes, gt).max(axis=1)  # (P,)
        every = np.full(len(t), -np.inf)
        np.maximum.at(every, level, per_box)
        best[1] = every
        largest = masked[node, level] == top[level]
        best[0, level[largest]] = per_box[largest]
    return done, best
