"""Issue 22's Done-when for part 1: a checkpoint in the reference's main.py layout, scored with `epochs: 0`,
flows through the real `dvc repro` to the leaderboard with no training step in the log.

The checkpoint is written here from the reference's ResNet50 (resnet50_wsol) with seeded weights, saved
as clovaai/wsolevaluation's `Trainer._torch_save_model` does ({architecture, epoch, state_dict,
optimizer}, under a DataParallel `module.` prefix) on a reduced copy of the project (test_pipeline_e2e).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from test_pipeline_e2e import REDUCED, _run, copy_project

KEY = "resnet50_released"
S = 48


def _reference_checkpoint(path: Path, num_classes: int) -> dict:
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.models.wsol_weights import build_reference, to_reference

    info = BACKBONES.get("resnet50_wsol")
    torch.manual_seed(0)
    model = build_reference(info, num_classes)
    with torch.no_grad():  # a classifier head that is not ~0, so predictions differ between images
        model.classifier.weight.normal_(0, 0.5)
    state = {"module." + to_reference(info.trunk, k): v for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    torch.save({"architecture": "resnet50", "epoch": 50, "state_dict": state, "optimizer": optimizer.state_dict()},
               path)
    return state


def test_a_reference_checkpoint_scored_with_epochs_0_reaches_the_leaderboard(tmp_path):
    weights = tmp_path / "last_checkpoint.pth.tar"
    state = _reference_checkpoint(weights, REDUCED["synthpets"]["num_classes"])
    reduced = {**REDUCED, "backbones": {KEY: {"arch": "resnet50_wsol", "epochs": 0, "weights": str(weights),
                                              "image_size": S, "batch_size": 16, "workers": 0}},
               "faithfulness": {"max_images": 2, "steps": 4, "road_max_images": 1}}
    root = copy_project(tmp_path / "camloc", reduced)
    proc = _run(["dvc", "repro"], root)
    log = proc.stdout + proc.stderr
    assert f"Running stage 'train@{KEY}'" in log and "no optimisation step" in log, log[-3000:]
    assert not re.search(r"epoch \d+|img/s|train_loss", log), log[-3000:]  # no optimisation step ran

    meta = json.loads((root / f"data/models/{KEY}/meta.json").read_text())
    assert meta["checkpoint"]["layout"] == "wsolevaluation"
    assert sorted(meta["checkpoint"]["key_map"]) == sorted(state)
    assert json.loads((root / f"data/models/{KEY}/metrics.json").read_text())["epochs"] == 0
    metrics = json.loads((root / f"reports/metrics/{KEY}.json").read_text())
    assert "cam.maxboxacc_v2_head" in metrics and "classification.top1" in metrics
    board = (root / "reports/leaderboard.md").read_text()
    assert KEY in board
    assert (root / f"reports/faithfulness/{KEY}.json").is_file()
