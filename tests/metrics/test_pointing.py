"""Pointing game and energy-based pointing game (PROTOCOL §6) against hand-worked small cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.pointing import (
    box_distance,
    box_union_mask,
    energy_share,
    map_point,
    mean_percent,
    pointing_scores,
)


def _map(h: int, w: int, peaks: dict[tuple[int, int], float]) -> np.ndarray:
    m = np.zeros((h, w))
    for (y, x), v in peaks.items():
        m[y, x] = v
    return m


def test_ties_point_at_the_first_maximum_in_row_major_order():
    m = _map(6, 8, {(1, 6): 1.0, (2, 0): 1.0, (1, 7): 1.0})  # row 1 comes before row 2; col 6 before 7
    assert map_point(m) == (1, 6)
    # that first maximum is far from a box around the later ties: a miss, though (2, 0) lies inside it
    box = np.array([[0, 2, 1, 3]])
    assert box_distance(2, 0, box) == 0
    assert pointing_scores(m, box, tolerance=0)[0] == 0.0
    assert pointing_scores(m, np.array([[5, 0, 7, 1]]), tolerance=0)[0] == 1.0


def test_tolerance_edges_exactly_at_and_just_beyond():
    box = np.array([[10, 10, 20, 20]])  # inclusive: columns and rows 10..20
    # point 9 columns right of x1 and 12 rows below y1: distance exactly sqrt(81 + 144) = 15
    m = _map(40, 40, {(32, 29): 1.0})
    assert box_distance(32, 29, box) == 15.0
    assert pointing_scores(m, box, tolerance=15)[0] == 1.0
    assert pointing_scores(m, box, tolerance=14.999)[0] == 0.0
    # one pixel further (x = 30): sqrt(100 + 144) ≈ 15.62 > 15
    assert pointing_scores(_map(40, 40, {(32, 30): 1.0}), box, tolerance=15)[0] == 0.0
    # straight left of the box: 15 columns from x0 = 10 is impossible inside the frame, so go up instead
    assert pointing_scores(_map(40, 40, {(0, 15): 1.0}), np.array([[10, 15, 20, 20]]), tolerance=15)[0] == 1.0
    assert pointing_scores(_map(40, 40, {(0, 15): 1.0}), np.array([[10, 16, 20, 20]]), tolerance=15)[0] == 0.0


def test_a_maximum_exactly_on_the_box_border_is_inside():
    box = np.array([[3, 4, 7, 9]])
    for y, x in ((4, 3), (9, 7), (4, 7), (9, 3), (6, 3), (4, 5)):  # corners and edges (inclusive ends)
        assert box_distance(y, x, box) == 0.0
        assert pointing_scores(_map(12, 12, {(y, x): 1.0}), box, tolerance=0)[0] == 1.0
    # one pixel outside the right edge: distance 1, a hit only with tolerance ≥ 1
    m = _map(12, 12, {(6, 8): 1.0})
    assert box_distance(6, 8, box) == 1.0
    assert pointing_scores(m, box, tolerance=0)[0] == 0.0
    assert pointing_scores(m, box, tolerance=1)[0] == 1.0


def test_several_boxes_nearest_counts_and_energy_uses_their_union():
    boxes = np.array([[0, 0, 1, 1], [1, 1, 2, 2], [5, 5, 5, 5]])  # two overlap on pixel (1, 1)
    # distance to the nearest box: from (5, 8) the third box is 3 columns away, the others farther
    assert box_distance(5, 8, boxes) == 3.0
    union = box_union_mask((7, 9), boxes)
    assert union.sum() == 4 + 4 - 1 + 1  # the shared pixel once
    # energy by hand: values 1 on each pixel of the 7×9 frame except a 5 at (1, 1) and a 2 at (6, 8)
    m = np.ones((7, 9))
    m[1, 1], m[6, 8] = 5.0, 2.0
    inside = (union.sum() - 1) * 1.0 + 5.0  # 7 pixels of 1, plus the 5
    total = 63 - 2 + 5.0 + 2.0
    assert energy_share(m, boxes) == pytest.approx(inside / total)
    # the point is (1, 1), inside two boxes at once
    assert pointing_scores(m, boxes, tolerance=0).tolist() == [1.0, pytest.approx(12 / 68)]


def test_all_zero_map_points_at_the_origin_and_has_zero_energy():
    zeros = np.zeros((20, 20))
    assert map_point(zeros) == (0, 0)
    far, near = np.array([[12, 12, 19, 19]]), np.array([[3, 4, 10, 10]])  # 16.97 px and 5 px from (0, 0)
    assert pointing_scores(zeros, far, tolerance=15).tolist() == [0.0, 0.0]
    assert pointing_scores(zeros, near, tolerance=5).tolist() == [1.0, 0.0]
    assert pointing_scores(zeros, near, tolerance=4.99).tolist() == [0.0, 0.0]


def test_energy_of_a_map_inside_the_box_only_is_one_and_outside_only_is_zero():
    box = np.array([[2, 2, 4, 4]])
    inside = np.zeros((8, 8))
    inside[2:5, 2:5] = np.arange(9).reshape(3, 3) / 8
    assert energy_share(inside, box) == 1.0
    outside = 1.0 - box_union_mask((8, 8), box)
    assert energy_share(outside, box) == 0.0
    assert energy_share(np.ones((8, 8)), box) == pytest.approx(9 / 64)


def test_boxes_partly_outside_the_frame_are_clipped():
    assert box_union_mask((4, 4), np.array([[-3, 2, 10, 10]])).sum() == 8
    assert box_union_mask((4, 4), np.array([[5, 5, 9, 9]])).sum() == 0


def test_mean_percent_and_its_bootstrap_form_agree():
    hits = np.array([1.0, 0.0, 1.0, 1.0])
    assert mean_percent(hits) == 75.0
    weights = np.array([[1, 1, 1, 1], [4, 0, 0, 0], [0, 2, 2, 0]], dtype=np.float32)  # (B, N)
    np.testing.assert_allclose(mean_percent(hits, weights), [75.0, 100.0, 50.0])
    with pytest.raises(ValueError):
        mean_percent(np.array([]))
