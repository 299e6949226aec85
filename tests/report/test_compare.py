"""`camloc compare` reads experiments through dvc.api.exp_show (a tiny git + DVC repo, no `dvc exp run`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.errors import CamlocError
from pipeline.report import compare

DVC_YAML = """stages:
  evaluate:
    cmd: "true"
    params:
      - backbones
    metrics:
      - reports/metrics/tiny.json:
          cache: false
      - reports/metrics/r18.json:
          cache: false
      - data/models/tiny/metrics.json:
          cache: false
"""


def _sh(repo: Path, *args: str) -> None:
    subprocess.run(args, cwd=repo, check=True, capture_output=True)


def _metrics(repo: Path, name: str, cam: float, center: float) -> None:
    data = {"classification.top1": 90.0, "cam.maxboxacc_v2_head": cam, "cam.pxap": 50.0,
            "center.maxboxacc_v2_head": center, "center.pxap": 20.0}
    (repo / "reports" / "metrics" / f"{name}.json").write_text(json.dumps(data))


@pytest.fixture()
def repo(tmp_path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "reports" / "metrics").mkdir(parents=True)
    (repo / "data" / "models" / "tiny").mkdir(parents=True)
    _sh(repo, "git", "init", "-q")
    _sh(repo, "git", "config", "user.email", "t@example.com")
    _sh(repo, "git", "config", "user.name", "t")
    _sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / "params.yaml").write_text("backbones:\n  tiny:\n    lr: 0.1\n  r18:\n    lr: 0.05\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _metrics(repo, "tiny", 70.0, 30.0)
    _metrics(repo, "r18", 60.0, 25.0)
    (repo / "data" / "models" / "tiny" / "metrics.json").write_text(json.dumps({"val_acc": 0.9, "train_loss": 0.1}))
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-q", "-m", "baseline")
    return repo


def test_compare_reads_workspace_and_baseline_through_dvc_api(repo, tmp_path):
    # an uncommitted change makes the workspace differ from the committed baseline (HEAD)
    (repo / "params.yaml").write_text("backbones:\n  tiny:\n    lr: 0.2\n  r18:\n    lr: 0.05\n")
    _metrics(repo, "tiny", 80.0, 30.0)
    (repo / "data" / "models" / "tiny" / "metrics.json").write_text(json.dumps({"val_acc": 0.5, "train_loss": 2.0}))
    md, csv, page = tmp_path / "compare.md", tmp_path / "compare.csv", tmp_path / "compare.html"
    text = compare.run(md, repo=repo, csv=csv, html=page)
    assert md.read_text() == text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header[:2] == ["backbone", "method"] and header[2].endswith("(baseline)")
    assert header[3:] == ["workspace", "Δ workspace"]
    assert len(table) == 1 + 2 * 2  # one row per backbone × method, not per experiment
    rows = {tuple(c.strip() for c in r.strip("|").split("|"))[:2]: [c.strip() for c in r.strip("|").split("|")]
            for r in table[1:]}
    assert rows[("tiny", "cam")][2:] == ["70.0", "80.0", "+10.0"]
    assert rows[("r18", "center")][2:] == ["25.0", "25.0", "0.0"]
    # the header names the changed param once, against the baseline, and never a metric
    assert "`workspace`: backbones.tiny.lr=0.2 (baseline: 0.1)" in text
    assert text.count("lr=") == 1
    assert not any(word in text for word in ("val_acc", "train_loss", "Created"))
    df = pd.read_csv(csv)
    assert len(df) == 4 and "Δ workspace" in df.columns
    assert "<table>" in page.read_text() and "backbones.tiny.lr=0.2" in page.read_text()
    # another baseline and another metric
    other = compare.run(None, repo=repo, metric="pxap", baseline="workspace")
    assert "Metric: `pxap`" in other and "baseline: `workspace`" in other
    with pytest.raises(CamlocError, match="--metric 'nope' is in no experiment; choose one of"):
        compare.run(None, repo=repo, metric="nope")
    with pytest.raises(CamlocError, match="--baseline 'nope' is not an experiment"):
        compare.run(None, repo=repo, baseline="nope")


def test_compare_outside_a_dvc_repo_says_how_to_fix(tmp_path):
    with pytest.raises(CamlocError, match="inside the camloc repository"):
        compare.run(None, repo=tmp_path)


def test_rows_handle_a_single_bare_metrics_file_and_a_train_method_axis():
    rows = [{"Experiment": None, "rev": "workspace", "typ": "baseline", "cam.maxboxacc_v2_head": 57.0,
             "classification.top1": 88.0, "backbones.tiny.lr": 0.1, "backbones.tiny.wsol.method": "has",
             "data/models/tiny/metrics.json:val_loss": 0.3},
            {"Experiment": None, "rev": "main", "typ": "baseline", "Created": "04:21 AM",
             "cam.maxboxacc_v2_head": 55.0, "classification.top1": 88.0, "backbones.tiny.lr": 0.1,
             "backbones.tiny.wsol.method": "cam"},
            {"Experiment": "exp-b", "rev": "def5678", "typ": "branch_commit", "State": "Queued",
             "backbones.tiny.lr": 0.3}]
    c = compare.build(rows, "tiny")
    assert c.skipped == 1 and c.baseline == "main" and c.metric == "maxboxacc_v2_head"
    assert c.changed["workspace"] == ["backbones.tiny.wsol.method=has (baseline: cam)"]
    assert list(c.table.columns) == ["backbone", "train_method", "method", "main", "workspace", "Δ workspace"]
    by_train = c.table.set_index("train_method")
    assert by_train.loc["cam", "main"] == 55.0 and pd.isna(by_train.loc["cam", "workspace"])
    assert by_train.loc["has", "workspace"] == 57.0 and pd.isna(by_train.loc["has", "main"])
    assert compare.default_metric(["pxap", "maxboxacc_v2_body", "maxboxacc_v2_body_val_tau"]) == "maxboxacc_v2_body"


def test_faithfulness_metrics_files_are_metrics_not_params():
    rows = [{"Experiment": "exp-a", "rev": "abc1234", "reports/metrics/tiny.json:cam.maxboxacc_v2_head": 55.0,
             "reports/metrics/tiny.json:classification.top1": 88.0,
             "reports/faithfulness/tiny.json:cam.deletion_auc": 0.125, "params.yaml:backbones.tiny.lr": 0.1}]
    long, params, _, skipped = compare.parse_rows(rows, "?")
    assert skipped == 0 and params == {"exp-a": {"backbones.tiny.lr": 0.1}}
    assert sorted(long["metric"]) == ["deletion_auc", "maxboxacc_v2_head"]
    c = compare.build(rows, "?", metric="deletion_auc")
    assert c.table["exp-a"].tolist() == [0.125]
