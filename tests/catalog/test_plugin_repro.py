"""The example plugin's four entries through a real `dvc repro`, from an installed package (pip
--target, on PYTHONPATH), with no file of camloc changed; a broken plugin and one reusing `cam` are
installed beside it, and the built-in chain (tiny_gap_cnn, cam) runs unaffected in the same repro."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_env import BROKEN, REUSES_CAM, env_with, fake_distribution, install_example

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_pipeline_e2e import copy_project  # noqa: E402
from twins import make_boxes_twin  # noqa: E402

pytestmark = pytest.mark.slow
S = 32
B = {"epochs": 2, "batch_size": 8, "optimizer": "adamw", "lr": 0.003, "head_lr_mult": 1.0, "image_size": S,
     "workers": 0}
REDUCED = {
    "prepare": {"cache_size": S, "workers": 1},
    "backbones": {"mine": {**B, "arch": "conv_head_cnn", "wsol": {"method": "random_erasing", "re_prob": 0.5}},
                  "tiny_gap_cnn": B},
    "cams": {"methods": ["cam", "contrastive_cam"], "batch_size": 16},
    "evaluate": {"interval": 0.05},
    "faithfulness": {"max_images": 3, "steps": 8},
    "report": {"bootstrap": 100, "gallery_samples": 2, "gallery_extremes": 1},
}


def _csv_folder(folder: Path) -> None:
    """A folder of images with boxes.csv (the example adapter's input), from a seeded twin."""
    twin = make_boxes_twin(folder / "images", folder / "unused-metadata")
    with (folder / "boxes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "split", "x0", "y0", "x1", "y1"])
        for split, ids in twin.splits.items():
            for i in ids:
                label = twin.class_names[twin.labels[i]] if twin.class_names else f"c{twin.labels[i]}"
                boxes = twin.boxes.get(i) if split != "train" else None
                for box in boxes or [("", "", "", "")]:
                    w.writerow([i, label, split, *box])


@pytest.mark.timeout(3000)
def test_the_example_plugins_four_entries_run_through_dvc_repro(tmp_path):
    site = install_example(tmp_path / "site")
    fake_distribution(site, "camloc-broken-plugin", "broken_plugin", BROKEN)
    fake_distribution(site, "camloc-cam-again", "cam_again", REUSES_CAM)
    _csv_folder(tmp_path / "folder")
    root = copy_project(tmp_path / "camloc", REDUCED, {"name": "csv_folder", "archives": str(tmp_path / "folder")})
    r = subprocess.run(["dvc", "repro"], cwd=root, env=env_with(site), capture_output=True, text=True, timeout=1800,
                       check=False)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "camloc-broken-plugin" in r.stderr and "camloc-cam-again" in r.stderr  # each refused, loudly
    meta = json.loads((root / "data/models/mine/meta.json").read_text())
    assert meta["arch"] == "conv_head_cnn" and meta["wsol"]["method"] == "random_erasing"
    for backbone in ("mine", "tiny_gap_cnn"):
        metrics = json.loads((root / f"reports/metrics/{backbone}.json").read_text())
        assert {"cam.maxboxacc_v2_object", "contrastive_cam.maxboxacc_v2_object"} <= set(metrics)
    board = (root / "reports/leaderboard.csv").read_text()
    assert "contrastive_cam" in board and "random_erasing" in board
    status = subprocess.run(["dvc", "status", "--json"], cwd=root, env=env_with(site), capture_output=True,
                            text=True, check=True)
    assert json.loads(status.stdout) == {}
