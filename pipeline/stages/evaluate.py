"""The `evaluate@<backbone>` stage: one backbone's dumped maps → the field's localization metrics.

For every method in data/cams/<B>/meta.json:
- head boxes (xml) on `test`, and on `val` to choose τ honestly: MaxBoxAcc (v1, largest contour),
  MaxBoxAccV2 (all contours, δ ∈ evaluate.iou_thresholds), GT-known / Top-1 / Top-5 Loc at
  `evaluate.fixed_tau`, and COCO box AP at the val-chosen τ (δ = 0.5);
- whole-pet boxes (trimap extent) on `test_official` (τ from `val`'s body boxes too), and PxAP / PxIoU
  against the trimaps (boundary band ignored);
- classification top-1 / top-5 on `test_official`;
- the pointing game and the energy pointing game (`metrics.pointing`, tolerance
  `evaluate.pointing_tolerance`) for each box kind on its scored split.
A reference-layout dataset (`cub`, `wsol`) has one kind, `object`, scored on `test` (τ from `val`), and
PxAP / PxIoU on `test` against its instance masks (ignore mask honoured) when it has masks. Which split
scores which kind is the prepared `layout.json` (`contracts.Layout`); the numbers come from `pipeline.metrics`.

Maps go through `metrics.normalize_map` to the model's input size S (the evaluation frame); GT boxes
move into that frame with `metrics.rescale_boxes` (PROTOCOL §2). Writes reports/metrics/<B>.json,
reports/curves/<B>.csv and data/eval/<B>/ (per-image IoUs at every τ, PR points, chosen τ, and the
explorer's predicted boxes on its τ grid).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline import distributed
from pipeline import metrics as M
from pipeline.atomic import atomic_path, clean_own_tmp, write_json, write_parquet, write_text
from pipeline.errors import CamlocError
from pipeline.metrics import summary
from pipeline.metrics.coco import coco_box_ap
from pipeline.metrics.masks import instance_mask, trimap_mask
from pipeline.metrics.pointing import mean_percent, pointing_scores
from pipeline.metrics.tauboxes import grid_indices, largest_boxes
from pipeline.parallel import fork_pool
from pipeline.stages import bar, evalprotocols

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitMaps:
    """One split's dumped maps and index, plus its GT in the S×S frame."""

    index: pd.DataFrame  # image_id, label, pred, top5, top5_prob (row i ↔ map i)
    cams_dir: Path
    split: str
    boxes: dict[str, list[np.ndarray | None]]  # kind → per image (G, 4) boxes in the S×S frame
    trimaps: list[str | tuple | None]  # per image: a trimap path, (mask files, ignore file or None), None

    def maps(self, method: str, kind: str = "gt") -> np.ndarray:
        return C.open_maps(self.cams_dir, self.split, method, kind)  # (N, h, w), memory-mapped


@dataclass
class MethodScores:
    """One method's per-image results: best IoUs per (split, kind), the head IoUs at the fixed τ, pixels."""

    boxes: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]  # → ((N, 2, T) IoUs, (N,) row numbers)
    fixed: np.ndarray | None = None  # (N,) largest-contour IoU with the head boxes at fixed τ on test
    pixels: M.PixelAccumulator | None = None  # pooled trimap counts on the pixel split
    pointing: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # ↑ (scored split, kind) → ((N, 2) per image [hit, energy share], (N,) row numbers)
    slider: tuple[np.ndarray, np.ndarray] | None = None  # the explorer's largest-contour boxes (N, T', 4)
    # and their IoUs (N, T') with the loc kind's boxes, on its scored split, at the slider's τs


def run(params, paths: C.Paths, backbone: str) -> str:
    """Score every dumped method of one backbone; write metrics JSON, curves CSV and data/eval/<B>/.

    Under torchrun (gloo on CPU) every rank scores a disjoint contiguous shard of each split's images
    with the torch-free metric core; the per-image rows and pixel counts are gathered on rank 0, which
    computes every metric and writes the outputs, byte-identical to a one-process run. Without torchrun
    this is the one-process world and torch is never imported.
    """
    params.backbone(backbone)  # an unknown key is a ParamsError naming the valid ones
    world = distributed.init("cpu")
    try:
        return _run(params, paths, backbone, world)
    finally:
        distributed.finish(world)


