"""Input-level WSOL methods (torch), applied to a normalised training batch: Hide-and-Seek and CutMix.

Both leave the architecture alone (the reference builds them on the plain CAM model) and are off at
inference. Randomness comes from torch's global generator, which train@B seeds per epoch, so a run is
reproducible and a resumed run draws the same patches.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pipeline.wsol.method import WsolMethod


def hide_mask(n: int, height: int, width: int, grid_size: int, drop_rate: float,
              generator: torch.Generator | None = None, device=None) -> Tensor:
    """Hide-and-Seek keep-mask (N, 1, H, W) of 0/1: the image is cut into `grid_size`×`grid_size`-pixel
    cells (the last row/column may be smaller) and each cell is hidden independently with probability
    `drop_rate`. In expectation a fraction `drop_rate` of the pixels is hidden.

    Singh & Lee (ICCV 2017) call the cell side S; the reference's `has_grid_size` is that side in pixels.
    """
    rows, cols = math.ceil(height / grid_size), math.ceil(width / grid_size)
    hidden = torch.rand(n, 1, rows, cols, generator=generator, device=device) < drop_rate  # (N, 1, r, c)
    keep = (~hidden).float()
    keep = keep.repeat_interleave(grid_size, 2).repeat_interleave(grid_size, 3)
    return keep[:, :, :height, :width]


def hide_and_seek(images: Tensor, grid_size: int, drop_rate: float) -> Tensor:
    """Normalised images (N, 3, H, W) with hidden cells set to 0, i.e. to the dataset mean the images
    were normalised by (the paper's choice, so hiding does not shift the first-layer statistics)."""
    n, _, h, w = images.shape
    return images * hide_mask(n, h, w, grid_size, drop_rate, device=images.device)


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator | None = None
               ) -> tuple[int, int, int, int]:
    """A box (y0, x0, y1, x1) of about (1 - lam) of the image area, centred uniformly, clipped to the image
    (so the real area may be smaller; the labels use the real area)."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
    return y0, x0, y1, x1


def cutmix(images: Tensor, labels: Tensor, num_classes: int, beta: float, prob: float,
           generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """CutMix (Yun et al., ICCV 2019): with probability `prob`, paste one box of a shuffled copy of the
    batch into every image. Returns (images (N, 3, H, W), soft labels (N, K)): each row is
    area(kept) / area · onehot(own) + area(box) / area · onehot(partner); rows sum to 1.
    Without mixing the soft labels are the one-hot labels.
    """
    n, _, h, w = images.shape
    soft = torch.nn.functional.one_hot(labels, num_classes).float()  # (N, K)
    if n < 2 or float(torch.rand(1, generator=generator)) >= prob:
        return images, soft
    lam = float(torch.distributions.Beta(beta, beta).sample())
    partner = torch.randperm(n, generator=generator).to(images.device)
    y0, x0, y1, x1 = cutmix_box(h, w, lam, generator)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[partner, :, y0:y1, x0:x1]
    pasted = (y1 - y0) * (x1 - x0) / (h * w)  # the clipped box's real share of the image
    return mixed, (1.0 - pasted) * soft + pasted * soft[partner]


class HideAndSeek(WsolMethod):
    """has: hide grid cells of the input in training; the model is the plain GapNet."""

    def loss(self, model, images, labels, hp):
        return super().loss(model, hide_and_seek(images, hp["has_grid_size"], hp["has_drop_rate"]), labels, hp)


class CutMix(WsolMethod):
    """cutmix: paste a box of another image; the labels are area-weighted (soft targets)."""

    def loss(self, model, images, labels, hp):
        classes = getattr(model, "module", model).classifier.out_features  # model may be DDP-wrapped
        mixed, soft = cutmix(images, labels, classes, hp["cutmix_beta"], hp["cutmix_prob"])
        logits = model(mixed)
        return nn.functional.cross_entropy(logits.float(), soft), logits


HAS, CUTMIX = HideAndSeek(), CutMix()
