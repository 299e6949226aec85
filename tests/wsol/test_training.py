"""Every label-supervised WSOL method trains tiny_gap_cnn through the train stage, and its checkpoint
rebuilds with the right heads so that every map method runs on it (cams@B)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from pipeline.cams import compute_maps
from pipeline.catalog.methods import METHODS
from pipeline.catalog.pgc import PREFIX
from pipeline.catalog.pgc import spec as pgc_spec
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.datasets import loader as imagecache
from pipeline.models import BACKBONES
from pipeline.params import Params, WsolParams
from pipeline.wsol.acol import AcolNet
from pipeline.wsol.adl import ADL
from pipeline.wsol.rebuild import load_model
from tests.stages.test_train_stage import SIZE, run_train, train_params, write_prepared

# the label-supervised methods a CNN can take (tscam needs a transformer's attention: tests/models/test_vit.py)
LABEL_METHODS = [m for m in WSOL_METHODS.names() if WSOL_METHODS.get(m).supervision == "labels"
                 and all(getattr(BACKBONES.get("tiny_gap_cnn"), field) for field, _ in WSOL_METHODS.get(m).hooks)]


def wsol_params(method: str, **kw) -> Params:
    base = train_params(wsol=WsolParams.from_mapping({"method": method}, "wsol"), **kw)
    return base


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("colours") / "prepared")


@pytest.mark.slow  # 3-30 s per method on 2 cores; the fast per-method smoke is in test_mechanisms.py
@pytest.mark.parametrize("method", LABEL_METHODS)
def test_each_method_learns_the_colour_squares(method, colours, tmp_path):
    """The suite's learning bar (tests/stages/test_train_stage.py): >= 75% val accuracy in 3 epochs, then
    the checkpoint rebuilds the method's model, reproduces that accuracy and every map method runs on it."""
    out = tmp_path / "models" / "tiny_gap_cnn"
    run_train(wsol_params(method), colours, out)
    history = pd.read_csv(out / "history.csv")
    assert history["val_acc"].iloc[-1] >= 75.0, (method, history.to_dict("list"))
    meta = json.loads((out / "meta.json").read_text())
    assert meta["wsol"] == {"method": method, **WSOL_METHODS.get(method).defaults}
    model, _ = load_model(out)
    assert isinstance(model, AcolNet) == (method == "acol")
    assert any(isinstance(m, ADL) for m in model.modules()) == (method == "adl")
    rows, images = imagecache.load_split(colours, "val")
    batch = imagecache.eval_batch(images, SIZE)
    with torch.no_grad():
        pred = model(batch).argmax(1).numpy()
    assert 100.0 * (pred == rows["label"].to_numpy()).mean() == pytest.approx(history["val_acc"].iloc[-1], abs=1e-3)
    classes = torch.as_tensor(rows["label"].to_numpy())
    for name in METHODS.names():
        if not METHODS.get(name).runs_on(BACKBONES.get("tiny_gap_cnn")):
            continue  # attention methods on a CNN: refused (tests/models/test_vit.py)
        if name == "scorecam":
            maps = compute_maps(model, batch[:2], classes[:2], name, chunk=64)
        else:
            maps = compute_maps(model, batch, classes, name)
        side = SIZE if name.startswith(PREFIX) and pgc_spec(name).input_resolution else SIZE // 8  # pgc.fullgrad
        assert maps.shape[-2:] == (side, side) and torch.isfinite(maps).all(), (method, name)


def test_acol_cam_is_the_max_of_its_two_branches(colours, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"
    run_train(wsol_params("acol", epochs=1), colours, out)
    model, _ = load_model(out)
    _, images = imagecache.load_split(colours, "val")
    batch, classes = imagecache.eval_batch(images, SIZE), torch.zeros(len(images), dtype=torch.long)
    maps = compute_maps(model, batch, classes, "cam")
    with torch.no_grad():
        assert torch.allclose(maps, model.cam_maps(model.features(batch), classes))
    assert maps.flatten(1).amax(1).allclose(torch.ones(len(images)))  # max of two [0, 1] maps


def test_a_plain_checkpoint_without_wsol_in_meta_loads_as_cam(colours, tmp_path):
    out = tmp_path / "models" / "tiny_gap_cnn"
    run_train(wsol_params("cam", epochs=1), colours, out)
    meta = json.loads((out / "meta.json").read_text())
    del meta["wsol"]  # written before WSOL methods existed
    (out / "meta.json").write_text(json.dumps(meta))
    model, _ = load_model(out)
    assert type(model).__name__ == "GapNet"


def test_synthpets_fixture_smoke(prepared_dir, tmp_path):
    """The shared synthpets fixture trains with a trunk-changing method (adl) through the stage."""
    params = wsol_params("adl", epochs=1)
    params = Params(prepare=params.prepare.__class__(cache_size=64), backbones={
        "tiny_gap_cnn": params.backbones["tiny_gap_cnn"].__class__(
            **{**params.backbones["tiny_gap_cnn"].__dict__, "image_size": 64})})
    out = tmp_path / "models" / "tiny_gap_cnn"
    assert "val accuracy" in run_train(params, prepared_dir, out)
    assert json.loads((out / "meta.json").read_text())["wsol"]["method"] == "adl"
