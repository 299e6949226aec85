"""Models and training steps per WSOL method (torch), for train@B and for rebuilding a checkpoint (cams@B).

    model = build_model("tiny_gap_cnn", 6, {"method": "adl", "adl_drop_rate": 0.75, ...})
    loss, logits = training_loss(model, images, labels, wsol)   # one normalised batch

`wsol` is the flat mapping of params.yaml / checkpoint meta ({method, hyperparameters...}). The method's
card (pipeline/catalog/wsol.py) names its object (pipeline/wsol/method.py), loaded on first use; the
object's `build` adds its hooks or heads and its `loss` is the training step. Every model keeps the
GAP contract (pipeline/models/gap.py), so every map method runs on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from pipeline.catalog.backbones import BACKBONES
from pipeline.catalog.wsol import DEFAULT_METHOD, WSOL_METHODS, resolve
from pipeline.errors import CamlocError
from pipeline.models.backbones import build_backbone
from pipeline.models.gap import GapNet


def _full(wsol: Mapping | None) -> dict:
    wsol = dict(wsol or {"method": DEFAULT_METHOD})
    method = wsol.pop("method", DEFAULT_METHOD)
    return {"method": method, **resolve(method, wsol, "wsol")}


def build_model(arch: str, num_classes: int, wsol: Mapping | None = None, pretrained: bool = False,
                weights: str | None = None, **options) -> GapNet:
    """The backbone `arch` with the architectural hooks of WSOL method `wsol["method"]`."""
    wsol = _full(wsol)
    model = build_backbone(arch, num_classes, pretrained=pretrained, weights=weights, **options)
    return WSOL_METHODS.load(wsol["method"]).build(model, BACKBONES.get(arch), wsol)


def training_loss(model: nn.Module, images: Tensor, labels: Tensor, wsol: Mapping | None) -> tuple[Tensor, Tensor]:
    """(loss, logits) of WSOL method `wsol` for one normalised batch (N, 3, H, W) and labels (N,).

    Logits are those of the images the model saw (for CutMix, the mixed ones; accuracy is then measured
    against the images' own labels, as the reference's training log does).
    """
    wsol = _full(wsol)
    method = wsol["method"]
    if WSOL_METHODS.get(method).supervision != "labels":
        raise CamlocError(f"WSOL method {method} does not train from image labels (see pipeline/wsol/)")
    return WSOL_METHODS.load(method).loss(model, images, labels, wsol)
