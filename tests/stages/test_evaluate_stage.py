"""The evaluate@B stage on the tiny prepared synthpets and seeded synthetic maps (no torch, no model):
every headline number against tests/reference.py, the fixed-τ Loc metrics against their definition,
the per-image table against the metrics JSON, a missing cams folder, and no torch import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from fake_cams import (
    BACKBONE,
    DELTAS,
    FIXED_TAU,
    INTERVAL,
    METHODS,
    SPLITS,
    TAUS,
    Fake,
    S,
    _params,
    _paths,
    write_cams,
)
from PIL import Image
from reference import ref_best_iou, ref_boxes_both, ref_evaluate, ref_iou, ref_normalize, ref_rescale

from pipeline import contracts as C
from pipeline.errors import CamlocError
from pipeline.stages import evaluate


@pytest.fixture(scope="module")
def fake(tmp_path_factory, prepared_dir, synthpets_params) -> Fake:
    root = tmp_path_factory.mktemp("evaluate")
    paths = _paths(root, prepared_dir)
    index, maps = write_cams(prepared_dir, paths.cams_dir(BACKBONE))
    params = _params(synthpets_params)
    summary = evaluate.run(params, paths, BACKBONE)
    assert summary.startswith(f"evaluate {BACKBONE}: {len(METHODS)} methods")
    samples = C.read_samples(prepared_dir, C.SAMPLE_COLUMNS).set_index("image_id")
    return Fake(paths, params, samples, C.read_boxes(prepared_dir), index, maps)


@pytest.fixture(scope="module")
def metrics(fake) -> dict[str, float]:
    return C.read_metrics(fake.paths.metrics_file(BACKBONE))


# --------------------------------------------------------------------------------------------------
# The reference side


def _smaps(fake: Fake, split: str, method: str, kind: str = "gt") -> dict[str, np.ndarray]:
    ids = fake.index[split]["image_id"]
    return {i: ref_normalize(m, S, S) for i, m in zip(ids, fake.maps[(split, method, kind)], strict=True)}


def _gts(fake: Fake, split: str, kind: str) -> dict[str, list[list[int]]]:
    out = {}
    for i in fake.index[split]["image_id"]:
        w, h = int(fake.samples.loc[i, "width"]), int(fake.samples.loc[i, "height"])
        rows = fake.boxes[(fake.boxes.image_id == i) & (fake.boxes.kind == kind)]
        out[i] = [ref_rescale(b, w, h, S, S) for b in rows[["x0", "y0", "x1", "y1"]].to_numpy().tolist()]
    return out


def _masks(fake: Fake, split: str) -> dict[str, np.ndarray]:
    """Trimaps resized (nearest) to S×S: 1 pet → 1, 2 background → 0, 3 boundary → 255 (ignored)."""
    out = {}
    for i in fake.index[split]["image_id"]:
        tri = np.array(Image.open(fake.samples.loc[i, "trimap_path"]))
        tri = cv2.resize(tri, (S, S), interpolation=cv2.INTER_NEAREST)
        out[i] = np.where(tri == 1, 1, np.where(tri == 2, 0, 255)).astype(np.uint8)
    return out


def _ref_curves(smaps: dict, gts: dict) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) best IoU per image and τ, largest-contour and all-contours mode, in image_id order."""
    largest, every = [], []
    for i in sorted(smaps):
        both = [ref_boxes_both(smaps[i], t) for t in TAUS]
        largest.append([max(ref_iou(b, g) for b in bl for g in gts[i]) for bl, _ in both])
        every.append([max(ref_iou(b, g) for b in ba for g in gts[i]) for _, ba in both])
    return np.array(largest), np.array(every)


def _acc(curve: np.ndarray, delta: float) -> np.ndarray:
    return (curve >= delta).sum(0) * 100.0 / len(curve)


def _close(got: float, want: float) -> None:
    assert got == pytest.approx(round(want, 6), abs=1e-9)  # the stage rounds its JSON to 6 decimals


# --------------------------------------------------------------------------------------------------
# (a) box and pixel metrics equal the reference


