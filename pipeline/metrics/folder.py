"""The folder evaluator behind `camloc evaluate-maps`: anyone's maps scored with the reference protocol.

Inputs (issue 5):
- ``maps_dir/<image_id>.npy``: one 2-D float map per image. Default: already normalised to [0, 1] at
  the evaluation size (the reference's scoremap format). ``raw=True``: any size and range, post-processed
  per PROTOCOL §1 (bicubic + min–max) to the image's own ``height × width`` from the boxes CSV, or to
  ``size × size`` with ``size`` (``--size S``).
- ``boxes_csv``: header ``image_id,x0,y0,x1,y1,width,height`` (extra columns are ignored), one row per
  GT box, integer coordinates, 0-based inclusive (``0 <= x0 <= x1 <= width - 1``), in the original image;
  rescaled to the map's frame per PROTOCOL §2 (no change when the sizes are equal). The CSV lists the
  images evaluated, in image_id order. An image_id is the map's file name without ``.npy``: one with
  ``/``, ``\\`` or ``..`` in it, or an empty one, is refused (it would name a file outside the folder).
- ``masks_dir/<image_id>.png`` (optional): 0 background, 1 foreground, 255 ignore; resized with nearest
  neighbour to the map's frame when sizes differ. Adds PxAP and PxIoU.
- ``size`` (``--size S``, optional): score in the S×S frame, as paper numbers are (PROTOCOL §1–2, S = 224
  there). With ``raw``, every map is upsampled to S×S (bicubic, float64, min–max), boxes are rescaled
  from each image's ``width × height`` to S×S (``int(x·S/W)``, ``int(y·S/H)``) and masks are resized
  nearest to S×S. Without ``raw``, maps must already be S×S (any other shape is an error). Without
  ``size``, raw maps go to each image's own size, and normalised maps are scored at their own shape.

Output: the JSON dict of issue 5 (percentages; ``best_tau`` values are τ), the pointing game and the
energy pointing game (``pointing_game``, ``energy_pointing_game`` in %, ``pointing_tolerance`` in pixels
of the map's frame; ``metrics.pointing``), plus ``n_skipped`` and
``skipped`` (``[{"image_id", "reason"}]``; non-empty only with ``skip_bad``) and ``n_unscored_maps``
(``.npy`` files in ``maps_dir`` with no row in the CSV: not scored, and logged as a warning). Optional
per-image CSV: ``image_id, iou_v1, iou_d30, iou_d50, iou_d70`` (IoU at the split's chosen τ of each metric).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from pathlib import Path, PureWindowsPath

import numpy as np

from pipeline.atomic import check_replaceable, write_json, write_text
from pipeline.errors import CamlocError
from pipeline.metrics.boxes import best_ious, taus
from pipeline.metrics.iou import rescale_boxes
from pipeline.metrics.mapfiles import BadInput, load_map, load_mask
from pipeline.metrics.pixels import PixelAccumulator
from pipeline.metrics.pointing import DEFAULT_TOLERANCE, pointing_scores
from pipeline.metrics.state import EvalState
from pipeline.parallel import fork_pool
from pipeline.progress import Bar, no_bar

log = logging.getLogger(__name__)
COLUMNS = ["image_id", "x0", "y0", "x1", "y1", "width", "height"]
# Cells read as missing (NaN), as pandas' read_csv did before this module dropped pandas.
_NA_CELLS = frozenset({"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                       "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"})


def _cell(text: str):
    """One box CSV cell: int, float (NaN when missing) or, when not a number, the text itself."""
    if text in _NA_CELLS:
        return math.nan
    s = text.strip()
    if s.isascii() and "_" not in s:  # Python's int()/float() would also take '1_0' and non-ASCII digits
        for parse in (int, float):
            try:
                return parse(s)
            except ValueError:
                pass
    return text


def _bad_image_id(image_id: str) -> str | None:
    """Why an image_id cannot name a file inside the maps folder, or None when it can."""
    if not image_id:
        return "is empty"
    for bad, what in (("/", "'/'"), ("\\", "'\\'"), ("..", "'..'"), ("\0", "a NUL character")):
        if bad in image_id:
            return f"contains {what}"
    if PureWindowsPath(image_id).anchor:  # e.g. 'C:x', which Windows reads as a path on drive C
        return "is an absolute path or names a drive"
    return None


def read_boxes(path: Path) -> dict[str, list[list]]:
    """image_id → its rows [[x0, y0, x1, y1, width, height], ...] (file order), sorted by image_id.

    Cells are parsed, not validated (a bad row fails only its image, which ``skip_bad`` can skip).
    Raises CamlocError on a malformed file, and on an image_id that is not a plain file name.
    """
    expected = f"expected header {','.join(COLUMNS)}"
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(n, row) for n, row in _csv_rows(f)]
    except (ValueError, OSError, csv.Error) as e:  # UnicodeDecodeError is a ValueError
        raise CamlocError(f"{path}: cannot read the boxes CSV ({e}); {expected}") from e
    if not rows:
        raise CamlocError(f"{path}: cannot read the boxes CSV (No columns to parse from file); {expected}")
    (_, header), data = rows[0], rows[1:]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise CamlocError(f"{path}: missing column(s) {missing}; {expected}")
    if not data:
        raise CamlocError(f"{path}: no box rows; add one row per GT box")
    index = [header.index(c) for c in COLUMNS]  # the first of duplicated names, as pandas did
    out: dict[str, list[list]] = {}
    for line, row in data:
        if len(row) > len(header):
            raise CamlocError(f"{path}: cannot read the boxes CSV (line {line} has {len(row)} fields, the "
                              f"header {len(header)}); {expected}")
        row = row + [""] * (len(header) - len(row))  # short rows: the missing cells are NaN
        image_id = row[index[0]]
        why = _bad_image_id(image_id)
        if why is not None:
            raise CamlocError(
                f"{path}, line {line}: image_id {image_id!r} {why}; an image_id must be the map's file name "
                f"without .npy (maps_dir/<image_id>.npy), with no '/', '\\', '..' or drive: fix that row")
        out.setdefault(image_id, []).append([_cell(row[i]) for i in index[1:]])
    return dict(sorted(out.items()))


def _csv_rows(f):
    """(line number, fields) of each non-blank CSV row (blank and whitespace-only lines are skipped)."""
    reader = csv.reader(f)
    for row in reader:
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        yield reader.line_num, row


def _as_int(rows: list[list]) -> np.ndarray:
    if any(isinstance(x, str) for r in rows for x in r):
        raise BadInput(f"non-numeric box values {rows}")
    try:
        f = np.array(rows, dtype=np.float64)
    except (OverflowError, ValueError, TypeError) as e:  # e.g. an integer beyond float range
        raise BadInput(f"box values must be finite integers, got {rows}") from e
    if not np.isfinite(f).all() or (f != np.round(f)).any() or (np.abs(f) > 2.0 ** 53).any():
        raise BadInput(f"box values must be finite integers, got {rows}")
    return f.astype(np.int64)


def check_boxes(rows: list[list]) -> tuple[np.ndarray, tuple[int, int]]:
    """Validate one image's CSV rows (G × 6) → (boxes (G, 4), (width, height))."""
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


