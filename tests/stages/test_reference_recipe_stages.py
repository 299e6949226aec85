"""A reference recipe through the real train and cams stages: a `*_wsol` model with large_feature_map, the
resize-then-crop transform, Nesterov and the reference's step decay, on the tiny prepared synthpets."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.contracts import Paths
from pipeline.params import BackboneParams, CamsParams
from pipeline.stages import cams as cams_stage
from pipeline.stages import train as train_stage
from pipeline.wsol.rebuild import load_model


@pytest.mark.slow  # VGG16 on CPU: ~20 s of CPU time
def test_vgg16_wsol_recipe_trains_and_dumps_stride_8_maps(tmp_path, prepared_dir, tiny_params):
    bp = BackboneParams(arch="vgg16_wsol", epochs=2, batch_size=8, lr=0.001, image_size=32, workers=0,
                        large_feature_map=True, train_transform="resize_crop", nesterov=True,
                        schedule="reference_step", step_epochs=2, weight_decay=1e-4)
    params = tiny_params(backbones={"ref": bp}, cams=CamsParams(methods=("cam",), splits=("test",), batch_size=8))
    paths = Paths(prepared=prepared_dir, models=tmp_path / "models", cams=tmp_path / "cams")
    train_stage.run(params, paths, "ref")
    meta = json.loads((paths.model_dir("ref") / "meta.json").read_text())
    assert meta["options"] == {"large_feature_map": True}
    assert meta["params"]["train_transform"] == "resize_crop"
    history = (paths.model_dir("ref") / "history.csv").read_text().splitlines()
    lrs = [float(line.split(",")[1]) for line in history[1:]]
    assert lrs[0] > lrs[1] * 9.99  # reference_step with step_epochs 2: ×0.1 before the 2nd (1-based) epoch
    model, _ = load_model(paths.model_dir("ref"))
    assert tuple(model.features.vgg[-2].weight.shape) == (512, 512, 3, 3) and len(model.features.vgg) == 29
    cams_stage.run(params, paths, "ref")
    maps = [p for p in (paths.cams_dir("ref")).rglob("*.npy")]
    assert maps
    shapes = {np.load(p, mmap_mode="r").shape[-2:] for p in maps if np.load(p, mmap_mode="r").ndim >= 2}
    assert (4, 4) in shapes  # 32 px / stride 8 (pool4 and pool5 gone)
