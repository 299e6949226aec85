"""What a WSOL training method is to camloc (torch): one object, named by its card's `impl`
(pipeline/catalog/wsol.py), that train@B and the rebuild of a trained model call. A method overrides
what it changes; the defaults are vanilla CAM training (`CAM`, the `cam` method itself).

    class MyMethod(WsolMethod):
        def loss(self, model, images, labels, hp):       # e.g. erase patches of the input first
            return super().loss(model, my_erase(images, hp["my_rate"]), labels, hp)

- `build(model, info, hp)`: the model with the method's hooks or heads. It must keep the GAP contract
  (pipeline/models/gap.py), so every map method runs on it; hook points come from the backbone card
  (`info`, e.g. `info.adl_points`), resolved with `models.gap.hook_module`.
- `loss(model, images, labels, hp)`: (loss, logits) for one normalised batch (N, 3, H, W) and labels (N,).
  Under DDP `model` is wrapped: call `model(x)`, or declare `one_process` on the card.
`hp` is the method's full hyperparameter mapping (its card's defaults, params.yaml's values over them).
A method with its own training loop (fsl) names it on its card (`trainer`).
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from pipeline.catalog.backbones import BackboneInfo
from pipeline.models.gap import GapNet

Number = int | float


class WsolMethod:
    def build(self, model: GapNet, info: BackboneInfo, hp: Mapping[str, Number]) -> GapNet:
        return model

    def loss(self, model: nn.Module, images: Tensor, labels: Tensor,
             hp: Mapping[str, Number]) -> tuple[Tensor, Tensor]:
        logits = model(images)
        return nn.functional.cross_entropy(logits.float(), labels), logits


CAM = WsolMethod()  # Zhou et al. 2016: cross-entropy on image labels, nothing added
