"""The faithfulness@B stage on a tiny prepared tree, a random-weight tiny_gap_cnn and the real cams stage:
layout, the metrics JSON against the per-image table, the seeded subset, reruns, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import contracts as C
from pipeline import faithcontracts as FC
from pipeline.errors import CamlocError, ParamsError
from pipeline.metrics import faithfulness as MF
from pipeline.models import build_backbone
from pipeline.models.checkpoint import save_model
from pipeline.params import BackboneParams, CamsParams, FaithfulnessParams, Params
from pipeline.stages import cams as cams_stage
from pipeline.stages import faithfulness as stage

S, SIZE, CLASSES, B = 40, 32, 3, "tiny_gap_cnn"
SPLIT_SIZES = {"val": 3, "test": 6, "test_official": 4}
METHODS = ("cam", "gradcam", "full")


def _params(**faith) -> Params:
    fp = {"max_images": 4, "steps": 4, "splits": ("test", "test_official"), "batch_size": 20,
          "road_max_images": 3} | faith
    return Params(backbones={B: BackboneParams(image_size=SIZE)}, cams=CamsParams(methods=METHODS, batch_size=4),
                  faithfulness=FaithfulnessParams(**fp))


def _paths(root: Path) -> C.Paths:
    return C.Paths(prepared=root / "prepared", models=root / "models", cams=root / "cams",
                   faithfulness=root / "reports" / "faithfulness", faithfulness_data=root / "data" / "faithfulness")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """prepared/ (random images), models/tiny_gap_cnn (random weights), cams/ by the real cams stage."""
    root = tmp_path_factory.mktemp("faith")
    rng = np.random.default_rng(0)
    rows = [{"image_id": f"{s}_{i:02d}", "label": int(rng.integers(CLASSES)), "split": s}
            for s, n in SPLIT_SIZES.items() for i in range(n)]
    df = pd.DataFrame(rows).assign(cache_index=lambda d: np.arange(len(d)))
    (root / "prepared").mkdir()
    df.to_parquet(root / "prepared" / "samples.parquet", index=False)
    np.save(root / "prepared" / "images.npy", rng.integers(0, 256, (len(df), S, S, 3), dtype=np.uint8))
    (root / "prepared" / "classes.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    torch.manual_seed(0)
    save_model(root / "models" / B, build_backbone(B, CLASSES),
               {"backbone": B, "arch": B, "num_classes": CLASSES, "image_size": SIZE,
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})
    cams_stage.run(_params(), _paths(root), B)
    stage.run(_params(), _paths(root), B)
    return root


def test_outputs_follow_the_contract_and_the_json_pools_the_per_image_rows(project):
    paths = _paths(project)
    table = FC.read_faithfulness(paths.faithfulness_dir(B))
    assert list(table.columns) == list(FC.FAITHFULNESS_COLUMNS)
    # 4 of the 6 test images (a seeded subset), all 4 test_official ones, for every method
    assert table.groupby("method").size().to_dict() == {m: 8 for m in METHODS}
    assert sorted(table["split"].unique()) == ["test", "test_official"]
    assert set(table.loc[table["split"] == "test", "image_id"]) < {f"test_{i:02d}" for i in range(6)}
    metrics = FC.read_faithfulness_metrics(paths.faithfulness_file(B))
    assert set(metrics) == {f"{m}.{n}" for m in METHODS for n in FC.FAITHFULNESS_NAMES}
    for m in METHODS:
        g = table[table["method"] == m]
        assert metrics[f"{m}.deletion_auc"] == pytest.approx(g["deletion_auc"].mean(), abs=1e-6)
        assert metrics[f"{m}.insertion_auc"] == pytest.approx(g["insertion_auc"].mean(), abs=1e-6)
        assert metrics[f"{m}.avg_drop"] == pytest.approx(MF.average_drop(g["score"], g["masked_score"]), abs=1e-6)
        assert metrics[f"{m}.avg_drop_pixel"] == pytest.approx(
            MF.average_drop(g["score"], g["masked_score_pixel"]), abs=1e-6)
        assert 0 <= metrics[f"{m}.deletion_auc"] <= 1 and 0 <= metrics[f"{m}.insertion_auc"] <= 1
    # ROAD on a seeded 3 of each split's subset, nested in it; combined = (LeRF − MoRF) / 2
    road = FC.read_road(paths.faithfulness_dir(B))
    assert list(road.columns) == list(FC.ROAD_COLUMNS)
    assert road.groupby("method").size().to_dict() == {m: 6 for m in METHODS}
    assert set(zip(road["split"], road["image_id"], strict=True)) <= set(
        zip(table["split"], table["image_id"], strict=True))
    np.testing.assert_allclose(road["road_combined"], (road["road_lerf"] - road["road_morf"]) / 2, atol=1e-12)
    for m in METHODS:
        assert metrics[f"{m}.road_combined"] == pytest.approx(road.loc[road["method"] == m, "road_combined"].mean(),
                                                              abs=1e-6)
    # the clean score Y is the model's, the same for every method of an image
    assert (table.groupby("image_id")["score"].nunique() == 1).all()
    curves = FC.read_faithfulness_curves(paths.faithfulness_dir(B))
    assert len(curves) == len(METHODS) * 2 * 5  # (deletion, insertion) × steps + 1 points
    start = curves[(curves["curve"] == "deletion") & (curves["fraction"] == 0)]
    assert np.allclose(start["score"], table.groupby("method")["score"].mean().reindex(start["method"]))


def test_rerun_is_identical_and_the_subset_is_seeded(project, tmp_path):
    import shutil

    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    stage.run(_params(), _paths(copy), B)
    rel = ["reports/faithfulness/tiny_gap_cnn.json", "data/faithfulness/tiny_gap_cnn/per_image.parquet",
           "data/faithfulness/tiny_gap_cnn/road.parquet"]
    for r in rel:
        assert (copy / r).read_bytes() == (project / r).read_bytes(), r
    a = stage.subset_rows(100, 10, 0, "test")
    assert np.array_equal(a, stage.subset_rows(100, 10, 0, "test")) and np.array_equal(a, np.sort(a))
    assert not np.array_equal(a, stage.subset_rows(100, 10, 1, "test"))
    assert np.array_equal(stage.subset_rows(5, 10, 0, "test"), np.arange(5))


def test_bad_inputs_are_clear_errors(project, tmp_path):
    with pytest.raises(CamlocError, match="cams.splits"):
        stage.run(_params(splits=("train",)), _paths(project), B)
    with pytest.raises(ParamsError, match="faithfulness.steps"):
        FaithfulnessParams(steps=1).validate("faithfulness")
    with pytest.raises(ParamsError, match="faithfulness.road_max_images"):
        FaithfulnessParams(road_max_images=-1).validate("faithfulness")
    with pytest.raises(CamlocError, match=r"meta.json is missing.*dvc repro cams@tiny_gap_cnn"):
        stage.run(_params(), C.Paths(prepared=project / "prepared", models=project / "models",
                                     cams=tmp_path / "nothing"), B)
