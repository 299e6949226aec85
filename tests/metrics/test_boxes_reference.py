"""best_ious against the naive reference (tests/reference.py) at every distinct level, on seeded random
maps of the shapes that stress each path: smooth multi-peak CAMs, rings (holes, nested components),
multi-blob maps with plateaus, smooth maps plus noise, and white noise large enough that levels have
hundreds of contours (the connected-components path)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_boxes_both, ref_iou

from pipeline.metrics import best_ious, normalize_map, taus


def _reference(smap: np.ndarray, gt: np.ndarray, grid: np.ndarray) -> np.ndarray:
    out = np.empty((2, len(grid)))
    for k, tau in enumerate(grid):
        for m, boxes in enumerate(ref_boxes_both(smap, tau)):
            out[m, k] = max(ref_iou(b, g) for b in boxes for g in gt.tolist())
    return out


def _random_map(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    if kind == "smooth":
        return normalize_map(rng.normal(size=tuple(rng.integers(3, 9, 2))), (h, w))
    if kind == "rings":  # concentric rings around a few centres: levels with holes and islands in holes
        m = np.zeros((h, w))
        for _ in range(rng.integers(1, 4)):
            r = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w))
            m += np.cos(r / rng.uniform(1.5, 5)) * rng.uniform(0.5, 1)
    elif kind == "blobs":  # blobs of both signs, clipped: plateaus at 0 and 1
        m = np.zeros((h, w))
        for _ in range(rng.integers(2, 8)):
            s = rng.uniform(1, 6)
            m += rng.normal() * np.exp(-((yy - rng.uniform(0, h)) ** 2 + (xx - rng.uniform(0, w)) ** 2) / (2 * s * s))
        m = np.clip(m, np.quantile(m, 0.1), np.quantile(m, 0.9))
    elif kind == "noisy":
        m = normalize_map(rng.normal(size=(5, 5)), (h, w)) + rng.uniform(0, 0.3) * rng.normal(size=(h, w))
    else:  # "noise"
        m = rng.uniform(0, 1, (h, w))
    m = m - m.min()
    return m / m.max() if m.max() > 0 else m


def _gt(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    g = int(rng.integers(1, 4))
    xs, ys = np.sort(rng.integers(0, w, (g, 2)), axis=1), np.sort(rng.integers(0, h, (g, 2)), axis=1)
    return np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1)


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(["smooth", "rings", "blobs", "noisy"]), seed=st.integers(0, 2 ** 32 - 1),
       h=st.integers(8, 40), w=st.integers(8, 40))
def test_best_ious_equal_the_reference_at_every_level(kind, seed, h, w):
    rng = np.random.default_rng(seed)
    smap, gt = _random_map(kind, rng, h, w), _gt(rng, h, w)
    grid = taus(0.003)  # finer than 1/255: every distinct uint8 level is visited
    np.testing.assert_array_equal(best_ious(smap, gt, grid), _reference(smap, gt, grid))


@pytest.mark.parametrize("seed", [0, 1])
def test_best_ious_equal_the_reference_on_white_noise_with_hundreds_of_contours(seed):
    rng = np.random.default_rng(seed)
    smap, gt = _random_map("noise", rng, 80, 72), _gt(rng, 80, 72)
    grid = taus(0.004)[::3]  # 84 levels across the range, each with up to ~600 contours
    np.testing.assert_array_equal(best_ious(smap, gt, grid), _reference(smap, gt, grid))
