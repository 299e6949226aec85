"""The backbone builders (torch), for train@B and cams@B: a CNN trunk, global average pooling, one linear layer.

Every registered name builds a `GapNet` (the GAP contract, pipeline/models/gap.py), through the builder its
card names (`BackboneInfo.impl`).

Trunks come from torchvision (`get_model`) with its classification head removed; pretrained weights are
chosen by name through torchvision's weights API and read from the user's torch hub cache. Nothing is
downloaded silently: a missing file is fetched with a short network timeout, and when that fails the
error names the file and the folder to put it in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from torch import nn

from pipeline.catalog.backbones import BACKBONES, BackboneInfo
from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet, named_sequential
from pipeline.models.reference import REFERENCE_TRUNKS
from pipeline.models.weights import ensure_cached, looks_like_path, read_weights
from pipeline.models.weights_fit import fit_state, head_of

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Trunks


def _set_dilation(layer: nn.Sequential, first: int, rest: int) -> None:
    """Stride 1 in a ResNet stage; 3×3 convs dilated (first block `first`, later blocks `rest`).

    The same rewiring torchvision's `replace_stride_with_dilation` does, applied after construction so
    it also works for BasicBlock (resnet18), which refuses dilation in its constructor.
    """
    for b, block in enumerate(layer):
        d = first if b == 0 else rest
        for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
            if conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (d, d), (d, d)
            conv.stride = (1, 1)  # 1×1 convs included: the downsample shortcut must match the new size


def _resnet_trunk(m: nn.Module, output_stride: int | None = None) -> nn.Module:
    if output_stride in (16, 8):
        _set_dilation(m.layer4, 1 if output_stride == 16 else 2, 2 if output_stride == 16 else 4)
    if output_stride == 8:
        _set_dilation(m.layer3, 1, 2)
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")  # torchvision's
    return named_sequential({n: getattr(m, n) for n in names})


def _vgg_gap_trunk(m: nn.Module) -> nn.Module:
    # CAM paper: VGG16 without pool5 (stride 16, 14×14 at 224) plus a 3×3 conv to 1024 channels.
    layers = list(m.features.children())[:-1]
    trunk = nn.Sequential(*layers, nn.Conv2d(512, 1024, 3, padding=1), nn.ReLU(inplace=True))
    trunk.part_names = {"features": "", "conv6": str(len(layers)), "relu6": str(len(layers) + 1)}  # features.16 …
    return trunk


def _vgg16_features_only() -> nn.Module:
    """VGG16 without its 120M-parameter head (the GAP model drops it anyway), initialised as torchvision does."""
    import torchvision  # lazily: importing it costs ~2 s per stage, and the tiny CNN and ViTs never need it

    holder = nn.Module()
    holder.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    for m in holder.features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return holder


def _densenet_trunk(m: nn.Module) -> nn.Module:
    return named_sequential({"features": m.features, "relu": nn.ReLU(inplace=False)})  # torchvision: in forward


def _convnext_trunk(m: nn.Module) -> nn.Module:
    # torchvision normalises after pooling; LayerNorm2d per position before pooling keeps the CAM exact.
    return named_sequential({"features": m.features, "norm": m.classifier[0]})


def _plain_trunk(m: nn.Module) -> nn.Module:
    m.features.part_names = {"features": ""}  # hook points keep torchvision's names: features.12 …
    return m.features


def _conv_bn(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def _tiny_trunk(_: None) -> nn.Module:
    widths = [(3, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
    layers = [layer for cin, cout, s in widths for layer in _conv_bn(cin, cout, s)]
    names = [f"{kind}{b}" for b in range(1, len(widths) + 1) for kind in ("conv", "bn", "relu")]
    return named_sequential(dict(zip(names, layers, strict=True)))


TRUNKS: dict[str, Callable[..., nn.Module]] = {  # BackboneInfo.trunk → (base model, **options) → trunk
    "resnet": _resnet_trunk, "vgg_gap": _vgg_gap_trunk, "plain": _plain_trunk, "densenet": _densenet_trunk,
    "convnext": _convnext_trunk, "tiny": _tiny_trunk,
}
TRUNKS.update(REFERENCE_TRUNKS)  # built (with the reference's init and weight mapping) by models.wsol_weights
SCRATCH_BASES: dict[str, Callable[[], nn.Module]] = {"vgg16_features": _vgg16_features_only}


# --------------------------------------------------------------------------------------------------
# Building, with weights


def build_backbone(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    weights: str | None = None,
    **options,
) -> GapNet:
    """Build registered backbone `name` as a GapNet with a fresh `num_classes` linear head.

    The card's builder (`BackboneInfo.impl`, loaded on first use) does the work: `build_torchvision`
    below for torchvision trunks, `models.wsol_weights.build_reference` for the reference's `*_wsol`
    models, a plugin's own function for its backbones. `weights`: a torchvision weights name (e.g.
    "IMAGENET1K_V1", "DEFAULT") or a local state-dict file; `pretrained=True` without `weights` means
    "DEFAULT". Options: `output_stride` (8/16/32) for ResNets, `large_feature_map` for the reference's
    models; None values are ignored. Unknown names and options raise CamlocError listing the valid ones.
    """
    spec = BACKBONES.get(name)
    strict = options.pop("weights_strict", True)  # a local weights file must fit (models.weights_fit)
    options = {k: v for k, v in options.items() if v is not None}
    bad = sorted(set(options) - set(spec.options))
    if bad:
        raise CamlocError(
            f"backbone {name} does not take option(s) {', '.join(bad)}; it takes: {', '.join(spec.options) or 'none'}"
        )
    if num_classes < 1:
        raise CamlocError(f"num_classes must be >= 1, got {num_classes}")
    if not strict:  # only builders that read local files know the flag; the default passes nothing
        options["weights_strict"] = False
    model = BACKBONES.load(name)(spec, num_classes, pretrained=pretrained, weights=weights, **options)
    if not isinstance(model, GapNet):
        raise CamlocError(f"the builder {spec.impl} of backbone {name} returned a {type(model).__name__}, not a "
                          "GapNet (pipeline/models/gap.py: features → (N, C, h, w), a linear classifier)")
    return model


def build_torchvision(spec: BackboneInfo, num_classes: int, pretrained: bool = False, weights: str | None = None,
                      weights_strict: bool = True, **options) -> GapNet:
    """A torchvision trunk (or the tiny CNN) of `spec` → GapNet; the builder of most built-in cards."""
    if spec.arch is None:
        if pretrained or weights:
            raise CamlocError(f"backbone {spec.name} has no pretrained weights; set pretrained: false, weights: null")
        base = None
    elif spec.scratch_base is not None and not (pretrained or weights):
        base = SCRATCH_BASES[spec.scratch_base]()
    else:
        base = _torchvision_model(spec.arch, pretrained, weights, weights_strict)
    return GapNet(TRUNKS[spec.trunk](base, **options), spec.channels, num_classes)


def _torchvision_model(arch: str, pretrained: bool, weights: str | None, strict: bool = True) -> nn.Module:
    import torchvision  # lazily, as in _vgg16_features_only

    if weights and looks_like_path(weights):
        model = torchvision.models.get_model(arch, weights=None)
        _load_local(model, Path(weights), strict)
        return model
    if not (pretrained or weights):
        return torchvision.models.get_model(arch, weights=None)
    enum = torchvision.models.get_model_weights(arch)
    key = weights or "DEFAULT"
    try:
        w = enum[key]
    except KeyError:
        valid = ", ".join(["DEFAULT", *(m.name for m in enum)])
        raise CamlocError(f"unknown weights {key!r} for {arch}; valid names: {valid}, or a local file path") from None
    ensure_cached(w.url)
    return torchvision.models.get_model(arch, weights=w)


def _load_local(model: nn.Module, path: Path, strict: bool = True) -> None:
    """Load a local torchvision-architecture state dict strictly (models.weights_fit): only the 1000-class
    head may differ in shape (it is dropped); ``strict=False`` (``weights_strict: false``) drops what does
    not fit with a WARNING instead of refusing."""
    state = read_weights(path, "fix backbones.<name>.weights in params.yaml", "fix backbones.<name>.weights")
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CamlocError(f"weights file {path} holds a {type(state).__name__}, not a state dict")
    fitting = fit_state(model.state_dict(), state, head_of(model), f"weights file {path}", strict)
    model.load_state_dict(fitting, strict=False)
