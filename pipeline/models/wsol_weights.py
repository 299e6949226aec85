"""Building the reference's CAM models with weights (torch), for train@B and cams@B via `build_backbone`.

`weights:` of a `*_wsol` backbone is one of
- a torchvision weights name (`IMAGENET1K_V1`, what `pretrained: true` means here: the reference loads
  the original V1 files) read from the torch hub cache, or a local file holding such a state dict;
- a checkpoint written by the reference's `main.py` (`{'architecture', 'epoch', 'state_dict',
  'optimizer'}`), its `state_dict` in the reference's key names. Loaded with `weights_only=True`.

ImageNet trunks are mapped exactly as the reference's `load_pretrained_model` does: ResNet50 drops `fc`
unless the head has ImageNet's 1000 classes (the reference keeps it only for ILSVRC); VGG16 drops
`classifier.*` and renumbers `features.N` onto the convs that remain (with `large_feature_map`, the
convs after the removed pool4 move down by one); InceptionV3 drops `Mixed_7*`, `AuxLogits.*` and `fc.`.
What the reference then leaves at its initialisation (conv6, SPG_A3_*, the head) stays at ours.
Everything else must fit: missing or unexpected keys, and wrong shapes, are named in the error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torchvision

from pipeline.catalog.backbones import BackboneInfo
from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet
from pipeline.models.reference import (
    HEAD_PREFIXES,
    REFERENCE_TRUNKS,
    initialize_like_reference,
    vgg16_conv_indices,
)
from pipeline.models.weights import ensure_cached, looks_like_path, read_weights

log = logging.getLogger(__name__)

REFERENCE_ARCHITECTURE = {"wsol_resnet50": "resnet50", "wsol_vgg16": "vgg16", "wsol_inception_v3": "inception_v3"}
DEFAULT_WEIGHTS = "IMAGENET1K_V1"
OPTIONAL_SUFFIX = ".num_batches_tracked"  # absent from old files; BatchNorm keeps its own counter then


def build_reference(info: BackboneInfo, num_classes: int, pretrained: bool = False, weights: str | None = None,
                    large_feature_map: bool = False) -> GapNet:
    """The reference's `cam` model `info` as a GapNet with a `num_classes` head, weights loaded if asked."""
    trunk = REFERENCE_TRUNKS[info.trunk](None, large_feature_map=bool(large_feature_map))
    model = GapNet(trunk, info.channels, num_classes)
    initialize_like_reference(model, info.trunk)
    model.head_prefixes = HEAD_PREFIXES[info.trunk]  # training.loop gives these lr × head_lr_mult
    if weights and looks_like_path(weights):
        load_weights_file(model, info, Path(weights), bool(large_feature_map))
    elif pretrained or weights:
        state = _torchvision_state(info.arch, weights or DEFAULT_WEIGHTS)
        load_reference_state(model, info, imagenet_to_reference(info.trunk, state, num_classes, large_feature_map),
                             f"torchvision {info.arch} {weights or DEFAULT_WEIGHTS}", bool(large_feature_map),
                             allowed_missing=_left_at_init(info.trunk, num_classes))
    return model


# --------------------------------------------------------------------------------------------------
# Key layouts: the reference's names ↔ ours


def to_ours(trunk_key: str, key: str) -> str:
    """Our state-dict key of the reference's `key`."""
    if key.startswith("fc.") or key.startswith("SPG_A4."):
        return "classifier." + key.split(".", 1)[1]
    if trunk_key == "wsol_vgg16" and key.startswith("features."):
        return "features.vgg." + key.removeprefix("features.")
    return "features." + key


def to_reference(trunk_key: str, key: str) -> str:
    """The reference's key of our `key` (the inverse of `to_ours`)."""
    if key.startswith("classifier."):
        return ("SPG_A4." if trunk_key == "wsol_inception_v3" else "fc.") + key.removeprefix("classifier.")
    rest = key.removeprefix("features.")
    return "features." + rest.removeprefix("vgg.") if rest.startswith("vgg.") else rest


def imagenet_to_reference(trunk_key: str, state: dict, num_classes: int, large_feature_map: bool) -> dict:
    """A torchvision ImageNet state dict renamed/filtered as the reference's `load_pretrained_model`."""
    state = dict(state)
    if trunk_key == "wsol_resnet50":
        if num_classes != 1000:  # the reference keeps fc only on ILSVRC (1000 classes)
            state = {k: v for k, v in state.items() if "fc" not in k}
    elif trunk_key == "wsol_vgg16":
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
        theirs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
        ours = vgg16_conv_indices(large_feature_map)
        if len(theirs) == len(ours):  # else the key check below names the surplus or missing convs
            moved = dict(zip(theirs, ours, strict=True))
            state = {(f"features.{moved[int(k.split('.')[1])]}.{k.split('.', 2)[2]}"
                      if k.startswith("features.") else k): v for k, v in state.items()}
    else:
        state = {k: v for k, v in state.items() if not any(s in k for s in ("Mixed_7", "AuxLogits", "fc."))}
    return state


def _left_at_init(trunk_key: str, num_classes: int) -> tuple[str, ...]:
    """Reference key prefixes an ImageNet trunk does not provide (they keep the reference's initialisation)."""
    if trunk_key == "wsol_resnet50":
        return () if num_classes == 1000 else ("fc.",)
    if trunk_key == "wsol_vgg16":
        return ("conv6.", "fc.")
    return ("SPG_A3_1b.", "SPG_A3_2b.", "SPG_A4.")


