"""The seeded synthetic report inputs (tests/report_inputs.py) follow docs/contracts.md."""

from __future__ import annotations

import numpy as np
from report_inputs import METHODS, make_report_inputs

from pipeline import contracts as C
from pipeline import faithcontracts as FC


def test_synthetic_inputs_follow_the_contract(tmp_path):
    root = make_report_inputs(tmp_path)
    per_image = C.read_per_image(root / "data/eval/resnet18")
    assert set(per_image["kind"]) == {"head", "body"} and set(per_image["mode"]) == {"largest", "all"}
    assert per_image["tau_index"].dtype == np.int16 and per_image["tau"].dtype == np.float32
    metrics = C.read_metrics(root / "reports/metrics/resnet18.json")
    assert {f"{m}.maxboxacc_v2_head" for m in METHODS} <= set(metrics)
    # the planted quality order shows in the generator's own metrics: cam beats the baselines
    assert metrics["cam.maxboxacc_v2_head"] > metrics["center.maxboxacc_v2_head"] + 10
    pointing = C.read_pointing(root / "data/eval/resnet18")
    assert list(pointing.columns) == list(C.POINTING_COLUMNS) and pointing["hit"].dtype == bool
    faith = FC.read_faithfulness(root / "data/faithfulness/resnet18")
    assert list(faith.columns) == list(FC.FAITHFULNESS_COLUMNS)
    assert list(FC.read_faithfulness_curves(root / "data/faithfulness/resnet18").columns) == list(
        FC.FAITHFULNESS_CURVE_COLUMNS)
    faith_metrics = FC.read_faithfulness_metrics(root / "reports/faithfulness/resnet18.json")
    assert set(faith_metrics) == {f"{m}.{n}" for m in METHODS for n in FC.FAITHFULNESS_NAMES}
    assert faith_metrics["cam.deletion_auc"] < faith_metrics["full.deletion_auc"]  # the planted order
    history = C.read_history(root / "data/models/resnet18")
    assert history is not None and list(history.columns) == list(C.HISTORY_COLUMNS)


def test_synthetic_inputs_are_seeded(tmp_path):
    a, b = make_report_inputs(tmp_path / "a"), make_report_inputs(tmp_path / "b")
    rel = "reports/metrics/tiny_gap_cnn.json"
    assert (a / rel).read_bytes() == (b / rel).read_bytes()
