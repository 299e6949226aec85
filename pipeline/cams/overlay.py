"""The picture the CAM paper is known for, for your own images (`camloc cams --images ... --overlay`):
the raw map upsampled bicubically to the image's original size, min–max normalised (the evaluator's
own `metrics.normalize_map`), drawn with the JET colormap over the image, optionally the predicted box
at a chosen τ (the evaluator's largest-contour box), and a caption bar below naming the predicted
class and its probability. numpy/OpenCV only; PNGs are encoded by OpenCV (no metadata).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

HEAT_WEIGHT = 0.5  # share of the colormap in each pixel (the rest is the image)
BOX_COLOR = (255, 255, 255)  # BGR: white reads on every colormap colour
CAPTION_BG, CAPTION_FG = (32, 32, 32), (255, 255, 255)


def heat(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) float64 in [0, 1]: bicubic to the original size, then min–max (a constant map → zeros)."""
    from pipeline.metrics.boxes import normalize_map

    return normalize_map(np.asarray(raw, np.float64), (height, width))


def overlay(image_rgb: np.ndarray, raw: np.ndarray, caption: str, tau: float | None = None) -> np.ndarray:
    """BGR uint8 picture (H + caption bar, W, 3): the map over the image, the box at τ, the caption."""
    from pipeline.metrics.boxes import boxes_at_taus

    h, w = image_rgb.shape[:2]
    smap = heat(raw, h, w)
    colors = cv2.applyColorMap(np.round(smap * 255).astype(np.uint8), cv2.COLORMAP_JET)  # (H, W, 3) BGR
    picture = cv2.addWeighted(cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR), 1 - HEAT_WEIGHT,
                              colors, HEAT_WEIGHT, 0)
    thick = max(1, round(min(h, w) / 150))
    if tau is not None:
        x0, y0, x1, y1 = (int(v) for v in boxes_at_taus(smap, np.array([float(tau)]), "largest")[0][0])
        cv2.rectangle(picture, (x0, y0), (x1, y1), BOX_COLOR, thick)
        caption += f"  box at tau={float(tau):.2f}"
    scale = max(0.35, min(w, 900) / 600)
    (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    bar = np.full((th + base + 8, w, 3), CAPTION_BG, np.uint8)
    cv2.putText(bar, caption, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, CAPTION_FG, thick, cv2.LINE_AA)
    return np.concatenate([picture, bar], axis=0)


def write_png(path: Path, picture: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", picture)
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    Path(path).write_bytes(buf.tobytes())
