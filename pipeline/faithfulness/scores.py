"""Model-based faithfulness of maps (torch), the core of faithfulness@B (PROTOCOL §6): does the map explain
the decision? Every number is the softmax score of the image's GT class under some edit of its pixels.

- Average Drop / Increase in Confidence (Chattopadhay et al. 2018, Grad-CAM++): Y = score on the image,
  O = score on the image multiplied pixel-wise by the normalised map, the product taken on pixel values
  (0..255) BEFORE mean/std normalisation. AD = mean(max(0, Y − O) / Y) · 100; IC = % of images with O > Y
  (`metrics.faithfulness`: a change of at most SCORE_NOISE counts as none, float32 batch noise).
- Deletion / insertion (Petsiuk et al. 2018, RISE): pixels in decreasing map order are replaced, in
  `steps` equal steps (step i has ⌊i·P/steps⌋ of the P pixels replaced), by the dataset mean (deletion,
  starting from the image) or by the image's own pixels (insertion, starting from a Gaussian-blurred copy,
  RISE's σ = 5 px / 11-px kernel at 224 px scaled to the input size). The metric is the trapezoidal area
  under the score curve over the fraction of pixels in [0, 1]; it lies in [0, 1]. Deletion: lower is
  better; insertion: higher.

Ties in map order (a constant map, the flat top of a clipped map) are broken by a permutation seeded per
image, shared by every method, so a constant map gets a fair random order rather than raster order.
Maps come in normalised to [0, 1] at the input size (`metrics.normalize_map`, as the evaluator does).
Every edited input of an image is built on the model's device with one `torch.where` and scored in
batches of whole images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.cams.hooks import model_device
from pipeline.datasets.loader import normalize
from pipeline.metrics.faithfulness import average_drop, increase_in_confidence, trapezoid_auc

RISE_SIGMA, RISE_KERNEL, RISE_SIZE = 5.0, 11, 224  # RISE's blur: σ = 5 px, 11×11 kernel, at 224 px


@dataclass(frozen=True)
class MethodFaithfulness:
    """One map method's per-image results on N images."""

    masked_score: np.ndarray  # (N,) O: GT-class score on image × map
    deletion: np.ndarray  # (N, steps + 1) score after 0, 1/steps, ..., all pixels deleted
    insertion: np.ndarray  # (N, steps + 1) score after 0, ..., all pixels inserted


def pixel_order(smap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(P,) flat pixel indices of an (s, s) map in decreasing value; ties in a seeded random order."""
    perm = rng.permutation(smap.size)  # (P,)
    return perm[np.argsort(-np.asarray(smap, np.float64).ravel()[perm], kind="stable")]


def step_counts(n_pixels: int, steps: int) -> np.ndarray:
    """(steps + 1,) pixels replaced at each step: ⌊i·P/steps⌋, from 0 to all of them."""
    return (np.arange(steps + 1, dtype=np.int64) * n_pixels) // steps


def blur_kernel(size: int) -> tuple[int, float]:
    """(odd kernel side, σ) of RISE's insertion blur scaled from 224 px to `size`."""
    sigma = RISE_SIGMA * size / RISE_SIZE
    side = max(3, int(round(RISE_KERNEL * size / RISE_SIZE)) | 1)
    return side, sigma


def gaussian_blur(images: Tensor) -> Tensor:
    """(N, 3, s, s) float → the same blurred, separable Gaussian with reflected borders (a constant image
    stays constant up to float rounding)."""
    side, sigma = blur_kernel(images.shape[-1])
    side = min(side, 2 * images.shape[-1] - 1 if images.shape[-1] > 1 else 1)  # reflect padding < side
    x = torch.arange(side, dtype=torch.float64, device=images.device) - side // 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = (k / k.sum()).to(images.dtype)  # (side,)
    c, pad = images.shape[1], side // 2
    out = F.pad(images, (pad, pad, pad, pad), mode="reflect") if pad else images
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, side), groups=c)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, side, 1), groups=c)


def curve_inputs(start: Tensor, target: Tensor, rank: Tensor, counts: Tensor) -> Tensor:
    """(K, 3, s, s): `start` with its first counts[k] pixels in map order taken from `target`.

    start, target (3, s, s); rank (s·s,) each pixel's position in map order; counts (K,).
    """
    s = start.shape[-1]
    mask = rank.view(1, -1) < counts.view(-1, 1)  # (K, P)
    return torch.where(mask.view(-1, 1, s, s), target.unsqueeze(0), start.unsqueeze(0))


