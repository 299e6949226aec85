"""Model-based faithfulness of maps (torch), the core of faithfulness@B (PROTOCOL §6): does the map explain
the decision? Every number is the softmax score of the image's GT class (never a logit) under some edit of
the image in the model's normalised space (x = (pixel/255 − mean)/std; its zero is the dataset-mean colour).

- Average Drop / Increase in Confidence (Chattopadhay et al. 2018, Grad-CAM++), as torchcam's
  `ClassificationMetric` computes them: Y = score on the image, O = score on map × x (the map multiplies
  the NORMALISED input, so a removed pixel goes to the mean colour). AD = mean(max(0, Y − O) / (Y + 1e-7))
  · 100; IC = % of images with O > Y (`metrics.faithfulness`). An image with a tiny Y counts with its drop
  scaled by Y / (Y + 1e-7): at Y = 1e-8 it adds at most 0.09, where the bare formula would add up to 1.
- `*_pixel` (camloc's second, named variant): the same with the map multiplying the PIXEL values (0..255),
  so a removed pixel goes to black: O_pixel = score on black + map × (x − black). Why both: the normalised
  zero depends on each backbone's mean/std, so two backbones would see different masked images; black is
  the same masked image for every backbone (camloc's definition before torchcam's was adopted as the main one).
- Deletion / insertion (Petsiuk et al. 2018, RISE): pixels in decreasing map order are replaced, in
  `steps` equal steps (step i has ⌊i·P/steps⌋ of the P pixels replaced), by the normalised zero (deletion,
  starting from the image) or by the image's own pixels (insertion, starting from `insertion_start`:
  "blur", RISE's σ = 5 px / 11-px Gaussian at 224 px scaled to the input size, camloc's default; or
  "baseline", the deletion baseline, as torchcam's `DeletionInsertionMetric` does). The metric is the
  trapezoidal area under the score curve over the fraction of pixels in [0, 1]. Equal to torchcam's when
  steps divides P, ties="raster" and insertion_start="baseline" (tests/faithfulness/test_golden.py).
- ROAD: `faithfulness.road`.

Ties in map order (a constant map, the flat top of a clipped map) are broken by default by a permutation
seeded per image and shared by every method (ties="random"), so a constant map gets a fair random order;
torchcam breaks them in raster order (ties="raster"), which deletes a constant map top row first.

Every edited input is built on the model's device for many (image, step) rows at once (one `torch.where`
over their masks) and the whole stream is scored in batches of `batch_size` inputs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pipeline.faithfulness import road as R
from pipeline.faithfulness.scorer import Scorer, normalised
from pipeline.metrics import faithfulness as MF

RISE_SIGMA, RISE_KERNEL, RISE_SIZE = 5.0, 11, 224  # RISE's blur: σ = 5 px, 11×11 kernel, at 224 px
TIES, INSERTION_STARTS = ("random", "raster"), ("blur", "baseline")


@dataclass(frozen=True)
class MethodFaithfulness:
    """One map method's per-image results on N images."""

    masked_score: np.ndarray  # (N,) O: GT-class score on map × normalised image
    masked_score_pixel: np.ndarray  # (N,) O_pixel: the map multiplies the pixel values (zero = black)
    deletion: np.ndarray  # (N, steps + 1) score after 0, 1/steps, ..., all pixels deleted
    insertion: np.ndarray  # (N, steps + 1) score after 0, ..., all pixels inserted
    road: np.ndarray | None  # (N, 2, L) score after MoRF / LeRF imputation at each ROAD percentile


@dataclass(frozen=True)
class ImageSet:
    """What every method of one split's subset shares: the inputs and the scores that need no map."""

    inputs: Tensor  # (N, 3, s, s) normalised, on the model's device
    labels: Tensor  # (N,) long
    keys: np.ndarray  # (N,) ints seeding each image's tie order and ROAD noise
    clean: np.ndarray  # (N,) Y
    start: Tensor  # (N, 3, s, s) insertion's first input
    start_score: np.ndarray  # (N,) its score (insertion step 0)
    zero_score: np.ndarray  # (N,) score of the all-baseline input (deletion's last step)
    black_score: np.ndarray  # (N,) score of an all-black input (O_pixel of an all-zero map)
    gauss: np.ndarray | None  # (N, L, 3, s, s) float32 ROAD noise, None without ROAD


