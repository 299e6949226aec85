"""The reference's CAM models (`*_wsol`): map sizes, and logits/CAMs equal to the reference's with the same
weights, loaded either as torchvision ImageNet files or as reference checkpoints.

The reference code cannot be imported here, so its behaviour is re-derived in this file from reading
clovaai/wsolevaluation (`wsol/{resnet,vgg,inception}.py`, `main.py`), independently of pipeline.models:
torchvision modules with the reference's strides/paddings set by hand or plain functional convolutions,
and CAMs computed as its `return_cam=True` branches do. Weight files are random tensors written here.
"""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
import torchvision

from pipeline.cams import compute_maps
from pipeline.errors import CamlocError
from pipeline.models import BACKBONES, build_backbone

WSOL = ("resnet50_wsol", "vgg16_wsol", "inception_v3_wsol")
SIDE = 64  # small inputs keep these tests fast; the arithmetic is the same as at 224


@pytest.mark.parametrize("name", WSOL)
@pytest.mark.parametrize(("large", "side"), [(False, 14), (True, 28)])
def test_map_size_at_224(name, large, side):
    torch.manual_seed(0)
    model = build_backbone(name, 3, large_feature_map=large).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 224, 224)).shape[2:] == (side, side)
    assert BACKBONES.get(name).options == ("large_feature_map",)


# --------------------------------------------------------------------------------------------------
# Random weights in torchvision's key layout (what `load_url(model_urls[...])` returns)


def _randomise_batchnorm(model: torch.nn.Module, gen: torch.Generator) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
            elif isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and m.bias is not None:
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=gen))


