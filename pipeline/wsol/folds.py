"""The data side of the few-shot baseline (`fsl`), numpy only: which box kind it learns, its pixel
targets, the k folds of the val split and the training lengths its cross-validation compares.

Used by `pipeline.wsol.fsl` (train@B) and `pipeline.wsol.oof` (cams@B). Boxes follow docs/contracts.md:
int `(x0, y0, x1, y1)`, 0-based, inclusive ends, original pixels; they enter an S×S frame exactly as
evaluation moves them (`metrics.rescale_boxes`: `int(x·S/W)`), so the target a model learns is the box
evaluation scores it against.
"""

from __future__ import annotations

import numpy as np

from pipeline.contracts import PETS_LAYOUT, Layout, box_kinds_of
from pipeline.errors import CamlocError, ParamsError
from pipeline.metrics.iou import rescale_boxes

CV_POINTS = 4  # training lengths compared by cross-validation: E/4, E/2, 3E/4, E epochs


def target_kind(layout: Layout = PETS_LAYOUT, where: str = "layout.json") -> str:
    """The box kind `fsl` learns: the one the dataset's `test` split scores (the headline MaxBoxAccV2
    box), read from its layout (prepared/layout.json): `head` on Pets, `object` on cub and wsol datasets.

    On Pets the trimaps outline the whole pet, another object than the head, so they are not a finer
    target for it and are not read. A dataset without boxes (masks only) cannot train fsl."""
    kinds = box_kinds_of("test", layout.scored_split)
    if not kinds:
        raise CamlocError(f"{where}: the {layout.dataset} dataset scores no box kind on test (masks only), but "
                          "fsl learns from the val boxes; choose another wsol.method for it")
    return kinds[0]


def box_target(boxes: np.ndarray, src_wh: tuple[int, int], size: int) -> np.ndarray:
    """(size, size) float32 pixel target: 1 inside any of the (G, 4) boxes, 0 elsewhere.

    Boxes are moved from the W×H image into the size×size frame with evaluation's rule and filled with
    inclusive ends (x1 and y1 are foreground), clipped to the frame.
    """
    target = np.zeros((size, size), dtype=np.float32)
    for x0, y0, x1, y1 in rescale_boxes(boxes, src_wh, (size, size)):
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), size - 1), min(int(y1), size - 1)
        if x1 >= x0 and y1 >= y0:
            target[y0 : y1 + 1, x0 : x1 + 1] = 1.0
    return target


def assign_folds(labels: np.ndarray, folds: int, seed: int, key: str) -> np.ndarray:
    """(N,) fold of each val image: per class a seeded permutation dealt round-robin, the dealer
    carrying on from class to class, so folds differ in size by at most one and spread every class.

    `key` is the params key of the fold count (named in the error when there are too few images).
    """
    labels = np.asarray(labels, dtype=np.int64)
    if folds > len(labels):
        raise ParamsError(key, folds, f"at most {len(labels)}, the number of val images (split.val_per_class "
                                      "× classes): every fold must hold out at least one image")
    out = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[np.random.default_rng([seed, int(label)]).permutation(len(members))]
        out[order] = (dealt + np.arange(len(order))) % folds
        dealt += len(order)
    return out


def cv_epochs(epochs: int) -> list[int]:
    """The training lengths cross-validation compares: CV_POINTS evenly spaced epochs ending at `epochs`."""
    return sorted({max(1, round(epochs * j / CV_POINTS)) for j in range(1, CV_POINTS + 1)})
