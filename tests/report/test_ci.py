"""Bootstrap CIs and the paired test: the vectorised (B × N) @ (N × T) form equals plain resampling."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.metrics.boxacc import loc_accuracy, max_box_acc_resampled, max_box_acc_v2
from pipeline.report import ci


def _brute_max_boxacc(iou: np.ndarray, deltas) -> float:
    """MaxBoxAcc averaged over δ, one τ per δ for the whole set (PROTOCOL §4), the obvious way."""
    return 100.0 * np.mean([max(np.mean(iou[:, t] >= d) for t in range(iou.shape[1])) for d in deltas])


def test_resample_weights_are_seeded_counts():
    w = ci.resample_weights(7, 50, seed=3)
    assert w.shape == (50, 7)
    assert np.all(w.sum(axis=1) == 7)  # every resample draws N images
    assert np.array_equal(w, ci.resample_weights(7, 50, seed=3))
    assert not np.array_equal(w, ci.resample_weights(7, 50, seed=4))


@pytest.mark.parametrize("deltas", [(0.5,), (0.3, 0.5, 0.7)])
def test_max_boxacc_rechooses_tau_inside_each_resample(deltas):
    rng = np.random.default_rng(0)
    iou = rng.random((13, 9)).astype(np.float32)  # (N, T)
    w = ci.resample_weights(13, 20, seed=1)
    got = max_box_acc_resampled(iou, deltas, w)
    assert got.shape == (20,)
    for b in range(20):
        drawn = np.repeat(np.arange(13), w[b].astype(int))  # the resample as a list of image indices
        assert got[b] == pytest.approx(_brute_max_boxacc(iou[drawn], deltas), abs=1e-4)
    plain = max_box_acc_resampled(iou, deltas, np.ones((1, 13), np.float32))[0]
    assert plain == pytest.approx(_brute_max_boxacc(iou, deltas), abs=1e-4)
    assert plain == pytest.approx(max_box_acc_v2(iou, deltas)["v2"], abs=1e-9)  # a row of ones: the point


def test_oracle_tau_per_delta_differs_from_one_shared_tau():
    # δ=0.3 is best at τ column 0, δ=0.7 at column 1: V2 must take each δ's own best column.
    iou = np.array([[0.4, 0.8], [0.4, 0.1]], dtype=np.float32)
    v2 = max_box_acc_resampled(iou, (0.3, 0.7), np.ones((1, 2), np.float32))[0]
    assert v2 == pytest.approx(100 * (1.0 + 0.5) / 2)


def test_fixed_accuracy_averages_columns():
    correct = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=bool)  # (N, K)
    ious = np.where(correct, 0.9, 0.1)  # one column per δ, each at its own fixed τ
    got = loc_accuracy(ious, delta=np.array([0.5, 0.5]), weights=np.ones((1, 4), np.float32))[0]
    assert got == pytest.approx(100 * (3 / 4 + 1 / 4) / 2)
    assert got == pytest.approx(loc_accuracy(ious, delta=np.array([0.5, 0.5])))  # the unweighted point


def test_fixed_accuracy_under_resamples_equals_plain_resampling():
    rng = np.random.default_rng(2)
    ious = rng.random((11, 3))  # (N, K): K δ at fixed τ
    deltas = np.array([0.3, 0.5, 0.7])
    ok = rng.random(11) < 0.7  # Top-1 correct
    w = ci.resample_weights(11, 15, seed=5)
    got = loc_accuracy(ious, ok=ok, delta=deltas, weights=w)
    single = loc_accuracy(ious[:, 1], ok=ok, weights=w)  # (N,) IoUs at δ = 0.5
    assert got.shape == single.shape == (15,)
    for b in range(15):
        drawn = np.repeat(np.arange(11), w[b].astype(int))
        assert got[b] == pytest.approx(loc_accuracy(ious[drawn], ok=ok[drawn], delta=deltas), abs=1e-4)
        assert single[b] == pytest.approx(loc_accuracy(ious[drawn, 1], ok=ok[drawn]), abs=1e-4)


def test_percentile_ci_brackets_the_middle():
    lo, hi = ci.percentile_ci(np.arange(1001, dtype=float))
    assert lo == pytest.approx(25.0) and hi == pytest.approx(975.0)


def test_paired_test_tied_rows_are_not_significant():
    s = np.random.default_rng(0).normal(50, 3, 500)
    res = ci.paired_test(50.0, 50.0, s, s.copy())
    assert res.p_value == 1.0 and not res.significant
    assert "not significant" in ci.describe(res, "a/cam", "b/cam", "MaxBoxAccV2")


def test_paired_test_detects_a_real_lead_even_with_overlapping_cis():
    rng = np.random.default_rng(0)
    shared = rng.normal(50, 5, 1000)  # the same images make both rows move together
    a, b = shared + 2 + rng.normal(0, 0.5, 1000), shared
    assert ci.percentile_ci(a)[0] < ci.percentile_ci(b)[1]  # marginal CIs overlap...
    res = ci.paired_test(52.0, 50.0, a, b)
    assert res.significant and res.p_value < 0.01  # ...but the paired difference is clear
    assert res.ci_low > 0
    text = ci.describe(res, "x/cam", "y/cam", "head-box MaxBoxAccV2")
    assert "x/cam leads y/cam" in text and "is significant" in text
