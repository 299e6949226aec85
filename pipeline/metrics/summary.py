"""A split's per-image IoUs → the metrics JSON entries of one map method (PROTOCOL §4), for evaluate@B.

``scores`` maps ``(split, kind)`` to ``(ious (N, 2, T), rows (N,))``: each image's best IoU per τ in
largest-contour (0) and all-contours (1) mode. Every τ-chosen number comes twice: the reference's
test-oracle τ (picked on the scored split itself, an upper bound) and ``_val_tau`` (picked on the
holdout split, applied unchanged).
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.contracts import HOLDOUT, SCORED_SPLIT
from pipeline.metrics.boxacc import box_acc_curve, loc_accuracy, max_box_acc, max_box_acc_v2

log = logging.getLogger(__name__)
V1_KINDS = ("head", "object")  # the kinds that also get MaxBoxAcc v1 (largest contour, δ = 0.5)


def delta_name(delta: float) -> str:
    """0.3 → "30": δ as it appears in metric keys."""
    return f"{round(delta * 100)}"


def box_metrics(scores: dict, deltas: tuple[float, ...], tau_grid: np.ndarray,
                scored: dict[str, str] | None = None) -> dict[str, float]:
    """MaxBoxAcc (head / object, v1), MaxBoxAccV2 with per-δ values and chosen τ, and their val-τ twins;
    `scored` is the dataset's kind → scored split (default: Pets)."""
    out: dict[str, float] = {}
    for kind, split in (SCORED_SPLIT if scored is None else scored).items():
        if (split, kind) not in scores:
            continue
        ious, _ = scores[(split, kind)]
        largest, every = ious[:, 0], ious[:, 1]  # (N, T) each
        if kind in V1_KINDS:
            out[f"maxboxacc_{kind}"], _ = max_box_acc(largest, 0.5)
        v2 = max_box_acc_v2(every, deltas)
        out[f"maxboxacc_v2_{kind}"] = v2["v2"]
        for d in deltas:
            out[f"maxboxacc_{kind}_d{delta_name(d)}"] = v2["by_delta"][d]
            out[f"tau_v2_{kind}_{delta_name(d)}"] = float(tau_grid[v2["tau_index"][d]])
        if (HOLDOUT, kind) in scores:
            val_ious, _ = scores[(HOLDOUT, kind)]
            chosen = max_box_acc_v2(val_ious[:, 1], deltas)["tau_index"]
            out[f"maxboxacc_v2_{kind}_val_tau"] = max_box_acc_v2(every, deltas, tau_index=chosen)["v2"]
            if kind in V1_KINDS:
                _, k1 = max_box_acc(val_ious[:, 0], 0.5)
                out[f"maxboxacc_{kind}_val_tau"] = float(box_acc_curve(largest, 0.5)[k1])
    return out


def loc_at_fixed_tau(ious: np.ndarray, top1_ok: np.ndarray, top5_ok: np.ndarray) -> dict[str, float]:
    """GT-known, Top-1 and Top-5 Loc from (N,) GT-class-map IoUs at the fixed τ. The GT-class map serves
    all three: when the top-1 prediction is right, the predicted-class map is the GT-class map; when it
    is wrong, the image fails Top-1 Loc anyway."""
    return {"gt_known_loc": loc_accuracy(ious), "top1_loc": loc_accuracy(ious, top1_ok),
            "top5_loc": loc_accuracy(ious, top5_ok)}


def box_ap_tau(scores: dict, tau_grid: np.ndarray, kind: str = "head", split: str | None = None) -> float:
    """The τ of COCO box AP: chosen on the holdout's `kind` boxes for δ = 0.5 (the test oracle without one)."""
    source = scores.get((HOLDOUT, kind)) or scores[(split or SCORED_SPLIT[kind], kind)]
    return float(tau_grid[max_box_acc_v2(source[0][:, 1], (0.5,))["tau_index"][0.5]])


def chosen_taus(scores: dict, deltas: tuple[float, ...], tau_grid: np.ndarray) -> dict:
    """The τ each score used: {"oracle"|"val": {kind: {"v1", "30", "50", "70"}}} (eval/<B>/chosen.json)."""
    out: dict = {"oracle": {}, "val": {}}
    for (split, kind), (ious, _) in scores.items():
        flavour = "val" if split == HOLDOUT else "oracle"
        taus = {delta_name(d): float(tau_grid[k]) for d, k in max_box_acc_v2(ious[:, 1], deltas)["tau_index"].items()}
        if kind in V1_KINDS:
            taus["v1"] = float(tau_grid[max_box_acc(ious[:, 0], 0.5)[1]])
        out[flavour][kind] = taus
    return out


def nonfinite_counts(meta: dict, method: str, backbone: str) -> dict[str, int]:
    """The NaN/inf rule of this stage (docs/contracts.md): such a map is scored as all zeros (no box), the
    reference's own rule; how many there were (cams@B counted them per file) goes to the metrics JSON as
    ``<method>.nonfinite_maps`` and a WARNING. Absent when there are none, as in every clean run."""
    n = sum(int(v) for k, v in (meta.get("nonfinite_maps") or {}).items() if k.split("/", 1)[-1].rsplit("_", 1)[0]
            == method)
    if not n:
        return {}
    log.warning("evaluate %s: %d %s maps hold NaN/inf values; scored as all-zero maps (no box), as the reference "
                "does", backbone, n, method)
    return {f"{method}.nonfinite_maps": n}
