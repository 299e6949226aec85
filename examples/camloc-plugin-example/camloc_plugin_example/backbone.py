"""`conv_head_cnn`: a small CNN whose native classifier is a 1x1 convolution followed by global average
pooling, handed to camloc as a GapNet (the GAP contract: features → (N, C, h, w), a linear head on
their spatial mean). A 1x1 conv and the spatial mean commute, so the conv's weights are the linear head's."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet, named_sequential


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ConvHeadNet(nn.Module):
    """The network as its authors wrote it: stages, then a 1x1 conv to class maps, then their mean."""

    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        self.features = named_sequential({"stage1": _stage(3, 16), "stage2": _stage(16, 32),
                                          "stage3": _stage(32, width)})
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).mean((2, 3))  # (N, K, h, w) → (N, K)


def build(info, num_classes: int, pretrained: bool = False, weights: str | None = None, **options) -> GapNet:
    """The camloc builder of the card: ConvHeadNet → GapNet with the same function."""
    if pretrained or weights:
        raise CamlocError(f"backbone {info.name} has no pretrained weights; set pretrained: false, weights: null")
    net = ConvHeadNet(num_classes, info.channels)
    model = GapNet(net.features, info.channels, num_classes)
    with torch.no_grad():
        model.classifier.weight.copy_(net.head.weight.flatten(1))  # (K, C, 1, 1) → (K, C)
        model.classifier.bias.copy_(net.head.bias)
    return model
