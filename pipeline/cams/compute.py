"""The batched entry point of the map methods (torch), for cams@B and `camloc cams --images`.

    from pipeline.cams import compute_maps
    maps = compute_maps(model, images, classes, "gradcam")  # (N, h, w) float32, raw

Maps are RAW: at feature resolution, before any final ReLU, resize or normalisation (PROTOCOL §1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.cams.hooks import eval_mode, model_device
from pipeline.cams.methods import Batch, forward_batch
from pipeline.catalog.methods import METHODS

__all__ = ["Batch", "compute_maps", "forward_batch", "maps_for_batch"]


def _as_classes(classes: Tensor | Sequence[int], n: int, num_classes: int, device) -> Tensor:
    if not isinstance(classes, Tensor):  # a copy: torch refuses to wrap read-only arrays (memory-mapped indexes)
        classes = np.array(classes, dtype=np.int64)
    classes = torch.as_tensor(classes, dtype=torch.long, device=device).reshape(-1)
    if classes.numel() != n:
        raise ValueError(f"got {classes.numel()} target classes for {n} images")
    if n and (classes.min() < 0 or classes.max() >= num_classes):
        raise ValueError(f"target classes must lie in [0, {num_classes}), got {classes.tolist()}")
    return classes


def maps_for_batch(batch: Batch, classes: Tensor | Sequence[int], method: str, **opts) -> Tensor:
    """Raw maps (N, h, w) float32 of `method` for one already-computed forward pass."""
    fn = METHODS.load(method)
    cls = _as_classes(classes, batch.features.shape[0], batch.logits.shape[1], batch.features.device)
    return fn(batch, cls, **opts).float()


def compute_maps(
    model: nn.Module, images: Tensor, classes: Tensor | Sequence[int], method: str, **opts
) -> Tensor:
    """Raw score maps of `method` for `images` (N, 3, H, W) and target `classes` (N,).

    Returns a float32 tensor (N, h, w) at feature resolution on the model's device: no final ReLU, no
    resize, no normalisation. Runs batched on whatever device the model is on; the model's parameters,
    their `.grad` and every module's train/eval flag are left as found. `opts` go to the method (e.g.
    `chunk=` for scorecam). Raises UnknownNameError (a CamlocError listing the choices) for an unknown
    method.
    """
    METHODS.get(method)  # unknown names fail before any work
    images = images.to(model_device(model))
    with eval_mode(model):
        batch = forward_batch(model, images)
        return maps_for_batch(batch, classes, method, **opts)
