"""The reference-layout datasets (`cub`, `wsol`) on generated twins with known truth: the CUB download
through a local HTTP server, the metadata parsers' errors (file:line), prepare's reported skips, and
prepare → evaluate scored against tests/reference.py on seeded maps (boxes: CUB-like and ILSVRC-like;
masks: OpenImages-like with ignore masks)."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reference import ref_evaluate, ref_normalize, ref_rescale
from test_archives import Server, _spec
from twins import make_boxes_twin, make_cub_tree, make_masks_twin, reference_mask

from pipeline import contracts as C
from pipeline.datasets import cub
from pipeline.datasets.archives import fetch_cub
from pipeline.datasets.wsol import fetch_wsol, read_metadata
from pipeline.errors import CamlocError, ParamsError
from pipeline.metrics.masks import instance_mask
from pipeline.params import (
    BackboneParams,
    CubParams,
    DatasetParams,
    EvaluateParams,
    Params,
    PrepareParams,
    WsolDatasetParams,
)
from pipeline.stages import evaluate, prepare

S, H, W, INTERVAL = 32, 8, 8, 0.05


def _params(name: str, metadata=None, root=None, mask_root=None, url="http://127.0.0.1:9/x") -> Params:
    return Params(dataset=DatasetParams(name=name, cub=CubParams(url=url, val_per_class=2),
                                        wsol=WsolDatasetParams(metadata, root, mask_root)),
                  prepare=PrepareParams(cache_size=32, workers=1),
                  backbones={"fake": BackboneParams(image_size=S)},
                  evaluate=EvaluateParams(interval=INTERVAL))


# --------------------------------------------------------------------------------------------------
# CUB: the official tree, its boxes in the reference convention, the download


@pytest.fixture(scope="module")
def cub_twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("cub")
    return out, make_cub_tree(out / "src", n_classes=3, train_per_class=6, test_per_class=4)


def test_cub_boxes_follow_the_reference_rows(tmp_path):
    """bounding_boxes.txt x y w h → x, y, x+w, y+h: the reference's metadata/CUB/test/localization.txt rows."""
    tree = tmp_path / cub.TREE
    (tree / "images").mkdir(parents=True)
    rows = {"001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg": ("60.0 27.0 325.0 304.0", (60, 27, 385, 331)),
            "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg": ("14.0 112.0 388.0 186.0", (14, 112, 402, 298)),
            "001.Black_footed_Albatross/Black_Footed_Albatross_0005_796090.jpg": ("1.0 2.0 498.0 286.0", (1, 2, 499, 288))}
    ids = list(rows) + [f"001.Black_footed_Albatross/extra_{k}.jpg" for k in range(3)]
    (tree / "images.txt").write_text("".join(f"{n + 1} {i}\n" for n, i in enumerate(ids)))
    (tree / "image_class_labels.txt").write_text("".join(f"{n + 1} 1\n" for n in range(len(ids))))
    (tree / "train_test_split.txt").write_text("".join(f"{n + 1} {0 if n < 3 else 1}\n" for n in range(len(ids))))
    (tree / "bounding_boxes.txt").write_text("".join(f"{n + 1} {rows[i][0] if i in rows else '1.0 1.0 5.0 5.0'}\n"
                                                     for n, i in enumerate(ids)))
    (tree / "classes.txt").write_text("1 001.Black_footed_Albatross\n")
    index = cub.read_cub(tmp_path, val_per_class=1, seed=0)
    assert index.splits["test"].boxes == {i: [b] for i, (_, b) in rows.items()}
    assert len(index.splits["val"].ids) == 1 and len(index.splits["train"].ids) == 2


def test_cub_splits_carve_a_seeded_val_from_train(cub_twin):
    out, twin = cub_twin
    a, b = cub.read_cub(out / "src", 2, seed=0), cub.read_cub(out / "src", 2, seed=0)
    assert a.splits["val"].ids == b.splits["val"].ids
    assert sorted(a.splits["test"].ids) == sorted(twin.splits["test"])
    assert sorted(a.splits["train"].ids + a.splits["val"].ids) == sorted(twin.splits["train"])
    assert not set(a.splits["train"].ids) & set(a.splits["val"].ids)
    per_class = pd.Series([twin.labels[i] for i in a.splits["val"].ids]).value_counts()
    assert per_class.to_dict() == {0: 2, 1: 2, 2: 2}
    assert a.splits["val"].boxes == {i: twin.boxes[i] for i in a.splits["val"].ids}
    assert cub.read_cub(out / "src", 2, seed=1).splits["val"].ids != a.splits["val"].ids
    with pytest.raises(ParamsError, match="dataset.cub.val_per_class"):
        cub.read_cub(out / "src", 6, seed=0)