def _run(params, paths: C.Paths, backbone: str, world: distributed.World) -> str:
    ep = params.evaluate
    cams_dir = paths.cams_dir(backbone)
    meta = C.read_cams_meta(cams_dir)
    size = int(meta["image_size"])
    layout = C.read_layout(paths.prepared)
    splits = _load_splits(paths.prepared, cams_dir, size, meta, layout)
    tau_grid = M.taus(ep.interval)
    deltas = tuple(d / 100 for d in ep.iou_thresholds)

    flat: dict[str, float] = _classification(splits.get(layout.classification_split)
                                              or splits.get(layout.scored_split.get(layout.loc_kind, "")))
    curves, per_image, chosen, pixels, pointing, tau_boxes = [], [], {}, [], [], []
    protocols = evalprotocols.Collector(params, paths.prepared, splits, size, layout, tau_grid)
    with _pool(_workers(world)) as pool:
        for method in meta["methods"]:
            scores = _method_scores(pool, splits, method, size, tau_grid, ep.fixed_tau, layout,
                                    ep.pointing_tolerance, world)
            if scores is None:  # not the root: its shard is scored and sent
                continue
            flat.update({f"{method}.{k}": v for k, v in _method_metrics(scores, splits, deltas, tau_grid,
                                                                          size, method, layout).items()})
            chosen[method] = summary.chosen_taus(scores.boxes, deltas, tau_grid)
            curves.append(_curves(method, scores, deltas, tau_grid, layout))
            per_image.append(_long(method, scores, splits, tau_grid))
            pointing.append(_pointing_rows(method, scores, splits))
            if scores.pixels is not None:
                pixels.append(_pixels(method, scores.pixels, flat))
                curves.append(_pr_curve(pixels[-1]))
            tau_boxes.append(_tau_boxes(method, scores, splits.get(layout.scored_split.get(layout.loc_kind, "")),
                                         tau_grid))
            protocols.add(pool, splits, method, size, scores, deltas)
            log.info("evaluate %s: %s scored", backbone, method)
            flat.update(summary.nonfinite_counts(meta, method, backbone))
    if not world.is_root:
        return f"evaluate {backbone}: rank {world.rank}/{world.size} scored its shards"

    eval_dir, curves_path, metrics_path = (paths.eval_dir(backbone), paths.curves_file(backbone),
                                           paths.metrics_file(backbone))
    for out in (eval_dir, curves_path, metrics_path):
        clean_own_tmp(out)
    with atomic_path(eval_dir, kind="dir", owned=("*.parquet", "chosen.json")) as tmp:  # pixels: optional
        tmp.mkdir(parents=True)
        write_parquet(tmp / "per_image.parquet", pd.concat(per_image, ignore_index=True))
        if pixels:
            write_parquet(tmp / "pixels.parquet", pd.concat(pixels, ignore_index=True))
        write_json(tmp / "chosen.json", chosen)
        write_parquet(tmp / "pointing.parquet", pd.concat(pointing, ignore_index=True))
        write_parquet(tmp / C.TAU_BOXES_FILE, pd.concat(tau_boxes, ignore_index=True))
        write_parquet(tmp / C.PROTOCOLS_FILE, protocols.frame())
    curves_path.parent.mkdir(parents=True, exist_ok=True)
    write_text(curves_path, pd.concat(curves, ignore_index=True).to_csv(index=False, float_format="%.6g"))
    write_json(metrics_path, {k: round(v, 6) for k, v in sorted(flat.items())} | protocols.json())
    key = f"maxboxacc_v2_{layout.loc_kind}" if layout.box_kinds else "pxap"
    best = max(meta["methods"], key=lambda m: flat.get(f"{m}.{key}", -1))
    return (f"evaluate {backbone}: {len(meta['methods'])} methods; best {key} "
            f"{flat.get(f'{best}.{key}', float('nan')):.1f} ({best}) → {metrics_path}")


# --------------------------------------------------------------------------------------------------
# Inputs


