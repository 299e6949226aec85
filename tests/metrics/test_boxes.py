"""Box extraction: PROTOCOL §1/§3 test vectors, properties, and exact agreement with the naive reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from reference import ref_boxes, ref_boxes_both, ref_iou, ref_normalize

from pipeline.errors import CamlocError
from pipeline.metrics import best_iou_per_tau, best_ious, boxes_at_taus, normalize_map, taus

VECTOR_TAUS = np.array([0.0, 0.2, 0.4, 0.6, 0.8])
UNIMODAL = np.array([[0, 0, 0, 0, 0], [0, .4, .4, .4, .6], [0, .4, 1, .8, .6], [0, .4, .4, .4, .6]])
MULTIMODAL = np.array([[.4, 0, .2, .2, .2], [.4, .4, 0, .4, 0], [0, 0, 0, .4, 0], [1, .6, .8, .2, .2]])


@pytest.mark.parametrize("smap, expected", [
    (UNIMODAL, [[1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]),
    (MULTIMODAL, [[0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]),
    (np.zeros((3, 3)), [[0, 0, 0, 0]] * 5),
])
def test_protocol_vectors_largest_mode(smap, expected):
    got = boxes_at_taus(smap, VECTOR_TAUS, "largest")
    assert [b.tolist() for b in got] == [[e] for e in expected]


def test_all_mode_contains_largest_and_hole_contours():
    ring = np.zeros((9, 9))
    ring[1:8, 1:8] = 1.0
    ring[3:6, 3:6] = 0.0  # a hole: RETR_TREE gives an outer and a hole contour
    boxes = boxes_at_taus(ring, np.array([0.5]), "all")[0]
    assert len(boxes) == 2
    assert boxes_at_taus(ring, np.array([0.5]), "largest")[0].tolist()[0] in boxes.tolist()


def test_taus_grid_and_bad_interval():
    assert len(taus(0.01)) == 100 and taus(0.01)[-1] < 1.0
    assert len(taus(0.001)) == 1000
    for bad in (0, -0.1, 1.0, float("nan")):
        with pytest.raises(CamlocError, match="interval"):
            taus(bad)


def test_normalize_map_matches_reference_and_zeroes_degenerate_maps():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(7, 7)).astype(np.float32)
    got = normalize_map(raw, (224, 224))
    assert got.dtype == np.float64 and got.shape == (224, 224)
    np.testing.assert_array_equal(got, ref_normalize(raw, 224, 224))
    assert got.min() == 0.0 and got.max() == 1.0
    assert not normalize_map(np.full((7, 7), 3.0), (20, 30)).any()
    nan_map = raw.copy()
    nan_map[2, 2] = np.nan
    assert not normalize_map(nan_map, (20, 30)).any()
    assert normalize_map(raw, (20, 30)).shape == (20, 30)  # size is (height, width)


def _maps(rng, n_each: int, size: int):
    """Smooth, multimodal, constant and noisy maps in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = []
    for _ in range(n_each):
        blobs = np.zeros((size, size))
        for _ in range(rng.integers(1, 5)):
            cx, cy, sx, sy = rng.uniform(0, size, 2).tolist() + rng.uniform(1, size / 3, 2).tolist()
            blobs += rng.uniform(0.2, 1) * np.exp(-((xx - cx) ** 2 / (2 * sx ** 2) + (yy - cy) ** 2 / (2 * sy ** 2)))
        out.append(blobs / blobs.max())
        out.append(normalize_map(rng.normal(size=(4, 4)), (size, size)))  # multimodal bicubic CAM-like
        out.append(np.full((size, size), rng.choice([0.0, 0.3, 1.0])))
        out.append(rng.uniform(0, 1, (size, size)) ** rng.uniform(0.5, 3))
    return out


def test_fast_path_equals_reference_exactly_on_random_maps():
    rng = np.random.default_rng(123)
    grid = taus(0.01)
    for i, smap in enumerate(_maps(rng, 50, 24)):  # 200 maps
        size = smap.shape[0]
        gt = np.sort(rng.integers(0, size, (2, 2, 2)), axis=1).transpose(0, 2, 1).reshape(2, 4)[:, [0, 2, 1, 3]]
        expected = [[max(ref_iou(b, g) for b in boxes for g in gt.tolist()) for boxes in ref_boxes_both(smap, t)]
                    for t in grid]  # (T, 2)
        np.testing.assert_array_equal(best_ious(smap, gt, grid), np.array(expected).T, err_msg=f"map {i}")


def test_fast_boxes_equal_reference_on_noise_at_fine_grid():
    rng = np.random.default_rng(5)
    smap = rng.uniform(0, 1, (48, 48))  # many contours per τ: exercises the vectorised path
    grid = taus(0.001)
    for mode, multi in (("largest", False), ("all", True)):
        for t, b in zip(grid[::7], boxes_at_taus(smap, grid[::7], mode), strict=True):
            assert b.tolist() == ref_boxes(smap, t, multi)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
              elements=st.floats(0, 1, allow_nan=False)))
def test_boxes_inside_image_and_ious_bounded(smap):
    h, w = smap.shape
    grid = np.array([0.0, 0.25, 0.5, 0.75, 0.99])
    for mode in ("largest", "all"):
        for boxes in boxes_at_taus(smap, grid, mode):
            assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 1] <= boxes[:, 3]).all()
            assert boxes.min() >= 0 and (boxes[:, 2] <= w - 1).all() and (boxes[:, 3] <= h - 1).all()
    ious = best_iou_per_tau(smap, np.array([[0, 0, w - 1, h - 1]]), grid, "all")
    assert ((ious >= 0) & (ious <= 1)).all()
    largest = best_iou_per_tau(smap, np.array([[0, 0, w - 1, h - 1]]), grid, "largest")
    assert (largest <= ious).all()  # the largest box is one of the candidates
