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

# torchcam's (ClassificationMetric): the drop is divided by Y + DROP_EPS, so an image whose Y is itself
# ~1e-7 or less counts with its drop scaled by Y / (Y + DROP_EPS) instead of up to a full 1 (PROTOCOL §6).
DROP_EPS = 1e-7


def per_image_drop(score: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(N,) max(0, Y − O) / (Y + DROP_EPS): each image's share of Average Drop."""
    y = np.asarray(score, np.float64)
    return np.maximum(0.0, y - np.asarray(masked, np.float64)) / (y + DROP_EPS)


def per_image_increase(score: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """(N,) 1.0 where the score rises under the map (O > Y, strictly), else 0.0."""
    return (np.asarray(masked, np.float64) > np.asarray(score, np.float64)).astype(np.float64)


def average_drop(score: np.ndarray, masked: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """AD in %: 100 · mean(max(0, Y − O) / (Y + DROP_EPS)); lower is better."""
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
