"""Metrics: PROTOCOL §2/§4/§5 vectors, hypothesis properties, PxAP bit-equal to the np.histogram reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import ref_iou, ref_pxap, ref_pxap_hist, ref_pxiou, ref_rescale

from pipeline.metrics import (
    PixelAccumulator,
    box_acc_curve,
    iou_matrix,
    loc_accuracy,
    max_box_acc,
    max_box_acc_v2,
    rescale_boxes,
    taus,
)
from pipeline.metrics.coco import coco_box_ap

coord = st.integers(-5, 40)
box = st.tuples(coord, coord, coord, coord)


def test_iou_protocol_example_and_degenerate_union():
    assert iou_matrix(np.array([[1, 2, 5, 6]]), np.array([[3, 1, 4, 5]]))[0, 0] == 8 / 27
    assert iou_matrix(np.array([[0, 0, -2, 0]]), np.array([[0, 0, -2, 0]]))[0, 0] == 0.0  # union ≤ 0
    assert iou_matrix(np.zeros((3, 4)), np.zeros((2, 4))).shape == (3, 2)


@settings(max_examples=200, deadline=None)
@given(st.lists(box, min_size=1, max_size=4), st.lists(box, min_size=1, max_size=4))
def test_iou_symmetric_bounded_and_equal_to_scalar_reference(a, b):
    m = iou_matrix(np.array(a), np.array(b))
    np.testing.assert_array_equal(m, iou_matrix(np.array(b), np.array(a)).T)
    assert (m >= 0).all()  # degenerate boxes never intersect anything
    for i, bi in enumerate(a):
        for j, bj in enumerate(b):
            assert m[i, j] == ref_iou(bi, bj)
            if bi[2] >= bi[0] and bi[3] >= bi[1] and bj[2] >= bj[0] and bj[3] >= bj[1]:
                assert 0 <= m[i, j] <= 1
                if bi == bj:
                    assert m[i, j] == 1.0


def test_rescale_protocol_example_and_identity():
    out = rescale_boxes(np.array([[1, 2, 4, 3]]), (10, 20), (35, 10))
    assert out.tolist() == [[3, 1, 14, 1]]
    assert out.dtype == np.int64
    same = np.array([[0, 5, 99, 77]])
    assert rescale_boxes(same, (100, 80), (100, 80)).tolist() == same.tolist()


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2000), st.integers(1, 2000), st.integers(1, 500), st.integers(1, 500), st.data())
def test_rescale_matches_int_formula_and_stays_in_frame(w, h, nw, nh, data):
    x0, x1 = sorted(data.draw(st.lists(st.integers(0, w - 1), min_size=2, max_size=2)))
    y0, y1 = sorted(data.draw(st.lists(st.integers(0, h - 1), min_size=2, max_size=2)))
    got = rescale_boxes(np.array([[x0, y0, x1, y1]]), (w, h), (nw, nh))[0].tolist()
    assert got == ref_rescale((x0, y0, x1, y1), w, h, nw, nh)
    assert 0 <= got[0] <= got[2] <= nw - 1 and 0 <= got[1] <= got[3] <= nh - 1


def test_box_acc_curves_and_one_tau_for_the_split():
    ious = np.array([[0.6, 0.2], [0.1, 0.9]])  # per-image best τ would give 100; one τ gives 50
    assert box_acc_curve(ious, 0.5).tolist() == [50.0, 50.0]
    assert max_box_acc(ious, 0.5) == (50.0, 0)
    v2 = max_box_acc_v2(ious)
    assert v2["by_delta"] == {0.3: 50.0, 0.5: 50.0, 0.7: 50.0} and v2["v2"] == 50.0
    fixed = max_box_acc_v2(np.array([[0.8, 0.2], [0.8, 0.9]]), tau_index={0.3: 1, 0.5: 1, 0.7: 1})
    assert fixed["by_delta"][0.7] == 50.0 and fixed["tau_index"][0.3] == 1
    assert loc_accuracy(np.array([0.5, 0.49, 0.9])) == pytest.approx(200 / 3)
    assert loc_accuracy(np.array([0.5, 0.49, 0.9]), ok=np.array([False, True, True])) == pytest.approx(100 / 3)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(0, 1), min_size=5, max_size=5), min_size=1, max_size=6))
def test_box_acc_monotone_in_delta(rows):
    ious = np.array(rows)
    c3, c5, c7 = (box_acc_curve(ious, d) for d in (0.3, 0.5, 0.7))
    assert (c3 >= c5).all() and (c5 >= c7).all() and (c3 <= 100).all() and (c7 >= 0).all()


def test_pxap_perfect_and_constant_maps():
    mask = np.zeros((10, 10), np.uint8)
    mask[2:5, 3:9] = 1
    mask[0, :] = 255
    acc = PixelAccumulator(taus(0.01))
    acc.add(mask.astype(np.float64) * (mask == 1), mask)
    assert acc.pxap() == 100.0 and acc.pxiou() == 100.0
    const = PixelAccumulator(taus(0.01))
    const.add(np.full((10, 10), 0.37), mask)
    assert const.pxap() == pytest.approx(100 * 18 / 90)  # 18 foreground of 90 non-ignored pixels


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.07])
def test_pxap_pxiou_bit_equal_to_histogram_reference(interval):
    rng = np.random.default_rng(7)
    grid = taus(interval)
    pairs = []
    for i in range(12):
        smap = rng.uniform(0, 1, (20, 30)) ** 2
        smap[0, :3] = [0.0, 1.0, grid[min(i, len(grid) - 1)]]  # exact edges hit the bin boundaries
        pairs.append((smap, rng.choice(np.array([0, 1, 255], np.uint8), size=(20, 30), p=[.5, .3, .2])))
    acc = PixelAccumulator(grid)
    for smap, mask in pairs:
        acc.add(smap, mask)
    th, fh = ref_pxap_hist(pairs, grid)
    np.testing.assert_array_equal(acc.hist[1], th)
    np.testing.assert_array_equal(acc.hist[0], fh)
    assert acc.pxap() == ref_pxap(th, fh)
    assert acc.pxiou() == pytest.approx(ref_pxiou(th, fh, len(grid)), abs=1e-12)
    _, precision, recall = acc.pr_curve()
    assert (np.diff(recall) >= 0).all() and np.nanmax(precision) <= 1


def test_pxap_without_foreground_is_an_error():
    acc = PixelAccumulator(taus(0.1))
    acc.add(np.zeros((3, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="foreground"):
        acc.pxap()


def test_coco_box_ap_perfect_and_missing_detections():
    smap = np.zeros((20, 20))
    smap[4:10, 5:15] = 1.0
    gt = np.array([[5, 4, 14, 9]])
    assert coco_box_ap([smap], [gt], [1.0], tau=0.5)["ap50"] == pytest.approx(100.0)
    res = coco_box_ap([smap, np.zeros((20, 20))], [gt, gt], [0.9, 0.9], tau=0.5)
    assert res["ap50"] == pytest.approx(50.0, abs=1.0)  # one of two objects found
    assert coco_box_ap([np.zeros((20, 20))], [gt], [1.0], tau=0.5) == {"ap": 0.0, "ap50": 0.0, "ap75": 0.0}
