"""Reading a released checkpoint into a camloc model (torch), for `train@B` with `epochs: 0`: the layouts
of pipeline/catalog/layouts.py (their `detect` and `impl` functions live here) and `read_checkpoint`, the
one entry point.

`read_checkpoint(path, target, layout=None)` reads the file with the one safe loader (`weights_only=True`,
models.weights), takes the layout named (`backbones.<B>.weights_layout`) or the first registered one whose
`detect` says yes, maps the file's keys onto the model's (`impl`), and then checks the result strictly:
the head's class count against the dataset's (one line naming both counts), and every other tensor with
models.weights_fit (nothing may be missing, unexpected, of another shape or non-finite; the error names
the keys). Nothing of the file is dropped or left at initialisation: the model scored is the file's.

The layouts:

- `wsolevaluation`: clovaai/wsolevaluation's `main.py` saves `{'architecture', 'epoch', 'state_dict',
  'optimizer'}` (its `Trainer._torch_save_model`), the state dict in the reference's module names, which
  models.wsol_weights maps for the `*_wsol` backbones (`to_ours`; InceptionV3's 1×1 `SPG_A4` conv becomes
  the linear head). A `module.` prefix (DataParallel) is removed.
- `dawsol`: DA-WSOL (zh460045050/DA-WSOL_CVPR2022) and BagCAMs (zh460045050/BagCAMs), both built on the
  reference, save `{'architecture', 'epoch', 'state_dict_extractor', 'optimizer_extractor',
  'state_dict_classifier', 'optimizer_classifier'}` (their libs/solver.py `_torch_save_model`; main.py loads
  the two state dicts): the extractor is the reference's trunk under the reference's names
  (libs/wsol/model/backbone.py), the classifier a `CAMClassifier` whose `fc` is a 1×1 conv to the classes
  (libs/wsol/model/classifier.py), which on pooled features is our linear head. Their domain classifier and
  target assigner (training-time parts) are not read.
- `camloc_model`: a camloc `model.pt`, already in the model's own keys.
- `torchvision`: a torchvision model's `state_dict()` (or timm's: timm's ResNets share torchvision's
  names), bare or under a `state_dict` entry. Its keys are mapped through the very modules camloc's trunk
  reuses (models.backbones.TRUNKS, by tensor identity), its last `nn.Linear` becoming the GAP head; that is
  exact where the torchvision model is itself trunk → average pool → linear (ResNets, DenseNet).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from pipeline.catalog.backbones import BackboneInfo
from pipeline.catalog.layouts import LAYOUTS
from pipeline.catalog.registry import load_object
from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet
from pipeline.models.weights import read_weights
from pipeline.models.weights_fit import fit_state, head_of

log = logging.getLogger(__name__)

HEAD_WEIGHT = "classifier.weight"  # GapNet's linear head (models.gap): its rows are the classes
OPTIONAL_SUFFIX = ".num_batches_tracked"  # BatchNorm's step counter: old files lack it, it changes no output
DP_PREFIX = "module."  # what nn.DataParallel / DDP put before every key
_TORCHVISION_IMPL = "pipeline.models.backbones:build_torchvision"


@dataclass(frozen=True)
class Target:
    """What a layout maps onto: the backbone card, the built model's state dict, its options, the file."""

    info: BackboneInfo
    own: dict[str, torch.Tensor]
    options: dict = field(default_factory=dict)
    source: str = ""
    key: str = "<B>"  # the backbones entry, for messages


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint read for a model: its layout, the camloc-keyed tensors, the key map and its sha256."""

    layout: str
    state: dict[str, torch.Tensor]
    key_map: dict[str, str]  # file key → camloc key, every tensor taken
    sha256: str


def read_checkpoint(path: str | Path, target: Target, layout: str | None = None) -> Checkpoint:
    """The checkpoint at `path` as a strict state dict for `target` (see the module docstring)."""
    path = Path(path)
    fix = f"fix backbones.{target.key}.weights"
    data = read_weights(path, f"{fix} in params.yaml", fix)
    if not isinstance(data, dict):
        raise CamlocError(f"{path} holds a {type(data).__name__}, not a state dict or checkpoint; {fix}")
    name = layout or detect_layout(data, target, path)
    card = LAYOUTS.get(name)
    if layout and not _detect(card, data, target):
        raise CamlocError(f"{path} is not in the {name} layout ({card.summary}): its keys start "
                          f"{', '.join(sorted(map(str, data))[:4])}; fix backbones.{target.key}.weights_layout, "
                          "or remove it to detect the layout")
    if card.plain:
        state = LAYOUTS.load(name)(data)
        key_map = identity_key_map(data, state)
    else:
        state, key_map = LAYOUTS.load(name)(data, target)
    log.info("%s: %s layout (%s), %d tensors mapped", path, name, "named" if layout else "detected", len(key_map))
    state = _checked(state, target, f"{path} ({card.name} layout)", fix)
    return Checkpoint(name, state, key_map, file_sha256(path))


def detect_layout(data: dict, target: Target, path: Path) -> str:
    """The first registered layout whose `detect` accepts `data`, else one line naming the valid ones."""
    for name in LAYOUTS.registered():
        if _detect(LAYOUTS.get(name), data, target):
            return name
    keys = sorted(map(str, data))[:4]
    raise CamlocError(f"{path}: no checkpoint layout fits backbone {target.info.name} (its keys start "
                      f"{', '.join(keys) or 'nowhere: it is empty'}); name one with "
                      f"backbones.{target.key}.weights_layout: {' | '.join(LAYOUTS.names())}")


def _detect(card, data: dict, target: Target) -> bool:
    fn = load_object(card.detect)
    return bool(fn(data) if card.plain else fn(data, target))


def identity_key_map(data: dict, state: dict) -> dict[str, str]:
    """{file key: camloc key} of a plain layout's `state`, read off tensor identity: each tensor of `state`
    that is (or is a view of) a tensor of the file, the file's key dotted through its wrappers (`model.`,
    `state_dict.`, ...). A tensor the layout made itself (e.g. a fixed head) has no file key."""
    where: dict[tuple[int, int], str] = {}

    def walk(obj, prefix: str) -> None:
        for k, v in obj.items():
            if isinstance(v, torch.Tensor):
                where.setdefault((v.untyped_storage().data_ptr(), v.storage_offset()), prefix + str(k))
            elif isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(data, "")
    out = {}
    for ours, t in state.items():
        theirs = where.get((t.untyped_storage().data_ptr(), t.storage_offset())) if isinstance(t, torch.Tensor) else None
        if theirs is not None:
            out[theirs] = ours
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(state: dict, target: Target, source: str, fix: str) -> dict[str, torch.Tensor]:
    """The head's class count first (one line naming both counts), then the strict fit of everything."""
    own = target.own
    head = state.get(HEAD_WEIGHT)
    if (isinstance(head, torch.Tensor) and head.ndim == 2 and HEAD_WEIGHT in own
            and head.shape[0] != own[HEAD_WEIGHT].shape[0]):
        raise CamlocError(f"{source}: the checkpoint's head has {head.shape[0]} classes but the dataset has "
                          f"{own[HEAD_WEIGHT].shape[0]}; score it on the dataset it was trained on")
    state = dict(state)
    for k in own:  # files saved before BatchNorm counted its steps: the counter is the model's own
        if k.endswith(OPTIONAL_SUFFIX) and k not in state:
            state[k] = own[k].clone()
    return fit_state(own, state, (), source, strict=True, fix=fix)


