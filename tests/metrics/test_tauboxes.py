"""The explorer's τ grid and boxes (pipeline.metrics.tauboxes), against the metric core they reuse."""

from __future__ import annotations

import numpy as np

from pipeline.metrics import boxes_at_taus, iou_matrix, normalize_map, taus
from pipeline.metrics.tauboxes import grid_indices, largest_boxes


def test_grid_is_a_subset_of_the_evaluation_grid_about_0_01_apart():
    fine = taus(0.001)
    keep = grid_indices(fine)
    assert len(keep) == 100 and np.allclose(fine[keep], taus(0.01), atol=1e-9)
    assert np.array_equal(grid_indices(taus(0.01)), np.arange(100))  # the default: every τ, chosen ones included
    assert np.array_equal(grid_indices(taus(0.05)), np.arange(20))  # a coarser grid is kept whole


def test_largest_boxes_are_the_cores_boxes_and_ious():
    rng = np.random.default_rng(0)
    smap = normalize_map(rng.random((6, 6)), (40, 40))
    grid = taus(0.01)
    gt = np.array([[5, 5, 20, 25], [30, 2, 39, 12]])
    boxes, ious = largest_boxes(smap, gt, grid)
    assert boxes.shape == (100, 4) and ious.shape == (100,)
    for t in (0, 17, 55, 99):
        want = boxes_at_taus(smap, grid[t:t + 1], "largest")[0][0]
        assert boxes[t].tolist() == want.tolist()
        assert ious[t] == iou_matrix(want, gt).max()
    _, none = largest_boxes(smap, None, grid)
    assert np.isnan(none).all()
    empty, _ = largest_boxes(np.zeros((8, 8)), gt, grid[:3])
    assert empty.tolist() == [[0, 0, 0, 0]] * 3  # an empty mask: the reference's (0, 0, 0, 0)
