"""The reference's CAM architectures (torch), for train@B and cams@B: `resnet50_wsol`, `vgg16_wsol` and
`inception_v3_wsol`, layer for layer the `cam` models of Choe et al.'s wsolevaluation (`wsol/resnet.py`,
`wsol/vgg.py`, `wsol/inception.py`), rebuilt as GapNet trunks so every map method works on them.

What the reference changes from the torchvision ImageNet models, and so what these trunks do:

- ResNet50: layer4's first block has stride 1 and NO dilation (our `resnet50` at output_stride 16 dilates
  layer4's 3×3 convs, which gives other logits with the same weights); `large_feature_map` also sets
  layer3's stride to 1. Map side at 224 px: 14, or 28.
- VGG16: no pool5, then a 3×3 conv to 1024 channels and a ReLU ("conv6"); `large_feature_map` also drops
  pool4. Map side: 14, or 28.
- InceptionV3: the first conv padded by 1, both stem max-pools padded and ceil-rounded, the pool after
  Mixed_5d skipped with `large_feature_map`, Mixed_6a at stride 1 (padding 1), everything after Mixed_6e
  dropped, then two 3×3 convs to 1024 (+ReLU, dropout 0.5 before each and after the second) and a 1×1
  conv to the classes (`SPG_A4`). That 1×1 conv followed by average pooling equals a linear layer on the
  pooled features, so it becomes our `classifier`. Map side: 14, or 28.

Initialisation follows the reference's `initialize_weights`: xavier-uniform convs for ResNet50 and
InceptionV3, He (fan-out) convs for VGG16, BatchNorm 1/0, linear heads N(0, 0.01) (InceptionV3's head is
a conv there, so xavier). Pretrained trunks are loaded on top by `models.wsol_weights`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

# VGG16 conv widths per stage; the reference keeps pool1..pool3 always, pool4 only for 14×14 maps, never pool5.
_VGG16_STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def vgg16_cam_config(large_feature_map: bool) -> list[int | str]:
    """The reference's `configs_dict['cam']` layout: conv widths and 'M' (2×2 max-pool) in order."""
    cfg: list[int | str] = []
    for stage, widths in enumerate(_VGG16_STAGES):
        cfg += list(widths)
        if stage < 3 or (stage == 3 and not large_feature_map):
            cfg.append("M")
    return cfg


def vgg16_conv_indices(large_feature_map: bool) -> list[int]:
    """Indices of the 13 convs inside the reference's `features` Sequential (conv+ReLU pairs, pools)."""
    indices, i = [], 0
    for v in vgg16_cam_config(large_feature_map):
        if v == "M":
            i += 1
        else:
            indices.append(i)
            i += 2
    return indices


def resnet50_trunk(_: None = None, large_feature_map: bool = False) -> nn.Module:
    import torchvision  # lazily: ~2 s per stage that builds no torchvision model (models.backbones)

    m = torchvision.models.resnet50(weights=None)
    layers = [m.layer4] + ([m.layer3] if large_feature_map else [])
    for layer in layers:  # stride 1 in the first block's 3×3 conv and its shortcut; dilation stays 1
        layer[0].conv2.stride = (1, 1)
        layer[0].downsample[0].stride = (1, 1)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
    return nn.Sequential(OrderedDict((n, getattr(m, n)) for n in names))


def vgg16_trunk(_: None = None, large_feature_map: bool = False) -> nn.Module:
    layers: list[nn.Module] = []
    cin = 3
    for v in vgg16_cam_config(large_feature_map):
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            cin = v
    return nn.Sequential(OrderedDict(
        vgg=nn.Sequential(*layers),
        conv6=nn.Conv2d(512, 1024, kernel_size=3, padding=1),
        relu6=nn.ReLU(inplace=False),
    ))


