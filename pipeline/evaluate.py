"""The `evaluate@<backbone>` stage: one backbone's dumped maps → the field's localization metrics.

For every method in data/cams/<B>/meta.json:
- head boxes (xml) on `test`, and on `val` to choose τ honestly: MaxBoxAcc (v1, largest contour),
  MaxBoxAccV2 (all contours, δ ∈ evaluate.iou_thresholds), GT-known / Top-1 / Top-5 Loc at
  `evaluate.fixed_tau`, and COCO box AP at the val-chosen τ (δ = 0.5);
- whole-pet boxes (trimap extent) on `test_official` (τ from `val`'s body boxes too), and PxAP / PxIoU
  against the trimaps (boundary band ignored);
- classification top-1 / top-5 on `test_official`.
Every score comes in two flavours where τ is chosen: the reference's test-oracle τ (picked on the
evaluated split itself, an upper bound) and `_val_tau` (picked on `val`, applied unchanged).

Maps go through `localize.normalize_map` to the model's input size S (the evaluation frame); GT boxes
move into that frame with `metrics.rescale_boxes` (PROTOCOL §2). Per-image IoUs at every τ are kept in
data/eval/<B>/per_image.parquet for the report's confidence intervals and galleries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline import localize
from pipeline import metrics as M
from pipeline.cams.store import open_maps
from pipeline.errors import CamlocError
from pipeline.fsutil import atomic_path, clean_own_tmp, write_json, write_parquet, write_text
from pipeline.parallel import fork_pool

log = logging.getLogger(__name__)

MODES = localize.MODES  # ("largest", "all"): rows of localize.best_ious
BOX_SPLITS = {"head": ("val", "test"), "body": ("val", "test_official")}
HOLDOUT = "val"
PIXEL_SPLIT = "test_official"  # trimap PxAP / PxIoU
AUX = ("fixed", "pixels")  # score keys that are not (split, box kind)


@dataclass(frozen=True)
class SplitMaps:
    """One split's dumped maps and index, plus its GT in the S×S frame."""

    index: pd.DataFrame  # image_id, label, pred, top5, top5_prob (row i ↔ map i)
    folder: Path
    boxes: dict[str, list[np.ndarray]]  # kind → per image (G, 4) boxes in the S×S frame
    trimaps: list[str | None]

    def maps(self, method: str, kind: str = "gt") -> np.ndarray:
        return open_maps(self.folder.parent, self.folder.name, method, kind)  # (N, h, w), memory-mapped


def run(params, backbone: str, prepared_dir, cams_dir, metrics_path, curves_path, per_image_dir) -> str:
    """Score every dumped method of one backbone; write metrics JSON, curves CSV and per-image parquet."""
    params.backbone(backbone)  # an unknown key is a ParamsError naming the valid ones
    ep = params.evaluate
    prepared_dir, cams_dir = Path(prepared_dir), Path(cams_dir)
    meta = _read_json(cams_dir / "meta.json", f"dvc repro cams@{backbone}")
    size = int(meta["image_size"])
    splits = _load_splits(prepared_dir, cams_dir, size, meta)
    tau_grid = localize.taus(ep.interval)
    deltas = tuple(d / 100 for d in ep.iou_thresholds)

    flat: dict[str, float] = _classification(splits.get("test_official") or splits.get("test"))
    curves, per_image, chosen, pixels = [], [], {}, []
    with fork_pool(_workers()) as pool:
        for method in meta["methods"]:
            scores = _method_scores(pool, splits, method, size, tau_grid, ep.fixed_tau)
            flat.update({f"{method}.{k}": v for k, v in _method_metrics(scores, splits, deltas, tau_grid,
                                                                          size, method, ep.fixed_tau).items()})
            chosen[method] = _chosen(scores, deltas, tau_grid)
            curves.append(_curves(method, scores, deltas, tau_grid))
            per_image.append(_long(method, scores, splits, tau_grid))
            if ("pixels", PIXEL_SPLIT) in scores:
                pixels.append(_pixels(method, scores[("pixels", PIXEL_SPLIT)], flat))
                curves.append(_pr_curve(pixels[-1]))
            log.info("evaluate %s: %s scored", backbone, method)

    for out in (per_image_dir, curves_path, metrics_path):
        clean_own_tmp(out)
    with atomic_path(per_image_dir) as tmp:
        tmp.mkdir(parents=True)
        write_parquet(tmp / "per_image.parquet", pd.concat(per_image, ignore_index=True))
        if pixels:
            write_parquet(tmp / "pixels.parquet", pd.concat(pixels, ignore_index=True))
        write_json(tmp / "chosen.json", chosen)
    Path(curves_path).parent.mkdir(parents=True, exist_ok=True)
    write_text(curves_path, pd.concat(curves, ignore_index=True).to_csv(index=False, float_format="%.6g"))
    write_json(metrics_path, {k: round(v, 6) for k, v in sorted(flat.items())})
    best = max(meta["methods"], key=lambda m: flat.get(f"{m}.maxboxacc_v2_head", -1))
    return (f"evaluate {backbone}: {len(meta['methods'])} methods; best head MaxBoxAccV2 "
            f"{flat.get(f'{best}.maxboxacc_v2_head', float('nan')):.1f} ({best}) → {metrics_path}")