# --------------------------------------------------------------------------------------------------
# Loading


def load_weights_file(model: GapNet, info: BackboneInfo, path: Path, large_feature_map: bool) -> None:
    """A reference checkpoint (dict with `state_dict` and `architecture`) or a torchvision state dict."""
    data = read_weights_file(path)
    if isinstance(data.get("state_dict"), dict):
        check_architecture(data, info, str(path))
        load_reference_state(model, info, data["state_dict"], str(path), large_feature_map)
        log.info("%s: loaded the reference checkpoint (epoch %s)", path, data.get("epoch", "?"))
        return
    num_classes = model.classifier.out_features
    load_reference_state(model, info, imagenet_to_reference(info.trunk, data, num_classes, large_feature_map),
                         str(path), large_feature_map, allowed_missing=_left_at_init(info.trunk, num_classes))


def check_architecture(data: dict, info: BackboneInfo, source: str) -> None:
    """A reference checkpoint's `architecture` entry must name the reference model backbone `info` is."""
    expected = REFERENCE_ARCHITECTURE[info.trunk]
    arch = data.get("architecture")
    if arch is None:
        raise CamlocError(f"{source} holds a state_dict but no 'architecture' entry, so it was not written by "
                          f"the reference's main.py; save the bare state dict (torchvision key names) instead")
    if arch != expected:
        fits = [f"{a}_wsol" for a in REFERENCE_ARCHITECTURE.values() if a == arch]
        hint = f"set arch: {fits[0]}" if fits else "use a checkpoint of the reference's main.py"
        raise CamlocError(f"{source} is a checkpoint of architecture {arch!r}, but backbone {info.name} is the "
                          f"reference's {expected!r}; {hint}")


def read_weights_file(path: Path) -> dict:
    """A state dict or a reference checkpoint, read by the one safe loader (models.weights)."""
    data = read_weights(path, "fix backbones.<name>.weights in params.yaml", "fix backbones.<name>.weights")
    if not isinstance(data, dict):
        raise CamlocError(f"weights file {path} holds a {type(data).__name__}, not a state dict or checkpoint")
    return data


def load_reference_state(model: GapNet, info: BackboneInfo, state: dict, source: str, large_feature_map: bool,
                         allowed_missing: tuple[str, ...] = ()) -> None:
    """Load `state` (reference key names) into `model`; every missing/unexpected key or shape is an error."""
    trunk = info.trunk
    own = model.state_dict()
    expected = {to_reference(trunk, k): k for k in own}
    bad_values = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    unexpected = sorted(k for k in state if k not in expected)
    missing = sorted(k for k in expected if k not in state and not k.endswith(OPTIONAL_SUFFIX)
                     and not k.startswith(allowed_missing))
    if bad_values or unexpected or missing:
        parts = [f"{label} {len(keys)} key(s) {keys[:4]}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("non-tensor", bad_values)) if keys]
        raise CamlocError(f"{source} does not fit {info.name} (large_feature_map: {str(large_feature_map).lower()}):"
                          f" {'; '.join(parts)}{_layout_hint(trunk, state, large_feature_map)}")
    renamed = {}
    for key, value in state.items():
        ours = expected[key]
        if trunk == "wsol_inception_v3" and key == "SPG_A4.weight" and value.ndim == 4:
            value = value.flatten(1)  # (K, 1024, 1, 1) conv → (K, 1024) linear: the same map, pooled
        if value.shape != own[ours].shape:
            raise CamlocError(
                f"{source}: {key} has shape {tuple(value.shape)} but {info.name} needs {tuple(own[ours].shape)}"
                + (f" (the checkpoint has {value.shape[0]} classes, the dataset {own[ours].shape[0]})"
                   if ours.startswith("classifier.") else ""))
        renamed[ours] = value
    model.load_state_dict(renamed, strict=False)
    log.info("%s: loaded %d tensors into %s", source, len(renamed), info.name)


def _layout_hint(trunk: str, state: dict, large_feature_map: bool) -> str:
    if trunk == "wsol_vgg16":
        convs = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.") and k.endswith(".weight")})
        if convs == vgg16_conv_indices(not large_feature_map):
            return f"; its convs sit where large_feature_map: {str(not large_feature_map).lower()} puts them"
    if any(k.startswith(("SPG_B", "SPG_C", "classifier_A", "classifier_B")) or "ADL" in k for k in state):
        return "; it was trained with another WSOL method (SPG/ACoL/ADL), not cam"
    if any(k.startswith("module.") for k in state):
        return "; its keys carry a DataParallel 'module.' prefix: re-save state_dict without it"
    return ""


def _torchvision_state(arch: str, name: str) -> dict:
    enum = torchvision.models.get_model_weights(arch)
    try:
        w = enum[name]
    except KeyError:
        valid = ", ".join(["DEFAULT", *(m.name for m in enum)])
        raise CamlocError(f"unknown weights {name!r} for {arch}; valid names: {valid}, or a local file path") from None
    if w.name != DEFAULT_WEIGHTS:
        log.warning("%s weights %s are not the reference's (it used %s)", arch, w.name, DEFAULT_WEIGHTS)
    return read_weights_file(ensure_cached(w.url))