def _score_one(image_id, rows, maps_dir, masks_dir, raw, size, grid, tolerance=DEFAULT_TOLERANCE, digests=None):
    """(ious (2, T), [pointing hit, energy share] (2,), map, mask or None) for one image; raises BadInput.
    ``digests``: a dict that gets the SHA-256 of the map and mask files read (by file name)."""
    boxes, wh = check_boxes(rows)
    smap = load_map(maps_dir / f"{image_id}.npy", raw, wh, size, digests)
    gt = rescale_boxes(boxes, wh, (smap.shape[1], smap.shape[0]))
    mask = load_mask(masks_dir / f"{image_id}.png", smap.shape, digests) if masks_dir is not None else None
    return best_ious(smap, gt, grid), pointing_scores(smap, gt, tolerance), smap, mask


def summarize(state: EvalState, interval: float) -> dict:
    """The issue-5 JSON dict (without the skipped/unscored keys) from a merged state only."""
    max_box_acc, best_tau = state.box_metrics()
    out = {"n_images": len(state.ids), "interval": float(interval), "max_box_acc": max_box_acc,
           "best_tau": best_tau}
    pixels = state.pixels()
    if pixels is not None:
        out["pxap"], out["pxiou"] = pixels.pxap(), pixels.pxiou()
    return out


