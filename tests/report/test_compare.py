"""`camloc compare` reads experiments through dvc.api.exp_show (a tiny git + DVC repo, no `dvc exp run`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
    _sh(repo, "git", "init", "-q")
    _sh(repo, "git", "config", "user.email", "t@example.com")
    _sh(repo, "git", "config", "user.name", "t")
    _sh(repo, sys.executable, "-m", "dvc", "init", "-q")
    (repo / "params.yaml").write_text("backbones:\n  tiny:\n    lr: 0.1\n  r18:\n    lr: 0.05\n")
    (repo / "dvc.yaml").write_text(DVC_YAML)
    _metrics(repo, "tiny", 70.0, 30.0)
    _metrics(repo, "r18", 60.0, 25.0)
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-q", "-m", "baseline")
    return repo


def test_compare_reads_workspace_and_baseline_through_dvc_api(repo, tmp_path):
    # an uncommitted change makes the workspace row differ from the committed baseline
    (repo / "params.yaml").write_text("backbones:\n  tiny:\n    lr: 0.2\n  r18:\n    lr: 0.05\n")
    _metrics(repo, "tiny", 80.0, 30.0)
    out = tmp_path / "compare.md"
    text = compare.run(out, repo=repo)
    assert out.read_text() == text
    table = [line for line in text.splitlines() if line.startswith("| ")][1:]
    assert len(table) == 2 * 2 * 2  # (workspace, baseline) × 2 backbones × 2 methods
    first = [c.strip() for c in table[0].strip("|").split("|")]
    assert first[:3] == ["workspace", "tiny", "cam"]
    assert "**80.0**" in table[0] and "backbones.tiny.lr=0.2" in table[0]
    assert any("r18" in row and "center" in row and "25.0" in row for row in table)
    assert "Created" not in text


def test_compare_outside_a_dvc_repo_says_how_to_fix(tmp_path):
    with pytest.raises(CamlocError, match="inside the camloc repository"):
        compare.run(None, repo=tmp_path)


def test_experiment_rows_handle_a_single_bare_metrics_file():
    rows = [{"Experiment": "exp-a", "rev": "abc1234", "typ": "branch_commit", "Created": "04:21 AM",
             "cam.maxboxacc_v2_head": 55.0, "classification.top1": 88.0, "backbones.tiny.lr": 0.1},
            {"Experiment": "exp-b", "rev": "def5678", "typ": "branch_commit", "State": "Queued",
             "backbones.tiny.lr": 0.3}]
    df, skipped = compare.experiment_rows(rows, "tiny")
    assert skipped == 1
    assert df.to_dict("records") == [{"experiment": "exp-a", "rev": "abc1234", "backbone": "tiny", "method": "cam",
                                      "top1_acc": 88.0, "maxboxacc_v2_head": 55.0,
                                      "params": "backbones.tiny.lr=0.1"}]


def test_faithfulness_metrics_files_are_metrics_not_params():
    rows = [{"Experiment": "exp-a", "rev": "abc1234", "reports/metrics/tiny.json:cam.maxboxacc_v2_head": 55.0,
             "reports/metrics/tiny.json:classification.top1": 88.0,
             "reports/faithfulness/tiny.json:cam.deletion_auc": 0.125, "params.yaml:backbones.tiny.lr": 0.1}]
    df, skipped = compare.experiment_rows(rows, "?")
    assert skipped == 0
    assert df.to_dict("records") == [{"experiment": "exp-a", "rev": "abc1234", "backbone": "tiny", "method": "cam",
                                      "top1_acc": 88.0, "maxboxacc_v2_head": 55.0, "deletion_auc": 0.125,
                                      "params": ""}]
    text = compare.comparison_markdown(df, 0)
    assert "0.125" in text and "deletion_auc" in text
