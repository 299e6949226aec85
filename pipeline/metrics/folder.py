"""The folder evaluator behind `camloc evaluate-maps`: anyone's maps scored with the reference protocol.

Inputs (issue 5):
- ``maps_dir/<image_id>.npy``: one 2-D float map per image. Default: already normalised to [0, 1] at
  the evaluation size (the reference's scoremap format). ``raw=True``: any size and range, post-processed
  per PROTOCOL §1 (bicubic + min–max) to the image's own ``height × width`` from the boxes CSV.
- ``boxes_csv``: header ``image_id,x0,y0,x1,y1,width,height``, one row per GT box, integer coordinates,
  0-based inclusive (``0 <= x0 <= x1 <= width - 1``), in the original image; rescaled to the map's
  frame per PROTOCOL §2 (no change when the sizes are equal). The CSV lists the images evaluated.
- ``masks_dir/<image_id>.png`` (optional): 0 background, 1 foreground, 255 ignore; resized with nearest
  neighbour to the map's frame when sizes differ. Adds PxAP and PxIoU.

Output: the JSON dict of issue 5 (percentages; ``best_tau`` values are τ), plus ``n_skipped`` and
``skipped`` (``[{"image_id", "reason"}]``; non-empty only with ``skip_bad``). Optional per-image CSV:
``image_id, iou_v1, iou_d30, iou_d50, iou_d70`` (IoU at the split's chosen τ of each metric).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.atomic import write_json, write_text
from pipeline.errors import CamlocError
from pipeline.metrics.boxacc import DELTAS, max_box_acc, max_box_acc_v2
from pipeline.metrics.boxes import best_ious, normalize_map, taus
from pipeline.metrics.iou import rescale_boxes
from pipeline.metrics.pixels import IGNORE, PixelAccumulator
from pipeline.parallel import fork_pool
from pipeline.progress import Bar, no_bar

log = logging.getLogger(__name__)
COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "width", "height"]


class BadInput(Exception):
    """One image's input is unusable; the message says why (the caller names the image)."""


def read_boxes(path: Path) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
    """image_id → (boxes (G, 4) int64, (width, height)), sorted by image_id. Raises on a malformed file."""
    try:
        df = pd.read_csv(path, dtype={"image_id": str})
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise CamlocError(f"{path}: cannot read the boxes CSV ({e}); expected header {','.join(COLUMNS)}") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise CamlocError(f"{path}: missing column(s) {missing}; expected header {','.join(COLUMNS)}")
    if df.empty:
        raise CamlocError(f"{path}: no box rows; add one row per GT box")
    out = {}
    for image_id, rows in df.groupby("image_id", sort=True):
        out[str(image_id)] = rows[COLUMNS[1:]].to_numpy()  # validated per image (bad rows can be skipped)
    return out


def _as_int(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)
    try:
        f = v.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise BadInput(f"non-numeric box values {v.tolist()}") from e
    if not np.isfinite(f).all() or (f != np.round(f)).any():
        raise BadInput(f"box values must be finite integers, got {v.tolist()}")
    return f.astype(np.int64)


