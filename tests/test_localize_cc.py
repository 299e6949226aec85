"""The connected-component routes of localize (used by best_ious on maps with many contours) against the
naive RETR_TREE reference: same box set, same largest-contour box, on noise, multimodal, ring, nested
and tied masks; and best_ious forced through every route equals the reference on whole maps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from reference import ref_boxes_both, ref_iou

import pipeline.localize as loc

ROUTES = [(False, False), (False, True), (True, False), (True, True)]


def _ring_map(rng, size: int) -> np.ndarray:
    """Concentric 1-pixel rings, a component inside a hole, and random blobs: nesting and equal areas."""
    s = np.zeros((size, size))
    c = size // 2
    for r, v in zip(range(1, c, 2), rng.uniform(0.2, 1, c), strict=False):
        cv2.rectangle(s, (c - r, c - r), (c + r, c + r), float(v), 1)
    s[rng.uniform(0, 1, s.shape) < 0.05] = rng.uniform(0, 1)
    return s


def _random_maps(rng, n: int):
    """(h, w) maps in [0, 1]: white noise, bicubic multimodal, two-valued, quantised (ties), rings."""
    for i in range(n):
        h, w = rng.integers(1, 36, 2).tolist()
        kind = i % 5
        if kind == 0:
            yield rng.uniform(0, 1, (h, w))
        elif kind == 1:
            small = rng.uniform(0, 1, tuple(rng.integers(2, 6, 2).tolist()))
            yield cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
        elif kind == 2:
            yield (rng.uniform(0, 1, (h, w)) < rng.uniform(0.2, 0.8)) * rng.choice([0.3, 1.0])
        elif kind == 3:
            yield np.round(rng.uniform(0, 1, (h, w)) * 3) / 3
        else:
            yield _ring_map(rng, max(h, 5))


def test_every_route_gives_the_reference_boxes_and_largest():
    rng = np.random.default_rng(11)
    checked = 0
    for smap in _random_maps(rng, 600):
        u = loc.to_uint8(smap)
        for tau in rng.uniform(0, 1, 3).tolist():
            t = int(tau * u.max())
            ys, xs = np.nonzero(u > t)
            if not len(ys):
                continue
            largest, every = ref_boxes_both(smap, tau)
            crop = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
            for many in ROUTES:
                boxes, k, _ = loc._mask_boxes(u, t, crop, many)
                assert sorted(map(tuple, boxes.tolist())) == sorted(map(tuple, every)), (smap.shape, t, many)
                assert boxes[k].tolist() == largest[0], (smap.shape, t, many)
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("many", [0, 3, 40])
def test_best_ious_through_the_component_routes_equals_reference(monkeypatch, many):
    monkeypatch.setattr(loc, "_MANY", many)  # switch routes after a few contours, on small maps
    rng = np.random.default_rng(many)
    grid = loc.taus(0.02)
    for i, smap in enumerate(_random_maps(rng, 40)):
        h, w = smap.shape
        gt = np.array([[0, 0, w - 1, h - 1], sorted(rng.integers(0, w, 2)) + sorted(rng.integers(0, h, 2))])
        gt = gt[:, [0, 2, 1, 3]] if i % 2 else gt[:1]
        expected = [[max(ref_iou(b, g) for b in boxes for g in gt.tolist()) for boxes in ref_boxes_both(smap, t)]
                    for t in grid]  # (T, 2)
        np.testing.assert_array_equal(loc.best_ious(smap, gt, grid), np.array(expected).T, err_msg=f"map {i}")


def test_noise_map_with_thousands_of_contours_equals_reference():
    rng = np.random.default_rng(3)
    smap = rng.uniform(0, 1, (96, 96))  # > _MANY contours at mid thresholds: the default switch
    grid = loc.taus(0.01)
    gt = np.array([[10, 20, 60, 80], [0, 0, 3, 3]])
    expected = [[max(ref_iou(b, g) for b in boxes for g in gt.tolist()) for boxes in ref_boxes_both(smap, t)]
                for t in grid]
    np.testing.assert_array_equal(loc.best_ious(smap, gt, grid), np.array(expected).T)
