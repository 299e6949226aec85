"""The whole report stage on seeded synthetic stage outputs (2 backbones × 4 methods)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from report_inputs import BACKBONES, METHODS, make_report_inputs, report_params, report_paths

from pipeline.errors import CamlocError
from pipeline.report.perimage import CI_METRICS
from pipeline.stages import report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var bad = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                .map(function (i) { return i.getAttribute("src"); });
  var p = document.createElement("pre"); p.id = "camloc-check";
  p.textContent = JSON.stringify({total: imgs.length, broken: bad});
  document.body.appendChild(p);
});
</script>"""


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
                    "training.png", "heatmap_maxboxacc_v2_head.png"}
    assert all((out / "plots" / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_rerun_after_deleting_is_byte_identical(reported, tmp_path):
    first = _tree(reported / "reports")
    again = tmp_path / "again"
    shutil.copytree(reported, again, ignore=shutil.ignore_patterns("leaderboard.*", "plots", "gallery", "breakdowns"))
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


def _chromium_check(page: Path, tmp_path: Path) -> tuple[dict, list[str]]:
    """Open `page` (plus a test-only check script) headless; returns the check and console lines."""
    probe = page.with_name(".probe-" + page.name)
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "\n</body>"))
    try:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
            capture_output=True, text=True, timeout=90)
    finally:
        probe.unlink()
    marker = proc.stdout.split('<pre id="camloc-check">', 1)
    assert len(marker) == 2, f"the page did not finish loading: {proc.stderr[-2000:]}"
    check = json.loads(marker[1].split("</pre>", 1)[0])
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return check, console


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium); "
                    "the gallery's browser check needs it")
def test_gallery_loads_in_headless_chromium(reported, tmp_path):
    gallery = reported / "reports" / "gallery"
    for page in (gallery / "index.html", gallery / f"{BACKBONES[0]}.html"):
        check, console = _chromium_check(page, tmp_path)
        assert check["broken"] == [], f"{page.name}: images failed to load: {check['broken']}"
        assert console == [], f"{page.name}: console messages: {console}"
    assert check["total"] > 0
    # the check can fail: a page with a missing thumbnail is caught
    broken = tmp_path / "gallery"
    shutil.copytree(gallery, broken)
    victim = next((broken / BACKBONES[0]).rglob("*.png"))
    victim.unlink()
    check, _ = _chromium_check(broken / f"{BACKBONES[0]}.html", tmp_path)
    assert str(victim.relative_to(broken)) in check["broken"]


def test_missing_stage_output_names_the_file_and_the_fix(reported, tmp_path):
    root = tmp_path / "copy"
    for sub in ("eval", "cams"):
        shutil.copytree(reported / "data" / sub, root / "data" / sub)
    shutil.copytree(reported / "reports" / "metrics", root / "reports" / "metrics")
    (root / "data" / "eval" / "resnet18" / "per_image.parquet").unlink()
    with pytest.raises(CamlocError, match=r"per_image\.parquet is missing: run `dvc repro evaluate@resnet18`"):
        report.run(report_params(), report_paths(root))
