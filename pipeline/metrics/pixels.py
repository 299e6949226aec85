"""Pixel metrics of PROTOCOL §5: PxAP and PxIoU (ours) pooled over a split's pixels, for evaluate@B
(trimaps) and ``camloc evaluate-maps --masks``.

The state is additive (a (2, bins) int64 histogram), so workers, ranks or separate jobs can each fill
one and ``merge`` them: the result is identical whatever the split into parts.
"""

from __future__ import annotations

import numpy as np

IGNORE = 255  # mask value that counts neither as foreground nor as background


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
        if not np.isfinite(s).all():  # never left out silently: normalise the map first (normalize_map)
            raise ValueError(f"map {np.shape(smap)} holds {int((~np.isfinite(s)).sum())} NaN or infinite pixels; "
                             "PxAP counts every pixel: normalise the map (metrics.normalize_map) first")
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
