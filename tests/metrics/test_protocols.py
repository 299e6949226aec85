"""Protocol profiles (pipeline/metrics/protocols.py, cards in pipeline/catalog/protocols.py) on hand-worked
maps and IoUs where the profiles disagree: a largest component that is not the best box, an IoU of exactly
0.5 (TS-CAM's strict Top-1 against its non-strict GT-known), a τ best on test but not on val; the oracle
bound; pseudo-boxes equal to GT giving choe2020 exactly; the pseudo-box file's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from reference import ref_largest_component_boxes

from pipeline.catalog.protocols import (
    CHOE2020,
    GT_KNOWN_LOC,
    IMAGENET,
    OTHER,
    PROTOCOLS,
    PSEUDO_BOXES,
    TAU,
    TAU_TOP1,
    TEST_TAU,
    TOP1_LOC,
    TSCAM2021,
    ZHOU2016,
)
from pipeline.errors import CamlocError, ParamsError
from pipeline.metrics import protocols as P
from pipeline.metrics.boxacc import loc_accuracy
from pipeline.metrics.iou import iou_matrix
from pipeline.metrics.pseudoboxes import read_pseudo_boxes
from pipeline.protocolparams import check_protocols, dataset_family

DELTAS = (0.3, 0.5, 0.7)
TAUS = np.arange(0, 1, 0.1)  # 0.0, 0.1, ..., 0.9


def _diagonal_and_block() -> np.ndarray:
    """24×24 binary map: a 3×3 block (9 px, contourArea 4) and a 12-px 8-connected diagonal (contourArea 0)."""
    m = np.zeros((24, 24))
    m[2:5, 2:5] = 1.0
    for i in range(12):
        m[8 + i, 8 + i] = 1.0
    return m


def test_the_largest_component_is_not_the_largest_contour_and_not_always_the_best_box():
    m = _diagonal_and_block()
    diagonal_gt = np.array([[8, 8, 19, 19]])  # the diagonal's box: boundingRect (8, 8, 12, 12) → (8, 8, 20, 20)
    rules = ("largest_contour", "largest_component", "all_contours")
    ious = P.profile_ious(m, 24, diagonal_gt, TAUS, "bicubic_minmax", rules)  # (3, T); the map is its own frame
    want = 144 / 169  # (8..20)² ∩ (8..19)² with +1 pixels: 12² / (13² + 12² − 12²)
    np.testing.assert_allclose(ious[0], 0.0)  # the block wins on polygon area: no overlap
    np.testing.assert_allclose(ious[1], want)  # the diagonal has the most pixels (zhou2016's component)
    np.testing.assert_allclose(ious[2], want)  # all contours: the diagonal's box is a candidate
    block_gt = np.array([[2, 2, 5, 5]])
    ious = P.profile_ious(m, 24, block_gt, TAUS, "bicubic_minmax", rules)
    np.testing.assert_allclose(ious[0], 1.0)  # here the largest contour is the best box
    assert (ious[1] < 0.1).all()  # and the largest component the wrong one


def test_component_boxes_of_an_empty_map_are_the_reference_no_box():
    np.testing.assert_array_equal(ref_largest_component_boxes(np.zeros((5, 5)), TAUS), np.zeros((len(TAUS), 4)))


def test_bilinear_and_bicubic_normalisation_differ_but_both_reach_0_and_1():
    raw = np.random.default_rng(0).random((4, 4))
    a, b = P.normalise(raw, 16, "bicubic_minmax"), P.normalise(raw, 16, "bilinear_minmax")
    assert not np.allclose(a, b)
    for m in (a, b):
        assert m.min() == 0.0 and m.max() == 1.0
    assert not P.normalise(np.ones((3, 3)), 8, "bilinear_minmax").any()  # constant map → all zeros


def _inputs(loc, v2=None, select=None, ok=None) -> P.ProfileInputs:
    loc = np.asarray(loc, dtype=np.float64)
    return P.ProfileInputs(TAUS[: loc.shape[1]], loc, loc if v2 is None else np.asarray(v2),
                           np.ones(len(loc), bool) if ok is None else np.asarray(ok), select)


def test_an_iou_of_exactly_one_half_passes_gt_known_but_not_tscam_top1():
    m = np.zeros((20, 20))
    m[0:9, 0:9] = 1.0  # boundingRect (0, 0, 9, 9) → box (0, 0, 9, 9), 100 px with the +1 convention
    gt = np.array([[0, 0, 9, 4]])  # 50 px, all inside: IoU = 50 / 100
    iou = P.profile_ious(m, 20, gt, TAUS, "bilinear_minmax", ("largest_contour",))[0]
    assert (iou == 0.5).all()
    inp = _inputs(np.tile(iou, (2, 1)))
    tscam = P.score_profile(PROTOCOLS.get(TSCAM2021), inp, DELTAS, OTHER).values
    zhou = P.score_profile(PROTOCOLS.get(ZHOU2016), inp, DELTAS, OTHER).values
    assert tscam[GT_KNOWN_LOC] == 100.0 and tscam[TOP1_LOC] == 0.0  # ≥ 0.5 vs > 0.5
    assert zhou[GT_KNOWN_LOC] == 100.0 and zhou[TOP1_LOC] == 100.0  # the CAM paper: ≥ 0.5 for both
    assert tscam[TAU] == pytest.approx(0.1) and zhou[TAU] == pytest.approx(0.2)


def test_a_tau_best_on_test_but_not_on_val():
    # 4 test images, τ 0.0 / 0.1 / 0.2: 1, 2 and 3 of them localised; val prefers τ 0.0.
    test = [[0.6, 0.6, 0.6], [0.1, 0.6, 0.6], [0.1, 0.1, 0.6], [0.1, 0.1, 0.1]]
    val = np.array([[0.9, 0.1, 0.1], [0.9, 0.9, 0.1]])
    inp = _inputs(test, select=val, ok=[True, True, False, True])
    got = {n: P.score_profile(PROTOCOLS.get(n), inp, DELTAS, OTHER).values for n in (CHOE2020, TEST_TAU, ZHOU2016)}
    assert got[CHOE2020][GT_KNOWN_LOC] == 25.0 and got[CHOE2020][TAU] == 0.0
    assert got[TEST_TAU][GT_KNOWN_LOC] == 75.0 and got[TEST_TAU][TAU] == pytest.approx(0.2)
    assert got[TEST_TAU][TOP1_LOC] == 50.0 and got[TEST_TAU][TAU_TOP1] == pytest.approx(0.1)  # its own τ
    assert got[ZHOU2016][GT_KNOWN_LOC] == 75.0 and got[ZHOU2016][TOP1_LOC] == 50.0
    res = P.score_profile(PROTOCOLS.get(TEST_TAU), inp, DELTAS, OTHER)
    np.testing.assert_array_equal(res.columns, [0, 1, 2])  # the oracle's τ is re-chosen per resample


def test_test_tau_bounds_choe2020_on_random_rows():
    rng = np.random.default_rng(1)
    for _ in range(50):
        inp = _inputs(rng.random((12, 10)), select=rng.random((5, 10)), ok=rng.random(12) > 0.3)
        oracle = P.score_profile(PROTOCOLS.get(TEST_TAU), inp, DELTAS, OTHER).values
        honest = P.score_profile(PROTOCOLS.get(CHOE2020), inp, DELTAS, OTHER).values
        assert oracle[TOP1_LOC] >= honest[TOP1_LOC] and oracle[GT_KNOWN_LOC] >= honest[GT_KNOWN_LOC]


def test_pseudo_boxes_equal_to_the_gt_give_choe2020_exactly():
    rng = np.random.default_rng(2)
    inp = _inputs(rng.random((9, 10)), select=rng.random((6, 10)))
    a = P.score_profile(PROTOCOLS.get(CHOE2020), inp, DELTAS, OTHER)
    b = P.score_profile(PROTOCOLS.get(PSEUDO_BOXES), inp, DELTAS, OTHER)
    assert a.values == b.values
    np.testing.assert_array_equal(a.columns, b.columns)


def test_maxboxacc_is_tau_free_and_v2_follows_its_box_rule():
    loc = np.array([[0.6, 0.2], [0.2, 0.8]])
    every = np.array([[0.6, 0.9], [0.9, 0.8]])
    v = P.score_profile(PROTOCOLS.get(CHOE2020), _inputs(loc, every, select=loc), DELTAS, OTHER).values
    assert v["maxboxacc"] == 50.0  # max over τ of BoxAcc(τ, 0.5), largest contour
    assert v["maxboxacc_v2"] == pytest.approx((100 + 100 + 100) / 3)  # all contours, a best τ per δ


def test_tscam_fixed_tau_follows_the_dataset_family():
    card = PROTOCOLS.get(TSCAM2021)
    assert card.tau_for(OTHER) == 0.1 and card.tau_for(IMAGENET) == 0.12
    assert dataset_family("wsol", "/data/metadata/ILSVRC") == IMAGENET
    assert dataset_family("wsol", "/data/metadata/CUB") == OTHER and dataset_family("cub", None) == OTHER


def test_resampled_loc_with_one_column_is_the_plain_accuracy():
    rng = np.random.default_rng(3)
    ious, ok = rng.random((20, 1)), rng.random(20) > 0.5
    w = rng.integers(0, 3, size=(7, 20)).astype(np.float32)
    np.testing.assert_allclose(P.resampled_loc(ious, ok, False, w), loc_accuracy(ious[:, 0], ok, weights=w))


def test_every_card_documents_its_rule_and_source():
    for name in PROTOCOLS.names():
        card = PROTOCOLS.get(name)
        assert card.rule and card.source and card.resize == "straight"


def test_params_refuse_unknown_and_inconsistent_profiles():
    with pytest.raises(ParamsError, match="registered protocol profiles: .*choe2020"):
        check_protocols("evaluate", (CHOE2020, "sat2023"), None)
    with pytest.raises(ParamsError, match="includes choe2020"):
        check_protocols("evaluate", (ZHOU2016,), None)
    with pytest.raises(ParamsError, match="pseudo_boxes"):
        check_protocols("evaluate", (CHOE2020, PSEUDO_BOXES), None)
    with pytest.raises(ParamsError, match="pseudo_boxes"):
        check_protocols("evaluate", (CHOE2020,), "boxes.txt")
    check_protocols("evaluate", (CHOE2020, PSEUDO_BOXES), "boxes.txt")


@pytest.mark.parametrize(("row", "message"), [
    ("b.jpg,0,0,20,10", "lies outside its 10×10 image"),
    ("b.jpg,-1,0,5,5", "lies outside"),
    ("z.jpg,0,0,5,5", "'z.jpg' is not in the val split"),
    ("b.jpg,0,0,5", "expected 'id,x0,y0,x1,y1'"),
])
def test_a_bad_pseudo_box_row_is_one_clear_line(tmp_path, row, message):
    path = tmp_path / "localization.txt"
    path.write_text(f"a.jpg,0,0,9,9\n{row}\n")
    with pytest.raises(CamlocError, match=message) as err:
        read_pseudo_boxes(path, {"a.jpg": (10, 10), "b.jpg": (10, 10)})
    assert "\n" not in str(err.value) and f"{path}:2" in str(err.value)


def test_pseudo_boxes_read_in_original_pixels(tmp_path):
    path = tmp_path / "localization.txt"
    path.write_text("a.jpg,0,0,10,10\na.jpg,1,2,3,4\n")  # x1 = W: the reference's one-past convention
    got = read_pseudo_boxes(path, {"a.jpg": (10, 10)})
    np.testing.assert_array_equal(got["a.jpg"], [[0, 0, 10, 10], [1, 2, 3, 4]])


def test_the_compiled_component_sweep_equals_opencv_on_random_maps():
    rng = np.random.default_rng(4)
    taus = np.arange(0, 1, 0.01)
    for i in range(60):
        shape = tuple(int(v) for v in rng.integers(3, 40, 2))
        raw = rng.random((3, 3)) if i % 3 else rng.random(shape)  # smooth blobs and white noise
        m = P.normalise(raw, shape[0], "bicubic_minmax") if i % 3 else raw
        gt = np.array([[1, 1, min(m.shape[1] - 1, 6), min(m.shape[0] - 1, 9)]])
        fast = P.profile_ious(m, m.shape[0], gt, taus, "bicubic_minmax", ("largest_component",))
        slow = iou_matrix(ref_largest_component_boxes(P.normalise(m, m.shape[0], "bicubic_minmax"), taus),
                          gt).max(axis=1)
        np.testing.assert_array_equal(fast[0], slow)
