"""prepare on a tiny synthpets tree: schema, splits, boxes, cache and the handling of every quirk."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.contracts import BOX_COLUMNS, SAMPLE_COLUMNS, SPLITS, Paths
from pipeline.datasets import pets
from pipeline.datasets.synthpets import plan
from pipeline.errors import CamlocError, ParamsError
from pipeline.params import DatasetParams, SplitParams
from pipeline.stages.prepare import run


@pytest.fixture(scope="module")
def prepared(prepared_dir):
    samples = pd.read_parquet(prepared_dir / "samples.parquet")
    boxes = pd.read_parquet(prepared_dir / "boxes.parquet")
    report = json.loads((prepared_dir / "report.json").read_text())
    return samples, boxes, report


def test_schema_and_order(prepared, prepared_dir):
    samples, boxes, _ = prepared
    assert tuple(samples.columns) == SAMPLE_COLUMNS and tuple(boxes.columns) == BOX_COLUMNS
    order = samples["split"].map(SPLITS.index).tolist()
    assert order == sorted(order)
    for _, grp in samples.groupby("split"):
        assert grp["image_id"].is_monotonic_increasing
    assert samples["cache_index"].tolist() == list(range(len(samples)))
    classes = json.loads((prepared_dir / "classes.json").read_text())
    assert classes["class_names"] == sorted(classes["class_names"], key=str.lower)
    for _, r in samples.iterrows():
        assert classes["class_names"][r.label] == r.class_name == pets.breed_of(r.image_id)
        assert classes["species"][r.label] == r.species


def test_splits_stratified_disjoint_and_boxed(prepared, synthpets_raw):
    samples, boxes, _ = prepared
    assert not samples["image_id"].duplicated().any()
    test_ids = {e.image_id for e in pets.read_list(synthpets_raw / "annotations" / "test.txt")}
    assert set(samples.loc[samples.split == "test_official", "image_id"]) == test_ids
    per = samples.groupby(["split", "label"]).size().unstack(fill_value=0)
    assert (per.loc["val"] == 2).all() and (per.loc["test"] == 3).all() and (per.loc["train"] >= 6).all()
    heads = set(boxes.loc[boxes.kind == "head", "image_id"])
    assert set(samples.loc[samples.split.isin(["val", "test"]), "image_id"]) <= heads
    assert not heads & test_ids  # head boxes exist for trainval only


def test_boxes_inside_images_and_match_sources(prepared, synthpets_raw):
    samples, boxes, _ = prepared
    b = boxes.merge(samples[["image_id", "width", "height"]], on="image_id")
    assert ((0 <= b.x0) & (b.x0 <= b.x1) & (b.x1 <= b.width - 1)).all()
    assert ((0 <= b.y0) & (b.y0 <= b.y1) & (b.y1 <= b.height - 1)).all()
    assert set(b.kind) == {"head", "body"}
    row = b[b.kind == "head"].iloc[0]
    xml = (synthpets_raw / "annotations" / "xmls" / f"{row.image_id}.xml").read_text()
    assert f"<xmin>{row.x0 + 1}</xmin>" in xml and f"<ymax>{row.y1 + 1}</ymax>" in xml  # 1-based → 0-based
    body = b[b.kind == "body"].iloc[0]
    tri = np.asarray(Image.open(synthpets_raw / "annotations" / "trimaps" / f"{body.image_id}.png"))
    ys, xs = np.nonzero(tri != 2)
    assert (body.x0, body.y0, body.x1, body.y1) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_cache_rows_follow_cache_index(prepared, prepared_dir):
    samples, _, _ = prepared
    cache = np.load(prepared_dir / "images.npy", mmap_mode="r")
    assert cache.dtype == np.uint8 and cache.shape == (len(samples), 64, 64, 3)
    for _, r in samples.sample(5, random_state=0).iterrows():
        rgb = np.asarray(Image.open(r.path).convert("RGB"))
        assert rgb.shape[:2] == (r.height, r.width)
        expect = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
        assert np.array_equal(cache[r.cache_index], expect)


def test_every_planted_quirk_reported(prepared, synthpets_params):
    samples, _, report = prepared
    quirk = {it.quirk: it.image_id for it in plan(synthpets_params.synthpets) if it.quirk}
    repaired = {(r["file"].rsplit("/", 1)[-1][:-4], r["reason"].split()[0]) for r in report["repaired"]}
    assert (quirk["png_as_jpg"], "PNG") in repaired and (quirk["gif_as_jpg"], "GIF") in repaired
    assert (quirk["grayscale"], "L") in repaired and (quirk["cmyk"], "CMYK") in repaired
    assert (quirk["truncated"], "truncated") in repaired
    assert set(quirk.values()) - {quirk["no_xml"]} <= set(samples.image_id)  # repaired, not dropped
    skipped = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in report["skipped"]}
    assert "no head-box xml" in skipped[f"{quirk['no_xml']}.xml"]
    assert quirk["no_xml"] in set(samples.loc[samples.split == "train", "image_id"])
    assert any(f.endswith(".mat") for f in skipped) and report["appledouble_ignored"] == 3
    unlisted = [it.image_id for it in plan(synthpets_params.synthpets) if it.split is None]
    assert "no split" in skipped[f"{unlisted[0]}.jpg"] and unlisted[0] not in set(samples.image_id)
    assert not samples.image_id.str.startswith("._").any()
    assert report["counts"]["total"] == len(samples)


def test_split_larger_than_a_class_names_the_key(synthpets_raw, tmp_path, tiny_params):
    paths = Paths(raw=synthpets_raw, prepared=tmp_path / "p")
    with pytest.raises(ParamsError, match="split.test_per_class"):
        run(tiny_params(split=SplitParams(val_per_class=2, test_per_class=50)), paths)
    with pytest.raises(ParamsError, match="split.val_per_class"):
        run(tiny_params(split=SplitParams(val_per_class=40, test_per_class=1)), paths)
    assert not (tmp_path / "p").exists()


@pytest.fixture
def raw_copy(synthpets_raw, tmp_path):
    dst = tmp_path / "raw"
    shutil.copytree(synthpets_raw, dst)
    return dst


def test_bad_images_skipped_and_reported(raw_copy, tmp_path, tiny_params):
    ids = [e.image_id for e in pets.read_list(raw_copy / "annotations" / "test.txt")]
    (raw_copy / "images" / f"{ids[0]}.jpg").write_bytes(b"")
    (raw_copy / "images" / f"{ids[1]}.jpg").write_bytes(b"<html>not found</html>")
    (raw_copy / "images" / f"{ids[2]}.jpg").unlink()
    Image.new("RGB", (3000, 2000)).save(raw_copy / "images" / f"{ids[3]}.jpg")
    params = tiny_params(dataset=DatasetParams(max_image_pixels=1_000_000))
    run(params, Paths(raw=raw_copy, prepared=tmp_path / "p"))
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    reasons = {r["file"].rsplit("/", 1)[-1][:-4]: r["reason"] for r in report["skipped"]}
    assert "empty" in reasons[ids[0]] and "not a decodable image" in reasons[ids[1]]
    assert "missing" in reasons[ids[2]] and "max_image_pixels" in reasons[ids[3]]
    samples = pd.read_parquet(tmp_path / "p" / "samples.parquet")
    assert not set(ids[:4]) & set(samples.image_id)
    assert report["counts"]["per_split"]["test_official"] == len(ids) - 4


def test_hostile_xml_is_not_expanded(raw_copy, tmp_path, tiny_params):
    xml = sorted((raw_copy / "annotations" / "xmls").glob("[!.]*.xml"))[0]
    xml.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">'
                   '<!ENTITY y "&x;&x;&x;&x;&x;&x;&x;&x;&x;&x;">]><annotation>&y;</annotation>')
    run(tiny_params(split=SplitParams(val_per_class=1, test_per_class=1)), Paths(raw=raw_copy, prepared=tmp_path / "p"))
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert any(r["file"].endswith(xml.name) and "refused unsafe XML" in r["reason"] for r in report["skipped"])


def test_missing_split_file_and_foreign_out_dir(raw_copy, tmp_path, tiny_params):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(CamlocError, match="notes.txt"):
        run(tiny_params(), Paths(raw=raw_copy, prepared=out))
    assert (out / "notes.txt").read_text() == "mine"
    (raw_copy / "annotations" / "test.txt").unlink()
    with pytest.raises(CamlocError, match="test.txt is missing.*camloc download"):
        run(tiny_params(), Paths(raw=raw_copy, prepared=tmp_path / "p"))
    with pytest.raises(CamlocError, match="run `camloc download` first"):
        run(tiny_params(), Paths(raw=tmp_path / "nowhere", prepared=tmp_path / "p"))


def test_rerun_is_byte_identical(synthpets_raw, prepared_dir, tmp_path, tiny_params):
    run(tiny_params(), Paths(raw=synthpets_raw, prepared=tmp_path / "again"))
    for name in ("samples.parquet", "boxes.parquet", "classes.json", "report.json", "images.npy"):
        assert (tmp_path / "again" / name).read_bytes() == (prepared_dir / name).read_bytes(), name


def test_annotation_defects_are_repaired_or_reported(raw_copy, tmp_path, tiny_params):
    ann = raw_copy / "annotations"
    xmls = sorted(p for p in (ann / "xmls").glob("[!.]*.xml"))
    a, b, c = xmls[0], xmls[1], xmls[2]
    text = a.read_text()
    species = "dog" if "<name>cat</name>" in text else "cat"
    a.write_text(text.replace("<name>cat</name>", f"<name>{species}</name>")
                 .replace("<name>dog</name>", f"<name>{species}</name>"))
    b.write_text(_set_box(b.read_text(), xmax=100000))
    c.write_text(_set_box(c.read_text(), xmin=90000, xmax=90010))
    ids = [e.image_id for e in pets.read_list(ann / "test.txt")]
    (ann / "trimaps" / f"{ids[0]}.png").unlink()
    Image.new("L", (5, 5), 2).save(ann / "trimaps" / f"{ids[1]}.png")
    Image.new("L", (5, 5), 7).resize(Image.open(raw_copy / "images" / f"{ids[2]}.jpg").size).save(
        ann / "trimaps" / f"{ids[2]}.png")
    run(tiny_params(split=SplitParams(val_per_class=1, test_per_class=1)), Paths(raw=raw_copy, prepared=tmp_path / "p"))
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    rep = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in report["repaired"]}
    skip = {r["file"].rsplit("/", 1)[-1]: r["reason"] for r in report["skipped"]}
    assert "the split file wins" in rep[a.name]
    assert "clipped" in rep[b.name] and "outside" in skip[c.name]
    assert "no trimap" in skip[f"{ids[0]}.png"] and "does not match" in skip[f"{ids[1]}.png"]
    assert "outside 1 (pet)" in skip[f"{ids[2]}.png"]
    samples = pd.read_parquet(tmp_path / "p" / "samples.parquet").set_index("image_id")
    boxes = pd.read_parquet(tmp_path / "p" / "boxes.parquet")
    assert pd.isna(samples.loc[ids[0], "trimap_path"]) and not pd.isna(samples.loc[ids[1], "trimap_path"])
    assert not set(ids[:3]) & set(boxes.loc[boxes.kind == "body", "image_id"])
    head = boxes[(boxes.kind == "head") & (boxes.image_id == b.stem)].iloc[0]
    assert head.x1 == samples.loc[b.stem, "width"] - 1
    assert c.stem not in set(boxes.loc[boxes.kind == "head", "image_id"])


def _set_box(xml: str, **vals) -> str:
    import re

    for tag, v in vals.items():
        xml = re.sub(f"<{tag}>\\d+</{tag}>", f"<{tag}>{v}</{tag}>", xml)
    return xml


def test_no_usable_trainval_image_is_a_clear_error(raw_copy, tmp_path, tiny_params):
    for e in pets.read_list(raw_copy / "annotations" / "trainval.txt"):
        (raw_copy / "images" / f"{e.image_id}.jpg").write_bytes(b"")
    with pytest.raises(CamlocError, match="trainval.txt lists no usable image"):
        run(tiny_params(), Paths(raw=raw_copy, prepared=tmp_path / "p"))
