"""The model side of faithfulness@B: GT-class softmax scores of normalised inputs, in large batches.

Every perturbation metric (`scores`, `road`) builds its edited inputs in the model's normalised space and
hands them here as one stream: several images × steps per forward pass, on the model's device. The
model is scored through an inference copy (`inference_copy`): BatchNorm folded into the preceding
convolution and channels-last memory, which on this CPU makes a small conv net about 2.5× faster and
moves its logits by ~1e-8 (the trained model itself is never touched).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.cams.hooks import model_device

log = logging.getLogger(__name__)


def inference_copy(model: nn.Module) -> nn.Module:
    """An eval-mode copy of `model` with Conv→BatchNorm pairs folded (torch.fx) and channels-last weights;
    a model fx cannot trace is copied unfused (the scores are the same up to float rounding either way)."""
    out = copy.deepcopy(model).eval()
    try:
        from torch.fx.experimental.optimization import fuse

        out = fuse(out)
    except Exception as e:  # noqa: BLE001 - any trace failure: fall back to the plain copy
        log.info("faithfulness: %s not fused (%s); scoring the plain copy", type(model).__name__, type(e).__name__)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.to(memory_format=torch.channels_last)


def normalised(images: np.ndarray, mean: Sequence[float], std: Sequence[float], device: torch.device) -> Tensor:
    """uint8 (N, s, s, 3) → float32 (N, 3, s, s) in the model's normalised space, on `device`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
    sd = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1) * 255.0
    return ((x - m) / sd).contiguous()


class Scorer:
    """GT-class softmax scores of normalised inputs (M, 3, s, s), `batch_size` inputs per forward pass."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], batch_size: int):
        self.mean, self.std, self.batch_size = tuple(mean), tuple(std), batch_size
        self.device = model_device(model)
        self.model = inference_copy(model)

    def black(self) -> Tensor:
        """(3, 1, 1) the normalised value of a black pixel (0 in 0..255): −mean/std."""
        return (-torch.tensor(self.mean) / torch.tensor(self.std)).view(3, 1, 1).to(self.device)

    def __call__(self, inputs: Tensor, labels: Tensor) -> Tensor:
        """(M,) softmax score of labels[i] (M,) on inputs[i]."""
        out = []
        with torch.inference_mode():
            for i in range(0, len(inputs), self.batch_size):
                x = inputs[i:i + self.batch_size].contiguous(memory_format=torch.channels_last)
                probs = torch.softmax(self.model(x).float(), dim=1)  # (n, K)
                out.append(probs.gather(1, labels[i:i + self.batch_size].view(-1, 1)).view(-1))
        return torch.cat(out) if out else torch.zeros(0, device=self.device)
