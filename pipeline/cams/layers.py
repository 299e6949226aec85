"""Maps at any trunk layer (torch), for cams@B's `cams.layers`: a layer is a module path relative to
`model.features` (e.g. "6" or "6.0"; `last` is the trunk's output, the default and today's layer).

`at_layer(batch, path)` turns a last-layer `Batch` into one whose features are that module's output
(cloned before any in-place op of the next module: an in-place ReLU after a conv would otherwise rewrite
it) and whose `layer` names it; every layered method then runs unchanged, its gradients taken through
the rest of the trunk (`pipeline.cams.trunk.rest_of_trunk`). `layercam_fused` is LayerCAM's multi-layer fusion.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.cams.methods import Batch, layercam
from pipeline.camsparams import LAST_LAYER
from pipeline.errors import CamlocError


def trunk_paths(model: nn.Module) -> list[str]:
    """Every module path of the trunk, in definition order, `last` first."""
    return [LAST_LAYER, *(name for name, _ in model.features.named_modules() if name)]


def check_layers(model: nn.Module, paths, where: str) -> None:
    """Refuse a path that names no trunk module, in one line listing the valid paths."""
    valid = trunk_paths(model)
    bad = [p for p in paths if p not in valid]
    if bad:
        raise CamlocError(f"{where}: {', '.join(map(repr, bad))} names no module of the trunk; valid paths: "
                          f"{', '.join(valid)}")


def at_layer(batch: Batch, path: str) -> Batch:
    """`batch` with the features of trunk module `path` (the batch itself for `last`)."""
    if path in (LAST_LAYER, ""):
        return batch
    module = batch.model.features.get_submodule(path)
    seen: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
    try:
        with torch.no_grad():
            batch.model.features(batch.images)
    finally:
        handle.remove()
    if seen[0].ndim != 4:  # e.g. a transformer block's (N, T, D) tokens
        raise CamlocError(f"cams.layers: trunk path {path!r} outputs a {tuple(seen[0].shape)} tensor, not an "
                          "(N, C, h, w) feature map; choose a path that does (for a transformer: last)")
    return replace(batch, features=seen[0].float(), layer=path)


def layercam_fused(batch: Batch, classes: Tensor, layers=(LAST_LAYER,), gamma: float = 2.0) -> Tensor:
    """LayerCAM fused over cams.layers: tanh(2·M/max M) per layer, upsampled, element-wise max.

    The paper's rule, at the largest of the layers' resolutions.

    Per layer l: M_l = ReLU(LayerCAM_l) (the paper's map keeps its ReLU); M̂_l = tanh(γ · M_l / max M_l)
    (Eq. 9, γ = 2: shallow layers' small values raised to the deep layers' range; 0 where max M_l = 0);
    each M̂_l bilinearly resized (align_corners=False) to the largest h×w among the layers, then fused by
    the element-wise maximum. Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for
    Localization", IEEE TIP 2021, §III-C. `layers` come from `cams.layers` (default: the last only).
    """
    maps = [layercam(at_layer(batch, la), classes).clamp(min=0) for la in layers]  # each (N, h_l, w_l)
    size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
    fused = None
    for m in maps:
        top = m.flatten(1).amax(1).view(-1, 1, 1)  # (N, 1, 1)
        scaled = torch.tanh(gamma * m / torch.where(top > 0, top, torch.ones_like(top)))
        up = F.interpolate(scaled[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
        fused = up if fused is None else torch.maximum(fused, up)
    return fused