@pytest.mark.parametrize("method", METHODS)
def test_box_and_pixel_metrics_equal_the_reference(fake, metrics, method):
    head = ref_evaluate(_smaps(fake, "test", method), _gts(fake, "test", "head"), INTERVAL)
    _close(metrics[f"{method}.maxboxacc_head"], head["max_box_acc"]["v1"])
    _close(metrics[f"{method}.maxboxacc_v2_head"], head["max_box_acc"]["v2"])
    for d in DELTAS:
        _close(metrics[f"{method}.maxboxacc_head_d{d}"], head["max_box_acc"]["by_iou"][str(d)])
        assert metrics[f"{method}.tau_v2_head_{d}"] == pytest.approx(head["best_tau"][str(d)], abs=1e-6)

    split = C.SCORED_SPLIT["body"]
    body = ref_evaluate(_smaps(fake, split, method), _gts(fake, split, "body"), INTERVAL, _masks(fake, split))
    _close(metrics[f"{method}.maxboxacc_v2_body"], body["max_box_acc"]["v2"])
    for d in DELTAS:
        _close(metrics[f"{method}.maxboxacc_body_d{d}"], body["max_box_acc"]["by_iou"][str(d)])
    _close(metrics[f"{method}.pxap"], body["pxap"])
    _close(metrics[f"{method}.pxiou"], body["pxiou"])


@pytest.mark.parametrize("kind", C.BOX_KINDS)
def test_val_tau_scores_apply_the_holdout_tau(fake, metrics, kind):
    for method in METHODS:
        val_l, val_a = _ref_curves(_smaps(fake, C.HOLDOUT, method), _gts(fake, C.HOLDOUT, kind))
        split = C.SCORED_SPLIT[kind]
        largest, every = _ref_curves(_smaps(fake, split, method), _gts(fake, split, kind))
        v2 = np.mean([_acc(every, d / 100)[int(np.argmax(_acc(val_a, d / 100)))] for d in DELTAS])
        _close(metrics[f"{method}.maxboxacc_v2_{kind}_val_tau"], v2)
        if kind == "head":
            _close(metrics[f"{method}.maxboxacc_head_val_tau"],
                   _acc(largest, 0.5)[int(np.argmax(_acc(val_l, 0.5)))])


def test_the_synthetic_maps_rank_as_designed(metrics):
    """Sanity of the fixture itself: maps drawn on the boxes beat noise and a centred prior."""
    assert metrics["good.maxboxacc_v2_head"] > max(metrics["noise.maxboxacc_v2_head"],
                                                   metrics["center.maxboxacc_v2_head"]) + 15
    assert metrics["good.pxap"] > max(metrics["noise.pxap"], metrics["center.pxap"]) + 30
    # the fixed-τ metrics are not degenerate: some hits, some misses, and the three differ
    assert 0 < metrics["good.top1_loc"] < metrics["good.top5_loc"] < metrics["good.gt_known_loc"] < 100


# --------------------------------------------------------------------------------------------------
# (b) Loc metrics at the fixed τ, and classification


@pytest.mark.parametrize("method", METHODS)
def test_fixed_tau_loc_metrics_follow_their_definition(fake, metrics, method):
    split = C.SCORED_SPLIT["head"]
    smaps, gts, index = _smaps(fake, split, method), _gts(fake, split, "head"), fake.index[split]
    hit = np.array([ref_best_iou(smaps[i], gts[i], FIXED_TAU, multi=False) >= 0.5 for i in index["image_id"]])
    top1 = index["pred"].to_numpy() == index["label"].to_numpy()
    top5 = np.array([lab in t for lab, t in zip(index["label"], index["top5"], strict=True)])
    assert 0 < top1.sum() < len(top1) and (top5 & ~top1).any() and not top5.all()  # the fixture covers all cases
    _close(metrics[f"{method}.gt_known_loc"], hit.mean() * 100)
    _close(metrics[f"{method}.top1_loc"], (hit & top1).mean() * 100)
    _close(metrics[f"{method}.top5_loc"], (hit & top5).mean() * 100)


def test_classification_on_the_official_test_split(fake, metrics):
    index = fake.index[C.PIXEL_SPLIT]
    _close(metrics[f"{C.CLASSIFICATION}.top1"], (index["pred"] == index["label"]).mean() * 100)
    top5 = [lab in t for lab, t in zip(index["label"], index["top5"], strict=True)]
    _close(metrics[f"{C.CLASSIFICATION}.top5"], np.mean(top5) * 100)


def test_metric_keys_are_contract_names(metrics):
    names = {k.split(".", 1)[1] for k in metrics if not k.startswith(f"{C.CLASSIFICATION}.")}
    by_delta = {f"maxboxacc_{k}_d{d}" for k in C.BOX_KINDS for d in DELTAS}
    tau = {f"tau_v2_{k}_{d}" for k in C.BOX_KINDS for d in DELTAS}
    assert names - by_delta - tau == set(C.METRIC_NAMES)
    assert {k.split(".", 1)[0] for k in metrics} == {*METHODS, C.CLASSIFICATION}


# --------------------------------------------------------------------------------------------------
# (c) the written eval folder