def _write_per_image(path: Path, ids: list[str], ious: np.ndarray, result: dict, grid: np.ndarray) -> None:
    def at(tau: float) -> int:  # the chosen τ came from the grid itself, so equality is exact
        return int(np.flatnonzero(grid == tau)[0])

    cols = {"image_id": ids, "iou_v1": ious[0][:, at(result["best_tau"]["v1"])]}
    for d in ("30", "50", "70"):
        cols[f"iou_d{d}"] = ious[1][:, at(result["best_tau"][d])]
    buf = io.StringIO()  # the bytes pandas' to_csv(index=False, float_format="%.10g") wrote
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    values = list(cols.values())
    for i, image_id in enumerate(ids):
        writer.writerow([image_id, *("%.10g" % col[i] for col in values[1:])])  # noqa: UP031 (pandas used %)
    write_text(path, buf.getvalue())


def count_unscored(maps_dir: Path, table: dict) -> int:
    """How many ``.npy`` files in ``maps_dir`` have no row in the boxes CSV (warned about, not scored)."""
    try:
        with os.scandir(maps_dir) as entries:
            stems = sorted(e.name[:-4] for e in entries if e.name.endswith(".npy") and e.is_file())
    except OSError as e:
        raise CamlocError(f"{maps_dir}: cannot list the maps folder ({e})") from e
    unscored = [s for s in stems if s not in table]
    if unscored:
        shown = ", ".join(repr(s) for s in unscored[:5]) + (", ..." if len(unscored) > 5 else "")
        log.warning("%d map(s) in %s have no row in the boxes CSV and were not scored: %s "
                    "(add their boxes to score them)", len(unscored), maps_dir, shown)
    return len(unscored)


def _score_chunk(job) -> tuple[list, np.ndarray | None, dict | None]:
    """Score a contiguous chunk of images: ([(image_id, ious (2, T) | None, pointing (2,) | None,
    bad reason | None)], hist, digests of the files read or None)."""
    items, maps_dir, masks_dir, raw, size, grid, tolerance, digest = job
    pixels = PixelAccumulator(grid) if masks_dir is not None else None
    results, digests = [], ({} if digest else None)
    for image_id, rows in items:
        try:
            ious, points, smap, mask = _score_one(image_id, rows, maps_dir, masks_dir, raw, size, grid, tolerance,
                                                  digests)
        except BadInput as e:
            results.append((image_id, None, None, str(e)))
            continue
        results.append((image_id, ious, points, None))
        if pixels is not None:
            pixels.add(smap, mask)
    return results, (pixels.hist if pixels is not None else None), digests


def _score_all(table: dict, maps_dir, masks_dir, raw, size, grid, workers: int, bar: Bar, tolerance: float,
               digest: bool = False):
    """Yield chunk results in image_id order; with workers > 1 a fork pool scores chunks in parallel."""
    items = list(table.items())
    chunk = 32
    jobs = [(items[i:i + chunk], maps_dir, masks_dir, raw, size, grid, tolerance, digest)
            for i in range(0, len(items), chunk)]
    pool = fork_pool(workers) if workers > 1 and len(jobs) >= 2 else None
    # ordered: the first bad image is the first reported
    chunks = pool.imap(_score_chunk, jobs) if pool is not None else map(_score_chunk, jobs)
    try:
        with bar(total=len(items), desc="evaluate-maps", unit="map") as progress:
            for done in chunks:
                progress.update(len(done[0]))
                yield done
    finally:
        if pool is not None:
            pool.terminate()


