"""Localization metrics of PROTOCOL §2, §4 and §5, computed the way the reference evaluator does.

Accuracies are percentages (floats). IoU arrays are float64. δ (IoU thresholds) are fractions.
Public API (no torch import):
- ``iou_matrix(a (A, 4), b (B, 4)) -> (A, B)``: +1 pixel convention, non-positive union → 0.
- ``rescale_boxes(boxes (G, 4), src_wh, dst_wh) -> (G, 4)``: ``int(x·S/W)`` per PROTOCOL §2.
- ``box_acc_curve(ious (N, T), delta) -> (T,)``: BoxAcc(τ, δ) for every τ.
- ``max_box_acc(ious, delta=0.5) -> (value, tau_index)``: MaxBoxAcc (v1 on largest-mode IoUs).
- ``max_box_acc_v2(ious, deltas, tau_index=None) -> dict``: per-δ MaxBoxAcc and best τ indices, mean
  over δ; with ``tau_index`` (chosen on val) the τ are applied unchanged instead of picked.
- ``loc_accuracy(ious (N,), ok=None, delta=0.5)``: GT-known Loc at a fixed τ (``ok=None``), Top-1 Loc
  (``ok`` = top-1 correct) or Top-5 Loc (``ok`` = GT in top-5, ``ious`` from the GT-class map).
- ``PixelAccumulator(tau_grid)``: streaming PxAP / PxIoU over a split (ignore = 255), ``.pr_curve()``.
- ``coco_box_ap(...)``: COCO-style box AP (pycocotools COCOeval), see its docstring.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

DELTAS = (0.3, 0.5, 0.7)
IGNORE = 255


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU between int boxes with inclusive ends (+1 convention); a non-positive union gives 0."""
    a = np.asarray(a, dtype=np.int64).reshape(-1, 4)[:, None, :]  # (A, 1, 4)
    b = np.asarray(b, dtype=np.int64).reshape(-1, 4)[None, :, :]  # (1, B, 4)
    iw = np.maximum(0, np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1)
    ih = np.maximum(0, np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1)
    inter = iw * ih  # (A, B)
    area_a = (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
    area_b = (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
    union = area_a + area_b - inter
    bad = union <= 0
    return np.where(bad, 0, inter) / np.where(bad, 1, union)


def rescale_boxes(boxes: np.ndarray, src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> np.ndarray:
    """Move (G, 4) boxes from a src W×H image to the dst frame: ``int(x·dst_w/src_w)``, ``int(y·dst_h/src_h)``.

    Product first, then the division, in float64, truncated (PROTOCOL §2). Equal sizes change nothing.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    (sw, sh), (dw, dh) = src_wh, dst_wh
    scale_num = np.array([dw, dh, dw, dh], dtype=np.float64)
    scale_den = np.array([sw, sh, sw, sh], dtype=np.float64)
    return np.trunc(boxes * scale_num / scale_den).astype(np.int64)


def box_acc_curve(ious: np.ndarray, delta: float) -> np.ndarray:
    """(T,) BoxAcc(τ, δ) in %: share of images whose best IoU at τ is ≥ δ (one τ for the whole split)."""
    ious = np.asarray(ious, dtype=np.float64)  # (N, T)
    if ious.ndim != 2 or ious.shape[0] == 0:
        raise ValueError(f"ious must be (N, T) with N > 0, got shape {ious.shape}")
    return (ious >= delta).sum(axis=0).astype(np.float64) * 100.0 / float(ious.shape[0])


def max_box_acc(ious: np.ndarray, delta: float = 0.5) -> tuple[float, int]:
    """MaxBoxAcc(δ) in % and the index of the best τ (the first one on ties)."""
    curve = box_acc_curve(ious, delta)
    k = int(np.argmax(curve))
    return float(curve[k]), k


def max_box_acc_v2(ious: np.ndarray, deltas: Sequence[float] = DELTAS,
                   tau_index: dict[float, int] | None = None) -> dict:
    """MaxBoxAccV2 from all-contours IoUs (N, T): ``{"v2", "by_delta": {δ: %}, "tau_index": {δ: k}}``.

    Each δ gets its own best τ; with ``tau_index`` (e.g. chosen on val) those τ are used unchanged.
    """
    by_delta, chosen = {}, {}
    for d in deltas:
        curve = box_acc_curve(ious, d)
        k = int(np.argmax(curve)) if tau_index is None else int(tau_index[d])
        by_delta[d], chosen[d] = float(curve[k]), k
    return {"v2": float(np.mean(list(by_delta.values()))), "by_delta": by_delta, "tau_index": chosen}


def loc_accuracy(ious: np.ndarray, ok: np.ndarray | None = None, delta: float = 0.5) -> float:
    """% of images with IoU ≥ δ (and ``ok``): GT-known Loc, or Top-1 / Top-5 Loc given the ``ok`` mask."""
    hit = np.asarray(ious, dtype=np.float64) >= delta  # (N,)
    if ok is not None:
        hit &= np.asarray(ok, dtype=bool)
    if hit.size == 0:
        raise ValueError("no images to score")
    return float(hit.sum() * 100.0 / hit.size)


class PixelAccumulator:
    """PxAP and PxIoU (ours) pooled over a split's pixels, streaming one map and mask at a time.

    Bins as the reference: ``[τ_0, τ_1), …, [τ_{T-1}, 1), [1, 2), [2, 3]`` over float64 scores, i.e. a
    pixel is positive at τ iff ``s >= τ``. Mask values: 0 background, 1 foreground, 255 ignore.
    """

    def __init__(self, tau_grid: np.ndarray):
        self.taus = np.asarray(tau_grid, dtype=np.float64)
        self.edges = np.append(self.taus, [1.0, 2.0, 3.0])  # (T + 3,)
        self.n_bins = len(self.edges) - 1
        self.hist = np.zeros((2, self.n_bins), dtype=np.int64)  # row 0 background, row 1 foreground
        self.n_images = 0

    def _bins(self, s: np.ndarray) -> np.ndarray:
        """Exact bin index (the one np.histogram gives) of each score in [0, 3]; −1 outside."""
        step = self.taus[1] if len(self.taus) > 1 else 1.0
        k = np.clip((s / step).astype(np.int64), 0, self.n_bins - 1)  # a guess off by at most one
        k -= (s < self.edges[k]) & (k > 0)
        k += (s >= self.edges[k + 1]) & (k < self.n_bins - 1)
        k -= (s < self.edges[k]) & (k > 0)
        k[(s < self.edges[0]) | (s > self.edges[-1]) | ~np.isfinite(s)] = -1
        return k

    def add(self, smap: np.ndarray, mask: np.ndarray) -> None:
        """Accumulate one (H, W) map in [0, 1] and its (H, W) mask of the same shape."""
        s = np.asarray(smap, dtype=np.float64).ravel()
        m = np.asarray(mask).ravel()
        if s.shape != m.shape:
            raise ValueError(f"map {np.shape(smap)} and mask {np.shape(mask)} differ in shape")
        keep = m != IGNORE
        k = self._bins(s[keep])
        label = m[keep].astype(np.int64)
        ok = k >= 0
        flat = np.bincount(label[ok] * self.n_bins + k[ok], minlength=2 * self.n_bins)
        self.hist += flat.reshape(2, self.n_bins)
        self.n_images += 1

    def merge(self, other: PixelAccumulator) -> None:
        """Add another accumulator's counts (same τ grid), e.g. one filled in a worker process."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge pixel counts over different τ grids")
        self.hist += other.hist
        self.n_images += other.n_images

    def _counts(self) -> tuple[np.ndarray, np.ndarray, float]:
        """tp, fp (from the highest bin down, float64 as the reference) and the positive count."""
        true_hist, false_hist = self.hist[1].astype(np.float64), self.hist[0].astype(np.float64)
        return true_hist[::-1].cumsum(), false_hist[::-1].cumsum(), true_hist.sum()

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, precision, recall) from the highest threshold down; undefined precision is NaN."""
        tp, fp, n_pos = self._counts()
        if n_pos <= 0:
            raise ValueError("no foreground pixel in the evaluated masks: PxAP is undefined")
        with np.errstate(invalid="ignore", divide="ignore"):
            precision = tp / (tp + fp)
        return self.edges[:-1][::-1], precision, tp / n_pos

    def pxap(self) -> float:
        """PxAP in %: Σ P_k (R_k − R_{k−1}), step-wise, undefined precisions skipped (reference formula)."""
        _, precision, recall = self.pr_curve()
        auc = (precision[1:] * np.diff(recall))[~np.isnan(precision[1:])].sum()
        return float(auc * 100)

    def pxiou(self) -> float:
        """PxIoU in % (ours): max over τ of pooled |{s ≥ τ} ∩ fg| / |{s ≥ τ} ∪ fg|, ignore dropped."""
        tp, fp, n_pos = self._counts()
        if n_pos <= 0:
            raise ValueError("no foreground pixel in the evaluated masks: PxIoU is undefined")
        t = len(self.taus)
        tp_tau, fp_tau = tp[::-1][:t], fp[::-1][:t]  # index k ↔ s ≥ τ_k
        return float((tp_tau / (n_pos + fp_tau)).max() * 100)


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

    from pipeline.localize import boxes_at_taus, to_uint8

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
