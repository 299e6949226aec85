"""The rest of a trunk after one of its modules (torch): what the layered map methods differentiate
through when their features come from an inner layer (`pipeline.cams.layers.at_layer`). Kept apart from
`layers` so that `methods` can use it without importing the module that builds on `methods`."""

from __future__ import annotations

from torch import Tensor, nn


def _suffix(trunk: nn.Module, path: str) -> nn.Module | None:
    """The modules after top-level child `path` of a Sequential trunk (None when `path` is nested)."""
    if not isinstance(trunk, nn.Sequential) or "." in path:
        return None
    names = [name for name, _ in trunk.named_children()]
    return trunk[names.index(path) + 1 :]


def rest_of_trunk(trunk: nn.Module, layer: str, images: Tensor, feats: Tensor) -> Tensor:
    """The trunk's output (N, C', h', w') on `images` when the output of its module `layer` is `feats`."""
    rest = _suffix(trunk, layer)
    if rest is not None:
        return rest(feats.clone())  # clone: an in-place first module must not write into `feats`
    module = trunk.get_submodule(layer)
    handle = module.register_forward_hook(lambda _m, _i, _out: feats.clone())  # the output replaced
    try:
        return trunk(images)
    finally:
        handle.remove()