def _load_splits(prepared_dir: Path, cams_dir: Path, size: int, meta: dict, layout: C.Layout) -> dict[str, SplitMaps]:
    samples = C.read_samples(prepared_dir, ("image_id", "width", "height", "trimap_path")).set_index("image_id")
    by_kind = C.boxes_by_kind(C.read_boxes(prepared_dir))
    masks = C.masks_by_image(C.read_masks(prepared_dir)) if layout.pixel_gt == "masks" else {}
    out = {}
    for split in meta["splits"]:
        index = C.read_cams_index(cams_dir, split)
        if index.empty:
            raise CamlocError(f"{cams_dir / split / 'index.parquet'} holds no image; check the split sizes")
        missing = set(index.image_id) - set(samples.index)
        if missing:
            raise CamlocError(f"{cams_dir / split}: images {sorted(missing)[:3]} are not in "
                              f"{prepared_dir / 'samples.parquet'}; re-run the cams stage")
        rows = samples.loc[index.image_id]
        wh = rows[["width", "height"]].to_numpy(np.int64)
        gt = {kind: [M.rescale_boxes(table[i], tuple(w_h), (size, size)) if i in table else None
                     for i, w_h in zip(index.image_id, wh, strict=True)] for kind, table in by_kind.items()}
        trimaps = ([masks.get(str(i)) for i in index.image_id] if layout.pixel_gt == "masks"
                   else [p if isinstance(p, str) else None for p in rows["trimap_path"]])
        out[split] = SplitMaps(index, cams_dir, split, gt, trimaps)
    return out


