"""The attention map methods (torch), for vision transformers (pipeline/models/vit.py): each reads the
head-averaged attention weights a forward pass recorded (`Batch.attention`, (L, N, T, T), T = p prefix
tokens + h·w patch tokens, class token first) and returns RAW (N, h, w) maps, batched on the model's device.

Notation: Ā_l = (1/heads) Σ_heads softmax(q·kᵀ·scale) of block l (row = query token, column = key token);
`Ā_l[0, p:]` is the class token's attention to the patches. A backbone without attention (a CNN) is
refused in one line (params validation already refuses it: MethodInfo.requires = "attention").
"""

from __future__ import annotations

import torch
from torch import Tensor

from pipeline.cams.methods import Batch, _weighted
from pipeline.errors import CamlocError


def _attention(batch: Batch, method: str) -> Tensor:
    if batch.attention is None:
        raise CamlocError(f"map method {method} needs attention weights and this model has none (a CNN, not a "
                          "transformer); remove it from cams.methods / cams.extra_methods for this backbone")
    return batch.attention


def _to_grid(rows: Tensor, batch: Batch) -> Tensor:
    """(N, T) attention rows → their patch part as (N, h, w) (the prefix tokens dropped)."""
    n, _, h, w = batch.features.shape
    return rows[:, rows.shape[1] - h * w :].reshape(n, h, w)


def cls_attention(batch: Batch, classes: Tensor) -> Tensor:
    """Class-token attention: the last layer's class -> patch attention, head-averaged (ViTs).

    Class-free.

    M(x, y) = Ā_L[0, p + y·w + x]
    Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), ICCV 2021 (its
    attention maps); the baseline of TS-CAM (Gao et al., ICCV 2021) and ViTOL (Gupta et al., CVPRW 2022).
    """
    return _to_grid(_attention(batch, "cls_attention")[-1][:, 0], batch)


def rollout_row(attention: Tensor, residual: float = 0.5, row: int = 0) -> Tensor:
    """Row `row` of R = Â_L ··· Â_1, Â_l = rownorm(residual·I + (1 − residual)·Ā_l): (L, N, T, T) → (N, T).

    Only the read row is carried (v ← v·Â_l from the last layer down), so the cost is L·T² per image, not
    the L·T³ of the full product; in float64, since min–max normalisation later magnifies rounding on the
    near-uniform rows of the product."""
    n, t = attention.shape[1], attention.shape[-1]
    v = torch.zeros(n, 1, t, device=attention.device, dtype=torch.float64)
    v[:, 0, row] = 1.0
    for a in attention.flip(0):  # the last layer first: e_rowᵀ Â_L, then · Â_{L−1}, ...
        mixed = (1.0 - residual) * a.double()
        mixed.diagonal(dim1=-2, dim2=-1).add_(residual)
        v = v @ (mixed / mixed.sum(-1, keepdim=True))
    return v[:, 0].float()


def attention_rollout(batch: Batch, classes: Tensor) -> Tensor:
    """Attention rollout: product of 0.5·(A + I) row-normalised over layers, class row (ViTs).

    Â_l = (½ Ā_l + ½ I) / row sums;  R = Â_L Â_{L−1} ··· Â_1;  M(x, y) = R[0, p + y·w + x]  (class-free)
    Abnar & Zuidema, "Quantifying Attention Flow in Transformers", ACL 2020 (the identity stands for the
    residual connection).
    """
    return _to_grid(rollout_row(_attention(batch, "attention_rollout")), batch)


def tscam_maps(attention: Tensor, class_maps: Tensor) -> Tensor:
    """(Σ_l Ā_l[0, p:]) reshaped to the grid, times the class maps (N, h, w)."""
    n, h, w = class_maps.shape
    summed = attention.sum(0)[:, 0]  # (N, T)
    return summed[:, summed.shape[1] - h * w :].reshape(n, h, w) * class_maps


def tscam(batch: Batch, classes: Tensor) -> Tensor:
    """TS-CAM: class -> patch attention summed over layers, times the class map (ViTs).

    M_c(x, y) = (Σ_l Ā_l[0, p + y·w + x]) · S_c(x, y), with S_c = Σ_k w[c, k] f_k the class map of the
    linear head (CAM, no bias); on a model trained with `wsol: {method: tscam}` the features are the 3×3
    conv head's class maps and the head is the identity, so S_c is TS-CAM's semantic map itself.
    Gao et al., "TS-CAM: Token Semantic Coupled Attention Map for Weakly Supervised Object
    Localization", ICCV 2021 (vasgaowei/TS-CAM, lib/models/deit.py: `attn_weights.sum(0)[:, 0, 1:]`).
    """
    attention = _attention(batch, "tscam")
    weight = batch.model.classifier.weight.detach().float()  # (K, C)
    return tscam_maps(attention, _weighted(weight[classes], batch.features))
