"""Sharded evaluate-maps: --shard K/N partials merged by merge-eval give the unsharded JSON and per-image
CSV byte for byte; the state's merge is associative; merge-eval refuses mixed, missing and duplicate shards."""

from __future__ import annotations

import json
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import cli as camloc_cli
from pipeline.metrics import normalize_map
from pipeline.metrics import partialfile as F
from pipeline.metrics.folder import read_boxes, score, taus

HEADER = "image_id,x0,y0,x1,y1,width,height\n"


def _tree(root, n=7, seed=0, bad=None):
    """maps/, masks/, boxes.csv with n images (image `bad` has a NaN map), plus one map with no CSV row."""
    rng = np.random.default_rng(seed)
    (root / "maps").mkdir()
    (root / "masks").mkdir()
    lines = [HEADER]
    for i in range(n):
        smap = normalize_map(rng.normal(size=(5, 5)), (24, 24))
        if i == bad:
            smap[0, 0] = np.nan
        np.save(root / "maps" / f"im{i:02d}.npy", smap)
        cv2.imwrite(str(root / "masks" / f"im{i:02d}.png"), rng.choice(np.array([0, 1, 255], np.uint8), (24, 24)))
        x0, y0 = rng.integers(0, 20, 2).tolist()
        lines.append(f"im{i:02d},{x0},{y0},{x0 + 3},{y0 + 4},24,24\n")
    np.save(root / "maps" / "extra.npy", np.zeros((24, 24)))
    (root / "boxes.csv").write_text("".join(lines))
    return root


def _invoke(args):
    return CliRunner().invoke(camloc_cli.cli, [str(a) for a in args])


def _common(root):
    return ["--maps", root / "maps", "--boxes", root / "boxes.csv", "--masks", root / "masks", "--interval", "0.05",
            "--skip-bad"]


@pytest.mark.parametrize("n_shards", [1, 3, 7])  # 7 = 7 images: one image per shard (more are refused)
def test_shards_merged_equal_the_unsharded_run_byte_for_byte(tmp_path, n_shards):
    root = _tree(tmp_path, bad=3)
    r = _invoke(["evaluate-maps", *_common(root), "--out", root / "one.json", "--per-image", root / "one.csv"])
    assert r.exit_code == 0, r.output
    parts = []
    for k in reversed(range(n_shards)):  # any order
        parts.append(root / f"part{k}.npz")
        r = _invoke(["evaluate-maps", *_common(root), "--shard", f"{k}/{n_shards}", "--out", parts[-1]])
        assert r.exit_code == 0, r.output
    r = _invoke(["merge-eval", *parts, "--out", root / "merged.json", "--per-image", root / "merged.csv"])
    assert r.exit_code == 0, r.output
    assert (root / "merged.json").read_bytes() == (root / "one.json").read_bytes()
    assert (root / "merged.csv").read_bytes() == (root / "one.csv").read_bytes()
    got = json.loads((root / "merged.json").read_text())
    assert got["n_skipped"] == 1 and got["n_unscored_maps"] == 1 and got["n_images"] == 6


def test_state_merge_is_associative_and_order_free(tmp_path):
    root = _tree(tmp_path, n=6)
    grid = taus(0.05)
    items = list(read_boxes(root / "boxes.csv").items())
    parts = [score(root / "maps", dict(items[i:i + 2]), root / "masks", grid, False, False, None, 1)
             for i in range(0, 6, 2)]
    a, b, c = parts
    left, right, shuffled = a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)
    whole = score(root / "maps", dict(items), root / "masks", grid, False, False, None, 1)
    for m in (left, right, shuffled):
        assert m.ids == whole.ids and np.array_equal(m.hits, whole.hits)
        assert np.array_equal(np.stack(m.ious), np.stack(whole.ious))
        assert np.array_equal(m.pixel_hist, whole.pixel_hist)
        assert m.box_metrics() == whole.box_metrics()
    with pytest.raises(Exception, match="same image"):
        a.merge(a)


def _parts(root, n, tag="p", **extra):
    out = []
    for k in range(n):
        out.append(root / f"{tag}{k}of{n}.npz")
        args = ["evaluate-maps", *_common(root), "--shard", f"{k}/{n}", "--out", out[-1]]
        for key, value in extra.items():
            args += [f"--{key}", value]
        r = _invoke(args)
        assert r.exit_code == 0, r.output
    return out


def test_merge_eval_refuses_mismatched_missing_duplicate_and_foreign_partials(tmp_path):
    root = _tree(tmp_path)
    two, three = _parts(root, 2), _parts(root, 3)
    cases = [
        ([two[0], three[1], three[2]], "different world sizes"),
        ([two[0]], r"shard\(s\) \[1\] of 2 are missing"),
        ([two[0], two[1], two[1]], "shard 1/2 is given twice"),
    ]
    other = _parts(root, 2, "other", interval="0.1")  # same inputs, another τ grid
    cases.append(([two[0], other[1]], "different inputs or params.*interval"))
    np.save(root / "maps" / "im01.npy", np.zeros((24, 25)))  # the map set changed after shard 0 ran
    late = _parts(root, 2, "late")
    cases.append(([two[0], late[1]], "different inputs or params.*maps"))
    (root / "junk.npz").write_bytes(b"not a zip")
    cases.append(([root / "junk.npz", two[1]], "cannot read the partial state"))
    for args, message in cases:
        r = _invoke(["merge-eval", *args, "--out", root / "m.json"])
        assert r.exit_code == 2, (message, r.output)
        assert re.search(message, r.output), (message, r.output)
    assert not (root / "m.json").exists()


@pytest.mark.parametrize("spec", ["2/2", "-1/2", "a/b", "1"])
def test_bad_shard_spec_and_missing_out_are_clear_errors(tmp_path, spec):
    root = _tree(tmp_path, n=2)
    r = _invoke(["evaluate-maps", *_common(root), "--shard", spec, "--out", root / "p.npz"])
    assert r.exit_code == 2 and "0 <= K < N" in r.output, r.output
    r = _invoke(["evaluate-maps", *_common(root), "--shard", "0/2"])
    assert r.exit_code == 2 and "--out" in r.output, r.output


def test_partial_file_format_is_the_documented_one(tmp_path):
    root = _tree(tmp_path, n=3)
    (part,) = _parts(root, 1)
    with np.load(part, allow_pickle=False) as z:
        assert set(z.files) == {"header", "tau_grid", "hits", "ids", "ious", "skipped_ids", "skipped_reasons",
                                "n_unscored", "pixel_hist", "points", "pointing_tolerance", "read_files", "read_sha256"}
        header = json.loads(str(z["header"][()]))
        assert header["format"] == F.FORMAT and header["shard"] == 0 and header["world"] == 1
        assert z["hits"].shape == (2, 3, 20) and z["ious"].shape == (3, 2, 20)
        assert z["points"].shape == (3, 2) and float(z["pointing_tolerance"]) == 15.0