def test_eval_folder_layout(fake):
    eval_dir = fake.paths.eval_dir(BACKBONE)
    assert sorted(p.name for p in eval_dir.iterdir()) == sorted(C.EVAL_FILES)
    per_image = pd.read_parquet(eval_dir / "per_image.parquet")
    assert tuple(per_image.columns) == C.PER_IMAGE_COLUMNS
    assert set(per_image["method"]) == set(METHODS)
    assert set(per_image["mode"]) == set(C.CONTOUR_MODES)
    pairs = set(zip(per_image["split"], per_image["kind"], strict=True))
    assert pairs == {("val", "head"), ("val", "body"), ("test", "head"), ("test_official", "body")}
    assert (per_image["correct"] == (per_image["iou"] >= 0.5)).all()
    assert np.allclose(per_image["tau"], TAUS[per_image["tau_index"]])
    assert len(per_image) == len(METHODS) * len(C.CONTOUR_MODES) * len(TAUS) * sum(
        len(fake.index[s]) * len(C.box_kinds_of(s)) for s in SPLITS)
    pixels = pd.read_parquet(eval_dir / "pixels.parquet")
    assert tuple(pixels.columns) == C.PIXEL_COLUMNS and set(pixels["method"]) == set(METHODS)
    curves = C.read_curves(fake.paths.curves_file(BACKBONE))
    assert tuple(curves.columns) == C.CURVE_COLUMNS
    assert {"pr", "boxacc_head_d50", "boxacc_body_d70"} <= set(curves["curve"])


def test_per_image_ious_at_the_chosen_tau_reproduce_the_metrics(fake, metrics):
    eval_dir = fake.paths.eval_dir(BACKBONE)
    per_image = C.read_per_image(eval_dir)
    chosen = C.read_chosen(eval_dir)
    assert set(chosen) == set(METHODS)

    def acc(method, split, kind, mode, tau, delta):
        rows = per_image[(per_image.method == method) & (per_image.split == split) & (per_image.kind == kind)
                         & (per_image["mode"] == mode) & (per_image.tau_index == int(round(tau / INTERVAL)))]
        assert len(rows) == len(fake.index[split]) and np.allclose(rows["tau"], tau)
        return (rows["iou"].to_numpy() >= delta).mean() * 100

    for method in METHODS:
        for kind, split in C.SCORED_SPLIT.items():
            oracle, val = chosen[method]["oracle"][kind], chosen[method]["val"][kind]
            assert set(oracle) == {str(d) for d in DELTAS} | ({"v1"} if kind == "head" else set())
            by_delta = [acc(method, split, kind, "all", oracle[str(d)], d / 100) for d in DELTAS]
            for d, a in zip(DELTAS, by_delta, strict=True):
                _close(metrics[f"{method}.maxboxacc_{kind}_d{d}"], a)
                assert metrics[f"{method}.tau_v2_{kind}_{d}"] == pytest.approx(oracle[str(d)], abs=1e-6)
            _close(metrics[f"{method}.maxboxacc_v2_{kind}"], np.mean(by_delta))
            _close(metrics[f"{method}.maxboxacc_v2_{kind}_val_tau"],
                   np.mean([acc(method, split, kind, "all", val[str(d)], d / 100) for d in DELTAS]))
            if kind == "head":
                _close(metrics[f"{method}.maxboxacc_head"], acc(method, split, kind, "largest", oracle["v1"], 0.5))
                _close(metrics[f"{method}.maxboxacc_head_val_tau"],
                       acc(method, split, kind, "largest", val["v1"], 0.5))


def test_tau_boxes_are_the_reference_largest_boxes_and_per_image_ious(fake):
    """The explorer's boxes (data/eval/B/tau_boxes.parquet) are the reference evaluator's largest-contour
    boxes at each τ, and their IoUs the per-image table's largest-mode head IoUs."""
    eval_dir = fake.paths.eval_dir(BACKBONE)
    boxes = C.read_tau_boxes(eval_dir)
    assert tuple(boxes.columns) == C.TAU_BOXES_COLUMNS
    assert len(boxes) == len(METHODS) * len(fake.index["test"]) * len(TAUS)  # interval 0.05: the whole grid
    per_image = C.read_per_image(eval_dir)
    head = per_image[(per_image.split == "test") & (per_image.kind == "head") & (per_image["mode"] == "largest")]
    merged = boxes.merge(head, on=["image_id", "method", "tau_index"], suffixes=("", "_pi"))
    assert len(merged) == len(boxes)
    assert np.array_equal(merged["iou"].to_numpy(), merged["iou_pi"].to_numpy())
    for method in METHODS:
        smaps = _smaps(fake, "test", method)
        got = boxes[boxes.method == method].sort_values(["image_id", "tau_index"])
        want = [ref_boxes_both(smaps[i], t)[0][0] for i in sorted(smaps) for t in TAUS]
        assert got[["x0", "y0", "x1", "y1"]].to_numpy().tolist() == want, method