def _workers(world: distributed.World) -> int:
    """Scoring processes per rank: the CPUs shared out among the ranks on this node, at most 2."""
    return max(1, min(2, len(os.sched_getaffinity(0)) // world.size))


class _Serial:
    """The one-worker pool: scores in this process (no fork after a process group exists)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, jobs, chunksize=1):
        return map(fn, jobs)


def _pool(workers: int):
    return fork_pool(workers) if workers > 1 else _Serial()


# --------------------------------------------------------------------------------------------------
# Per-image IoUs


@dataclass(frozen=True)
class ImageScores:
    """One image's scores (`_ious_one`), for `_method_scores`."""

    ious: np.ndarray  # (K, 2, T) best IoU per τ for each GT kind (NaN where a kind has no box)
    fixed: float  # largest-contour IoU with the loc boxes at the fixed τ (NaN without them)
    pixels: M.PixelAccumulator | None  # its pixel counts against the trimap / masks (None without)
    pointing: np.ndarray  # (K, 2) [pointing hit, energy share] per GT kind (NaN without a box)
    slider: tuple | None  # with loc boxes: the explorer's largest-contour boxes and IoUs at the slider's τs

def _ious_one(args) -> ImageScores:
    """One image's ImageScores, its map normalised once (the slider boxes: `metrics.tauboxes`)."""
    raw, size, gts, head, trimap, tau_grid, fixed_tau, tolerance = args
    smap = M.normalize_map(raw, (size, size))
    out = np.full((len(gts), 2, len(tau_grid)), np.nan)
    points = np.full((len(gts), 2), np.nan)
    for k, gt in enumerate(gts):
        if gt is not None:
            out[k] = M.best_ious(smap, gt, tau_grid)
            points[k] = pointing_scores(smap, gt, tolerance)
    fixed, slider = np.nan, None
    if head is not None:
        fixed = float(M.best_iou_per_tau(smap, head, np.array([fixed_tau]), "largest")[0])
        slider = largest_boxes(smap, head, tau_grid[grid_indices(tau_grid)])
    pixels = None
    if trimap is not None:
        pixels = M.PixelAccumulator(tau_grid)
        pixels.add(smap, trimap_mask(trimap, size) if isinstance(trimap, str) else instance_mask(*trimap, size))
    return ImageScores(out, fixed, pixels, points, slider)


def _method_scores(pool, splits: dict[str, SplitMaps], method: str, size: int, tau_grid, fixed_tau,
                   layout: C.Layout, tolerance: float,
                   world: distributed.World = distributed.SINGLE) -> MethodScores | None:
    """Every split's best IoUs per box kind and the pointing scores on its scored split; the fixed-τ IoUs
    of the loc kind (head / object) on its split; the pixel split's counts.

    Each rank scores its shard of every split; rank 0 gets all of them, in image order (contiguous
    shards, concatenated by rank), and returns the scores; the other ranks return None.
    """
    scores = MethodScores({})
    loc, head_split = layout.loc_kind, layout.scored_split.get(layout.loc_kind)
    for split, sm in splits.items():
        kinds = C.box_kinds_of(split, layout.scored_split)
        if not kinds and split != layout.pixel_split:
            continue
        maps = sm.maps(method)
        none = [None] * len(sm.index)
        heads = sm.boxes[loc] if split == head_split else none
        trimaps = sm.trimaps if split == layout.pixel_split else none
        jobs = [(np.asarray(maps[i], np.float64), size, [sm.boxes[k][i] for k in kinds], heads[i], trimaps[i],
                 tau_grid, fixed_tau, tolerance) for i in distributed.shard(len(sm.index), world)]
        with bar(total=len(jobs), desc=f"evaluate {method} {split}", unit="img") as progress:
            done = []
            for result in pool.imap(_ious_one, jobs, chunksize=16):
                done.append(result)
                progress.update(1)
        shards = distributed.gather_to_root(done, world)
        if shards is None:
            continue
        done = [r for part in shards for r in part]  # rank order = image order
        res = np.stack([r.ious for r in done])  # (N, K, 2, T)
        points = np.stack([r.pointing for r in done])  # (N, K, 2)
        for j, kind in enumerate(kinds):
            have = ~np.isnan(res[:, j, 0, 0])
            if kind == loc and split == head_split and not have.all():
                raise CamlocError(f"{int((~have).sum())} {split} images have no {loc} box; prepare puts only "
                                  f"boxed images in {split} — re-run `dvc repro prepare`")
            if have.any():
                scores.boxes[(split, kind)] = (res[have, j], np.flatnonzero(have))
                if split == layout.scored_split[kind]:
                    scores.pointing[(split, kind)] = (points[have, j], np.flatnonzero(have))
        if split == head_split:
            scores.fixed = np.array([r.fixed for r in done])
            scores.slider = (np.stack([r.slider[0] for r in done]), np.stack([r.slider[1] for r in done]))
        if split == layout.pixel_split:
            scores.pixels = M.PixelAccumulator(tau_grid)
            for r in done:
                if r.pixels is not None:
                    scores.pixels.merge(r.pixels)
    return scores if world.is_root else None


# --------------------------------------------------------------------------------------------------
# Metrics


def _method_metrics(scores: MethodScores, splits, deltas, tau_grid, size, method, layout: C.Layout) -> dict[str, float]:
    out = summary.box_metrics(scores.boxes, deltas, tau_grid, layout.scored_split)
    for (_, kind), (points, _) in scores.pointing.items():
        out[f"pointing_game_{kind}"] = mean_percent(points[:, 0])
        out[f"energy_pointing_game_{kind}"] = mean_percent(points[:, 1])
    loc = layout.loc_kind
    head_split = layout.scored_split.get(loc)
    if scores.fixed is not None:
        index = splits[head_split].index
        out.update(summary.loc_at_fixed_tau(scores.fixed, index["pred"].to_numpy() == index["label"].to_numpy(),
                                            _in_top5(index)))
        out.update(_box_ap(splits[head_split], method, size, summary.box_ap_tau(scores.boxes, tau_grid, loc, head_split),
                           loc))
    return out


def _box_ap(sm: SplitMaps, method: str, size: int, tau: float, kind: str = "head") -> dict[str, float]:
    """COCO box AP of the predicted-class map's boxes at `tau`."""
    maps = sm.maps(method, "pred")
    smaps = [M.normalize_map(np.asarray(maps[i], np.float64), (size, size)) for i in range(len(maps))]
    probs = [float(p[0]) for p in sm.index["top5_prob"]]
    ap = coco_box_ap(smaps, sm.boxes[kind], probs, tau)
    return {"box_ap": ap["ap"], "box_ap50": ap["ap50"]}


def _classification(sm: SplitMaps | None) -> dict[str, float]:
    if sm is None:
        return {}
    label = sm.index["label"].to_numpy()
    return {f"{C.CLASSIFICATION}.top1": float((sm.index["pred"].to_numpy() == label).mean() * 100),
            f"{C.CLASSIFICATION}.top5": float(_in_top5(sm.index).mean() * 100)}


def _in_top5(index: pd.DataFrame) -> np.ndarray:
    """(N,) whether each image's label is among its top-5 predicted classes."""
    return np.array([lab in set(t) for lab, t in zip(index["label"], index["top5"], strict=True)])


def _curves(method: str, scores: MethodScores, deltas, tau_grid, layout: C.Layout) -> pd.DataFrame:
    """BoxAcc(τ, δ) per δ in all-contours mode on the scored splits (dvc plots / report)."""
    frames = []
    for kind, split in layout.scored_split.items():
        if (split, kind) in scores.boxes:
            for d in deltas:
                y = M.box_acc_curve(scores.boxes[(split, kind)][0][:, 1], d)
                frames.append(pd.DataFrame({"method": method, "curve": f"boxacc_{kind}_d{summary.delta_name(d)}",
                                            "x": tau_grid, "y": y}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(C.CURVE_COLUMNS))


def _long(method: str, scores: MethodScores, splits, tau_grid) -> pd.DataFrame:
    """Long-format per-image IoUs: contracts.PER_IMAGE_COLUMNS."""
    frames = []
    for (split, kind), (ious, rows) in scores.boxes.items():  # (N, 2, T), (N,)
        ids = splits[split].index["image_id"].to_numpy()[rows]
        n, t = len(rows), len(tau_grid)
        for m, mode in enumerate(C.CONTOUR_MODES):
            iou = ious[:, m].astype(np.float32).ravel()  # (N·T,) image-major
            frames.append(pd.DataFrame({
                "image_id": np.repeat(ids, t), "split": split, "method": method, "kind": kind, "mode": mode,
                "tau_index": np.tile(np.arange(t, dtype=np.int16), n),
                "tau": np.tile(tau_grid.astype(np.float32), n), "iou": iou, "correct": iou >= 0.5}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(C.PER_IMAGE_COLUMNS))


def _tau_boxes(method: str, scores: MethodScores, sm: SplitMaps | None, tau_grid) -> pd.DataFrame:
    """The explorer's boxes (contracts.TAU_BOXES_COLUMNS): each scored image's largest-contour box and IoU
    with its boxes of the loc kind (head / object) at the slider's τs, as the scoring pass found them, so
    the page never re-derives a box."""
    if sm is None or scores.slider is None:
        return pd.DataFrame(columns=list(C.TAU_BOXES_COLUMNS))
    keep = grid_indices(tau_grid)
    boxes, iou = scores.slider  # (N, T', 4), (N, T')
    n, t = iou.shape
    return pd.DataFrame({"image_id": np.repeat(sm.index["image_id"].to_numpy(), t), "method": method,
                         "tau_index": np.tile(keep.astype(np.int16), n),
                         "tau": np.tile(tau_grid[keep].astype(np.float32), n),
                         **{c: boxes[:, :, k].ravel().astype(np.int16) for k, c in enumerate(("x0", "y0", "x1", "y1"))},
                         "iou": iou.ravel().astype(np.float32)})


def _pointing_rows(method: str, scores: MethodScores, splits) -> pd.DataFrame:
    """contracts.POINTING_COLUMNS: each scored image's pointing hit and energy share, per box kind."""
    frames = [pd.DataFrame({"image_id": splits[split].index["image_id"].to_numpy()[rows], "split": split,
                            "method": method, "kind": kind, "hit": points[:, 0] > 0,
                            "energy": points[:, 1]})
              for (split, kind), (points, rows) in scores.pointing.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(C.POINTING_COLUMNS))


def _pixels(method: str, acc: M.PixelAccumulator, flat: dict) -> pd.DataFrame:
    """PxAP / PxIoU from the split's pooled pixel counts (into `flat`) and the PR curve points (returned)."""
    if acc.n_images == 0:
        return pd.DataFrame(columns=list(C.PIXEL_COLUMNS))
    flat[f"{method}.pxap"], flat[f"{method}.pxiou"] = acc.pxap(), acc.pxiou()
    thr, precision, recall = acc.pr_curve()
    return pd.DataFrame({"method": method, "threshold": thr, "precision": precision, "recall": recall})


def _pr_curve(pixels: pd.DataFrame) -> pd.DataFrame:
    """The PR points as curve rows (x = recall, y = precision), undefined precisions dropped."""
    ok = pixels.dropna(subset=["precision"])
    return pd.DataFrame({"method": ok["method"], "curve": "pr", "x": ok["recall"], "y": ok["precision"]})
