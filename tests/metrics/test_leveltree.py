"""pipeline.metrics.leveltree on hand-made masks whose answer is known, each also checked against the
naive RETR_TREE reference: hole borders in "all" mode, ties between equal areas, a holed component
whose filled area decides the largest border (flood fill, or left undecided with no budget), one-pixel
holes, and an empty mask."""

from __future__ import annotations

import numpy as np
from reference import ref_boxes_both, ref_iou

from pipeline.metrics import best_ious
from pipeline.metrics.leveltree import level_ious


def _check(smap: np.ndarray, gt: list[list[int]], budget: float = 4.0):
    """level_ious at the single level u > 0 of a two-valued map, with the reference's row next to it."""
    u = (smap * 255).astype(np.uint8)
    best, undecided, contours = level_ious(u, np.array([0]), np.array(gt), budget=budget)
    ref = [max(ref_iou(b, g) for b in boxes for g in gt) for boxes in ref_boxes_both(smap, 0.0)]
    return best[:, 0], bool(undecided[0]), int(contours[0]), ref


def test_hole_border_box_wins_in_all_mode():
    smap = np.zeros((12, 12))
    smap[2:10, 2:10] = 1
    smap[4:8, 4:8] = 0  # a 4×4 hole: its border's rect is the hole grown by one, x 3, w 6 → box (3, 3, 9, 9)
    best, undecided, contours, ref = _check(smap, [[3, 3, 9, 9]])
    assert not undecided and contours == 2
    assert best[1] == 1.0 and best[0] < 1.0  # only the hole border matches the GT box exactly
    assert best.tolist() == ref


def test_equal_areas_go_to_the_component_first_in_findcontours_order():
    smap = np.zeros((10, 20))
    smap[2:5, 2:5] = 1
    smap[5:8, 12:15] = 1  # same area; its first pixel comes later in raster order: findContours lists it first
    best, undecided, _, ref = _check(smap, [[12, 5, 15, 8]])
    assert not undecided and best[0] == 1.0
    assert best.tolist() == ref


def test_filled_area_of_a_holed_component_decides_the_largest():
    smap = np.zeros((30, 40))
    smap[1:16, 1:16] = 1
    smap[3:14, 3:14] = 0  # a thin ring: unfilled cell area 2·(4·14 − 4)... far below its filled area 196
    smap[18:29, 20:38] = 1  # solid 11×18: polygon area 170, between the ring's two bounds
    ring_box, solid_box = [1, 1, 16, 16], [20, 18, 38, 29]
    for budget, left_open in ((4.0, False), (0.0, True)):
        best, undecided, _, ref = _check(smap, [ring_box], budget)
        assert undecided is left_open
        if not left_open:
            assert best[0] == 1.0 and best.tolist() == ref  # the ring's filled area (196) beats 170
    assert best_ious(smap, np.array([solid_box]), np.array([0.0]))[0, 0] < 1.0


def test_one_pixel_holes_are_exact_without_filling():
    smap = np.zeros((12, 24))
    smap[1:6, 1:6] = 1
    smap[3, 3] = 0  # 5×5 with a one-pixel hole: area 16, exact from cells + 4 per hole
    smap[6:11, 12:17] = 1  # solid 5×5: area 16 as well, first pixel later: wins the tie
    best, undecided, _, ref = _check(smap, [[12, 6, 17, 11]], budget=0.0)  # no filling allowed
    assert not undecided and best[0] == 1.0
    assert best.tolist() == ref


def test_empty_mask_gives_the_zero_box():
    u = np.zeros((8, 8), np.uint8)
    best, undecided, contours = level_ious(u, np.array([0]), np.array([[0, 0, 1, 1]]))
    assert contours[0] == 0 and not undecided[0]
    assert best[:, 0].tolist() == [0.25, 0.25]  # (0, 0, 0, 0) vs (0, 0, 1, 1): 1 / 4
