"""The report's "training methods vs CAM" section: pairing, paired differences and their CIs, and the
train_method axis in the report's tables and gallery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from report_inputs import BACKBONES, make_report_inputs, report_params, report_paths

from pipeline.params import BackboneParams, Params, WsolParams
from pipeline.report import ci, wsolvs
from pipeline.report.tables import RANK_BY
from pipeline.stages import report

E = wsolvs.Entry


def test_each_method_is_paired_with_the_cam_model_of_its_arch_and_size():
    entries = {"t128": E("tiny", 128, "cam"), "t96": E("tiny", 96, "cam"), "t_adl": E("tiny", 96, "adl"),
               "t_has": E("tiny", 64, "has"), "r_adl": E("resnet18", 96, "adl")}
    assert wsolvs.baselines(entries) == {"t_adl": "t96", "t_has": "t128", "r_adl": None}


def test_differences_and_paired_cis_come_from_the_shared_resamples():
    rng = np.random.default_rng(0)
    board = pd.DataFrame({"backbone": ["base", "base", "adl", "adl"], "method": ["cam", "center", "cam", "center"],
                          RANK_BY: [50.0, 20.0, 58.0, 20.0]})
    boot = {("base", "cam", RANK_BY): 50 + rng.normal(0, 2, 300), ("adl", "cam", RANK_BY): 58 + rng.normal(0, 2, 300)}
    ids = {(b, m): np.array(["a", "b"]) for b in ("base", "adl") for m in ("cam", "center")}
    entries = {"base": E("tiny", 96, "cam"), "adl": E("tiny", 96, "adl")}
    table = wsolvs.versus_cam(board, boot, ids, entries)
    assert list(table["method"]) == ["cam"], "model-free baselines are left out"
    row = table.iloc[0]
    expected = ci.paired_test(58.0, 50.0, boot[("adl", "cam", RANK_BY)], boot[("base", "cam", RANK_BY)])
    assert row["diff"] == pytest.approx(8.0) and row["baseline"] == "base"
    assert (row["diff_ci_low"], row["diff_ci_high"], row["p_value"]) == pytest.approx(
        (expected.ci_low, expected.ci_high, expected.p_value))
    ids[("adl", "cam")] = np.array(["a", "c"])  # scored on other images: no paired CI
    assert np.isnan(wsolvs.versus_cam(board, boot, ids, entries).iloc[0]["diff_ci_low"])
    md = wsolvs.section_markdown(table, 300)
    assert "Training methods vs CAM" in md and "| adl" in md.replace("  ", " ")


def test_the_report_carries_the_training_method_axis(tmp_path):
    root = make_report_inputs(tmp_path)
    base = report_params()
    adl = WsolParams.from_mapping({"method": "adl"}, "wsol")
    backbones = {BACKBONES[0]: BackboneParams(), BACKBONES[1]: BackboneParams(arch=BACKBONES[0], wsol=adl)}
    params = Params(backbones=backbones, cams=base.cams, evaluate=base.evaluate, report=base.report)
    report.run(params, report_paths(root))
    out = root / "reports"
    board = pd.read_csv(out / "leaderboard.csv")
    assert dict(zip(board["backbone"], board["train_method"], strict=False)) == {BACKBONES[0]: "cam", BACKBONES[1]: "adl"}
    md = (out / "leaderboard.md").read_text()
    section = md[md.index("## Training methods vs CAM"):]
    a = board[(board["backbone"] == BACKBONES[1]) & (board["method"] == "cam")][RANK_BY].item()
    b = board[(board["backbone"] == BACKBONES[0]) & (board["method"] == "cam")][RANK_BY].item()
    assert f"{a - b:.1f}" in section and "[" in section
    assert "train_method" in pd.read_csv(out / "breakdowns" / "species.csv").columns
    assert "train_method" in pd.read_csv(out / "breakdowns" / "breeds_worst10.csv").columns
    gallery = out / "gallery"
    assert (gallery / "training-adl.html").is_file() and (gallery / "training-cam.html").is_file()
    assert "training-adl.html" in (gallery / "index.html").read_text()
    assert BACKBONES[1] in (gallery / "training-adl.html").read_text()
