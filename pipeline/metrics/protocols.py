"""Protocol profiles (`pipeline.catalog.protocols`): one set of maps scored under each paper's rules, for
evaluate@B's `protocols` section and the report's Protocols table. numpy / OpenCV only, never torch.

Two steps, both pure:
- ``profile_ious(raw, size, gt, taus, normalisation, box_rule)``: one image's best IoU per τ of the box a
  profile keeps (its normalisation, its box rule), in the S×S frame of PROTOCOL §2;
- ``score_profile(card, inputs, deltas, family)``: a split's per-image IoUs → Top-1 / GT-known Loc at the
  profile's τ, that τ, and MaxBoxAcc / MaxBoxAccV2 under the profile's box rules.

The binarisation is the reference's everywhere (PROTOCOL §3: ``u = uint8(255·s)``, keep ``u > int(τ·max u)``);
a profile only changes what its card says. Boxes keep the +1 IoU of PROTOCOL §4 (TS-CAM's `cal_iou` uses it
too).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipeline.catalog.protocols import (
    GT_KNOWN_LOC,
    MAXBOXACC,
    MAXBOXACC_V2,
    TAU,
    TAU_TOP1,
    TOP1_LOC,
    ProtocolCard,
)
from pipeline.metrics.boxacc import box_acc_curve, max_box_acc_v2
from pipeline.metrics.boxes import best_ious, normalize_map
from pipeline.metrics.contours import prepare_levels
from pipeline.metrics.iou import iou_matrix
from pipeline.metrics.largestcc import largest_component_boxes

IOU = 0.5  # the Loc metrics' IoU threshold (δ); strict or not per card
TAU_MATCH = 1e-9  # a fixed τ is "on the grid" within this


def normalise(raw: np.ndarray, size: int, normalisation: str) -> np.ndarray:
    """One raw map → the S×S frame under a card's normalisation (float64 in [0, 1]).

    ``bicubic_minmax`` is PROTOCOL §1 (``metrics.normalize_map``); ``bilinear_minmax`` is OpenCV's default
    ``INTER_LINEAR`` resize, then min–max with the same rule for a constant or non-finite map (all zeros).
    """
    if normalisation == "bicubic_minmax":
        return normalize_map(raw, (size, size))
    if normalisation != "bilinear_minmax":
        raise ValueError(f"normalisation = {normalisation!r}: expected bicubic_minmax or bilinear_minmax")
    cam = cv2.resize(np.asarray(raw, dtype=np.float64), (size, size), interpolation=cv2.INTER_LINEAR)
    if not np.isfinite(cam).all() or cam.min() == cam.max():
        return np.zeros((size, size), dtype=np.float64)
    cam = cam - cam.min()
    cam /= cam.max()
    return cam


def profile_ious(raw: np.ndarray, size: int, gt: np.ndarray, taus: np.ndarray, normalisation: str,
                 box_rules: tuple[str, ...]) -> np.ndarray:
    """(R, T) one image's best IoU per τ with its (G, 4) GT boxes, one row per box rule of ``box_rules``."""
    smap = normalise(raw, size, normalisation)
    gt = np.asarray(gt, dtype=np.int64).reshape(-1, 4)
    contours = best_ious(smap, gt, taus) if {"largest_contour", "all_contours"} & set(box_rules) else None
    out = np.empty((len(box_rules), len(taus)))
    for r, rule in enumerate(box_rules):
        if rule == "largest_component":
            u, thresholds, index = prepare_levels(smap, np.asarray(taus, dtype=np.float64), crops=False)
            out[r] = iou_matrix(largest_component_boxes(u, thresholds), gt).max(axis=1)[index]
        elif rule in ("largest_contour", "all_contours"):
            out[r] = contours[0 if rule == "largest_contour" else 1]
        else:
            raise ValueError(f"box rule {rule!r}: expected largest_contour, largest_component or all_contours")
    return out


