"""The report stage's tables as pure DataFrame → DataFrame transforms (no I/O, no formatting).

Localization metrics are percentages where higher is better; the faithfulness family adds two where lower
is better (LOWER_IS_BETTER) and two AUCs in [0, 1].
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Leaderboard metric columns in display order; `top1_acc` is the classification accuracy (per backbone).
METRICS = (
    "top1_acc", "top1_loc", "top5_loc", "gt_known_loc", "maxboxacc_head", "maxboxacc_v2_head",
    "maxboxacc_v2_head_val_tau", "maxboxacc_v2_body", "maxboxacc_v2_body_val_tau", "pxap", "pxiou", "box_ap",
    "maxboxacc_object", "maxboxacc_v2_object", "maxboxacc_v2_object_val_tau",
    "pointing_game_head", "energy_pointing_game_head", "pointing_game_body", "energy_pointing_game_body",
    "pointing_game_object", "energy_pointing_game_object",
    "avg_drop", "increase_in_confidence", "avg_drop_pixel", "increase_in_confidence_pixel", "deletion_auc",
    "insertion_auc", "road_morf", "road_lerf", "road_combined",
)
# the faithfulness metrics where a smaller value is better
LOWER_IS_BETTER = ("avg_drop", "avg_drop_pixel", "deletion_auc", "road_morf")
RANK_BY = "maxboxacc_v2_head"
CLASSIFICATION = "classification"
# A re-computed point may differ from the JSON by float rounding only (both are percentages).
POINT_TOLERANCE = 0.05


def metrics_for(kinds: tuple[str, ...], loc: str, pixels: bool) -> tuple[str, ...]:
    """The METRICS a dataset has: those of its box kinds, the Loc ones when its loc kind has boxes,
    PxAP / PxIoU when it has pixel masks (Pets: all but the object ones)."""
    hidden = [k for k in ("head", "body", "object") if k not in kinds]
    out = []
    for m in METRICS:
        if any(m.startswith((f"maxboxacc_{k}", f"maxboxacc_v2_{k}", f"pointing_game_{k}", f"energy_pointing_game_{k}"))
               for k in hidden):
            continue
        if (m in ("pxap", "pxiou") and not pixels) or (m in LOC_METRICS and loc not in kinds):
            continue
        out.append(m)
    return tuple(out)


LOC_METRICS = ("top1_loc", "top5_loc", "gt_known_loc", "box_ap")


def metrics_frame(metrics: dict[str, dict[str, float]], method_order: tuple[str, ...] = (),
                  names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (backbone, method) from the flat `<method>.<metric>` dicts, keyed by backbone.

    Backbones keep the dict's order (params order); methods follow `method_order`, then any others
    sorted. Metrics not in `names` (default: those of Pets) are kept as extra columns after them,
    sorted (e.g. chosen τ).
    """
    names = metrics_for(("head", "body"), "head", True) if names is None else names
    rows = []
    for backbone, flat in metrics.items():
        per_method: dict[str, dict[str, float]] = {}
        for key, value in flat.items():
            method, _, name = key.partition(".")
            if method != CLASSIFICATION:
                per_method.setdefault(method, {})[name] = value
        order = [m for m in method_order if m in per_method] + sorted(set(per_method) - set(method_order))
        for method in order:
            row = {"backbone": backbone, "method": method, "top1_acc": flat.get(f"{CLASSIFICATION}.top1")}
            rows.append(row | per_method[method])
    df = pd.DataFrame(rows)
    extra = sorted(c for c in df.columns if c not in ("backbone", "method", *names))
    df = df.reindex(columns=["backbone", "method", *names, *extra])
    df[[*names, *extra]] = df[[*names, *extra]].astype(float)
    return df


