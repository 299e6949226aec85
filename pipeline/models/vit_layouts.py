"""The key layout of TS-CAM's released checkpoints (torch), mapped to camloc's transformer models.

TS-CAM (Gao et al., ICCV 2021; vasgaowei/TS-CAM, lib/models/deit.py, class `TSCAM`) subclasses the timm
0.3-era `VisionTransformer` of DeiT and replaces its `head` by `nn.Conv2d(embed_dim, num_classes, 3,
padding=1)` on the patch-token grid, followed by global average pooling. Its checkpoints therefore hold
timm's ViT keys (`cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.<i>.{norm1,attn.qkv,attn.proj,
norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`) plus `head.weight` (C, D, 3, 3) and `head.bias` (C,), saved under a
`state_dict` (or `model`) wrapper, with `module.` prefixes when trained under DataParallel.

camloc's TS-CAM model (`pipeline.wsol.tscam.TscamNet` over `models.vit.TokenGrid`) keeps the same
tensors under other names: the ViT under `features.0.vit.`, the conv head as `features.1.`, and a fixed
identity `classifier` (the class maps are the features, so the GAP contract holds exactly).

SCM (Bai et al., ECCV 2022) is not mapped here (not done: see the branch's report).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from pipeline.errors import CamlocError

TRUNK_MARKERS = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "norm.weight")
HEAD = ("head.weight", "head.bias")


def unwrap(state, source: str = "a TS-CAM checkpoint") -> dict:
    """The flat state dict inside a `state_dict` (TS-CAM, SCM) / `model` (DeiT) wrapper, `module.` prefixes
    removed; `source` names the file in the error for anything else."""
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise CamlocError(f"{source} holds a {type(state).__name__}, not a state dict")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def detect_tscam(keys: Iterable[str] | Mapping[str, Tensor]) -> bool:
    """Whether `keys` (or a state dict, wrapped or not) are in TS-CAM's layout.

    From names alone a DeiT checkpoint (linear `head`) looks the same, so with key names only this says
    "a DeiT/TS-CAM layout with a head and no distillation head"; given the tensors, it also requires the
    head to be a 4-D conv weight, which tells the two apart.
    """
    state = unwrap(keys) if isinstance(keys, Mapping) else None
    names = set(state) if state is not None else {str(k).removeprefix("module.") for k in keys}
    if not (all(m in names for m in TRUNK_MARKERS) and all(h in names for h in HEAD)) or "head_dist.weight" in names:
        return False
    return state is None or getattr(state["head.weight"], "ndim", 0) == 4


def map_tscam(state: Mapping) -> dict[str, Tensor]:
    """TS-CAM checkpoint tensors → camloc TscamNet state-dict keys (wrappers and prefixes undone).

    Raises a one-line CamlocError naming the keys when the head is not a (C, D, 3, 3) conv with a (C,)
    bias; the trunk's shapes are checked where it is loaded (models.weights_fit).
    """
    flat = unwrap(state)
    missing = [k for k in (*TRUNK_MARKERS, *HEAD) if k not in flat]
    if missing:
        raise CamlocError(f"not a TS-CAM checkpoint: missing {', '.join(missing)}")
    weight, bias = flat["head.weight"], flat["head.bias"]
    dim = int(flat["cls_token"].shape[-1])
    if weight.ndim != 4 or tuple(weight.shape[1:]) != (dim, 3, 3) or tuple(bias.shape) != (weight.shape[0],):
        raise CamlocError(f"TS-CAM checkpoint: head.weight {tuple(weight.shape)} / head.bias {tuple(bias.shape)} "
                          f"are not a 3x3 conv from the {dim}-wide token grid to C classes (C, {dim}, 3, 3) / (C,)")
    out = {f"features.0.vit.{k}": v for k, v in flat.items() if k not in HEAD}
    classes = int(weight.shape[0])
    out.update({"features.1.weight": weight, "features.1.bias": bias,
                "classifier.weight": torch.eye(classes, dtype=weight.dtype), "classifier.bias": torch.zeros(classes)})
    return out
