"""Backbone registry and checkpoints: the CAM identity, output strides, weights offline, unsafe files."""

from __future__ import annotations

import inspect
import os

import pytest
import torch
import torchvision

from pipeline.errors import CamlocError
from pipeline.models import BACKBONES, build_backbone
from pipeline.models.checkpoint import load_state, save_model
from pipeline.models.weights import weights_cache_path
from pipeline.wsol.rebuild import load_model

REQUIRED = ["resnet18", "resnet50", "vgg16_gap", "mobilenet_v3_large", "efficientnet_b0", "densenet121",
            "convnext_tiny", "tiny_gap_cnn"]


def test_registry_has_the_required_backbones_with_summary_and_divisor():
    assert set(REQUIRED) <= set(BACKBONES.names())
    for name in BACKBONES.names():
        spec = BACKBONES.get(name)
        assert spec.summary and "\n" not in spec.summary
        assert spec.size_divisor in (8, 16, 32)


def test_every_catalog_entry_points_at_an_existing_builder():
    """The torch-free catalog names its builders by key; every key must exist on the torch side (the
    parametrized test below builds every registered name)."""
    from pipeline.models.backbones import SCRATCH_BASES, TRUNKS

    torchvision_archs = set(torchvision.models.list_models())
    for name in BACKBONES.names():
        info = BACKBONES.get(name)
        assert info.name == name
        if info.impl == "pipeline.models.vit:build_vit":  # timm transformers: their own builder, no trunk key
            from pipeline.models.vit import VIT_CONFIGS

            assert name in VIT_CONFIGS and info.attention and not info.trunk, name
            continue
        assert info.trunk in TRUNKS, (name, info.trunk)
        assert info.scratch_base is None or info.scratch_base in SCRATCH_BASES, (name, info.scratch_base)
        assert info.arch is None or info.arch in torchvision_archs, (name, info.arch)
        assert info.channels > 0, name
        accepted = inspect.signature(TRUNKS[info.trunk]).parameters
        assert all(o in accepted for o in info.options), (name, info.options)  # build_backbone passes them on


@pytest.mark.parametrize("name", BACKBONES.names())
def test_model_is_classifier_of_pooled_features(name):
    torch.manual_seed(0)
    model = build_backbone(name, num_classes=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = model.features(x)
        assert feats.ndim == 4 and feats.shape[:2] == (2, model.classifier.in_features)
        assert feats.shape[2:] == (32 // BACKBONES.get(name).size_divisor,) * 2
        torch.testing.assert_close(model(x), model.classifier(feats.mean((2, 3))), rtol=0, atol=1e-5)
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.out_features == 3
    assert model.classifier.in_features == BACKBONES.get(name).channels


@pytest.mark.parametrize(("arch", "stride", "side"),
                         [("resnet18", 32, 2), ("resnet18", 16, 4), ("resnet18", 8, 8), ("resnet50", 8, 8)])
def test_output_stride(arch, stride, side):
    model = build_backbone(arch, 2, output_stride=stride).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 64, 64)).shape[2:] == (side, side)


def test_unknown_name_and_option_list_the_valid_ones():
    with pytest.raises(CamlocError, match="resnet18.*tiny_gap_cnn|tiny_gap_cnn.*resnet18"):
        build_backbone("resnet19", 2)
    with pytest.raises(CamlocError, match="output_stride"):
        build_backbone("vgg16_gap", 2, output_stride=16)
    with pytest.raises(CamlocError, match="no pretrained weights"):
        build_backbone("tiny_gap_cnn", 2, pretrained=True)
    with pytest.raises(CamlocError, match="IMAGENET1K_V1"):
        build_backbone("resnet18", 2, weights="IMAGENET9K")


def test_pretrained_offline_with_empty_cache_names_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    expected = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(url)
    assert weights_cache_path(url) == expected
    # Without internet this fails fast (DNS); the 15 s socket timeout bounds a silent network.
    with pytest.raises(CamlocError) as err:
        build_backbone("resnet18", 2, pretrained=True)
    message = str(err.value)
    assert os.path.basename(url) in message and str(expected) in message and "\n" not in message
    assert not expected.exists()


def test_pretrained_reads_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    path = weights_cache_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    model = build_backbone("resnet18", 5, weights="IMAGENET1K_V1")
    torch.testing.assert_close(model.features[0].weight, reference.conv1.weight)
    torch.testing.assert_close(model.features[7][1].conv2.weight, reference.layer4[1].conv2.weight)
    assert model.classifier.out_features == 5


def test_local_weights_file(tmp_path):
    torch.manual_seed(2)
    reference = torchvision.models.resnet18()
    path = tmp_path / "mine.pth"
    torch.save(reference.state_dict(), path)
    model = build_backbone("resnet18", 4, weights=str(path))
    torch.testing.assert_close(model.features[4][0].conv1.weight, reference.layer1[0].conv1.weight)
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(CamlocError, match="bad.pth"):
        build_backbone("resnet18", 4, weights=str(tmp_path / "bad.pth"))


# --------------------------------------------------------------------------------------------------
# Checkpoints

def _meta(num_classes=3):
    return {"arch": "tiny_gap_cnn", "num_classes": num_classes, "image_size": 32,
            "mean": [0.5] * 3, "std": [0.5] * 3, "options": {}}


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(3)
    model = build_backbone("tiny_gap_cnn", 3)
    save_model(tmp_path, model, _meta())
    loaded, meta = load_model(tmp_path)
    assert meta["num_classes"] == 3 and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_checkpoint_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    save_model(tmp_path, build_backbone("tiny_gap_cnn", 3), _meta())
    torch.save({"features.0.weight": Evil()}, tmp_path / "model.pt")
    with pytest.raises(CamlocError, match=r"model\.pt was refused"):
        load_model(tmp_path)
    assert not marker.exists()


def test_corrupt_truncated_and_mismatched_checkpoints(tmp_path):
    save_model(tmp_path, build_backbone("tiny_gap_cnn", 3), _meta())
    data = (tmp_path / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CamlocError, match=r"model\.pt is corrupt"):
        load_model(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CamlocError, match=r"model\.pt is corrupt"):
        load_state(tmp_path / "model.pt")
    (tmp_path / "model.pt").unlink()  # camloc never overwrites a file it did not write (atomic.py)
    save_model(tmp_path, build_backbone("tiny_gap_cnn", 2), _meta(num_classes=3))  # head of 2, meta says 3
    with pytest.raises(CamlocError, match=r"model\.pt does not match backbone tiny_gap_cnn with 3 classes"):
        load_model(tmp_path)
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(CamlocError, match=r"meta\.json is not valid JSON"):
        load_model(tmp_path)