def step_counts(n_pixels: int, steps: int) -> np.ndarray:
    """(steps + 1,) pixels replaced at each step: ⌊i·P/steps⌋, from 0 to all of them."""
    return (np.arange(steps + 1, dtype=np.int64) * n_pixels) // steps


def blur_kernel(size: int) -> tuple[int, float]:
    """(odd kernel side, σ) of RISE's insertion blur scaled from 224 px to `size`."""
    sigma = RISE_SIGMA * size / RISE_SIZE
    side = max(3, int(round(RISE_KERNEL * size / RISE_SIZE)) | 1)
    return side, sigma


def gaussian_blur(images: Tensor) -> Tensor:
    """(N, C, s, s) float → the same blurred, separable Gaussian with reflected borders (a constant image
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


def pixel_ranks(maps: np.ndarray, keys: Sequence[int], seed: int, ties: str = "random") -> np.ndarray:
    """(N, P) each pixel's position in decreasing map order; ties by the permutation seeded by (seed, key)
    (the same for every method of an image) or, ties="raster", in raster order (torchcam's)."""
    if ties not in TIES:
        raise ValueError(f"ties must be one of {', '.join(TIES)}, got {ties!r}")
    flat = -np.asarray(maps, np.float64).reshape(len(maps), -1)  # (N, P)
    if ties == "raster":
        order = np.argsort(flat, axis=1, kind="stable")
    else:
        perm = np.stack([np.random.default_rng([seed, int(k)]).permutation(flat.shape[1]) for k in keys])
        order = np.take_along_axis(perm, np.argsort(np.take_along_axis(flat, perm, 1), axis=1, kind="stable"), 1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None], axis=1)
    return ranks


def _scores(scorer: Scorer, inputs: Tensor, labels: Tensor) -> np.ndarray:
    return scorer(inputs, labels).cpu().numpy().astype(np.float64)


def prepare_images(scorer: Scorer, images: np.ndarray, labels: np.ndarray, keys: Sequence[int], seed: int,
                   insertion_start: str = "blur", road: bool = True) -> ImageSet:
    """images uint8 (N, s, s, 3), labels (N,): the map-free inputs and scores of every method."""
    if insertion_start not in INSERTION_STARTS:
        raise ValueError(f"insertion_start must be one of {', '.join(INSERTION_STARTS)}, got {insertion_start!r}")
    dev = scorer.device
    x = normalised(images, scorer.mean, scorer.std, dev)  # (N, 3, s, s)
    y = torch.tensor(np.asarray(labels), dtype=torch.long, device=dev)  # a copy: labels may be read-only
    zero, black = torch.zeros_like(x), scorer.black().expand_as(x)
    start = gaussian_blur(x) if insertion_start == "blur" else zero
    n = len(x)
    both = _scores(scorer, torch.cat([x, start, zero, black]), y.repeat(4)).reshape(4, n)
    data = ImageSet(x, y, np.asarray(keys, np.int64), both[0], start, both[1], both[2], both[3], None)
    return road_subset(data, np.arange(n), seed) if road else data


def road_subset(data: ImageSet, rows: Sequence[int], seed: int) -> ImageSet:
    """The ImageSet of data's rows with ROAD's noise (one seeded stream per image key), for `method_road`:
    its map-free scores are data's, not scored again."""
    rows = np.asarray(rows, np.int64)
    idx = torch.as_tensor(rows, device=data.inputs.device)
    keys = data.keys[rows]
    gauss = R.noise([[seed, int(k), 1] for k in keys], len(R.ROAD_PERCENTILES), tuple(data.inputs.shape[1:]))
    return ImageSet(data.inputs[idx], data.labels[idx], keys, data.clean[rows], data.start[idx],
                    data.start_score[rows], data.zero_score[rows], data.black_score[rows], gauss)


