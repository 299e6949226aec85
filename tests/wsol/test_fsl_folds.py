"""The data side of the few-shot baseline: box → pixel targets, folds, the compared training lengths."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ParamsError
from pipeline.metrics import rescale_boxes
from pipeline.wsol.folds import assign_folds, box_target, cv_epochs, target_kind


def test_box_target_fills_inclusive_ends_in_the_SxS_frame():
    # 20×10 image → 10×10 frame: x → int(x·10/20), y unchanged; (0, 0, 9, 4) becomes (0, 0, 4, 4) inclusive
    t = box_target(np.array([[0, 0, 9, 4]]), (20, 10), 10)
    assert t.shape == (10, 10) and t.dtype == np.float32
    assert t[:5, :5].all() and t.sum() == 25  # 5 × 5: both ends are foreground
    # one box of a single pixel is one foreground pixel, not an empty one
    assert box_target(np.array([[3, 6, 3, 6]]), (10, 10), 10).sum() == 1
    assert box_target(np.array([[3, 6, 3, 6]]), (10, 10), 10)[6, 3] == 1


def test_box_target_is_the_box_evaluation_scores_and_the_union_of_several():
    rng = np.random.default_rng(0)
    for _ in range(50):
        w, h, s = (int(v) for v in rng.integers(20, 300, 3))
        x0, x1 = sorted(rng.integers(0, w, 2))
        y0, y1 = sorted(rng.integers(0, h, 2))
        t = box_target(np.array([[x0, y0, x1, y1]]), (w, h), s)
        ys, xs = np.nonzero(t)
        # the filled extent equals the box evaluation moves into the frame (metrics.rescale_boxes)
        assert [xs.min(), ys.min(), xs.max(), ys.max()] == rescale_boxes(np.array([x0, y0, x1, y1]), (w, h), (s, s))[0].tolist()
        assert t.sum() == (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)  # a full rectangle
    two = box_target(np.array([[0, 0, 1, 1], [5, 5, 9, 9]]), (10, 10), 10)
    assert two.sum() == 4 + 25 and two[0, 0] == two[9, 9] == 1 and two[3, 3] == 0
    # the image's last column/row stays inside the frame
    assert box_target(np.array([[0, 0, 99, 99]]), (100, 100), 7).sum() == 49


def test_folds_are_stratified_balanced_seeded_and_refuse_too_many():
    labels = np.repeat(np.arange(6), 5)  # 6 classes × 5 images
    folds = assign_folds(labels, 5, seed=0, key="backbones.b.wsol.fsl_folds")
    for f in range(5):
        assert sorted(labels[folds == f].tolist()) == list(range(6))  # one image of each class per fold
    assert np.array_equal(folds, assign_folds(labels, 5, 0, "k"))
    assert not np.array_equal(folds, assign_folds(labels, 5, 1, "k"))
    uneven = assign_folds(np.array([0, 0, 0, 1, 1, 2, 2]), 3, 0, "k")
    sizes = np.bincount(uneven, minlength=3)
    assert sizes.max() - sizes.min() <= 1 and sizes.min() >= 1
    with pytest.raises(ParamsError, match=r"backbones.b.wsol.fsl_folds.*at most 4"):
        assign_folds(np.array([0, 0, 1, 1]), 5, 0, "backbones.b.wsol.fsl_folds")


def test_cv_epochs_end_at_the_budget_and_target_kind_is_the_test_split_kind():
    assert cv_epochs(20) == [5, 10, 15, 20]
    assert cv_epochs(2) == [1, 2] and cv_epochs(1) == [1]
    assert target_kind() == "head"  # the Pets layout (prepared folders from before layout.json)
