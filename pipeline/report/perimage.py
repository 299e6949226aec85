"""Per-image IoU matrices from data/eval/<B>/per_image.parquet and the report stage's metrics re-computed from them.

The evaluate stage already wrote the point estimates; the report re-computes the main ones from the
per-image IoUs so it can resample images (bootstrap CIs, paired test) and break them down by species
and breed. A re-computed point that disagrees with the metrics JSON means the two stages drifted apart:
that CI is dropped and counted, never shown beside a number it does not belong to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.contracts import HOLDOUT, SCORED_SPLIT
from pipeline.errors import CamlocError
from pipeline.metrics.boxacc import loc_accuracy, max_box_acc_resampled
from pipeline.report import ci

log = logging.getLogger(__name__)

TAU_TOLERANCE = 1e-4


@dataclass(frozen=True)
class MetricSpec:
    """How one leaderboard metric follows from per-image IoUs (PROTOCOL §4)."""

    name: str
    kind: str  # head | body
    mode: str  # largest | all
    v2: bool  # mean over the δ grid (MaxBoxAccV2) rather than δ = 0.5 alone
    tau: str  # oracle (re-chosen per resample) | val (chosen.json val τ) | fixed (evaluate.fixed_tau)
    top1: bool = False  # also require a correct top-1 class


def specs_for(kinds: tuple[str, ...], loc: str) -> tuple[MetricSpec, ...]:
    """The re-computed metrics of a dataset's box kinds: the Loc metrics and MaxBoxAcc v1 on the loc
    kind (head for Pets, object for the reference layout), MaxBoxAccV2 (oracle and val τ) on each."""
    out = []
    if loc in kinds:
        out += [MetricSpec("top1_loc", loc, "largest", False, "fixed", top1=True),
                MetricSpec("gt_known_loc", loc, "largest", False, "fixed"),
                MetricSpec(f"maxboxacc_{loc}", loc, "largest", False, "oracle")]
    for kind in [loc, *[k for k in kinds if k != loc]]:
        if kind in kinds:
            out += [MetricSpec(f"maxboxacc_v2_{kind}", kind, "all", True, "oracle"),
                    MetricSpec(f"maxboxacc_v2_{kind}_val_tau", kind, "all", True, "val")]
    return tuple(out)


SPECS = specs_for(tuple(SCORED_SPLIT), "head")  # Pets
CI_METRICS = tuple(s.name for s in SPECS)


@dataclass(frozen=True)
class IouCube:
    """IoUs of one method, box kind and contour mode on one split."""

    split: str
    image_ids: np.ndarray  # (N,) sorted
    taus: np.ndarray  # (T,) ascending
    iou: np.ndarray  # (N, T)

    def column(self, tau: float, what: str) -> int:
        """Index of τ on the grid; a τ off the grid means chosen.json and per_image disagree."""
        i = int(np.argmin(np.abs(self.taus - tau)))
        if abs(float(self.taus[i]) - tau) > TAU_TOLERANCE:
            raise CamlocError(f"{what}: tau {tau} is not on the per_image tau grid "
                              f"[{self.taus[0]:.4g} .. {self.taus[-1]:.4g}]; re-run the evaluate stage")
        return i


def eval_split(per_image: pd.DataFrame, kind: str, scored: dict[str, str] | None = None) -> str | None:
    """The split `kind` is scored on, or None when per_image has no such rows."""
    scored = SCORED_SPLIT if scored is None else scored
    rows = (per_image["kind"] == kind) & (per_image["split"] != HOLDOUT)
    splits = sorted(str(s) for s in per_image.loc[rows, "split"].unique())  # unique first: ~10^6 rows
    if scored.get(kind) in splits:
        return scored[kind]
    return splits[0] if len(splits) == 1 else None


def build_cubes(per_image: pd.DataFrame, source: str,
                scored: dict[str, str] | None = None) -> dict[tuple[str, str, str], IouCube]:
    """(method, kind, mode) → IouCube on that kind's evaluation split (`scored`: the dataset's
    `Layout.scored_split`, default Pets)."""
    cubes: dict[tuple[str, str, str], IouCube] = {}
    for kind in SCORED_SPLIT if scored is None else scored:
        split = eval_split(per_image, kind, scored)
        if split is None:
            log.warning("%s: no unambiguous evaluation split for %s boxes; their CIs are skipped", source, kind)
            continue
        sub = per_image[(per_image["kind"] == kind) & (per_image["split"] == split)]
        for (method, mode), g in sub.groupby(["method", "mode"], sort=True, observed=True):
            wide = g.pivot_table(index="image_id", columns="tau_index", values="iou", aggfunc="max")
            if wide.isna().to_numpy().any():
                raise CamlocError(f"{source}: {method}/{kind}/{mode} lacks some (image, tau) rows; "
                                  "re-run the evaluate stage")
            taus = g.drop_duplicates("tau_index").set_index("tau_index")["tau"].reindex(wide.columns)
            cubes[(str(method), kind, str(mode))] = IouCube(
                split, wide.index.to_numpy(dtype=str), taus.to_numpy(dtype=np.float64),
                wide.to_numpy(dtype=np.float32))  # (N, T)
    return cubes


def metric_scores(spec: MetricSpec, cube: IouCube, weights: np.ndarray, chosen: dict, deltas: tuple[int, ...],
                  fixed_tau: float, top1_ok: np.ndarray | None) -> np.ndarray:
    """(B,) scores in percent of `spec` under each resample's weights (B, N)."""
    fracs = tuple(d / 100 for d in deltas) if spec.v2 else (0.5,)
    if spec.tau == "oracle":
        return max_box_acc_resampled(cube.iou, fracs, weights)
    if spec.tau == "val":
        taus = chosen["val"][spec.kind]
        keys = [str(d) for d in deltas] if spec.v2 else ["v1"]
        cols = [cube.column(float(taus[k]), f"chosen.json val/{spec.kind}/{k}") for k in keys]
        return loc_accuracy(cube.iou[:, cols], delta=np.asarray(fracs, dtype=np.float32), weights=weights)
    col = cube.column(fixed_tau, "evaluate.fixed_tau")
    if spec.top1 and top1_ok is None:
        raise CamlocError(f"top-1 correctness is unknown for the {spec.kind} split")
    return loc_accuracy(cube.iou[:, col], top1_ok if spec.top1 else None, 0.5, weights)


