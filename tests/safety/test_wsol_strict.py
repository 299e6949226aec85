"""Issue 20, item 5: wsol metadata is strict — duplicates, aliases, BOM, symlinks, masks."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/twins.py
from twins import make_boxes_twin, make_masks_twin  # noqa: E402

from pipeline import contracts as C  # noqa: E402
from pipeline.datasets.wsol import fetch_wsol, read_metadata  # noqa: E402
from pipeline.errors import CamlocError  # noqa: E402
from pipeline.params import BackboneParams, DatasetParams, Params, PrepareParams, WsolDatasetParams  # noqa: E402
from pipeline.stages import prepare  # noqa: E402


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    out = tmp_path_factory.mktemp("boxes")
    make_boxes_twin(out / "images", out / "meta")
    return out


@pytest.fixture
def meta(tmp_path, twin):
    return Path(shutil.copytree(twin / "meta", tmp_path / "meta"))


def _edit(path: Path, fn) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(fn(lines)) + "\n", encoding="utf-8")


def _params() -> Params:
    return Params(dataset=DatasetParams(name="wsol", wsol=WsolDatasetParams("m", "r")),
                  prepare=PrepareParams(cache_size=32, workers=1), backbones={"fake": BackboneParams(image_size=32)})


def test_a_label_listed_twice_with_different_values_is_refused_with_both_lines(meta, twin):
    _edit(meta / "test" / "class_labels.txt", lambda ls: ls + [ls[0].rsplit(",", 1)[0] + ",2"])
    n = len((meta / "test" / "class_labels.txt").read_text().splitlines())
    with pytest.raises(CamlocError, match=rf"class_labels.txt:{n}: .* is given a label twice \(first at .*:1\)"):
        read_metadata(meta, twin / "images")


def test_a_size_listed_twice_is_refused_with_both_lines(meta, twin):
    _edit(meta / "val" / "image_sizes.txt", lambda ls: ls + [ls[1]])
    with pytest.raises(CamlocError, match=r"image_sizes.txt:\d+: .* is given a size twice \(first at .*:2\)"):
        read_metadata(meta, twin / "images")


def test_dot_slash_alias_beside_the_id_is_one_image_listed_twice(meta, twin):
    _edit(meta / "test" / "image_ids.txt", lambda ls: ls + [ls[0].replace("/", "/./", 1)])
    with pytest.raises(CamlocError, match=r"image_ids.txt:\d+: .* is listed twice \(first at .*:1\)"):
        read_metadata(meta, twin / "images")


def test_double_slash_id_in_val_and_plain_id_in_test_is_an_image_in_two_splits(meta, twin):
    first = (meta / "test" / "image_ids.txt").read_text().splitlines()[0]
    alias = first.replace("/", "//", 1)
    for f, row in (("image_ids.txt", alias), ("class_labels.txt", f"{alias},0"), ("localization.txt", f"{alias},1,1,4,4")):
        _edit(meta / "val" / f, lambda ls, row=row: ls + [row])
    with pytest.raises(CamlocError, match=r"belongs to one split"):
        read_metadata(meta, twin / "images")


def test_a_utf8_bom_is_stripped_so_the_first_image_is_not_missing(meta, twin):
    for s in ("train", "val", "test"):
        for f in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
            p = meta / s / f
            p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    index = read_metadata(meta, twin / "images")
    first = (twin / "meta" / "test" / "image_ids.txt").read_text().splitlines()[0]
    assert first in index.splits["test"].ids and first in index.splits["test"].labels


def test_a_symlink_inside_the_root_pointing_outside_is_refused(tmp_path):
    out = tmp_path / "oi"
    tw = make_masks_twin(out / "images", out / "masks", out / "meta", per_class={"train": 4, "val": 1, "test": 2})
    secret = tmp_path / "secret.png"
    rel = tw.masks[tw.splits["test"][0]][0]
    shutil.move(out / "masks" / rel, secret)
    (out / "masks" / rel).symlink_to(secret)
    fetch_wsol(out / "meta", out / "images", out / "masks", tmp_path / "raw")
    with pytest.raises(CamlocError, match=r"is a link to .*secret.png, outside"):
        prepare.run(_params(), C.Paths(raw=tmp_path / "raw", prepared=tmp_path / "prep"))
    assert not (tmp_path / "prep").exists()


def test_an_undecodable_mask_is_refused_at_prepare(tmp_path):
    out = tmp_path / "oi"
    tw = make_masks_twin(out / "images", out / "masks", out / "meta", per_class={"train": 4, "val": 1, "test": 2})
    (out / "masks" / tw.masks[tw.splits["test"][0]][0]).write_bytes(b"not a png")
    fetch_wsol(out / "meta", out / "images", out / "masks", tmp_path / "raw")
    with pytest.raises(CamlocError, match=r"mask file .* \(listed at .*test/image_ids.txt:1\) does not decode"):
        prepare.run(_params(), C.Paths(raw=tmp_path / "raw", prepared=tmp_path / "prep"))


def test_wrong_size_masks_are_warned_with_a_count(tmp_path, caplog):
    import cv2
    import numpy as np

    out = tmp_path / "oi"
    tw = make_masks_twin(out / "images", out / "masks", out / "meta", per_class={"train": 4, "val": 1, "test": 2})
    for image in tw.splits["test"][:2]:
        cv2.imwrite(str(out / "masks" / tw.masks[image][0]), np.zeros((7, 9), np.uint8))
    fetch_wsol(out / "meta", out / "images", out / "masks", tmp_path / "raw")
    with caplog.at_level(logging.WARNING, logger="pipeline"):
        prepare.run(_params(), C.Paths(raw=tmp_path / "raw", prepared=tmp_path / "prep"))
    assert any("2 mask file(s) are not the size of their image" in r.message for r in caplog.records)
    assert json.loads((tmp_path / "prep" / "report.json").read_text())["masks_off_size"]["count"] == 2
