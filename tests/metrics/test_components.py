"""The traced and connected-component routes of pipeline.metrics.boxes (best_ious' fallback for levels
leveltree leaves undecided) against the naive RETR_TREE reference: same box set, same largest-contour
box, on noise, multimodal, ring, nested and tied masks; their shortcuts (cell areas and Euler numbers,
one-component levels) against tracing and labelling; and best_ious forced through them equals the
reference on whole maps."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest
from reference import ref_boxes_both, ref_iou

import pipeline.metrics.boxes as bx
import pipeline.metrics.components as cc
import pipeline.metrics.contours as ct
import pipeline.metrics.leveltree as lt
from pipeline import metrics as loc


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


def _masks(rng, n: int):
    """(u, t, crop) of non-empty masks ``u > t`` of random maps, with their bounding crop."""
    for smap in _random_maps(rng, n):
        u = loc.to_uint8(smap)
        for tau in rng.uniform(0, 1, 3).tolist():
            t = int(tau * u.max())
            ys, xs = np.nonzero(u > t)
            if len(ys):
                yield smap, tau, u, t, (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)


def test_traced_and_component_routes_give_the_reference_boxes_and_largest():
    rng = np.random.default_rng(11)
    checked = 0
    for smap, tau, u, t, crop in _masks(rng, 600):
        largest, every = ref_boxes_both(smap, tau)
        boxes, k, _ = ct.mask_boxes(u, t, crop)
        assert boxes.tolist() == every and boxes[k].tolist() == largest[0], (smap.shape, t)
        y0, y1, x0, x1 = crop
        sub = u[y0:y1, x0:x1]
        st, k = cc.outer_components(sub, t, None)
        outer = ct.rects_to_boxes(st, (x0, y0), u.shape)
        holes = ct.rects_to_boxes(cc._holes(sub, t), (x0, y0), u.shape)
        got = np.concatenate([outer, holes]).tolist()
        assert sorted(map(tuple, got)) == sorted(map(tuple, every)), (smap.shape, t)
        assert outer[k].tolist() == largest[0], (smap.shape, t)
        checked += 1
    assert checked > 1000


def _hole_sizes(own: np.ndarray) -> np.ndarray:
    """Pixel counts of the 4-connected background components enclosed by the bool mask ``own``."""
    bg = cv2.copyMakeBorder((~own).astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=1)
    _, lab, st, _ = cv2.connectedComponentsWithStats(bg, connectivity=4, ltype=cv2.CV_32S)
    return np.delete(st[1:, cv2.CC_STAT_AREA], lab[0, 0] - 1)  # the frame's component is not a hole


def test_cell_areas_and_euler_holes_match_tracing():
    rng = np.random.default_rng(4)
    exact = holed = 0
    for _, _, u, t, _ in _masks(rng, 300):
        n, lab, _, _ = cv2.connectedComponentsWithStats((u > t).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        twice, flagged = cc._cell_stats(lab, n - 1)
        for c in range(1, n):
            own = lab == c
            contours, hier = cv2.findContours(own.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)[-2:]
            outer = [i for i in range(len(contours)) if hier[0, i, 3] < 0]
            assert len(outer) == 1
            area2 = 2 * cv2.contourArea(contours[outer[0]])
            assert 2 * cc._blocks(own) <= area2
            flag = flagged[c - 1]
            assert flag == bool((_hole_sizes(own) > 1).any()), (t, c)  # a hole of more than one pixel
            assert twice[c - 1] <= area2 if flag else twice[c - 1] == area2, (t, c)
            exact, holed = exact + (not flag), holed + flag
    assert exact > 1000 and holed > 20


def test_one_component_level_grown_by_touching_pixels_skips_labelling(monkeypatch):
    rng = np.random.default_rng(8)
    calls = []
    label = cv2.connectedComponentsWithStats
    monkeypatch.setattr(cv2, "connectedComponentsWithStats", lambda *a, **k: calls.append(1) or label(*a, **k))
    skipped = 0
    for smap in _random_maps(rng, 200):
        u = loc.to_uint8(smap)
        values = np.unique(u).tolist()
        for lo, hi in zip(values[:-2], values[1:-1], strict=True):
            above = (u > hi).astype(np.uint8)
            if label(above, connectivity=8)[0] != 2:  # the level above must be one component
                continue
            ys, xs = np.nonzero(u > lo)
            sub = u[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            n = len(calls)
            st, k = cc.outer_components(sub, lo, hi)
            skipped += len(calls) == n
            expected, k_ref = cc.outer_components(sub, lo, None)
            assert st.tolist() == expected.tolist() and k == k_ref
    assert skipped > 50


@pytest.mark.parametrize("many", [0, 3, 40])
def test_best_ious_through_the_component_routes_equals_reference(monkeypatch, many):
    monkeypatch.setattr(bx, "MANY", many)  # switch routes after a few contours, on small maps
    monkeypatch.setattr(bx, "level_ious", functools.partial(lt.level_ious, budget=0.0))  # trace holed ties
    rng = np.random.default_rng(many)
    grid = loc.taus(0.02)
    for i, smap in enumerate(_random_maps(rng, 40)):
        h, w = smap.shape
        gt = np.array([[0, 0, w - 1, h - 1], sorted(rng.integers(0, w, 2)) + sorted(rng.integers(0, h, 2))])
        gt = gt[:, [0, 2, 1, 3]] if i % 2 else gt[:1]
        if i % 5 == 4:  # a GT box with x1 < x0 has no area: the IoU bounds must not prune then
            gt = np.concatenate([gt, [[w - 1, 0, 0, h - 1]]])
        expected = [[max(ref_iou(b, g) for b in boxes for g in gt.tolist()) for boxes in ref_boxes_both(smap, t)]
                    for t in grid]  # (T, 2)
        np.testing.assert_array_equal(loc.best_ious(smap, gt, grid), np.array(expected).T, err_msg=f"map {i}")


@pytest.mark.parametrize("budget", [0.0, 4.0])
@pytest.mark.parametrize("gt", [[[10, 20, 60, 80], [0, 0, 3, 3]], [[0, 0, 95, 95]], [[40, 40, 41, 41]]])
def test_noise_map_with_thousands_of_contours_equals_reference(monkeypatch, gt, budget):
    """Levels leveltree leaves undecided (all holed ties with budget 0) are traced, the crowded ones
    through connected components; with the default budget none is left."""
    rng = np.random.default_rng(3)
    smap = rng.uniform(0, 1, (96, 96))  # > MANY contours at mid thresholds
    grid = loc.taus(0.004)
    gt = np.array(gt)
    monkeypatch.setattr(bx, "level_ious", functools.partial(lt.level_ious, budget=budget))
    routes = {"mask_boxes": [], "outer_components": []}
    for name, log in routes.items():
        real = getattr(bx, name)
        monkeypatch.setattr(bx, name, lambda *a, real=real, log=log: log.append(1) or real(*a))
    got = loc.best_ious(smap, gt, grid)
    expected = [[max(ref_iou(b, g) for b in boxes for g in gt.tolist()) for boxes in ref_boxes_both(smap, t)]
                for t in grid]
    np.testing.assert_array_equal(got, np.array(expected).T)
    traced = len(routes["mask_boxes"]) + len(routes["outer_components"])
    if budget:
        assert traced == 0
    else:
        assert len(routes["outer_components"]) > 20
