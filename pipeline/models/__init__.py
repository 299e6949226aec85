"""Backbone registry and checkpoints: `build_backbone(name, num_classes, ...)` → a CAM-exact GAP classifier."""

from pipeline.models.backbones import BACKBONES, BackboneSpec, GapNet, build_backbone

__all__ = ["BACKBONES", "BackboneSpec", "GapNet", "build_backbone"]
