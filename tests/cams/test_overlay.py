"""`camloc cams --images ... --overlay`: the map over the image at its original size. The overlay's
hottest region is recovered from the PNG (colormap inverted pixel by pixel) and must sit where the raw
map peaks; the box at τ is the evaluator's; the caption names the predicted class."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.cams import overlay as ov
from pipeline.errors import CamlocError
from pipeline.metrics import boxes_at_taus, normalize_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stages"))
from test_cams_stage import _model_dir  # noqa: E402  (the folder-mode model of the cams stage tests)

JET = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_JET)[:, 0, :].astype(np.float64)


def recovered_heat(picture: np.ndarray, image_rgb: np.ndarray) -> np.ndarray:
    """(H, W) colormap level per pixel of the overlay part of `picture`, undoing the blend with the image."""
    h, w = image_rgb.shape[:2]
    bgr = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR).astype(np.float64)
    colors = (picture[:h].astype(np.float64) - (1 - ov.HEAT_WEIGHT) * bgr) / ov.HEAT_WEIGHT  # (H, W, 3)
    dist = ((colors[:, :, None, :] - JET[None, None]) ** 2).sum(-1)  # (H, W, 256)
    return dist.argmin(-1).astype(np.float64)


def assert_hot_where_raw_peaks(picture: np.ndarray, image_rgb: np.ndarray, raw: np.ndarray) -> None:
    h, w = image_rgb.shape[:2]
    level = recovered_heat(picture, image_rgb)
    ys, xs = np.nonzero(level >= level.max() - 8)  # the hottest region
    i, j = np.unravel_index(np.argmax(raw), raw.shape)
    cell_h, cell_w = h / raw.shape[0], w / raw.shape[1]
    peak = ((i + 0.5) * cell_h, (j + 0.5) * cell_w)  # the raw peak cell's centre, in original pixels
    assert abs(ys.mean() - peak[0]) <= 1.5 * cell_h and abs(xs.mean() - peak[1]) <= 1.5 * cell_w, (
        (ys.mean(), xs.mean()), peak)


def test_overlay_is_hottest_where_the_raw_map_peaks_at_the_original_size():
    rng = np.random.default_rng(0)
    drawn = []
    for (h, w), (pi, pj) in (((90, 140), (1, 5)), ((120, 64), (6, 1)), ((50, 50), (3, 3))):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        yy, xx = np.mgrid[0:7, 0:7]
        raw = np.exp(-((yy - pi) ** 2 + (xx - pj) ** 2) / 1.5) + 0.05 * rng.random((7, 7))
        picture = ov.overlay(image, raw, "beagle 0.93")
        assert picture.shape[0] > h and picture.shape[1:] == (w, 3)  # a caption bar below the image
        assert_hot_where_raw_peaks(picture, image, raw)
        drawn.append((picture, image, raw))
    # the check can fail: a picture against a map peaking elsewhere
    picture, image, raw = drawn[0]
    with pytest.raises(AssertionError):
        assert_hot_where_raw_peaks(picture, image, raw[::-1, ::-1])


def test_box_at_tau_is_the_evaluators_box_in_the_original_frame():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 200, (80, 120, 3), dtype=np.uint8)
    raw = rng.random((5, 5))
    picture = ov.overlay(image, raw, "pug 0.51", tau=0.5)
    x0, y0, x1, y1 = boxes_at_taus(normalize_map(raw, (80, 120)), np.array([0.5]), "largest")[0][0]
    white = (picture[:80] == ov.BOX_COLOR).all(-1)
    assert white[y0, x0] and white[y1, x1] and white[y0, (x0 + x1) // 2]
    assert not white[(y0 + y1) // 2, (x0 + x1) // 2] or (x1 - x0) < 3


def test_folder_mode_writes_overlays_beside_the_maps(tmp_path):
    from pipeline.stages import cams as cams_stage

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(2)
    sizes = {"a": (70, 50), "b": (41, 97), "c": (64, 64)}
    for name, (h, w) in sizes.items():
        cv2.imwrite(str(images / f"{name}.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    model_dir, out = _model_dir(tmp_path), tmp_path / "out"
    cams_stage.run_folder(model_dir, images, ["cam"], out, overlay=True)
    preds = pd.read_csv(out / "predictions.csv").set_index("image_id")
    for name, (h, w) in sizes.items():
        picture = cv2.imread(str(out / f"{name}.png"))
        assert picture.shape[1] == w and picture.shape[0] > h  # the original size, plus the caption
        image = cv2.cvtColor(cv2.imread(str(images / f"{name}.png")), cv2.COLOR_BGR2RGB)
        raw = np.load(out / f"{name}.npy")
        level = recovered_heat(picture, image)
        # the picture is the map at the image's original size, level for level (JET inverted)
        assert np.abs(level - np.round(ov.heat(raw, h, w) * 255)).mean() < 3
        # (an untrained model's maps are nearly flat, so the peak-location check is the test above)
        assert preds.loc[name, "pred_name"].startswith("c")
    with pytest.raises(CamlocError, match="--tau 1.5 needs --overlay"):
        cams_stage.run_folder(model_dir, images, ["cam"], tmp_path / "o2", overlay=True, tau=1.5)