@dataclass(frozen=True)
class ProfileInputs:
    """One method's per-image IoUs for one profile: the scored split's, and the τ-selection split's."""

    taus: np.ndarray  # (T,) ascending
    loc: np.ndarray  # (N, T) IoUs of the profile's box (box_rule) on the scored split
    v2: np.ndarray  # (N, T) IoUs under v2_box_rule on the scored split
    top1_ok: np.ndarray  # (N,) top-1 prediction right
    select: np.ndarray | None = None  # (M, T) largest-contour IoUs on val (GT or pseudo boxes) for val / pseudo


@dataclass(frozen=True)
class ProfileResult:
    values: dict[str, float]  # TOP1_LOC, GT_KNOWN_LOC, TAU, TAU_TOP1, MAXBOXACC, MAXBOXACC_V2
    columns: np.ndarray  # τ indices the report resamples over: all of them for an oracle, else the chosen ones


def hits(ious: np.ndarray, strict: bool) -> np.ndarray:
    """IoU > 0.5 (strict) or IoU ≥ 0.5."""
    return ious > IOU if strict else ious >= IOU


def tau_index(taus: np.ndarray, tau: float) -> int:
    """The position of a fixed τ on the grid (ValueError when it is not on it)."""
    k = int(np.argmin(np.abs(np.asarray(taus) - tau)))
    if abs(float(taus[k]) - tau) > TAU_MATCH:
        raise ValueError(f"τ = {tau} is not on the τ grid; add it to the grid")
    return k


def score_profile(card: ProtocolCard, inp: ProfileInputs, deltas: tuple[float, ...], family: str) -> ProfileResult:
    """The profile's numbers from its per-image IoUs (percentages; τ as a fraction of the map max).

    τ rule: ``fixed`` takes the card's τ for the dataset family; ``val`` / ``pseudo`` the first best
    BoxAcc(τ, 0.5) (IoU ≥ 0.5, largest contour) on ``inp.select`` for both Loc numbers; ``test`` the first
    best τ of each Loc number on the scored split itself (an oracle: ≥ any other rule's number).
    MaxBoxAcc is max_τ BoxAcc(τ, 0.5) of the profile's box, MaxBoxAccV2 the mean over ``deltas`` of the
    per-δ best under ``v2_box_rule``: both τ-free, as defined.
    """
    ok = np.asarray(inp.top1_ok, dtype=bool)[:, None]
    gt_curve = hits(inp.loc, card.gt_known_strict).mean(axis=0) * 100.0  # (T,)
    top1_curve = (hits(inp.loc, card.top1_strict) & ok).mean(axis=0) * 100.0
    if card.tau_rule == "fixed":
        k_gt = k_top1 = tau_index(inp.taus, card.tau_for(family))
    elif card.tau_rule == "test":
        k_gt, k_top1 = int(np.argmax(gt_curve)), int(np.argmax(top1_curve))
    else:
        if inp.select is None or len(inp.select) == 0:
            raise ValueError(f"profile {card.name} chooses τ on val but no val IoUs were given")
        k_gt = k_top1 = int(np.argmax(box_acc_curve(inp.select, IOU)))
    values = {TOP1_LOC: float(top1_curve[k_top1]), GT_KNOWN_LOC: float(gt_curve[k_gt]),
              TAU: float(inp.taus[k_gt]), TAU_TOP1: float(inp.taus[k_top1]),
              MAXBOXACC: float(box_acc_curve(inp.loc, IOU).max()),
              MAXBOXACC_V2: max_box_acc_v2(inp.v2, deltas)["v2"]}
    columns = np.arange(len(inp.taus)) if card.tau_rule == "test" else np.unique([k_gt, k_top1])
    return ProfileResult(values, columns)


def resampled_loc(ious: np.ndarray, ok: np.ndarray | None, strict: bool, weights: np.ndarray) -> np.ndarray:
    """(B,) a Loc accuracy under resample ``weights`` (B, N) from IoUs (N, K) at K candidate τs: the best of
    the K per resample (an oracle re-chooses its τ inside each resample; K = 1 is a fixed τ)."""
    hit = hits(np.asarray(ious, dtype=np.float64), strict)  # (N, K)
    if ok is not None:
        hit &= np.asarray(ok, dtype=bool)[:, None]
    return (weights @ hit.astype(np.float32)).max(axis=1).astype(np.float64) * 100.0 / float(hit.shape[0])
