"""The whole report stage on seeded synthetic stage outputs (2 backbones × 4 methods)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from report_inputs import BACKBONES, METHODS, make_report_inputs, report_params, report_paths

from pipeline.errors import CamlocError
from pipeline.report.perimage import CI_METRICS
from pipeline.stages import report


@pytest.fixture(scope="module")
def reported(tmp_path_factory) -> Path:
    root = make_report_inputs(tmp_path_factory.mktemp("report"))
    report.run(report_params(), report_paths(root))
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_leaderboard_csv_rows_and_columns(reported):
    df = pd.read_csv(reported / "reports" / "leaderboard.csv")
    assert list(df.columns[:2]) == ["backbone", "method"]
    assert len(df) == len(BACKBONES) * len(METHODS)
    assert set(zip(df["backbone"], df["method"], strict=True)) == {(b, m) for b in BACKBONES for m in METHODS}
    cols = list(df.columns)
    for m in CI_METRICS:
        i = cols.index(m)
        assert cols[i + 1: i + 3] == [f"{m}_ci_low", f"{m}_ci_high"]
    for name in ("maxboxacc_v2_head", "maxboxacc_v2_head_val_tau", "maxboxacc_v2_body", "pxap", "top1_acc"):
        assert name in cols
    assert list(df["maxboxacc_v2_head"]) == sorted(df["maxboxacc_v2_head"], reverse=True)


def test_cis_recompute_the_metrics_file_and_bracket_it(reported):
    df = pd.read_csv(reported / "reports" / "leaderboard.csv")
    # a CI is only kept when the per-image re-computation reproduces the metrics JSON value
    for m in CI_METRICS:
        assert df[f"{m}_ci_low"].notna().all(), m
        assert (df[f"{m}_ci_low"] <= df[m] + 1e-3).all() and (df[m] <= df[f"{m}_ci_high"] + 1e-3).all(), m
    cam = df[df["method"] == "cam"].set_index("backbone")
    center = df[df["method"] == "center"].set_index("backbone")
    # the planted gap is larger than both intervals (the done-when, in miniature)
    assert (cam["maxboxacc_v2_head_ci_low"] > center["maxboxacc_v2_head_ci_high"]).all()


def test_markdown_and_paired_sentence(reported):
    md = (reported / "reports" / "leaderboard.md").read_text()
    df = pd.read_csv(reported / "reports" / "leaderboard.csv")
    top, second = df.iloc[0], df.iloc[1]
    assert f"**{top['maxboxacc_v2_head']:.1f}**" in md
    assert f"{top['backbone']}/{top['method']} leads {second['backbone']}/{second['method']}" in md
    assert "p = " in md and "left out" not in md
    tex = (reported / "reports" / "leaderboard.tex").read_text()
    assert r"\toprule" in tex and r"\textbf{" in tex


def test_breakdowns_and_plots_exist(reported):
    out = reported / "reports"
    species = pd.read_csv(out / "breakdowns" / "species.csv")
    assert set(species["species"]) == {"cat", "dog"} and len(species) == 2 * len(BACKBONES) * len(METHODS)
    breeds = pd.read_csv(out / "breakdowns" / "breeds_worst10.csv")
    assert 0 < len(breeds) <= 10 and list(breeds["maxboxacc_v2_head"]) == sorted(breeds["maxboxacc_v2_head"])
    pngs = {p.name for p in (out / "plots").glob("*.png")}
    assert pngs == {*(f"boxacc_tau_{b}.png" for b in BACKBONES), *(f"pr_{b}.png" for b in BACKBONES),
                    "training.png", "heatmap_maxboxacc_v2_head.png", "localization_vs_faithfulness.png",
                    *(f"faithfulness_curves_{b}.png" for b in BACKBONES), "protocols.png"}
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_rerun_after_deleting_is_byte_identical(reported, tmp_path):
    first = _tree(reported / "reports")
    again = tmp_path / "again"
    shutil.copytree(reported, again, ignore=shutil.ignore_patterns("leaderboard.*", "plots", "gallery", "breakdowns",
                                                         "explorer"))
    report.run(report_params(), report_paths(again))
    second = _tree(again / "reports")
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    assert not any(b"Software" in v for k, v in first.items() if k.endswith(".png"))


def test_gallery_pages_are_static_and_complete(reported):
    gallery = reported / "reports" / "gallery"
    pages = sorted(gallery.glob("*.html"))
    # one page per backbone, and one per training method (all `cam` here)
    assert {p.name for p in pages} == {"index.html", "training-cam.html", *(f"{b}.html" for b in BACKBONES)}
    for page in pages:
        text = page.read_text()
        assert "<script" not in text and "http://" not in text and "https://" not in text
    thumbs = list(gallery.rglob("*.png"))
    assert thumbs and all(t.stat().st_size > 0 for t in thumbs)
    page = (gallery / f"{BACKBONES[0]}.html").read_text()
    assert "class Abyssinian" in page or "class Bengal" in page  # captions name class and prediction
    assert "pred " in page and "IoU " in page


def test_gallery_boxes_reproduce_the_evaluated_ious(reported, tmp_path):
    summary = report.run(report_params(bootstrap=100), report_paths(reported, tmp_path / "out"))
    assert "0 gallery boxes off their evaluated IoU" in summary


def test_missing_stage_output_names_the_file_and_the_fix(reported, tmp_path):
    root = tmp_path / "copy"
    for sub in ("eval", "cams", "faithfulness"):
        shutil.copytree(reported / "data" / sub, root / "data" / sub)
    for sub in ("metrics", "faithfulness"):
        shutil.copytree(reported / "reports" / sub, root / "reports" / sub)
    (root / "data" / "eval" / "resnet18" / "per_image.parquet").unlink()
    with pytest.raises(CamlocError, match=r"per_image\.parquet is missing: run `dvc repro evaluate@resnet18`"):
        report.run(report_params(), report_paths(root))
    shutil.copy(reported / "data" / "eval" / "resnet18" / "per_image.parquet", root / "data" / "eval" / "resnet18")
    (root / "reports" / "faithfulness" / "tiny_gap_cnn.json").unlink()
    with pytest.raises(CamlocError, match=r"tiny_gap_cnn\.json is missing: run `dvc repro faithfulness@tiny_gap_cnn`"):
        report.run(report_params(), report_paths(root))


def test_both_families_side_by_side_with_cis_and_a_legend_entry_each(reported):
    from pipeline import contracts as C
    from pipeline import faithcontracts as FC
    from pipeline.report.leaderboard import LEGEND

    df = pd.read_csv(reported / "reports" / "leaderboard.csv")
    new = [m for m in C.METRIC_NAMES if "pointing" in m] + list(FC.FAITHFULNESS_NAMES)
    for m in new:
        assert f"`{m}`" in LEGEND, m
        # a CI is kept only when the per-image re-computation reproduces the stage's JSON value
        assert df[f"{m}_ci_low"].notna().all() and (df[f"{m}_ci_low"] <= df[m] + 1e-9).all(), m
        assert (df[m] <= df[f"{m}_ci_high"] + 1e-9).all(), m
    md = (reported / "reports" / "leaderboard.md").read_text()
    for header in ("PG head", "EPG head", "AD ↓", "IC", "deletion ↓", "insertion", "insertion 95% CI"):
        assert f" {header} |" in md, header
    # lower is better for AD and deletion: the bold cell is the column minimum
    lines = md.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("| backbone")) + 2
    row = lines[first + int(df["deletion_auc"].idxmin())]
    assert f"**{df['deletion_auc'].min():.3f}**" in row