def torchvision_state(arch: str, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    if arch == "vgg16":  # the real file's 120M-parameter classifier is dropped by name: small stand-ins will do
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
        state = {f"features.{k}": v for k, v in features.state_dict().items()}
        return state | {f"classifier.{i}.{p}": torch.randn(4, 4) for i in (0, 3, 6) for p in ("weight", "bias")}
    kwargs = {"aux_logits": True, "init_weights": True} if arch == "inception_v3" else {}
    model = torchvision.models.get_model(arch, weights=None, **kwargs)
    _randomise_batchnorm(model, torch.Generator().manual_seed(seed))
    return {k: v.clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------------------------------
# The reference models, re-derived: (state dict in the reference's key names, x, labels) → (logits, cams)

VGG_CAM_CFG = {  # wsol/vgg.py configs_dict['cam']
    False: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    True: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, 512, 512, 512],
}


def vgg_reference_conv_keys(large: bool) -> list[int]:
    """Indices of make_layers(cfg)'s convs: each conv is followed by a ReLU, each 'M' is one module."""
    out, i = [], 0
    for v in VGG_CAM_CFG[large]:
        if v == "M":
            i += 1
        else:
            out.append(i)
            i += 2
    return out


def reference_resnet50(sd: dict, x, labels, large: bool):
    num_classes = sd["fc.weight"].shape[0]
    net = torchvision.models.resnet50(weights=None, num_classes=num_classes)
    net.load_state_dict(sd)
    for layer in [net.layer4] + ([net.layer3] if large else []):  # ResNetCam: stride 1, dilation 1
        layer[0].conv2.stride, layer[0].downsample[0].stride = (1, 1), (1, 1)
        assert layer[0].conv2.dilation == (1, 1)
    net.eval()
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        h = net.layer4(net.layer3(net.layer2(net.layer1(h))))
        logits = net.fc(h.mean((2, 3)))
        w = net.fc.weight[labels]
        cams = (w.view(*h.shape[:2], 1, 1) * h).mean(1)
    return logits, cams


def reference_vgg16(sd: dict, x, labels, large: bool):
    h, convs = x, iter(vgg_reference_conv_keys(large))
    with torch.no_grad():
        for v in VGG_CAM_CFG[large]:
            if v == "M":
                h = F.max_pool2d(h, 2, 2)
            else:
                i = next(convs)
                h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
        h = F.relu(F.conv2d(h, sd["conv6.weight"], sd["conv6.bias"], padding=1))
        logits = F.linear(h.mean((2, 3)), sd["fc.weight"], sd["fc.bias"])
        w = sd["fc.weight"][labels]
        cams = (w.view(*h.shape[:2], 1, 1) * h).mean(1)
    return logits, cams


def reference_inception_v3(sd: dict, x, labels, large: bool):
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    trunk = {k: v for k, v in sd.items() if not k.startswith("SPG_")}
    missing = net.load_state_dict(trunk, strict=False).missing_keys
    assert all(k.startswith(("Mixed_7", "fc.")) for k in missing), missing
    net.Conv2d_1a_3x3.conv.padding = (1, 1)
    m6a = net.Mixed_6a
    for conv in (m6a.branch3x3.conv, m6a.branch3x3dbl_3.conv):
        conv.stride, conv.padding = (1, 1), (1, 1)
    net.eval()
    with torch.no_grad():
        h = net.Conv2d_2b_3x3(net.Conv2d_2a_3x3(net.Conv2d_1a_3x3(x)))
        h = F.max_pool2d(h, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        h = net.Conv2d_4a_3x3(net.Conv2d_3b_1x1(h))
        h = F.max_pool2d(h, kernel_size=3, stride=2, padding=1, ceil_mode=True)
        h = net.Mixed_5d(net.Mixed_5c(net.Mixed_5b(h)))
        if not large:
            h = F.max_pool2d(h, kernel_size=3, stride=2, ceil_mode=True)
        h = torch.cat([m6a.branch3x3(h), m6a.branch3x3dbl_3(m6a.branch3x3dbl_2(m6a.branch3x3dbl_1(h))),
                       F.max_pool2d(h, kernel_size=3, stride=1, padding=1)], 1)
        h = net.Mixed_6e(net.Mixed_6d(net.Mixed_6c(net.Mixed_6b(h))))
        h = F.relu(F.conv2d(h, sd["SPG_A3_1b.0.weight"], sd["SPG_A3_1b.0.bias"], padding=1))
        h = F.relu(F.conv2d(h, sd["SPG_A3_2b.0.weight"], sd["SPG_A3_2b.0.bias"], padding=1))
        feat_map = F.conv2d(h, sd["SPG_A4.weight"], sd["SPG_A4.bias"])
        logits = feat_map.mean((2, 3))
        cams = feat_map[torch.arange(len(labels)), labels]
    return logits, cams


REFERENCE = {"resnet50_wsol": reference_resnet50, "vgg16_wsol": reference_vgg16,
             "inception_v3_wsol": reference_inception_v3}
ARCH = {"resnet50_wsol": "resnet50", "vgg16_wsol": "vgg16", "inception_v3_wsol": "inception_v3"}


def reference_checkpoint_state(name: str, large: bool, num_classes: int, seed: int = 1) -> dict:
    """A state dict in the reference's own key names for its `cam` model, with random tensors."""
    gen = torch.Generator().manual_seed(seed + 100)
    tv = torchvision_state(ARCH[name], seed)
    if name == "resnet50_wsol":  # ResNetCam's attributes are torchvision's: conv1, bn1, layer1..4, fc
        sd = {k: v for k, v in tv.items() if not k.startswith("fc.")}
        sd["fc.weight"] = 0.05 * torch.randn(num_classes, 2048, generator=gen)
    elif name == "vgg16_wsol":  # VggCam: features (make_layers), conv6, fc
        tv_convs = sorted({int(k.split(".")[1]) for k in tv if k.startswith("features.")})
        sd = {}
        for ours, theirs in zip(vgg_reference_conv_keys(large), tv_convs, strict=True):
            for p in ("weight", "bias"):
                sd[f"features.{ours}.{p}"] = tv[f"features.{theirs}.{p}"]
        sd["conv6.weight"] = torch.randn(1024, 512, 3, 3, generator=gen) * (2 / (9 * 1024)) ** 0.5
        sd["conv6.bias"] = 0.05 * torch.randn(1024, generator=gen)
        sd["fc.weight"] = 0.05 * torch.randn(num_classes, 1024, generator=gen)
    else:  # InceptionCam: torchvision's stem and Mixed_5b..6e names, SPG_A3_1b.0, SPG_A3_2b.0, SPG_A4
        sd = {k: v for k, v in tv.items() if not k.startswith(("Mixed_7", "AuxLogits", "fc."))}
        sd["SPG_A3_1b.0.weight"] = torch.randn(1024, 768, 3, 3, generator=gen) * (2 / (9 * 768)) ** 0.5
        sd["SPG_A3_1b.0.bias"] = 0.05 * torch.randn(1024, generator=gen)
        sd["SPG_A3_2b.0.weight"] = torch.randn(1024, 1024, 3, 3, generator=gen) * (2 / (9 * 1024)) ** 0.5
        sd["SPG_A3_2b.0.bias"] = 0.05 * torch.randn(1024, generator=gen)
        sd["SPG_A4.weight"] = 0.05 * torch.randn(num_classes, 1024, 1, 1, generator=gen)
    head = "SPG_A4" if name == "inception_v3_wsol" else "fc"
    sd[f"{head}.bias"] = 0.1 * torch.randn(num_classes, generator=gen)
    return sd


def write_reference_checkpoint(path, name: str, sd: dict, architecture: str | None = None, **extra) -> None:
    """What the reference's `Trainer._torch_save_model` writes, with a real SGD state in `optimizer`."""
    params = [torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(2))]
    opt = torch.optim.SGD([{"params": params[:1], "lr": 0.01}, {"params": params[1:], "lr": 0.1}],
                          momentum=0.9, weight_decay=1e-4, nesterov=True)
    sum(p.sum() for p in params).backward()
    opt.step()
    torch.save({"architecture": architecture or ARCH[name], "epoch": 50, "state_dict": sd,
                "optimizer": opt.state_dict(), **extra}, path)


def _inputs(n: int = 2, num_classes: int = 6, seed: int = 3):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, SIDE, SIDE, generator=gen), torch.randint(0, num_classes, (n,), generator=gen)


