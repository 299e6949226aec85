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
positive-definite system per image (its channels share it), solved here by a compiled multigrid-preconditioned
conjugate gradient (`multigrid.impute`) instead of one sparse LU per image;
then N(0, ROAD_NOISE²) is added to the imputed pixels. Where nothing is kept, the solution is the normalised
zero (the dataset-mean colour). The noise is seeded per image (and shared by MoRF and LeRF at a percentile, and by
every method), where pytorch-grad-cam draws it from torch's global generator.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pipeline.faithfulness.multigrid import impute

ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # pytorch-grad-cam's
ROAD_NOISE = 0.01  # absolute, in normalised units (pytorch-grad-cam's NoisyLinearImputer default)
# Preconditioned CG iterations and residual tolerance of `impute` in the stage. Measured on the default run's
# 899 tiny_gap_cnn systems against a float64 solve converged to 1e-12: largest error 1.7e-3 (float32's floor:
# 12 iterations give the same), median 5e-5, in normalised units — ROAD's noise is 1e-2.
ROAD_ITERS, ROAD_TOL = 10, 1e-6


def keep_masks(maps: Tensor, percentiles=ROAD_PERCENTILES) -> Tensor:
    """(N, 2, L, s, s) bool, True where a pixel is kept: [:, 0] MoRF, [:, 1] LeRF at each of L percentiles.

    maps (N, s, s) in [0, 1]."""
    flat = maps.reshape(len(maps), -1).double()  # (N, P)
    q = torch.tensor([p / 100.0 for p in percentiles], dtype=torch.float64, device=maps.device)
    morf = flat.unsqueeze(1) < torch.quantile(flat, q, dim=1).T.unsqueeze(2)  # (N, L, P)
    inv = 1.0 - flat
    lerf = inv.unsqueeze(1) < torch.quantile(inv, q, dim=1).T.unsqueeze(2)
    return torch.stack([morf, lerf], dim=1).view(len(maps), 2, len(percentiles), *maps.shape[1:])


def noise(key_seeds: list[list[int]], levels: int, shape: tuple[int, int, int]) -> np.ndarray:
    """(N, levels, C, h, w) float32 standard normals, one seeded stream per image."""
    return np.stack([np.random.default_rng(s).standard_normal((levels, *shape), dtype=np.float32)
                     for s in key_seeds])


def noisy_imputed(values: Tensor, keep: Tensor, eps: Tensor) -> Tensor:
    """(M, C, s, s) the ROAD input of each system: values (M, C, s, s) imputed where keep (M, 1, s, s) is
    False, plus ROAD_NOISE · eps (M, C, s, s) on the imputed pixels; `impute` runs on the CPU, on as many
    threads as torch has (the stage's share of the cores, `pipeline.threads`)."""
    filled = impute(values.cpu().numpy(), keep[:, 0].cpu().numpy(), ROAD_ITERS, ROAD_TOL, torch.get_num_threads())
    filled = torch.from_numpy(filled).to(values.device)
    return torch.where(keep, filled, filled + ROAD_NOISE * eps)


def road_per_image(clean: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """{road_morf, road_lerf, road_combined}: (N,) each from clean (N,) Y and scores (N, 2, L)."""
    diff = np.asarray(scores, np.float64) - np.asarray(clean, np.float64)[:, None, None]
    morf, lerf = diff[:, 0].mean(axis=1), diff[:, 1].mean(axis=1)
    return {"road_morf": morf, "road_lerf": lerf, "road_combined": (lerf - morf) / 2.0}