class Scorer:
    """GT-class softmax scores of pixel-space inputs (N, 3, s, s) in 0..255, batched on the model's device."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], batch_size: int):
        self.model, self.mean, self.std, self.batch_size = model, mean, std, batch_size
        self.device = model_device(model)

    def __call__(self, pixels: Tensor, labels: Tensor) -> Tensor:
        out = []
        with torch.inference_mode():
            for i in range(0, len(pixels), self.batch_size):
                x = normalize(pixels[i:i + self.batch_size], self.mean, self.std,
                              channels_last=self.device.type == "cuda")
                probs = torch.softmax(self.model(x).float(), dim=1)  # (n, K)
                out.append(probs.gather(1, labels[i:i + self.batch_size].view(-1, 1)).view(-1))
        return torch.cat(out) if out else torch.zeros(0, device=self.device)


def to_pixels(images: np.ndarray, device: torch.device) -> Tensor:
    """uint8 (N, s, s, 3) → float32 (N, 3, s, s) pixel values 0..255 on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()


def clean_scores(scorer: Scorer, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N,) Y: the GT-class score of each unedited image."""
    y = torch.tensor(np.asarray(labels), dtype=torch.long, device=scorer.device)  # a copy: labels may be read-only
    return scorer(to_pixels(images, scorer.device), y).cpu().numpy().astype(np.float64)


def method_faithfulness(scorer: Scorer, images: np.ndarray, labels: np.ndarray, maps: np.ndarray,
                        clean: np.ndarray, orders: Sequence[np.ndarray], steps: int) -> MethodFaithfulness:
    """AD/IC and deletion/insertion inputs of one method, scored.

    images uint8 (N, s, s, 3); labels (N,); maps (N, s, s) normalised to [0, 1]; clean (N,) the unedited
    scores (they are step 0 of deletion and the last step of insertion, so those inputs are not re-run);
    orders: per image the tie-breaking permutation (P,) drawn by the caller (`np.random.Generator`s
    cannot be shared safely across methods, permutations can).
    """
    n, s = images.shape[0], images.shape[1]
    if maps.shape != (n, s, s):
        raise ValueError(f"maps must be (N, s, s) = {(n, s, s)} like the images, got {maps.shape}")
    dev, p = scorer.device, s * s
    counts = torch.as_tensor(step_counts(p, steps), device=dev)  # (steps + 1,)
    mean = torch.tensor(scorer.mean, dtype=torch.float32, device=dev).view(3, 1, 1) * 255.0
    per_image = 2 * steps + 1  # deletion steps 1..n, insertion steps 0..n-1, the masked image
    chunk = max(1, scorer.batch_size // per_image)
    masked, deletion, insertion = np.empty(n), np.empty((n, steps + 1)), np.empty((n, steps + 1))
    for lo in range(0, n, chunk):
        idx = range(lo, min(n, lo + chunk))
        pix = to_pixels(images[lo:idx.stop], dev)  # (c, 3, s, s)
        blurred = gaussian_blur(pix)
        smaps = torch.as_tensor(np.asarray(maps[lo:idx.stop], np.float32), device=dev)  # (c, s, s)
        inputs = []
        for j, i in enumerate(idx):
            order = torch.as_tensor(orders[i], device=dev)
            rank = torch.empty(p, dtype=torch.long, device=dev)
            rank[order] = torch.arange(p, device=dev)
            inputs.append(curve_inputs(pix[j], mean.expand(3, s, s), rank, counts[1:]))
            inputs.append(curve_inputs(blurred[j], pix[j], rank, counts[:-1]))
            inputs.append((pix[j] * smaps[j]).unsqueeze(0))
        y = torch.tensor(np.repeat(labels[lo:idx.stop], per_image), dtype=torch.long, device=dev)
        scores = scorer(torch.cat(inputs), y).cpu().numpy().astype(np.float64).reshape(len(idx), per_image)
        for j, i in enumerate(idx):
            deletion[i] = np.concatenate([[clean[i]], scores[j, :steps]])
            insertion[i] = np.concatenate([scores[j, steps:2 * steps], [clean[i]]])
            masked[i] = scores[j, -1]
    return MethodFaithfulness(masked, deletion, insertion)


def summary(clean: np.ndarray, result: MethodFaithfulness) -> dict[str, float]:
    """The four metrics of one method: avg_drop and increase_in_confidence in %, the AUCs in [0, 1]."""
    return {"avg_drop": average_drop(clean, result.masked_score),
            "increase_in_confidence": increase_in_confidence(clean, result.masked_score),
            "deletion_auc": float(trapezoid_auc(result.deletion).mean()),
            "insertion_auc": float(trapezoid_auc(result.insertion).mean())}


def tie_orders(maps: np.ndarray, keys: Sequence[int], seed: int) -> list[np.ndarray]:
    """Per image (P,) pixel order of its map, ties broken by the permutation seeded by (seed, key): the
    same permutation for every method of an image."""
    return [pixel_order(m, np.random.default_rng([seed, int(k)])) for m, k in zip(maps, keys, strict=True)]
