"""The box of the largest 8-connected component of every level ``u > t`` of one map, in one compiled
(numba) union-find sweep, for the `zhou2016` protocol profile (``metrics.protocols``; evaluate@B).

The masks are nested: adding pixels by decreasing value and joining 8-neighbours yields every level's
components. Sizes only grow, so after each join the largest component is either the previous one or the
one just grown; each level records the bbox of the component with the most pixels, ties to the one
whose first pixel in raster order comes first (``tests/reference.py``'s ``ref_largest_component_boxes`` is the
readable OpenCV definition it is tested against). numpy / numba only.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from pipeline import jitcache
from pipeline.metrics import levelcells, leveltree
from pipeline.metrics.leveltree import _by_value, _find

jitcache.by_content(__file__, leveltree.__file__, levelcells.__file__)  # it compiles leveltree's kernels in


@nb.njit(cache=True, nogil=True)
def _sweep(u, thresholds):
    h, w = u.shape
    n = h * w
    flat = u.ravel()
    order, start = _by_value(flat, np.empty(n, np.int64))
    parent = np.full(n, -1, np.int64)  # -1: not yet in the mask
    size = np.zeros(n, np.int64)
    first = np.zeros(n, np.int64)  # smallest raster index in the component
    x0, y0, x1, y1 = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    out = np.zeros((len(thresholds), 4), np.int64)
    best = -1
    level = len(thresholds) - 1  # thresholds ascending: the highest level's mask is filled first
    for v in range(255, -1, -1):
        while level >= 0 and thresholds[level] >= v:  # every pixel > thresholds[level] is in
            if best >= 0:
                r = _find(parent, best)
                out[level, 0], out[level, 1] = x0[r], y0[r]
                out[level, 2], out[level, 3] = min(x1[r] + 1, w - 1), min(y1[r] + 1, h - 1)
            level -= 1
        if level < 0:
            break
        for k in range(start[v], start[v + 1]):
            p = order[k]
            py, px = p // w, p % w
            parent[p], size[p], first[p] = p, 1, p
            x0[p], x1[p], y0[p], y1[p] = px, px, py, py
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    qy, qx = py + dy, px + dx
                    if (dy == 0 and dx == 0) or qy < 0 or qy >= h or qx < 0 or qx >= w:
                        continue
                    q = qy * w + qx
                    if parent[q] < 0:
                        continue
                    a, b = _find(parent, p), _find(parent, q)
                    if a == b:
                        continue
                    if size[a] < size[b]:
                        a, b = b, a
                    parent[b] = a
                    size[a] += size[b]
                    first[a] = min(first[a], first[b])
                    x0[a], y0[a] = min(x0[a], x0[b]), min(y0[a], y0[b])
                    x1[a], y1[a] = max(x1[a], x1[b]), max(y1[a], y1[b])
            r = _find(parent, p)
            if best < 0:
                best = r
            else:
                b = _find(parent, best)
                if size[r] > size[b] or (size[r] == size[b] and first[r] < first[b]):
                    best = r
                else:
                    best = b
    return out


def largest_component_boxes(u: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(L, 4) per threshold t (ascending ints) the largest 8-connected component's box of ``u > t`` as
    (x, y, x + w, y + h) clipped to the frame (a contour's box, PROTOCOL §3); (0, 0, 0, 0) when empty."""
    return _sweep(np.ascontiguousarray(u, dtype=np.uint8), np.ascontiguousarray(thresholds, dtype=np.int64))