def test_cub_tree_damage_names_file_and_line(tmp_path, cub_twin):
    out, _ = cub_twin
    import shutil

    shutil.copytree(out / "src" / cub.TREE, tmp_path / cub.TREE)
    f = tmp_path / cub.TREE / "bounding_boxes.txt"
    lines = f.read_text().splitlines()
    lines[4] = "5 1.0 2.0 x 4.0"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(CamlocError, match=r"bounding_boxes.txt:5: 'x' is not a number"):
        cub.read_cub(tmp_path, 2, 0)


def _tgz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in sorted(p.name for p in folder.iterdir()):
            tf.add(folder / name, arcname=name)
    return buf.getvalue()


def test_cub_download_resumes_verifies_and_extracts(tmp_path, cub_twin):
    out, twin = cub_twin
    data = _tgz(out / "src")
    server = Server({cub.ARCHIVE: data})
    try:
        server.cut_once.add(cub.ARCHIVE)  # promised everything, sent half: resumed with a Range request
        params = _params("cub", url=f"{server.url}/data/{cub.ARCHIVE}")
        summary = fetch_cub(params, tmp_path / "raw", spec=_spec(data), downloads=tmp_path / "dl", backoff=0)
        assert "verified" in summary
        assert any(r is not None for _, r in server.requests), "the second request resumed with Range"
        n = len(list((tmp_path / "raw" / cub.TREE / "images").rglob("*.jpg")))
        assert n == len(twin.labels)
        bad = dataclasses.replace(_spec(data), md5="0" * 32)
        with pytest.raises(CamlocError, match="MD5"):
            fetch_cub(params, tmp_path / "raw2", spec=bad, downloads=tmp_path / "dl2", backoff=0)
    finally:
        server.close()
    # offline: the verified archive from a folder
    fetch_cub(params, tmp_path / "raw3", tmp_path / "dl", spec=_spec(data), downloads=tmp_path / "dl3")
    assert (tmp_path / "raw3" / cub.TREE / "bounding_boxes.txt").is_file()


# --------------------------------------------------------------------------------------------------
# wsol metadata: every bad row is an error naming file and line; missing images are reported skips


@pytest.fixture(scope="module")
def boxes_twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("ilsvrc")
    return out, make_boxes_twin(out / "images", out / "meta")