def per_image_v2(cube: IouCube, taus_by_delta: dict[str, float], deltas: tuple[int, ...]) -> np.ndarray:
    """(N,) each image's share of δ it passes at the split's chosen τ per δ: its MaxBoxAccV2 share."""
    cols = [cube.column(float(taus_by_delta[str(d)]), f"chosen.json oracle τ for δ={d}") for d in deltas]
    return (cube.iou[:, cols] >= np.asarray([d / 100 for d in deltas], dtype=np.float32)).mean(axis=1)


@dataclass(frozen=True)
class BackboneEval:
    """What the report needs of one backbone's evaluation to resample it."""

    backbone: str
    cubes: dict[tuple[str, str, str], IouCube]
    chosen: dict  # chosen.json: method → {"oracle"|"val": {kind: {"v1"|δ: τ}}}
    top1_ok: dict[str, np.ndarray]  # split → (N,) pred == label, aligned to that split's sorted ids


def top1_correct(index: pd.DataFrame, image_ids: np.ndarray, source: str) -> np.ndarray:
    """(N,) whether the top-1 prediction is right, in the order of `image_ids`."""
    idx = index.set_index(index["image_id"].astype(str))
    missing = np.setdiff1d(image_ids, idx.index.to_numpy(dtype=str))
    if missing.size:
        raise CamlocError(f"{source} lacks {missing.size} evaluated images (e.g. {missing[0]}); "
                          "re-run the cams and evaluate stages together")
    rows = idx.loc[image_ids]
    return (rows["pred"].to_numpy() == rows["label"].to_numpy())


def _unusable(spec: MetricSpec, cube: IouCube, ev: BackboneEval, method: str, deltas, fixed_tau) -> str | None:
    """Why `spec` cannot be re-computed for this row (None when it can)."""
    chosen = ev.chosen.get(method, {})
    if spec.tau == "val" and not all(k in chosen.get("val", {}).get(spec.kind, {}) for k in map(str, deltas)):
        return "chosen.json has no val τ for it"
    if spec.tau == "fixed" and np.min(np.abs(cube.taus - fixed_tau)) > TAU_TOLERANCE:
        return f"evaluate.fixed_tau = {fixed_tau} is not on the per-image τ grid"
    if spec.top1 and cube.split not in ev.top1_ok:
        return "top-1 predictions are unknown"
    return None


def bootstrap_rows(evals: list[BackboneEval], deltas: tuple[int, ...], fixed_tau: float, resamples: int, seed: int,
                   specs: tuple[MetricSpec, ...] = SPECS, loc: str = "head",
                   ) -> tuple[pd.DataFrame, dict[tuple[str, str, str], np.ndarray]]:
    """Point, 95% CI per (backbone, method, metric) on shared resamples, plus every row's samples.

    All backbones share one weight matrix per box kind (same images, same draws), which is what makes
    the paired test between any two rows valid. Returns (long frame, {(backbone, method, metric): (B,)}).
    """
    weights: dict[tuple[str, int], np.ndarray] = {}
    rows, samples = [], {}
    for ev in evals:
        for (method, kind, mode), cube in sorted(ev.cubes.items()):
            n = cube.iou.shape[0]
            key = (kind, n)
            if key not in weights:  # seeded per kind so adding a backbone never changes another's CIs
                weights[key] = ci.resample_weights(n, resamples, seed + (0 if kind == loc else 1))
            ones = np.ones((1, n), dtype=np.float32)  # (1, N): the plain estimate
            for spec in specs:
                if (spec.kind, spec.mode) != (kind, mode):
                    continue
                reason = _unusable(spec, cube, ev, method, deltas, fixed_tau)
                if reason:
                    log.warning("%s/%s: no CI for %s: %s", ev.backbone, method, spec.name, reason)
                    continue
                top1 = ev.top1_ok.get(cube.split) if spec.top1 else None
                args = (ev.chosen.get(method, {}), deltas, fixed_tau, top1)
                point = float(metric_scores(spec, cube, ones, *args)[0])
                boot = metric_scores(spec, cube, weights[key], *args)
                lo, hi = ci.percentile_ci(boot)
                rows.append((ev.backbone, method, spec.name, point, lo, hi))
                samples[(ev.backbone, method, spec.name)] = boot
    frame = pd.DataFrame(rows, columns=["backbone", "method", "metric", "point", "ci_low", "ci_high"])
    return frame, samples
