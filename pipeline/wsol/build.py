"""Models and training steps per WSOL method (torch), for train@B and for rebuilding a checkpoint (cams@B).

    model = build_model("tiny_gap_cnn", 6, {"method": "adl", "adl_drop_rate": 0.75, ...})
    loss, logits = training_loss(model, images, labels, wsol)   # one normalised batch

`wsol` is the flat mapping of params.yaml / checkpoint meta ({method, hyperparameters...}). Methods
that change only the input (has, cutmix) or only the loss keep the plain GapNet; adl rewires the trunk
with parameter-free layers; acol and spg return GapNet subclasses with extra heads. Every model keeps
the GAP contract of models.backbones, so every map method runs on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from pipeline.errors import CamlocError
from pipeline.models.backbones import GapNet, build_backbone
from pipeline.catalog.backbones import BACKBONES
from pipeline.wsol.acol import AcolNet, acol_loss
from pipeline.wsol.adl import insert_adl
from pipeline.wsol.augment import cutmix, hide_and_seek
from pipeline.catalog.wsol import WSOL_METHODS, resolve
from pipeline.wsol.spg import SpgNet, spg_loss


def _full(wsol: Mapping | None) -> dict:
    wsol = dict(wsol or {"method": "cam"})
    method = wsol.pop("method", "cam")
    return {"method": method, **resolve(method, wsol, "wsol")}


def build_model(arch: str, num_classes: int, wsol: Mapping | None = None, pretrained: bool = False,
                weights: str | None = None, **options) -> GapNet:
    """The backbone `arch` with the architectural hooks of WSOL method `wsol["method"]`."""
    wsol = _full(wsol)
    method = wsol["method"]
    model = build_backbone(arch, num_classes, pretrained=pretrained, weights=weights, **options)
    info = BACKBONES.get(arch)
    channels = model.classifier.in_features
    if method == "adl":
        insert_adl(model.features, info.adl_points, wsol["adl_drop_rate"], wsol["adl_threshold"], arch)
    elif method == "acol":
        model = AcolNet(model.features, channels, num_classes, wsol["acol_threshold"])
    elif method == "spg":
        pairs = tuple((wsol[f"spg_threshold_{i}h"], wsol[f"spg_threshold_{i}l"]) for i in (1, 2, 3))
        model = SpgNet(model.features, channels, num_classes, info.spg_taps, pairs, arch,
                       probe_size=2 * info.size_divisor)
    return model


def training_loss(model: nn.Module, images: Tensor, labels: Tensor, wsol: Mapping | None) -> tuple[Tensor, Tensor]:
    """(loss, logits) of WSOL method `wsol` for one normalised batch (N, 3, H, W) and labels (N,).

    Logits are those of the images the model saw (for CutMix, the mixed ones; accuracy is then measured
    against the images' own labels, as the reference's training log does).
    """
    wsol = _full(wsol)
    method = wsol["method"]
    if WSOL_METHODS.get(method).supervision != "labels":
        raise CamlocError(f"WSOL method {method} does not train from image labels (see pipeline/wsol/)")
    ce = nn.functional.cross_entropy
    if method == "acol":
        return acol_loss(model, images, labels)
    if method == "spg":
        return spg_loss(model, images, labels)
    if method == "has":
        images = hide_and_seek(images, wsol["has_grid_size"], wsol["has_drop_rate"])
    if method == "cutmix":
        classes = getattr(model, "module", model).classifier.out_features  # model may be DDP-wrapped
        mixed, soft = cutmix(images, labels, classes, wsol["cutmix_beta"], wsol["cutmix_prob"])
        logits = model(mixed)
        return ce(logits.float(), soft), logits
    logits = model(images)
    return ce(logits.float(), labels), logits