def _copy_meta(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("split,file,line,text,match", [
    ("test", "localization.txt", 2, "val/x.JPEG,1,2,3,4", r"localization.txt:2: val/x.JPEG is not listed in"),
    ("test", "localization.txt", 1, "{id},5,5,2,9", r"localization.txt:1: box \(5, 5, 2, 9\) has x1 < x0"),
    ("test", "localization.txt", 1, "{id},1,2,3", r"localization.txt:1: expected '<id>,<x0>"),
    ("val", "class_labels.txt", 1, "{id},7", r"val/class_labels.txt: label 7 of .* is out of range"),
    ("val", "class_labels.txt", 1, "{id},-1", r"class_labels.txt:1: label -1 is below 0"),
    ("test", "image_sizes.txt", 1, "{id},0,5", r"image_sizes.txt:1: width 0 is below 1"),
    ("test", "image_ids.txt", 2, "{id}", r"image_ids.txt:2: .* is listed twice"),
    ("test", "image_ids.txt", 1, "../secret.JPEG", r"image_ids.txt:1: '../secret.JPEG' is not a path relative"),
    ("val", "localization.txt", 2, "{id},a.png,", r"localization.txt:2: a masks row in a file of boxes rows"),
])
def test_bad_metadata_rows_name_file_and_line(tmp_path, boxes_twin, split, file, line, text, match):
    out, twin = boxes_twin
    meta = _copy_meta(out / "meta", tmp_path / "meta")
    f = meta / split / file
    lines = f.read_text().splitlines()
    first_id = lines[0].split(",")[0]
    lines[line - 1] = text.format(id=first_id)
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(CamlocError, match=match):
        read_metadata(meta, out / "images")


def test_missing_image_and_wrong_size_are_reported_skips(tmp_path, boxes_twin):
    out, twin = boxes_twin
    meta = _copy_meta(out / "meta", tmp_path / "meta")
    ids = (meta / "test" / "image_ids.txt").read_text().splitlines()
    with open(meta / "test" / "image_ids.txt", "a") as f:
        f.write("val/ILSVRC2012_val_99999999.JPEG\n")
    with open(meta / "test" / "class_labels.txt", "a") as f:
        f.write("val/ILSVRC2012_val_99999999.JPEG,1\n")
    with open(meta / "test" / "localization.txt", "a") as f:
        f.write("val/ILSVRC2012_val_99999999.JPEG,1,1,5,5\n")
    sizes = (meta / "test" / "image_sizes.txt").read_text().splitlines()
    sizes[0] = f"{ids[0]},999,999"
    (meta / "test" / "image_sizes.txt").write_text("\n".join(sizes) + "\n")
    fetch_wsol(meta, out / "images", None, tmp_path / "raw")
    prepare.run(_params("wsol"), C.Paths(raw=tmp_path / "raw", prepared=tmp_path / "prep"))
    report = json.loads((tmp_path / "prep" / "report.json").read_text())
    reasons = [s["reason"] for s in report["skipped"]]
    assert any("missing" in r and f"test/image_ids.txt:{len(ids) + 1}" in r for r in reasons), reasons
    assert any("image_sizes.txt says 999x999" in r for r in reasons), reasons
    kept = C.read_samples(tmp_path / "prep")
    assert len(kept[kept.split == "test"]) == len(ids) - 1


def test_instance_mask_equals_the_reference_get_mask(tmp_path):
    out = tmp_path
    twin = make_masks_twin(out / "images", out / "masks", out / "meta", per_class={"train": 1, "val": 1, "test": 2})
    for rel in twin.splits["test"]:
        want = reference_mask(out / "masks", twin.masks[rel], twin.ignore[rel], S)
        got = instance_mask(tuple(str(out / "masks" / m) for m in twin.masks[rel]), str(out / "masks" / twin.ignore[rel]), S)
        np.testing.assert_array_equal(got, want)
        assert (got == 255).any() and (got == 1).any()


# --------------------------------------------------------------------------------------------------
# prepare → evaluate on each twin, against tests/reference.py


def _blob(box, rng) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    x0, y0, x1, y1 = np.asarray(box, float) * W / S
    jx, jy = rng.uniform(-0.3, 0.3, 2) * (x1 - x0 + 1, y1 - y0 + 1)
    cx, cy, sx, sy = (x0 + x1) / 2 + jx, (y0 + y1) / 2 + jy, max(0.6, (x1 - x0) / 3), max(0.6, (y1 - y0) / 3)
    m = np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)
    return m + 0.6 * np.exp(-(((xx - rng.uniform(0, W)) / 0.8) ** 2 + ((yy - rng.uniform(0, H)) / 0.8) ** 2) / 2)


def _write_cams(prepared: Path, cams: Path, gt_s: dict[str, list]) -> None:
    """Seeded raw maps near each image's truth (in the S frame) for val and test, as the cams stage writes."""
    samples = C.read_samples(prepared, C.SAMPLE_COLUMNS)
    rng = np.random.default_rng(0)
    for split in ("val", "test"):
        rows = samples[samples.split == split]
        (cams / split).mkdir(parents=True)
        labels = rows["label"].to_numpy()
        pd.DataFrame({"image_id": rows.image_id.to_numpy(), "label": labels, "pred": labels,
                      "top5": [[int(x)] for x in labels], "top5_prob": [[0.9]] * len(rows)}
                     ).to_parquet(cams / split / "index.parquet", index=False)
        maps = np.stack([sum(_blob(b, rng) for b in gt_s[i]) for i in rows.image_id]).astype(np.float32)
        for kind in ("gt", "pred"):
            np.save(C.map_file(cams / split, "cam", kind), maps)
    (cams / "meta.json").write_text(json.dumps({"methods": ["cam"], "image_size": S, "splits": ["val", "test"]}))


def _prepare_and_evaluate(tmp_path, params, raw, gt_s) -> tuple[dict, pd.DataFrame]:
    paths = C.Paths(raw=raw, prepared=tmp_path / "prep", cams=tmp_path / "cams", eval=tmp_path / "eval",
                    metrics=tmp_path / "metrics", curves=tmp_path / "curves")
    prepare.run(params, paths)
    _write_cams(paths.prepared, paths.cams_dir("fake"), gt_s)
    evaluate.run(params, paths, "fake")
    index = C.read_cams_index(paths.cams_dir("fake"), "test")
    maps = C.open_maps(paths.cams_dir("fake"), "test", "cam")
    smaps = {i: ref_normalize(m, S, S) for i, m in zip(index.image_id, maps, strict=True)}
    return C.read_metrics(paths.metrics_file("fake")), smaps


def _truth_in_frame(twin) -> dict[str, list]:
    return {i: [ref_rescale(b, *twin.sizes[i], S, S) for b in bs] for i, bs in twin.boxes.items()}


