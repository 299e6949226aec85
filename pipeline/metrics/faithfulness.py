"""The faithfulness metrics' arithmetic (PROTOCOL §6), torch-free: from per-image GT-class scores to
Average Drop, Increase in Confidence and the deletion / insertion AUCs. One definition for faithfulness@B
(which computes the scores with the model, ``pipeline.faithfulness``) and the report's bootstrap CIs.

Y (N,) is each image's softmax score of its GT class, O (N,) the score on the image multiplied by the
normalised map; a curve (N, K) samples the score at K equally spaced fractions of the pixels, 0 to 1.
Every aggregate is a mean of per-image values (``per_image_*``), so ``weights`` (B, N) of bootstrap
resamples give one value per resample through ``pointing.mean_percent``.
"""

from __future__ import annotations

import numpy as np

from pipeline.metrics.pointing import mean_percent

# Y and O come from different forward batches whose float32 kernels may differ in the last bits: a change
# of at most this much is no change (a map of ones must give AD = 0 and IC = 0).
SCORE_NOISE = 1e-6


def score_change(score: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(N,) O − Y, with |O − Y| ≤ SCORE_NOISE set to 0."""
    d = np.asarray(masked, np.float64) - np.asarray(score, np.float64)
    return np.where(np.abs(d) <= SCORE_NOISE, 0.0, d)


def per_image_drop(score: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(N,) max(0, Y − O) / Y: each image's share of Average Drop (Y > 0: a softmax score)."""
    return np.maximum(0.0, -score_change(score, masked)) / np.asarray(score, np.float64)


def per_image_increase(score: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(N,) 1.0 where the score rises under the map (O > Y), else 0.0."""
    return (score_change(score, masked) > 0).astype(np.float64)


def average_drop(score: np.ndarray, masked: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """AD in %: 100 · mean(max(0, Y − O) / Y); lower is better."""
    return mean_percent(per_image_drop(score, masked), weights)


def increase_in_confidence(score: np.ndarray, masked: np.ndarray,
                           weights: np.ndarray | None = None) -> float | np.ndarray:
    """IC in %: the share of images with O > Y; higher is better."""
    return mean_percent(per_image_increase(score, masked), weights)


def trapezoid_auc(curves: np.ndarray) -> np.ndarray:
    """(N,) area under (N, K) curves sampled at K ≥ 2 equally spaced points of [0, 1], trapezoidal."""
    c = np.asarray(curves, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2:
        raise ValueError(f"curves must be (N, K) with K >= 2, got shape {c.shape}")
    return (c[:, 1:] + c[:, :-1]).sum(axis=1) / (2.0 * (c.shape[1] - 1))
