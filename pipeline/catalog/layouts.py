"""The checkpoint-layout registry, torch-free: the key layouts of the weights files that `train@B` can
score without training (`epochs: 0` with `weights: <file>`), named by `backbones.<B>.weights_layout` or
detected from the file's keys (pipeline/models/layouts.py).

A card names two functions (torch, imported on first use), each `"module:function"`:

- `detect(data, target) -> bool`: whether a loaded file (`data`, what `torch.load(weights_only=True)`
  returned) is in this layout for the backbone being built (`target`, models.layouts.Target);
- `impl(data, target) -> (state, key_map)`: the file's tensors under camloc's state-dict keys, and
  `{file key: camloc key}` for every tensor taken (recorded in meta.json).

Detection asks the cards in registration order and takes the first that says yes, so a layout with a
wrapper that names itself (wsolevaluation's `{architecture, state_dict, ...}`) registers before the bare
state dicts. A new layout (another paper's checkpoints) is one `LAYOUTS.add(name, LayoutInfo(...))` call,
here or in a plugin; `plain=True` registers functions that take the file's data alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.catalog.registry import Registry
from pipeline.catalog.wsol import WSOL_METHODS
from pipeline.errors import ParamsError

_IMPL = "pipeline.models.layouts"


@dataclass(frozen=True)
class LayoutInfo:
    """A registry entry: one checkpoint layout (see the module docstring for the two functions)."""

    name: str
    summary: str  # one line: whose files these are
    detect: str  # "module:function", (data, target) -> bool
    impl: str  # "module:function", (data, target) -> (camloc-keyed state, {file key: camloc key})
    # plain: the two functions take the file's data only, `detect(data) -> bool` and `impl(data) -> state`
    # (a mapping written without camloc's Target); the key map is then read off the tensors themselves
    plain: bool = False


LAYOUTS: Registry[LayoutInfo] = Registry("checkpoint layout")


def _register(info: LayoutInfo) -> None:
    LAYOUTS.add(info.name, info)


_register(LayoutInfo(
    "wsolevaluation", "clovaai/wsolevaluation main.py's {architecture, epoch, state_dict, optimizer}, 'module.' "
    "prefix optional; the *_wsol backbones", f"{_IMPL}:detect_wsolevaluation", f"{_IMPL}:map_wsolevaluation"))
_register(LayoutInfo(
    "dawsol", "DA-WSOL's and BagCAMs' main.py {architecture, epoch, state_dict_extractor, state_dict_classifier, "
    "...}: the reference's names, split in two; the *_wsol backbones",
    f"{_IMPL}:detect_dawsol", f"{_IMPL}:map_dawsol"))
_register(LayoutInfo(
    "tscam", "TS-CAM's DeiT checkpoints (its 3x3 conv head; 'state_dict' / 'model' wrappers, 'module.' prefix); "
    "a deit_* backbone with wsol: tscam", "pipeline.models.vit_layouts:detect_tscam",
    "pipeline.models.vit_layouts:map_tscam", plain=True))
_register(LayoutInfo(
    "camloc_model", "a camloc model.pt (data/models/<B>/model.pt), the GapNet's own keys",
    f"{_IMPL}:detect_camloc_model", f"{_IMPL}:map_camloc_model"))
_register(LayoutInfo(
    "torchvision", "a torchvision state_dict (or timm's, where it shares the names), bare or under 'state_dict'; "
    "the torchvision-built backbones", f"{_IMPL}:detect_torchvision", f"{_IMPL}:map_torchvision"))

def validate_scoring(bp, key: str) -> None:
    """What a backbone entry (params.BackboneParams `bp`, at dotted `key`) needs to score a checkpoint:
    epochs: 0 with `weights: <file>`, and a `weights_layout` only then, naming a registered layout."""
    if bp.epochs < 0:
        raise ParamsError(f"{key}.epochs", bp.epochs, "an integer >= 0 (0: score the weights file, no training)")
    if bp.weights_layout is not None:
        if bp.weights_layout not in LAYOUTS:
            raise ParamsError(f"{key}.weights_layout", bp.weights_layout, f"one of {', '.join(LAYOUTS.names())} "
                              "(null: detected from the file's keys)")
        if bp.epochs != 0:
            raise ParamsError(f"{key}.weights_layout", bp.weights_layout,
                              "null unless epochs: 0 (it names the layout of the checkpoint scored)")
    if bp.epochs != 0:
        return
    if not bp.weights or bp.pretrained:
        raise ParamsError(f"{key}.epochs", 0, "a positive number, or 0 with weights: <checkpoint file> and "
                          "pretrained: false (epochs: 0 scores that file without training)")
    for name, fine, spelled in (("nproc", 1, "1"), ("resume", False, "false"), ("weights_strict", True, "true")):
        if getattr(bp, name) != fine:
            raise ParamsError(f"{key}.{name}", getattr(bp, name), f"{spelled} with epochs: 0 (a checkpoint is "
                              "scored in one process and must fit the model exactly)")
    if WSOL_METHODS.get(bp.wsol.method).trainer:  # its own loop and folder layout (fsl): not a file to score
        scorable = [m for m in WSOL_METHODS.names() if not WSOL_METHODS.get(m).trainer]
        raise ParamsError(f"{key}.wsol.method", bp.wsol.method, f"one of {', '.join(scorable)} with epochs: 0 "
                          "(the method whose model the checkpoint holds)")
