"""The predicted box at every τ of a coarse grid, for the report's explorer page (its τ slider).

The page never thresholds a map itself: every box it draws comes from here, i.e. from the metric
core's own contour pass (``boxes.boxes_at_taus``, largest-contour mode as in MaxBoxAcc and the CAM
paper), with its +1 IoU against the GT boxes from ``iou.iou_matrix``. numpy/OpenCV only.
"""

from __future__ import annotations

import numpy as np

from pipeline.metrics.boxes import boxes_at_taus
from pipeline.metrics.iou import iou_matrix

EXPLORER_STEP = 0.01  # the slider's τ step: 100 positions (≈ 5 MB of boxes for 3 backbones × 9 methods)


def grid_indices(tau_grid: np.ndarray, step: float = EXPLORER_STEP) -> np.ndarray:
    """(T',) positions on the evaluation τ grid kept for the explorer: every k-th, k = step / interval.

    Taking a subset (not a new grid) keeps each slider τ bit-equal to a τ the metrics were scored at;
    with the default interval 0.01 it is the whole grid, so every chosen τ is on the slider.
    """
    tau_grid = np.asarray(tau_grid, dtype=np.float64)
    interval = float(tau_grid[1] - tau_grid[0]) if len(tau_grid) > 1 else step
    k = max(1, int(round(step / interval)))
    return np.arange(0, len(tau_grid), k)


def largest_boxes(smap: np.ndarray, gt_boxes: np.ndarray | None, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest-contour box and its best IoU per τ: ((T, 4) int64 boxes, (T,) float64 IoUs).

    ``smap`` (S, S) is a normalised map in the evaluation frame, ``gt_boxes`` (G, 4) in that frame;
    without GT boxes the IoUs are NaN. An empty mask gives the reference's (0, 0, 0, 0) box.
    """
    boxes = np.concatenate(boxes_at_taus(smap, np.asarray(taus, dtype=np.float64), "largest")).astype(np.int64)
    if gt_boxes is None or len(gt_boxes) == 0:
        return boxes, np.full(len(boxes), np.nan)
    return boxes, iou_matrix(boxes, np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)).max(axis=1)