# --------------------------------------------------------------------------------------------------
# Helpers shared by the layouts


def bare_state(data: dict) -> tuple[dict, str]:
    """(the tensors of a bare or `{'state_dict': ...}`-wrapped state dict, the prefix removed from all keys)."""
    state = data["state_dict"] if isinstance(data.get("state_dict"), dict) else data
    if state and all(str(k).startswith(DP_PREFIX) for k in state):
        return {str(k)[len(DP_PREFIX):]: v for k, v in state.items()}, DP_PREFIX
    return {str(k): v for k, v in state.items()}, ""


def _all_tensors(state: dict) -> bool:
    return bool(state) and all(isinstance(v, torch.Tensor) for v in state.values())


# --------------------------------------------------------------------------------------------------
# wsolevaluation (the reference's main.py)


def detect_wsolevaluation(data: dict, target: Target) -> bool:
    return isinstance(data.get("state_dict"), dict) and "architecture" in data


def map_wsolevaluation(data: dict, target: Target) -> tuple[dict, dict[str, str]]:
    from pipeline.models.wsol_weights import REFERENCE_ARCHITECTURE, check_architecture, to_ours

    info = target.info
    if info.trunk not in REFERENCE_ARCHITECTURE:
        fits = ", ".join(f"{a}_wsol" for a in REFERENCE_ARCHITECTURE.values())
        raise CamlocError(f"{target.source} is a wsolevaluation checkpoint; it fits the reference's backbones "
                          f"({fits}), not {info.name}: set backbones.{target.key}.arch to one of them")
    check_architecture(data, info, target.source)
    state, prefix = bare_state(data)
    out, key_map = {}, {}
    for key, value in state.items():
        ours = to_ours(info.trunk, key)
        if ours == HEAD_WEIGHT and isinstance(value, torch.Tensor) and value.ndim == 4:
            value = value.flatten(1)  # InceptionV3's SPG_A4: a (K, 1024, 1, 1) conv, pooled = a linear layer
        out[ours] = value
        key_map[prefix + key] = ours
    return out, key_map


