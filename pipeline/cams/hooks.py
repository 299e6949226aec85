"""Context managers around a model while maps are computed (cams@B, `camloc cams --images`).

Given the backbone contract (`features(x)` then `classifier` on the spatial mean) no forward hook is
needed: gradients are taken with respect to the feature tensor itself. What remains is leaving the model
exactly as found: train/eval flags restored (BatchNorm in train mode would both use batch statistics and
update its running buffers) and forward hooks, when a caller needs one, always removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put every submodule in eval mode; restore each module's own flag afterwards, even on error."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in flags:
            m.training = training


@contextlib.contextmanager
def capture_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record `module`'s forward outputs in the yielded list; the hook is removed even on error."""
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    try:
        yield outputs
    finally:
        handle.remove()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); CPU for a parameter-free module."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")
