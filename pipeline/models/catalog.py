"""The backbone name registry, torch-free: what params validation, `camloc backbones` and the stages
need to know of a backbone without building it. `models.backbones` builds each entry (torch).

Entries follow timm's `register_model` habit: one registered name per architecture variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.registry import Registry


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry: how to turn a torchvision model (or nothing) into a GAP trunk."""

    name: str
    summary: str  # one line for `camloc backbones`
    size_divisor: int  # the trunk's total stride: image sizes must be multiples of it
    channels: int
    arch: str | None  # torchvision architecture name; None for our own tiny CNN
    trunk: str  # key of models.backbones.TRUNKS: (base model, **options) → features module
    options: tuple[str, ...] = ()  # option names this trunk accepts (besides weights)
    scratch_base: str | None = None  # key of models.backbones.SCRATCH_BASES: a cheaper untrained base


BACKBONES: Registry[BackboneInfo] = Registry("backbone")


def _register(info: BackboneInfo) -> None:
    BACKBONES.register(info.name)(info)


for _name, _ch in (("resnet18", 512), ("resnet50", 2048)):
    _register(BackboneInfo(_name, f"torchvision {_name}; output_stride 32/16/8 (layer4/layer3 dilated)",
                           32, _ch, _name, "resnet", ("output_stride",)))
_register(BackboneInfo("vgg16_gap", "VGG16 without pool5 + 3x3 conv to 1024 (CAM paper), stride 16",
                       16, 1024, "vgg16", "vgg_gap", scratch_base="vgg16_features"))
_register(BackboneInfo("mobilenet_v3_large", "torchvision MobileNetV3-Large trunk (960 channels)",
                       32, 960, "mobilenet_v3_large", "plain"))
_register(BackboneInfo("efficientnet_b0", "torchvision EfficientNet-B0 trunk (1280 channels)",
                       32, 1280, "efficientnet_b0", "plain"))
_register(BackboneInfo("densenet121", "torchvision DenseNet-121 trunk + final ReLU (1024 channels)",
                       32, 1024, "densenet121", "densenet"))
_register(BackboneInfo("convnext_tiny", "torchvision ConvNeXt-T trunk + per-position LayerNorm (768 ch)",
                       32, 768, "convnext_tiny", "convnext"))
_register(BackboneInfo("tiny_gap_cnn", "6-layer conv-BN-ReLU GAP CNN, stride 8; fast on CPU (tests, default)",
                       8, 128, None, "tiny"))

# The reference's CAM models (Choe et al., wsolevaluation, `cam` method), built by models.reference.
for _name, _ch, _arch, _what in (
    ("resnet50_wsol", 2048, "resnet50", "ResNet50, layer4 stride 1 without dilation"),
    ("vgg16_wsol", 1024, "vgg16", "VGG16 without pool5 + conv6 3x3 to 1024 + ReLU"),
    ("inception_v3_wsol", 1024, "inception_v3", "InceptionV3 modified up to Mixed_6e + 2 convs to 1024"),
):
    _register(BackboneInfo(_name, f"reference (wsolevaluation) CAM {_what}; 14x14 maps at 224, "
                                  "28x28 with large_feature_map", 16, _ch, _arch, f"wsol_{_arch}",
                           ("large_feature_map",)))
