"""The report's Protocols section (pipeline/report/protocols.py) on the synthetic stage outputs of
tests/report_inputs.py: every backbone × method × profile, choe2020's Δ exactly 0, the oracle labelled and
never below choe2020 (point and CI), paired CIs that bracket their point, the CSV and the plot written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_inputs import BACKBONES, METHODS, make_report_inputs, report_params, report_paths

from pipeline import contracts as C
from pipeline.catalog.protocols import BASELINE, DEFAULT_PROFILES, LOC_METRICS, TEST_TAU
from pipeline.report import protocols
from pipeline.stages import report


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    root = make_report_inputs(tmp_path_factory.mktemp("protocols_report"))
    report.run(report_params(), report_paths(root))
    return root


@pytest.fixture(scope="module")
def table(reported) -> pd.DataFrame:
    return pd.read_csv(reported / "reports" / "breakdowns" / "protocols.csv")


def test_one_row_per_backbone_method_profile(table):
    assert len(table) == len(BACKBONES) * len(METHODS) * len(DEFAULT_PROFILES)
    assert set(table["profile"]) == set(DEFAULT_PROFILES)


def test_baseline_differences_are_zero_and_every_ci_brackets_its_point(table):
    base = table[table["profile"] == BASELINE]
    for m in LOC_METRICS:
        assert (base[f"{m}_diff"] == 0).all()
        assert table[f"{m}_ci_low"].notna().all() and table[f"{m}_diff_ci_low"].notna().all()
        assert (table[f"{m}_ci_low"] <= table[m] + 1e-6).all() and (table[m] <= table[f"{m}_ci_high"] + 1e-6).all()
        d = table[f"{m}_diff"]
        assert (table[f"{m}_diff_ci_low"] <= d + 1e-6).all() and (d <= table[f"{m}_diff_ci_high"] + 1e-6).all()


def test_the_oracle_is_labelled_and_never_below_the_honest_number(reported, table):
    oracle = table[table["profile"] == TEST_TAU]
    assert oracle["oracle"].all() and not table[table["profile"] != TEST_TAU]["oracle"].any()
    for m in LOC_METRICS:
        assert (oracle[f"{m}_diff"] >= 0).all() and (oracle[f"{m}_diff_ci_low"] >= 0).all()
    md = (reported / "reports" / "leaderboard.md").read_text()
    assert "## Protocols" in md and f"{TEST_TAU} (ORACLE: τ from test)" in md
    assert "## Protocols" in (reported / "reports" / "leaderboard.html").read_text().replace("<h2>", "## ")
    assert (reported / "reports" / "plots" / "protocols.png").stat().st_size > 0


def test_a_drifted_point_drops_its_cis(reported):
    paths = report_paths(reported)
    index = C.read_cams_index(paths.cams_dir(BACKBONES[0]), "test")
    ev = protocols.load(paths, BACKBONES[0], index)
    bad = {p: {m: dict(v) for m, v in by.items()} for p, by in ev.section.items()}
    bad[BASELINE][METHODS[0]][LOC_METRICS[0]] += 5.0
    drifted = protocols.BackboneProtocols(ev.backbone, bad, ev.rows, ev.top1_ok)
    out, dropped = protocols.protocol_table([drifted], 100, 0)
    assert dropped == 1
    row = out[(out["profile"] == BASELINE) & (out["method"] == METHODS[0])].iloc[0]
    assert np.isnan(row[f"{LOC_METRICS[0]}_ci_low"])
