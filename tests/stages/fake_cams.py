"""The hand-written cams folder behind tests/stages/test_evaluate_stage.py: seeded synthetic maps of three
methods (good, noise, center) over the tiny prepared synthpets, in the docs/contracts.md layout."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from reference import ref_rescale

from pipeline import contracts as C
from pipeline.params import BackboneParams, EvaluateParams

BACKBONE = "fakenet"
S = 32  # evaluation frame (meta image_size)
H = W = 16  # raw map size
INTERVAL = 0.05
FIXED_TAU = 0.2
DELTAS = (30, 50, 70)
METHODS = ("good", "noise", "center")
SPLITS = ("val", "test", "test_official")
TAUS = np.arange(0, 1, INTERVAL)



def _blob(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    return np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)


def _maps_for(method: str, boxes_s: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """(N, H, W) float32 raw maps for one split; `boxes_s` are each image's (G, 4) boxes in the S frame."""
    out = np.empty((len(boxes_s), H, W), np.float32)
    scale = W / S
    for i, box in enumerate(boxes_s):
        x0, y0, x1, y1 = (box[0] * scale).tolist()
        if method == "good":  # a blob near the box plus a weaker distractor: several contours at low τ
            jx, jy = rng.uniform(-0.3, 0.3, 2) * (x1 - x0 + 1, y1 - y0 + 1)  # some blobs miss the box
            m = 3.0 * _blob((x0 + x1) / 2 + jx, (y0 + y1) / 2 + jy, max(0.6, (x1 - x0) / 3), max(0.6, (y1 - y0) / 3))
            m += 0.8 * _blob(rng.uniform(0, W - 1), rng.uniform(0, H - 1), 0.7, 0.7)
            m += 0.05 * rng.normal(size=(H, W))
        elif method == "noise":  # raw range far from [0, 1]; one constant map (all-zero after normalising)
            m = np.full((H, W), 7.0) if i == 1 else rng.normal(size=(H, W)) * 40 - 5
        else:  # the same centred Gaussian for every image
            m = _blob((W - 1) / 2, (H - 1) / 2, W / 4, H / 4)
        out[i] = m
    return out


def _predictions(labels: np.ndarray, n_classes: int) -> tuple[list[int], list[list[int]], list[list[float]]]:
    """Deterministic fake predictions: every 3rd image wrong; top-5 lists of varying length (1..C), so
    that a wrong top-1 sometimes keeps the label in the top-5 and sometimes not."""
    preds, top5, probs = [], [], []
    for i, lab in enumerate(labels.tolist()):
        pred = (lab + 1) % n_classes if i % 3 == 0 else lab
        rest = [c for c in range(n_classes) if c != pred]
        t = [pred] + rest[: (i // 3) % n_classes]
        preds.append(pred)
        top5.append(t)
        probs.append([0.9 / (k + 1) for k in range(len(t))])
    return preds, top5, probs


@dataclasses.dataclass
class Fake:
    paths: C.Paths
    params: object
    samples: pd.DataFrame  # indexed by image_id
    boxes: pd.DataFrame
    index: dict[str, pd.DataFrame]
    maps: dict[tuple[str, str, str], np.ndarray]  # (split, method, kind) → raw maps


def write_cams(prepared: Path, cams_dir: Path) -> tuple[dict, dict]:
    samples = C.read_samples(prepared, C.SAMPLE_COLUMNS)
    boxes = C.read_boxes(prepared)
    n_classes = int(samples["label"].max()) + 1
    rng = np.random.default_rng(0)
    index, maps = {}, {}
    for split in SPLITS:
        rows = samples[samples["split"] == split].sort_values("image_id")
        kind = "head" if split != "test_official" else "body"
        boxes_s = []
        for r in rows.itertuples():
            b = boxes[(boxes.image_id == r.image_id) & (boxes.kind == kind)][["x0", "y0", "x1", "y1"]].to_numpy()
            assert len(b), (r.image_id, kind)
            boxes_s.append(np.array([ref_rescale(x, r.width, r.height, S, S) for x in b]))
        labels = rows["label"].to_numpy()
        preds, top5, probs = _predictions(labels, n_classes)
        df = pd.DataFrame({"image_id": rows["image_id"].to_numpy(), "label": labels, "pred": preds,
                           "top5": top5, "top5_prob": probs})
        (cams_dir / split).mkdir(parents=True)
        df.to_parquet(cams_dir / split / "index.parquet", index=False)
        index[split] = df
        for method in METHODS:
            gt = _maps_for(method, boxes_s, rng)
            wrong = np.flatnonzero(df["pred"].to_numpy() != labels)
            pred = gt.copy()
            pred[wrong] = rng.normal(size=(len(wrong), H, W)).astype(np.float32)
            for k, arr in (("gt", gt), ("pred", pred)):
                np.save(C.map_file(cams_dir / split, method, k), arr, allow_pickle=False)
                maps[(split, method, k)] = arr
    meta = {"methods": list(METHODS), "dtype": "float32", "image_size": S, "map_size": [H, W],
            "splits": list(SPLITS), "images": {s: len(index[s]) for s in SPLITS}}
    (cams_dir / "meta.json").write_text(json.dumps(meta))
    return index, maps


def _paths(root: Path, prepared: Path) -> C.Paths:
    return C.Paths(prepared=prepared, cams=root / "cams", eval=root / "eval", metrics=root / "metrics",
                   curves=root / "curves")


def _params(base):
    return dataclasses.replace(base, backbones={BACKBONE: BackboneParams(image_size=S)},
                               evaluate=EvaluateParams(interval=INTERVAL, fixed_tau=FIXED_TAU,
                                                       iou_thresholds=DELTAS))