# --------------------------------------------------------------------------------------------------
# (d) missing input, (e) no torch


def test_missing_cams_meta_names_the_file_and_the_stage(tmp_path, prepared_dir, synthpets_params):
    paths = _paths(tmp_path, prepared_dir)
    paths.cams_dir(BACKBONE).mkdir(parents=True)
    with pytest.raises(CamlocError) as e:
        evaluate.run(_params(synthpets_params), paths, BACKBONE)
    assert str(paths.cams_dir(BACKBONE) / "meta.json") in str(e.value)
    assert f"cams@{BACKBONE}" in str(e.value)
    assert not paths.eval_dir(BACKBONE).exists() and not paths.metrics_file(BACKBONE).exists()


def test_the_stage_runs_without_importing_torch(fake, tmp_path):
    """A fresh interpreter runs evaluate@B on the same maps: torch is never imported, same JSON bytes."""
    out = _paths(tmp_path, fake.paths.prepared)
    out = dataclasses.replace(out, cams=fake.paths.cams)
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from pipeline.contracts import Paths
        from pipeline.params import BackboneParams, EvaluateParams, Params
        from pipeline.stages.evaluate import run
        paths = Paths(prepared=Path({str(out.prepared)!r}), cams=Path({str(out.cams)!r}),
                      eval=Path({str(out.eval)!r}), metrics=Path({str(out.metrics)!r}),
                      curves=Path({str(out.curves)!r}))
        params = Params(backbones={{{BACKBONE!r}: BackboneParams(image_size={S})}},
                        evaluate=EvaluateParams(interval={INTERVAL}, fixed_tau={FIXED_TAU}))
        run(params, paths, {BACKBONE!r})
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded[:5]
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert res.returncode == 0, res.stderr[-3000:]
    assert out.metrics_file(BACKBONE).read_bytes() == fake.paths.metrics_file(BACKBONE).read_bytes()


# --------------------------------------------------------------------------------------------------
# pointing game and energy pointing game against a plain per-pixel reading of PROTOCOL §6


def _ref_pointing(smap: np.ndarray, gts: list[list[int]], tolerance: float) -> tuple[bool, float]:
    best, point = -1.0, (0, 0)
    for y in range(smap.shape[0]):  # row-major scan: a later tie never replaces the first maximum
        for x in range(smap.shape[1]):
            if smap[y, x] > best:
                best, point = smap[y, x], (y, x)
    y, x = point
    dist = min(((max(x0 - x, 0, x - x1)) ** 2 + (max(y0 - y, 0, y - y1)) ** 2) ** 0.5 for x0, y0, x1, y1 in gts)
    inside = sum(smap[yy, xx] for yy in range(smap.shape[0]) for xx in range(smap.shape[1])
                 if any(x0 <= xx <= x1 and y0 <= yy <= y1 for x0, y0, x1, y1 in gts))
    total = smap.sum()
    return dist <= tolerance, (inside / total if total > 0 else 0.0)


@pytest.mark.parametrize("kind", ["head", "body"])
def test_pointing_metrics_match_the_reference_and_the_per_image_table(fake, metrics, kind):
    split = C.SCORED_SPLIT[kind]
    table = C.read_pointing(fake.paths.eval_dir(BACKBONE))
    tolerance = fake.params.evaluate.pointing_tolerance
    for method in METHODS:
        smaps, gts = _smaps(fake, split, method), _gts(fake, split, kind)
        ref = {i: _ref_pointing(smaps[i], gts[i], tolerance) for i in smaps}
        rows = table[(table["method"] == method) & (table["kind"] == kind)].set_index("image_id")
        assert set(rows["split"]) == {split} and sorted(rows.index) == sorted(ref)
        for i, (hit, energy) in ref.items():
            assert bool(rows.loc[i, "hit"]) == hit, (method, i)
            assert rows.loc[i, "energy"] == pytest.approx(energy, abs=1e-9)
        _close(metrics[f"{method}.pointing_game_{kind}"], 100 * np.mean([h for h, _ in ref.values()]))
        _close(metrics[f"{method}.energy_pointing_game_{kind}"], 100 * np.mean([e for _, e in ref.values()]))
    # the planted order shows: the good map points at the head more often than the noise map
    if kind == "head":
        assert metrics["good.pointing_game_head"] > metrics["noise.pointing_game_head"]
