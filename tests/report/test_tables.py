"""Report tables (pure transforms) and their four renderings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.report import tables, writers


def _metrics():
    return {
        "b1": {"classification.top1": 90.0, "cam.maxboxacc_v2_head": 70.0, "cam.pxap": 50.0,
               "center.maxboxacc_v2_head": 30.0, "center.pxap": 20.0, "cam.tau_v2_head_50": 0.3},
        "b0": {"classification.top1": 80.0, "cam.maxboxacc_v2_head": 75.0, "zeta.maxboxacc_v2_head": 10.0},
    }


def test_metrics_frame_rows_columns_and_order():
    df = tables.metrics_frame(_metrics(), method_order=("center", "cam"))
    assert list(df.columns[:3]) == ["backbone", "method", "top1_acc"]
    assert list(df[["backbone", "method"]].itertuples(index=False, name=None)) == [
        ("b1", "center"), ("b1", "cam"), ("b0", "cam"), ("b0", "zeta")]  # params order, method order, rest
    assert df.loc[1, "top1_acc"] == 90.0 and df.loc[2, "top1_acc"] == 80.0
    assert df.columns[-1] == "tau_v2_head_50"  # unknown metrics kept, after the known ones
    assert np.isnan(df.loc[3, "pxap"])


def test_attach_cis_places_columns_and_drops_drifted_points():
    board = tables.metrics_frame(_metrics())
    cis = pd.DataFrame([("b1", "cam", "maxboxacc_v2_head", 70.01, 60.0, 80.0),
                        ("b1", "center", "maxboxacc_v2_head", 33.0, 25.0, 40.0)],  # 33 ≠ 30: drift
                       columns=["backbone", "method", "metric", "point", "ci_low", "ci_high"])
    out, dropped = tables.attach_cis(board, cis)
    cols = list(out.columns)
    i = cols.index("maxboxacc_v2_head")
    assert cols[i + 1: i + 3] == ["maxboxacc_v2_head_ci_low", "maxboxacc_v2_head_ci_high"]
    row = out.set_index(["backbone", "method"])
    assert row.loc[("b1", "cam"), "maxboxacc_v2_head_ci_low"] == 60.0
    assert np.isnan(row.loc[("b1", "center"), "maxboxacc_v2_head_ci_low"])
    assert len(dropped) == 1 and "b1/center/maxboxacc_v2_head" in dropped[0]


def test_rank_puts_best_first_and_missing_last():
    board = tables.rank(tables.metrics_frame(_metrics()))
    assert list(board["maxboxacc_v2_head"]) == [75.0, 70.0, 30.0, 10.0]


def test_breakdowns_match_a_manual_mean():
    scores = pd.DataFrame({"backbone": "b", "method": "cam", "kind": "head",
                           "image_id": ["a1", "a2", "d1", "d2", "d3"], "score": [1.0, 0.0, 1.0, 1 / 3, 2 / 3]})
    samples = pd.DataFrame({"image_id": ["a1", "a2", "d1", "d2", "d3"], "species": ["cat", "cat", "dog", "dog", "dog"],
                            "class_name": ["Abyssinian", "Abyssinian", "pug", "beagle", "beagle"]})
    board = pd.DataFrame({"backbone": ["b"], "method": ["cam"]})
    sp = tables.species_table(scores, samples, board).set_index("species")
    assert sp.loc["cat", "maxboxacc_v2_head"] == pytest.approx(50.0)
    assert sp.loc["dog", "maxboxacc_v2_head"] == pytest.approx(100 * 2 / 3)
    assert sp.loc["dog", "n_head"] == 3 and np.isnan(sp.loc["dog", "maxboxacc_v2_body"])
    worst = tables.worst_breeds(scores, samples, "b", "cam", k=2)
    assert list(worst["class_name"]) == ["Abyssinian", "beagle"]
    assert list(worst["species"]) == ["cat", "dog"]


def _cells():
    df = pd.DataFrame({"backbone": ["r18", "tiny_cnn"], "method": ["cam", "grad_cam"],
                       "v2": [71.234, 65.0], "lo": [60.0, np.nan], "hi": [80.0, np.nan]})
    cols = [writers.Column("backbone", "backbone"), writers.Column("method", "method"),
            writers.Column("v2", "V2 head", bold_best=True), writers.Column("v2_ci", "95% CI", ci=("lo", "hi"))]
    return writers.render_cells(df, cols)


def test_markdown_is_aligned_with_the_best_in_bold():
    md = writers.to_markdown(_cells())
    lines = md.strip().splitlines()
    assert len({len(line) for line in lines}) == 1  # padded: lines up in a terminal
    assert lines[1].startswith("|---") and lines[1].rstrip("|").endswith(":")  # numbers right-aligned
    assert "**71.2**" in lines[2] and "**" not in lines[3]
    assert "[60.0, 80.0]" in lines[2] and writers.MISSING in lines[3]


def test_latex_uses_booktabs_bold_and_escapes():
    tex = writers.to_latex(_cells(), caption="V2 at 50%", label="tab:x")
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{71.2}", r"grad\_cam", r"50\%"):
        assert token in tex


def test_html_is_static_and_escaped():
    page = writers.html_page("a < b", [writers.html_table(_cells())])
    assert "<script" not in page and "http" not in page
    assert "a &lt; b" in page and "<strong>71.2</strong>" in page


@pytest.mark.parametrize("raw, key", [({"bootstrap": 10}, "report.bootstrap"),
                                      ({"gallery_extremes": -1}, "report.gallery_extremes")])
def test_report_params_name_the_bad_key(raw, key):
    from pipeline.errors import ParamsError
    from pipeline.params import ReportParams, parse

    with pytest.raises(ParamsError, match=key.replace(".", r"\.")):
        parse(ReportParams, raw, "report")


def test_a_column_where_every_row_ties_has_no_bold():
    df = pd.DataFrame({"method": ["a", "b"], "v": [0.0, 0.0]})
    md = writers.to_markdown(writers.render_cells(df, [writers.Column("method", "m"),
                                                       writers.Column("v", "v", bold_best=True)]))
    assert "**" not in md