class Mixed6aStride1(nn.Module):
    """The reference's Mixed_6a: torchvision's InceptionB at stride 1 with padding 1 (size kept, 768 out)."""

    def __init__(self, in_channels: int = 288):
        from torchvision.models.inception import BasicConv2d  # lazily, as in resnet50_trunk

        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=1, padding=1)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), dbl, self.pool(x)], 1)


def _conv_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel_size=3, padding=1), nn.ReLU(inplace=True))


def inception_v3_trunk(_: None = None, large_feature_map: bool = False) -> nn.Module:
    from torchvision.models.inception import (  # lazily, as in resnet50_trunk
        BasicConv2d,
        InceptionA,
        InceptionC,
    )

    layers: list[tuple[str, nn.Module]] = [
        ("Conv2d_1a_3x3", BasicConv2d(3, 32, kernel_size=3, stride=2, padding=1)),
        ("Conv2d_2a_3x3", BasicConv2d(32, 32, kernel_size=3)),
        ("Conv2d_2b_3x3", BasicConv2d(32, 64, kernel_size=3, padding=1)),
        ("pool1", nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ("Conv2d_3b_1x1", BasicConv2d(64, 80, kernel_size=1)),
        ("Conv2d_4a_3x3", BasicConv2d(80, 192, kernel_size=3)),
        ("pool2", nn.MaxPool2d(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
        ("Mixed_5b", InceptionA(192, pool_features=32)),
        ("Mixed_5c", InceptionA(256, pool_features=64)),
        ("Mixed_5d", InceptionA(288, pool_features=64)),
    ]
    if not large_feature_map:
        layers.append(("pool3", nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)))
    layers += [
        ("Mixed_6a", Mixed6aStride1(288)),
        ("Mixed_6b", InceptionC(768, channels_7x7=128)),
        ("Mixed_6c", InceptionC(768, channels_7x7=160)),
        ("Mixed_6d", InceptionC(768, channels_7x7=160)),
        ("Mixed_6e", InceptionC(768, channels_7x7=192)),
        ("drop1", nn.Dropout(0.5)),
        ("SPG_A3_1b", _conv_relu(768, 1024)),
        ("drop2", nn.Dropout(0.5)),
        ("SPG_A3_2b", _conv_relu(1024, 1024)),
        ("drop3", nn.Dropout(0.5)),
    ]
    return nn.Sequential(OrderedDict(layers))


# BackboneInfo.trunk → builder, merged into models.backbones.TRUNKS (same call shape: base, **options).
REFERENCE_TRUNKS: dict[str, Callable[..., nn.Module]] = {
    "wsol_resnet50": resnet50_trunk, "wsol_vgg16": vgg16_trunk, "wsol_inception_v3": inception_v3_trunk,
}
# What the reference's main.py trains at lr × lr_classifier_ratio (its _FEATURE_PARAM_LAYER_PATTERNS, read
# the other way round for VGG16/InceptionV3): ResNet50's layer4 and fc, VGG16's conv6 and fc, InceptionV3's
# SPG_A3_* convs and SPG_A4 (our classifier).
HEAD_PREFIXES = {
    "wsol_resnet50": ("features.layer4.", "classifier."),
    "wsol_vgg16": ("features.conv6.", "classifier."),
    "wsol_inception_v3": ("features.SPG_A3_", "classifier."),
}
# How the reference initialises its convolutions (`initialize_weights(..., init_mode=...)`).
INIT_MODES = {"wsol_resnet50": "xavier", "wsol_vgg16": "he", "wsol_inception_v3": "xavier"}


@torch.no_grad()
def initialize_like_reference(model: nn.Module, trunk_key: str) -> None:
    """Re-initialise `model` (a GapNet) as the reference's constructor does, before any pretrained load."""
    mode = INIT_MODES[trunk_key]
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            if mode == "he":
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    head = model.classifier
    if trunk_key == "wsol_inception_v3":
        nn.init.xavier_uniform_(head.weight)  # the reference's SPG_A4 is a 1×1 conv: xavier like the others
    else:
        nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
