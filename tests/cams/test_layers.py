"""Maps at any trunk layer (`cams.layers`): inner-layer maps against pytorch-grad-cam at the same module,
the default (last layer) unchanged, layercam_fused's rule, and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.cams import compute_maps, forward_batch
from pipeline.cams.compute import maps_for_batch
from pipeline.cams.dump import batch_maps
from pipeline.cams.layers import at_layer, check_layers, layercam_fused
from pipeline.errors import CamlocError, ParamsError
from pipeline.models import build_backbone
from pipeline.params import BackboneParams, CamsParams, MapJob, Params, check_names

pgc = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.image import scale_cam_image  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return build_backbone("tiny_gap_cnn", 6).eval()


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return build_backbone("resnet18", 6, output_stride=16).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


def _library(model, module, x, classes, cls="GradCAM"):
    cam = getattr(pgc, cls)(model, target_layers=[module])
    try:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    finally:
        cam.activations_and_grads.release()


def _post(raw):
    return scale_cam_image(np.maximum(scale_cam_image(np.maximum(raw, 0), (SIZE, SIZE)), 0))


@pytest.mark.parametrize("method,cls", [("gradcam", "GradCAM"), ("layercam", "LayerCAM"), ("eigencam", "EigenCAM")])
def test_inner_layer_maps_equal_the_library_at_that_module(tiny, x, method, cls):
    """Sequential trunk, top-level path: the rest of the trunk runs as its suffix."""
    classes = [5, 0, 3]
    batch = at_layer(forward_batch(tiny, x), "11")  # the ReLU after the 4th conv: 16×16 at 64 px
    raw = maps_for_batch(batch, classes, method).numpy()
    assert raw.shape == (3, 16, 16)
    theirs = _library(tiny, tiny.features[11], x, classes, cls)
    if method == "eigencam":  # the SVD sign (test_pgc.py): either sign matches
        raw = np.where(np.abs(_post(raw) - theirs).max((1, 2), keepdims=True) < 1e-5, raw, -raw)
    np.testing.assert_allclose(_post(raw), theirs, atol=1e-5)


def test_nested_layer_path_equals_the_library_at_that_module(resnet, x):
    """A path inside a block ("6.0": layer3's first block): the output is replaced by a hook."""
    classes = [1, 2, 4]
    raw = maps_for_batch(at_layer(forward_batch(resnet, x), "6.0"), classes, "gradcam").numpy()
    theirs = _library(resnet, resnet.features.get_submodule("6.0"), x, classes)
    np.testing.assert_allclose(_post(raw), theirs, atol=1e-5)


def test_default_layers_keep_todays_rows(tiny, x):
    cp = CamsParams(methods=("cam", "gradcam", "eigencam", "center"))
    assert [j.name for j in cp.jobs("tiny_gap_cnn")] == list(cp.methods)
    batch = forward_batch(tiny, x)
    labels, pred = torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3])
    by_name = batch_maps(batch, labels, pred, cp.methods, 8)
    by_job = batch_maps(batch, labels, pred, cp.jobs("tiny_gap_cnn"), 8)
    assert by_name.keys() == by_job.keys()
    for k in by_name:
        np.testing.assert_array_equal(by_name[k], by_job[k])


def test_layers_per_method_win_over_per_backbone():
    cp = CamsParams(methods=("cam", "gradcam", "layercam", "layercam_fused"),
                    layers={"tiny_gap_cnn": ("11", "last"), "layercam": ("14",)})
    assert [j.name for j in cp.jobs("tiny_gap_cnn")] == ["cam", "gradcam@11", "gradcam", "layercam@14",
                                                         "layercam_fused"]
    assert cp.jobs("tiny_gap_cnn")[-1] == MapJob("layercam_fused", "layercam_fused", layers=("11", "last"))
    assert [j.name for j in cp.jobs("other")] == ["cam", "gradcam", "layercam@14", "layercam_fused"]


def test_two_layer_dump_stores_both_rows_with_their_own_resolution(tiny, x):
    jobs = CamsParams(methods=("gradcam",), layers={"gradcam": ("5", "last")}).jobs("b")
    got = batch_maps(forward_batch(tiny, x), torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3]), jobs, 8)
    assert got[("gradcam@5", "gt")].shape == (3, 32, 32) and got[("gradcam", "gt")].shape == (3, 8, 8)
    np.testing.assert_array_equal(got[("gradcam", "gt")], compute_maps(tiny, x, [1, 2, 3], "gradcam").numpy())
    assert not np.array_equal(got[("gradcam@5", "pred")][1], got[("gradcam@5", "gt")][1])  # row 1 misclassified


def test_layercam_fused_follows_the_papers_rule(tiny, x):
    classes = torch.tensor([5, 0, 3])
    batch = forward_batch(tiny, x)
    fused = layercam_fused(batch, classes, layers=("11", "last"))
    by_hand = []
    for la in ("11", "last"):
        m = maps_for_batch(at_layer(batch, la), classes, "layercam").clamp(min=0)
        m = torch.tanh(2 * m / m.flatten(1).amax(1).view(-1, 1, 1))
        by_hand.append(F.interpolate(m[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0])
    torch.testing.assert_close(fused, torch.maximum(*by_hand))
    assert fused.shape == (3, 16, 16) and float(fused.max()) <= 1.0


def test_unknown_layer_lists_the_valid_paths(tiny):
    with pytest.raises(CamlocError) as e:
        check_layers(tiny, ["last", "99"], "params.yaml cams.layers for tiny_gap_cnn")
    msg = str(e.value)
    assert "\n" not in msg and "'99'" in msg and "valid paths: last, 0, 1, 2" in msg and "17" in msg


@pytest.mark.parametrize("layers,key", [({"nope": ("11",)}, "cams.layers.nope"),
                                        ({"gradcam": ("a@b",)}, "cams.layers.gradcam"),
                                        ({"cam": ("11",)}, "cams.layers.cam")])
def test_bad_layers_params_name_the_key(layers, key):
    params = Params(backbones={"tiny_gap_cnn": BackboneParams()}, cams=CamsParams(methods=("cam", "gradcam")))
    with pytest.raises(ParamsError) as e:
        from dataclasses import replace

        cp = replace(params.cams, layers=layers)
        cp.validate("cams")
        check_names(replace(params, cams=cp))
    assert key in str(e.value)


def test_pgc_at_an_inner_layer_hooks_that_module(tiny, x):
    classes = [5, 0, 3]
    ours = maps_for_batch(at_layer(forward_batch(tiny, x), "11"), classes, "pgc.gradcam").numpy()
    assert ours.shape == (3, 16, 16)
    native = _library(tiny, tiny.features[11], x, classes)  # the library's own call, upsampled to 64 px
    np.testing.assert_allclose(scale_cam_image(scale_cam_image(ours, (SIZE, SIZE))), native, atol=1e-5)