# --------------------------------------------------------------------------------------------------
# Inputs


def _read_json(path: Path, fix: str) -> dict:
    if not path.is_file():
        raise CamlocError(f"{path} is missing; run `{fix}` first")
    return json.loads(path.read_text())


def _load_splits(prepared_dir: Path, cams_dir: Path, size: int, meta: dict) -> dict[str, SplitMaps]:
    samples = pd.read_parquet(prepared_dir / "samples.parquet").set_index("image_id")
    boxes = pd.read_parquet(prepared_dir / "boxes.parquet")
    by_kind = {k: {i: g[["x0", "y0", "x1", "y1"]].to_numpy(np.int64) for i, g in boxes[boxes.kind == k]
                   .groupby("image_id", sort=False)} for k in ("head", "body")}
    out = {}
    for split in meta["splits"]:
        index = pd.read_parquet(cams_dir / split / "index.parquet")
        if index.empty:
            raise CamlocError(f"{cams_dir / split / 'index.parquet'} holds no image; check the split sizes")
        missing = set(index.image_id) - set(samples.index)
        if missing:
            raise CamlocError(f"{cams_dir / split}: images {sorted(missing)[:3]} are not in "
                              f"{prepared_dir / 'samples.parquet'}; re-run the cams stage")
        rows = samples.loc[index.image_id]
        wh = rows[["width", "height"]].to_numpy(np.int64)
        gt = {}
        for kind, table in by_kind.items():
            gt[kind] = [M.rescale_boxes(table[i], tuple(w_h), (size, size)) if i in table else None
                        for i, w_h in zip(index.image_id, wh, strict=True)]
        trimaps = [p if isinstance(p, str) else None for p in rows["trimap_path"]]
        out[split] = SplitMaps(index, cams_dir / split, gt, trimaps)
    return out


def _workers() -> int:
    import os

    return max(1, min(2, len(os.sched_getaffinity(0))))


# --------------------------------------------------------------------------------------------------
# Per-image IoUs


def _ious_one(args) -> tuple[np.ndarray, float, M.PixelAccumulator | None]:
    """One image, its map normalised once: (K, 2, T) best IoU per τ for each GT kind (NaN where a kind
    has no box), the largest-contour IoU with the head boxes at the fixed τ (NaN without head boxes),
    and its pixel counts against the trimap (None without one)."""
    raw, size, gts, head, trimap, tau_grid, fixed_tau = args
    smap = localize.normalize_map(raw, (size, size))
    out = np.full((len(gts), 2, len(tau_grid)), np.nan)
    for k, gt in enumerate(gts):
        if gt is not None:
            out[k] = localize.best_ious(smap, gt, tau_grid)
    fixed = np.nan
    if head is not None:
        fixed = float(localize.best_iou_per_tau(smap, head, np.array([fixed_tau]), "largest")[0])
    pixels = None
    if trimap is not None:
        pixels = M.PixelAccumulator(tau_grid)
        pixels.add(smap, _trimap_mask(trimap, size))
    return out, fixed, pixels