def check_boxes(rows: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Validate one image's CSV rows (G, 6) → (boxes (G, 4), (width, height))."""
    v = _as_int(rows)
    sizes = {tuple(r) for r in v[:, 4:6].tolist()}
    if len(sizes) != 1:
        raise BadInput(f"rows disagree on width,height: {sorted(sizes)}")
    (w, h), boxes = sizes.pop(), v[:, :4]
    if w < 1 or h < 1:
        raise BadInput(f"image size {w}x{h} must be positive")
    for x0, y0, x1, y1 in boxes.tolist():
        if x1 < x0 or y1 < y0:
            raise BadInput(f"box ({x0},{y0},{x1},{y1}) has x1 < x0 or y1 < y0")
        if x0 < 0 or y0 < 0 or x1 > w - 1 or y1 > h - 1:
            raise BadInput(f"box ({x0},{y0},{x1},{y1}) lies outside its {w}x{h} image "
                           f"(0-based inclusive: 0 <= x0 <= x1 <= {w - 1}, 0 <= y0 <= y1 <= {h - 1})")
    return boxes, (w, h)


def load_map(path: Path, raw: bool, wh: tuple[int, int]) -> np.ndarray:
    """One evaluation-frame map (H, W) float64 in [0, 1], validated."""
    if not path.is_file():
        raise BadInput(f"map {path} is missing")
    try:
        m = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BadInput(f"map {path} is not a readable .npy ({e})") from e
    if m.ndim != 2 or min(m.shape) < 1 or not (np.issubdtype(m.dtype, np.floating)
                                                 or np.issubdtype(m.dtype, np.integer)):
        raise BadInput(f"map {path} must be a non-empty 2-D numeric array, got {m.dtype} {m.shape}")
    m = m.astype(np.float64)
    if not np.isfinite(m).all():
        raise BadInput(f"map {path} has NaN or inf values")
    if raw:
        return normalize_map(m, (wh[1], wh[0]))
    if m.min() < 0 or m.max() > 1:
        raise BadInput(f"map {path} has values in [{m.min():.4g}, {m.max():.4g}], outside [0, 1]; "
                       "normalise it or pass --raw")
    return m


def load_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 mask in {0, 1, 255}, nearest-neighbour resized to ``shape`` when needed."""
    if not path.is_file():
        raise BadInput(f"mask {path} is missing")
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None or mask.ndim != 2 or mask.dtype != np.uint8:
        raise BadInput(f"mask {path} must be a single-channel 8-bit PNG")
    bad = np.setdiff1d(np.unique(mask), [0, 1, IGNORE])
    if bad.size:
        raise BadInput(f"mask {path} has values {bad.tolist()[:5]}; use 0 background, 1 foreground, 255 ignore")
    if mask.shape != shape:
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask


def _score_one(image_id, rows, maps_dir, masks_dir, raw, grid):
    """(ious (2, T), map, mask or None) for one image; raises BadInput."""
    boxes, wh = check_boxes(rows)
    smap = load_map(maps_dir / f"{image_id}.npy", raw, wh)
    gt = rescale_boxes(boxes, wh, (smap.shape[1], smap.shape[0]))
    mask = load_mask(masks_dir / f"{image_id}.png", smap.shape) if masks_dir is not None else None
    return best_ious(smap, gt, grid), smap, mask


def summarize(ious: np.ndarray, grid: np.ndarray, interval: float, pixels: PixelAccumulator | None) -> dict:
    """The issue-5 JSON dict from stacked IoUs (2, N, T) (largest, all)."""
    v1, k1 = max_box_acc(ious[0], 0.5)
    v2 = max_box_acc_v2(ious[1], DELTAS)
    out = {
        "n_images": int(ious.shape[1]),
        "interval": float(interval),
        "max_box_acc": {"v1": v1, "v2": v2["v2"],
                        "by_iou": {str(round(d * 100)): v2["by_delta"][d] for d in DELTAS}},
        "best_tau": {"v1": float(grid[k1]),
                     **{str(round(d * 100)): float(grid[v2["tau_index"][d]]) for d in DELTAS}},
    }
    if pixels is not None:
        out["pxap"], out["pxiou"] = pixels.pxap(), pixels.pxiou()
    return out


def _write_per_image(path: Path, ids: list[str], ious: np.ndarray, result: dict, grid: np.ndarray) -> None:
    def at(tau: float) -> int:  # the chosen τ came from the grid itself, so equality is exact
        return int(np.flatnonzero(grid == tau)[0])

    cols = {"image_id": ids, "iou_v1": ious[0][:, at(result["best_tau"]["v1"])]}
    for d in ("30", "50", "70"):
        cols[f"iou_d{d}"] = ious[1][:, at(result["best_tau"][d])]
    write_text(path, pd.DataFrame(cols).to_csv(index=False, float_format="%.10g"))


def _score_chunk(job) -> tuple[list, np.ndarray | None]:
    """Score a contiguous chunk of images: ([(image_id, ious (2, T) | None, bad reason | None)], hist)."""
    items, maps_dir, masks_dir, raw, grid = job
    pixels = PixelAccumulator(grid) if masks_dir is not None else None
    results = []
    for image_id, rows in items:
        try:
            ious, smap, mask = _score_one(image_id, rows, maps_dir, masks_dir, raw, grid)
        except BadInput as e:
            results.append((image_id, None, str(e)))
            continue
        results.append((image_id, ious, None))
        if pixels is not None:
            pixels.add(smap, mask)
    return results, (pixels.hist if pixels is not None else None)


def _score_all(table: dict, maps_dir, masks_dir, raw, grid, workers: int, bar: Bar):
    """Yield chunk results in image_id order; with workers > 1 a fork pool scores chunks in parallel."""
    items = list(table.items())
    size = 32
    jobs = [(items[i:i + size], maps_dir, masks_dir, raw, grid) for i in range(0, len(items), size)]
    pool = fork_pool(workers) if workers > 1 and len(jobs) >= 2 else None
    # ordered: the first bad image is the first reported
    chunks = pool.imap(_score_chunk, jobs) if pool is not None else map(_score_chunk, jobs)
    try:
        with bar(total=len(items), desc="evaluate-maps", unit="map") as progress:
            for chunk in chunks:
                progress.update(len(chunk[0]))
                yield chunk
    finally:
        if pool is not None:
            pool.terminate()


def run(maps_dir, boxes_csv, masks=None, interval: float = 0.01, raw: bool = False, skip_bad: bool = False,
        out=None, per_image=None, workers: int | None = None, bar: Bar = no_bar) -> dict:
    """Evaluate a folder of maps against a boxes CSV (and masks); returns and optionally writes the JSON.

    ``workers``: processes for the per-image loop (default: 2 when there are ≥ 64 images and 2 CPUs,
    else 1). Results do not depend on it: images are merged in image_id order, histograms are integers.
    """
    maps_dir, masks_dir = Path(maps_dir), (Path(masks) if masks is not None else None)
    grid = taus(interval)
    table = read_boxes(Path(boxes_csv))
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(table) >= 64 else 1
    pixels = PixelAccumulator(grid) if masks_dir is not None else None
    ids, rows_ious, skipped = [], [], []
    for results, hist in _score_all(table, maps_dir, masks_dir, raw, grid, workers, bar):
        for image_id, ious, reason in results:
            if reason is None:
                ids.append(image_id)
                rows_ious.append(ious)
            elif skip_bad:
                log.warning("skipping image %r: %s", image_id, reason)
                skipped.append({"image_id": image_id, "reason": reason})
            else:
                raise CamlocError(f"image {image_id!r}: {reason} (fix it, or pass --skip-bad to skip it)")
        if pixels is not None:
            pixels.hist += hist
    if not ids:
        raise CamlocError(f"{boxes_csv}: no image could be evaluated ({len(skipped)} skipped)")
    if pixels is not None and pixels.hist[1].sum() == 0:
        raise CamlocError(f"{masks_dir}: no foreground (1) pixel in any mask; PxAP is undefined")
    stacked = np.stack(rows_ious, axis=1)  # (2, N, T)
    result = summarize(stacked, grid, interval, pixels)
    result["n_skipped"], result["skipped"] = len(skipped), skipped
    if out is not None:
        write_json(out, result)
    if per_image is not None:
        _write_per_image(Path(per_image), ids, stacked, result, grid)
    return result
