"""The GAP contract every camloc model keeps (a leaf module: torch only).

`features(x)` → (N, C, h, w) and `classifier: nn.Linear`, with `model(x) == classifier(features(x).mean((2, 3)))`.
That structure is what makes a class activation map exact (PROTOCOL §1): the CAM of class c is
`einsum("k,khw->hw", classifier.weight[c], features(x)[0])`. Backbone builders (built-in or a plugin's)
return a GapNet; WSOL methods may return a subclass with extra heads, keeping `features` and `classifier`.

Hook points (where a WSOL method such as ADL or SPG attaches, `BackboneInfo.adl_points` / `spg_taps`) are
named module paths such as `layer3.0`: the first name is looked up in the trunk's `part_names` (set by the
builder that fixes the trunk's order: name → the child's path in the trunk), the rest is the path inside
that part. A trunk without `part_names`, or a first name it does not list, is read as a plain module path.
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import CamlocError


class GapNet(nn.Module):
    """trunk → global average pooling → linear; the CAM-exact classifier every backbone becomes."""

    def __init__(self, features: nn.Module, channels: int, num_classes: int):
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))  # (N, C, h, w) → (N, C) → (N, classes)


def named_sequential(parts: dict[str, nn.Module]) -> nn.Sequential:
    """`nn.Sequential` of `parts` in order (state-dict keys stay positional: "0", "1", ...) whose hook points
    can be named by the parts' names (`part_names`)."""
    trunk = nn.Sequential(*parts.values())
    trunk.part_names = {name: str(i) for i, name in enumerate(parts)}
    return trunk


def hook_path(trunk: nn.Module, path: str, arch: str = "") -> str:
    """The module path in `trunk` of named hook point `path` (a CamlocError naming it when none exists)."""
    head, _, rest = path.partition(".")
    names: dict[str, str] = getattr(trunk, "part_names", None) or {}
    resolved = ".".join(p for p in (names[head], rest) if p) if head in names else path
    try:
        trunk.get_submodule(resolved)
    except AttributeError:
        raise CamlocError(f"backbone {arch or type(trunk).__name__} has no module at hook point {path!r} "
                          f"(named parts: {', '.join(names) or 'none'}); fix its card's adl_points / spg_taps") from None
    return resolved


def hook_module(trunk: nn.Module, path: str, arch: str = "") -> nn.Module:
    """The trunk submodule at named hook point `path`."""
    return trunk.get_submodule(hook_path(trunk, path, arch))
