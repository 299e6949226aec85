"""The explorer (report stage): one self-contained, offline page `reports/explorer/index.html`.

Two views over the run: the leaderboard (every row and column, CIs shown, sortable, and filterable by
every categorical column: backbone, method, and any axis a later stage adds, such as a training
method), and a comparison of maps and boxes image by image (columns are methods or backbones) with a
τ slider. Every box the page draws comes from the evaluate stage's `tau_boxes.parquet`: the page
never thresholds a map, so the slider shows exactly what the metric core computed at that τ.

Everything is inlined (thumbnails as JPEG data URIs at the evaluation size, raw maps as 8-bit arrays
at feature resolution, boxes and IoUs as base64 typed arrays, the script and style from
`explorer_assets/`), and a Content-Security-Policy forbids every network request, so the page works
from file:// with nothing beside it. The bytes are a deterministic function of the inputs.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline.catalog.metrics import METRICS
from pipeline.errors import CamlocError
from pipeline.metrics import rescale_boxes

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("explorer_assets")
# The page script, by part (one shared scope): data and URL state, the leaderboard view, the comparison
# data and view, the wiring of events; inlined in this order inside one strict-mode function.
SCRIPT_PARTS = ("state.js", "leaderboard.js", "compare.js", "wiring.js")
JPEG_QUALITY = 85
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "connect-src 'none'; form-action 'none'")


@dataclass(frozen=True)
class BackboneView:
    """One backbone's comparison data: the scored split's images, their boxes and IoUs on the τ grid."""

    backbone: str
    kind: str  # the box kind drawn as GT and scored: the dataset's loc kind (head for Pets, object for wsol)
    size: int  # the evaluation frame S
    image_ids: list[str]  # head-split images in the cams index order
    methods: list[str]
    taus: np.ndarray  # (T,) the slider's τ values
    boxes: dict[str, np.ndarray]  # method → (N, T, 4) int16, S×S frame, 0-based inclusive
    ious: dict[str, np.ndarray]  # method → (N, T) float32 (NaN: image without a head box)
    maps: dict[str, np.ndarray]  # method → (N, h, w) uint8 raw GT-class maps, min–max per map
    preds: list[tuple[int, float]]  # per image: top-1 class and its probability
    chosen: dict  # chosen.json of the backbone


def _box_cube(table: pd.DataFrame, ids: list[str], taus: np.ndarray, source: str):
    """Long tau_boxes rows of one method → ((N, T, 4) int16 boxes, (N, T) float32 IoUs) in `ids` order."""
    row = {i: k for k, i in enumerate(ids)}
    col = {float(t): k for k, t in enumerate(taus)}
    r = table["image_id"].map(row).to_numpy()
    c = table["tau"].astype(np.float64).map(col).to_numpy()
    if np.isnan(r.astype(float)).any() or np.isnan(c.astype(float)).any() or len(table) != len(ids) * len(taus):
        raise CamlocError(f"{source}: its rows do not cover every test image × τ of the grid; "
                          "re-run the evaluate stage")
    boxes = np.zeros((len(ids), len(taus), 4), np.int16)
    ious = np.full((len(ids), len(taus)), np.nan, np.float32)
    r, c = r.astype(np.int64), c.astype(np.int64)
    boxes[r, c] = table[["x0", "y0", "x1", "y1"]].to_numpy(np.int16)
    ious[r, c] = table["iou"].to_numpy(np.float32)
    return boxes, ious


def _uint8_maps(maps: np.ndarray) -> np.ndarray:
    """(N, h, w) raw maps → uint8, min–max per map (constant or non-finite maps → zeros), for display only."""
    m = np.asarray(maps, np.float64)
    out = np.zeros(m.shape, np.uint8)
    for i, one in enumerate(m):
        lo, hi = (one.min(), one.max()) if np.isfinite(one).all() else (0.0, 0.0)
        if hi > lo:
            out[i] = np.round((one - lo) / (hi - lo) * 255).astype(np.uint8)
    return out


def load_view(paths: C.Paths, backbone: str, chosen: dict, layout: C.Layout = C.PETS_LAYOUT) -> BackboneView | None:
    """Read one backbone's explorer inputs (tau_boxes, cams index and maps); None without scored images
    (a masks-only dataset has no boxes to draw)."""
    eval_dir, cams_dir = paths.eval_dir(backbone), paths.cams_dir(backbone)
    table = C.read_tau_boxes(eval_dir)
    if table.empty:
        log.warning("%s: no explorer boxes in %s; the explorer leaves it out", backbone, eval_dir)
        return None
    if layout.loc_kind not in layout.scored_split:
        return None
    split = layout.scored_split[layout.loc_kind]
    index = C.read_cams_index(cams_dir, split)
    ids = [str(i) for i in index["image_id"]]
    taus = np.sort(table["tau"].astype(np.float64).unique())
    present = set(table["method"].unique())  # once: a set of the ~10^6 rows per method took ~2 s each
    methods = [m for m in C.read_cams_meta(cams_dir)["methods"] if m in present]
    boxes, ious, maps = {}, {}, {}
    source = str(eval_dir / C.TAU_BOXES_FILE)
    for method, part in table.groupby("method", sort=False):
        boxes[method], ious[method] = _box_cube(part, ids, taus, f"{source} ({method})")
    for method in methods:
        maps[method] = _uint8_maps(C.open_maps(cams_dir, split, method, "gt"))
    preds = [(int(p), float(prob[0])) for p, prob in zip(index["pred"], index["top5_prob"], strict=True)]
    return BackboneView(backbone, layout.loc_kind, int(C.read_cams_meta(cams_dir)["image_size"]), ids, methods, taus,
                        boxes, ious, maps, preds, chosen)


def _b64(array: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _jpeg(rgb: np.ndarray, size: int) -> str:
    small = cv2.resize(np.ascontiguousarray(rgb), (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _cell(value):
    """A leaderboard cell as JSON: NaN → null, numpy scalars → Python."""
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else round(float(value), 6)
    if isinstance(value, np.integer):
        return int(value)
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def leaderboard_data(board: pd.DataFrame, loc: str = "head") -> dict:
    """Every column and row of the leaderboard; categorical columns (strings) become the page's filters.

    `metrics` carries the metric cards of its metric columns (pipeline/catalog/metrics.py): label,
    direction (the page sorts a ↓ column best first, ascending) and legend (`loc`: the loc box kind)."""
    columns = [str(c) for c in board.columns]
    categorical = [c for c in columns if not pd.api.types.is_numeric_dtype(board[c])]
    fill = {"loc": loc, "pixel_gt": "the pixel ground truth"}
    metrics = {c: {"label": card.label or c, "direction": card.direction,
                   "legend": " ".join(card.legend.format(**fill).split())}
               for c in columns if c in METRICS for card in (METRICS.get(c),)}
    return {"columns": columns, "categorical": categorical, "metrics": metrics,
            "rows": [[_cell(v) for v in row] for row in board.itertuples(index=False, name=None)]}


def page_data(board: pd.DataFrame, views: list[BackboneView], shared, fixed_tau: float) -> dict:
    """The JSON the page script reads: leaderboard, images, per-backbone boxes/IoUs/maps, the τ grid."""
    views = _same_grid(views)
    taus = views[0].taus if views else np.zeros(0)
    wanted = sorted({i for v in views for i in v.image_ids})
    thumb_size = max((v.size for v in views), default=0)
    images = {}
    for image_id in wanted:
        row = shared.samples.loc[image_id]
        images[image_id] = {"class": str(row["class_name"]),
                            "thumb": _jpeg(shared.cache[int(row["cache_index"])], thumb_size)}
    backbones = {}
    for v in views:
        gts = []
        for image_id in v.image_ids:
            row = shared.samples.loc[image_id]
            wh = (int(row["width"]), int(row["height"]))
            gt = rescale_boxes(shared.boxes.get((image_id, v.kind), np.zeros((0, 4))), wh, (v.size, v.size))
            gts.append(gt.tolist())
        backbones[v.backbone] = {
            "size": v.size, "kind": v.kind, "images": v.image_ids, "methods": v.methods, "gt": gts,
            "pred": [[shared.class_names[p] if 0 <= p < len(shared.class_names) else str(p), round(q, 4)]
                     for p, q in v.preds],
            "chosen": v.chosen,
            "boxes": {m: _b64(v.boxes[m], "<i2") for m in v.methods},
            "ious": {m: _b64(v.ious[m], "<f4") for m in v.methods},
            "maps": {m: {"shape": list(v.maps[m].shape[1:]), "data": _b64(v.maps[m], "u1")} for m in v.methods},
        }
    loc = views[0].kind if views else "head"
    return {"leaderboard": leaderboard_data(board, loc), "backbone_order": [v.backbone for v in views], "taus": [round(float(t), 6) for t in taus],
            "fixed_tau": float(fixed_tau), "images": images, "backbones": backbones}


def _same_grid(views: list[BackboneView]) -> list[BackboneView]:
    """Views on the first view's τ grid (the slider is dataset-wide); others are left out, with a warning."""
    if not views:
        return views
    ref = views[0].taus
    keep = [v for v in views if len(v.taus) == len(ref) and np.allclose(v.taus, ref, atol=1e-6)]
    for v in views:
        if v not in keep:
            log.warning("%s: its explorer τ grid differs from %s's (evaluate.interval changed?); left out",
                        v.backbone, views[0].backbone)
    return keep


def _json_script(data: dict) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c")  # no "</script>" can end the data block early


def page_html(data: dict) -> str:
    """The whole page: style, data and script inline; no reference to any other file or host."""
    css = (ASSETS / "explorer.css").read_text()
    js = '"use strict";\n(function () {\n' + "".join((ASSETS / p).read_text() for p in SCRIPT_PARTS) + "})();\n"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<title>camloc explorer</title>\n"
            f"<style>\n{css}</style>\n</head>\n<body>\n{(ASSETS / 'explorer.html').read_text()}"
            f"<script type=\"application/json\" id=\"camloc-data\">{_json_script(data)}</script>\n"
            f"<script>\n{js}</script>\n</body>\n</html>\n")


def write_explorer(folder: Path, board: pd.DataFrame, views: list[BackboneView], shared, fixed_tau: float) -> int:
    """index.html under `folder` (a fresh, empty folder); returns its size in bytes."""
    text = page_html(page_data(board, views, shared, fixed_tau))
    (folder / "index.html").write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))
