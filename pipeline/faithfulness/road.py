"""ROAD (Rong et al., ICML 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods"):
remove a share of the pixels and fill them by noisy linear imputation, then score the GT class.

Following pytorch-grad-cam's `ROADMostRelevantFirstAverage` / `ROADLeastRelevantFirstAverage` /
`ROADCombined` (`metrics.road`), on a map normalised to [0, 1] at the input size:

- MoRF at percentile p keeps the pixels whose map value is < the p-th percentile of the map (numpy's
  linear interpolation) and imputes the rest; LeRF at p does the same on 1 − map (it removes the least
  relevant pixels). p runs over ROAD_PERCENTILES = 10, 20, ..., 90.
- The score change is O_p − Y (softmax of the GT class, camloc's score everywhere; pytorch-grad-cam scores
  whatever target it is given). MoRF = mean_p, lower is better; LeRF = mean_p, higher is better;
  combined = (LeRF − MoRF) / 2, higher is better.
- A constant map keeps no pixel at any p in either order (nothing is < the percentile), so MoRF and LeRF
  impute the same inputs and the combined score is 0. A map with more than p% of exact zeros removes all
  its pixels at p in MoRF likewise: that is the percentile rule, not a tie-break.

Noisy linear imputation: each removed pixel is the weighted mean of its 8 neighbours (1/6 for the 4 direct,
1/12 for the 4 diagonal ones, renormalised at the border), the kept pixels fixed — a sparse symmetric
positive-definite system per image and channel, solved here for every image × percentile × order at once by
a coarse-to-fine conjugate gradient (`impute`) instead of one sparse LU per image; then N(0, ROAD_NOISE²)
is added to the imputed pixels. Where nothing is kept, the solution is the normalised zero (the
dataset-mean colour). The noise is seeded per image (and shared by MoRF and LeRF at a percentile, and by
every method), where pytorch-grad-cam draws it from torch's global generator.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # pytorch-grad-cam's
ROAD_NOISE = 0.01  # absolute, in normalised units (pytorch-grad-cam's NoisyLinearImputer default)
ROAD_ITERS, ROAD_TOL = 32, 1e-4  # CG iterations per level and residual tolerance of `impute` in the stage
# Systems per `impute` call in `noisy_imputed`: a chunk's CG vectors stay in the core's cache (at 96 px, 8 systems
# are ~0.9 MB per vector) and a chunk stops when its systems have converged; on 2 cores 8 per call imputed 2x faster than
# 288 in isolation, and cut faithfulness@tiny_gap_cnn's ROAD share (8 images) from 11.6 s to 10.2 s.
IMPUTE_CHUNK = 8
_DIRECT, _DIAGONAL = 1.0 / 6.0, 1.0 / 12.0


def keep_masks(maps: Tensor, percentiles=ROAD_PERCENTILES) -> Tensor:
    """(N, 2, L, s, s) bool, True where a pixel is kept: [:, 0] MoRF, [:, 1] LeRF at each of L percentiles.

    maps (N, s, s) in [0, 1]."""
    flat = maps.reshape(len(maps), -1).double()  # (N, P)
    q = torch.tensor([p / 100.0 for p in percentiles], dtype=torch.float64, device=maps.device)
    morf = flat.unsqueeze(1) < torch.quantile(flat, q, dim=1).T.unsqueeze(2)  # (N, L, P)
    inv = 1.0 - flat
    lerf = inv.unsqueeze(1) < torch.quantile(inv, q, dim=1).T.unsqueeze(2)
    return torch.stack([morf, lerf], dim=1).view(len(maps), 2, len(percentiles), *maps.shape[1:])


def _neighbours(x: Tensor) -> Tensor:
    """(M, C, h, w) → Σ_j w_ij x_j over the in-image neighbours j of each pixel (zero outside).

    The 3×3 stencil [[1, 2, 1], [2, 0, 2], [1, 2, 1]] / 12 is the separable [1, 2, 1] ⊗ [1, 2, 1] / 12 minus
    the centre's 4/12: two 1-D passes of shifted adds (a 1-channel conv2d is ~5× slower on a CPU)."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = p[..., :-2, :] + 2.0 * p[..., 1:-1, :] + p[..., 2:, :]  # (M, C, h, w + 2)
    both = rows[..., :-2] + 2.0 * rows[..., 1:-1] + rows[..., 2:]  # (M, C, h, w)
    return (both - 4.0 * x) * _DIAGONAL