def method_faithfulness(scorer: Scorer, data: ImageSet, maps: np.ndarray, steps: int, seed: int,
                        ties: str = "random", seen: dict | None = None) -> MethodFaithfulness:
    """AD/IC (both variants) and deletion/insertion of one method, built and scored batch_size inputs at a
    time; ROAD by `method_road` when `data` has its noise.

    `seen`, one dict per split shared by its methods (and by `method_road` on its `road_subset`: keys hold
    image keys, not rows), holds what earlier methods scored: a step whose set of replaced pixels equals an
    earlier method's at the same step has the same deletion and insertion inputs, and an image whose map is
    equal the same AD inputs, so they are looked up instead of scored again. On a GAP + linear model CAM,
    Grad-CAM, XGrad-CAM and HiResCAM order the pixels alike (every step is shared); other methods share the
    steps where their top pixels coincide (on the default run's 48 images × 9 methods of tiny_gap_cnn:
    4,487 distinct steps of 4,704 for 336 distinct orders).

    maps (N, s, s) normalised to [0, 1] at the input size."""
    n, s = data.inputs.shape[0], data.inputs.shape[-1]
    if maps.shape != (n, s, s):
        raise ValueError(f"maps must be (N, s, s) = {(n, s, s)} like the images, got {maps.shape}")
    seen = {} if seen is None else seen
    dev, p = scorer.device, s * s
    counts = step_counts(p, steps)[1:-1]  # (K,) interior steps
    k = len(counts)
    ranks = pixel_ranks(maps, data.keys, seed, ties)  # (N, P)
    replaced = np.packbits(ranks[:, None, :] < counts[None, :, None], axis=2)  # (N, K, ⌈P/8⌉) each step's set
    maps32 = np.ascontiguousarray(maps, np.float32)  # (N, s, s) what the AD inputs are built from
    step_keys = [("step", int(data.keys[i]), int(counts[j]), _digest(replaced[i, j]))
                 for i in range(n) for j in range(k)]  # row i·K + j
    masked_keys = [("masked", int(data.keys[i]), _digest(maps32[i])) for i in range(n)]
    ranks_dev, counts_dev = torch.as_tensor(ranks, device=dev), torch.as_tensor(counts, device=dev)
    black = scorer.black()

    def step_inputs(rows):  # (c · 2, 3, s, s): each (image, step) row's deletion input, then its insertion's
        row = torch.as_tensor(np.asarray(rows), device=dev)
        image, step = row // k, row % k
        mask = (ranks_dev[image] < counts_dev[step].unsqueeze(1)).view(len(rows), 1, s, s)  # (c, 1, s, s)
        x = data.inputs[image]  # (c, 3, s, s)
        deleted, inserted = torch.where(mask, 0.0, x), torch.where(mask, x, data.start[image])
        return torch.stack([deleted, inserted], dim=1).view(-1, 3, s, s)

    def masked_inputs(rows):  # (c · 2, 3, s, s): map × normalised image (torchcam's), then zero at black
        x, m = data.inputs[rows], torch.as_tensor(maps32[rows], device=dev).unsqueeze(1)  # (c, 1, s, s)
        return torch.stack([m * x, torch.where(m == 1, x, black + m * (x - black))], dim=1).view(-1, 3, s, s)

    _score_new(scorer, data, step_keys, seen, 2, step_inputs, image_of=np.arange(n * k) // k)
    _score_new(scorer, data, masked_keys, seen, 2, masked_inputs)
    scores = np.stack([seen[key] for key in step_keys]).reshape(n, k, 2)
    pair = np.stack([seen[key] for key in masked_keys]).reshape(n, 2)
    ones = np.asarray(maps == 1).reshape(n, -1).all(axis=1)  # map × image is the image: O = Y exactly
    zeros = np.asarray(maps == 0).reshape(n, -1).all(axis=1)  # map × image is the baseline
    masked = np.where(ones, data.clean, np.where(zeros, data.zero_score, pair[:, 0]))
    masked_pixel = np.where(ones, data.clean, np.where(zeros, data.black_score, pair[:, 1]))
    deletion = np.column_stack([data.clean, scores[:, :, 0], data.zero_score])
    insertion = np.column_stack([data.start_score, scores[:, :, 1], data.clean])
    road = method_road(scorer, data, maps, seen) if data.gauss is not None else None
    return MethodFaithfulness(masked, masked_pixel, deletion, insertion, road)


def _digest(array: np.ndarray) -> bytes:
    """16 bytes that stand for an array's contents (a step's or ROAD system's packed pixel set, a map) in a
    `seen` key."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).digest()


def _score_new(scorer: Scorer, data: ImageSet, keys: list, seen: dict, per_row: int, build,
               image_of: np.ndarray | None = None) -> None:
    """Score the rows whose key is not in `seen`, once per distinct key: `build(rows)` gives their
    (len(rows) · per_row, 3, s, s) inputs, whole rows per chunk of about batch_size inputs, scored for the
    label of image_of[row] (default: row i is image i); seen[key] becomes the row's (per_row,) scores."""
    first: dict = {}
    for i, key in enumerate(keys):
        if key not in seen:
            first.setdefault(key, i)
    todo = list(first.values())  # the first row of each new key, in row order
    chunk = max(1, scorer.batch_size // per_row)
    for lo in range(0, len(todo), chunk):
        rows = todo[lo:lo + chunk]
        images = rows if image_of is None else image_of[rows].tolist()
        labels = data.labels[images].repeat_interleave(per_row)
        scores = _scores(scorer, build(rows), labels).reshape(len(rows), per_row)
        for i, row_scores in zip(rows, scores, strict=True):
            seen[keys[i]] = row_scores


def method_road(scorer: Scorer, data: ImageSet, maps: np.ndarray, seen: dict | None = None) -> np.ndarray:
    """(N, 2, L) ROAD scores alone (MoRF, LeRF at each percentile) of one method on `data` (built with
    road=True), batch_size systems at a time; maps (N, s, s) in [0, 1].

    `seen`, one dict per split shared by its methods (and by `method_faithfulness`), holds every system
    scored so far by (image key, percentile, kept pixels): a system with the same kept pixels is the same
    input (the noise is per image and percentile), so it is looked up instead of imputed and scored again.
    Methods whose maps rank alike (Grad-CAM, XGrad-CAM and HiResCAM on a GAP + linear model) share most
    systems."""
    if data.gauss is None:
        raise ValueError("ROAD needs an ImageSet prepared with road=True (its noise)")
    seen = {} if seen is None else seen
    n, lv, s = data.inputs.shape[0], len(R.ROAD_PERCENTILES), data.inputs.shape[-1]
    keep = R.keep_masks(torch.as_tensor(np.asarray(maps, np.float32), device=scorer.device))  # (N, 2, L, s, s)
    packed = np.packbits(keep.reshape(n * 2 * lv, -1).cpu().numpy(), axis=1)  # (N·2·L, ⌈s²/8⌉)
    keys = [("road", int(data.keys[j // (2 * lv)]), j % lv, _digest(packed[j])) for j in range(n * 2 * lv)]
    keep, gauss = keep.reshape(n * 2 * lv, 1, s, s), torch.as_tensor(data.gauss, device=scorer.device)

    def inputs(rows):  # (b, 3, s, s) the imputed input of each system, ordered (image, order, percentile)
        j = torch.as_tensor(rows, device=scorer.device)
        image, level = j // (2 * lv), j % lv
        return R.noisy_imputed(data.inputs[image], keep[j], gauss[image, level])

    _score_new(scorer, data, keys, seen, 1, inputs, image_of=np.arange(n * 2 * lv) // (2 * lv))
    return np.array([seen[k] for k in keys]).reshape(n, 2, lv)


def per_image(data: ImageSet, result: MethodFaithfulness) -> dict[str, np.ndarray]:
    """(N,) per-image values of every metric (`metrics.faithfulness`), the stage's table columns."""
    out = {"deletion_auc": MF.trapezoid_auc(result.deletion), "insertion_auc": MF.trapezoid_auc(result.insertion)}
    if result.road is not None:
        out |= R.road_per_image(data.clean, result.road)
    return out


def summary(data: ImageSet, result: MethodFaithfulness) -> dict[str, float]:
    """Every metric of one method: AD and IC (both variants) in %, the AUCs in [0, 1], ROAD in score units."""
    y = data.clean
    out = {"avg_drop": MF.average_drop(y, result.masked_score),
           "increase_in_confidence": MF.increase_in_confidence(y, result.masked_score),
           "avg_drop_pixel": MF.average_drop(y, result.masked_score_pixel),
           "increase_in_confidence_pixel": MF.increase_in_confidence(y, result.masked_score_pixel)}
    return out | {k: float(v.mean()) for k, v in per_image(data, result).items()}
