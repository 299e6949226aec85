"""The backbone name registry, torch-free: what params validation, `camloc backbones` and the stages
need to know of a backbone without building it. Each card's `impl` names its builder (torch),
`(info, num_classes, pretrained=False, weights=None, **options) -> GapNet`, imported on first use
(`models.backbones.build_backbone`).

Entries follow timm's `register_model` habit: one registered name per architecture variant.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catalog.registry import Registry

_TORCHVISION = "pipeline.models.backbones:build_torchvision"


@dataclass(frozen=True)
class BackboneInfo:
    """A registry entry: how to build a GAP model (by default: a torchvision model, or nothing, → trunk)."""

    name: str
    summary: str  # one line for `camloc backbones`
    size_divisor: int  # the trunk's total stride: image sizes must be multiples of it
    channels: int
    arch: str | None = None  # torchvision architecture name; None for our own tiny CNN (and plugins' own)
    trunk: str = ""  # key of models.backbones.TRUNKS: (base model, **options) → features module
    options: tuple[str, ...] = ()  # option names this trunk accepts (besides weights)
    scratch_base: str | None = None  # key of models.backbones.SCRATCH_BASES: a cheaper untrained base
    # WSOL hooks (pipeline/wsol/): named module paths (models.gap.hook_path: the torchvision model's names,
    # e.g. layer3.0, plus the names of the parts camloc adds). ADL layers go after each of
    # `adl_points`; SPG's B1/B2 branches read the outputs of the two `spg_taps`. Empty: the method
    # cannot apply to this backbone, and params validation says so.
    adl_points: tuple[str, ...] = ()
    spg_taps: tuple[str, ...] = ()
    impl: str = _TORCHVISION  # "module:function", the builder (see the module docstring)
    # The model exposes its attention weights (a transformer): the map methods whose card says
    # requires="attention" (cls_attention, attention_rollout, tscam) apply to it; params validation
    # refuses them for a backbone without.
    attention: bool = False


BACKBONES: Registry[BackboneInfo] = Registry("backbone")


def _register(info: BackboneInfo) -> None:
    BACKBONES.add(info.name, info)


# ADL points follow the reference where it defines them (ResNet50: after layer3.0, layer4.0 and layer4.2;
# VGG16: after pool3, conv4_3 and conv5_3); elsewhere after the last two stages. SPG taps follow the
# reference's ResNet (first block of layer3 and the end of layer3): two outputs before the last stage.
for _name, _ch, _last in (("resnet18", 512, "layer4.1"), ("resnet50", 2048, "layer4.2")):
    _register(BackboneInfo(_name, f"torchvision {_name}; output_stride 32/16/8 (layer4/layer3 dilated)",
                           32, _ch, _name, "resnet", ("output_stride",),
                           adl_points=("layer3.0", "layer4.0", _last), spg_taps=("layer3.0", "layer3")))
_register(BackboneInfo("vgg16_gap", "VGG16 without pool5 + 3x3 conv to 1024 (CAM paper), stride 16",
                       16, 1024, "vgg16", "vgg_gap", scratch_base="vgg16_features",
                       adl_points=("features.16", "features.22", "features.29"),
                       spg_taps=("features.22", "features.29")))  # pool3, relu4_3, relu5_3
_register(BackboneInfo("mobilenet_v3_large", "torchvision MobileNetV3-Large trunk (960 channels)",
                       32, 960, "mobilenet_v3_large", "plain", adl_points=("features.12", "features.16"),
                       spg_taps=("features.12", "features.15")))
_register(BackboneInfo("efficientnet_b0", "torchvision EfficientNet-B0 trunk (1280 channels)",
                       32, 1280, "efficientnet_b0", "plain", adl_points=("features.6", "features.8"),
                       spg_taps=("features.5", "features.7")))
_register(BackboneInfo("densenet121", "torchvision DenseNet-121 trunk + final ReLU (1024 channels)",
                       32, 1024, "densenet121", "densenet", adl_points=("features.denseblock3", "relu"),
                       spg_taps=("features.denseblock3", "features.denseblock4")))
_register(BackboneInfo("convnext_tiny", "torchvision ConvNeXt-T trunk + per-position LayerNorm (768 ch)",
                       32, 768, "convnext_tiny", "convnext", adl_points=("features.5", "features.7"),
                       spg_taps=("features.3", "features.5")))
_register(BackboneInfo("tiny_gap_cnn", "6-layer conv-BN-ReLU GAP CNN, stride 8; fast on CPU (tests, default)",
                       8, 128, None, "tiny", adl_points=("relu4", "relu6"), spg_taps=("relu4", "relu5")))

# The reference's CAM models (Choe et al., wsolevaluation, `cam` method), built by models.reference.
for _name, _ch, _arch, _what in (
    ("resnet50_wsol", 2048, "resnet50", "ResNet50, layer4 stride 1 without dilation"),
    ("vgg16_wsol", 1024, "vgg16", "VGG16 without pool5 + conv6 3x3 to 1024 + ReLU"),
    ("inception_v3_wsol", 1024, "inception_v3", "InceptionV3 modified up to Mixed_6e + 2 convs to 1024"),
):
    _register(BackboneInfo(_name, f"reference (wsolevaluation) CAM {_what}; 14x14 maps at 224, "
                                  "28x28 with large_feature_map", 16, _ch, _arch, f"wsol_{_arch}",
                           ("large_feature_map",), impl="pipeline.models.wsol_weights:build_reference"))

# Vision transformers from timm (models.vit): patch tokens after the final norm as the (N, D, h, w) grid,
# a linear head on their mean (the GAP contract), attention weights exposed to the attention map methods.
_VIT = "pipeline.models.vit:build_vit"
for _name, _what, _patch, _dim in (
    ("deit_tiny_patch16", "DeiT-T (timm deit_tiny_patch16_224): 12 blocks, 192 wide, 3 heads", 16, 192),
    ("deit_small_patch16", "DeiT-S (timm deit_small_patch16_224), the field's WSOL transformer: 12 blocks, "
                           "384 wide, 6 heads", 16, 384),
):
    _register(BackboneInfo(_name, f"{_what}; 14x14 token grid at 224", _patch, _dim, impl=_VIT, attention=True))
_register(BackboneInfo("vit_cpu_p8", "CPU-sized ViT from scratch: patch 8 (8x8 tokens at 64), 4 blocks, 96 wide, "
                                     "3 heads (default run)", 8, 96, impl=_VIT, attention=True))
