"""Issue 22, part 1: `epochs: 0` scores a released checkpoint without training (pipeline/models/layouts.py,
train@B's `_score`). A checkpoint in each layout is written from a model built with seeded weights
(torchvision's and timm's own ResNet-18, the reference's ResNet50 in its main.py layout, VGG16 in
DA-WSOL's / BagCAMs' split layout); scoring it gives
the same logits as the model it came from, and model.pt holds exactly the file's tensors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torchvision

from pipeline.catalog.layouts import LAYOUTS, LayoutInfo
from pipeline.contracts import Paths, read_classes, read_history
from pipeline.errors import CamlocError, ParamsError
from pipeline.models.layouts import bare_state
from pipeline.params import BackboneParams, Params, parse
from pipeline.stages import train
from pipeline.wsol.rebuild import load_model

SIZE = 64  # the conftest's prepared cache side


@torch.no_grad()
def _seeded(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every tensor random (BatchNorm statistics included, so eval-mode logits depend on all of them)."""
    g = torch.Generator().manual_seed(seed)
    for name, t in model.state_dict().items():
        if t.is_floating_point():
            t.copy_(torch.randn(t.shape, generator=g) * (0.1 if "weight" in name else 0.05))
            if name.endswith("running_var") or (name.endswith(".weight") and t.ndim == 1):
                t.abs_().add_(0.5)
    return model.eval()


def _score(tmp_path: Path, prepared: Path, key: str, weights: Path, **entry) -> Path:
    params = Params(seed=0, backbones={key: BackboneParams(epochs=0, weights=str(weights), pretrained=False,
                                                           image_size=SIZE, batch_size=8, workers=0, **entry)})
    models = tmp_path / "models"
    train.run(params, Paths(prepared=prepared, models=models), key)
    return models / key


def _same_logits(folder: Path, source: torch.nn.Module) -> None:
    model, _ = load_model(folder)
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=1e-4, atol=1e-5)


def _holds_exactly(folder: Path, file_state: dict) -> dict:
    meta = json.loads((folder / "meta.json").read_text())
    key_map = meta["checkpoint"]["key_map"]
    saved = torch.load(folder / "model.pt", weights_only=True)
    assert sorted(key_map) == sorted(file_state) and sorted(saved) == sorted(key_map.values())
    for theirs, ours in key_map.items():
        assert torch.equal(saved[ours].flatten(), file_state[theirs].flatten()), theirs
    return meta


