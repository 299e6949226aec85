"""Box accuracies of PROTOCOL §4, computed the way the reference evaluator does; used by evaluate@B,
``camloc evaluate-maps`` and the report's bootstrap CIs (one definition for all three).

Accuracies are percentages (float64). ``ious`` are (N, T): each image's best IoU at each τ of the grid.
δ (IoU thresholds) are fractions. ``weights`` (B, N), where given, are bootstrap resample counts (a
row of ones is the plain estimate): every function then returns one value per resample, with τ
re-chosen inside each resample (one τ per split, never per image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DELTAS = (0.3, 0.5, 0.7)


def box_acc_curve(ious: np.ndarray, delta: float, weights: np.ndarray | None = None) -> np.ndarray:
    """BoxAcc(τ, δ) in % for every τ: (T,), or (B, T) under resample ``weights`` (B, N)."""
    ious = np.asarray(ious)
    if ious.ndim != 2 or ious.shape[0] == 0:
        raise ValueError(f"ious must be (N, T) with N > 0, got shape {ious.shape}")
    if weights is None:
        return (ious >= delta).sum(axis=0).astype(np.float64) * 100.0 / float(ious.shape[0])
    correct = (ious >= delta).astype(np.float32)  # (N, T)
    return (weights @ correct).astype(np.float64) * 100.0 / float(ious.shape[0])  # (B, T)


def max_box_acc(ious: np.ndarray, delta: float = 0.5) -> tuple[float, int]:
    """MaxBoxAcc(δ) in % and the index of the best τ (the first one on ties)."""
    curve = box_acc_curve(ious, delta)
    k = int(np.argmax(curve))
    return float(curve[k]), k


def max_box_acc_v2(ious: np.ndarray, deltas: Sequence[float] = DELTAS,
                   tau_index: dict[float, int] | None = None) -> dict:
    """MaxBoxAccV2 from all-contours IoUs (N, T): ``{"v2", "by_delta": {δ: %}, "tau_index": {δ: k}}``.

    Each δ gets its own best τ; with ``tau_index`` (e.g. chosen on val) those τ are used unchanged.
    One δ on largest-contour IoUs is MaxBoxAcc v1.
    """
    by_delta, chosen = {}, {}
    for d in deltas:
        curve = box_acc_curve(ious, d)
        k = int(np.argmax(curve)) if tau_index is None else int(tau_index[d])
        by_delta[d], chosen[d] = float(curve[k]), k
    return {"v2": float(np.mean(list(by_delta.values()))), "by_delta": by_delta, "tau_index": chosen}


def max_box_acc_resampled(ious: np.ndarray, deltas: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """(B,) ``max_box_acc_v2(...)["v2"]`` under each resample's weights (B, N), τ re-chosen per resample."""
    per_delta = [box_acc_curve(ious, d, weights).max(axis=1) for d in deltas]  # each (B,)
    return np.mean(per_delta, axis=0)


def loc_accuracy(ious: np.ndarray, ok: np.ndarray | None = None, delta: float = 0.5,
                 weights: np.ndarray | None = None) -> float | np.ndarray:
    """% of images with IoU ≥ δ (and ``ok``): GT-known Loc, or Top-1 / Top-5 Loc given the ``ok`` mask.

    ``ious`` (N,), or (N, K) with ``delta`` (K,): an image scores the mean of its K hits (MaxBoxAccV2
    at fixed τ per δ). Under ``weights`` (B, N): (B,) accuracies, one per resample.
    """
    ious = np.asarray(ious, dtype=np.float64)
    hit = ious >= np.asarray(delta, dtype=np.float64)  # (N,) or (N, K)
    if ok is not None:
        hit &= np.asarray(ok, dtype=bool).reshape(-1, *([1] * (hit.ndim - 1)))
    if hit.size == 0:
        raise ValueError("no images to score")
    if weights is None:
        return float(hit.sum() * 100.0 / hit.size)
    c = hit.reshape(hit.shape[0], -1).astype(np.float32)  # (N, K)
    return 100.0 * (weights @ c).mean(axis=1).astype(np.float64) / c.shape[0]  # (B,)
