"""Connected components of one mask, exact against RETR_TREE (tests/metrics/test_components.py): the
largest outer border of a level with hundreds of contours that ``leveltree`` left undecided, for
``boxes.best_ious`` (evaluate@B, ``camloc evaluate-maps``); and the facts ``leveltree`` builds on.

An outer border's rect is its 8-connected component's bbox; a hole border's rect is the bbox of its
4-connected background hole grown by one pixel (``_holes``). The largest border comes from
per-component areas counted over 2×2 cells (exact without holes, Euler numbers tell which have holes)
and bbox bounds, tracing only undecided components; a level whose new pixels all touch the single
component above is that component grown, with no labelling.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.metrics.contours import twice_areas

_SQUARE = np.ones((3, 3), np.uint8)  # the 8-neighbourhood
MANY = 256  # contours in a mask above which connected components beat tracing them all


def _background(sub: np.ndarray, t: int) -> np.ndarray:
    """(K, 4) x, y, w, h of every 4-connected background component of ``sub > t`` (frame-touching too)."""
    _, bg = cv2.threshold(sub, t, 255, cv2.THRESH_BINARY_INV)
    _, _, st, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    return st[1:, :4].astype(np.int64)  # label 0 is the foreground


def _holes(sub: np.ndarray, t: int, st: np.ndarray | None = None) -> np.ndarray:
    """(K, 4) x, y, w, h of the hole borders of ``sub > t``, via the holes themselves.

    A hole is a 4-connected background component not touching the (zero-padded) frame; its border's
    boundingRect is the hole's bbox grown by one pixel (tests/metrics/test_components.py checks it against
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
    pixels are 8-adjacent, so they belong to one component (tests/metrics/test_components.py checks both).
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
    areas = twice_areas(contours)  # (K,)
    k = int(np.argmax(areas))  # same order as RETR_TREE: first wins ties
    if areas[k] == 0:
        return _last_raster(lab, st, np.arange(len(st)))
    px, py = contours[k][0, 0].tolist()
    return int(lab[y0 + py, x0 + px]) - 1


def outer_components(sub: np.ndarray, t: int, single_above: int | None) -> tuple[np.ndarray, int]:
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
