"""Attention-based Dropout Layer (Choe & Shim, CVPR 2019), inserted after declared trunk modules.

In training, ADL takes the channel-mean self-attention A (N, 1, h, w) of its input and, once per batch,
multiplies the input by either the drop mask [A < adl_threshold · max A] (per image; with probability
adl_drop_rate) or the importance map sigmoid(A) (otherwise). It has no parameters and is the identity in
eval mode, so maps are computed on the plain trunk. Where the layers go is a per-architecture property:
`BackboneInfo.adl_points` (dotted paths of trunk submodules; catalog/backbones.py).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.errors import CamlocError
from pipeline.models.gap import hook_path
from pipeline.wsol.method import WsolMethod


class ADL(nn.Module):
    def __init__(self, drop_rate: float, threshold: float):
        super().__init__()
        if not (0 <= drop_rate <= 1 and 0 <= threshold <= 1):
            raise ValueError(f"ADL drop_rate and threshold must lie in [0, 1], got {drop_rate}, {threshold}")
        self.drop_rate, self.threshold = drop_rate, threshold

    def drop_mask(self, attention: Tensor) -> Tensor:
        """(N, 1, h, w) of 0/1: 0 where the attention reaches `threshold` × its per-image maximum."""
        peak = attention.flatten(1).amax(1).view(-1, 1, 1, 1)  # (N, 1, 1, 1)
        return (attention < self.threshold * peak).to(attention.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        attention = x.mean(1, keepdim=True)  # (N, 1, h, w)
        if float(torch.rand(())) < self.drop_rate:
            return x * self.drop_mask(attention)
        return x * torch.sigmoid(attention)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, threshold={self.threshold}"


def insert_adl(trunk: nn.Module, points: tuple[str, ...], drop_rate: float, threshold: float,
               arch: str) -> None:
    """Put an ADL after each trunk submodule named in `points` (replaced by Sequential(module, ADL))."""
    if not points:
        raise CamlocError(
            f"WSOL method adl cannot apply to backbone {arch}: it declares no ADL insertion points "
            f"(BackboneInfo.adl_points in pipeline/catalog/backbones.py); choose another wsol.method"
        )
    for path in [hook_path(trunk, p, arch) for p in points]:  # resolved before any is wrapped
        parent_path, _, name = path.rpartition(".")
        parent = trunk.get_submodule(parent_path) if parent_path else trunk
        original = parent.get_submodule(name)
        setattr(parent, name, nn.Sequential(original, ADL(drop_rate, threshold)))


class Adl(WsolMethod):
    """adl: parameter-free ADL layers after the backbone's `adl_points`; identity at inference."""

    def build(self, model, info, hp):
        insert_adl(model.features, info.adl_points, hp["adl_drop_rate"], hp["adl_threshold"], info.name)
        return model


METHOD = Adl()