def _method_scores(pool, splits: dict[str, SplitMaps], method: str, size: int, tau_grid, fixed_tau) -> dict:
    """{(split, kind): ((N, 2, T) IoUs, (N,) row numbers)}, {("fixed", "test"): (N,) IoU at fixed τ}
    and {("pixels", "test_official"): PixelAccumulator over its trimaps}."""
    scores = {}
    for split, sm in splits.items():
        kinds = [k for k, sp in BOX_SPLITS.items() if split in sp]
        if not kinds:
            continue
        maps = sm.maps(method)
        none = [None] * len(sm.index)
        heads = sm.boxes["head"] if split == "test" else none
        trimaps = sm.trimaps if split == PIXEL_SPLIT else none
        jobs = [(np.asarray(maps[i], np.float64), size, [sm.boxes[k][i] for k in kinds], heads[i], trimaps[i],
                 tau_grid, fixed_tau) for i in range(len(sm.index))]
        done = list(tqdm(pool.imap(_ious_one, jobs, chunksize=16), total=len(jobs), disable=None,
                         desc=f"evaluate {method} {split}", unit="img", leave=False))
        res = np.stack([r for r, _, _ in done])  # (N, K, 2, T)
        for j, kind in enumerate(kinds):
            have = ~np.isnan(res[:, j, 0, 0])
            if kind == "head" and split == "test" and not have.all():
                raise CamlocError(f"{int((~have).sum())} test images have no head box; prepare puts only "
                                  "boxed images in test — re-run `dvc repro prepare`")
            if have.any():
                scores[(split, kind)] = (res[have, j], np.flatnonzero(have))
        if split == "test":
            scores[("fixed", split)] = np.array([f for _, f, _ in done])
        if split == PIXEL_SPLIT:
            acc = M.PixelAccumulator(tau_grid)
            for _, _, pixels in done:
                if pixels is not None:
                    acc.merge(pixels)
            scores[("pixels", split)] = acc
    return scores


# --------------------------------------------------------------------------------------------------
# Metrics


def _method_metrics(scores, splits, deltas, tau_grid, size, method, fixed_tau) -> dict[str, float]:
    out: dict[str, float] = {}
    d_names = [f"{round(d * 100)}" for d in deltas]
    for kind, split in (("head", "test"), ("body", "test_official")):
        if (split, kind) not in scores:
            continue
        ious, _ = scores[(split, kind)]
        largest, every = ious[:, 0], ious[:, 1]  # (N, T) each
        if kind == "head":
            out["maxboxacc_head"], _ = M.max_box_acc(largest, 0.5)
        v2 = M.max_box_acc_v2(every, deltas)
        out[f"maxboxacc_v2_{kind}"] = v2["v2"]
        for d, name in zip(deltas, d_names, strict=True):
            out[f"maxboxacc_{kind}_d{name}"] = v2["by_delta"][d]
            out[f"tau_v2_{kind}_{name}"] = float(tau_grid[v2["tau_index"][d]])
        if (HOLDOUT, kind) in scores:
            val_ious, _ = scores[(HOLDOUT, kind)]
            chosen = M.max_box_acc_v2(val_ious[:, 1], deltas)["tau_index"]
            out[f"maxboxacc_v2_{kind}_val_tau"] = M.max_box_acc_v2(every, deltas, tau_index=chosen)["v2"]
            if kind == "head":
                _, k1 = M.max_box_acc(val_ious[:, 0], 0.5)
                out["maxboxacc_head_val_tau"] = float(M.box_acc_curve(largest, 0.5)[k1])
    if ("fixed", "test") in scores:
        out.update(_loc_at_fixed_tau(scores[("fixed", "test")], splits["test"].index))
        out.update(_box_ap(splits["test"], method, size, scores, tau_grid, deltas))
    return out


def _loc_at_fixed_tau(ious: np.ndarray, index: pd.DataFrame) -> dict[str, float]:
    """GT-known, Top-1 and Top-5 Loc at the fixed τ. The GT-class map serves all three: when the top-1
    prediction is right, the predicted-class map is the GT-class map; when it is wrong, the image fails."""
    label = index["label"].to_numpy()
    top1_ok = index["pred"].to_numpy() == label
    top5_ok = _in_top5(index)
    return {"gt_known_loc": M.loc_accuracy(ious), "top1_loc": M.loc_accuracy(ious, top1_ok),
            "top5_loc": M.loc_accuracy(ious, top5_ok)}


def _box_ap(sm: SplitMaps, method: str, size: int, scores, tau_grid, deltas) -> dict[str, float]:
    """COCO box AP of the predicted-class map's boxes at the τ chosen on val for δ = 0.5 (oracle if no val)."""
    source = scores.get((HOLDOUT, "head")) or scores[("test", "head")]
    tau = float(tau_grid[M.max_box_acc_v2(source[0][:, 1], (0.5,))["tau_index"][0.5]])
    maps = sm.maps(method, "pred")
    smaps = [localize.normalize_map(np.asarray(maps[i], np.float64), (size, size)) for i in range(len(maps))]
    probs = [float(p[0]) for p in sm.index["top5_prob"]]
    ap = M.coco_box_ap(smaps, sm.boxes["head"], probs, tau)
    return {"box_ap": ap["ap"], "box_ap50": ap["ap50"]}


