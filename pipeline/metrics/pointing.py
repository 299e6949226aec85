"""Map-only metrics beyond boxes (PROTOCOL §6): the pointing game and its energy-based variant, for
evaluate@B, ``camloc evaluate-maps`` and the report's bootstrap CIs (one definition for all three).

Conventions as in ``metrics.boxes``: a map is the normalised (H, W) float array in the evaluation frame
(S×S for evaluate@B); GT boxes (G, 4) are int ``(x0, y0, x1, y1)``, 0-based with inclusive ends, already
in that frame. Per image, ``pointing_scores`` gives the hit (0/1) and the energy share in [0, 1]; the
split's metrics are their means in % (``weights`` (B, N) give one value per bootstrap resample).

- Pointing game (Zhang et al. 2016): the point is the map's argmax, the first in row-major order on
  ties (``np.argmax`` on the flattened map, so an all-zero map points at pixel (0, 0)); a hit when the
  Euclidean distance from that pixel to the nearest GT box is ≤ ``tolerance`` pixels (0 inside a box;
  a box covers its pixels x0..x1, y0..y1 inclusive, and the distance is measured between pixel indices).
- Energy-based pointing game (Score-CAM, Wang et al. 2020): Σ map inside the union of the GT boxes /
  Σ map over the image. A map summing to 0 has no energy to place and counts 0.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TOLERANCE = 15.0  # pixels of the evaluation frame (S×S), the usual 15 px at 224


def _gt(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, dtype=np.int64).reshape(-1, 4)  # (G, 4)


def map_point(smap: np.ndarray) -> tuple[int, int]:
    """(y, x) of the map's maximum, the first in row-major order on ties."""
    smap = np.asarray(smap)
    if smap.ndim != 2 or smap.size == 0:
        raise ValueError(f"a score map must be 2-D and non-empty, got shape {smap.shape}")
    y, x = np.unravel_index(int(np.argmax(smap)), smap.shape)
    return int(y), int(x)


def box_distance(y: int, x: int, boxes: np.ndarray) -> float:
    """Euclidean distance from pixel (y, x) to the nearest of (G, 4) inclusive boxes (0 inside one);
    inf without a box."""
    b = _gt(boxes)
    if not len(b):
        return float("inf")
    dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 2]), 0)  # (G,) columns outside [x0, x1]
    dy = np.maximum(np.maximum(b[:, 1] - y, y - b[:, 3]), 0)  # (G,) rows outside [y0, y1]
    return float(np.sqrt(dx * dx + dy * dy).min())  # exact for integer offsets: no hypot rounding needed


def box_union_mask(shape: tuple[int, int], boxes: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels inside at least one box (boxes clipped to the frame)."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in _gt(boxes).tolist():
        mask[max(y0, 0):max(min(y1, h - 1) + 1, 0), max(x0, 0):max(min(x1, w - 1) + 1, 0)] = True
    return mask


def energy_share(smap: np.ndarray, boxes: np.ndarray) -> float:
    """Σ map inside the union of the boxes / Σ map, in [0, 1] for a map ≥ 0; 0 for a map summing to 0."""
    smap = np.asarray(smap, dtype=np.float64)
    total = float(smap.sum())
    if total == 0.0:
        return 0.0
    return float(smap[box_union_mask(smap.shape, boxes)].sum() / total)


def pointing_scores(smap: np.ndarray, boxes: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> np.ndarray:
    """(2,) float64 for one image: [hit (1.0 or 0.0), energy share in [0, 1]]."""
    y, x = map_point(smap)
    hit = box_distance(y, x, boxes) <= float(tolerance)
    return np.array([1.0 if hit else 0.0, energy_share(smap, boxes)])


def mean_percent(values: np.ndarray, weights: np.ndarray | None = None) -> float | np.ndarray:
    """100 × mean of per-image values (N,): the pointing game from hits, the energy pointing game from
    shares. Under bootstrap ``weights`` (B, N) (resample counts, rows summing to N): (B,) values."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"values must be (N,) with N > 0, got shape {v.shape}")
    if weights is None:
        return float(v.sum() * 100.0 / v.size)
    w = np.asarray(weights, dtype=np.float64)  # (B, N)
    return 100.0 * (w @ v) / w.sum(axis=1)