def attach_cis(board: pd.DataFrame, cis: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add `<metric>_ci_low` / `_ci_high` beside each metric that has CIs.

    `cis` is long (backbone, method, metric, point, ci_low, ci_high). A CI whose re-computed point
    disagrees with the leaderboard's value beyond POINT_TOLERANCE is dropped and listed in the return.
    """
    dropped: list[str] = []
    out = board.copy()
    metrics = [m for m in METRICS if m in set(cis["metric"])]
    for m in metrics:
        sub = cis[cis["metric"] == m].set_index(["backbone", "method"])
        keys = pd.MultiIndex.from_frame(out[["backbone", "method"]])
        point, low, high = (np.array(sub[c].reindex(keys), dtype=float) for c in ("point", "ci_low", "ci_high"))
        bad = ~(abs(point - out[m].to_numpy()) <= POINT_TOLERANCE) & ~pd.isna(point)
        for (b, meth), value, p in zip(keys[bad], out[m].to_numpy()[bad], point[bad], strict=True):
            dropped.append(f"{b}/{meth}/{m}: metrics JSON {value:.3f} vs per-image {p:.3f}")
        low[bad], high[bad] = float("nan"), float("nan")
        out.insert(out.columns.get_loc(m) + 1, f"{m}_ci_low", low)
        out.insert(out.columns.get_loc(m) + 2, f"{m}_ci_high", high)
    return out, dropped


def rank(board: pd.DataFrame, by: str = RANK_BY) -> pd.DataFrame:
    """Best first by `by` (missing values last); ties keep backbone (params) and method order."""
    return board.sort_values(by, ascending=False, kind="stable", na_position="last").reset_index(drop=True)


def group_breakdown(scores: pd.DataFrame, samples: pd.DataFrame, by: str,
                    kinds: tuple[str, ...] = ("head", "body")) -> pd.DataFrame:
    """MaxBoxAccV2 per group at the split's chosen τ, per (backbone, method, kind).

    `scores` is long (backbone, method, kind, image_id, score) with score each image's V2 share;
    `samples` maps image_id to `by` (species or class_name). Returns backbone, method, `by`,
    n_head, maxboxacc_v2_head, n_body, maxboxacc_v2_body (missing kinds give NaN).
    """
    keys = samples[["image_id", "species", "class_name"]].drop_duplicates("image_id")
    df = scores.merge(keys, on="image_id", how="left", validate="many_to_one")
    g = df.groupby(["backbone", "method", by, "kind"], sort=False, observed=True)["score"]
    long = pd.DataFrame({"n": g.size(), "v2": 100.0 * g.mean()}).reset_index()
    wide = long.pivot_table(index=["backbone", "method", by], columns="kind", values=["n", "v2"], sort=False)
    out = pd.DataFrame(index=wide.index).reset_index()
    for kind in kinds:
        n = wide["n"][kind] if kind in wide["n"] else pd.Series(float("nan"), index=wide.index)
        v = wide["v2"][kind] if kind in wide["v2"] else pd.Series(float("nan"), index=wide.index)
        out[f"n_{kind}"] = n.to_numpy()
        out[f"maxboxacc_v2_{kind}"] = v.to_numpy()
    return out


def species_table(scores: pd.DataFrame, samples: pd.DataFrame, board: pd.DataFrame,
                  kinds: tuple[str, ...] = ("head", "body")) -> pd.DataFrame:
    """Per species (cat/dog; the dataset name elsewhere) for every leaderboard row, in leaderboard order."""
    out = group_breakdown(scores, samples, "species", kinds)
    order = board[["backbone", "method"]].reset_index().rename(columns={"index": "_rank"})
    out = out.merge(order, on=["backbone", "method"]).sort_values(["_rank", "species"], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


def worst_breeds(scores: pd.DataFrame, samples: pd.DataFrame, backbone: str, method: str,
                 k: int = 10, kinds: tuple[str, ...] = ("head", "body")) -> pd.DataFrame:
    """The k classes with the lowest MaxBoxAccV2 of the first of `kinds` for one (backbone, method)."""
    sel = scores[(scores["backbone"] == backbone) & (scores["method"] == method)]
    out = group_breakdown(sel, samples, "class_name", kinds)
    species = samples.drop_duplicates("class_name").set_index("class_name")["species"]
    out.insert(3, "species", out["class_name"].map(species))
    out = out.sort_values([f"maxboxacc_v2_{kinds[0]}", "class_name"], kind="stable", na_position="last")
    return out.head(k).reset_index(drop=True)
