"""Issue 20, item 2 (and the partial cases of items 3 and 9): merge-eval trusts no claim of a partial.

Each case the issue observed merging with exit 0 and wrong numbers is one test; the tampering test flips
one byte of each array of a partial, and of one map between shards."""

from __future__ import annotations

import json
import re
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline import cli as camloc_cli
from pipeline.metrics import partialfile as F
from pipeline.metrics.state import EvalState

HEADER = "image_id,x0,y0,x1,y1,width,height\n"


def tree(root, n=6):
    rng = np.random.default_rng(1)
    (root / "maps").mkdir()
    lines = [HEADER]
    for i in range(n):
        np.save(root / "maps" / f"im{i}.npy", rng.random((16, 16)))
        lines.append(f"im{i},2,3,9,12,16,16\n")
    (root / "boxes.csv").write_text("".join(lines))
    return root


def invoke(*args):
    return CliRunner().invoke(camloc_cli.cli, [str(a) for a in args])


def shards(root, n, tag="p"):
    out = []
    for k in range(n):
        out.append(root / f"{tag}{k}of{n}.npz")
        r = invoke("evaluate-maps", "--maps", root / "maps", "--boxes", root / "boxes.csv", "--interval", "0.1",
                   "--shard", f"{k}/{n}", "--out", out[-1])
        assert r.exit_code == 0, r.output
    return out


