"""CAM galleries (report stage): static HTML pages of thumbnails showing where each map points and its box.

Per backbone, a fixed seeded sample of test images (the same images for every backbone and method,
so rows compare) and, per method, the images with the worst and the best IoU. A thumbnail is the
image with the normalised GT-class map overlaid, the GT head box (green), the whole-pet box (cyan) and
the predicted box (red) at the split's chosen τ in largest-contour mode (MaxBoxAcc v1), drawn in the
S×S evaluation frame and enlarged with nearest-neighbour so pixels stay crisp. PNGs are encoded by
OpenCV (no metadata); the pages have no scripts and load nothing from the network.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.contracts import ALL_BOX_KINDS
from pipeline.metrics import boxes_at_taus, iou_matrix, normalize_map, rescale_boxes
from pipeline.progress import Bar, no_bar
from pipeline.report.writers import HTML_STYLE

log = logging.getLogger(__name__)

GT_COLOR = (0, 200, 0)  # BGR: head box
BODY_COLOR = (255, 255, 0)  # cyan: whole-pet box
PRED_COLOR = (0, 0, 255)  # red: predicted box
DISPLAY = 192  # thumbnails are enlarged to at least this many pixels
GALLERY_STYLE = HTML_STYLE + """
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:200px;font-size:12px}
figure img{display:block;width:192px;height:192px}figcaption{line-height:1.3;word-break:break-all}
.legend span{display:inline-block;padding:0 6px;margin-right:8px;border:2px solid}"""
LEGEND = ('<p class="legend"><span style="border-color:#00c800">GT head box</span>'
          '<span style="border-color:#00ffff">whole-pet box</span>'
          '<span style="border-color:#ff0000">predicted box (largest contour, chosen τ)</span></p>')


@dataclass(frozen=True)
class Thumb:
    """One rendered picture and what its caption says."""

    backbone: str
    method: str
    image_id: str
    class_name: str
    pred_name: str
    iou: float  # from the evaluate stage's per-image table
    tau: float

    @property
    def relpath(self) -> str:
        return f"{_safe(self.backbone)}/{_safe(self.method)}/{unique_stem(self.image_id)}.png"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def unique_stem(image_id: str) -> str:
    """A file name stem for one image: readable (its flattened last part) plus a short hash of the full id,
    so `test/a/b.jpg` and `test/a_b.jpg`, or `猫.jpg` and `犬.jpg`, never share a file."""
    digest = hashlib.sha256(image_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    readable = _safe(image_id.rsplit("/", 1)[-1].rsplit(".", 1)[0])[:60].strip("._-") or "image"
    return f"{readable}-{digest}"


def render(image: np.ndarray, smap: np.ndarray, heads: np.ndarray, bodies: np.ndarray,
           pred: np.ndarray) -> np.ndarray:
    """BGR thumbnail: image (any size, RGB) resized to the map's S×S, map overlaid, boxes drawn."""
    size = smap.shape[0]
    rgb = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((255 * np.clip(smap, 0, 1)).astype(np.uint8), cv2.COLORMAP_JET)  # (S, S, 3)
    blend = cv2.addWeighted(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 0.55, heat, 0.45, 0)
    k = max(1, -(-DISPLAY // size))  # integer zoom, rounded up
    big = cv2.resize(blend, (size * k, size * k), interpolation=cv2.INTER_NEAREST)
    for boxes, color in ((bodies, BODY_COLOR), (heads, GT_COLOR), (pred[None, :], PRED_COLOR)):
        for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
            cv2.rectangle(big, (int(x0) * k, int(y0) * k), (int(x1) * k + k - 1, int(y1) * k + k - 1), color, 2)
    return big


def choose_images(ids: np.ndarray, ious: dict[str, np.ndarray], samples: int, extremes: int,
                  seed: int) -> tuple[list[str], dict[str, tuple[list[str], list[str]]]]:
    """A seeded sample of `ids` (sorted), and per method its `extremes` worst and best images by IoU.

    Ties break by image id, so the choice is deterministic.
    """
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(ids, size=min(samples, len(ids)), replace=False)).tolist() if samples else []
    ext = {}
    for method, iou in ious.items():
        order = np.lexsort((ids, iou))  # ascending IoU, then id
        worst = ids[order[:extremes]].tolist()
        best = ids[np.lexsort((ids, -iou))[:extremes]].tolist()
        ext[method] = (worst, best)
    return pick, ext


def figure_html(t: Thumb) -> str:
    cap = (f"{html.escape(t.image_id)}<br>class {html.escape(t.class_name)} · pred {html.escape(t.pred_name)}"
           f"<br>{html.escape(t.method)} IoU {t.iou:.2f} (τ={t.tau:.2f})")
    alt = f"{t.method} map of {t.image_id}"
    return (f'<figure><img src="{html.escape(t.relpath)}" alt="{html.escape(alt)}" width="192" height="192">'
            f"<figcaption>{cap}</figcaption></figure>")


def legend_html(kind: str = "head") -> str:
    """The box colours; the reference-layout datasets draw their `object` boxes green and have no body box."""
    if kind == "head":
        return LEGEND
    return (f'<p class="legend"><span style="border-color:#00c800">GT {kind} boxes</span>'
            '<span style="border-color:#ff0000">predicted box (largest contour, chosen τ)</span></p>')


def page_html(title: str, intro: str, sections: list[tuple[str, list[Thumb]]], legend: str = LEGEND) -> str:
    """A static page of thumbnail sections; image paths are relative to the gallery folder."""
    parts = [f"<p class=\"note\">{intro}</p>", legend, '<p><a href="index.html">all backbones</a></p>']
    for heading, thumbs in sections:
        figs = "\n".join(figure_html(t) for t in thumbs)
        parts.append(f"<h2>{html.escape(heading)}</h2>\n<div class=\"grid\">\n{figs}\n</div>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{GALLERY_STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


def index_html(pages: list[tuple[str, str, int]], legend: str = LEGEND) -> str:
    """The gallery's entry page: one link per backbone page (name, file, thumbnail count)."""
    items = "\n".join(f'<li><a href="{html.escape(f)}">{html.escape(b)}</a> ({n} thumbnails)</li>'
                      for b, f, n in pages)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>CAM galleries</title>\n"
            f"<style>{GALLERY_STYLE}</style>\n</head>\n<body>\n<h1>CAM galleries</h1>\n"
            "<p class=\"note\">Class activation maps on test images, per backbone: a fixed seeded sample, then "
            "each method's worst and best IoUs. The leaderboard is in <a href=\"../leaderboard.html\">"
            "leaderboard.html</a>.</p>\n" + legend + f"\n<ul>\n{items}\n</ul>\n</body>\n</html>\n")


@dataclass(frozen=True)
class GalleryInput:
    """One backbone's inputs to its gallery page."""

    backbone: str
    image_size: int  # evaluation S
    ids: np.ndarray  # (N,) sorted test image ids (head boxes)
    ious: dict[str, np.ndarray]  # method → (N,) IoU at its chosen τ, largest-contour mode
    taus: dict[str, float]  # method → that chosen τ
    preds: dict[str, int]  # image_id → top-1 class
    maps: Callable[[str, str], np.ndarray]  # (method, image_id) → raw GT-class map (h, w)
    kind: str = "head"  # the box kind drawn green and scored (object for the reference layout)


@dataclass(frozen=True)
class SharedInput:
    """Dataset-level inputs shared by all backbones' pages."""

    samples: pd.DataFrame  # indexed by image_id: class_name, width, height, cache_index
    boxes: dict[tuple[str, str], np.ndarray]  # (image_id, kind) → (K, 4) original pixels
    cache: np.ndarray  # (N, S_c, S_c, 3) uint8 RGB
    class_names: list[str]


def _predicted_box(raw: np.ndarray, size: int, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) normalised map and the largest-contour box at τ, through the evaluator's own code."""
    smap = normalize_map(np.asarray(raw, dtype=np.float32), (size, size))  # (S, S)
    found = boxes_at_taus(smap, np.asarray([tau]), "largest")
    box = np.asarray(found[0], dtype=np.int64).reshape(-1, 4)[0]  # largest mode: one box per τ
    return smap, box


def _render_thumb(t: Thumb, g: GalleryInput, shared: SharedInput, folder: Path) -> bool:
    """Write one thumbnail; returns whether the drawn box reproduces the evaluated IoU."""
    row = shared.samples.loc[t.image_id]
    size = g.image_size
    smap, pred = _predicted_box(g.maps(t.method, t.image_id), size, t.tau)
    wh = (int(row["width"]), int(row["height"]))
    frame = {kind: rescale_boxes(shared.boxes.get((t.image_id, kind), np.zeros((0, 4))), wh, (size, size))
             for kind in ALL_BOX_KINDS}
    img = render(shared.cache[int(row["cache_index"])], smap, frame[g.kind], frame["body"], pred)
    path = folder / t.relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    path.write_bytes(buf.tobytes())
    drawn = float(iou_matrix(pred, frame[g.kind]).max()) if len(frame[g.kind]) else 0.0
    return abs(drawn - t.iou) <= 1e-3


def write_gallery(folder: Path, inputs: list[GalleryInput], shared: SharedInput, samples: int,
                  extremes: int, seed: int, bar: Bar = no_bar,
                  train_methods: dict[str, str] | None = None) -> tuple[int, int]:
    """index.html, one page per backbone and their thumbnails under `folder` (a fresh, empty folder),
    plus one page per WSOL training method (`train_methods`: backbone → method) that puts the seeded
    sample of every backbone trained that way side by side (the same images on every page).

    Returns (thumbnails written, thumbnails whose redrawn box disagrees with the evaluated IoU).
    """
    written: set[str] = set()
    mismatches = 0
    pages = []
    by_training: dict[str, list[tuple[str, list[Thumb]]]] = {}
    for g in inputs:
        pick, ext = choose_images(g.ids, g.ious, samples, extremes, seed)
        pos = {i: k for k, i in enumerate(g.ids)}

        def thumb(method: str, image_id: str, g=g, pos=pos) -> Thumb:
            pred = g.preds.get(image_id)
            pred_name = shared.class_names[pred] if pred is not None else "?"
            return Thumb(g.backbone, method, image_id, str(shared.samples.loc[image_id, "class_name"]),
                         pred_name, float(g.ious[method][pos[image_id]]), g.taus[method])

        sections = [(f"Seeded sample, {m}", [thumb(m, i) for i in pick]) for m in g.ious] if pick else []
        for m, (worst, best) in ext.items():
            sections += [(f"{m}: worst IoUs", [thumb(m, i) for i in worst]),
                         (f"{m}: best IoUs", [thumb(m, i) for i in best])]
        todo = {t.relpath: t for _, ts in sections for t in ts if t.relpath not in written}
        with bar(total=len(todo), desc=f"gallery {g.backbone}", unit="img") as progress:
            for rel, t in sorted(todo.items()):
                mismatches += not _render_thumb(t, g, shared, folder)
                written.add(rel)
                progress.update(1)
        name = f"{_safe(g.backbone)}.html"
        intro = (f"Backbone <b>{html.escape(g.backbone)}</b>: test images ({g.kind} boxes), evaluation size "
                 f"{g.image_size}×{g.image_size}; each method's box is drawn at its own split-chosen τ.")
        (folder / name).write_text(page_html(f"CAM gallery: {g.backbone}", intro, sections, legend_html(g.kind)))
        pages.append((g.backbone, name, len(todo)))
        by_training.setdefault((train_methods or {}).get(g.backbone, "cam"), []).extend(
            (f"{g.backbone}: {heading.removeprefix('Seeded sample, ')}", ts)
            for heading, ts in sections if heading.startswith("Seeded sample"))
    legend = legend_html(inputs[0].kind if inputs else "head")
    for method, sections in sorted(by_training.items()):
        name = f"training-{_safe(method)}.html"
        intro = (f"Training method <b>{html.escape(method)}</b> (<code>camloc wsol-methods</code>): the seeded "
                 "sample of every backbone trained with it, one row per backbone and map method.")
        (folder / name).write_text(page_html(f"CAM gallery: trained with {method}", intro, sections, legend))
        pages.append((f"training method {method}", name, sum(len(ts) for _, ts in sections)))
    (folder / "index.html").write_text(index_html(pages, legend))
    if mismatches:
        log.warning("%d gallery boxes do not reproduce the evaluated IoU (metrics vs per_image drift)", mismatches)
    return len(written), mismatches
