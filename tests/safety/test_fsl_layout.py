"""Issue 20, item 7: `fsl` learns the box kind the dataset's test split scores, read from layout.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/twins.py
from twins import make_boxes_twin  # noqa: E402

from pipeline.contracts import Layout, Paths, read_layout  # noqa: E402
from pipeline.datasets.wsol import fetch_wsol  # noqa: E402
from pipeline.errors import CamlocError  # noqa: E402
from pipeline.params import (  # noqa: E402
    AugmentParams,
    BackboneParams,
    DatasetParams,
    Params,
    PrepareParams,
    WsolDatasetParams,
    WsolParams,
)
from pipeline.stages import prepare, train  # noqa: E402
from pipeline.wsol.folds import target_kind  # noqa: E402

KEY = "tiny_fsl"


def test_fsl_trains_on_a_wsol_dataset_with_object_boxes(tmp_path):
    out = tmp_path / "ilsvrc"
    make_boxes_twin(out / "images", out / "meta", per_class={"train": 3, "val": 2, "test": 2})
    fetch_wsol(out / "meta", out / "images", None, tmp_path / "raw")
    bp = BackboneParams(arch="tiny_gap_cnn", epochs=2, batch_size=2, lr=0.05, head_lr_mult=1.0, image_size=32,
                        workers=0, augment=AugmentParams(scale_min=0.7),
                        wsol=WsolParams.from_mapping({"method": "fsl", "fsl_folds": 2}, f"backbones.{KEY}.wsol"))
    params = Params(dataset=DatasetParams(name="wsol", wsol=WsolDatasetParams("m", "r")),
                    prepare=PrepareParams(cache_size=32, workers=1), backbones={KEY: bp})
    paths = Paths(raw=tmp_path / "raw", prepared=tmp_path / "prep", models=tmp_path / "models")
    prepare.run(params, paths)
    assert target_kind(read_layout(paths.prepared)) == "object"
    train.run(params, paths, KEY)
    meta = json.loads((paths.model_dir(KEY) / "meta.json").read_text())
    assert meta["fsl"]["target_kind"] == "object"


def test_fsl_on_a_masks_only_dataset_is_one_line():
    layout = Layout("wsol", {}, "object", "test", "masks", "test")
    with pytest.raises(CamlocError, match="scores no box kind on test"):
        target_kind(layout)