def _classification(sm: SplitMaps | None) -> dict[str, float]:
    if sm is None:
        return {}
    label = sm.index["label"].to_numpy()
    return {"classification.top1": float((sm.index["pred"].to_numpy() == label).mean() * 100),
            "classification.top5": float(_in_top5(sm.index).mean() * 100)}


def _in_top5(index: pd.DataFrame) -> np.ndarray:
    """(N,) whether each image's label is among its top-5 predicted classes."""
    return np.array([lab in set(t) for lab, t in zip(index["label"], index["top5"], strict=True)])


def _chosen(scores, deltas, tau_grid) -> dict:
    """The τ each score used: {"oracle"|"val": {kind: {"v1", "30", "50", "70"}}}."""
    out: dict = {"oracle": {}, "val": {}}
    for (split, kind), value in scores.items():
        if split in AUX:
            continue
        flavour = "val" if split == HOLDOUT else "oracle"
        ious = value[0]
        taus = {f"{round(d * 100)}": float(tau_grid[k])
                for d, k in M.max_box_acc_v2(ious[:, 1], deltas)["tau_index"].items()}
        if kind == "head":
            taus["v1"] = float(tau_grid[M.max_box_acc(ious[:, 0], 0.5)[1]])
        out[flavour][kind] = taus
    return out


def _curves(method: str, scores, deltas, tau_grid) -> pd.DataFrame:
    """BoxAcc(τ, δ) per δ in all-contours mode on the scored splits (dvc plots / report)."""
    frames = []
    for kind, split in (("head", "test"), ("body", "test_official")):
        if (split, kind) in scores:
            for d in deltas:
                y = M.box_acc_curve(scores[(split, kind)][0][:, 1], d)
                frames.append(pd.DataFrame({"method": method, "curve": f"boxacc_{kind}_d{round(d * 100)}",
                                            "x": tau_grid, "y": y}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "curve", "x", "y"])


def _long(method: str, scores, splits, tau_grid) -> pd.DataFrame:
    """Long-format per-image IoUs: image_id, split, method, kind, mode, tau_index, tau, iou, correct."""
    frames = []
    for (split, kind), value in scores.items():
        if split in AUX:
            continue
        ious, rows = value  # (N, 2, T), (N,)
        ids = splits[split].index["image_id"].to_numpy()[rows]
        n, t = len(rows), len(tau_grid)
        for m, mode in enumerate(MODES):
            iou = ious[:, m].astype(np.float32).ravel()  # (N·T,) image-major
            frames.append(pd.DataFrame({
                "image_id": np.repeat(ids, t), "split": split, "method": method, "kind": kind, "mode": mode,
                "tau_index": np.tile(np.arange(t, dtype=np.int16), n),
                "tau": np.tile(tau_grid.astype(np.float32), n), "iou": iou, "correct": iou >= 0.5}))
    return pd.concat(frames, ignore_index=True)


def _trimap_mask(path: str, size: int) -> np.ndarray:
    """Pets trimap → (S, S) mask: 1 pet → 1, 2 background → 0, anything else (3 boundary) → ignore."""
    tri = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if tri is None:
        raise CamlocError(f"{path}: the trimap cannot be read; re-run `dvc repro prepare`")
    if tri.ndim == 3:
        tri = tri[..., 0]
    tri = cv2.resize(tri, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.where(tri == 1, 1, np.where(tri == 2, 0, M.IGNORE)).astype(np.uint8)


def _pixels(method: str, acc: M.PixelAccumulator, flat: dict) -> pd.DataFrame:
    """PxAP / PxIoU from the split's pooled pixel counts (into `flat`) and the PR curve points (returned)."""
    if acc.n_images == 0:
        return pd.DataFrame(columns=["method", "threshold", "precision", "recall"])
    flat[f"{method}.pxap"], flat[f"{method}.pxiou"] = acc.pxap(), acc.pxiou()
    thr, precision, recall = acc.pr_curve()
    return pd.DataFrame({"method": method, "threshold": thr, "precision": precision, "recall": recall})


def _pr_curve(pixels: pd.DataFrame) -> pd.DataFrame:
    """The PR points as curve rows (x = recall, y = precision), undefined precisions dropped."""
    ok = pixels.dropna(subset=["precision"])
    return pd.DataFrame({"method": ok["method"], "curve": "pr", "x": ok["recall"], "y": ok["precision"]})
