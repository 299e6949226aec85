"""The report's metrics that are plain means of per-image values, with bootstrap CIs: the pointing games
(data/eval/<B>/pointing.parquet) and the faithfulness metrics (data/faithfulness/<B>/per_image.parquet).

Unlike MaxBoxAcc there is no τ to re-choose inside a resample, so a resample's value is the weighted
mean of the per-image values (`metrics.pointing.mean_percent` for the % metrics). The weights are drawn
like `perimage`'s: per box kind with the same seed offsets (so the pointing game of the head boxes is
resampled on exactly the images and draws of head MaxBoxAccV2), and once for the faithfulness subset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import faithcontracts as FC
from pipeline.catalog.metrics import METRICS, per_kind
from pipeline.contracts import SCORED_SPLIT
from pipeline.metrics import faithfulness as MF
from pipeline.metrics.pointing import mean_percent
from pipeline.report import ci

FAITHFULNESS_SEED_OFFSET = 2  # perimage uses 0 (the loc kind: head, object) and 1 (the others: body)
ROAD_SEED_OFFSET = 3  # ROAD's own subset of the faithfulness images


@dataclass(frozen=True)
class MeanScores:
    """Per-image values behind some metrics of one (backbone, method), on one set of images."""

    group: str  # which resample weights apply: a box kind, or "faithfulness"
    image_ids: np.ndarray  # (N,) sorted
    values: dict[str, np.ndarray]  # metric → (N,) per-image values
    percent: dict[str, bool]  # metric → reported as 100 × mean (else the plain mean, e.g. an AUC)

    def scores(self, metric: str, weights: np.ndarray | None = None) -> float | np.ndarray:
        v = self.values[metric]
        if self.percent[metric]:
            return mean_percent(v, weights)
        return float(v.mean()) if weights is None else (weights.astype(np.float64) @ v) / weights.sum(axis=1)


def pointing_scores(pointing: pd.DataFrame, scored: dict[str, str] = SCORED_SPLIT) -> dict[str, MeanScores]:
    """method → MeanScores per box kind on its scored split (`scored`: the dataset's
    `Layout.scored_split`, default Pets): {method}/{kind} keys, e.g. "cam/head"."""
    out = {}
    for (method, kind), g in pointing.groupby(["method", "kind"], sort=True):
        g = g[g["split"] == scored.get(str(kind))].sort_values("image_id")
        if g.empty:
            continue
        values = {per_kind("pointing_game", str(kind)): g["hit"].to_numpy(np.float64),
                  per_kind("energy_pointing_game", str(kind)): g["energy"].to_numpy(np.float64)}
        out[f"{method}/{kind}"] = MeanScores(str(kind), g["image_id"].to_numpy(dtype=str), values, _percent(values))
    return out


def faithfulness_scores(table: pd.DataFrame, road: pd.DataFrame | None = None) -> dict[str, MeanScores]:
    """method → MeanScores of AD and IC (both variants) and the AUCs; "method/road" → MeanScores of ROAD's
    MoRF, LeRF and combined on its own subset (`road`: data/faithfulness/<B>/road.parquet)."""
    out = {}
    for method, g in table.groupby("method", sort=True):
        g = g.sort_values(["split", "image_id"])
        y, o, op = g["score"].to_numpy(), g["masked_score"].to_numpy(), g["masked_score_pixel"].to_numpy()
        values = {"avg_drop": MF.per_image_drop(y, o), "increase_in_confidence": MF.per_image_increase(y, o),
                  "avg_drop_pixel": MF.per_image_drop(y, op),
                  "increase_in_confidence_pixel": MF.per_image_increase(y, op),
                  "deletion_auc": g["deletion_auc"].to_numpy(np.float64),
                  "insertion_auc": g["insertion_auc"].to_numpy(np.float64)}
        ids = (g["split"] + "/" + g["image_id"].astype(str)).to_numpy(dtype=str)
        out[str(method)] = MeanScores("faithfulness", ids, values, _percent(values))
    for method, g in (road.groupby("method", sort=True) if road is not None else ()):
        g = g.sort_values(["split", "image_id"])
        ids = (g["split"] + "/" + g["image_id"].astype(str)).to_numpy(dtype=str)
        values = {n: g[n].to_numpy(np.float64) for n in FC.ROAD_NAMES}
        out[f"{method}/road"] = MeanScores("road", ids, values, _percent(values))
    return out


def _percent(values: dict[str, np.ndarray]) -> dict[str, bool]:
    """Per metric, whether its card reports it as a percentage (pipeline/catalog/metrics.py)."""
    return {name: METRICS.get(name).percent for name in values}


def bootstrap_means(rows: dict[str, dict[str, MeanScores]], resamples: int, seed: int,
                    loc: str = "head") -> tuple[pd.DataFrame, dict[tuple[str, str, str], np.ndarray]]:
    """Point and 95% CI per (backbone, method, metric) from {backbone: {key: MeanScores}} (key "method" or
    "method/kind"); the same frame and samples layout as `perimage.bootstrap_rows`, and for a box kind
    the same resample draws (`loc`: the dataset's loc kind)."""
    weights: dict[tuple[str, int], np.ndarray] = {}
    out, samples = [], {}
    for backbone, entries in rows.items():
        for key, ms in sorted(entries.items()):
            method = key.split("/")[0]
            n = len(ms.image_ids)
            if (ms.group, n) not in weights:
                offset = (FAITHFULNESS_SEED_OFFSET if ms.group == "faithfulness" else ROAD_SEED_OFFSET
                          if ms.group == "road" else 0 if ms.group == loc else 1)
                weights[(ms.group, n)] = ci.resample_weights(n, resamples, seed + offset)
            for metric in ms.values:
                boot = np.asarray(ms.scores(metric, weights[(ms.group, n)]), dtype=np.float64)
                lo, hi = ci.percentile_ci(boot)
                out.append((backbone, method, metric, float(ms.scores(metric)), lo, hi))
                samples[(backbone, method, metric)] = boot
    frame = pd.DataFrame(out, columns=["backbone", "method", "metric", "point", "ci_low", "ci_high"])
    return frame, samples
