"""Adversarial Complementary Learning (Zhang et al., CVPR 2018) on the GAP backbone contract (torch).

Classifier A is the backbone's own linear head; its class map for the target class, min-max normalised
per image, marks the discriminative part. Positions where that map is >= acol_threshold are erased (set
to 0) in the features and a second linear head B classifies what is left, so the trunk learns to make the
rest of the object discriminative too. The training loss is CE(A) + CE(B). At inference the `cam` map is
the element-wise max of the two normalised class maps, as in the reference; every other map method sees
head A (the classification output) and works unchanged.

The reference's heads are three conv layers; ours are the linear (= 1×1 conv) GAP heads every camloc
backbone has, so `model.features` stays the one tensor all map methods hook.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.models.gap import GapNet
from pipeline.wsol.method import WsolMethod


def class_map(head: nn.Linear, feats: Tensor, classes: Tensor) -> Tensor:
    """The linear head's score map of each image's class: w_c · f(x, y) + b_c. (N, C, h, w) → (N, 1, h, w)"""
    weight = head.weight[classes].to(feats.dtype)  # (N, C)
    out = torch.einsum("nc,nchw->nhw", weight, feats).unsqueeze(1)
    return out + head.bias[classes].to(feats.dtype).view(-1, 1, 1, 1)


def minmax(maps: Tensor) -> Tensor:
    """Per-image min-max normalisation of (N, 1, h, w) to [0, 1] (a constant map becomes 0)."""
    flat = maps.flatten(1)
    lo, hi = flat.amin(1).view(-1, 1, 1, 1), flat.amax(1).view(-1, 1, 1, 1)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def erase(feats: Tensor, attention: Tensor, threshold: float) -> Tensor:
    """Features (N, C, h, w) set to 0 exactly where attention (N, 1, h, w) >= threshold."""
    return feats * (attention < threshold).to(feats.dtype)


class AcolNet(GapNet):
    """A GapNet with ACoL's second classifier. forward() is head A's logits (the model's prediction)."""

    def __init__(self, features: nn.Module, channels: int, num_classes: int, threshold: float):
        super().__init__(features, channels, num_classes)
        self.classifier_b = nn.Linear(channels, num_classes)
        self.threshold = threshold

    def two_heads(self, feats: Tensor, classes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits A, logits B, erased features) for features (N, C, h, w) and target classes (N,)."""
        logits_a = self.classifier(feats.mean((2, 3)))
        attention = minmax(class_map(self.classifier, feats, classes)).detach()
        erased = erase(feats, attention, self.threshold)
        return logits_a, self.classifier_b(erased.mean((2, 3))), erased

    @torch.no_grad()
    def cam_maps(self, feats: Tensor, classes: Tensor) -> Tensor:
        """ACoL's inference map: max(norm(map A), norm(map B on the erased features)). (N, h, w)"""
        _, _, erased = self.two_heads(feats, classes)
        map_a = minmax(class_map(self.classifier, feats, classes))
        map_b = minmax(class_map(self.classifier_b, erased, classes))
        return torch.maximum(map_a, map_b).squeeze(1)


def acol_loss(model: AcolNet, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(CE(A) + CE(B), logits A) for one normalised batch, erasing with the true labels' maps."""
    logits_a, logits_b, _ = model.two_heads(model.features(images), labels)
    ce = nn.functional.cross_entropy
    return ce(logits_a.float(), labels) + ce(logits_b.float(), labels), logits_a


class Acol(WsolMethod):
    """acol: a second head on features erased where head A's map is high (AcolNet, acol_loss)."""

    def build(self, model, info, hp):
        return AcolNet(model.features, model.classifier.in_features, model.classifier.out_features,
                       hp["acol_threshold"])

    def loss(self, model, images, labels, hp):
        return acol_loss(model, images, labels)


METHOD = Acol()
