"""Self-produced Guidance (Zhang et al., ECCV 2018) on the GAP backbone contract (torch).

Beside the classifier, SPG grows three one-channel pixel branches: B1 and B2 on two intermediate trunk
outputs (`BackboneInfo.spg_taps`, sharing their last layers) and C on the final features. Each learns
from seeds the network produces itself, thresholded into foreground (> high), background (< low) and
ignored pixels:
  B2 from the classifier's normalised class map with (spg_threshold_1h, _1l),
  B1 from sigmoid(B2) with (_2h, _2l),
  C  from the mean of sigmoid(B1) and sigmoid(B2) with (_3h, _3l).
The loss is CE + the three masked pixel BCEs, at input resolution. The branches only shape the trunk:
maps at inference come from the classification branch (the plain CAM), as in the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet, hook_module
from pipeline.wsol.acol import class_map, minmax
from pipeline.wsol.method import WsolMethod

IGNORE = -1.0
MIN_SEED_PIXELS = 30  # the reference's fallback: fewer foreground seeds → threshold at 0.7 × the maximum


def seeds(attention: Tensor, high: float, low: float) -> Tensor:
    """Seed targets (N, 1, H, W) from maps in [0, 1]: 1 where > high, 0 where < low (wins over 1),
    IGNORE elsewhere. An image with fewer than MIN_SEED_PIXELS pixels above `high` takes its foreground
    above 0.7 × its own maximum instead."""
    fg = attention > high
    few = fg.flatten(1).sum(1) < MIN_SEED_PIXELS  # (N,)
    if bool(few.any()):
        peak = attention.flatten(1).amax(1).view(-1, 1, 1, 1)
        fg = torch.where(few.view(-1, 1, 1, 1), attention > 0.7 * peak, fg)
    out = torch.full_like(attention, IGNORE)
    out[fg] = 1.0
    out[attention < low] = 0.0
    return out


def seed_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Pixel BCE-with-logits over the non-ignored seeds (0 when there are none)."""
    valid = target != IGNORE
    if not bool(valid.any()):
        return logits.sum() * 0.0
    return nn.functional.binary_cross_entropy_with_logits(logits[valid], target[valid])


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]


class SpgNet(GapNet):
    """A GapNet with SPG's pixel branches, fed by forward hooks on the two tap modules of the trunk."""

    def __init__(self, features: nn.Module, channels: int, num_classes: int, taps: tuple[str, str],
                 thresholds: tuple[tuple[float, float], ...], arch: str, probe_size: int):
        if len(taps) != 2:
            raise CamlocError(
                f"WSOL method spg cannot apply to backbone {arch}: it declares no two intermediate outputs "
                f"for SPG's B1/B2 branches (BackboneInfo.spg_taps in pipeline/catalog/backbones.py); "
                f"choose another wsol.method"
            )
        super().__init__(features, channels, num_classes)
        self.thresholds = thresholds
        self._tapped: dict[int, Tensor] = {}
        self._probing = True
        tap_modules = [hook_module(features, t, arch) for t in taps]
        for i, module in enumerate(tap_modules):
            module.register_forward_hook(self._keeper(i))
        with torch.no_grad():  # the taps' channel counts, from one small probe image
            training = [(m, m.training) for m in features.modules()]
            features.eval()
            features(torch.zeros(1, 3, probe_size, probe_size))
            for m, flag in training:
                m.training = flag
        c1, c2 = (self._tapped[i].shape[1] for i in (0, 1))
        self._tapped.clear()
        self._probing = False
        width = min(c1, c2, 512)  # the reference: both taps and the branches 1024 wide (ResNet50)
        self.spg_b1 = nn.Sequential(*_conv(c1, width))
        self.spg_b2 = nn.Sequential(*_conv(c2, width))
        self.spg_b_shared = nn.Sequential(*_conv(width, width), nn.Conv2d(width, 1, 1))
        c_width = max(channels // 4, 32)
        self.spg_c = nn.Sequential(*_conv(channels, c_width), nn.Conv2d(c_width, 1, 1))

    def _keeper(self, index: int):
        def hook(_module, _inputs, output):
            if self.training or self._probing:  # inference (map methods) keeps nothing
                self._tapped[index] = output
        return hook

    def branches(self, feats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B1, B2, C) logits, each (N, 1, h_i, w_i), from the taps of the last features() call."""
        t1, t2 = self._tapped.pop(0), self._tapped.pop(1)
        return (self.spg_b_shared(self.spg_b1(t1)), self.spg_b_shared(self.spg_b2(t2)), self.spg_c(feats))


def spg_loss(model: SpgNet, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(CE + the three seed losses, logits) for one normalised batch."""
    size = images.shape[-2:]
    feats = model.features(images)
    logits = model.classifier(feats.mean((2, 3)))

    def up(x: Tensor) -> Tensor:
        return nn.functional.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)

    b1, b2, c = (up(x) for x in model.branches(feats))
    attention = minmax(up(class_map(model.classifier, feats, labels))).detach()
    (h1, l1), (h2, l2), (h3, l3) = model.thresholds
    prob_b2 = torch.sigmoid(b2).detach()
    fused = (torch.sigmoid(b1).detach() + prob_b2) / 2
    loss = (nn.functional.cross_entropy(logits.float(), labels)
            + seed_loss(b2, seeds(attention, h1, l1))
            + seed_loss(b1, seeds(prob_b2, h2, l2))
            + seed_loss(c, seeds(fused, h3, l3)))
    return loss, logits


class Spg(WsolMethod):
    """spg: pixel branches on the backbone's two `spg_taps` (SpgNet, spg_loss)."""

    def build(self, model, info, hp):
        pairs = tuple((hp[f"spg_threshold_{i}h"], hp[f"spg_threshold_{i}l"]) for i in (1, 2, 3))
        return SpgNet(model.features, model.classifier.in_features, model.classifier.out_features, info.spg_taps,
                      pairs, info.name, probe_size=2 * info.size_divisor)

    def loss(self, model, images, labels, hp):
        return spg_loss(model, images, labels)


METHOD = Spg()
