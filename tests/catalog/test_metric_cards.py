"""The metric cards (pipeline/catalog/metrics.py) are the one list the report, the contracts and the
explorer read: columns, labels, direction (↑/↓) and legend."""

from __future__ import annotations

import pandas as pd

from pipeline import contracts as C
from pipeline import faithcontracts as FC
from pipeline.catalog.metrics import METRICS, available, json_names
from pipeline.report import explorer, leaderboard, tables


def test_leaderboard_columns_take_label_direction_and_legend_from_the_cards():
    shown = leaderboard.shown_columns(C.PETS_LAYOUT)
    metric_cols = [c for c in shown if c.key in METRICS]
    assert metric_cols
    for col in metric_cols:
        card = METRICS.get(col.key)
        assert (col.label, col.lower_better, col.digits) == (card.label, card.lower_is_better, card.digits)
    lower = {c.key for c in metric_cols if c.lower_better}
    assert lower == {n for n in METRICS.names() if METRICS.get(n).direction == "↓" and METRICS.get(n).shown}
    for col in metric_cols:
        legend = METRICS.get(col.key).legend
        if legend:
            assert legend.format(loc="head", pixel_gt="trimaps") in leaderboard.LEGEND


def test_tables_and_contracts_read_their_metric_names_from_the_cards():
    assert set(tables.METRICS) == {n for n in METRICS.names() if METRICS.get(n).named_column}
    assert set(C.METRIC_NAMES) == set(json_names("evaluate", ("head", "body")))
    assert set(FC.FAITHFULNESS_NAMES) == {n for n in METRICS.names() if METRICS.get(n).family == "faithfulness"}
    for m in tables.metrics_for(("object",), "object", False):
        assert available(METRICS.get(m), ("object",), "object", False)
    assert not {"maxboxacc_v2_head", "pxap"} & set(tables.metrics_for(("object",), "object", False))


def test_the_explorer_page_data_carries_the_cards_of_its_metric_columns():
    board = pd.DataFrame({"backbone": ["a"], "method": ["cam"], "deletion_auc": [0.2], "maxboxacc_v2_head": [50.0],
                          "maxboxacc_v2_head_ci_low": [40.0]})
    data = explorer.leaderboard_data(board, loc="head")
    assert set(data["metrics"]) == {"deletion_auc", "maxboxacc_v2_head"}
    assert data["metrics"]["deletion_auc"]["direction"] == "↓"
    assert data["metrics"]["maxboxacc_v2_head"] == {
        "label": "V2 head", "direction": "↑",
        "legend": " ".join(METRICS.get("maxboxacc_v2_head").legend.format(loc="head", pixel_gt="").split())}