def test_torchvision_state_dict_is_scored_as_it_is(tmp_path, prepared_dir, caplog):
    classes = len(read_classes(prepared_dir))
    source = _seeded(torchvision.models.resnet18(num_classes=classes))
    path = tmp_path / "tv.pth"
    torch.save(source.state_dict(), path)
    with caplog.at_level(logging.INFO, logger="pipeline"):
        folder = _score(tmp_path, prepared_dir, "resnet18", path)
    _same_logits(folder, source)
    meta = _holds_exactly(folder, source.state_dict())
    import hashlib

    assert meta["checkpoint"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["checkpoint"]["layout"] == "torchvision" and meta["checkpoint"]["keys_mapped"] == len(source.state_dict())
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["epochs"] == 0 and "val_acc" in metrics and "train_loss" not in metrics
    assert read_history(folder) is None  # no epoch was trained: no curves
    assert not any("epoch" in r.getMessage() for r in caplog.records)


def test_timm_state_dict_under_a_state_dict_entry(tmp_path, prepared_dir):
    """No timm-built backbone exists on this branch; timm's own ResNet-18 shares torchvision's key names,
    so its checkpoint (timm's train.py wraps it as {'epoch', 'arch', 'state_dict', ...}) scores as resnet18."""
    timm = pytest.importorskip("timm")
    source = _seeded(timm.create_model("resnet18", pretrained=False, num_classes=len(read_classes(prepared_dir))))
    path = tmp_path / "timm.pth.tar"
    torch.save({"epoch": 7, "arch": "resnet18", "state_dict": source.state_dict()}, path)
    folder = _score(tmp_path, prepared_dir, "resnet18", path)
    _same_logits(folder, source)
    assert _holds_exactly(folder, source.state_dict())["checkpoint"]["layout"] == "torchvision"


def test_reference_main_py_checkpoint_with_module_prefix(tmp_path, prepared_dir):
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.models.wsol_weights import build_reference, to_reference

    info = BACKBONES.get("resnet50_wsol")
    source = _seeded(build_reference(info, len(read_classes(prepared_dir))))
    theirs = {"module." + to_reference(info.trunk, k): v for k, v in source.state_dict().items()}
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "last_checkpoint.pth.tar"
    torch.save({"architecture": "resnet50", "epoch": 50, "state_dict": theirs,
                "optimizer": optimizer.state_dict()}, path)
    folder = _score(tmp_path, prepared_dir, "resnet50_wsol", path)
    _same_logits(folder, source)
    assert _holds_exactly(folder, theirs)["checkpoint"]["layout"] == "wsolevaluation"


def test_dawsol_and_bagcams_checkpoint_extractor_and_classifier(tmp_path, prepared_dir):
    """DA-WSOL's / BagCAMs' solver saves the reference's trunk and a CAMClassifier (a 1×1 conv `fc`) apart."""
    from pipeline.catalog.backbones import BACKBONES
    from pipeline.models.wsol_weights import build_reference, to_reference

    info = BACKBONES.get("vgg16_wsol")
    source = _seeded(build_reference(info, len(read_classes(prepared_dir))))
    own = source.state_dict()
    extractor = {to_reference(info.trunk, k): v for k, v in own.items() if not k.startswith("classifier.")}
    classifier = {"fc.weight": own["classifier.weight"][:, :, None, None], "fc.bias": own["classifier.bias"]}
    optimizer = torch.optim.SGD(source.parameters(), lr=0.1).state_dict()
    torch.save({"architecture": "vgg16", "epoch": 10, "state_dict_extractor": extractor,
                "optimizer_extractor": optimizer, "state_dict_classifier": classifier,
                "optimizer_classifier": optimizer}, tmp_path / "dawsol.pth.tar")
    folder = _score(tmp_path, prepared_dir, "vgg16_wsol", tmp_path / "dawsol.pth.tar")
    _same_logits(folder, source)
    flat = {f"state_dict_extractor.{k}": v for k, v in extractor.items()}
    flat |= {f"state_dict_classifier.{k}": v for k, v in classifier.items()}
    assert _holds_exactly(folder, flat)["checkpoint"]["layout"] == "dawsol"


def test_a_camloc_model_pt_scores_again_and_the_layout_can_be_named(tmp_path, prepared_dir):
    source = _seeded(torchvision.models.resnet18(num_classes=len(read_classes(prepared_dir))))
    torch.save(source.state_dict(), tmp_path / "tv.pth")
    first = _score(tmp_path / "a", prepared_dir, "resnet18", tmp_path / "tv.pth")
    again = _score(tmp_path / "b", prepared_dir, "resnet18", first / "model.pt", weights_layout="camloc_model")
    assert (again / "model.pt").read_bytes() == (first / "model.pt").read_bytes()


def test_a_wsol_method_model_is_scored_with_its_own_heads(tmp_path, prepared_dir):
    """An ACoL model (its second classifier included) of camloc's own folder layout, scored as it is."""
    from pipeline.params import WsolParams
    from pipeline.wsol.build import build_model

    wsol = parse(WsolParams, {"method": "acol"}, "wsol")
    source = _seeded(build_model("tiny_gap_cnn", len(read_classes(prepared_dir)), wsol.as_flat()))
    torch.save(source.state_dict(), tmp_path / "acol.pt")
    folder = _score(tmp_path, prepared_dir, "tiny_gap_cnn", tmp_path / "acol.pt", wsol=wsol)
    _same_logits(folder, source)
    assert _holds_exactly(folder, source.state_dict())["wsol"]["method"] == "acol"


def test_a_tscam_checkpoint_is_scored_in_its_own_layout(tmp_path, prepared_dir):
    """TS-CAM's train_cam.py layout (DataParallel `module.` keys under `state_dict`, the 3×3 conv as
    `head`) of a seeded DeiT model, scored with epochs: 0: its logits, and its tensors exactly."""
    from pipeline.params import WsolParams
    from pipeline.wsol.build import build_model

    wsol = parse(WsolParams, {"method": "tscam"}, "wsol")
    source = _seeded(build_model("vit_cpu_p8", len(read_classes(prepared_dir)), wsol.as_flat()))
    with torch.no_grad():  # TS-CAM's GAP over its class maps: camloc's frozen identity head, not seeded
        source.classifier.weight.copy_(torch.eye(source.classifier.out_features))
        source.classifier.bias.zero_()
    theirs = {}
    for k, v in source.state_dict().items():  # the identity classifier is camloc's, not in their file
        if k.startswith("features.0.vit."):
            theirs[f"module.{k.removeprefix('features.0.vit.')}"] = v.clone()
        elif k.startswith("features.1."):
            theirs[f"module.head.{k.removeprefix('features.1.')}"] = v.clone()
    torch.save({"epoch": 60, "state_dict": theirs}, tmp_path / "tscam_cub.pth")
    folder = _score(tmp_path, prepared_dir, "vit_cpu", tmp_path / "tscam_cub.pth", arch="vit_cpu_p8", wsol=wsol)
    _same_logits(folder, source)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["checkpoint"]["layout"] == "tscam"
    saved = torch.load(folder / "model.pt", weights_only=True)
    key_map = {k.removeprefix("state_dict."): v for k, v in meta["checkpoint"]["key_map"].items()}  # file paths
    assert sorted(key_map) == sorted(theirs)
    for file_key, ours in key_map.items():
        assert torch.equal(saved[ours], theirs[file_key]), file_key


def test_class_count_mismatch_is_one_line_naming_both_counts(tmp_path, prepared_dir):
    classes = len(read_classes(prepared_dir))
    torch.save(torchvision.models.resnet18(num_classes=classes + 197).state_dict(), tmp_path / "cub.pth")
    with pytest.raises(CamlocError) as e:
        _score(tmp_path, prepared_dir, "resnet18", tmp_path / "cub.pth")
    msg = str(e.value)
    assert f"has {classes + 197} classes but the dataset has {classes}" in msg and "\n" not in msg
    assert not (tmp_path / "models" / "resnet18").exists()


def test_wrong_shape_is_one_line_naming_the_keys(tmp_path, prepared_dir):
    state = torchvision.models.resnet18(num_classes=len(read_classes(prepared_dir))).state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    del state["layer4.1.bn2.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CamlocError) as e:
        _score(tmp_path, prepared_dir, "resnet18", tmp_path / "bad.pth")
    msg = str(e.value)
    assert "features.5.0.conv1.weight (128, 64, 5, 5) vs (128, 64, 3, 3)" in msg and "features.7.1.bn2.bias" in msg
    assert "bad.pth" in msg and "\n" not in msg


def test_a_named_layout_that_does_not_fit_and_an_undetectable_file(tmp_path, prepared_dir):
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    torch.save(state, tmp_path / "tv.pth")
    with pytest.raises(CamlocError, match=r"tv.pth is not in the wsolevaluation layout .*keys start bn1.bias.*"
                                          r"fix backbones.resnet18.weights_layout, or remove it") as e:
        _score(tmp_path, prepared_dir, "resnet18", tmp_path / "tv.pth", weights_layout="wsolevaluation")
    assert "\n" not in str(e.value)
    with pytest.raises(CamlocError, match=r"no checkpoint layout fits backbone tiny_gap_cnn"):
        _score(tmp_path, prepared_dir, "tiny_gap_cnn", tmp_path / "tv.pth")
    torch.save({"architecture": "resnet50", "state_dict": state}, tmp_path / "ref.pth")
    with pytest.raises(CamlocError, match=r"wsolevaluation checkpoint; it fits the reference's backbones "
                                          r"\(resnet50_wsol, vgg16_wsol, inception_v3_wsol\), not resnet18"):
        _score(tmp_path, prepared_dir, "resnet18", tmp_path / "ref.pth")
    torch.save({"something": torch.zeros(2)}, tmp_path / "odd.pth")
    with pytest.raises(CamlocError, match=r"no checkpoint layout fits backbone resnet18 .*weights_layout: "
                                          r"camloc_model \| dawsol \| torchvision \| tscam \| wsolevaluation"):
        _score(tmp_path, prepared_dir, "resnet18", tmp_path / "odd.pth")


def test_a_new_layout_is_one_register_call(tmp_path, prepared_dir, monkeypatch):
    """What the transformer layouts (TS-CAM, SCM) will do: register a card naming two functions."""
    classes = len(read_classes(prepared_dir))
    source = _seeded(torchvision.models.resnet18(num_classes=classes))
    torch.save({"model": {"net." + k: v for k, v in source.state_dict().items()}}, tmp_path / "other.pth")
    name = "test_wrapped"
    LAYOUTS.add(name, LayoutInfo(name, "a test layout", f"{__name__}:_detect_wrapped", f"{__name__}:_map_wrapped"))
    try:
        folder = _score(tmp_path, prepared_dir, "resnet18", tmp_path / "other.pth")
        _same_logits(folder, source)
        assert json.loads((folder / "meta.json").read_text())["checkpoint"]["layout"] == name
    finally:
        LAYOUTS.remove(name)


def _detect_wrapped(data, target) -> bool:
    return isinstance(data.get("model"), dict)


def _map_wrapped(data, target):
    from pipeline.models.layouts import map_torchvision

    return map_torchvision({k.removeprefix("net."): v for k, v in data["model"].items()}, target)


def test_a_plain_layout_takes_the_data_alone_and_its_key_map_comes_from_the_tensors(tmp_path, prepared_dir):
    """The shape of the transformer helper's TS-CAM functions: detect(data) and map(data) -> state."""
    classes = len(read_classes(prepared_dir))
    source = _seeded(torchvision.models.resnet18(num_classes=classes))
    folder = _score(tmp_path / "tv", prepared_dir, "resnet18", _saved(tmp_path, source.state_dict()))
    ours = torch.load(folder / "model.pt", weights_only=True)
    torch.save({"model": {"net." + k: v for k, v in ours.items()}}, tmp_path / "plain.pth")
    name = "test_plain"
    LAYOUTS.add(name, LayoutInfo(name, "a plain test layout", f"{__name__}:_detect_plain", f"{__name__}:_map_plain",
                                 plain=True))
    try:
        again = _score(tmp_path / "plain", prepared_dir, "resnet18", tmp_path / "plain.pth", weights_layout=name)
        _same_logits(again, source)
        key_map = json.loads((again / "meta.json").read_text())["checkpoint"]["key_map"]
        assert key_map == {f"model.net.{k}": k for k in ours}
    finally:
        LAYOUTS.remove(name)


def _saved(tmp_path: Path, state: dict) -> Path:
    torch.save(state, tmp_path / "source.pth")
    return tmp_path / "source.pth"


def _detect_plain(data) -> bool:
    return isinstance(data.get("model"), dict)


def _map_plain(data):
    return {k.removeprefix("net."): v for k, v in data["model"].items()}


def test_bare_state_strips_only_a_uniform_module_prefix():
    t = torch.zeros(1)
    assert bare_state({"module.a": t, "module.b": t}) == ({"a": t, "b": t}, "module.")
    assert bare_state({"module.a": t, "b": t})[1] == ""


@pytest.mark.parametrize(("entry", "match"), [
    ({"epochs": 0}, r"epochs = 0 is invalid: .*weights: <checkpoint file>"),
    ({"epochs": 0, "weights": "x.pth", "pretrained": True}, r"pretrained: false"),
    ({"epochs": 0, "weights": "x.pth", "nproc": 2, "batch_size": 32}, r"nproc = 2 is invalid: 1 with epochs: 0"),
    ({"epochs": 0, "weights": "x.pth", "weights_layout": "deit"}, r"weights_layout = 'deit' is invalid: one of "
                                                                     r"camloc_model, dawsol, torchvision, tscam, wsolevaluation"),
    ({"epochs": 2, "weights_layout": "torchvision"}, r"null unless epochs: 0"),
    ({"epochs": 0, "weights": "x.pth", "wsol": {"method": "fsl"}}, r"wsol.method = 'fsl' is invalid: one of "
                                                                    r"acol, adl, .*cam.*with epochs: 0"),
    ({"epochs": -1}, r"an integer >= 0"),
])
def test_scoring_params_are_validated(entry, match):
    with pytest.raises(ParamsError, match=match):
        parse(Params, {"backbones": {"tiny_gap_cnn": entry}}, "")
