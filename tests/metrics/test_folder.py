"""evaluate-maps end to end: JSON equal to the naive reference, bad inputs, --skip-bad, CLI, fuzzing."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import ref_evaluate, ref_normalize, ref_rescale

from pipeline import cli as camloc_cli
from pipeline.errors import CamlocError
from pipeline.metrics import folder, normalize_map
from pipeline.metrics.folder import run

HEADER = "image_id,x0,y0,x1,y1,width,height\n"


def _write(tmp_path, n=6, size=32, seed=0, masks=True):
    """A small evaluate-maps input tree; returns (maps_dir, csv, masks_dir, maps, gts, mask_arrays)."""
    rng = np.random.default_rng(seed)
    maps_dir, masks_dir = tmp_path / "maps", tmp_path / "masks"
    maps_dir.mkdir()
    masks_dir.mkdir()
    lines, maps, gts, mask_arrays = [HEADER], {}, {}, {}
    for i in range(n):
        image_id = f"img_{i}"
        smap = normalize_map(rng.normal(size=(5, 5)), (size, size))
        np.save(maps_dir / f"{image_id}.npy", smap.astype(np.float32) if i % 2 else smap)
        maps[image_id] = np.load(maps_dir / f"{image_id}.npy").astype(np.float64)
        w, h = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        gts[image_id] = []
        for _ in range(int(rng.integers(1, 3))):
            x0, x1 = sorted(rng.integers(0, w, 2).tolist())
            y0, y1 = sorted(rng.integers(0, h, 2).tolist())
            lines.append(f"{image_id},{x0},{y0},{x1},{y1},{w},{h}\n")
            gts[image_id].append(ref_rescale((x0, y0, x1, y1), w, h, size, size))
        mask = (maps[image_id] > 0.5).astype(np.uint8)
        mask[rng.uniform(size=mask.shape) < 0.1] = 255
        cv2.imwrite(str(masks_dir / f"{image_id}.png"), mask)
        mask_arrays[image_id] = mask
    csv = tmp_path / "boxes.csv"
    csv.write_text("".join(lines))
    return maps_dir, csv, (masks_dir if masks else None), maps, gts, mask_arrays


def _close(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], dict):
            _close(a[k], b[k])
        else:
            assert a[k] == pytest.approx(b[k], abs=1e-9), k


@pytest.mark.parametrize("interval", [0.01, 0.05])
def test_json_equals_reference_loop(tmp_path, interval):
    maps_dir, csv, masks_dir, maps, gts, masks = _write(tmp_path, n=8)
    out, per_image = tmp_path / "out.json", tmp_path / "per_image.csv"
    got = run(maps_dir, csv, masks=masks_dir, interval=interval, out=out, per_image=per_image)
    assert got.pop("n_skipped") == 0 and got.pop("skipped") == [] and got.pop("n_unscored_maps") == 0
    _close(got, ref_evaluate(maps, gts, interval, masks))
    assert json.loads(out.read_text())["max_box_acc"] == got["max_box_acc"]
    assert per_image.read_text().splitlines()[0] == "image_id,iou_v1,iou_d30,iou_d50,iou_d70"


def test_raw_maps_are_post_processed_to_the_image_frame(tmp_path):
    maps_dir = tmp_path / "maps"
    maps_dir.mkdir()
    raw = np.random.default_rng(1).normal(size=(7, 7)) * 40 + 3  # any range is fine with --raw
    np.save(maps_dir / "a.npy", raw)
    csv = tmp_path / "b.csv"
    csv.write_text(HEADER + "a,10,5,40,30,60,50\n")
    got = run(maps_dir, csv, raw=True, interval=0.05)
    expected = ref_evaluate({"a": normalize_map(raw, (50, 60))}, {"a": [[10, 5, 40, 30]]}, 0.05)
    _close({k: got[k] for k in expected}, expected)
    with pytest.raises(CamlocError, match="outside \\[0, 1\\].*--raw"):
        run(maps_dir, csv, interval=0.05)


@pytest.mark.parametrize("case, message", [
    ("missing", "missing"),
    ("nan", "NaN"),
    ("range", "outside \\[0, 1\\]"),
    ("box_outside", "outside its"),
    ("x1_lt_x0", "x1 < x0"),
    ("not_numeric", "non-numeric|finite integers"),
    ("bad_mask", "mask"),
])
def test_bad_inputs_name_the_image_or_are_skipped(tmp_path, case, message):
    maps_dir, csv, masks_dir, *_ = _write(tmp_path, n=3)
    victim = "img_1"
    if case == "missing":
        (maps_dir / f"{victim}.npy").unlink()
    elif case in ("nan", "range"):
        m = np.load(maps_dir / f"{victim}.npy")
        m[0, 0] = np.nan if case == "nan" else 1.5
        np.save(maps_dir / f"{victim}.npy", m)
    elif case == "bad_mask":
        cv2.imwrite(str(masks_dir / f"{victim}.png"), np.full((32, 32), 7, np.uint8))
    else:
        row = {"box_outside": "5,5,500,6", "x1_lt_x0": "9,5,3,6", "not_numeric": "a,5,3,6"}[case]
        wh = next(line for line in csv.read_text().splitlines() if line.startswith(victim)).split(",")[-2:]
        csv.write_text(csv.read_text() + f"{victim},{row},{','.join(wh)}\n")
    with pytest.raises(CamlocError, match=f"'{victim}'.*({message})"):
        run(maps_dir, csv, masks=masks_dir)
    got = run(maps_dir, csv, masks=masks_dir, skip_bad=True)
    assert got["n_images"] == 2 and got["n_skipped"] == 1 and got["skipped"][0]["image_id"] == victim


def test_malformed_csv_and_all_skipped(tmp_path):
    maps_dir, csv, *_ = _write(tmp_path, n=1, masks=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,x0\n1,2\n")
    with pytest.raises(CamlocError, match="missing column"):
        run(maps_dir, bad)
    (maps_dir / "img_0.npy").unlink()
    with pytest.raises(CamlocError, match="no image could be evaluated"):
        run(maps_dir, csv, skip_bad=True)


def test_cli_prints_json_and_exits_2_on_bad_input(tmp_path):
    maps_dir, csv, *_ = _write(tmp_path, n=2, masks=False)
    cmd = [sys.executable, "-m", "pipeline", "evaluate-maps", "--maps", str(maps_dir), "--boxes", str(csv)]
    ok = subprocess.run(cmd + ["--interval", "0.1"], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["n_images"] == 2
    np.save(maps_dir / "img_0.npy", np.full((4, 4), np.nan))
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "img_0" in bad.stderr and "Traceback" not in bad.stderr


cell = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 300))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(cell, min_size=1, max_size=30), shape=st.tuples(st.integers(1, 6), st.integers(1, 6)),
       row=st.lists(st.one_of(st.integers(-5, 80), st.just("x"), st.just("")), min_size=6, max_size=6),
       raw=st.booleans())
def test_fuzz_inputs_give_a_result_or_a_camloc_error(tmp_path_factory, values, shape, row, raw):
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "maps").mkdir()
    arr = np.resize(np.array(values, dtype=np.float64), shape)
    np.save(tmp / "maps" / "a.npy", arr)
    (tmp / "b.csv").write_text(HEADER + "a," + ",".join(map(str, row)) + "\n")
    try:
        got = run(tmp / "maps", tmp / "b.csv", raw=raw, interval=0.25)
    except CamlocError as e:
        assert str(e)
        return
    assert got["n_images"] == 1 and 0 <= got["max_box_acc"]["v2"] <= 100


def test_two_workers_give_the_same_json(tmp_path):
    maps_dir, csv, masks_dir, *_ = _write(tmp_path, n=70, size=16)  # 3 chunks of 32
    one = run(maps_dir, csv, masks=masks_dir, workers=1)
    assert run(maps_dir, csv, masks=masks_dir, workers=2) == one
    np.save(maps_dir / "img_50.npy", np.full((16, 16), 2.0))  # a bad image in a later chunk
    with pytest.raises(CamlocError, match="img_50"):
        run(maps_dir, csv, masks=masks_dir, workers=2)


def _cli(*args):
    return CliRunner().invoke(camloc_cli.cli, ["evaluate-maps", *map(str, args)])


def test_npy_header_claiming_a_huge_shape_is_a_bad_image_not_a_memory_error(tmp_path):
    maps_dir, csv, *_ = _write(tmp_path, n=2, masks=False)
    huge = maps_dir / "img_0.npy"  # a corrupt header: 80 GB of float64 claimed, 64 bytes present
    with open(huge, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)})
        f.write(b"\0" * 64)
    result = _cli("--maps", maps_dir, "--boxes", csv)
    assert result.exit_code == 2, (result.exception, result.output)
    assert "img_0.npy" in result.stderr and "truncated" in result.stderr
    assert "Traceback" not in result.output and "MemoryError" not in result.output
    got = run(maps_dir, csv, skip_bad=True)
    assert got["n_skipped"] == 1 and "(100000, 100000)" in got["skipped"][0]["reason"]


@pytest.mark.parametrize("bad_id", ["../outside", "sub/img_0", "sub\\img_0", "..", "/tmp/img_0", ""])
def test_image_id_naming_a_path_outside_the_maps_folder_is_refused(tmp_path, monkeypatch, bad_id):
    maps_dir, csv, *_ = _write(tmp_path, n=2, masks=False)
    np.save(tmp_path / "outside.npy", np.load(maps_dir / "img_0.npy"))  # "../outside" would find this one
    w, h = next(line for line in csv.read_text().splitlines() if line.startswith("img_0")).split(",")[-2:]
    csv.write_text(csv.read_text() + f"{bad_id},1,1,5,5,{w},{h}\n")

    def no_map_read(*args, **kwargs):
        raise AssertionError("a map was read before the boxes CSV was validated")

    message = re.escape(f"image_id {bad_id!r}") + ".*the map's file name"
    with pytest.raises(CamlocError, match=message):
        run(maps_dir, csv)
    monkeypatch.setattr(folder, "load_map", no_map_read)
    for skip_bad in (False, True):  # a malformed CSV, not a bad image: --skip-bad does not skip it
        with pytest.raises(CamlocError, match=message):
            run(maps_dir, csv, skip_bad=skip_bad)


def test_maps_without_a_csv_row_are_counted_and_warned_about(tmp_path, caplog):
    maps_dir, csv, *_ = _write(tmp_path, n=3, masks=False)
    for k in range(7):
        np.save(maps_dir / f"extra_{k}.npy", np.zeros((32, 32)))
    (maps_dir / "notes.txt").write_text("not a map")
    with caplog.at_level(logging.WARNING, logger="pipeline.metrics.folder"):
        got = run(maps_dir, csv)
    assert got["n_images"] == 3 and got["n_unscored_maps"] == 7
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "7 map(s)" in warning and "'extra_0'" in warning and "not scored" in warning


def test_raw_maps_and_boxes_scored_in_the_size_frame_like_paper_numbers(tmp_path):
    rng = np.random.default_rng(7)
    maps_dir, masks_dir = tmp_path / "maps", tmp_path / "masks"
    maps_dir.mkdir()
    masks_dir.mkdir()
    lines, maps, gts, masks, s = [HEADER], {}, {}, {}, 32
    for i, shape in enumerate([(7, 7), (5, 9), (14, 14), (3, 4), (7, 7)]):
        image_id, raw = f"im{i}", rng.normal(size=shape) * 30 - 4
        np.save(maps_dir / f"{image_id}.npy", raw)
        w, h = int(rng.integers(33, 120)), int(rng.integers(33, 120))
        x0, x1 = sorted(rng.integers(0, w, 2).tolist())
        y0, y1 = sorted(rng.integers(0, h, 2).tolist())
        lines.append(f"{image_id},{x0},{y0},{x1},{y1},{w},{h}\n")
        mask = (cv2.resize(raw, (w, h), interpolation=cv2.INTER_CUBIC) > 0).astype(np.uint8)
        mask[rng.uniform(size=mask.shape) < 0.1] = 255
        cv2.imwrite(str(masks_dir / f"{image_id}.png"), mask)
        maps[image_id] = ref_normalize(raw, s, s)  # PROTOCOL §1 in the S×S frame
        gts[image_id] = [ref_rescale((x0, y0, x1, y1), w, h, s, s)]  # §2
        masks[image_id] = cv2.resize(mask, (s, s), interpolation=cv2.INTER_NEAREST)
    csv = tmp_path / "boxes.csv"
    csv.write_text("".join(lines))
    result = _cli("--maps", maps_dir, "--boxes", csv, "--masks", masks_dir, "--raw", "--size", s, "--interval", 0.05)
    assert result.exit_code == 0, (result.exception, result.output)
    got = json.loads(result.stdout)
    expected = ref_evaluate(maps, gts, 0.05, masks)
    _close({k: got[k] for k in expected}, expected)
    assert run(maps_dir, csv, masks=masks_dir, raw=True, size=s, interval=0.05) == got
    # without --raw the maps must already be S×S
    bad = _cli("--maps", maps_dir, "--boxes", csv, "--size", s)
    assert bad.exit_code == 2 and "--size 32x32" in bad.stderr and "--raw" in bad.stderr


def test_pointing_keys_by_hand_and_the_tolerance_option(tmp_path):
    """Two 20×20 maps: one peaks inside its box, one peaks 5 px right of its box; energies by hand."""
    maps_dir = tmp_path / "maps"
    maps_dir.mkdir()
    inside, beside = np.zeros((20, 20)), np.zeros((20, 20))
    inside[2:4, 2:4] = 1.0  # all energy in the box (0, 0)-(5, 5), argmax (2, 2) inside
    beside[10, 15] = 1.0  # argmax 5 columns right of the box (2, 8)-(10, 12): distance 5
    beside[9, 9] = 0.5  # a third of the energy inside that box
    np.save(maps_dir / "a.npy", inside)
    np.save(maps_dir / "b.npy", beside)
    csv = tmp_path / "boxes.csv"
    csv.write_text(HEADER + "a,0,0,5,5,20,20\nb,2,8,10,12,20,20\n")
    got = run(maps_dir, csv, interval=0.1, pointing_tolerance=5)
    assert got["pointing_game"] == 100.0 and got["pointing_tolerance"] == 5.0
    assert got["energy_pointing_game"] == pytest.approx(100 * (1.0 + 0.5 / 1.5) / 2)
    assert run(maps_dir, csv, interval=0.1, pointing_tolerance=4.9)["pointing_game"] == 50.0
    res = CliRunner().invoke(camloc_cli.cli, ["evaluate-maps", "--maps", str(maps_dir), "--boxes", str(csv),
                                              "--pointing-tolerance", "4"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["pointing_game"] == 50.0
    with pytest.raises(CamlocError, match="pointing tolerance"):
        run(maps_dir, csv, pointing_tolerance=-1)
