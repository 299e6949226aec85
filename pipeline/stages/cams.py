"""The `cams@<backbone>` stage: raw maps and predictions for the evaluation splits into `data/cams/<B>/`
(docs/contracts.md), or for a folder of your own images.

`run()` is the dvc.yaml stage: per split, `cams.dump.dump_split` computes every method's maps for the
GT and the predicted class (under torchrun each rank an exact shard: `cams.shards`); the whole output folder is written under a temporary sibling and renamed
at the end, so a killed run leaves nothing under the final name.

`run_folder()` is `camloc cams --checkpoint DIR --images DIR --method M --out DIR`: your own model folder
and images, maps for the predicted class, float32. Layout: with one method, `<out>/<image_id>.npy`;
with several, `<out>/<method>/<image_id>.npy`; plus `predictions.csv`, `predictions.parquet`, `meta.json`;
with `--overlay`, a `<image_id>.png` picture beside each map.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline import distributed
from pipeline.atomic import atomic_path, bad_name, clean_own_tmp, write_json, write_parquet
from pipeline.cams.compute import maps_for_batch
from pipeline.cams.dump import (
    default_device,
    load_checkpoint,
    method_opts,
    predictions,
    probe_map_size,
)
from pipeline.cams.hooks import eval_mode
from pipeline.cams.layers import check_layers
from pipeline.cams.methods import forward_batch
from pipeline.cams.shards import dump_splits
from pipeline.cams.store import check_disk, count_nonfinite, disk_bytes, human_bytes, save_maps
from pipeline.camsparams import LAST_LAYER
from pipeline.catalog.methods import METHODS
from pipeline.contracts import HOLDOUT, MAP_KINDS, Paths, map_file, read_classes, read_layout
from pipeline.datasets import loader
from pipeline.errors import CamlocError
from pipeline.stages import bar
from pipeline.wsol import oof

log = logging.getLogger(__name__)


def _index_frame(samples: pd.DataFrame, preds: dict, split: str | None = None) -> pd.DataFrame:
    df = pd.DataFrame({
        "image_id": samples["image_id"].astype(str).to_numpy(),
        "label": samples["label"].astype("int64").to_numpy(),
        "pred": preds["pred"].astype("int64"),
        "top5": [list(map(int, r)) for r in preds["top5"]],
        "top5_prob": [list(map(float, r)) for r in preds["top5_prob"]],
    })
    if split is not None:
        df.insert(0, "split", split)
    return df


def run(params, paths: Paths, backbone_key: str) -> str:
    """Dump raw maps (GT and predicted class) and predictions for `params.cams.splits` of one backbone
    (`paths.model_dir(B)` → `paths.cams_dir(B)`); return a summary. Under torchrun the ranks dump
    exact shards and rank 0 writes the output (`cams.shards`)."""
    device = default_device()
    world = distributed.init(device.type)
    try:
        return _run(params, paths, backbone_key, world)
    finally:
        distributed.finish(world)


def _run(params, paths: Paths, backbone_key: str, world: distributed.World) -> str:
    cp, out_dir = params.cams, paths.cams_dir(backbone_key)
    prepared_dir, model_dir = paths.prepared, paths.model_dir(backbone_key)
    params.backbone(backbone_key)  # unknown key → ParamsError listing the keys
    for m in cp.methods:
        METHODS.get(m)
    jobs = cp.jobs(backbone_key)
    device = default_device()
    model, meta = load_checkpoint(model_dir, device, backbone_key)
    check_layers(model, sorted({la for j in jobs for la in (j.layer, *j.layers)}),
                 f"params.yaml cams.layers for {backbone_key}")
    class_names = read_classes(prepared_dir)
    if len(class_names) != int(meta["num_classes"]):
        raise CamlocError(
            f"{Path(model_dir) / 'meta.json'}: the model has {meta['num_classes']} classes but "
            f"{Path(prepared_dir) / 'classes.json'} lists {len(class_names)}; retrain `{backbone_key}` "
            f"on this dataset"
        )
    present = read_layout(prepared_dir).splits
    absent = [s for s in cp.splits if s not in present]
    if absent:  # e.g. test_official on a reference-layout dataset: that split does not exist there
        log.info("cams %s: the dataset has no split %s; skipped", backbone_key, ", ".join(absent))
    splits = {s: loader.load_split(prepared_dir, s) for s in cp.splits if s in present}
    if not splits:
        raise CamlocError(f"cams.splits {list(cp.splits)} names none of the dataset's splits "
                          f"({', '.join(present)}); fix cams.splits in params.yaml")
    map_size = probe_map_size(model, meta)
    n_total = sum(len(rows) for rows, _ in splits.values())
    need = disk_bytes(n_total, len(jobs), map_size, cp.dtype)
    log.info("cams %s: %d images × %d methods × (gt + pred) × %d×%d × %s = %s", backbone_key, n_total,
             len(jobs), *map_size, cp.dtype, human_bytes(need))
    if world.is_root:
        check_disk(need, out_dir, cp.max_disk_gb)
        clean_own_tmp(out_dir)  # with the parts a killed earlier run left
    distributed.barrier(world)
    out_of_fold = HOLDOUT if oof.has_folds(meta) and HOLDOUT in splits else None  # fsl learnt from val
    parts = dump_splits(model, meta, {s: v for s, v in splits.items() if s != out_of_fold}, cp,
                        f"cams {backbone_key}", world, out_dir, bar, methods=jobs)
    if not world.is_root:
        for _ in parts:  # runs this rank's share (rank 0 assembles and writes)
            pass
        return f"cams {backbone_key}: rank {world.rank} of {world.size} dumped its share"

    def out_of_fold_maps(rows, images):
        return oof.dump_out_of_fold(model_dir, meta, rows, images, jobs, cp,
                                    f"cams {backbone_key} {HOLDOUT} (out of fold)", bar, device)

    file_dtypes, nonfinite, rates, frames, sizes = {}, {}, [], [], {}
    with atomic_path(out_dir, kind="dir", owned=CAMS_OWNED) as tmp:
        for split, maps, preds, rate in _in_split_order(parts, splits, out_of_fold, out_of_fold_maps):
            rows = splits[split][0]
            rates.append(rate)
            (tmp / split).mkdir(parents=True)
            for (m, kind), arr in sorted(maps.items()):
                sizes[m] = list(arr.shape[1:])
                file_dtypes[f"{split}/{m}_{kind}"] = save_maps(map_file(tmp / split, m, kind), arr, cp.dtype)
                if (bad := count_nonfinite(arr)) > 0:
                    nonfinite[f"{split}/{m}_{kind}"] = bad
                    log.warning("%s %s/%s_%s: %d maps hold NaN/inf (scored as all-zero maps)",
                                backbone_key, split, m, kind, bad)
            write_parquet(tmp / split / "index.parquet", _index_frame(rows, preds))
            log.info("cams %s %s: maps written (%d images)", backbone_key, split, len(rows))
            frames.append(_index_frame(rows, preds, split))
        write_parquet(tmp / "predictions.parquet", pd.concat(frames, ignore_index=True))
        write_json(tmp / "meta.json", {
            "backbone": backbone_key, "methods": [j.name for j in jobs], "dtype": cp.dtype,
            "file_dtypes": file_dtypes, "nonfinite_maps": nonfinite, "image_size": int(meta["image_size"]),
            "map_size": list(map_size), "splits": list(splits),
            "images": {s: len(r) for s, (r, _) in splits.items()},
            "kinds": list(MAP_KINDS), "scorecam_chunk": cp.scorecam_chunk, "bytes": need,
            **_layer_meta(jobs, sizes, map_size),
        })
    return (f"cams {backbone_key}: {n_total} images, {len(jobs)} methods, maps {map_size[0]}×{map_size[1]} "
            f"{cp.dtype}, {human_bytes(need)} → {out_dir} ({min(rates):.1f}–{max(rates):.1f} images/s)"
            + (f"; {sum(nonfinite.values())} maps with NaN/inf" if nonfinite else ""))


def _layer_meta(jobs, sizes: dict, map_size) -> dict:
    """meta.json's additions, only where a row is not a last-layer map of the common size (so a default
    run's meta.json is unchanged): `layers` (row → its layer, or the fused layers) and `map_sizes`."""
    out = {}
    if any(j.layer != LAST_LAYER or j.layers for j in jobs):
        out["layers"] = {j.name: list(j.layers) if j.layers else j.layer for j in jobs}
    if any(tuple(v) != tuple(map_size) for v in sizes.values()):
        out["map_sizes"] = sizes
    return out


