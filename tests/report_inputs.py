"""Seeded synthetic stage outputs in exactly the docs/contracts.md format, for the report tests.

`make_report_inputs(root)` writes what prepare, train, cams, evaluate and faithfulness would have written
for 2 backbones × 4 methods. Its metrics JSON is computed here by a plain, loop-based reading of PROTOCOL §4
(independent of pipeline.report), so the report's vectorised re-computation is checked against it.
tests/report/test_report_inputs.py checks the generator itself against the contract.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import contracts as C
from pipeline.catalog.protocols import DEFAULT_PROFILES, OTHER, PROTOCOLS
from pipeline.contracts import Paths
from pipeline.metrics import protocols as P
from pipeline.params import BackboneParams, CamsParams, EvaluateParams, Params, ReportParams

BACKBONES = ("tiny_gap_cnn", "resnet18")
METHODS = ("cam", "gradcam", "center", "full")
CLASSES = [("Abyssinian", "cat"), ("Bengal", "cat"), ("beagle", "dog"), ("pug", "dog")]
SPLIT_SIZES = {"val": 2, "test": 7, "test_official": 5}  # images per class
CACHE = 32
EVAL_SIZE = 32
MAP = 8  # raw map side (feature resolution)
INTERVAL = 0.05
DELTAS = (30, 50, 70)
# Per method: peak IoU scale (how good), and the τ where its IoU peaks.
QUALITY = {"cam": (0.85, 0.35), "gradcam": (0.7, 0.45), "center": (0.35, 0.5), "full": (0.25, 0.05)}
FAITHFULNESS_IMAGES = 8  # the seeded faithfulness subset of the test split
ROAD_IMAGES = 4  # ROAD's subset of it
STEPS = 4  # points of the mean deletion / insertion curves: STEPS + 1


def report_params(**report) -> Params:
    """Params of the synthetic run (small bootstrap so tests stay fast)."""
    rp = dict(bootstrap=200, seed=0, gallery_samples=3, gallery_extremes=2) | report
    return Params(backbones={b: BackboneParams() for b in BACKBONES}, cams=CamsParams(methods=METHODS),
                  evaluate=EvaluateParams(interval=INTERVAL), report=ReportParams(**rp))


def report_paths(root: Path, out_dir: Path | None = None) -> Paths:
    """The stage folders of a `make_report_inputs(root)` tree; the report goes to `out_dir`
    (default root/reports)."""
    root = Path(root)
    return Paths(prepared=root / "data/prepared", models=root / "data/models", cams=root / "data/cams",
                 eval=root / "data/eval", metrics=root / "reports/metrics", curves=root / "reports/curves",
                 faithfulness=root / "reports/faithfulness", faithfulness_data=root / "data/faithfulness",
                 reports=root / "reports" if out_dir is None else Path(out_dir))


def _samples(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for split, k in SPLIT_SIZES.items():
        for label, (breed, species) in enumerate(CLASSES):
            for _ in range(k):
                rows.append(dict(image_id=f"{breed}_{len(rows) + 1}", label=label, class_name=breed,
                                 species=species, split=split, width=int(rng.integers(40, 80)),
                                 height=int(rng.integers(40, 80))))
    df = pd.DataFrame(rows)
    df["path"] = "data/raw/images/" + df["image_id"] + ".jpg"
    df["trimap_path"] = "data/raw/annotations/trimaps/" + df["image_id"] + ".png"
    df["cache_index"] = np.arange(len(df))
    return df


def _boxes(samples: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for s in samples.itertuples():
        w, h = s.width, s.height
        bx0, by0 = int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4))
        bx1, by1 = int(rng.integers(3 * w // 4, w)), int(rng.integers(3 * h // 4, h))
        rows.append((s.image_id, "body", bx0, by0, bx1, by1))
        if s.split != "test_official":  # head boxes: trainval only
            hx0, hy0 = bx0 + int(rng.integers(0, w // 4)), by0 + int(rng.integers(0, h // 4))
            rows.append((s.image_id, "head", hx0, hy0, hx0 + w // 4, hy0 + h // 4))
    return pd.DataFrame(rows, columns=["image_id", "kind", "x0", "y0", "x1", "y1"])


def _per_image(samples: pd.DataFrame, backbone_shift: float, rng) -> pd.DataFrame:
    taus = np.arange(0, 1, INTERVAL).astype(np.float32)
    parts = []
    for method in METHODS:
        scale, peak = QUALITY[method]
        scale = min(0.98, scale + backbone_shift)
        for kind, splits in (("head", ("val", "test")), ("body", ("val", "test_official"))):
            sub = samples[samples["split"].isin(splits)]
            for mode, bonus in (("largest", 0.0), ("all", 0.05)):
                q = np.clip(rng.beta(6, 2, size=len(sub)) * scale + bonus, 0, 1)  # (N,)
                iou = q[:, None] * np.exp(-(((taus[None, :] - peak) / 0.3) ** 2))  # (N, T)
                iou = np.round(iou, 4).astype(np.float32)
                parts.append(pd.DataFrame({
                    "image_id": np.repeat(sub["image_id"].to_numpy(), len(taus)),
                    "split": np.repeat(sub["split"].to_numpy(), len(taus)),
                    "method": method, "kind": kind, "mode": mode,
                    "tau_index": np.tile(np.arange(len(taus), dtype=np.int16), len(sub)),
                    "tau": np.tile(taus, len(sub)), "iou": iou.ravel()}))
    df = pd.concat(parts, ignore_index=True)
    df["correct"] = df["iou"] >= 0.5
    return df


def boxacc_by_tau(per_image: pd.DataFrame, method, kind, mode, split, delta: float) -> pd.Series:
    """BoxAcc(τ, δ) in percent indexed by τ, computed the plain way (groupby over the long table)."""
    sel = per_image[(per_image["method"] == method) & (per_image["kind"] == kind)
                    & (per_image["mode"] == mode) & (per_image["split"] == split)]
    return 100.0 * (sel["iou"] >= delta).groupby(sel["tau"]).mean()


def _chosen_and_metrics(per_image, index_test, classification) -> tuple[dict, dict]:
    chosen, metrics = {}, dict(classification)
    eval_split = {"head": "test", "body": "test_official"}
    top1_ok = set(index_test.loc[index_test["pred"] == index_test["label"], "image_id"])
    for method in METHODS:
        chosen[method] = {"oracle": {}, "val": {}}
        for kind in ("head", "body"):
            for which, split in (("oracle", eval_split[kind]), ("val", "val")):
                taus = {"v1": float(boxacc_by_tau(per_image, method, kind, "largest", split, 0.5).idxmax())}
                for d in DELTAS:
                    taus[str(d)] = float(boxacc_by_tau(per_image, method, kind, "all", split, d / 100).idxmax())
                chosen[method][which][kind] = taus
            test = eval_split[kind]
            v2 = np.mean([boxacc_by_tau(per_image, method, kind, "all", test, d / 100).max() for d in DELTAS])
            v2_val = np.mean([boxacc_by_tau(per_image, method, kind, "all", test, d / 100)
                              .loc[chosen[method]["val"][kind][str(d)]] for d in DELTAS])
            metrics[f"{method}.maxboxacc_v2_{kind}"] = float(v2)
            metrics[f"{method}.maxboxacc_v2_{kind}_val_tau"] = float(v2_val)
        head = boxacc_by_tau(per_image, method, "head", "largest", "test", 0.5)
        metrics[f"{method}.maxboxacc_head"] = float(head.max())
        fixed = float(head.index[np.argmin(np.abs(head.index - 0.2))])
        metrics[f"{method}.gt_known_loc"] = float(head.loc[fixed])
        at = per_image[(per_image["method"] == method) & (per_image["kind"] == "head")
                       & (per_image["mode"] == "largest") & (per_image["split"] == "test")
                       & (per_image["tau"] == fixed)]
        metrics[f"{method}.top1_loc"] = float(100.0 * ((at["iou"] >= 0.5) & at["image_id"].isin(top1_ok)).mean())
        for name, value in (("top5_loc", 50.0), ("pxap", 40.0), ("pxiou", 30.0), ("box_ap", 20.0)):
            metrics[f"{method}.{name}"] = value + 10 * QUALITY[method][0]
        for d in DELTAS:
            metrics[f"{method}.tau_v2_head_{d}"] = chosen[method]["oracle"]["head"][str(d)]
    return chosen, metrics


def _curves(per_image: pd.DataFrame) -> pd.DataFrame:
    parts = []
    for method in METHODS:
        for kind, split in (("head", "test"), ("body", "test_official")):
            for d in DELTAS:
                s = boxacc_by_tau(per_image, method, kind, "all", split, d / 100)
                parts.append(pd.DataFrame({"method": method, "curve": f"boxacc_{kind}_d{d}",
                                           "x": s.index.to_numpy(dtype=float), "y": s.to_numpy()}))
        recall = np.linspace(0, 1, 11)
        parts.append(pd.DataFrame({"method": method, "curve": "pr", "x": recall,
                                   "y": 1 - 0.5 * recall * (1 - QUALITY[method][0])}))
    return pd.concat(parts, ignore_index=True)


def _blob_maps(sub: pd.DataFrame, boxes: pd.DataFrame, method: str, rng) -> np.ndarray:
    """(N, 8, 8) raw maps: a blob on the head box, drowned in noise for the weaker methods."""
    yy, xx = np.mgrid[0:MAP, 0:MAP] + 0.5  # (8, 8) cell centres in map units
    heads = boxes[boxes["kind"] == "head"].set_index("image_id")
    maps = np.empty((len(sub), MAP, MAP), dtype=np.float32)
    for i, s in enumerate(sub.itertuples()):
        if s.image_id in heads.index:
            h = heads.loc[s.image_id]
            cx, cy = (h.x0 + h.x1) / 2 / s.width * MAP, (h.y0 + h.y1) / 2 / s.height * MAP
        else:
            cx = cy = MAP / 2
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 2.0)
        maps[i] = QUALITY[method][0] * blob + (1 - QUALITY[method][0]) * rng.random((MAP, MAP))
    return maps.astype(np.float16)


def _write_cams(root: Path, backbone: str, samples: pd.DataFrame, boxes: pd.DataFrame, rng):
    """data/cams/<backbone>/: per split index.parquet and <method>_gt/_pred.npy; returns (test index, maps)."""
    out = root / "data" / "cams" / backbone
    tests, maps = None, {}
    for split in SPLIT_SIZES:
        sub = samples[samples["split"] == split].sort_values("image_id").reset_index(drop=True)
        pred = np.where(rng.random(len(sub)) < 0.8, sub["label"], (sub["label"] + 1) % len(CLASSES))
        index = pd.DataFrame({"image_id": sub["image_id"], "label": sub["label"], "pred": pred,
                              "top5": [[int(p), int((p + 1) % 4)] for p in pred],
                              "top5_prob": [[0.7, 0.3]] * len(sub)})
        (out / split).mkdir(parents=True, exist_ok=True)
        index.to_parquet(out / split / "index.parquet", index=False)
        for method in METHODS:
            maps[(split, method)] = m = _blob_maps(sub, boxes, method, rng)
            np.save(out / split / f"{method}_gt.npy", m)
            np.save(out / split / f"{method}_pred.npy", m)
        tests = index if split == "test" else tests
    meta = {"methods": list(METHODS), "dtype": "float16", "image_size": EVAL_SIZE, "map_size": [MAP, MAP],
            "splits": list(SPLIT_SIZES)}
    (out / "meta.json").write_text(json.dumps(meta))
    return tests, maps


def _largest_head_ious(per_image: pd.DataFrame, samples, boxes, maps) -> pd.DataFrame:
    """Replace the head/largest IoUs by the real ones of the maps (pipeline.metrics), so the gallery's
    redrawn boxes can be checked against per_image."""
    from pipeline.metrics import best_iou_per_tau, normalize_map

    taus = np.arange(0, 1, INTERVAL)
    heads = boxes[boxes["kind"] == "head"]
    for (split, method), m in maps.items():
        if split == "test_official":
            continue
        sub = samples[samples["split"] == split].sort_values("image_id").reset_index(drop=True)
        for i, s in enumerate(sub.itertuples()):
            gt = [[int(b.x0 * EVAL_SIZE / s.width), int(b.y0 * EVAL_SIZE / s.height),
                   int(b.x1 * EVAL_SIZE / s.width), int(b.y1 * EVAL_SIZE / s.height)]
                  for b in heads[heads["image_id"] == s.image_id].itertuples()]
            iou = best_iou_per_tau(normalize_map(m[i], (EVAL_SIZE, EVAL_SIZE)), np.array(gt), taus, "largest")
            sel = ((per_image["image_id"] == s.image_id) & (per_image["method"] == method)
                   & (per_image["kind"] == "head") & (per_image["mode"] == "largest"))
            per_image.loc[sel, "iou"] = iou.astype(np.float32)
    per_image["correct"] = per_image["iou"] >= 0.5
    return per_image


def _tau_boxes(samples, boxes, maps) -> pd.DataFrame:
    """data/eval/<B>/tau_boxes.parquet as evaluate@B writes it: the test images' largest-contour boxes and
    head IoUs on the explorer's τ grid, from the metric core."""
    from pipeline.metrics import normalize_map, taus
    from pipeline.metrics.tauboxes import grid_indices, largest_boxes

    grid = taus(INTERVAL)
    keep = grid_indices(grid)
    heads = boxes[boxes["kind"] == "head"]
    sub = samples[samples["split"] == "test"].sort_values("image_id").reset_index(drop=True)
    parts = []
    for method in METHODS:
        for i, s in enumerate(sub.itertuples()):
            gt = np.array([[int(b.x0 * EVAL_SIZE / s.width), int(b.y0 * EVAL_SIZE / s.height),
                            int(b.x1 * EVAL_SIZE / s.width), int(b.y1 * EVAL_SIZE / s.height)]
                           for b in heads[heads["image_id"] == s.image_id].itertuples()])
            found, iou = largest_boxes(normalize_map(maps[("test", method)][i], (EVAL_SIZE, EVAL_SIZE)), gt, grid[keep])
            parts.append(pd.DataFrame({"image_id": s.image_id, "method": method, "tau_index": keep.astype(np.int16),
                                       "tau": grid[keep].astype(np.float32),
                                       **{k: found[:, j].astype(np.int16) for j, k in enumerate(("x0", "y0", "x1", "y1"))},
                                       "iou": iou.astype(np.float32)}))
    return pd.concat(parts, ignore_index=True)