def _assert_same_model(model, sd, name, large, x, labels):
    ref_logits, ref_cams = REFERENCE[name](sd, x, labels, large)
    with torch.no_grad():
        logits = model.eval()(x)
    scale = ref_logits.abs().max().item()
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4 * scale)
    ours = compute_maps(model, x, labels, "cam")
    assert ours.shape == ref_cams.shape
    cam_scale = ref_cams.abs().max().item()
    if name == "inception_v3_wsol":  # its CAM is the 1×1 conv output: ours (no bias) + the class's bias
        bias = model.classifier.bias[labels].view(-1, 1, 1)
        torch.testing.assert_close(ours + bias, ref_cams, rtol=1e-4, atol=1e-4 * cam_scale)
    else:  # the reference averages over channels where CAM sums: a positive factor of 1/C
        torch.testing.assert_close(ours / model.classifier.in_features, ref_cams, rtol=1e-4, atol=1e-4 * cam_scale)
    flat_ours, flat_ref = ours.flatten(1), ref_cams.flatten(1)  # and min–max normalised they are equal
    lo, hi = flat_ours.min(1, keepdim=True)[0], flat_ours.max(1, keepdim=True)[0]
    rlo, rhi = flat_ref.min(1, keepdim=True)[0], flat_ref.max(1, keepdim=True)[0]
    torch.testing.assert_close((flat_ours - lo) / (hi - lo), (flat_ref - rlo) / (rhi - rlo), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", WSOL)
@pytest.mark.parametrize("large", [False, True])
def test_reference_checkpoint_reproduces_logits_and_cams(tmp_path, name, large):
    sd = reference_checkpoint_state(name, large, num_classes=6)
    path = tmp_path / "last_checkpoint.pth.tar"
    write_reference_checkpoint(path, name, sd)
    model = build_backbone(name, 6, weights=str(path), large_feature_map=large)
    x, labels = _inputs()
    _assert_same_model(model, sd, name, large, x, labels)


@pytest.mark.parametrize("name", WSOL)
def test_imagenet_weights_map_into_the_trunk_as_the_reference_loads_them(tmp_path, monkeypatch, name):
    """torchvision's file layout, read from the hub cache by name; what the reference leaves at its init
    (VGG conv6/fc, Inception SPG_A3_*/SPG_A4, ResNet fc off ImageNet) is taken from our model."""
    from pipeline.models.weights import weights_cache_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    tv = torchvision_state(ARCH[name], seed=4)
    weights = torchvision.models.get_model_weights(ARCH[name])["IMAGENET1K_V1"]
    cache = weights_cache_path(weights.url)
    cache.parent.mkdir(parents=True)
    torch.save(tv, cache)
    large = name == "vgg16_wsol"  # VGG's 28×28 variant renumbers the convs after the dropped pool4
    model = build_backbone(name, 6, pretrained=True, large_feature_map=large)
    own = model.state_dict()
    sd = reference_checkpoint_state(name, large, num_classes=6, seed=4)  # trunk tensors = tv (same seed)
    if name == "vgg16_wsol":
        for k in ("conv6.weight", "conv6.bias"):
            sd[k] = own["features." + k]
    elif name == "inception_v3_wsol":
        for k in ("SPG_A3_1b.0.weight", "SPG_A3_1b.0.bias", "SPG_A3_2b.0.weight", "SPG_A3_2b.0.bias"):
            sd[k] = own["features." + k]
    head = "SPG_A4" if name == "inception_v3_wsol" else "fc"
    sd[f"{head}.weight"] = own["classifier.weight"].reshape(sd[f"{head}.weight"].shape)
    sd[f"{head}.bias"] = own["classifier.bias"]
    assert own["classifier.bias"].abs().max() == 0  # the head was not loaded: it is at the reference's init
    x, labels = _inputs(seed=5)
    _assert_same_model(model, sd, name, large, x, labels)


def test_imagenet_resnet50_keeps_fc_for_1000_classes_and_dilated_resnet50_differs(tmp_path):
    """The reference keeps fc on ILSVRC; and our `resnet50` at output_stride 16 dilates layer4: other logits."""
    tv = torchvision_state("resnet50", seed=6)
    path = tmp_path / "resnet50.pth"
    torch.save(tv, path)
    x, labels = _inputs(n=1, num_classes=1000, seed=7)
    model = build_backbone("resnet50_wsol", 1000, weights=str(path))
    _assert_same_model(model, tv, "resnet50_wsol", False, x, labels)
    dilated = build_backbone("resnet50", 1000, weights=str(path), output_stride=16).eval()
    with torch.no_grad():
        ref, ours_dilated = model.eval()(x), dilated(x)
        assert dilated.features(x).shape == model.features(x).shape  # same map size, other arithmetic
    assert (ours_dilated - ref).abs().max() > 1e-2 * ref.abs().max()


# --------------------------------------------------------------------------------------------------
# Clear errors


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "vgg.pth.tar"
    write_reference_checkpoint(path, "vgg16_wsol", reference_checkpoint_state("vgg16_wsol", False, 6),
                               architecture="vgg16")
    with pytest.raises(CamlocError, match=r"architecture 'vgg16'.*resnet50_wsol.*set arch: vgg16_wsol"):
        build_backbone("resnet50_wsol", 6, weights=str(path))


def test_checkpoint_without_architecture_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": reference_checkpoint_state("resnet50_wsol", False, 6), "epoch": 3}, path)
    with pytest.raises(CamlocError, match=r"no 'architecture' entry"):
        build_backbone("resnet50_wsol", 6, weights=str(path))


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = reference_checkpoint_state("resnet50_wsol", False, 6)
    del sd["layer4.2.conv3.weight"]
    sd["SPG_B_1a.0.weight"] = torch.zeros(1)
    path = tmp_path / "ckpt.pth.tar"
    write_reference_checkpoint(path, "resnet50_wsol", sd)
    with pytest.raises(CamlocError) as err:
        build_backbone("resnet50_wsol", 6, weights=str(path))
    message = str(err.value)
    assert "layer4.2.conv3.weight" in message and "SPG_B_1a.0.weight" in message and str(path) in message
    assert "another WSOL method" in message


def test_vgg_checkpoint_of_the_other_map_size_says_so(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    write_reference_checkpoint(path, "vgg16_wsol", reference_checkpoint_state("vgg16_wsol", True, 6))
    with pytest.raises(CamlocError, match=r"missing .*features\.24\.weight.*large_feature_map: true puts them"):
        build_backbone("vgg16_wsol", 6, weights=str(path), large_feature_map=False)


def test_class_count_mismatch_is_named(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    write_reference_checkpoint(path, "inception_v3_wsol", reference_checkpoint_state("inception_v3_wsol", False, 6))
    with pytest.raises(CamlocError, match=r"SPG_A4\.weight .*the checkpoint has 6 classes, the dataset 4"):
        build_backbone("inception_v3_wsol", 4, weights=str(path))


def test_pickle_with_objects_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "ckpt.pth.tar"
    write_reference_checkpoint(path, "resnet50_wsol", reference_checkpoint_state("resnet50_wsol", False, 6),
                               args=argparse.Namespace(lr=0.01))
    with pytest.raises(CamlocError) as err:
        build_backbone("resnet50_wsol", 6, weights=str(path))
    message = str(err.value)
    assert "was refused" in message and "weights_only" in message and "torch.save" in message and "\n" not in message
