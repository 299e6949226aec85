"""`contrastive_cam`: what a map method receives and returns (docs/plugins.md).

`batch.features` (N, C, h, w) float32, detached, on the model's device; `batch.model.classifier` the
linear head; `classes` (N,) int64, the target class per image. Returns raw (N, h, w) float32 maps on the
same device, before any ReLU, resize or normalisation (evaluation does those, the same for every method).
"""

from __future__ import annotations

import torch
from torch import Tensor


def contrastive_cam(batch, classes: Tensor) -> Tensor:
    """M_c = Σ_k (w[c, k] − mean_j w[j, k]) f_k: the class's CAM minus the mean CAM of all classes."""
    weight = batch.model.classifier.weight.detach().float()  # (K, C)
    contrast = weight[classes] - weight.mean(0, keepdim=True)  # (N, C)
    return torch.einsum("nc,nchw->nhw", contrast, batch.features)
