"""The metric core (numpy and OpenCV only, never torch): boxes from maps at every τ, IoU, BoxAcc,
MaxBoxAcc(V2), Top-1/5 and GT-known Loc, PxAP / PxIoU, COCO box AP (``metrics.coco``, evaluate@B only),
the pointing games (``metrics.pointing``), the faithfulness arithmetic (``metrics.faithfulness``: AD, IC,
AUCs from model scores) and the folder evaluator behind ``camloc evaluate-maps`` (``metrics.folder``).
Used by evaluate@B, faithfulness@B, the report and ``camloc evaluate-maps`` (PROTOCOL.md).

    from pipeline.metrics import normalize_map, best_ious, taus, max_box_acc_v2
    ious = best_ious(normalize_map(raw, (224, 224)), gt_boxes, taus(0.01))  # (2, T): largest, all
"""

from pipeline.metrics.boxacc import (
    DELTAS,
    box_acc_curve,
    loc_accuracy,
    max_box_acc,
    max_box_acc_resampled,
    max_box_acc_v2,
)
from pipeline.metrics.boxes import (
    MODES,
    best_iou_per_tau,
    best_ious,
    boxes_at_taus,
    normalize_map,
    taus,
    to_uint8,
)
from pipeline.metrics.iou import iou_matrix, rescale_boxes
from pipeline.metrics.pixels import IGNORE, PixelAccumulator

__all__ = [
    "DELTAS", "IGNORE", "MODES", "PixelAccumulator", "best_iou_per_tau", "best_ious", "box_acc_curve",
    "boxes_at_taus", "iou_matrix", "loc_accuracy", "max_box_acc", "max_box_acc_resampled", "max_box_acc_v2",
    "normalize_map", "rescale_boxes", "taus", "to_uint8",
]