def _pointing(samples: pd.DataFrame, shift: float, rng) -> tuple[pd.DataFrame, dict[str, float]]:
    """eval/<B>/pointing.parquet rows (better methods hit more often, with more energy inside) and their
    metrics, computed here as plain means."""
    parts, metrics = [], {}
    for method in METHODS:
        q = min(0.98, QUALITY[method][0] + shift)
        for kind, split in (("head", "test"), ("body", "test_official")):
            ids = np.sort(samples.loc[samples["split"] == split, "image_id"].to_numpy())
            hit, energy = rng.random(len(ids)) < q, np.clip(rng.beta(2, 2, len(ids)) * q * 1.2, 0, 1)
            parts.append(pd.DataFrame({"image_id": ids, "split": split, "method": method, "kind": kind,
                                       "hit": hit, "energy": energy}))
            metrics[f"{method}.pointing_game_{kind}"] = 100.0 * sum(hit) / len(ids)
            metrics[f"{method}.energy_pointing_game_{kind}"] = 100.0 * sum(energy) / len(ids)
    return pd.concat(parts, ignore_index=True), metrics


def _faithfulness(samples: pd.DataFrame, shift: float, rng) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """faithfulness/<B>/ per-image rows and mean curves on a seeded test subset, and the metrics JSON
    computed here by the definitions (PROTOCOL §6), in plain Python."""
    test = samples[samples["split"] == "test"].sort_values("image_id")
    sub = test.iloc[np.sort(rng.choice(len(test), FAITHFULNESS_IMAGES, replace=False))]
    score = rng.uniform(0.4, 0.99, len(sub))  # Y, the same for every method of an image
    rows, road_rows, curves, metrics = [], [], [], {}
    for method in METHODS:
        q = min(0.98, QUALITY[method][0] + shift)
        masked = np.clip(score * rng.uniform(0.5 + 0.4 * q, 1.0 + 0.3 * q, len(sub)), 0.01, 0.999)
        masked_pixel = np.clip(masked * rng.uniform(0.8, 1.0, len(sub)), 0.01, 0.999)
        morf, lerf = rng.normal(-0.3 * q, 0.05, ROAD_IMAGES), rng.normal(-0.1 + 0.2 * q, 0.05, ROAD_IMAGES)
        road_rows.append(pd.DataFrame({"image_id": sub["image_id"].to_numpy()[:ROAD_IMAGES], "split": "test",
                                       "method": method, "road_morf": morf, "road_lerf": lerf,
                                       "road_combined": (lerf - morf) / 2}))
        deletion = np.clip(rng.normal(0.6 - 0.45 * q, 0.08, len(sub)), 0, 1)
        insertion = np.clip(rng.normal(0.3 + 0.6 * q, 0.08, len(sub)), 0, 1)
        rows.append(pd.DataFrame({"image_id": sub["image_id"].to_numpy(), "split": "test", "method": method,
                                  "label": sub["label"].to_numpy(), "score": score, "masked_score": masked,
                                  "masked_score_pixel": masked_pixel, "deletion_auc": deletion,
                                  "insertion_auc": insertion}))
        for suffix, o_ in (("", masked), ("_pixel", masked_pixel)):
            drops = [max(0.0, y - o) / (y + 1e-7) for y, o in zip(score, o_, strict=True)]
            metrics[f"{method}.avg_drop{suffix}"] = 100.0 * sum(drops) / len(drops)
            metrics[f"{method}.increase_in_confidence{suffix}"] = 100.0 * sum(
                o > y for y, o in zip(score, o_, strict=True)) / len(sub)
        for name, v in (("road_morf", morf), ("road_lerf", lerf), ("road_combined", (lerf - morf) / 2)):
            metrics[f"{method}.{name}"] = float(v.mean())
        metrics[f"{method}.deletion_auc"] = float(deletion.mean())
        metrics[f"{method}.insertion_auc"] = float(insertion.mean())
        fraction = np.arange(STEPS + 1) / STEPS
        for name, end in (("deletion", 1 - q), ("insertion", q)):
            start = score.mean() if name == "deletion" else 1 - q
            curves.append(pd.DataFrame({"method": method, "curve": name, "fraction": fraction,
                                        "score": start + (end - start) * fraction}))
    return (pd.concat(rows, ignore_index=True), pd.concat(road_rows, ignore_index=True),
            pd.concat(curves, ignore_index=True), metrics)


