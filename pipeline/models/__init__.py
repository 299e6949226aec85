"""Backbones, for params validation (names), train@B and cams@B.

`BACKBONES` (name → BackboneInfo) is torch-free; `build_backbone`, `GapNet` and the checkpoint helpers
load torch on first use (a module-level `__getattr__`, as torch-cam does), so validating names never
imports torch.
"""

from pipeline.catalog.backbones import BACKBONES, BackboneInfo

_LAZY = {"build_backbone": "pipeline.models.backbones", "GapNet": "pipeline.models.gap"}
__all__ = ["BACKBONES", "BackboneInfo", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.models' has no attribute {name!r}")
