"""A straightforward reference evaluator, written line by line from PROTOCOL.md (used by tests and
benchmarks only). Deliberately naive: one threshold + findContours per τ, Python loops over contours
and boxes, np.histogram for PxAP — the shape of the field's reference evaluator, no shortcuts.
"""

from __future__ import annotations

import cv2
import numpy as np


def ref_normalize(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    cam = cv2.resize(np.asarray(raw, dtype=np.float64), (width, height), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def ref_boxes_both(smap: np.ndarray, tau: float) -> tuple[list[list[int]], list[list[int]]]:
    """Boxes at one τ (PROTOCOL §3): (largest-contour mode, all-contours mode), one contour pass."""
    height, width = smap.shape
    u = (smap * 255).astype(np.uint8)
    _, binary = cv2.threshold(u, int(tau * np.max(u)), 255, cv2.THRESH_BINARY)
    contours = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]
    if len(contours) == 0:
        return [[0, 0, 0, 0]], [[0, 0, 0, 0]]
    boxes = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    largest = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]))
    return [boxes[largest]], boxes


def ref_boxes(smap: np.ndarray, tau: float, multi: bool) -> list[list[int]]:
    return ref_boxes_both(smap, tau)[1 if multi else 0]


def ref_iou(a, b) -> float:
    iw = max(0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    ih = max(0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = iw * ih
    union = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return 0.0 if union <= 0 else inter / union


def ref_rescale(box, w: int, h: int, new_w: int, new_h: int) -> list[int]:
    x0, y0, x1, y1 = box
    return [int(x0 * new_w / w), int(y0 * new_h / h), int(x1 * new_w / w), int(y1 * new_h / h)]


def ref_best_iou(smap, gt_boxes, tau: float, multi: bool) -> float:
    return max(ref_iou(b, g) for b in ref_boxes(smap, tau, multi) for g in gt_boxes)


def ref_pxap_hist(pairs, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.append(taus, [1.0, 2.0, 3.0])
    true_hist = np.zeros(len(taus) + 2)
    false_hist = np.zeros(len(taus) + 2)
    for smap, mask in pairs:
        true_hist += np.histogram(smap[mask == 1], bins=edges)[0]
        false_hist += np.histogram(smap[mask == 0], bins=edges)[0]
    return true_hist, false_hist


def ref_pxap(true_hist, false_hist) -> float:
    tp = true_hist[::-1].cumsum()
    fp = false_hist[::-1].cumsum()
    fn = true_hist.sum() - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
    recall = tp / (tp + fn)
    return float((precision[1:] * np.diff(recall))[~np.isnan(precision[1:])].sum() * 100)


def ref_pxiou(true_hist, false_hist, n_taus: int) -> float:
    best = 0.0
    n_pos = true_hist.sum()
    for k in range(n_taus):
        tp, fp = true_hist[k:].sum(), false_hist[k:].sum()
        best = max(best, tp / (n_pos + fp))
    return best * 100


def ref_pointing(smap: np.ndarray, gts: list, tolerance: float = 15.0) -> tuple[float, float]:
    """(hit 0/1, energy share) of PROTOCOL §6: argmax (first in row-major order), distance to the nearest
    inclusive box, and Σ map over the union of the boxes / Σ map (0 for a map summing to 0)."""
    y, x = divmod(int(np.argmax(smap)), smap.shape[1])  # np.argmax scans the flattened, row-major map
    dist = min(np.sqrt(max(x0 - x, 0, x - x1) ** 2 + max(y0 - y, 0, y - y1) ** 2) for x0, y0, x1, y1 in gts)
    inside = np.zeros(smap.shape, dtype=bool)
    for x0, y0, x1, y1 in gts:
        inside[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1] = True
    total = smap.sum()
    return float(dist <= tolerance), (float(smap[inside].sum() / total) if total > 0 else 0.0)


def ref_evaluate(maps: dict, gts: dict, interval: float, masks: dict | None = None,
                 tolerance: float = 15.0) -> dict:
    """The evaluate-maps JSON from {image_id: normalised map} and {image_id: boxes in the map frame}."""
    taus = np.arange(0, 1, interval)
    correct = {(m, d): np.zeros(len(taus)) for m in (False, True) for d in (30, 50, 70)}
    for image_id in sorted(maps):
        for k, tau in enumerate(taus):
            for multi, boxes in zip((False, True), ref_boxes_both(maps[image_id], tau), strict=True):
                iou = max(ref_iou(b, g) for b in boxes for g in gts[image_id])
                for d in (30, 50, 70):
                    if iou >= d / 100:
                        correct[multi, d][k] += 1
    n = len(maps)
    acc = {key: c * 100.0 / float(n) for key, c in correct.items()}
    by_iou = {str(d): float(acc[True, d].max()) for d in (30, 50, 70)}
    out = {
        "n_images": n, "interval": float(interval),
        "max_box_acc": {"v1": float(acc[False, 50].max()), "v2": float(np.mean(list(by_iou.values()))),
                        "by_iou": by_iou},
        "best_tau": {"v1": float(taus[np.argmax(acc[False, 50])]),
                     **{str(d): float(taus[np.argmax(acc[True, d])]) for d in (30, 50, 70)}},
    }
    points = [ref_pointing(maps[i], gts[i], tolerance) for i in sorted(maps)]
    out["pointing_game"] = 100.0 * sum(h for h, _ in points) / n
    out["energy_pointing_game"] = 100.0 * sum(e for _, e in points) / n
    out["pointing_tolerance"] = float(tolerance)
    if masks is not None:
        th, fh = ref_pxap_hist([(maps[i], masks[i]) for i in sorted(maps)], taus)
        out["pxap"], out["pxiou"] = ref_pxap(th, fh), ref_pxiou(th, fh, len(taus))
    return out


def ref_largest_component_boxes(smap: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """(T, 4) the box of the largest 8-connected component (most pixels; on ties the one whose first pixel
    in raster order comes first) of each τ's mask, as (x, y, x+w, y+h) clipped to the frame like a
    contour's box; (0, 0, 0, 0) when empty. The readable OpenCV definition `zhou2016`'s compiled sweep
    (pipeline/metrics/largestcc.py) is tested against, on the evaluator's own binarisation."""
    from pipeline.metrics.contours import NO_BOX, prepare_levels, rects_to_boxes

    u, thresholds, index = prepare_levels(smap, np.asarray(taus, dtype=np.float64), crops=False)
    boxes = np.empty((len(thresholds), 4), dtype=np.int64)
    for i, t in enumerate(thresholds.tolist()):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((u > t).astype(np.uint8), connectivity=8,
                                                               ltype=cv2.CV_32S)
        if n <= 1:
            boxes[i] = NO_BOX[0]
            continue
        area = stats[:, cv2.CC_STAT_AREA]
        tied = 1 + np.flatnonzero(area[1:] == area[1:].max())
        _, first = np.unique(labels.ravel(), return_index=True)  # first raster pixel of each label
        k = int(tied[np.argmin(first[tied])])
        boxes[i] = rects_to_boxes(stats[k:k + 1, :4].astype(np.int64), (0, 0), u.shape)[0]
    return boxes[index]