def rewrite(path, change, redigest=True):
    """Rewrite a partial with ``change(arrays, header)`` applied; with ``redigest`` its header's array
    digests are recomputed (a careful forger), so only the consistency checks can catch it."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(str(arrays.pop("header")[()]))
    change(arrays, header)
    if redigest:
        header["arrays_sha256"] = {k: F.array_digest(v) for k, v in arrays.items()}
    with open(path, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), **arrays)


def refused(parts, pattern, tmp_path):
    r = invoke("merge-eval", *parts, "--out", tmp_path / "m.json")
    assert r.exit_code == 2, r.output
    assert re.search(pattern, r.output), r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "m.json").exists()


def test_inflated_per_tau_hit_counts_are_refused(tmp_path):
    parts = shards(tree(tmp_path), 2)
    rewrite(parts[0], lambda a, h: a.__setitem__("hits", a["hits"] + 1))
    refused(parts, "hit counts are not those of its IoU rows", tmp_path)


def test_inflated_hit_counts_without_new_digests_are_refused_as_tampered(tmp_path):
    parts = shards(tree(tmp_path), 2)
    rewrite(parts[0], lambda a, h: a.__setitem__("hits", a["hits"] + 1), redigest=False)
    refused(parts, "array 'hits' differs from the digest", tmp_path)


def test_a_dropped_image_row_is_refused(tmp_path):
    parts = shards(tree(tmp_path), 2)

    def drop_and_fix_hits(a, h):  # the row goes, and the counts are made to agree with the rows left
        a["ids"], a["ious"], a["points"] = a["ids"][1:], a["ious"][1:], a["points"][1:]
        s = EvalState.empty(a["tau_grid"], False)
        for i, row, p in zip(a["ids"].tolist(), a["ious"], a["points"], strict=True):
            s.add_image(i, row, p)
        a["hits"] = s.hits

    rewrite(parts[1], drop_and_fix_hits)
    refused(parts, "covers 3 distinct images", tmp_path)


def test_a_partial_claiming_shard_5_of_3_is_refused(tmp_path):
    parts = shards(tree(tmp_path), 3)
    rewrite(parts[2], lambda a, h: h.__setitem__("shard", 5))
    refused(parts, r"claims shard 5 of 3", tmp_path)


def test_a_partial_claiming_0_shards_merged_alone_is_refused(tmp_path):
    parts = shards(tree(tmp_path), 1)
    rewrite(parts[0], lambda a, h: h.__setitem__("world", 0))
    refused(parts, "claims 0 shards of 6 images", tmp_path)


def test_a_lone_partial_claiming_n_other_than_1_is_refused(tmp_path):
    parts = shards(tree(tmp_path), 3)
    refused(parts[:1], r"shard\(s\) \[1, 2\] of 3 are missing", tmp_path)


def test_more_shards_than_images_are_refused_at_the_shard_and_at_the_merge(tmp_path):
    root = tree(tmp_path)
    r = invoke("evaluate-maps", "--maps", root / "maps", "--boxes", root / "boxes.csv", "--shard", "5/100000000000",
               "--out", root / "p.npz")
    assert r.exit_code == 2 and "use at most 6 shards" in r.output and not (root / "p.npz").exists()
    parts = shards(root, 1)
    rewrite(parts[0], lambda a, h: h.update(world=7, n_table=6))
    refused(parts, "claims 7 shards of 6 images", tmp_path)


def test_a_shard_scored_on_different_map_contents_with_the_same_names_and_sizes_is_refused(tmp_path):
    root = tree(tmp_path)
    first = shards(root, 2)
    m = np.load(root / "maps" / "im0.npy")  # shard 0's map changes, same name, same size
    np.save(root / "maps" / "im0.npy", m[::-1].copy())
    second = shards(root, 2, "q")
    refused([first[0], second[1]], r"scored .*im0\.npy with other contents", tmp_path)


def test_a_changed_boxes_csv_is_refused(tmp_path):
    root = tree(tmp_path)
    parts = shards(root, 2)
    (root / "boxes.csv").write_text((root / "boxes.csv").read_text().replace("im5,2,3", "im5,1,3"))
    refused(parts, "boxes CSV it scored .* has changed", tmp_path)


def test_a_renamed_image_with_a_forged_digest_is_refused(tmp_path):
    parts = shards(tree(tmp_path), 2)
    rewrite(parts[1], lambda a, h: a.__setitem__("ids", np.array(["im3", "im4", "im9"])))
    refused(parts, "not the CSV's images 3..5", tmp_path)


def test_tampering_flip_one_byte_of_each_array_of_a_partial(tmp_path):
    root = tree(tmp_path)
    parts = shards(root, 2)
    with np.load(parts[0], allow_pickle=False) as z:
        names = [k for k in z.files if k != "header"]
    for name in names:
        victim = root / f"flip_{name}.npz"
        victim.write_bytes(parts[0].read_bytes())

        def flip(a, h, name=name):
            raw = bytearray(np.ascontiguousarray(a[name]).tobytes())
            if not raw:  # an empty array: make it non-empty, which its digest does not cover either
                a[name] = np.zeros(1, a[name].dtype)
                return
            raw[len(raw) // 2] ^= 0x01
            a[name] = np.frombuffer(bytes(raw), a[name].dtype).reshape(a[name].shape)

        rewrite(victim, flip, redigest=False)
        refused([victim, parts[1]], f"array '{name}' differs from the digest|holds arrays", tmp_path)
        # the same flip in the file's raw bytes is caught by the zip's CRC before any digest
        raw = bytearray(parts[0].read_bytes())
        with zipfile.ZipFile(parts[0]) as zf:
            info = zf.getinfo(f"{name}.npy")
        at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size - 1
        raw[at] ^= 0x01
        victim.write_bytes(bytes(raw))
        refused([victim, parts[1]], "cannot read the partial state", tmp_path)


def test_tampering_flip_one_byte_of_one_map_between_shards(tmp_path):
    root = tree(tmp_path)
    first = shards(root, 2)
    path = root / "maps" / "im1.npy"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    second = shards(root, 2, "q")
    refused([first[0], second[1]], r"im1\.npy with other contents", tmp_path)


def test_a_partial_that_inflates_past_its_size_limit_is_refused_before_reading(tmp_path):
    parts = shards(tree(tmp_path), 1)
    with np.load(parts[0], allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["ious"] = np.zeros((1 << 27,), np.float64)  # 1 GiB of zeros, ~1 MB compressed
    with open(parts[0], "wb") as f:
        np.savez_compressed(f, **arrays)
    assert parts[0].stat().st_size < 5_000_000
    refused(parts, r"inflate to \d+ bytes, over the \d+ bytes", tmp_path)


@pytest.mark.parametrize("case,change,pattern", [
    ("without a shard count", lambda a, h: h.pop("world"), "lacks or mistypes"),
    ("with a string shard number", lambda a, h: h.__setitem__("shard", "0"), "lacks or mistypes"),
    ("with more ids than score rows", lambda a, h: a.__setitem__("ids", np.array(["im0", "im1", "im2", "x"])),
     "array 'ious' has shape"),
    ("with NaN pointing scores", lambda a, h: a.__setitem__("points", np.full_like(a["points"], np.nan)),
     "NaN or infinite"),
])
def test_partials_that_tracebacked_give_one_line(tmp_path, case, change, pattern):
    parts = shards(tree(tmp_path), 2)
    rewrite(parts[0], change)
    refused(parts, pattern, tmp_path)
