"""The ecosystem pieces through a real `dvc exp run` on the tiny end-to-end config: a pytorch-grad-cam
method (`pgc.gradcam`) scored end to end, a method dumped at two layers whose rows both reach the
leaderboard, and dvclive's training metrics in `dvc exp show --json` (a temporary git + DVC project)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from test_pipeline_e2e import REDUCED, _env, _run, copy_project

pytest.importorskip("pytorch_grad_cam")
# The whole graph once more, through `dvc exp run` (1–2 min idle on 2 cores): `make test-slow`, so that the
# default suite stays under 10 minutes (test_pipeline_e2e runs the same stages through `dvc repro`).
pytestmark = [pytest.mark.timeout(1800), pytest.mark.slow]

B = "tiny_gap_cnn"
ECO = {**REDUCED, "backbones": {B: REDUCED["backbones"][B]},
       "cams": {"methods": ["cam", "gradcam", "pgc.gradcam", "center"], "batch_size": 16,
                "layers": {"gradcam": ["11", "last"]}},
       "faithfulness": {**REDUCED["faithfulness"], "max_images": 2}}  # "11": the 4th conv's ReLU, stride 4 (12×12 at 48 px)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = copy_project(tmp_path_factory.mktemp("eco") / "camloc", ECO)
    for key, value in (("user.name", "camloc test"), ("user.email", "test@camloc.invalid")):
        _run(["git", "config", key, value], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "tiny config"], root)
    proc = subprocess.run(["dvc", "exp", "run"], cwd=root, env=_env(), capture_output=True, text=True, timeout=1700)
    assert proc.returncode == 0, f"dvc exp run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return root


def _leaderboard(project) -> pd.DataFrame:
    return pd.read_csv(project / "reports" / "leaderboard.csv")


def test_pgc_method_is_scored_end_to_end(project):
    metrics = json.loads((project / f"reports/metrics/{B}.json").read_text())
    assert 0 <= metrics["pgc.gradcam.maxboxacc_v2_head"] <= 100
    maps = np.load(project / f"data/cams/{B}/test/pgc.gradcam_gt.npy")
    assert maps.shape[1:] == (6, 6) and maps.min() >= 0 and maps.max() <= 1  # the library's ReLU and min-max
    board = _leaderboard(project)
    assert "pgc.gradcam" in set(board["method"])
    assert "pgc.gradcam.deletion_auc" in json.loads((project / f"reports/faithfulness/{B}.json").read_text())


def test_two_layer_dump_rows_both_reach_the_leaderboard(project):
    meta = json.loads((project / f"data/cams/{B}/meta.json").read_text())
    assert meta["methods"] == ["cam", "gradcam@11", "gradcam", "pgc.gradcam", "center"]
    assert meta["layers"]["gradcam@11"] == "11" and meta["map_sizes"]["gradcam@11"] == [12, 12]
    assert np.load(project / f"data/cams/{B}/test/gradcam@11_gt.npy").shape[1:] == (12, 12)
    board = _leaderboard(project)
    rows = board[board["method"].isin(["gradcam@11", "gradcam"])]
    assert set(rows["method"]) == {"gradcam@11", "gradcam"}
    assert rows["maxboxacc_v2_head"].notna().all()
    assert "gradcam@11" in (project / "reports" / "leaderboard.md").read_text()


def test_dvc_exp_show_lists_the_dvclive_metrics(project):
    live = project / f"data/models/{B}/dvclive"
    assert (live / "metrics.json").is_file() and (live / "plots/metrics/val_acc.tsv").is_file()
    shown = json.loads(_run(["dvc", "exp", "show", "--json"], project).stdout)
    text = json.dumps(shown)
    path = f"data/models/{B}/dvclive/metrics.json"
    assert path in text
    for name in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        assert f'"{name}"' in text, name
    assert "dvc.yaml" not in {p.name for p in live.rglob("*")}  # dvclive left dvc.yaml alone


def test_dvc_plots_read_dvclive_step_files(project):
    shown = _run(["dvc", "plots", "show", "--json"], project).stdout
    assert f"data/models/{B}/dvclive/plots/metrics/val_acc.tsv" in shown