# --------------------------------------------------------------------------------------------------
# Your own model and images: `camloc cams --checkpoint DIR --images DIR --method M --out DIR`

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FOLDER_KIND = "camloc-cams-folder"  # meta.json marker: an --out folder we may replace
# what an earlier run of the same folder may hold that this one does not (other methods or splits)
CAMS_OWNED = ("*.npy", "*index.parquet", "predictions.parquet", "meta.json", "predictions.csv", "*.png")


def list_images(images_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """Image files (by suffix, sorted) and the other files that are skipped; ids must be unique."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise CamlocError(f"--images {images_dir} is not a folder")
    files = sorted(p for p in images_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        raise CamlocError(f"--images {images_dir} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    seen: dict[str, Path] = {}
    for p in images:
        if p.stem in seen:
            raise CamlocError(f"{p} and {seen[p.stem]} share the image id {p.stem!r}; rename one")
        seen[p.stem] = p
    return images, [p for p in files if p not in images]


def decode_image(path: Path, max_pixels: int = 40_000_000) -> np.ndarray:
    """uint8 (H, W, 3) RGB; a CamlocError naming the file when it cannot be decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise CamlocError(f"{path}: {w}×{h} pixels is over the {max_pixels} limit "
                                  f"(decompression-bomb guard); shrink the image")
            arr = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise CamlocError(f"{path} cannot be decoded as an image ({e}); remove or replace it") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise CamlocError(f"{path} decodes to an empty image {arr.shape}; remove or replace it")
    return arr


def _check_out(out_dir: Path, images_dir: Path) -> None:
    if out_dir.resolve() == images_dir.resolve():
        raise CamlocError(f"--out {out_dir} is the --images folder; choose another folder")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        marker = out_dir / "meta.json"
        if not (marker.is_file() and FOLDER_KIND in marker.read_text(errors="replace")):
            raise CamlocError(f"--out {out_dir} exists and is not an earlier `camloc cams` output; "
                              f"choose a new or empty folder")


def _in_split_order(parts, splits: dict, out_of_fold: str | None, dump_out_of_fold):
    """The dumped splits in `splits` order, the `out_of_fold` split (fsl's val: each map from the fold
    model that never saw the image) dumped by `dump_out_of_fold(rows, images)` in its place."""
    dumped = iter(parts)
    for split, (rows, images) in splits.items():
        yield (split, *dump_out_of_fold(rows, images)) if split == out_of_fold else next(dumped)


def _folder_batch(paths: list[Path], meta: dict, device) -> torch.Tensor:
    s = int(meta["image_size"])
    pixels = np.stack([loader.resize_uint8(decode_image(p), s) for p in paths])  # (n, s, s, 3)
    mean, std = loader.model_normalisation(meta)
    return loader.eval_batch(pixels, s, mean, std, device)


def _write_overlay(path: Path, image_path: Path, raw: np.ndarray, pred_name: str, prob: float,
                   tau: float | None) -> None:
    from pipeline.cams.overlay import overlay, write_png  # folder mode only: the dvc stage never draws

    write_png(path, overlay(decode_image(image_path), raw, f"{pred_name} {prob:.2f}", tau))


def run_folder(checkpoint_dir, images_dir, methods, out_dir, batch_size: int = 32, scorecam_chunk: int = 32,
               overlay: bool = False, tau: float | None = None) -> str:
    """Raw maps (predicted class, float32) and predictions for every image of a folder; return a summary.

    With `overlay`, also `<image_id>.png` beside each map: the map over the image at its original size,
    the box at `tau` when given, the predicted class and probability (`pipeline.cams.overlay`)."""
    if tau is not None and not (overlay and 0.0 <= float(tau) < 1.0):
        raise CamlocError(f"--tau {tau} needs --overlay and a value in [0, 1)")
    methods, out_dir, images_dir = list(dict.fromkeys(methods)), Path(out_dir), Path(images_dir)
    for m in methods:
        METHODS.get(m)
        if (why := bad_name(m)) is not None:  # with several methods it names a subfolder
            raise CamlocError(f"--method {m!r} cannot name a folder: {why}")
    paths, skipped = list_images(images_dir)
    _check_out(out_dir, images_dir)
    model, meta = load_checkpoint(checkpoint_dir, default_device())
    device = next(model.parameters()).device
    names = meta.get("class_names") or [str(i) for i in range(int(meta["num_classes"]))]
    rows = []
    with atomic_path(out_dir, kind="dir", owned=CAMS_OWNED) as tmp, eval_mode(model), bar(total=len(paths), unit="img") as progress:
        for m in methods if len(methods) > 1 else []:
            (tmp / m).mkdir(parents=True)
        tmp.mkdir(exist_ok=True)
        for i in range(0, len(paths), batch_size):
            chunk = paths[i : i + batch_size]
            batch = forward_batch(model, _folder_batch(chunk, meta, device))
            pr = predictions(batch.logits)
            pred = torch.as_tensor(pr["pred"], device=device)
            for m in methods:
                maps = maps_for_batch(batch, pred, m, **method_opts(m, scorecam_chunk)).cpu().numpy()
                folder = tmp / m if len(methods) > 1 else tmp
                for j, (p, arr) in enumerate(zip(chunk, maps, strict=True)):
                    np.save(folder / f"{p.stem}.npy", arr.astype(np.float32), allow_pickle=False)
                    if overlay:
                        _write_overlay(folder / f"{p.stem}.png", p, arr, names[int(pr["pred"][j])],
                                       float(pr["top5_prob"][j][0]), tau)
            for j, p in enumerate(chunk):
                top5 = [int(c) for c in pr["top5"][j]]
                rows.append({"image_id": p.stem, "file": p.name, "pred": top5[0], "pred_name": names[top5[0]],
                             "prob": float(pr["top5_prob"][j][0]), "top5": top5,
                             "top5_prob": [float(q) for q in pr["top5_prob"][j]]})
            progress.update(len(chunk))
        df = pd.DataFrame(rows)
        write_parquet(tmp / "predictions.parquet", df)
        csv = df.assign(top5=[" ".join(map(str, t)) for t in df["top5"]],
                        top5_prob=[" ".join(f"{q:.6g}" for q in t) for t in df["top5_prob"]])
        csv.to_csv(tmp / "predictions.csv", index=False)
        write_json(tmp / "meta.json", {"kind": FOLDER_KIND, "methods": methods, "class": "predicted",
                                       "layout": "<id>.npy" if len(methods) == 1 else "<method>/<id>.npy",
                                       "image_size": int(meta["image_size"]), "images": len(paths),
                                       "skipped_files": [p.name for p in skipped]})
    for p in skipped:
        log.warning("skipped %s: not an image file (suffix %r)", p, p.suffix)
    return (f"cams: {len(paths)} images × {len(methods)} method(s) → {out_dir}"
            + (f"; skipped {len(skipped)} non-image file(s): {', '.join(p.name for p in skipped[:5])}"
               if skipped else ""))