def check_size(size) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
        raise CamlocError(f"size = {size!r}: the evaluation frame must be a positive integer (e.g. 224)")


def score(maps_dir, table: dict, masks_dir, grid: np.ndarray, raw: bool, skip_bad: bool, size: int | None,
          workers: int | None, bar: Bar = no_bar, pointing_tolerance: float = DEFAULT_TOLERANCE,
          digests: dict | None = None) -> EvalState:
    """Score the images of ``table`` (image_id → CSV rows, any subset) into an ``EvalState``.

    ``digests``: a dict that gets the SHA-256 of every map and mask file read, by file name (sharded runs).

    ``workers``: processes for the per-image loop (default: 2 when there are ≥ 64 images and 2 CPUs,
    else 1). Results do not depend on it: images are merged in image_id order, histograms are integers.
    """
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if len(table) >= 64 else 1
    state = EvalState.empty(grid, masks_dir is not None, pointing_tolerance)
    for results, hist, read in _score_all(table, Path(maps_dir), masks_dir, raw, size, grid, workers, bar,
                                          pointing_tolerance, digests is not None):
        if read is not None:
            digests.update(read)
        for image_id, ious, points, reason in results:
            if reason is None:
                state.add_image(image_id, ious, points)
            elif skip_bad:
                log.warning("skipping image %r: %s", image_id, reason)
                state.skipped.append({"image_id": image_id, "reason": reason})
            else:
                raise CamlocError(f"image {image_id!r}: {reason} (fix it, or pass --skip-bad to skip it)")
        if hist is not None:
            state.pixel_hist += hist
    return state


def finish(state: EvalState, interval: float, boxes_csv, masks_dir, out=None, per_image=None) -> dict:
    """The evaluate-maps JSON of a (merged) state; written to ``out`` / ``per_image`` when given."""
    if not state.ids:
        raise CamlocError(f"{boxes_csv}: no image could be evaluated ({len(state.skipped)} skipped)")
    if state.pixel_hist is not None and state.pixel_hist[1].sum() == 0:
        raise CamlocError(f"{masks_dir}: no foreground (1) pixel in any mask; PxAP is undefined")
    result = summarize(state, interval)
    result.update(state.pointing())
    result["n_skipped"], result["skipped"] = len(state.skipped), state.skipped
    result["n_unscored_maps"] = state.n_unscored
    if out is not None:
        write_json(out, result)
    if per_image is not None:
        _write_per_image(Path(per_image), state.ids, np.stack(state.ious, axis=1), result, state.tau_grid)
    return result


def run(maps_dir, boxes_csv, masks=None, interval: float = 0.01, raw: bool = False, skip_bad: bool = False,
        out=None, per_image=None, workers: int | None = None, bar: Bar = no_bar, size: int | None = None,
        pointing_tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Evaluate a folder of maps against a boxes CSV (and masks); returns and optionally writes the JSON.

    ``size``: score in the size × size frame (see the module docstring); None keeps each map's frame.
    ``pointing_tolerance``: the pointing game's tolerance, in pixels of that frame.
    ``workers``: see ``score``. Sharded runs: ``metrics.partial``.
    """
    maps_dir, masks_dir = Path(maps_dir), (Path(masks) if masks is not None else None)
    for target in (out, per_image):  # refused before the scoring, not after it
        if target is not None:
            check_replaceable(target, "file")
    check_size(size)
    grid = taus(interval)
    if not (isinstance(pointing_tolerance, int | float) and np.isfinite(pointing_tolerance) and pointing_tolerance >= 0):
        raise CamlocError(f"pointing tolerance = {pointing_tolerance!r}: use a number of pixels >= 0 (e.g. 15)")
    table = read_boxes(Path(boxes_csv))
    n_unscored = count_unscored(maps_dir, table)
    state = score(maps_dir, table, masks_dir, grid, raw, skip_bad, size, workers, bar, pointing_tolerance)
    state.n_unscored = n_unscored
    return finish(state, interval, boxes_csv, masks_dir, out, per_image)