def detect_dawsol(data: dict, target: Target) -> bool:
    return isinstance(data.get("state_dict_extractor"), dict) and isinstance(data.get("state_dict_classifier"), dict)


def map_dawsol(data: dict, target: Target) -> tuple[dict, dict[str, str]]:
    """The extractor's keys as the reference's trunk (wsolevaluation's names); the classifier's `fc` as the head."""
    head, head_prefix = bare_state(data["state_dict_classifier"])
    unknown = sorted(k for k in head if not k.startswith("fc."))
    if unknown:
        raise CamlocError(f"{target.source}: state_dict_classifier holds {', '.join(unknown[:3])} besides the CAM "
                          f"classifier's fc; only DA-WSOL's/BagCAMs' CAMClassifier can be scored")
    trunk, key_map = map_wsolevaluation({"architecture": data.get("architecture"),
                                         "state_dict": data["state_dict_extractor"]}, target)
    key_map = {f"state_dict_extractor.{k}": v for k, v in key_map.items()}
    for key, value in head.items():  # fc: a (K, C, 1, 1) conv on the pooled features = a linear layer
        ours = "classifier." + key.removeprefix("fc.")
        trunk[ours] = value.flatten(1) if isinstance(value, torch.Tensor) and value.ndim == 4 else value
        key_map[f"state_dict_classifier.{head_prefix}{key}"] = ours
    return trunk, key_map


# --------------------------------------------------------------------------------------------------
# camloc_model (a camloc model.pt)


def detect_camloc_model(data: dict, target: Target) -> bool:
    state, _ = bare_state(data)
    needed = {k for k in target.own if not k.endswith(OPTIONAL_SUFFIX)}
    return _all_tensors(state) and needed <= set(state) <= set(target.own)


def map_camloc_model(data: dict, target: Target) -> tuple[dict, dict[str, str]]:
    state, prefix = bare_state(data)
    return state, {prefix + k: k for k in state}


# --------------------------------------------------------------------------------------------------
# torchvision (and timm models with torchvision's names)


def torchvision_keys(info: BackboneInfo, options: dict | None = None) -> dict[str, str]:
    """{torchvision key: camloc key} of a torchvision-built backbone: the trunk reuses the torchvision
    model's modules (models.backbones.TRUNKS), so each shared tensor names its key in both; the torchvision
    model's last linear layer is the GAP head. Empty for backbones camloc does not build from torchvision."""
    if info.arch is None or info.impl != _TORCHVISION_IMPL:
        return {}
    given = tuple(sorted((k, v) for k, v in (options or {}).items() if v is not None))
    return dict(_torchvision_keys(info.arch, info.trunk, info.channels, given))


@functools.lru_cache(maxsize=8)
def _torchvision_keys(arch: str, trunk_key: str, channels: int, options: tuple) -> tuple[tuple[str, str], ...]:
    import torchvision  # lazily (models.backbones)

    from pipeline.models.backbones import TRUNKS

    base = torchvision.models.get_model(arch, weights=None)
    trunk = TRUNKS[trunk_key](base, **dict(options))
    theirs = {id(t): k for k, t in base.state_dict(keep_vars=True).items()}
    gap = GapNet(trunk, channels, 1)
    out = {theirs[id(t)]: f"features.{k}" for k, t in gap.features.state_dict(keep_vars=True).items()
           if id(t) in theirs}
    (linear,) = head_of(base) or ("",)
    if isinstance(base.get_submodule(linear) if linear else None, nn.Linear):
        out |= {f"{linear}.weight": HEAD_WEIGHT, f"{linear}.bias": "classifier.bias"}
    return tuple(out.items())


def detect_torchvision(data: dict, target: Target) -> bool:
    state, _ = bare_state(data)
    if not _all_tensors(state):
        return False
    names = torchvision_keys(target.info, target.options)
    return len(set(state) & set(names)) > len(set(state) & set(target.own) - set(names))


def map_torchvision(data: dict, target: Target) -> tuple[dict, dict[str, str]]:
    names = torchvision_keys(target.info, target.options)
    if not names:
        raise CamlocError(f"{target.source}: the torchvision layout fits the torchvision-built backbones only, "
                          f"not {target.info.name}; set backbones.{target.key}.weights_layout to another: "
                          f"{' | '.join(LAYOUTS.names())}")
    state, prefix = bare_state(data)
    # a key torchvision's model does not have stays under its own name: the strict check names it
    out = {names.get(k, k): v for k, v in state.items()}
    return out, {prefix + k: names.get(k, k) for k in state}
