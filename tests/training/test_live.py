"""dvclive logging (pipeline/training/live.py) in the places a newcomer runs it: a fresh `git init` with
no commit yet (dvclive 3 alone fails there with scmrepo's "Empty git repo"), and a folder with no Git."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pipeline.training import live


@pytest.mark.parametrize("git_init", [True, False], ids=["git-without-commit", "no-git"])
def test_logging_works_before_the_first_commit(tmp_path, monkeypatch, git_init):
    if git_init:
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    model_dir = tmp_path / "models" / "b"
    model_dir.mkdir(parents=True)
    logger = live.start(model_dir, True, [{"epoch": 1, "train_loss": 2.0}])
    live.log_epoch(logger, {"epoch": 2, "train_loss": 1.5, "val_acc": 0.5})
    live.finish(logger)
    metrics = json.loads((model_dir / live.LIVE_DIR / "metrics.json").read_text())
    assert metrics["train_loss"] == 1.5 and metrics["step"] == 2
    tsv = (model_dir / live.LIVE_DIR / "plots" / "metrics" / "train_loss.tsv").read_text().split()
    assert tsv[-2:] == ["2", "1.5"] and "1" in tsv
    assert not os.path.exists(tmp_path / "dvc.yaml")  # dvclive never writes the project's dvc.yaml
