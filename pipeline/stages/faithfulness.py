"""The `faithfulness@<backbone>` stage: do one backbone's dumped maps explain its decisions?

For a seeded subset of `faithfulness.max_images` images of each split in `faithfulness.splits` (default
`test`, the split head boxes are scored on), every method's GT-class map from data/cams/<B>/ is
normalised to the model's input size exactly as the evaluator does (`metrics.normalize_map`), and the
trained model scores the GT class under the edits of `faithfulness.scores`: Average Drop and Increase in
Confidence (torchcam's definition and the `_pixel` variant), deletion and insertion AUC (PROTOCOL §6), and
on a seeded `faithfulness.road_max_images` of those images ROAD (`faithfulness.road`). The images are
the prepare cache straight-resized to the input size, the pixels the cams stage fed the model.

Writes reports/faithfulness/<B>.json (flat `<method>.<metric>`, pooled over the splits; a DVC metric)
and data/faithfulness/<B>/ (per-image scores for the report's bootstrap CIs — per_image.parquet and
road.parquet — and each method's mean deletion and insertion curve).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline import faithcontracts as FC
from pipeline.atomic import atomic_path, clean_own_tmp, write_json, write_parquet
from pipeline.cams.dump import default_device, load_checkpoint
from pipeline.cams.hooks import eval_mode
from pipeline.datasets import loader
from pipeline.errors import CamlocError
from pipeline.faithfulness import road as R
from pipeline.faithfulness import scores as F
from pipeline.faithfulness.scorer import Scorer
from pipeline.metrics import faithfulness as MF
from pipeline.metrics.boxes import normalize_map
from pipeline.stages import bar

log = logging.getLogger(__name__)


def subset_rows(n: int, max_images: int, seed: int, split: str) -> np.ndarray:
    """(M,) sorted rows of a split of n images: all of them, or a subset seeded by (seed, split)."""
    if n <= max_images:
        return np.arange(n)
    rng = np.random.default_rng([seed, C.SPLITS.index(split)])
    return np.sort(rng.choice(n, size=max_images, replace=False))


def _split_inputs(paths: C.Paths, cams_dir, split: str, size: int, fp) -> tuple[pd.DataFrame, np.ndarray]:
    """The subset's index rows (with their row number in the split) and uint8 (M, s, s, 3) images."""
    index = C.read_cams_index(cams_dir, split)
    rows, images = loader.load_split(paths.prepared, split)
    if list(rows["image_id"].astype(str)) != list(index["image_id"].astype(str)):
        raise CamlocError(f"{cams_dir / split / 'index.parquet'} lists other images than split {split!r} of "
                          f"{paths.prepared / 'samples.parquet'}; re-run `dvc repro cams@{cams_dir.name}`")
    pick = subset_rows(len(index), fp.max_images, fp.seed, split)
    chosen = index.iloc[pick].reset_index(drop=True).assign(row=pick)
    return chosen, np.stack([loader.resize_uint8(images[i], size) for i in pick])  # (M, s, s, 3)


