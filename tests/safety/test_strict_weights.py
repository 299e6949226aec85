"""Issue 20, item 4: `weights:` loads strictly; only the head may differ; `weights_strict: false` warns."""

from __future__ import annotations

import logging
import pickle

import pytest
import torch
import torchvision

from pipeline.errors import CamlocError
from pipeline.models.backbones import build_backbone


def _wrong_shapes(state: dict) -> dict:
    return {k: torch.zeros(*(s + 1 for s in v.shape)) if v.ndim else v for k, v in state.items()}


def test_resnet18_file_with_every_tensor_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "wrong.pth"
    torch.save(_wrong_shapes(torchvision.models.resnet18().state_dict()), path)
    with pytest.raises(CamlocError, match=r"trunk tensor\(s\) do not fit the model, only the head \(fc\)") as e:
        build_backbone("resnet18", 4, weights=str(path))
    assert "other shape 100 (" in str(e.value) and "weights_strict: false" in str(e.value) and "\n" not in str(e.value)


def test_weights_strict_false_drops_the_trunk_with_a_warning_and_its_count(tmp_path, caplog):
    path = tmp_path / "wrong.pth"
    state = torchvision.models.resnet18().state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3)
    torch.save(state, path)
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        model = build_backbone("resnet18", 4, weights=str(path), weights_strict=False)
    assert any(r.levelno == logging.WARNING and "1 trunk tensor(s)" in r.message for r in caplog.records)
    torch.testing.assert_close(model.features[0].weight, state["conv1.weight"])


def test_only_the_head_may_differ(tmp_path, caplog):
    ref = torchvision.models.resnet18(num_classes=7)
    torch.save(ref.state_dict(), tmp_path / "seven.pth")  # a 7-class head instead of 1000
    model = build_backbone("resnet18", 4, weights=str(tmp_path / "seven.pth"))
    torch.testing.assert_close(model.features[0].weight, ref.conv1.weight)


def test_all_nan_weights_are_one_line(tmp_path):
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in torchvision.models.resnet18().state_dict().items()}
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(CamlocError, match=r"tensor\(s\) hold NaN or inf") as e:
        build_backbone("resnet18", 4, weights=str(tmp_path / "nan.pth"))
    assert "\n" not in str(e.value)


class _Code:
    def __reduce__(self):
        return (print, ("ran",))


def test_pickled_weights_refusal_is_one_line_without_torch_advice(tmp_path):
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"conv1.weight": _Code()}, f)
    with pytest.raises(CamlocError) as e:
        build_backbone("resnet18", 4, weights=str(tmp_path / "evil.pth"))
    assert "\n" not in str(e.value) and "weights_only=False" not in str(e.value)
