"""Score maps → boxes and best IoUs at every τ, exactly as the reference evaluator (PROTOCOL §1, §3)
computes them; the core of evaluate@B, ``camloc evaluate-maps`` and the report's galleries.

Conventions: a score map is an (H, W) float64 array in [0, 1] (the "evaluation frame", S×S for
paper-style numbers); a box is int ``(x0, y0, x1, y1)``, 0-based with inclusive ends (docs/contracts.md).

Public API (no torch import: ``evaluate-maps`` starts fast):
- ``taus(interval) -> (T,)``: the τ grid ``np.arange(0, 1, interval)``.
- ``normalize_map(raw, size) -> (H, W)``: compatible-mode post-processing (bicubic in float64, min–max).
- ``boxes_at_taus(smap, taus, mode) -> list[(K, 4)]``: candidate boxes per τ (``mode`` "largest"|"all").
- ``best_ious(smap, gt_boxes, taus) -> (2, T)``: per τ the best +1 IoU, row 0 largest-contour mode
  (MaxBoxAcc v1), row 1 all-contours mode (MaxBoxAccV2); one contour pass serves both.
- ``best_iou_per_tau(smap, gt_boxes, taus, mode) -> (T,)``: one row of ``best_ious``.

Why it is fast and still exact: every τ of the grid maps onto one of at most 256 distinct masks
(``contours``). ``boxes_at_taus`` traces each once (it needs findContours' order). ``best_ious`` is
order-free: two compiled union-find sweeps over the pixels give every mask's component and hole boxes
and its largest border (``leveltree``); a level it cannot settle is traced, or labelled when crowded
(``components``).
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.errors import CamlocError
from pipeline.metrics.components import MANY, outer_components
from pipeline.metrics.contours import (
    level_boxes,
    mask_boxes,
    mask_crops,
    prepare_levels,
    rects_to_boxes,
    to_uint8,
)
from pipeline.metrics.iou import iou_matrix
from pipeline.metrics.leveltree import level_ious

MODES = ("largest", "all")
__all__ = ["MODES", "best_iou_per_tau", "best_ious", "boxes_at_taus", "normalize_map", "taus", "to_uint8"]


MIN_INTERVAL = 1e-4  # the finest τ step: 10,000 thresholds


def taus(interval: float) -> np.ndarray:
    """The τ grid of PROTOCOL §3: ``np.arange(0, 1, interval)`` (1.0 is never a threshold)."""
    if not (0.0 < float(interval) < 1.0) or not np.isfinite(interval):
        raise CamlocError(f"interval = {interval!r} is invalid: use a step in (0, 1), e.g. 0.01 or 0.001")
    if float(interval) < MIN_INTERVAL:  # every image keeps (2, 1/interval) IoUs and every map 1/interval boxes
        raise CamlocError(f"interval = {interval!r} is below the limit {MIN_INTERVAL:g}: a finer τ grid makes "
                          f"{1 / float(interval):.3g} thresholds per image (memory grows with it); use 0.001 or more")
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


def boxes_at_taus(smap: np.ndarray, tau_grid: np.ndarray, mode: str = "all") -> list[np.ndarray]:
    """Candidate boxes per τ: a list of T int arrays (K, 4); K = 1 in "largest" mode.

    No contour (an empty mask) gives the single box (0, 0, 0, 0), as in the reference. Boxes come in
    findContours' order (COCO AP breaks score ties by it), so this always traces every contour.
    """
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    all_boxes, largest, index = level_boxes(smap, tau_grid)
    if mode == "largest":
        return [largest[i][None, :] for i in index]
    return [all_boxes[i] for i in index]


def best_ious(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray) -> np.ndarray:
    """(2, T) best +1 IoU per τ over candidate boxes × GT boxes: row 0 largest mode, row 1 all mode.

    ``gt_boxes`` (G, 4) must already be in the map's frame (see ``metrics.rescale_boxes``).
    """
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)
    u, thresholds, index = prepare_levels(smap, tau_grid, crops=False)
    best, undecided, n_contours = level_ious(u, thresholds, gt)  # (2, L), (L,), (L,)
    crops = mask_crops(u, thresholds) if undecided.any() else None
    for i in np.flatnonzero(undecided).tolist():  # the largest border is not known: trace this level
        t, crop = int(thresholds[i]), crops[i].tolist()
        if n_contours[i] <= MANY:
            boxes, k, _ = mask_boxes(u, t, crop)
            best[0, i] = iou_matrix(boxes[k:k + 1], gt).max()
        else:  # hundreds of contours: label components, trace only the candidates
            y0, y1, x0, x1 = crop
            rects, k = outer_components(u[y0:y1, x0:x1], t, None)
            best[0, i] = iou_matrix(rects_to_boxes(rects[k:k + 1], (x0, y0), u.shape), gt).max()
    return best[:, index]


def best_iou_per_tau(smap: np.ndarray, gt_boxes: np.ndarray, tau_grid: np.ndarray,
                     mode: str = "all") -> np.ndarray:
    """(T,) best +1 IoU per τ in one mode ("largest" for MaxBoxAcc v1, "all" for MaxBoxAccV2)."""
    if mode not in MODES:
        raise ValueError(f"mode = {mode!r}: expected one of {MODES}")
    return best_ious(smap, gt_boxes, tau_grid)[MODES.index(mode)]
