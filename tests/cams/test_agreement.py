"""Our maps against independent implementations (torchcam 0.5, captum) and closed forms.

torchcam and captum are test-only dependencies. Where a library has a known bug (torchcam's Grad-CAM++
never divides by its denominator; pytorch-grad-cam zeroes batch items beyond its targets list) the
formula is checked by hand in test_cams.py instead of copying the bug.
"""

from __future__ import annotations

import pytest
import torch

from pipeline.cams import compute_maps
from pipeline.models import build_backbone

torchcam_methods = pytest.importorskip("torchcam.methods")
captum_attr = pytest.importorskip("captum.attr")

SIZE = 64


@pytest.fixture(scope="module")
def resnet18():
    torch.manual_seed(0)  # random init; output stride 16 gives 4×4 maps at 64 px
    return build_backbone("resnet18", 6, pretrained=False, output_stride=16).eval()


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    return build_backbone("tiny_gap_cnn", 6, pretrained=False).eval()


@pytest.fixture(scope="module")
def data():
    x = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    return x, [5, 0, 3]


def test_cam_is_the_weighted_sum_of_feature_channels(resnet18, data):
    x, classes = data
    with torch.no_grad():
        f = resnet18.features(x)  # (N, C, h, w)
    w = resnet18.classifier.weight.detach()  # (K, C)
    by_hand = torch.stack([(w[c][:, None, None] * f[i]).sum(0) for i, c in enumerate(classes)])
    torch.testing.assert_close(compute_maps(resnet18, x, classes, "cam"), by_hand, rtol=1e-5, atol=1e-5)


def test_cam_equals_torchcam_cam_unnormalised(resnet18, data):
    x, classes = data
    with torchcam_methods.CAM(resnet18, target_layer=resnet18.features, fc_layer=resnet18.classifier,
                              input_shape=(3, SIZE, SIZE)) as extractor:
        with torch.no_grad():
            resnet18(x)
        (theirs,) = extractor(class_idx=classes, normalized=False)
    torch.testing.assert_close(compute_maps(resnet18, x, classes, "cam"), theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method,cls", [("gradcam", "GradCAM"), ("xgradcam", "XGradCAM"),
                                        ("layercam", "LayerCAM")])
def test_gradient_methods_equal_torchcam_after_its_final_relu(resnet18, data, method, cls):
    x, classes = data
    with getattr(torchcam_methods, cls)(resnet18, target_layer=resnet18.features,
                                        input_shape=(3, SIZE, SIZE)) as extractor:
        scores = resnet18(x)
        (theirs,) = extractor(class_idx=classes, scores=scores, normalized=False)
    ours = compute_maps(resnet18, x, classes, method)
    torch.testing.assert_close(ours.clamp(min=0), theirs, rtol=1e-4, atol=1e-6)
    assert (ours < 0).any() or method == "layercam"  # raw maps really are before the ReLU


def test_gradcam_equals_captum_layer_gradcam(resnet18, data):
    x, classes = data
    theirs = captum_attr.LayerGradCam(resnet18, resnet18.features).attribute(
        x, target=classes, relu_attributions=False
    )  # (N, 1, h, w)
    torch.testing.assert_close(compute_maps(resnet18, x, classes, "gradcam"), theirs[:, 0].detach(),
                               rtol=1e-4, atol=1e-6)


def _check_cam_over_hw(model, data, method):
    x, classes = data
    cam = compute_maps(model, x, classes, "cam")
    hw = cam.shape[1] * cam.shape[2]
    assert hw > 1
    torch.testing.assert_close(compute_maps(model, x, classes, method), cam / hw, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_on_gap_linear_tiny_cnn_gradcam_and_hirescam_are_cam_over_hw(tiny, data, method):
    _check_cam_over_hw(tiny, data, method)


@pytest.mark.parametrize("method", ["gradcam", "hirescam"])
def test_on_gap_linear_resnet18_gradcam_and_hirescam_are_cam_over_hw(resnet18, data, method):
    _check_cam_over_hw(resnet18, data, method)