def _check_boxes(metrics: dict, smaps: dict, gts: dict) -> None:
    ref = ref_evaluate(smaps, {i: gts[i] for i in smaps}, INTERVAL)
    assert metrics["cam.maxboxacc_object"] == pytest.approx(round(ref["max_box_acc"]["v1"], 6), abs=1e-9)
    assert metrics["cam.maxboxacc_v2_object"] == pytest.approx(round(ref["max_box_acc"]["v2"], 6), abs=1e-9)
    assert 0 < metrics["cam.maxboxacc_v2_object"] < 100
    assert metrics["cam.pointing_game_object"] == pytest.approx(ref["pointing_game"], abs=1e-6)
    assert metrics["cam.energy_pointing_game_object"] == pytest.approx(ref["energy_pointing_game"], abs=1e-6)
    assert "cam.maxboxacc_v2_head" not in metrics and "cam.pxap" not in metrics
    names = {k.split(".", 1)[1] for k in metrics if k.startswith("cam.")}
    extra = {f"{p}_object_{d}" for p in ("maxboxacc", "tau_v2") for d in ("d30", "d50", "d70", "30", "50", "70")}
    assert names - extra == set(C.OBJECT_METRIC_NAMES) - {"pxap", "pxiou"}


def test_cub_prepare_evaluate_equals_the_reference(tmp_path, cub_twin):
    out, twin = cub_twin
    gts = _truth_in_frame(twin)
    metrics, smaps = _prepare_and_evaluate(tmp_path, _params("cub"), out / "src", gts)
    assert set(smaps) == set(twin.splits["test"])
    _check_boxes(metrics, smaps, gts)
    layout = C.read_layout(tmp_path / "prep")
    assert layout.scored_split == {"object": "test"} and layout.pixel_split is None


def test_ilsvrc_like_boxes_prepare_evaluate_equals_the_reference(tmp_path, boxes_twin):
    out, twin = boxes_twin
    assert max(len(b) for b in twin.boxes.values()) > 1  # several boxes per image
    fetch_wsol(out / "meta", out / "images", None, tmp_path / "raw")
    gts = _truth_in_frame(twin)
    metrics, smaps = _prepare_and_evaluate(tmp_path, _params("wsol"), tmp_path / "raw", gts)
    _check_boxes(metrics, smaps, gts)


def test_openimages_like_masks_prepare_evaluate_equals_the_reference(tmp_path):
    out = tmp_path / "oi"
    twin = make_masks_twin(out / "images", out / "masks", out / "meta")
    fetch_wsol(out / "meta", out / "images", out / "masks", tmp_path / "raw")
    gts = {}
    for rel, files in twin.masks.items():  # each mask's extent in the S frame, to place the seeded blobs
        boxes = []
        for f in files:
            m = reference_mask(out / "masks", [f], twin.ignore[rel], S) == 1
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max(), ys.max()] if len(xs) else [0, 0, S - 1, S - 1])
        gts[rel] = boxes
    metrics, smaps = _prepare_and_evaluate(tmp_path, _params("wsol"), tmp_path / "raw", gts)
    masks = {i: reference_mask(out / "masks", twin.masks[i], twin.ignore[i], S) for i in smaps}
    ref = ref_evaluate(smaps, {i: [[0, 0, 1, 1]] for i in smaps}, INTERVAL, masks)
    assert metrics["cam.pxap"] == pytest.approx(round(ref["pxap"], 6), abs=1e-9)
    assert metrics["cam.pxiou"] == pytest.approx(round(ref["pxiou"], 6), abs=1e-9)
    assert 0 < metrics["cam.pxap"] < 100
    assert not any("maxboxacc" in k for k in metrics)
    assert C.read_layout(tmp_path / "prep").pixel_gt == "masks"


def test_wsol_params_name_the_missing_key(tmp_path):
    from pipeline.params import load_params

    f = tmp_path / "params.yaml"
    f.write_text("dataset:\n  name: wsol\n  wsol:\n    metadata: /m\nbackbones:\n  tiny_gap_cnn: {}\n")
    with pytest.raises(ParamsError, match=r"dataset\.wsol\.root"):
        load_params(f)
    f.write_text("dataset:\n  name: cub\n  cub:\n    val_per_class: 0\nbackbones:\n  tiny_gap_cnn: {}\n")
    with pytest.raises(ParamsError, match=r"dataset\.cub\.val_per_class"):
        load_params(f)
    f.write_text("dataset:\n  name: wsol\n  wsol:\n    metadata: /m\n    roots: /r\nbackbones:\n  tiny_gap_cnn: {}\n")
    with pytest.raises(ParamsError, match=r"dataset\.wsol\.roots.*did you mean 'root'"):
        load_params(f)
