"""COCO-style box AP of the boxes a map gives at one τ (pycocotools COCOeval), for evaluate@B."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

from pipeline.metrics.boxes import boxes_at_taus, to_uint8


def _box_mean(smap: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(K,) mean map value inside each inclusive box, from an integral image."""
    ii = np.pad(np.cumsum(np.cumsum(smap, axis=0), axis=1), ((1, 0), (1, 0)))  # (H + 1, W + 1)
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    total = ii[y1 + 1, x1 + 1] - ii[y0, x1 + 1] - ii[y1 + 1, x0] + ii[y0, x0]
    return total / ((x1 - x0 + 1) * (y1 - y0 + 1))


def coco_box_ap(smaps: Sequence[np.ndarray], gt_boxes: Sequence[np.ndarray], class_probs: Sequence[float],
                tau: float) -> dict[str, float]:
    """COCO-style box AP (pycocotools COCOeval, bbox, maxDets 100) in %: ``{"ap", "ap50", "ap75"}``.

    Detections per image: every contour box of its map at ``tau`` (all-contours mode), each scored
    ``class_prob × mean map inside the box``. An empty mask gives no detection (not the (0,0,0,0)
    placeholder). Boxes go to COCO as ``[x0, y0, x1 − x0 + 1, y1 − y0 + 1]``; COCOeval's own IoU
    (no +1) then applies. ``smaps`` are normalised (H, W) maps, ``gt_boxes`` (G, 4) in their frame.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval


    images, anns, dets = [], [], []
    for i, (smap, gt, prob) in enumerate(zip(smaps, gt_boxes, class_probs, strict=True)):
        images.append({"id": i})
        for g in np.asarray(gt, dtype=np.int64).reshape(-1, 4):
            w, h = int(g[2] - g[0] + 1), int(g[3] - g[1] + 1)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                         "bbox": [int(g[0]), int(g[1]), w, h], "area": float(w * h)})
        if not to_uint8(smap).any():
            continue
        boxes = boxes_at_taus(smap, np.array([tau]), "all")[0]  # (K, 4)
        scores = float(prob) * _box_mean(np.asarray(smap, dtype=np.float64), boxes)
        wh = boxes[:, 2:] - boxes[:, :2] + 1
        for b, s, sc in zip(boxes.tolist(), wh.tolist(), scores.tolist(), strict=True):
            dets.append([i, b[0], b[1], s[0], s[1], sc])
    if not anns:
        raise ValueError("no ground-truth box: box AP is undefined")
    gt_api = COCO()
    gt_api.dataset = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "object"}]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        gt_api.createIndex()
        if not dets:
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
        dt_api = gt_api.loadRes(np.array([d + [1] for d in dets], dtype=np.float64))
        ev = COCOeval(gt_api, dt_api, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"ap": float(ev.stats[0] * 100), "ap50": float(ev.stats[1] * 100), "ap75": float(ev.stats[2] * 100)}
