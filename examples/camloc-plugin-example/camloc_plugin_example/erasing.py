"""`random_erasing`: a WSOL method that only changes the training input (docs/plugins.md: a method
overrides `loss`, `build`, or both). Randomness comes from torch's global generator, which train@B
seeds per epoch, so runs are reproducible."""

from __future__ import annotations

import math

import torch

from pipeline.wsol.method import WsolMethod


def erase(images: torch.Tensor, prob: float, area_max: float) -> torch.Tensor:
    """(N, 3, H, W) normalised images with one rectangle set to 0 (the mean) in each chosen image."""
    n, _, h, w = images.shape
    out = images.clone()
    draws = torch.rand(n, 5)  # per image: erase?, area, aspect, top, left
    for i in range(n):
        if draws[i, 0] >= prob:
            continue
        area = (0.02 + (area_max - 0.02) * float(draws[i, 1])) * h * w
        aspect = math.exp((float(draws[i, 2]) - 0.5) * math.log(3.0) * 2)  # in [1/3, 3]
        eh = min(h, max(1, round(math.sqrt(area * aspect))))
        ew = min(w, max(1, round(math.sqrt(area / aspect))))
        y = int(float(draws[i, 3]) * (h - eh + 1)) % (h - eh + 1)
        x = int(float(draws[i, 4]) * (w - ew + 1)) % (w - ew + 1)
        out[i, :, y : y + eh, x : x + ew] = 0.0
    return out


class RandomErasing(WsolMethod):
    def loss(self, model, images, labels, hp):
        return super().loss(model, erase(images, hp["re_prob"], hp["re_area_max"]), labels, hp)


METHOD = RandomErasing()
