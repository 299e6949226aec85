"""The few-shot baseline end to end on the shared tiny synthpets `prepared_dir`: train@B (through the
train stage's dispatch), cams@B's out-of-fold val maps, and that nothing outside val is ever read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import metrics as M
from pipeline.cams import compute_maps
from pipeline.contracts import HOLDOUT, Paths, open_maps, read_boxes, read_samples
from pipeline.datasets import loader
from pipeline.params import AugmentParams, BackboneParams, CamsParams, WsolParams
from pipeline.stages import cams, train
from pipeline.wsol.rebuild import load_fold_models, load_model

KEY, SIZE = "tiny_fsl", 64


def fsl_params(tiny_params, epochs: int = 12, folds: int = 3):
    bp = BackboneParams(arch="tiny_gap_cnn", epochs=epochs, batch_size=2, lr=0.05, head_lr_mult=1.0, image_size=SIZE,
                        workers=0, augment=AugmentParams(scale_min=0.7),
                        wsol=WsolParams.from_mapping({"method": "fsl", "fsl_folds": folds}, f"backbones.{KEY}.wsol"))
    return tiny_params(backbones={KEY: bp}, cams=CamsParams(methods=("cam", "gradcam", "center"), splits=("val", "test")))


@pytest.fixture(scope="module")
def trained(tiny_params, prepared_dir, tmp_path_factory):
    """train@tiny_fsl then cams@tiny_fsl on the shared fixture (3 classes × 2 val images)."""
    params = fsl_params(tiny_params)
    root = tmp_path_factory.mktemp("fsl")
    paths = Paths(prepared=prepared_dir, models=root / "models", cams=root / "cams")
    summary = train.run(params, paths, KEY)  # the train stage dispatches box-supervised methods to fsl
    cams.run(params, paths, KEY)
    return params, paths, summary


def _val(prepared_dir):
    rows, images = loader.load_split(prepared_dir, HOLDOUT)
    samples = read_samples(prepared_dir, ("image_id", "width", "height")).set_index("image_id")
    boxes = read_boxes(prepared_dir)
    head = boxes[boxes["kind"] == "head"]
    gt = [M.rescale_boxes(head[head["image_id"] == i][["x0", "y0", "x1", "y1"]].to_numpy(),
                          tuple(samples.loc[i, ["width", "height"]]), (SIZE, SIZE)) for i in rows["image_id"]]
    return rows, images, gt


def _maxboxacc_v2(maps, gt) -> float:
    grid = M.taus(0.01)
    ious = np.stack([M.best_ious(M.normalize_map(np.asarray(m, np.float64), (SIZE, SIZE)), g, grid)[1]
                     for m, g in zip(maps, gt, strict=True)])
    return M.max_box_acc_v2(ious)["v2"]


def test_fsl_writes_a_plain_tied_gapnet_and_its_fold_models(trained):
    params, paths, summary = trained
    folder = paths.model_dir(KEY)
    assert sorted(p.name for p in folder.iterdir()) == ["dvclive", "history.csv", "meta.json", "metrics.json",
                                                        "model.pt"]
    curves = pd.read_csv(folder / "dvclive" / "plots" / "metrics" / "val_loss.tsv", sep="\t")  # the same rows
    np.testing.assert_allclose(curves["val_loss"], pd.read_csv(folder / "history.csv")["val_loss"], rtol=1e-5)
    assert "chosen by out-of-fold MaxBoxAccV2" in summary
    model, meta = load_model(folder)  # the ordinary loader: the fold weights are left aside
    fsl = meta["fsl"]
    assert meta["wsol"]["method"] == "fsl" and meta["train_images"] == 0 and fsl["folds"] == 3
    assert fsl["target_kind"] == "head" and str(fsl["epochs"]) in fsl["cv"]
    w = model.classifier.weight
    assert w.shape[0] == 3 and torch.equal(w, w[:1].expand_as(w))  # every class row is the foreground row
    folds = load_fold_models(folder)
    assert len(folds) == 3 and not torch.equal(folds[0].classifier.weight, w)
    history = pd.read_csv(folder / "history.csv")
    assert history["epoch"].tolist() == list(range(1, fsl["epochs"] + 1))
    assert history["val_loss"].notna().all()


def test_val_maps_come_from_the_fold_that_did_not_train_on_them(trained, prepared_dir):
    params, paths, _ = trained
    model, meta = load_model(paths.model_dir(KEY))
    folds = load_fold_models(paths.model_dir(KEY))
    rows, images, _ = _val(prepared_dir)
    dumped = open_maps(paths.cams_dir(KEY), "val", "cam")
    x = loader.eval_batch(images, SIZE)
    labels = rows["label"].to_numpy()
    for i, image_id in enumerate(rows["image_id"]):
        f = meta["fsl"]["fold_of"][image_id]
        own = compute_maps(folds[f], x[i : i + 1], labels[i : i + 1], "cam")[0].numpy()
        np.testing.assert_allclose(dumped[i], own, rtol=2e-3, atol=2e-3)  # float16 on disk
        full = compute_maps(model, x[i : i + 1], labels[i : i + 1], "cam")[0].numpy()
        assert not np.allclose(dumped[i], full, rtol=2e-3, atol=2e-3)
    test_rows, test_images = loader.load_split(prepared_dir, "test")
    full = compute_maps(model, loader.eval_batch(test_images, SIZE), test_rows["label"].to_numpy(), "cam").numpy()
    np.testing.assert_allclose(open_maps(paths.cams_dir(KEY), "test", "cam"), full, rtol=2e-3, atol=2e-3)


def test_out_of_fold_val_maps_beat_the_centre_baseline(trained, prepared_dir):
    params, paths, _ = trained
    _, _, gt = _val(prepared_dir)
    fsl = _maxboxacc_v2(open_maps(paths.cams_dir(KEY), "val", "cam"), gt)
    center = _maxboxacc_v2(open_maps(paths.cams_dir(KEY), "val", "center"), gt)
    assert fsl > center, (fsl, center)


def _poison(src: Path, dst: Path, which: str) -> Path:
    """A copy of a prepared dir whose boxes (and images) outside val — or of one val image — are changed."""
    shutil.copytree(src, dst)
    samples = read_samples(dst)
    boxes = read_boxes(dst)
    images = np.load(dst / "images.npy")
    if which == "outside_val":
        outside = set(samples.loc[samples["split"] != HOLDOUT, "image_id"])
        hit = boxes["image_id"].isin(outside)
        boxes.loc[hit, ["x0", "y0"]] = 0  # every test / train / test_official box now starts at the corner
        boxes = boxes[~(hit & (boxes.index % 3 == 0))]  # and a third of them are gone
        rows = samples.loc[samples["split"] != HOLDOUT, "cache_index"].to_numpy()
        images[rows] = 255 - images[rows]  # their pixels too
    else:  # one val image's head box moves: the control that the comparison can see a change
        first = samples.loc[samples["split"] == HOLDOUT, "image_id"].iloc[0]
        hit = (boxes["image_id"] == first) & (boxes["kind"] == "head")
        boxes.loc[hit, ["x0", "y0"]] = 0
    boxes.reset_index(drop=True).to_parquet(dst / "boxes.parquet", index=False)
    np.save(dst / "images.npy", images)
    return dst


def test_fsl_never_reads_a_test_box(tiny_params, prepared_dir, tmp_path):
    """Training on a copy whose non-val boxes and images are poisoned gives byte-identical weights; the
    same poison on one val box does change them (so the comparison can fail)."""
    params = fsl_params(tiny_params, epochs=2, folds=2)

    def weights(prepared: Path, name: str) -> bytes:
        paths = Paths(prepared=prepared, models=tmp_path / name)
        train.run(params, paths, KEY)
        return (paths.model_dir(KEY) / "model.pt").read_bytes()

    clean = weights(prepared_dir, "clean")
    assert weights(_poison(prepared_dir, tmp_path / "p_out", "outside_val"), "outside") == clean
    assert weights(_poison(prepared_dir, tmp_path / "p_val", "val"), "val") != clean