def _solve(values: Tensor, keep: Tensor, start: Tensor, iters: int, tol: float) -> Tensor:
    """Preconditioned CG on the removed pixels of values (M, C, h, w) with keep (M, 1, h, w), from `start`."""
    free = (~keep).to(values.dtype)  # (M, 1, h, w)
    diag = _neighbours(torch.ones_like(free))  # (M, 1, h, w) Σ of in-image weights
    known = values * keep

    def apply(x):  # A x on the free pixels: D x − W x (x is zero on kept pixels)
        return free * (diag * x - _neighbours(x))

    x = start * free
    b = free * _neighbours(known)
    r = b - apply(x)
    z = r / diag
    p, rz = z, (r * z).sum((1, 2, 3), keepdim=True)
    b_norm = b.pow(2).sum((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-30)
    for _ in range(iters):
        # a system that has converged stops moving, so its result does not depend on its chunk-mates
        active = r.pow(2).sum((1, 2, 3), keepdim=True).sqrt() > tol * b_norm  # (M, 1, 1, 1)
        if not bool(active.any()):
            break
        ap = apply(p)
        alpha = active * rz / (p * ap).sum((1, 2, 3), keepdim=True).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        z = r / diag
        rz_new = (r * z).sum((1, 2, 3), keepdim=True)
        p = torch.where(active, z + (rz_new / rz.clamp_min(1e-30)) * p, p)
        rz = rz_new
    return known + x * free


def impute(values: Tensor, keep: Tensor, iters: int = 48, tol: float = 1e-4, min_side: int = 8) -> Tensor:
    """Linear imputation of values (M, C, h, w) where keep (M, 1, h, w) is False, without noise.

    Coarse to fine: the problem is halved (a coarse pixel is kept when any of its 2×2 children is, with
    their mean) down to `min_side`, solved there, and each finer level starts CG from the coarse solution
    upsampled, `iters` iterations at most or until the residual is `tol` of the right-hand side."""
    h, w = values.shape[-2:]
    if min(h, w) > min_side:
        kf = keep.to(values.dtype)
        count = F.avg_pool2d(kf, 2, ceil_mode=True)  # (M, 1, h/2, w/2) share of kept children
        mean = F.avg_pool2d(values * kf, 2, ceil_mode=True) / count.clamp_min(1e-12)
        coarse = impute(mean, count > 0, iters, tol, min_side)
        start = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    else:
        start = torch.zeros_like(values)
    return _solve(values, keep, start, iters if min(h, w) > min_side else h * w + 1, tol)


def noise(key_seeds: list[list[int]], levels: int, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, levels, C, h, w) float32 standard normals, one seeded stream per image."""
    return np.stack([np.random.default_rng(s).standard_normal((levels, *shape), dtype=np.float32)
                     for s in key_seeds])


def road_inputs(images: Tensor, maps: Tensor, gauss: Tensor) -> Tensor:
    """(N·2·L, 3, s, s) imputed inputs ordered (image, [MoRF, LeRF], percentile).

    images (N, 3, s, s) normalised; maps (N, s, s) in [0, 1]; gauss (N, L, 3, s, s) standard normals."""
    n, c, s, _ = images.shape
    lv = len(ROAD_PERCENTILES)
    keep = keep_masks(maps, ROAD_PERCENTILES).reshape(n * 2 * lv, 1, s, s)  # (M, 1, s, s)
    values = images.unsqueeze(1).expand(n, 2 * lv, c, s, s).reshape(n * 2 * lv, c, s, s)
    eps = gauss.unsqueeze(1).expand(n, 2, lv, c, s, s).reshape(n * 2 * lv, c, s, s)
    return noisy_imputed(values, keep, eps)


def noisy_imputed(values: Tensor, keep: Tensor, eps: Tensor) -> Tensor:
    """(M, C, s, s) the ROAD input of each system: values (M, C, s, s) imputed where keep (M, 1, s, s) is
    False, plus ROAD_NOISE · eps (M, C, s, s) on the imputed pixels; `impute` runs IMPUTE_CHUNK systems a call."""
    filled = torch.cat([impute(values[i:i + IMPUTE_CHUNK], keep[i:i + IMPUTE_CHUNK], ROAD_ITERS, ROAD_TOL)
                        for i in range(0, len(values), IMPUTE_CHUNK)])
    return torch.where(keep, filled, filled + ROAD_NOISE * eps)


def road_per_image(clean: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """{road_morf, road_lerf, road_combined}: (N,) each from clean (N,) Y and scores (N, 2, L)."""
    diff = np.asarray(scores, np.float64) - np.asarray(clean, np.float64)[:, None, None]
    morf, lerf = diff[:, 0].mean(axis=1), diff[:, 1].mean(axis=1)
    return {"road_morf": morf, "road_lerf": lerf, "road_combined": (lerf - morf) / 2.0}
