"""torchcam 0.5's faithfulness metrics on maps given in advance: the peer the golden test
(tests/faithfulness/test_golden.py) holds camloc equal to and `benchmarks/bench_faithfulness.py` times
camloc against. torchcam is a dev dependency, imported on call."""

from __future__ import annotations

import contextlib
from functools import partial

import torch
from torch import Tensor, nn


class FixedMaps:
    """torchcam's CAM-extractor protocol around maps (N, h, w) given in advance: torchcam ranks the pixels
    and masks the images by them instead of computing its own."""

    def __init__(self, model: nn.Module, maps: Tensor):
        self.model, self.maps = model, maps

    def __call__(self, class_idx=None, scores=None, normalized=True, **_):
        return [self.maps]

    def fuse_cams(self, cams):
        return cams[0]

    def _hooks_off(self):
        return contextlib.nullcontext()


def torchcam_scores(model: nn.Module, x: Tensor, labels: list[int], maps: Tensor, steps: int,
                    batch_size: int) -> dict[str, float]:
    """torchcam's `ClassificationMetric` (avg_drop, conf_increase: fractions) and `DeletionInsertionMetric`
    (deletion_auc, insertion_auc) of `maps` on normalised inputs x (N, 3, s, s) for classes `labels`,
    softmax scores, each metric run by its own `update` as a torchcam user would."""
    from torchcam.metrics import ClassificationMetric, DeletionInsertionMetric

    ext = FixedMaps(model, maps)
    cm = ClassificationMetric(ext, partial(torch.softmax, dim=-1))
    di = DeletionInsertionMetric(ext, partial(torch.softmax, dim=-1), steps=steps, batch_size=batch_size)
    cm.update(x, class_idx=labels)
    di.update(x, class_idx=labels)
    return cm.summary() | di.summary()
