"""The map methods (torch), for cams@B: each turns one batch of features into RAW score maps at feature
resolution. Each is named by a card of the torch-free registry
`pipeline.catalog.methods.METHODS`, whose `impl` points here.

Every method returns `(N, h, w)` float32 maps *before* any final ReLU, resize or normalisation: those
belong to evaluation (PROTOCOL §1) and are the same for every method, so method rows differ only in the
map. Notation: `f_k` is channel k of the last feature map (N×C×h×w), `w[c, k]` the classifier's weight,
`y_c` the logit (pre-softmax score) of the target class c, `g_k = ∂y_c/∂f_k`.

Backbone contract: `model.features(x)` → N×C×h×w and `model.classifier: nn.Linear`, with
`model(x) == model.classifier(model.features(x).mean((2, 3)))`. Gradients are therefore taken with
respect to the feature tensor (a leaf with `requires_grad`), so no hook and no parameter gradient is
involved: `.grad` of every parameter is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.cams.trunk import rest_of_trunk

EPS = 1e-7  # keeps the Grad-CAM++ / XGrad-CAM denominators finite where activations vanish


@dataclass(frozen=True)
class Batch:
    """One forward pass shared by every method and target class of a batch."""

    model: nn.Module
    images: Tensor  # (N, 3, H, W), on the model's device
    features: Tensor  # (N, C, h, w), detached
    logits: Tensor  # (N, K), detached
    layer: str = ""  # trunk path the features come from ("" = the trunk's output, `model.features`)
    # A transformer's head-averaged attention weights of every block, (L, N, T, T) with T = prefix tokens
    # + h·w (pipeline/models/vit.py); None for a model without attention (a CNN).
    attention: Tensor | None = None


def attention_source(model: nn.Module) -> nn.Module | None:
    """The trunk module that can record attention weights (`record_attention()`, models.vit.TokenGrid)."""
    features = getattr(model, "features", None)
    for m in features.modules() if isinstance(features, nn.Module) else ():
        if hasattr(m, "record_attention"):
            return m
    return None


def forward_batch(model: nn.Module, images: Tensor) -> Batch:
    """Run the features once (no autograd graph); the classifier runs on their spatial mean. A model with
    attention (a transformer) also records its head-averaged attention weights (`Batch.attention`)."""
    source = attention_source(model)
    with torch.no_grad():
        if source is None:
            feats, attention = model.features(images), None  # (N, C, h, w)
        else:
            with source.record_attention() as seen:
                feats = model.features(images)
            attention = torch.stack(seen).float()  # (L, N, T, T)
        if feats.ndim != 4:
            raise ValueError(f"model.features must return N×C×h×w, got shape {tuple(feats.shape)}")
        logits = model.classifier(feats.mean((2, 3)))  # (N, K)
    return Batch(model, images, feats.float(), logits.float(), attention=attention)


def logits_of(batch: Batch, feats: Tensor) -> Tensor:
    """The logits (N, K) as a function of the features at `batch.layer`: the classifier on their mean at
    the last layer; at an inner layer, the rest of the trunk first (`pipeline.cams.trunk.rest_of_trunk`)."""
    if not batch.layer:
        return batch.model.classifier(feats.mean((2, 3)))
    trunk_out = rest_of_trunk(batch.model.features, batch.layer, batch.images, feats)
    return batch.model.classifier(trunk_out.mean((2, 3)))


def target_grads(batch: Batch, classes: Tensor) -> Tensor:
    """g = ∂y_c/∂f for each image's class c, by autograd through the model's head only (the classifier,
    and at an inner `batch.layer` the rest of the trunk). (N, C, h, w)"""
    with torch.enable_grad():
        feats = batch.features.detach().clone().requires_grad_(True)
        logits = logits_of(batch, feats)  # (N, K)
        target = logits.gather(1, classes.view(-1, 1)).sum()
        (grads,) = torch.autograd.grad(target, feats)
    return grads.detach()


def _weighted(weights: Tensor, feats: Tensor) -> Tensor:
    """Σ_k weights[n, k] f_k: (N, C) × (N, C, h, w) → (N, h, w)."""
    return torch.einsum("nc,nchw->nhw", weights, feats)


def cam(batch: Batch, classes: Tensor) -> Tensor:
    """CAM: class weights of the linear head times the last feature map (no bias, no ReLU).

    M_c(x, y) = Σ_k w[c, k] f_k(x, y)
    Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016.
    A model trained with a WSOL method that defines its own inference map (ACoL: the max over its two
    branches, pipeline/wsol/acol.py) provides `cam_maps(features, classes)`, used instead (TS-CAM's
    model, pipeline/wsol/tscam.py, takes the batch's attention too: `cam_maps_use_attention`).
    """
    if hasattr(batch.model, "cam_maps"):
        if getattr(batch.model, "cam_maps_use_attention", False):  # TS-CAM's model (pipeline/wsol/tscam.py)
            return batch.model.cam_maps(batch.features, classes, batch.attention)
        return batch.model.cam_maps(batch.features, classes)
    weight = batch.model.classifier.weight.detach().float()  # (K, C)
    return _weighted(weight[classes], batch.features)


def gradcam(batch: Batch, classes: Tensor) -> Tensor:
    """Grad-CAM: channels weighted by their spatially averaged logit gradient.

    α_k = (1/hw) Σ_xy g_k(x, y);  M_c = Σ_k α_k f_k  (the paper's final ReLU is left to evaluation)
    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017. On a GAP + linear model it equals CAM / (h·w).
    """
    grads = target_grads(batch, classes)
    return _weighted(grads.mean((2, 3)), batch.features)


def gradcampp(batch: Batch, classes: Tensor) -> Tensor:
    """Grad-CAM++: pixel-weighted positive gradients, closed form of the exponential-score trick.

    a_k(x, y) = g² / (2 g² + Σ_ab f_k(a, b) · g³)  (0 where g = 0);
    α_k = Σ_xy a_k(x, y) · ReLU(g_k(x, y));  M_c = Σ_k α_k f_k
    Chattopadhyay et al., "Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks",
    WACV 2018. The denominator is applied (torchcam 0.5 drops it).
    """
    grads = target_grads(batch, classes)  # (N, C, h, w)
    g2, g3 = grads.pow(2), grads.pow(3)
    sum_f = batch.features.sum((2, 3), keepdim=True)  # (N, C, 1, 1)
    a = g2 / (2 * g2 + sum_f * g3 + EPS)
    a = torch.where(grads != 0, a, torch.zeros_like(a))
    alpha = (a * grads.clamp(min=0)).sum((2, 3))  # (N, C)
    return _weighted(alpha, batch.features)


def xgradcam(batch: Batch, classes: Tensor) -> Tensor:
    """XGrad-CAM: gradients weighted by each channel's normalised activation.

    α_k = Σ_xy g_k(x, y) · f_k(x, y) / (Σ_ab f_k(a, b) + ε);  M_c = Σ_k α_k f_k
    Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs", BMVC 2020.
    """
    grads = target_grads(batch, classes)
    feats = batch.features
    alpha = (grads * feats).sum((2, 3)) / (feats.sum((2, 3)) + EPS)  # (N, C)
    return _weighted(alpha, feats)


def layercam(batch: Batch, classes: Tensor) -> Tensor:
    """LayerCAM: element-wise positive gradients times activations, summed over channels.

    M_c(x, y) = Σ_k ReLU(g_k(x, y)) · f_k(x, y)
    Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    IEEE TIP 2021.
    """
    grads = target_grads(batch, classes)
    return (grads.clamp(min=0) * batch.features).sum(1)


def hirescam(batch: Batch, classes: Tensor) -> Tensor:
    """HiResCAM: element-wise gradients times activations (no averaging), summed over channels.

    M_c(x, y) = Σ_k g_k(x, y) · f_k(x, y)
    Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
    neural networks", arXiv:2011.08891, 2020. On a GAP + linear model it equals CAM / (h·w).
    """
    grads = target_grads(batch, classes)
    return (grads * batch.features).sum(1)


def scorecam(batch: Batch, classes: Tensor, chunk: int = 32) -> Tensor:
    """Score-CAM: channels weighted by the class score of the image masked by each channel.

    H_k = minmax(upsample(f_k)) to the input size;  s_k = y_c(x ⊙ H_k);
    α = softmax_k(s);  M_c = Σ_k α_k f_k. `chunk` masked images go through the model per pass.
    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural Networks",
    CVPR Workshops 2020 (the baseline score y_c(X_b) of the paper cancels in the softmax over k).
    """
    if chunk < 1:
        raise ValueError(f"scorecam chunk must be >= 1, got {chunk}")
    feats, images = batch.features, batch.images
    n, c = feats.shape[:2]
    size = images.shape[-2:]
    scores = torch.empty(n * c, device=feats.device)
    with torch.no_grad():
        for start in range(0, n * c, chunk):
            idx = torch.arange(start, min(start + chunk, n * c), device=feats.device)
            img, ch = idx // c, idx % c
            up = F.interpolate(feats[img, ch][:, None], size=size, mode="bilinear", align_corners=False)
            lo = up.amin((2, 3), keepdim=True)  # (m, 1, 1, 1)
            span = up.amax((2, 3), keepdim=True) - lo
            mask = torch.where(span > 0, (up - lo) / span.clamp(min=1e-12), torch.zeros_like(up))
            masked = images[img] * mask.to(images.dtype)  # (m, 3, H, W)
            logits = batch.model.classifier(batch.model.features(masked).mean((2, 3)))  # (m, K)
            scores[start : start + len(idx)] = logits.float().gather(1, classes[img].view(-1, 1)).view(-1)
    alpha = torch.softmax(scores.view(n, c), dim=1)  # (N, C)
    return _weighted(alpha, feats)


def eigencam(batch: Batch, classes: Tensor) -> Tensor:
    """Eigen-CAM: projection of the centred features on their first principal component (class-free).

    F = f reshaped to (hw × C), centred per channel; F = U S Vᵀ;  M(x, y) = F(x, y) · v_1.
    The SVD sign is arbitrary: it is fixed so the map correlates positively with Σ_k f_k.
    Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020.
    """
    n, c, h, w = batch.features.shape
    flat = batch.features.reshape(n, c, h * w).transpose(1, 2).double()  # (N, hw, C)
    flat = flat - flat.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(flat, full_matrices=False)  # vh: (N, min(hw, C), C)
    proj = torch.einsum("npc,nc->np", flat, vh[:, 0])  # (N, hw)
    total = batch.features.sum(1).reshape(n, h * w).double()  # (N, hw)
    corr = (proj * (total - total.mean(1, keepdim=True))).sum(1, keepdim=True)  # (N, 1)
    proj = torch.where(corr < 0, -proj, proj)
    return proj.reshape(n, h, w).float()


def center(batch: Batch, classes: Tensor, sigma: float = 0.25) -> Tensor:
    """Center baseline: a centred isotropic Gaussian prior, the same for every image (no model).

    M(x, y) = exp(-((u - ½)² + (v - ½)²) / (2σ²)) with (u, v) the cell centres in [0, 1], σ = ¼ side.
    Choe et al., "Evaluating Weakly Supervised Object Localization Methods Right", CVPR 2020
    ("center-gaussian baseline").
    """
    n, _, h, w = batch.features.shape
    dev = batch.features.device
    v = (torch.arange(h, device=dev, dtype=torch.float64) + 0.5) / h - 0.5  # (h,)
    u = (torch.arange(w, device=dev, dtype=torch.float64) + 0.5) / w - 0.5  # (w,)
    g = torch.exp(-(v[:, None] ** 2 + u[None, :] ** 2) / (2 * sigma**2))  # (h, w)
    return g.float().expand(n, h, w).clone()


def full(batch: Batch, classes: Tensor) -> Tensor:
    """Full-image baseline: ones with a single zero in the top-left cell, so the box is the whole image.

    M(x, y) = 1, except M(0, 0) = 0. A truly constant map would not do: the evaluation protocol turns a
    constant map into zeros (no contour, box (0, 0, 0, 0)). With the one low corner, min–max
    normalisation keeps almost every pixel near 1, so for every τ below ~0.9 the contour spans the
    whole frame and its box is (0, 0, S−1, S−1) — the "predict the whole image" baseline.
    """
    n, _, h, w = batch.features.shape
    out = torch.ones(n, h, w, device=batch.features.device)
    out[:, 0, 0] = 0.0
    return out