def run(params, paths: C.Paths, backbone: str) -> str:
    """Score every dumped method of one backbone on the subset; write the metrics JSON and per-image data."""
    params.backbone(backbone)
    fp = params.faithfulness
    cams_dir = paths.cams_dir(backbone)
    cams_meta = C.read_cams_meta(cams_dir)
    missing = [s for s in fp.splits if s not in cams_meta["splits"]]
    if missing:
        raise CamlocError(f"{cams_dir / 'meta.json'} has no maps for split(s) {missing} of faithfulness.splits; "
                          "add them to cams.splits and re-run the cams stage")
    model, meta = load_checkpoint(paths.model_dir(backbone), default_device(), backbone)
    size = int(meta["image_size"])
    if size != int(cams_meta["image_size"]):
        raise CamlocError(f"{cams_dir / 'meta.json'} was dumped at {cams_meta['image_size']} px but the model "
                          f"takes {size} px; re-run `dvc repro cams@{backbone}`")
    scorer = Scorer(model, *loader.model_normalisation(meta), fp.batch_size)
    methods = list(cams_meta["methods"])
    per_image, road_rows, curves = [], [], {m: {"deletion": [], "insertion": []} for m in methods}
    with eval_mode(model):
        for split in fp.splits:
            chosen, images = _split_inputs(paths, cams_dir, split, size, fp)
            labels, keys = chosen["label"].to_numpy(np.int64), chosen["row"].to_numpy(np.int64)
            data = F.prepare_images(scorer, images, labels, keys, fp.seed, road=False)
            pick = subset_rows(len(chosen), fp.road_max_images, fp.seed, split) if fp.road_max_images else []
            road_data = F.road_subset(data, pick, fp.seed) if len(pick) else None
            seen = {}  # what earlier methods of this split scored: steps, AD inputs and ROAD systems, by image key
            with bar(total=len(methods) * len(chosen), desc=f"faithfulness {backbone} {split}", unit="img") as b:
                for method in methods:
                    raw = C.open_maps(cams_dir, split, method, "gt")
                    maps = np.stack([normalize_map(np.asarray(raw[r], np.float64), (size, size))
                                     for r in chosen["row"]])  # (M, s, s)
                    res = F.method_faithfulness(scorer, data, maps, fp.steps, fp.seed, seen=seen)
                    per_image.append(_rows(chosen, split, method, data, res))
                    if road_data is not None:
                        scores = F.method_road(scorer, road_data, maps[pick], seen)
                        road = R.road_per_image(road_data.clean, scores)
                        road_rows.append(pd.DataFrame({"image_id": chosen["image_id"].astype(str).to_numpy()[pick],
                                                       "split": split, "method": method} | road))
                    curves[method]["deletion"].append(res.deletion)
                    curves[method]["insertion"].append(res.insertion)
                    b.update(len(chosen))
                    log.info("faithfulness %s %s: %s scored", backbone, split, method)
    table = pd.concat(per_image, ignore_index=True)
    road_table = (pd.concat(road_rows, ignore_index=True) if road_rows
                  else pd.DataFrame({c: pd.Series(dtype=object if i < 3 else np.float64)
                                     for i, c in enumerate(FC.ROAD_COLUMNS)}))
    flat = _metrics(table, road_table)
    out_dir, metrics_path = paths.faithfulness_dir(backbone), paths.faithfulness_file(backbone)
    for out in (out_dir, metrics_path):
        clean_own_tmp(out)
    with atomic_path(out_dir, kind="dir") as tmp:
        tmp.mkdir(parents=True)
        write_parquet(tmp / "per_image.parquet", table)
        write_parquet(tmp / "curves.parquet", _curves(curves, fp.steps))
        write_parquet(tmp / "road.parquet", road_table)
    write_json(metrics_path, {k: round(v, 6) for k, v in sorted(flat.items())})
    best = min(methods, key=lambda m: flat[f"{m}.deletion_auc"])
    return (f"faithfulness {backbone}: {len(methods)} methods × {table['image_id'].nunique()} images "
            f"({', '.join(fp.splits)}); lowest deletion AUC {flat[f'{best}.deletion_auc']:.3f} ({best}) "
            f"→ {metrics_path}")


def _rows(chosen: pd.DataFrame, split: str, method: str, data: F.ImageSet, res: F.MethodFaithfulness) -> pd.DataFrame:
    """faithcontracts.FAITHFULNESS_COLUMNS for one method on one split's subset."""
    return pd.DataFrame({
        "image_id": chosen["image_id"].astype(str).to_numpy(), "split": split, "method": method,
        "label": chosen["label"].to_numpy(np.int64), "score": data.clean, "masked_score": res.masked_score,
        "masked_score_pixel": res.masked_score_pixel} | F.per_image(data, res))


def _metrics(table: pd.DataFrame, road: pd.DataFrame) -> dict[str, float]:
    """`<method>.<metric>` over every scored image of every split (pooled); ROAD over its subset."""
    flat = {}
    for method, g in table.groupby("method", sort=False):
        y = g["score"].to_numpy()
        for suffix in ("", "_pixel"):
            o = g[f"masked_score{suffix}"].to_numpy()
            flat[f"{method}.avg_drop{suffix}"] = MF.average_drop(y, o)
            flat[f"{method}.increase_in_confidence{suffix}"] = MF.increase_in_confidence(y, o)
        flat[f"{method}.deletion_auc"] = float(g["deletion_auc"].mean())
        flat[f"{method}.insertion_auc"] = float(g["insertion_auc"].mean())
    for method, g in road.groupby("method", sort=False):
        for name in FC.ROAD_NAMES:
            flat[f"{method}.{name}"] = float(g[name].mean())
    return flat


def _curves(curves: dict, steps: int) -> pd.DataFrame:
    """faithcontracts.FAITHFULNESS_CURVE_COLUMNS: each method's mean curve over all its images."""
    fraction = np.arange(steps + 1) / steps
    return pd.DataFrame([{"method": m, "curve": name, "fraction": float(f), "score": float(v)}
                         for m, by_curve in curves.items() for name, parts in by_curve.items()
                         for f, v in zip(fraction, np.concatenate(parts).mean(axis=0), strict=True)])