def _protocols(per_image: pd.DataFrame, index_test: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """evaluate's `protocols` section and rows, from the synthetic head IoUs (every profile's box read as the
    largest contour, its v2 as all contours: synthetic stand-ins for the stage's own passes)."""
    head = per_image[per_image["kind"] == "head"]

    def cube(split: str, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = head[(head["split"] == split) & (head["mode"] == mode)]
        wide = g.pivot_table(index="image_id", columns="tau", values="iou").sort_index()
        return wide.index.to_numpy(str), np.round(wide.columns.to_numpy(np.float64), 6), wide.to_numpy(np.float64)

    ids, taus, loc = cube("test", "largest")
    _, _, every = cube("test", "all")
    _, _, val = cube("val", "largest")
    idx = index_test.set_index(index_test["image_id"].astype(str))
    ok = (idx.loc[ids, "pred"] == idx.loc[ids, "label"]).to_numpy()
    section, frames = {}, []
    for name in DEFAULT_PROFILES:
        card = PROTOCOLS.get(name)
        res = P.score_profile(card, P.ProfileInputs(taus, loc, every, ok, val), tuple(d / 100 for d in DELTAS), OTHER)
        for method in METHODS:  # the same IoUs for every method: only the report's arithmetic is under test
            section.setdefault(name, {})[method] = {k: round(v, 6) for k, v in res.values.items()}
            k = len(res.columns)
            frames.append(pd.DataFrame({"profile": name, "method": method, "image_id": np.repeat(ids, k),
                                        "tau": np.tile(taus[res.columns].astype(np.float32), len(ids)),
                                        "iou": loc[:, res.columns].astype(np.float32).ravel()}))
    return section, pd.concat(frames, ignore_index=True)


def make_report_inputs(root: Path, seed: int = 0) -> Path:
    """Write every input of the report stage under `root` (a repo-root-like folder); returns root."""
    rng = np.random.default_rng(seed)
    prepared = root / "data" / "prepared"
    prepared.mkdir(parents=True)
    samples = _samples(rng)
    samples.to_parquet(prepared / "samples.parquet", index=False)
    boxes = _boxes(samples, rng)
    boxes.to_parquet(prepared / "boxes.parquet", index=False)
    np.save(prepared / "images.npy", rng.integers(0, 256, (len(samples), CACHE, CACHE, 3), dtype=np.uint8))
    (prepared / "classes.json").write_text(json.dumps({"class_names": [c for c, _ in CLASSES],
                                                       "species": [s for _, s in CLASSES]}))
    for i, backbone in enumerate(BACKBONES):
        index_test, maps = _write_cams(root, backbone, samples, boxes, rng)
        per_image = _per_image(samples, 0.05 * (len(BACKBONES) - 1 - i), rng)
        per_image = _largest_head_ious(per_image, samples, boxes, maps)
        ev = root / "data" / "eval" / backbone
        ev.mkdir(parents=True)
        per_image.to_parquet(ev / "per_image.parquet", index=False)
        _tau_boxes(samples, boxes, maps).to_parquet(ev / "tau_boxes.parquet", index=False)
        classification = {"classification.top1": 90.0 - 5 * i, "classification.top5": 100.0}
        chosen, metrics = _chosen_and_metrics(per_image, index_test, classification)
        (ev / "chosen.json").write_text(json.dumps(chosen))
        shift = 0.05 * (len(BACKBONES) - 1 - i)
        pointing, pointing_metrics = _pointing(samples, shift, rng)
        pointing.to_parquet(ev / "pointing.parquet", index=False)
        metrics |= pointing_metrics
        faith, road, faith_curves, faith_metrics = _faithfulness(samples, shift, rng)
        (root / "data" / "faithfulness" / backbone).mkdir(parents=True)
        faith.to_parquet(root / "data" / "faithfulness" / backbone / "per_image.parquet", index=False)
        faith_curves.to_parquet(root / "data" / "faithfulness" / backbone / "curves.parquet", index=False)
        road.to_parquet(root / "data" / "faithfulness" / backbone / "road.parquet", index=False)
        for sub in ("metrics", "curves", "faithfulness"):
            (root / "reports" / sub).mkdir(parents=True, exist_ok=True)
        (root / "reports" / "faithfulness" / f"{backbone}.json").write_text(json.dumps(faith_metrics))
        section, rows = _protocols(per_image, index_test)
        rows.to_parquet(ev / C.PROTOCOLS_FILE, index=False)
        (root / "reports" / "metrics" / f"{backbone}.json").write_text(json.dumps(metrics | {C.PROTOCOLS_KEY: section}))
        _curves(per_image).to_csv(root / "reports" / "curves" / f"{backbone}.csv", index=False)
        models = root / "data" / "models" / backbone
        models.mkdir(parents=True)
        ep = np.arange(1, 4)
        pd.DataFrame({"epoch": ep, "lr": 0.01 / ep, "train_loss": 1.5 / ep, "train_acc": 0.5 + 0.1 * ep,
                      "val_loss": 1.6 / ep, "val_acc": 0.45 + 0.1 * ep}).to_csv(models / "history.csv", index=False)
    return root
