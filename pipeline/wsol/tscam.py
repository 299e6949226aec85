"""TS-CAM as a WSOL training method (Gao et al., ICCV 2021) on camloc's transformer backbones (torch).

The model: the backbone's token grid (N, D, h, w) (pipeline/models/vit.py) → a 3×3 conv to C class maps
(padding 1) → global average pooling gives the logits, trained with cross-entropy on image labels, as
TS-CAM's `TSCAM` head (vasgaowei/TS-CAM, lib/models/deit.py). On the GAP contract the conv belongs to the
features: `features` = (token grid, conv), C channels, and the `classifier` is a fixed identity (no bias),
so `model(x) == classifier(features(x).mean((2, 3)))` holds exactly and every map method runs on the
class maps. The inference map (`cam` on this model, and the `tscam` map method) is TS-CAM's coupling:
M_c = (Σ_l Ā_l[0, patches]) · S_c, pipeline/cams/attention.py.

A released TS-CAM checkpoint loaded as `weights:` (models.vit_layouts) brings its conv head, which starts
this head when its class count fits.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from pipeline.cams.attention import tscam_maps
from pipeline.errors import CamlocError
from pipeline.models.gap import GapNet
from pipeline.wsol.method import WsolMethod

log = logging.getLogger(__name__)


class TscamNet(GapNet):
    """features = (token grid, 3×3 conv D → C); classifier = identity; cam_maps = TS-CAM's coupled map."""

    cam_maps_use_attention = True  # pipeline.cams.methods.cam passes the batch's attention

    def __init__(self, grid: nn.Module, dim: int, num_classes: int):
        super().__init__(nn.Sequential(grid, nn.Conv2d(dim, num_classes, 3, padding=1)), num_classes, num_classes)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(num_classes))
            self.classifier.bias.zero_()
        self.classifier.requires_grad_(False)  # the identity: the conv is the head

    @property
    def head(self) -> nn.Conv2d:
        return self.features[1]

    @torch.no_grad()
    def cam_maps(self, feats: Tensor, classes: Tensor, attention: Tensor | None) -> Tensor:
        """TS-CAM's map of each image's class (N, h, w): summed class-token attention × its class map."""
        class_maps = feats[torch.arange(len(classes), device=feats.device), classes]  # (N, h, w)
        if attention is None:
            raise CamlocError("the TS-CAM model's map needs the attention weights of its forward pass "
                              "(pipeline.cams.methods.forward_batch records them)")
        return tscam_maps(attention, class_maps)


class Tscam(WsolMethod):
    """tscam: the 3×3 conv head on the token grid (TscamNet); cross-entropy on image labels."""

    def build(self, model, info, hp):
        if not getattr(info, "attention", False) or not hasattr(model.features, "record_attention"):
            raise CamlocError(f"WSOL method tscam needs a transformer backbone (attention weights); {info.name} "
                              "has none")
        dim, classes = model.classifier.in_features, model.classifier.out_features
        net = TscamNet(model.features, dim, classes)
        nn.init.trunc_normal_(net.head.weight, std=0.02)  # timm's _init_weights, which TS-CAM applies to it
        nn.init.zeros_(net.head.bias)
        released = getattr(model, "released_head", None)
        if released is not None:
            if tuple(released["weight"].shape) == tuple(net.head.weight.shape):
                net.head.load_state_dict(released)
            else:
                log.info("the released TS-CAM head %s does not fit %d classes; it starts from scratch",
                         tuple(released["weight"].shape), classes)
        return net


METHOD = Tscam()
