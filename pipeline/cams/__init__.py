"""Map methods and the map store, for cams@B (and `camloc cams --images`).

`METHODS` (name → MethodInfo) is torch-free; `compute_maps`, `maps_for_batch`, `forward_batch` and
`Batch` load torch on first use (a module-level `__getattr__`, as torch-cam does):

    from pipeline.cams import compute_maps
    maps = compute_maps(model, images, classes, "gradcam")  # (N, h, w) float32, raw
"""

from pipeline.catalog.methods import METHODS, MethodInfo

_LAZY = {"compute_maps": "pipeline.cams.compute", "maps_for_batch": "pipeline.cams.compute",
         "forward_batch": "pipeline.cams.methods", "Batch": "pipeline.cams.methods"}
__all__ = ["METHODS", "MethodInfo", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.cams' has no attribute {name!r}")
